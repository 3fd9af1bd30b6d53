//! `cgleak diagnose`: is this node running out of memory-cgroup ids, why, and what to do.
//!
//! Two layers, so the decision can be tested without a kernel:
//! - [`gather`] reads everything through [`Node`] (read-only: it never writes a file and
//!   never creates a cgroup, because a diagnosis must be safe on a node that is already failing)
//!   into [`Facts`]. [`gather_v2`] builds the same report for a cgroup v2 host from values the
//!   caller read (there is no v1 memory hierarchy to open there).
//! - [`verdict`] is pure: [`Facts`] and [`Thresholds`] in, a [`Verdict`] out.
//!
//! The kernel rules behind each decision are in KERNEL-FACTS.md: a memcg holds one of 65535 ids
//! (MEM_CGROUP_ID_MAX) from mkdir until its last charge goes, deleted-but-charged ("dying")
//! memcgs keep theirs, and how visible that is depends on the kernel era. The JSON keys of
//! [`Facts`] are a contract for scripts: unknown values are `null`, never guessed.

pub mod export;

use crate::error::{Error, Result};
use crate::host::{self, CgroupMode, Node};
use crate::model::kernel::{cmdline_nokmem, Era, KernelInfo};
use crate::model::{is_unlimited, Kind, Layout, Snapshot};
use crate::scan;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

pub use crate::repair::plan::ID_LIMIT;

/// Free ids at or below which the node is at risk. A busy node churns a few ids per pod start
/// (pod cgroup, pause container, each container); while the leak runs, each deleted container
/// keeps its id, so 10,000 is days of churn, not weeks. It also leaves room for the migration
/// repair on 3.10, which needs one free id for every cgroup it recreates (a 110-pod node has
/// about 500), so there is still time to plan a maintenance window.
pub const AT_RISK_IDS_FREE: u64 = 10_000;

/// Free ids at or below which the node is leaking now: a few hundred pod starts at most before
/// kubelet's mkdir fails with "no space left on device", and too few ids left to be sure a
/// migration repair (one new id per cgroup of the pods tree) can finish.
pub const LEAKING_IDS_FREE: u64 = 1_000;

/// Dying memcgs per live memcg at or above which they are accumulating (at-risk). A few dying
/// memcgs are normal (page cache of a deleted cgroup keeps it until reclaimed); twice as many
/// dying as live means they are piling up faster than memory pressure frees them.
pub const AT_RISK_DYING_RATIO: f64 = 2.0;

/// On 3.10 with kmem accounting active under the pods cgroup, dying memcgs per live memcg at or
/// above which the node is leaking: the trigger is present (slab objects pin every deleted
/// container cgroup for a long time) and the count confirms they accumulate. On other kernels
/// a high ratio only means at-risk, because `cgleak reclaim` can free page-cache pins.
pub const LEAKING_DYING_RATIO: f64 = 5.0;

/// The dying ratios apply only from this many dying memcgs: on a small node (seen here: 7 live,
/// 38 dying) a high ratio is harmless, 1,000 ids are 1.5% of the id space.
pub const MIN_DYING_FOR_RATIO: u64 = 1_000;

/// The limits the verdict uses (see the constants for why each value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Free ids at or below this: at-risk ([`AT_RISK_IDS_FREE`]).
    pub at_risk_ids_free: u64,
    /// Free ids at or below this: leaking ([`LEAKING_IDS_FREE`]).
    pub leaking_ids_free: u64,
    /// dying/live at or above this (with at least `min_dying_for_ratio` dying): at-risk
    /// ([`AT_RISK_DYING_RATIO`]).
    pub at_risk_dying_ratio: f64,
    /// dying/live at or above this on 3.10 with kmem active under the pods cgroup: leaking
    /// ([`LEAKING_DYING_RATIO`]).
    pub leaking_dying_ratio: f64,
    /// Fewer dying memcgs than this never count as accumulating ([`MIN_DYING_FOR_RATIO`]).
    pub min_dying_for_ratio: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            at_risk_ids_free: AT_RISK_IDS_FREE,
            leaking_ids_free: LEAKING_IDS_FREE,
            at_risk_dying_ratio: AT_RISK_DYING_RATIO,
            leaking_dying_ratio: LEAKING_DYING_RATIO,
            min_dying_for_ratio: MIN_DYING_FOR_RATIO,
        }
    }
}

/// What to diagnose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnoseOptions {
    /// Name of the pods cgroup directly below `--root` (`kubepods`).
    pub kubepods: String,
    /// Memcg ids in use (live and dying), counted with the systemtap probe (css_lookup over ids
    /// 1..65535): on 3.10 the kernel shows no other way to count dying memcgs.
    pub ids_used: Option<u64>,
    /// Look for a running kubelet (a repair needs it stopped).
    pub check_kubelet: bool,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions {
            kubepods: "kubepods".to_string(),
            ids_used: None,
            check_kubelet: true,
        }
    }
}

/// What the kernel is and can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// `uname -r`; empty when unreadable.
    pub release: String,
    /// `X.Y.Z` parsed from the release.
    pub version: Option<String>,
    pub era: Option<Era>,
    /// `cgroup.memory=nokmem` on the kernel command line.
    pub nokmem: bool,
    pub move_charge_supported: Option<bool>,
    pub move_charge_deprecated: Option<bool>,
    /// /proc/cgroups num_cgroups includes dying memcgs.
    pub counts_dying: Option<bool>,
    /// kmem accounting is activated per cgroup (3.10).
    pub kmem_per_cgroup: Option<bool>,
}

impl KernelFacts {
    pub fn from_release(release: &str, nokmem: bool) -> KernelFacts {
        let k = KernelInfo::from_release(release);
        KernelFacts {
            release: k.release.clone(),
            version: k.version.map(|v| v.to_string()),
            era: k.era,
            nokmem,
            move_charge_supported: k.move_charge_supported(),
            move_charge_deprecated: k.move_charge_deprecated(),
            counts_dying: k.counts_dying(),
            kmem_per_cgroup: k.kmem_per_cgroup(),
        }
    }
}

pub use crate::ids::IdsSource;

/// The memory hierarchy and its ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HierarchyFacts {
    /// Mount point of the whole memory hierarchy.
    pub mount: String,
    /// The `--root` directory.
    pub root: String,
    /// Directories in the whole hierarchy, root included (live memcgs).
    pub live: Option<u64>,
    /// num_cgroups of the `memory` row of /proc/cgroups.
    pub counted: Option<u64>,
    /// Deleted memcgs still holding their id.
    pub dying: Option<u64>,
    pub id_limit: u64,
    pub ids_used: Option<u64>,
    pub ids_free: Option<u64>,
    pub ids_source: IdsSource,
    /// cgroup v2: `nr_dying_descendants` of the root's cgroup.stat (filled by the caller).
    pub nr_dying_descendants: Option<u64>,
}

/// The pods cgroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubepodsFacts {
    pub found: bool,
    /// The cgroup looked at (`kubepods`, or `kubepods.slice` for the systemd driver).
    pub name: String,
    pub layout: Option<Layout>,
    /// Every cgroup of the pods tree, the pods cgroup itself included. Null if unreadable.
    pub cgroups: Option<u64>,
    pub qos: Option<u64>,
    pub pods: Option<u64>,
    pub containers: Option<u64>,
    pub other: Option<u64>,
    /// Processes (cgroup.procs entries) in the whole tree.
    pub tasks: Option<u64>,
    /// Whether kmem accounting is active under the pods cgroup.
    pub kmem_active: Option<bool>,
    /// Cgroups with kmem active (3.10 only: the only kernel that tells per cgroup).
    pub kmem_active_cgroups: Option<u64>,
    /// Cgroups whose memory.kmem.limit_in_bytes is not unlimited.
    pub kmem_limits_set: Option<u64>,
}

impl KubepodsFacts {
    fn missing(name: &str) -> KubepodsFacts {
        KubepodsFacts {
            found: false,
            name: name.to_string(),
            layout: Some(Layout::Missing),
            cgroups: Some(0),
            qos: Some(0),
            pods: Some(0),
            containers: Some(0),
            other: Some(0),
            tasks: Some(0),
            kmem_active: None,
            kmem_active_cgroups: None,
            kmem_limits_set: Some(0),
        }
    }

    fn unreadable(name: &str, found: bool) -> KubepodsFacts {
        KubepodsFacts {
            found,
            name: name.to_string(),
            layout: None,
            cgroups: None,
            qos: None,
            pods: None,
            containers: None,
            other: None,
            tasks: None,
            kmem_active: None,
            kmem_active_cgroups: None,
            kmem_limits_set: None,
        }
    }
}

/// The kubelet process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeletFacts {
    /// Null when not checked or when processes could not be listed.
    pub running: Option<bool>,
    pub pids: Vec<u32>,
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Healthy,
    AtRisk,
    Leaking,
    Unknown,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::AtRisk => "at-risk",
            Status::Leaking => "leaking",
            Status::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conclusion, with the facts that led to it and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub status: Status,
    pub reasons: Vec<String>,
    pub advice: Vec<String>,
}

