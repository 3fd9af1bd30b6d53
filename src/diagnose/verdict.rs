//! The verdict: how close a node is to "no space left on device", ranked the same way on every
//! kernel.
//!
//! Two questions decide, on every kernel era and on cgroup v2 alike: how many memcg ids are free
//! ([`FreeIds`]), and whether anything shows that ids are going (dying memcgs piling up next to
//! the live ones, or on 3.10 kmem accounting active under the pods cgroup, the trigger of the
//! leak: docs/kernel-facts.md, "The 3.10 kmem trigger"). [`rank`] is the whole table. The
//! kernel era only changes which of those facts can be known (3.10 hides dying memcgs:
//! docs/kernel-facts.md, "Counting dying memcgs") and the advice ([`super::advice`]). An
//! indicator alone never makes a node leaking: leaking means mkdir fails or is about to, which
//! only the free ids tell.

use super::advice::advise;
use super::facts::{
    Facts, HierarchyFacts, IdsSource, KernelFacts, KubeletFacts, KubepodsFacts, Status, Verdict,
};
use super::numbers::{join_pids, sep};
use super::thresholds::Thresholds;
use crate::host::CgroupMode;

/// What is known of the free memcg ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeIds {
    /// Counted: the id limit minus /proc/cgroups' count, or minus `--ids-used`.
    Counted(u64),
    /// At least this many (cgroup v2: every live or dying cgroup holds at most one memcg id).
    AtLeast(u64),
    /// At most this many (3.10: the id limit less the live memcgs and the dying ones seen in
    /// /sys/kernel/slab, a lower bound of the dying).
    AtMost(u64),
    /// Not countable here (3.10 without `--ids-used`, an unreadable hierarchy).
    Unknown,
}

/// The ranking, the same for every kernel era. `going`: an indicator that ids are going (dying
/// memcgs piling up, the 3.10 kmem trigger).
///
/// | free ids                                 | ids going | status   |
/// |------------------------------------------|-----------|----------|
/// | counted or at most, <= leaking           | any       | leaking  |
/// | counted, at least or at most, <= at-risk | any       | at-risk  |
/// | more, or unknown                         | yes       | at-risk  |
/// | counted or at least, more                | no        | healthy  |
/// | at most more, or unknown                 | no        | unknown  |
///
/// "At most" is a ceiling: it proves few ids are left when small, and proves nothing when large.
pub fn rank(free: FreeIds, going: bool, t: &Thresholds) -> Status {
    match free {
        FreeIds::Counted(f) | FreeIds::AtMost(f) if f <= t.leaking_ids_free => Status::Leaking,
        FreeIds::Counted(f) | FreeIds::AtLeast(f) | FreeIds::AtMost(f)
            if f <= t.at_risk_ids_free =>
        {
            Status::AtRisk
        }
        _ if going => Status::AtRisk,
        FreeIds::Counted(_) | FreeIds::AtLeast(_) => Status::Healthy,
        FreeIds::AtMost(_) | FreeIds::Unknown => Status::Unknown,
    }
}

/// Dying per live, the live count at least 1.
pub fn ratio(dying: u64, live: u64) -> f64 {
    dying as f64 / live.max(1) as f64
}

/// Decide. Pure: the same facts and thresholds always give the same verdict.
pub fn verdict(f: &Facts, t: &Thresholds) -> Verdict {
    let mut reasons = fact_reasons(f);
    let (free, going) = if f.is_v2() {
        v2_signals(f, t, &mut reasons)
    } else {
        v1_signals(f, t, &mut reasons)
    };
    let status = rank(free, going, t);
    match (status, free) {
        (Status::Leaking, _) => reasons.push(format!(
            "{} or fewer ids free: kubelet's mkdir fails or is about to ({})",
            sep(t.leaking_ids_free),
            // 3.10 returns ENOMEM when no memcg id is left (docs/kernel-facts.md).
            if f.is_legacy() {
                "ENOMEM, \"cannot allocate memory\", on 3.10"
            } else {
                "ENOSPC"
            }
        )),
        (Status::AtRisk, FreeIds::Counted(n) | FreeIds::AtMost(n)) if n <= t.at_risk_ids_free => {
            reasons.push(format!(
                "{} or fewer ids free: pods will stop starting when they run out",
                sep(t.at_risk_ids_free)
            ))
        }
        _ => {}
    }
    Verdict {
        status,
        advice: advise(f, status),
        reasons,
    }
}