impl Verdict {
    /// Process exit code: 0 healthy, 1 at-risk or leaking, 2 unknown.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Healthy => 0,
            Status::AtRisk | Status::Leaking => 1,
            Status::Unknown => 2,
        }
    }
}

/// Everything `cgleak diagnose` found: the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub kernel: KernelFacts,
    /// Null when it could not be determined.
    pub cgroup_mode: Option<CgroupMode>,
    /// Same as `kernel.nokmem`, at the top level on purpose (scripts grep for it).
    pub nokmem: bool,
    pub hierarchy: HierarchyFacts,
    pub kubepods: KubepodsFacts,
    pub kubelet: KubeletFacts,
    pub verdict: Verdict,
    pub thresholds: Thresholds,
    /// What could not be read, one line each.
    pub errors: Vec<String>,
}

impl Facts {
    /// Recompute the verdict with other thresholds.
    pub fn judge(&mut self, t: &Thresholds) {
        self.thresholds = *t;
        self.verdict = verdict(self, t);
    }
}

/// The ids part of the hierarchy facts (KERNEL-FACTS.md, "Kernel differences"): on kernels that
/// count dying memcgs in /proc/cgroups, ids used = num_cgroups and dying = num_cgroups - live;
/// on 3.10 num_cgroups is live only, so the count must come from `--ids-used` (systemtap).
/// Returns (dying, ids_used, ids_free, source, notes).
pub fn compute_ids(
    counts_dying: Option<bool>,
    id_limit: u64,
    live: Option<u64>,
    counted: Option<u64>,
    ids_used_opt: Option<u64>,
) -> (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    IdsSource,
    Vec<String>,
) {
    let (c, notes) = crate::ids::compute_with(counts_dying, id_limit, live, counted, ids_used_opt);
    (c.dying, c.ids_used, c.ids_free, c.ids_source, notes)
}

/// Facts about the pods cgroup from its snapshot. `kernel` decides what kmem_active means.
pub fn kubepods_facts(snap: &Snapshot, found: bool, kernel: &KernelFacts) -> KubepodsFacts {
    if !found {
        return KubepodsFacts::missing(&snap.kubepods);
    }
    let count = |k: Kind| Some(snap.count_kind(k) as u64);
    let kmem_limits_set = snap
        .cgroups
        .iter()
        .filter(|c| c.kmem_limit_in_bytes.is_some_and(|v| !is_unlimited(v)))
        .count() as u64;
    let (kmem_active, kmem_active_cgroups) = match kernel.era {
        // 3.10: per cgroup, as scan found it (slabinfo readable = active).
        Some(Era::Legacy) => {
            let known: Vec<bool> = snap.cgroups.iter().filter_map(|c| c.kmem_active).collect();
            let active = known.iter().filter(|&&a| a).count() as u64;
            let any_unknown = known.len() < snap.cgroups.len();
            let state = if active > 0 {
                Some(true)
            } else if !any_unknown && !known.is_empty() {
                Some(false)
            } else {
                None
            };
            (state, if known.is_empty() { None } else { Some(active) })
        }
        // 3.16+: every v1 memcg accounts kmem unless the boot parameter turned it off.
        Some(_) => (Some(!kernel.nokmem), None),
        None => (None, None),
    };
    KubepodsFacts {
        found: true,
        name: snap.kubepods.clone(),
        layout: Some(snap.layout),
        cgroups: Some(snap.cgroups.len() as u64),
        qos: count(Kind::Qos),
        pods: count(Kind::Pod),
        containers: count(Kind::Container),
        other: count(Kind::Other),
        tasks: Some(snap.task_count() as u64),
        kmem_active,
        kmem_active_cgroups,
        kmem_limits_set: Some(kmem_limits_set),
    }
}

/// Read everything a diagnosis needs. Read-only. Unreadable facts become null and a line in
/// `errors`; only a bad `--kubepods` name is an error.
pub fn gather(fs: &dyn Node, opts: &DiagnoseOptions) -> Result<Facts> {
    let name = opts.kubepods.as_str();
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "--kubepods {name:?}: give the name of a cgroup directly below --root"
        )));
    }
    let mut errors = Vec::new();
    let mut note = |what: &str, e: &Error| errors.push(format!("{what}: {e}"));

    let release = fs.kernel_release().unwrap_or_else(|e| {
        note("kernel release", &e);
        String::new()
    });
    let nokmem = match fs.kernel_cmdline() {
        Ok(c) => cmdline_nokmem(&c),
        Err(e) => {
            note("kernel command line", &e);
            false
        }
    };
    let kernel = KernelFacts::from_release(&release, nokmem);
    let cgroup_mode = fs.cgroup_mode().map_err(|e| note("cgroup mode", &e)).ok();
    let live = fs
        .hierarchy_live()
        .map_err(|e| note("live cgroups of the hierarchy", &e))
        .ok();
    let counted = match fs.proc_cgroups() {
        Ok(s) => {
            let row = host::parse_proc_cgroups_memory(&s);
            if row.is_none() {
                note("/proc/cgroups", &Error::Usage("no memory row".to_string()));
            }
            row.map(|(_, n, _)| n)
        }
        Err(e) => {
            note("/proc/cgroups", &e);
            None
        }
    };

    let found = fs.exists(&scan::locate(fs, name).0);
    let kubepods = match scan::scan(fs, name) {
        Ok(snap) => kubepods_facts(&snap, found, &kernel),
        Err(e) => {
            note("scan of the pods cgroup", &e);
            KubepodsFacts::unreadable(&scan::locate(fs, name).0, found)
        }
    };

    let kubelet = if opts.check_kubelet {
        match fs.find_processes("kubelet") {
            Ok(pids) => KubeletFacts {
                running: Some(!pids.is_empty()),
                pids,
            },
            Err(e) => {
                note("process list", &e);
                KubeletFacts {
                    running: None,
                    pids: vec![],
                }
            }
        }
    } else {
        KubeletFacts {
            running: None,
            pids: vec![],
        }
    };

    let id_limit = KernelInfo::from_release(&kernel.release).memcg_id_limit();
    let (dying, ids_used, ids_free, ids_source, notes) =
        compute_ids(kernel.counts_dying, id_limit, live, counted, opts.ids_used);
    errors.extend(notes);
    let hierarchy = HierarchyFacts {
        mount: fs.hierarchy_mount().display().to_string(),
        root: fs.root().display().to_string(),
        live,
        counted,
        dying,
        id_limit,
        ids_used,
        ids_free,
        ids_source,
        nr_dying_descendants: None,
    };
    Ok(finish(
        kernel,
        cgroup_mode,
        hierarchy,
        kubepods,
        kubelet,
        errors,
    ))
}

fn finish(
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
    };
    f.judge(&t);
    f
}

/// What the caller read on a cgroup v2 host (there is no v1 memory hierarchy to open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Inputs {
    /// The unified mount, usually /sys/fs/cgroup.
    pub root: PathBuf,
    /// `uname -r`.
    pub release: String,
    /// /proc/cmdline.
    pub cmdline: String,
    /// Live cgroups (directories) of the unified hierarchy, root included, when counted.
    pub live: Option<u64>,
    /// `nr_dying_descendants` from the root's cgroup.stat.
    pub nr_dying_descendants: Option<u64>,
    /// Kubelet pids, when looked for.
    pub kubelet_pids: Option<Vec<u32>>,
}

/// The report for a cgroup v2 host. Memcg ids are not counted there: a dying cgroup may or may
/// not hold a memcg, so ids stay null and the verdict works from `nr_dying_descendants`.
pub fn gather_v2(inp: &V2Inputs) -> Facts {
    let kernel = KernelFacts::from_release(&inp.release, cmdline_nokmem(&inp.cmdline));
    let root = inp.root.display().to_string();
    let hierarchy = HierarchyFacts {
        mount: root.clone(),
        root,
        live: inp.live,
        counted: None,
        dying: None,
        // cgroup v2 memcgs take their ids from the same allocator.
        id_limit: KernelInfo::from_release(&inp.release).memcg_id_limit(),
        ids_used: None,
        ids_free: None,
        ids_source: IdsSource::Unknown,
        nr_dying_descendants: inp.nr_dying_descendants,
    };
    let kubelet = match &inp.kubelet_pids {
        Some(p) => KubeletFacts {
            running: Some(!p.is_empty()),
            pids: p.clone(),
        },
        None => KubeletFacts {
            running: None,
            pids: vec![],
        },
    };
    // The v1 pods tree is not looked at on v2: its facts are unknown, not zero.
    let kubepods = KubepodsFacts::unreadable("kubepods", false);
    finish(
        kernel,
        Some(CgroupMode::V2),
        hierarchy,
        kubepods,
        kubelet,
        vec![],
    )
}

fn ratio(dying: u64, live: u64) -> f64 {
    dying as f64 / live.max(1) as f64
}

/// Decide. Pure: the same facts and thresholds always give the same verdict.
pub fn verdict(f: &Facts, t: &Thresholds) -> Verdict {
    let mut reasons: Vec<String> = Vec::new();
    let h = &f.hierarchy;
    let era = f.kernel.era;
    let legacy = era == Some(Era::Legacy);
    let v2 = f.cgroup_mode == Some(CgroupMode::V2);
    let kp = &f.kubepods;
    let legacy_kmem = legacy && kp.kmem_active == Some(true);

    // Facts first, so every verdict shows what it rests on.
    match era {
        None => reasons.push(format!(
            "kernel release {:?} not understood: cannot tell how it counts memcgs",
            f.kernel.release
        )),
        Some(Era::Legacy) if f.nokmem => reasons.push(
            "kernel booted with cgroup.memory=nokmem: kmem accounting cannot be activated"
                .to_string(),
        ),
        // 3.10: kmem is per cgroup, reported below from the pods tree.
        Some(Era::Legacy) => {}
        Some(_) if f.nokmem => reasons.push(
            "kernel booted with cgroup.memory=nokmem: memcgs do not account kernel memory"
                .to_string(),
        ),
        Some(_) if !v2 && kp.found => reasons.push(format!(
            "kernel {} accounts kernel memory for every v1 memcg (3.16 and later), so kmem is \
             active under {} whatever kubelet does",
            f.kernel.release, kp.name
        )),
        Some(_) => {}
    }
    if let (Some(used), Some(free)) = (h.ids_used, h.ids_free) {
        let src = match h.ids_source {
            IdsSource::ProcCgroups => "/proc/cgroups",
            IdsSource::Systemtap => "--ids-used",
            IdsSource::Unknown => "unknown source",
        };
        reasons.push(format!(
            "{} of {} memcg ids in use ({}), {} free",
            sep(used),
            sep(h.id_limit),
            src,
            sep(free)
        ));
    }
    if kp.layout == Some(crate::model::Layout::Systemd) {
        reasons.push(format!(
            "{} belongs to the systemd cgroup driver: systemd owns those cgroups, so cgleak \
             will not migrate them (cgleak repair refuses); on this node the repair is a drain \
             and a reboot",
            kp.name
        ));
    }
    if h.ids_source == IdsSource::ProcCgroups
        && KernelInfo::from_release(&f.kernel.release).ids_released_at_offline() == Some(true)
        && h.dying.unwrap_or(0) > 0
    {
        reasons.push(format!(
            "from 4.8 on a dying memcg keeps its id only while swapped-out pages reference it: \
             ids free is a lower bound ({} - counted)",
            h.id_limit
        ));
    }
    if let (Some(d), Some(l)) = (h.dying, h.live) {
        reasons.push(format!(
            "{} dying memcgs (deleted, still charged) for {} live ones",
            sep(d),
            sep(l)
        ));
    }
    if legacy && kp.found {
        match (kp.kmem_active, kp.kmem_active_cgroups) {
            (Some(true), n) => reasons.push(format!(
                "kmem accounting is active under {} ({} cgroups): on 3.10 every deleted \
                 container cgroup stays pinned by slab objects and keeps its id",
                kp.name,
                n.map(sep).unwrap_or_else(|| "some".to_string())
            )),
            (Some(false), _) => reasons.push(format!(
                "kmem accounting is not active under {}: deleted cgroups are not pinned by slab",
                kp.name
            )),
            (None, _) => reasons.push(format!(
                "cannot tell whether kmem accounting is active under {} \
                 (memory.kmem.slabinfo unreadable)",
                kp.name
            )),
        }
    }
    if legacy && !kp.found {
        reasons.push(format!("no pods cgroup {:?} below the root", kp.name));
    }
    if f.kubelet.running == Some(true) {
        reasons.push(format!(
            "kubelet is running (pid {})",
            join_pids(&f.kubelet.pids)
        ));
    }

    // The decision.
    let dying_high = |d: u64, l: u64, r: f64| d >= t.min_dying_for_ratio && ratio(d, l) >= r;
    let mut status;
    if v2 {
        status = Status::Unknown;
        if let Some(nd) = h.nr_dying_descendants {
            reasons.push(format!(
                "{} dying cgroups (nr_dying_descendants of the root)",
                sep(nd)
            ));
            // Each live or dying cgroup holds at most one memcg id: a safe upper bound.
            let bound = h.live.map(|l| l + nd);
            status = Status::Healthy;
            if let Some(b) = bound {
                let free_min = h.id_limit.saturating_sub(b);
                if free_min <= t.at_risk_ids_free {
                    reasons.push(format!(
                        "live and dying cgroups together could hold {} of {} memcg ids",
                        sep(b),
                        sep(h.id_limit)
                    ));
                    status = Status::AtRisk;
                }
            }
            match h.live {
                Some(l) if dying_high(nd, l, t.at_risk_dying_ratio) => {
                    reasons.push(format!(
                        "{:.1} dying cgroups per live one: they accumulate",
                        ratio(nd, l)
                    ));
                    status = Status::AtRisk;
                }
                Some(_) => {}
                // Without the live count neither the ratio nor the id bound is known.
                None => {
                    reasons
                        .push("live cgroups not counted: cannot weigh the dying ones".to_string());
                    status = Status::Unknown;
                }
            }
        } else {
            reasons.push("nr_dying_descendants unknown on this cgroup v2 host".to_string());
        }
    } else if h.live.is_none() && h.ids_free.is_none() {
        reasons.push("the memory hierarchy could not be read".to_string());
        status = Status::Unknown;
    } else {
        status = Status::Unknown;
        if let Some(free) = h.ids_free {
            status = if free <= t.leaking_ids_free {
                reasons.push(format!(
                    "{} or fewer ids free: kubelet's mkdir fails or is about to (ENOSPC)",
                    sep(t.leaking_ids_free)
                ));
                Status::Leaking
            } else if free <= t.at_risk_ids_free {
                reasons.push(format!(
                    "{} or fewer ids free: pods will stop starting when they run out",
                    sep(t.at_risk_ids_free)
                ));
                Status::AtRisk
            } else {
                Status::Healthy
            };
        }
        if let (Some(d), Some(l)) = (h.dying, h.live) {
            if legacy_kmem && dying_high(d, l, t.leaking_dying_ratio) {
                reasons.push(format!(
                    "{:.1} dying memcgs per live one with kmem active: the 3.10 leak",
                    ratio(d, l)
                ));
                status = worst(status, Status::Leaking);
            } else if dying_high(d, l, t.at_risk_dying_ratio) {
                reasons.push(format!(
                    "{:.1} dying memcgs per live one: they accumulate",
                    ratio(d, l)
                ));
                status = worst(status, Status::AtRisk);
            }
        }
        if legacy_kmem {
            // The trigger is there: each container deletion leaks an id from now on.
            status = worst(status, Status::AtRisk);
            if h.dying.is_none() {
                reasons.push(
                    "on 3.10 dying memcgs are invisible from userspace: the leak is happening \
                     but cannot be counted without --ids-used"
                        .to_string(),
                );
            }
        } else if legacy && h.ids_used.is_none() && status == Status::Unknown {
            reasons.push(
                "on 3.10 /proc/cgroups counts live memcgs only: ids in use are unknown without \
                 --ids-used"
                    .to_string(),
            );
        }
    }
    let advice = advise(f, status);
    Verdict {
        status,
        reasons,
        advice,
    }
}