/// The facts every verdict rests on, whatever it is.
fn fact_reasons(f: &Facts) -> Vec<String> {
    let mut r = Vec::new();
    let h = &f.hierarchy;
    let kp = &f.kubepods;
    if let Some(line) = kernel_reason(f) {
        r.push(line);
    }
    if let (Some(used), Some(free)) = (h.ids_used, h.ids_free) {
        let src = match h.ids_source {
            IdsSource::ProcCgroups => "/proc/cgroups",
            IdsSource::Systemtap => "--ids-used",
            IdsSource::Unknown => "unknown source",
        };
        r.push(format!(
            "{} of {} memcg ids in use ({src}), {} free",
            sep(used),
            sep(h.id_limit),
            sep(free)
        ));
    }
    if kp.layout == Some(crate::model::Layout::Systemd) {
        r.push(format!(
            "{} belongs to the systemd cgroup driver: systemd owns those cgroups, so cgleak \
             will not migrate them (cgleak repair refuses); on this node the repair is a drain \
             and a reboot",
            kp.name
        ));
    }
    // docs/kernel-facts.md, "Ids and swap from 4.8".
    if h.ids_source == IdsSource::ProcCgroups
        && f.kernel.info().ids_released_at_offline() == Some(true)
        && h.dying.unwrap_or(0) > 0
    {
        r.push(format!(
            "from 4.8 on a dying memcg keeps its id only while swapped-out pages reference it: \
             ids free is a lower bound ({} - counted)",
            h.id_limit
        ));
    }
    if let (Some(d), Some(l)) = (h.dying, h.live) {
        r.push(format!(
            "{} dying memcgs (deleted, still charged) for {} live ones",
            sep(d),
            sep(l)
        ));
    }
    if f.is_legacy() && !kp.found {
        r.push(format!("no pods cgroup {:?} below the root", kp.name));
    }
    if f.kubelet.running == Some(true) {
        r.push(format!(
            "kubelet is running (pid {})",
            join_pids(&f.kubelet.pids)
        ));
    }
    r
}

/// What the kernel era says about kmem accounting (3.10's per-cgroup state is told with the
/// signals, from the pods tree).
fn kernel_reason(f: &Facts) -> Option<String> {
    let kp = &f.kubepods;
    match f.kernel.era {
        None => Some(format!(
            "kernel release {:?} not understood: cannot tell how it counts memcgs",
            f.kernel.release
        )),
        Some(_) if f.nokmem && f.is_legacy() => Some(
            "kernel booted with cgroup.memory=nokmem: kmem accounting cannot be activated"
                .to_string(),
        ),
        Some(_) if f.is_legacy() => None,
        Some(_) if f.nokmem => Some(
            "kernel booted with cgroup.memory=nokmem: memcgs do not account kernel memory"
                .to_string(),
        ),
        Some(_) if !f.is_v2() && kp.found => Some(format!(
            "kernel {} accounts kernel memory for every v1 memcg (3.16 and later), so kmem is \
             active under {} whatever kubelet does",
            f.kernel.release, kp.name
        )),
        Some(_) => None,
    }
}

/// Dying memcgs piling up: at least `min_dying_for_ratio` and `at_risk_dying_ratio` per live.
fn piling_up(dying: u64, live: u64, t: &Thresholds) -> bool {
    dying >= t.min_dying_for_ratio && ratio(dying, live) >= t.at_risk_dying_ratio
}

/// The two questions on a v1 hierarchy: the counted free ids, and whether ids are going.
fn v1_signals(f: &Facts, t: &Thresholds, reasons: &mut Vec<String>) -> (FreeIds, bool) {
    let h = &f.hierarchy;
    let kp = &f.kubepods;
    if h.live.is_none() && h.ids_free.is_none() {
        reasons.push("the memory hierarchy could not be read".to_string());
        return (FreeIds::Unknown, false);
    }
    let free = match (h.ids_free, h.ids_free_at_most()) {
        (Some(n), _) => FreeIds::Counted(n),
        (None, Some(n)) => FreeIds::AtMost(n),
        (None, None) => FreeIds::Unknown,
    };
    let mut going = false;
    if let (Some(d), Some(l)) = (h.dying.or(h.dying_at_least), h.live) {
        if piling_up(d, l, t) {
            reasons.push(format!(
                "{:.1} dying memcgs per live one: they accumulate",
                ratio(d, l)
            ));
            going = true;
        }
    }
    if f.is_legacy() && kp.found {
        let trigger = legacy_kmem_reason(f, reasons);
        going |= trigger;
        if trigger && h.dying.is_none() && h.dying_at_least.is_none() {
            reasons.push(
                "on 3.10 dying memcgs are invisible from userspace: the leak may be happening \
                 but cannot be counted without --ids-used"
                    .to_string(),
            );
        }
    }
    if let (None, Some(d), Some(n)) = (h.dying, h.dying_at_least, h.ids_free_at_most()) {
        reasons.push(format!(
            "at least {} dying memcgs: kmem ids in {} whose cgroup has no live directory \
             (a lower bound: a dying memcg without slab cache copies is not seen), so at most {} \
             ids free",
            sep(d),
            crate::ids::slab::SYS_KERNEL_SLAB,
            sep(n)
        ));
    }
    if let (Some(why), None) = (&h.slab_unavailable, h.dying) {
        reasons.push(format!("dying memcgs not counted from slab caches: {why}"));
    }
    if f.is_legacy() && free == FreeIds::Unknown && !going {
        reasons.push(
            "on 3.10 /proc/cgroups counts live memcgs only: ids in use are unknown without \
             --ids-used"
                .to_string(),
        );
    }
    (free, going)
}