/// The more serious of two statuses (unknown is the least informative, not the most serious).
fn worst(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::Unknown => 0,
        Status::Healthy => 1,
        Status::AtRisk => 2,
        Status::Leaking => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

const STAP_HINT: &str = "count the memcg ids in use with the systemtap probe (css_lookup over \
     ids 1..65535, see the seed article) and pass it as --ids-used N, or pipe it in: stap -g scripts/memcg-ids.stp | cgleak diagnose --ids-used -";

fn advise(f: &Facts, status: Status) -> Vec<String> {
    let mut a = Vec::new();
    let kp = &f.kubepods;
    let legacy = f.kernel.era == Some(Era::Legacy);
    let v2 = f.cgroup_mode == Some(CgroupMode::V2);
    let kubelet_running = f.kubelet.running == Some(true);
    if status == Status::Healthy {
        if legacy && kp.kmem_active == Some(false) && !f.nokmem {
            a.push(
                "keep kmem accounting off: kubelet built with the nokmem tag (1.14+) and runc \
                 >= 1.0.0-rc94, or boot with cgroup.memory=nokmem"
                    .to_string(),
            );
        }
        return a;
    }
    if status == Status::Unknown {
        if f.hierarchy.live.is_none() && !v2 {
            a.push(
                "run as root and pass --root with the memory cgroup v1 directory \
                 (usually /sys/fs/cgroup/memory)"
                    .to_string(),
            );
        }
        if legacy {
            if kp.kmem_active.is_none() && kp.found {
                a.push(format!(
                    "check kmem accounting: cat {}/{}/memory.kmem.slabinfo (Input/output error \
                     means not active)",
                    f.hierarchy.root, kp.name
                ));
            }
            a.push(STAP_HINT.to_string());
        }
        if v2 {
            a.push(
                "read nr_dying_descendants from /sys/fs/cgroup/cgroup.stat and count the live \
                 cgroups"
                    .to_string(),
            );
        }
        return a;
    }
    // at-risk or leaking
    if v2 {
        a.push(
            "cgleak reclaim: drops clean page cache so dying cgroups can be freed (costs cold \
             caches: reads go to disk for a while)"
                .to_string(),
        );
        if !f.nokmem {
            a.push(
                "boot with cgroup.memory=nokmem so slab objects stop pinning deleted cgroups, \
                 or reboot the node in a maintenance window"
                    .to_string(),
            );
        }
        return a;
    }
    if legacy && kp.kmem_active == Some(true) {
        if f.nokmem {
            a.push(
                "kmem is active although cgroup.memory=nokmem is set: check that this kernel \
                 honours it (RHEL >= 3.10.0-1062)"
                    .to_string(),
            );
        } else {
            a.push(
                "stop kmem accounting from being enabled: kubelet built with the nokmem tag \
                 (1.14+) and runc >= 1.0.0-rc94, or boot with cgroup.memory=nokmem \
                 (RHEL >= 3.10.0-1062)"
                    .to_string(),
            );
        }
        let need = kp
            .cgroups
            .map(|n| {
                format!(
                    " It needs {} free ids (one per cgroup of {}).",
                    sep(n),
                    kp.name
                )
            })
            .unwrap_or_default();
        a.push(format!(
            "then, in a maintenance window with kubelet stopped, run `cgleak plan` and \
             `cgleak repair`: the migration recreates the pods cgroups without kmem \
             accounting, so deletions stop leaking.{need}"
        ));
        if let (Some(free), Some(n)) = (f.hierarchy.ids_free, kp.cgroups) {
            if free < n {
                a.push(format!(
                    "only {} ids are free, fewer than the {} the migration needs: reboot the \
                     node instead",
                    sep(free),
                    sep(n)
                ));
            }
        }
        a.push(
            "ids already leaked come back only when their charges go (`cgleak reclaim` frees \
             page cache) or on reboot"
                .to_string(),
        );
        if f.hierarchy.dying.is_none() {
            a.push(STAP_HINT.to_string());
        }
        if kubelet_running {
            a.push(
                "kubelet is running: stop it (systemctl stop kubelet) before `cgleak repair`, \
                 and restart cAdvisor after"
                    .to_string(),
            );
        }
        return a;
    }
    if legacy {
        // Ids are short but nothing under the pods cgroup activates kmem now.
        a.push(
            "cgleak reclaim: drops clean page cache that keeps dying memcgs (costs cold caches)"
                .to_string(),
        );
        a.push(
            "ids pinned by slab objects come back only on reboot: plan one if reclaim does not \
             free enough"
                .to_string(),
        );
        return a;
    }
    // 3.16 and later (or an unknown kernel that still counts ids).
    a.push(
        "a migration (`cgleak repair`) does NOT help on this kernel: every memcg accounts \
         kernel memory anyway"
            .to_string(),
    );
    a.push(
        "cgleak reclaim: drops clean page cache that pins dying memcgs so the kernel frees them \
         (costs cold caches: reads go to disk for a while)"
            .to_string(),
    );
    if KernelInfo::from_release(&f.kernel.release).ids_released_at_offline() == Some(true) {
        // Seen in the kernel lab on 5.10 and 6.1: page cache does not hold ids; swap does.
        a.push(
            "from 4.8 on only dying memcgs with swapped-out pages keep their ids: if mkdir \
             fails, `cgleak reclaim --swap-cycle` gives them back (swapoff and swapon, area by \
             area, in a quiet window: needs memory for the swap in use), or a reboot"
                .to_string(),
        );
    }
    if !f.nokmem {
        a.push(
            "boot with cgroup.memory=nokmem so slab objects stop pinning deleted memcgs \
             (a reboot also frees every leaked id)"
                .to_string(),
        );
    } else {
        a.push("a reboot frees every leaked id".to_string());
    }
    if f.kernel.era == Some(Era::NoMoveCharge) {
        a.push(
            "on >= 6.13 charges cannot move between memcgs at all (move_charge_at_immigrate \
             is gone): only freeing the memory releases a dying memcg"
                .to_string(),
        );
    }
    a
}

/// `12345` -> `12,345`.
pub fn sep(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn join_pids(p: &[u32]) -> String {
    p.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt_n(v: Option<u64>) -> String {
    v.map(sep).unwrap_or_else(|| "unknown".to_string())
}

fn opt_b(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// Wrap `text` to lines shorter than 100 characters; the first line starts with `first`, the
/// rest with `rest` (same width).
fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    const WIDTH: usize = 96;
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

fn row(out: &mut String, label: &str, value: &str) {
    wrap(out, &format!("  {label:<18}"), &" ".repeat(20), value);
}

/// The report for a terminal.
pub fn render_text(f: &Facts) -> String {
    let mut o = String::new();
    let k = &f.kernel;
    o.push_str("Kernel\n");
    let era = KernelInfo::from_release(&k.release).era_name();
    let release = if k.release.is_empty() {
        "unknown"
    } else {
        &k.release
    };
    row(&mut o, "release", release);
    row(&mut o, "era", era);
    row(
        &mut o,
        "cgroup mode",
        &f.cgroup_mode
            .map(|m| m.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    row(
        &mut o,
        "nokmem",
        if f.nokmem {
            "yes (cgroup.memory=nokmem)"
        } else {
            "no"
        },
    );
    let mc = match (k.move_charge_supported, k.move_charge_deprecated) {
        (Some(false), _) => "not supported (>= 6.13)",
        (Some(true), Some(true)) => "supported, deprecated",
        (Some(true), _) => "supported",
        (None, _) => "unknown",
    };
    row(&mut o, "charge moving", mc);

    let h = &f.hierarchy;
    o.push_str("\nMemory cgroup ids\n");
    row(&mut o, "mount", &h.mount);
    if h.root != h.mount {
        row(&mut o, "root", &h.root);
    }
    row(&mut o, "live", &opt_n(h.live));
    if f.cgroup_mode != Some(CgroupMode::V2) {
        row(&mut o, "counted", &opt_n(h.counted));
        row(&mut o, "dying", &opt_n(h.dying));
        let src = match h.ids_source {
            IdsSource::ProcCgroups => "from /proc/cgroups",
            IdsSource::Systemtap => "from --ids-used",
            IdsSource::Unknown => "not countable here",
        };
        let used = match h.ids_used {
            Some(u) => format!("{} of {} ({src})", sep(u), sep(h.id_limit)),
            None => format!("unknown ({src})"),
        };
        row(&mut o, "ids used", &used);
        row(&mut o, "ids free", &opt_n(h.ids_free));
    }
    if h.nr_dying_descendants.is_some() || f.cgroup_mode == Some(CgroupMode::V2) {
        row(&mut o, "dying (v2)", &opt_n(h.nr_dying_descendants));
    }

    let p = &f.kubepods;
    if f.cgroup_mode != Some(CgroupMode::V2) {
        let _ = writeln!(o, "\nPods cgroup ({})", p.name);
        if !p.found {
            row(&mut o, "found", "no");
        } else {
            row(
                &mut o,
                "layout",
                &p.layout
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "unknown".into()),
            );
            row(
                &mut o,
                "cgroups",
                &format!(
                    "{} (qos {}, pods {}, containers {}, other {})",
                    opt_n(p.cgroups),
                    opt_n(p.qos),
                    opt_n(p.pods),
                    opt_n(p.containers),
                    opt_n(p.other)
                ),
            );
            row(&mut o, "tasks", &opt_n(p.tasks));
            let kmem = match (p.kmem_active, p.kmem_active_cgroups) {
                (Some(a), Some(n)) => format!("{} ({} cgroups)", opt_b(Some(a)), sep(n)),
                (a, _) => opt_b(a).to_string(),
            };
            row(&mut o, "kmem active", &kmem);
            row(&mut o, "kmem limits set", &opt_n(p.kmem_limits_set));
        }
    }

    o.push_str("\nkubelet\n");
    let kl = match f.kubelet.running {
        Some(true) => format!("yes (pid {})", join_pids(&f.kubelet.pids)),
        Some(false) => "no".to_string(),
        None => "not checked".to_string(),
    };
    row(&mut o, "running", &kl);

    if !f.errors.is_empty() {
        o.push_str("\nNotes\n");
        for e in &f.errors {
            wrap(&mut o, "  - ", "    ", e);
        }
    }

    let v = &f.verdict;
    let _ = writeln!(o, "\nVERDICT: {}", v.status.as_str().to_uppercase());
    for r in &v.reasons {
        wrap(&mut o, "  - ", "    ", r);
    }
    if !v.advice.is_empty() {
        o.push_str("\nAdvice\n");
        for (i, a) in v.advice.iter().enumerate() {
            wrap(&mut o, &format!("  {}. ", i + 1), "     ", a);
        }
    }
    o
}

/// The report as pretty JSON (the key contract of [`Facts`]).
pub fn render_json(f: &Facts) -> String {
    // A trailing newline: scripts read the output line by line (the kernel lab's guests glued
    // their next line onto the closing brace without it).
    serde_json::to_string_pretty(f).expect("Facts always serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FsOp, SysError};
    use crate::host::{Hierarchy, Host};
    use nix::errno::Errno;
    use std::collections::BTreeMap;
    use std::path::Path;

    const R310: &str = "3.10.0-1160.el7.x86_64";
    const R510: &str = "5.10.0-30-cloud-amd64";
    const R618: &str = "6.18.44-fc-v782";
    const UNL: &str = "9223372036854771712";

    /// A memory hierarchy in memory: cgroup path -> control files. A file holding `!EIO` reads
    /// with EIO (3.10's memory.kmem.slabinfo without kmem). Every change panics: diagnose is
    /// read-only.
    struct FakeFs {
        root: PathBuf,
        dirs: BTreeMap<String, BTreeMap<String, String>>,
        release: String,
        cmdline: String,
        proc_cgroups: Option<String>,
        /// Live cgroups elsewhere in the hierarchy (system.slice ...), beyond `dirs`.
        extra_live: u64,
        live_readable: bool,
        kubelet: Vec<u32>,
    }

    fn sys(op: FsOp, path: &Path, errno: Errno) -> Error {
        Error::Sys(SysError::new(op, path, errno))
    }

    impl FakeFs {
        fn new(release: &str) -> FakeFs {
            let mut fs = FakeFs {
                root: PathBuf::from("/sys/fs/cgroup/memory"),
                dirs: BTreeMap::new(),
                release: release.to_string(),
                cmdline: "ro quiet".to_string(),
                proc_cgroups: None,
                extra_live: 0,
                live_readable: true,
                kubelet: vec![],
            };
            fs.add("", &[], false);
            fs
        }

        /// Add a cgroup with the files a v1 memcg has; `kmem` makes slabinfo readable.
        fn add(&mut self, cg: &str, pids: &[u32], kmem: bool) {
            let mut f = BTreeMap::new();
            for (k, v) in [
                (host::knob::LIMIT, UNL),
                (host::knob::SOFT_LIMIT, UNL),
                (host::knob::SWAPPINESS, "60"),
                (host::knob::OOM_CONTROL, "oom_kill_disable 0\nunder_oom 0\n"),
                (host::knob::USE_HIERARCHY, "1"),
                (host::knob::MOVE_CHARGE, "0"),
                (host::knob::KMEM_LIMIT, UNL),
                (host::knob::USAGE, "4096"),
            ] {
                f.insert(k.to_string(), v.to_string());
            }
            let procs: Vec<String> = pids.iter().map(|p| format!("{p}\n")).collect();
            f.insert(host::knob::PROCS.to_string(), procs.concat());
            let slab = if kmem {
                "slabinfo - version: 2.1\n"
            } else {
                "!EIO"
            };
            f.insert(host::knob::KMEM_SLABINFO.to_string(), slab.to_string());
            self.dirs.insert(cg.to_string(), f);
        }

        fn set(&mut self, cg: &str, file: &str, v: &str) {
            self.dirs
                .get_mut(cg)
                .unwrap()
                .insert(file.to_string(), v.to_string());
        }

        fn counted(&mut self, n: u64) {
            self.proc_cgroups = Some(format!(
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t9\t1\nmemory\t4\t{n}\t1\n"
            ));
        }
    }

    impl Hierarchy for FakeFs {
        fn root(&self) -> &Path {
            &self.root
        }
        fn describe(&self) -> String {
            "fake".into()
        }
        fn exists(&self, cg: &str) -> bool {
            self.dirs.contains_key(cg)
        }
        fn children(&self, cg: &str) -> Result<Vec<String>> {
            if !self.exists(cg) {
                return Err(sys(FsOp::List, &self.root.join(cg), Errno::ENOENT));
            }
            Ok(self
                .dirs
                .keys()
                .filter(|k| !k.is_empty() && host::parent(k) == cg)
                .map(|k| host::base_name(k).to_string())
                .collect())
        }
        fn has_file(&self, cg: &str, file: &str) -> bool {
            self.dirs.get(cg).is_some_and(|d| d.contains_key(file))
        }
        fn read(&self, cg: &str, file: &str) -> Result<String> {
            let path = self.root.join(cg).join(file);
            match self.dirs.get(cg).and_then(|d| d.get(file)) {
                Some(v) if v == "!EIO" => Err(sys(FsOp::Read, &path, Errno::EIO)),
                Some(v) => Ok(v.clone()),
                None => Err(sys(FsOp::Read, &path, Errno::ENOENT)),
            }
        }
        fn write(&self, cg: &str, file: &str, _: &str) -> Result<()> {
            panic!("diagnose wrote {cg}/{file}")
        }
        fn mkdir(&self, cg: &str) -> Result<()> {
            panic!("diagnose made {cg}")
        }
        fn rmdir(&self, cg: &str) -> Result<()> {
            panic!("diagnose removed {cg}")
        }
        fn rename(&self, from: &str, _: &str) -> Result<()> {
            panic!("diagnose renamed {from}")
        }
        fn hierarchy_mount(&self) -> PathBuf {
            self.root.clone()
        }
        fn hierarchy_live(&self) -> Result<u64> {
            if !self.live_readable {
                return Err(sys(FsOp::List, &self.root, Errno::EACCES));
            }
            Ok(self.dirs.len() as u64 + self.extra_live)
        }
    }

    impl Host for FakeFs {
        fn kernel_release(&self) -> Result<String> {
            Ok(format!("{}\n", self.release))
        }
        fn proc_cgroups(&self) -> Result<String> {
            self.proc_cgroups
                .clone()
                .ok_or_else(|| sys(FsOp::Read, Path::new("/proc/cgroups"), Errno::ENOENT))
        }
        fn kernel_cmdline(&self) -> Result<String> {
            Ok(self.cmdline.clone())
        }
        fn boot_id(&self) -> Result<String> {
            Ok("b".into())
        }
        fn cgroup_mode(&self) -> Result<CgroupMode> {
            Ok(CgroupMode::V1)
        }
        fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
            Ok(if comm == "kubelet" {
                self.kubelet.clone()
            } else {
                vec![]
            })
        }
        fn pid_alive(&self, _: u32) -> bool {
            true
        }
        fn drop_caches(&self, _: u8) -> Result<()> {
            panic!("diagnose dropped caches")
        }
        fn may_write(&self) -> bool {
            false
        }
        fn proc_swaps(&self) -> Result<String> {
            Ok("Filename\tType\tSize\tUsed\tPriority\n".into())
        }
        fn meminfo(&self) -> Result<String> {
            Ok("MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n".into())
        }
        fn swapoff(&self, p: &Path) -> Result<()> {
            panic!("diagnose must not swapoff {}", p.display())
        }
        fn swapon(&self, p: &Path, _: Option<i32>) -> Result<()> {
            panic!("diagnose must not swapon {}", p.display())
        }
    }

    /// A qos-layout pods tree: 11 cgroups: kubepods, burstable, besteffort, 3 pods,
    /// 5 containers (pause and app in two pods, pause only in the third); 6 processes.
    fn qos_tree(fs: &mut FakeFs, kmem: bool) {
        fs.add("kubepods", &[], kmem);
        fs.add("kubepods/burstable", &[], kmem);
        fs.add("kubepods/besteffort", &[], kmem);
        fs.add("kubepods/burstable/poda", &[], kmem);
        fs.add("kubepods/burstable/poda/pause", &[10], kmem);
        fs.add("kubepods/burstable/poda/app", &[11, 12], kmem);
        fs.add("kubepods/burstable/podb", &[], kmem);
        fs.add("kubepods/burstable/podb/pause", &[20], kmem);
        fs.add("kubepods/burstable/podb/app", &[21], kmem);
        fs.add("kubepods/besteffort/podc", &[], kmem);
        fs.add("kubepods/besteffort/podc/pause", &[30], kmem);
    }

    /// A flat-layout pods tree: 2 pods, 3 containers, one stray directory (7 cgroups).
    fn flat_tree(fs: &mut FakeFs) {
        fs.add("kubepods", &[], false);
        fs.add("kubepods/pod1", &[], false);
        fs.add("kubepods/pod1/pause", &[100], false);
        fs.add("kubepods/pod1/web", &[101, 102, 103], false);
        fs.add("kubepods/pod2", &[], false);
        fs.add("kubepods/pod2/pause", &[200], false);
        fs.add("kubepods/stray", &[300], false);
    }

    fn opts(ids_used: Option<u64>) -> DiagnoseOptions {
        DiagnoseOptions {
            kubepods: "kubepods".into(),
            ids_used,
            check_kubelet: true,
        }
    }

    // ---- gather on the fake fs ----

    #[test]
    fn gather_qos_layout_on_310_counts_the_tree_and_sees_kmem() {
        let mut fs = FakeFs::new(R310);
        qos_tree(&mut fs, false);
        // kubelet activated kmem in one pod and its children (inherited).
        fs.set("kubepods/burstable/podb", host::knob::KMEM_SLABINFO, "slab");
        fs.set(
            "kubepods/burstable/podb/app",
            host::knob::KMEM_SLABINFO,
            "slab",
        );
        fs.set(
            "kubepods/burstable/podb/pause",
            host::knob::KMEM_SLABINFO,
            "slab",
        );
        fs.set(
            "kubepods/burstable/podb/app",
            host::knob::KMEM_LIMIT,
            "1048576",
        );
        fs.extra_live = 89;
        fs.counted(100); // 3.10 counts live only
        fs.kubelet = vec![4242];
        let f = gather(&fs, &opts(None)).unwrap();
        let k = &f.kubepods;
        assert!(k.found);
        assert_eq!(k.name, "kubepods");
        assert_eq!(k.layout, Some(Layout::Qos));
        assert_eq!(k.cgroups, Some(11));
        assert_eq!(k.qos, Some(2));
        assert_eq!(k.pods, Some(3));
        assert_eq!(k.containers, Some(5));
        assert_eq!(k.other, Some(0));
        assert_eq!(k.tasks, Some(6));
        assert_eq!(k.kmem_active, Some(true));
        assert_eq!(k.kmem_active_cgroups, Some(3));
        assert_eq!(k.kmem_limits_set, Some(1));
        assert_eq!(f.hierarchy.live, Some(101)); // root + 11 + 89 others
        assert_eq!(f.hierarchy.counted, Some(100));
        assert_eq!(f.hierarchy.dying, None);
        assert_eq!(f.hierarchy.ids_source, IdsSource::Unknown);
        assert_eq!(f.kernel.era, Some(Era::Legacy));
        assert_eq!(f.kubelet.running, Some(true));
        assert_eq!(f.kubelet.pids, vec![4242]);
        assert_eq!(f.verdict.status, Status::AtRisk);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
    }

    #[test]
    fn gather_310_with_ids_used_and_no_kmem() {
        let mut fs = FakeFs::new(R310);
        qos_tree(&mut fs, false);
        fs.counted(12);
        let f = gather(&fs, &opts(Some(3_012))).unwrap();
        assert_eq!(f.kubepods.kmem_active, Some(false));
        assert_eq!(f.kubepods.kmem_active_cgroups, Some(0));
        assert_eq!(f.hierarchy.live, Some(12));
        assert_eq!(f.hierarchy.dying, Some(3_000));
        assert_eq!(f.hierarchy.ids_used, Some(3_012));
        assert_eq!(f.hierarchy.ids_free, Some(62_523));
        assert_eq!(f.hierarchy.ids_source, IdsSource::Systemtap);
        // 3,000 dying for 12 live is accumulating, though kmem is off now.
        assert_eq!(f.verdict.status, Status::AtRisk);
    }

    #[test]
    fn gather_flat_layout_on_modern_kernel() {
        let mut fs = FakeFs::new(R510);
        flat_tree(&mut fs);
        fs.extra_live = 30;
        fs.counted(120); // live 38 + 82 dying
        let f = gather(
            &fs,
            &DiagnoseOptions {
                check_kubelet: false,
                ..opts(None)
            },
        )
        .unwrap();
        let k = &f.kubepods;
        assert_eq!(k.layout, Some(Layout::Flat));
        assert_eq!(k.cgroups, Some(7));
        assert_eq!(k.qos, Some(0));
        assert_eq!(k.pods, Some(2));
        assert_eq!(k.containers, Some(3));
        assert_eq!(k.other, Some(1));
        assert_eq!(k.tasks, Some(6));
        // Every v1 memcg accounts kmem from 3.16 on; no per-cgroup answer.
        assert_eq!(k.kmem_active, Some(true));
        assert_eq!(k.kmem_active_cgroups, None);
        assert_eq!(f.hierarchy.live, Some(38));
        assert_eq!(f.hierarchy.dying, Some(82));
        assert_eq!(f.hierarchy.ids_used, Some(120));
        assert_eq!(f.hierarchy.ids_source, IdsSource::ProcCgroups);
        assert_eq!(f.kubelet.running, None);
        assert_eq!(f.verdict.status, Status::Healthy);
        assert!(f
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("every v1 memcg")));
    }

    #[test]
    fn gather_modern_nokmem_and_missing_pods() {
        let mut fs = FakeFs::new(R618);
        fs.cmdline = "ro cgroup.memory=nokmem".into();
        fs.counted(1);
        let f = gather(&fs, &opts(None)).unwrap();
        assert!(f.nokmem && f.kernel.nokmem);
        assert!(!f.kubepods.found);
        assert_eq!(f.kubepods.kmem_active, None);
        assert_eq!(f.kubepods.cgroups, Some(0));
        assert_eq!(f.kubelet.running, Some(false));
        assert_eq!(f.verdict.status, Status::Healthy);

        flat_tree(&mut fs);
        let f = gather(&fs, &opts(None)).unwrap();
        assert_eq!(f.kubepods.kmem_active, Some(false));
    }

    #[test]
    fn gather_unreadable_hierarchy_is_unknown() {
        let mut fs = FakeFs::new(R510);
        fs.live_readable = false;
        let f = gather(&fs, &opts(None)).unwrap();
        assert_eq!(f.hierarchy.live, None);
        assert_eq!(f.hierarchy.counted, None);
        assert_eq!(f.verdict.status, Status::Unknown);
        assert_eq!(f.verdict.exit_code(), 2);
        assert_eq!(f.errors.len(), 2, "{:?}", f.errors);
    }

    #[test]
    fn gather_rejects_a_path_as_pods_name() {
        let fs = FakeFs::new(R510);
        let o = DiagnoseOptions {
            kubepods: "a/b".into(),
            ..opts(None)
        };
        assert_eq!(gather(&fs, &o).unwrap_err().exit_code(), 2);
    }

    // ---- ids and dying ----

    #[test]
    fn dying_on_310_needs_ids_used() {
        let (d, u, free, src, notes) =
            compute_ids(Some(false), ID_LIMIT, Some(2_000), Some(2_000), None);
        assert_eq!((d, u, free, src), (None, None, None, IdsSource::Unknown));
        assert!(notes.is_empty());
        let (d, u, free, src, _) = compute_ids(
            Some(false),
            ID_LIMIT,
            Some(2_000),
            Some(2_000),
            Some(50_000),
        );
        assert_eq!(d, Some(48_000));
        assert_eq!(u, Some(50_000));
        assert_eq!(free, Some(15_535));
        assert_eq!(src, IdsSource::Systemtap);
    }

    #[test]
    fn counted_below_live_saturates() {
        let (d, u, free, src, _) = compute_ids(Some(true), ID_LIMIT, Some(50), Some(48), None);
        assert_eq!(d, Some(0));
        assert_eq!(u, Some(48));
        assert_eq!(free, Some(65_487));
        assert_eq!(src, IdsSource::ProcCgroups);
        // --ids-used above the limit: free saturates at 0.
        let (_, _, free, _, _) = compute_ids(Some(false), ID_LIMIT, Some(10), None, Some(70_000));
        assert_eq!(free, Some(0));
    }

    #[test]
    fn modern_kernel_count_wins_over_ids_used() {
        let (d, u, _, src, notes) = compute_ids(Some(true), ID_LIMIT, Some(7), Some(45), Some(50));
        assert_eq!((d, u, src), (Some(38), Some(45), IdsSource::ProcCgroups));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("differs"), "{notes:?}");
        // Unknown kernel: only --ids-used counts.
        let (d, u, _, src, _) = compute_ids(None, ID_LIMIT, Some(7), Some(45), Some(50));
        assert_eq!((d, u, src), (Some(43), Some(50), IdsSource::Systemtap));
    }

    // ---- verdict matrix ----

    fn pods(cgroups: u64, kmem: Option<bool>, kmem_n: Option<u64>) -> KubepodsFacts {
        KubepodsFacts {
            found: true,
            name: "kubepods".into(),
            layout: Some(Layout::Qos),
            cgroups: Some(cgroups),
            qos: Some(2),
            pods: Some(cgroups / 3),
            containers: Some(cgroups / 2),
            other: Some(0),
            tasks: Some(cgroups),
            kmem_active: kmem,
            kmem_active_cgroups: kmem_n,
            kmem_limits_set: Some(0),
        }
    }

    /// Facts as gather would make them, from the numbers alone.
    fn mk(
        release: &str,
        live: Option<u64>,
        counted: Option<u64>,
        ids_used: Option<u64>,
        kp: KubepodsFacts,
        kubelet: Option<bool>,
    ) -> Facts {
        let kernel = KernelFacts::from_release(release, false);
        let id_limit = KernelInfo::from_release(release).memcg_id_limit();
        let (dying, ids_used, ids_free, ids_source, notes) =
            compute_ids(kernel.counts_dying, id_limit, live, counted, ids_used);
        let hierarchy = HierarchyFacts {
            mount: "/sys/fs/cgroup/memory".into(),
            root: "/sys/fs/cgroup/memory".into(),
            live,
            counted,
            dying,
            id_limit,
            ids_used,
            ids_free,
            ids_source,
            nr_dying_descendants: None,
        };
        let kubelet = KubeletFacts {
            running: kubelet,
            pids: if kubelet == Some(true) {
                vec![77]
            } else {
                vec![]
            },
        };
        finish(kernel, Some(CgroupMode::V1), hierarchy, kp, kubelet, notes)
    }

    fn advice(f: &Facts) -> String {
        f.verdict.advice.join("\n")
    }

    fn kmem_on() -> KubepodsFacts {
        pods(900, Some(true), Some(900))
    }

    fn kmem_off() -> KubepodsFacts {
        pods(600, Some(false), Some(0))
    }

    #[test]
    fn legacy_healthy() {
        let f = mk(
            R310,
            Some(4_800),
            Some(4_800),
            Some(5_000),
            kmem_off(),
            Some(false),
        );
        assert_eq!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
        assert_eq!(f.verdict.exit_code(), 0);
        assert!(advice(&f).contains("nokmem"));
    }

    #[test]
    fn legacy_at_risk_kmem_active_uncounted() {
        let f = mk(R310, Some(4_800), Some(4_800), None, kmem_on(), None);
        assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
        assert_eq!(f.verdict.exit_code(), 1);
        let a = advice(&f);
        assert!(a.contains("--ids-used") && a.contains("systemtap"), "{a}");
        assert!(a.contains("cgleak repair") && a.contains("nokmem"), "{a}");
        assert!(a.contains("900 free ids"), "{a}");
        assert!(f
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("cannot be counted")));
    }

    #[test]
    fn legacy_at_risk_few_ids_free_without_kmem() {
        // 57,535 used, 8,000 free, fewer than 2 dying per live: at-risk by ids alone.
        let f = mk(R310, Some(40_000), None, Some(57_535), kmem_off(), None);
        assert_eq!(f.hierarchy.ids_free, Some(8_000));
        assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
        let a = advice(&f);
        assert!(a.contains("cgleak reclaim") && a.contains("reboot"), "{a}");
    }

    #[test]
    fn legacy_leaking_kmem_active_and_many_dying() {
        // 28,000 dying for 2,000 live (14x) with kmem on: leaking though 35,535 ids are free.
        let f = mk(
            R310,
            Some(2_000),
            Some(2_000),
            Some(30_000),
            kmem_on(),
            Some(true),
        );
        assert_eq!(f.hierarchy.dying, Some(28_000));
        assert_eq!(f.hierarchy.ids_free, Some(35_535));
        assert_eq!(f.verdict.status, Status::Leaking, "{:?}", f.verdict);
        let a = advice(&f);
        assert!(
            a.contains("cgleak plan") && a.contains("cgleak repair"),
            "{a}"
        );
        assert!(a.contains("1.0.0-rc94") && a.contains("3.10.0-1062"), "{a}");
        assert!(
            a.contains("stop it"),
            "kubelet running must be mentioned: {a}"
        );
        assert!(!a.contains("systemtap"), "{a}");
    }

    #[test]
    fn legacy_leaking_by_ids_and_too_few_for_migration() {
        let f = mk(R310, Some(5_000), None, Some(65_300), kmem_on(), None);
        assert_eq!(f.hierarchy.ids_free, Some(235));
        assert_eq!(f.verdict.status, Status::Leaking);
        assert!(
            advice(&f).contains("reboot the node instead"),
            "{}",
            advice(&f)
        );
    }

    #[test]
    fn legacy_kmem_active_few_dying_is_at_risk_not_leaking() {
        let f = mk(R310, Some(2_000), None, Some(2_300), kmem_on(), None);
        assert_eq!(f.verdict.status, Status::AtRisk);
        // 4,000 dying for 2,000 live: accumulating, but under the leaking ratio.
        let f = mk(R310, Some(2_000), None, Some(6_000), kmem_on(), None);
        assert_eq!(f.verdict.status, Status::AtRisk);
    }

    #[test]
    fn legacy_unknown() {
        // kmem state unreadable, no --ids-used.
        let f = mk(
            R310,
            Some(3_000),
            Some(3_000),
            None,
            pods(600, None, None),
            None,
        );
        assert_eq!(f.verdict.status, Status::Unknown, "{:?}", f.verdict);
        assert_eq!(f.verdict.exit_code(), 2);
        let a = advice(&f);
        assert!(
            a.contains("memory.kmem.slabinfo") && a.contains("--ids-used"),
            "{a}"
        );
        // kmem off but ids uncountable: still unknown, never guessed.
        let f = mk(R310, Some(3_000), Some(3_000), None, kmem_off(), None);
        assert_eq!(f.verdict.status, Status::Unknown);
        // no pods cgroup and no count.
        let missing = KubepodsFacts::missing("kubepods");
        let f = mk(R310, Some(3_000), Some(3_000), None, missing, None);
        assert_eq!(f.verdict.status, Status::Unknown);
    }

    /// healthy, at-risk by ratio, at-risk by ids, leaking, unknown.
    fn modern_matrix(release: &str) -> [Facts; 5] {
        let kp = || pods(300, Some(true), None);
        [
            mk(release, Some(800), Some(900), None, kp(), None),
            mk(release, Some(2_000), Some(20_000), None, kp(), None),
            mk(release, Some(50_000), Some(60_000), None, kp(), None),
            mk(release, Some(9_000), Some(65_000), None, kp(), Some(true)),
            mk(release, Some(800), None, None, kp(), None),
        ]
    }

    fn check_modern(release: &str) {
        let [healthy, ratio, ids, leaking, unknown] = modern_matrix(release);
        assert_eq!(
            healthy.verdict.status,
            Status::Healthy,
            "{:?}",
            healthy.verdict
        );
        assert!(healthy.verdict.advice.is_empty());
        // 18,000 dying for 2,000 live: at-risk, never leaking from a ratio on these kernels.
        assert_eq!(ratio.verdict.status, Status::AtRisk, "{:?}", ratio.verdict);
        assert!(ratio
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("accumulate")));
        // 60,000 and 65,000 ids in use, of 65,535 (65,534 on 4.4-5.18).
        let limit = KernelInfo::from_release(release).memcg_id_limit();
        assert_eq!(ids.hierarchy.id_limit, limit);
        assert_eq!(ids.hierarchy.ids_free, Some(limit - 60_000));
        assert_eq!(ids.verdict.status, Status::AtRisk);
        assert_eq!(leaking.hierarchy.ids_free, Some(limit - 65_000));
        assert_eq!(leaking.verdict.status, Status::Leaking);
        assert_eq!(unknown.verdict.status, Status::Unknown);
        let a = advice(&leaking);
        assert!(a.contains("does NOT help"), "{a}");
        assert!(
            a.contains("cgleak reclaim") && a.contains("cold caches"),
            "{a}"
        );
        assert!(a.contains("cgroup.memory=nokmem"), "{a}");
        assert!(!a.contains("cgleak plan"), "{a}");
    }

    #[test]
    fn modern_matrix_510() {
        check_modern(R510);
        let [_, _, _, leaking, _] = modern_matrix(R510);
        assert!(!advice(&leaking).contains("6.13"));
    }

    #[test]
    fn no_move_charge_matrix_618() {
        check_modern(R618);
        let [_, _, _, leaking, _] = modern_matrix(R618);
        assert!(advice(&leaking).contains(">= 6.13"), "{}", advice(&leaking));
    }

    #[test]
    fn small_nodes_with_high_ratio_stay_healthy() {
        // Seen on this machine: 45 counted, 7 live.
        let missing = KubepodsFacts::missing("kubepods");
        let f = mk(R618, Some(7), Some(45), None, missing, None);
        assert_eq!(f.hierarchy.dying, Some(38));
        assert_eq!(f.verdict.status, Status::Healthy);
    }

    #[test]
    fn modern_with_nokmem_advises_reboot_not_nokmem() {
        let kp = pods(10, Some(false), None);
        let mut f = mk(R510, Some(9_000), Some(65_000), None, kp, None);
        f.kernel.nokmem = true;
        f.nokmem = true;
        f.judge(&Thresholds::default());
        assert_eq!(f.verdict.status, Status::Leaking);
        let a = advice(&f);
        assert!(!a.contains("boot with"), "{a}");
        assert!(a.contains("reboot"), "{a}");
    }

    #[test]
    fn unknown_kernel_release() {
        let f = mk(
            "weird",
            Some(500),
            Some(500),
            None,
            pods(10, None, None),
            None,
        );
        assert_eq!(f.kernel.era, None);
        assert_eq!(f.verdict.status, Status::Unknown);
        let f = mk(
            "weird",
            Some(500),
            Some(500),
            Some(520),
            pods(10, None, None),
            None,
        );
        assert_eq!(f.verdict.status, Status::Healthy);
    }

    #[test]
    fn thresholds_are_honoured() {
        let kp = pods(10, Some(true), None);
        let mut f = mk(R510, Some(800), Some(30_000), None, kp, None);
        assert_eq!(f.verdict.status, Status::AtRisk); // by ratio
        f.judge(&Thresholds {
            at_risk_ids_free: 40_000,
            leaking_ids_free: 36_000,
            ..Thresholds::default()
        });
        assert_eq!(f.verdict.status, Status::Leaking);
        assert_eq!(f.thresholds.leaking_ids_free, 36_000);
    }

    #[test]
    fn v2_hosts() {
        let inp = |live, nd| V2Inputs {
            root: "/sys/fs/cgroup".into(),
            release: R618.into(),
            cmdline: String::new(),
            live,
            nr_dying_descendants: nd,
            kubelet_pids: Some(vec![]),
        };
        let f = gather_v2(&inp(Some(300), Some(100)));
        assert_eq!(f.cgroup_mode, Some(CgroupMode::V2));
        assert_eq!(f.hierarchy.nr_dying_descendants, Some(100));
        assert_eq!(f.kubelet.running, Some(false));
        assert_eq!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
        let f = gather_v2(&inp(Some(2_000), Some(40_000)));
        assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
        assert!(advice(&f).contains("cgleak reclaim"));
        assert!(f
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("nr_dying_descendants")));
        let f = gather_v2(&inp(Some(20_000), Some(36_000)));
        assert_eq!(f.verdict.status, Status::AtRisk, "bound near the limit");
        let f = gather_v2(&inp(Some(300), None));
        assert_eq!(f.verdict.status, Status::Unknown);
        let f = gather_v2(&inp(None, Some(10)));
        assert_eq!(
            f.verdict.status,
            Status::Unknown,
            "no live count: never guessed"
        );
        let f = gather_v2(&inp(None, Some(5_000)));
        assert_eq!(f.verdict.status, Status::Unknown);
        let t = render_text(&f);
        assert!(t.contains("dying (v2)") && t.contains("5,000"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
        assert_eq!(v["cgroup_mode"], "v2");
        assert_eq!(v["hierarchy"]["nr_dying_descendants"], 5000);
        assert!(v["hierarchy"]["ids_used"].is_null());
    }

    #[test]
    fn exit_codes_and_separators() {
        let v = |status| Verdict {
            status,
            reasons: vec![],
            advice: vec![],
        };
        assert_eq!(v(Status::Healthy).exit_code(), 0);
        assert_eq!(v(Status::AtRisk).exit_code(), 1);
        assert_eq!(v(Status::Leaking).exit_code(), 1);
        assert_eq!(v(Status::Unknown).exit_code(), 2);
        assert_eq!(sep(0), "0");
        assert_eq!(sep(999), "999");
        assert_eq!(sep(1_000), "1,000");
        assert_eq!(sep(65_535), "65,535");
        assert_eq!(sep(1_234_567), "1,234,567");
    }

    // ---- rendering ----

    fn has_keys(o: &serde_json::Value, ks: &[&str]) {
        for k in ks {
            assert!(o.get(k).is_some(), "missing key {k} in {o}");
        }
    }

    #[test]
    fn json_has_every_contract_key_and_nulls_for_unknowns() {
        let missing = KubepodsFacts::missing("kubepods");
        let f = mk("weird", Some(3_000), Some(3_000), None, missing, None);
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
        has_keys(
            &v,
            &[
                "kernel",
                "cgroup_mode",
                "nokmem",
                "hierarchy",
                "kubepods",
                "kubelet",
                "verdict",
                "thresholds",
            ],
        );
        has_keys(
            &v["kernel"],
            &[
                "release",
                "version",
                "era",
                "nokmem",
                "move_charge_supported",
                "move_charge_deprecated",
                "counts_dying",
                "kmem_per_cgroup",
            ],
        );
        has_keys(
            &v["hierarchy"],
            &[
                "mount",
                "root",
                "live",
                "counted",
                "dying",
                "id_limit",
                "ids_used",
                "ids_free",
                "ids_source",
                "nr_dying_descendants",
            ],
        );
        has_keys(
            &v["kubepods"],
            &[
                "found",
                "name",
                "layout",
                "cgroups",
                "qos",
                "pods",
                "containers",
                "other",
                "tasks",
                "kmem_active",
                "kmem_active_cgroups",
                "kmem_limits_set",
            ],
        );
        has_keys(&v["kubelet"], &["running", "pids"]);
        has_keys(&v["verdict"], &["status", "reasons", "advice"]);
        has_keys(
            &v["thresholds"],
            &[
                "at_risk_ids_free",
                "leaking_ids_free",
                "at_risk_dying_ratio",
                "leaking_dying_ratio",
                "min_dying_for_ratio",
            ],
        );
        for k in [
            "version",
            "era",
            "move_charge_supported",
            "move_charge_deprecated",
            "counts_dying",
            "kmem_per_cgroup",
        ] {
            assert!(v["kernel"][k].is_null(), "kernel.{k}: {}", v["kernel"]);
        }
        for k in ["dying", "ids_used", "ids_free", "nr_dying_descendants"] {
            assert!(v["hierarchy"][k].is_null(), "hierarchy.{k} must be null");
        }
        assert_eq!(v["hierarchy"]["ids_source"], "unknown");
        // An unknown kernel gets the smaller id space, so ids free is never over-stated.
        assert_eq!(v["hierarchy"]["id_limit"], 65534);
        assert_eq!(v["hierarchy"]["live"], 3000);
        assert!(v["kubepods"]["kmem_active"].is_null());
        assert_eq!(v["kubepods"]["found"], false);
        assert_eq!(v["kubepods"]["layout"], "missing");
        assert!(v["kubelet"]["running"].is_null());
        assert_eq!(v["verdict"]["status"], "unknown");
        assert_eq!(v["cgroup_mode"], "v1");
        assert_eq!(v["nokmem"], false);
        assert_eq!(v["thresholds"]["at_risk_ids_free"], 10_000);

        // Known values come out as such, with the contract's spellings.
        let f = mk(
            R310,
            Some(2_000),
            Some(2_000),
            Some(30_000),
            kmem_on(),
            Some(true),
        );
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
        assert_eq!(v["kernel"]["era"], "legacy");
        assert_eq!(v["kernel"]["version"], "3.10.0");
        assert_eq!(v["hierarchy"]["ids_source"], "systemtap");
        assert_eq!(v["hierarchy"]["dying"], 28_000);
        assert_eq!(v["verdict"]["status"], "leaking");
        assert_eq!(v["kubelet"]["pids"][0], 77);
        let f = mk(
            R618,
            Some(800),
            Some(20_000),
            None,
            pods(10, Some(true), None),
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
        assert_eq!(v["kernel"]["era"], "no_move_charge");
        assert_eq!(v["verdict"]["status"], "at-risk");
        assert_eq!(v["hierarchy"]["ids_source"], "proc_cgroups");
        let f = mk(
            R510,
            Some(800),
            Some(900),
            None,
            pods(10, Some(true), None),
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
        assert_eq!(v["kernel"]["era"], "modern");
        assert_eq!(v["verdict"]["status"], "healthy");
        // Round trip.
        let back: Facts = serde_json::from_str(&render_json(&f)).unwrap();
        assert_eq!(back, f);
    }

    fn short_lines(s: &str) {
        for l in s.lines() {
            assert!(l.chars().count() < 100, "line too long ({}): {l}", l.len());
        }
    }

    #[test]
    fn text_for_310_leak() {
        let f = mk(
            R310,
            Some(2_000),
            Some(2_000),
            Some(30_000),
            kmem_on(),
            Some(true),
        );
        let t = render_text(&f);
        assert!(t.contains("VERDICT: LEAKING"), "{t}");
        assert!(t.contains("30,000 of 65,535"), "{t}");
        assert!(t.contains("  1. "), "{t}");
        assert!(t.contains("nokmem") && t.contains("cgleak repair"), "{t}");
        assert!(t.contains("yes (pid 77)"), "{t}");
        assert!(t.contains("yes (900 cgroups)"), "{t}");
        // kmem on 3.10 is per cgroup: no claim that every memcg accounts it.
        assert!(!t.contains("every v1 memcg"), "{t}");
        short_lines(&t);
    }

    #[test]
    fn text_for_modern_at_risk_and_healthy() {
        let [healthy, ratio, ..] = modern_matrix(R618);
        let t = render_text(&ratio);
        assert!(t.contains("VERDICT: AT-RISK"), "{t}");
        assert!(
            t.contains("cgleak reclaim") && t.contains("does NOT help"),
            "{t}"
        );
        assert!(t.contains("not supported (>= 6.13)"), "{t}");
        short_lines(&t);
        let t = render_text(&healthy);
        assert!(t.contains("VERDICT: HEALTHY"), "{t}");
        assert!(!t.contains("Advice"), "{t}");
        short_lines(&t);
    }

    #[test]
    fn text_for_unknown() {
        let f = mk(
            R310,
            Some(3_000),
            Some(3_000),
            None,
            pods(600, None, None),
            None,
        );
        let t = render_text(&f);
        assert!(t.contains("VERDICT: UNKNOWN"), "{t}");
        assert!(t.contains("not countable here"), "{t}");
        assert!(t.contains("--ids-used"), "{t}");
        short_lines(&t);
    }

    #[test]
    fn wrap_keeps_lines_short() {
        let mut o = String::new();
        let long = "word ".repeat(80);
        wrap(&mut o, "  1. ", "     ", &long);
        short_lines(&o);
        assert!(o.lines().count() > 3);
        assert!(o.lines().skip(1).all(|l| l.starts_with("     word")));
    }
}