/// On 3.10, whether kmem accounting is active under the pods cgroup (the trigger), with the
/// reason saying so.
fn legacy_kmem_reason(f: &Facts, reasons: &mut Vec<String>) -> bool {
    let kp = &f.kubepods;
    match (kp.kmem_active, kp.kmem_active_cgroups) {
        (Some(true), n) => {
            reasons.push(format!(
                "kmem accounting is active under {} ({} cgroups): on 3.10 every deleted \
                 container cgroup stays pinned by slab objects and keeps its id (the trigger \
                 of the leak)",
                kp.name,
                n.map(sep).unwrap_or_else(|| "some".to_string())
            ));
            true
        }
        (Some(false), _) => {
            reasons.push(format!(
                "kmem accounting is not active under {}: deleted cgroups are not pinned by slab",
                kp.name
            ));
            false
        }
        (None, _) => {
            reasons.push(format!(
                "cannot tell whether kmem accounting is active under {} \
                 (memory.kmem.slabinfo unreadable)",
                kp.name
            ));
            false
        }
    }
}

/// The two questions on cgroup v2: memcg ids are not counted there, but each live or dying
/// cgroup holds at most one, which bounds the free ids from below.
fn v2_signals(f: &Facts, t: &Thresholds, reasons: &mut Vec<String>) -> (FreeIds, bool) {
    let h = &f.hierarchy;
    let Some(nd) = h.nr_dying_descendants else {
        // What could not be read (or holds no memcg) is the reason, when there is one.
        if f.errors.is_empty() {
            reasons.push("nr_dying_descendants unknown on this cgroup v2 host".to_string());
        }
        reasons.extend(f.errors.iter().cloned());
        return (FreeIds::Unknown, false);
    };
    reasons.push(format!(
        "{} dying cgroups (nr_dying_descendants of the root)",
        sep(nd)
    ));
    let Some(live) = h.live else {
        reasons.push("live cgroups not counted: cannot weigh the dying ones".to_string());
        return (FreeIds::Unknown, false);
    };
    let bound = live + nd;
    let free_min = h.id_limit.saturating_sub(bound);
    if free_min <= t.at_risk_ids_free {
        reasons.push(format!(
            "live and dying cgroups together could hold {} of {} memcg ids",
            sep(bound),
            sep(h.id_limit)
        ));
    }
    let going = piling_up(nd, live, t);
    if going {
        reasons.push(format!(
            "{:.1} dying cgroups per live one: they accumulate",
            ratio(nd, live)
        ));
    }
    (FreeIds::AtLeast(free_min), going)
}

/// Facts get their verdict here, where it is computed (the facts themselves know no rule).
impl Facts {
    /// The facts with the verdict of the default thresholds.
    pub fn judged(
        kernel: KernelFacts,
        cgroup_mode: Option<CgroupMode>,
        hierarchy: HierarchyFacts,
        kubepods: KubepodsFacts,
        kubelet: KubeletFacts,
        errors: Vec<String>,
    ) -> Facts {
        let t = Thresholds::default();
        let mut f = Facts {
            nokmem: kernel.nokmem,
            kernel,
            cgroup_mode,
            hierarchy,
            kubepods,
            kubelet,
            verdict: Verdict {
                status: Status::Unknown,
                reasons: vec![],
                advice: vec![],
            },
            thresholds: t,
            errors,
            repair_refusals: Vec::new(),
            runtimes: None,
        };
        f.judge(&t);
        f
    }

    /// Recompute the verdict with other thresholds.
    pub fn judge(&mut self, t: &Thresholds) {
        self.thresholds = *t;
        self.verdict = verdict(self, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let t = Thresholds::default();
        use FreeIds::*;
        let rows = [
            (Counted(0), false, Status::Leaking),
            (Counted(1_000), true, Status::Leaking),
            (Counted(1_001), false, Status::AtRisk),
            (Counted(10_000), false, Status::AtRisk),
            (Counted(10_001), false, Status::Healthy),
            (Counted(10_001), true, Status::AtRisk),
            (AtLeast(0), false, Status::AtRisk),
            (AtLeast(10_001), false, Status::Healthy),
            (AtLeast(10_001), true, Status::AtRisk),
            (Unknown, true, Status::AtRisk),
            (Unknown, false, Status::Unknown),
        ];
        for (free, going, want) in rows {
            assert_eq!(rank(free, going, &t), want, "{free:?} going={going}");
        }
    }
}
