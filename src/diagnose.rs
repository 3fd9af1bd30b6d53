//! `cgleak diagnose`: is this node running out of memory-cgroup ids, why, and what to do.
//!
//! Two layers, so the decision can be tested without a kernel:
//! - [`gather`] reads everything through [`Cgroupfs`] (read-only: it never writes a file and
//!   never creates a cgroup, because a diagnosis must be safe on a node that is already failing)
//!   into [`Facts`]. [`gather_v2`] builds the same report for a cgroup v2 host from values the
//!   caller read (there is no v1 memory hierarchy to open there).
//! - [`verdict`] is pure: [`Facts`] and [`Thresholds`] in, a [`Verdict`] out.
//!
//! The kernel rules behind each decision are in KERNEL-FACTS.md: a memcg holds one of 65535 ids
//! (MEM_CGROUP_ID_MAX) from mkdir until its last charge goes, deleted-but-charged ("dying")
//! memcgs keep theirs, and how visible that is depends on the kernel era. The JSON keys of
//! [`Facts`] are a contract for scripts: unknown values are `null`, never guessed.

use crate::error::{Error, Result};
use crate::fs::{self, CgroupMode, Cgroupfs};
use crate::kernel::{cmdline_nokmem, Era, KernelInfo};
use crate::model::{is_unlimited, Kind, Layout, Snapshot};
use crate::scan;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

/// MEM_CGROUP_ID_MAX: memcg ids are 16 bit, id 0 is never handed out, so at most 65535 memcgs
/// (live and dying, the root included) exist at once. One more mkdir fails with ENOSPC/ENOMEM.
pub const ID_LIMIT: u64 = 65535;

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

/// Where the ids-in-use count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdsSource {
    /// num_cgroups of /proc/cgroups, on kernels that count dying memcgs there.
    ProcCgroups,
    /// `--ids-used`, counted with the systemtap probe.
    Systemtap,
    Unknown,
}

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
    let mut notes = Vec::new();
    let (used, source) = match (counts_dying, counted, ids_used_opt) {
        (Some(true), Some(c), given) => {
            if let Some(g) = given.filter(|&g| g != c) {
                notes.push(format!(
                    "--ids-used {} differs from the kernel's count of {} memcgs in \
                     /proc/cgroups; using the kernel's count",
                    sep(g),
                    sep(c)
                ));
            }
            (Some(c), IdsSource::ProcCgroups)
        }
        (_, _, Some(g)) => (Some(g), IdsSource::Systemtap),
        _ => (None, IdsSource::Unknown),
    };
    // counted < live happens transiently (a cgroup made between the two reads): dying 0 then.
    let dying = match (used, live) {
        (Some(u), Some(l)) => Some(u.saturating_sub(l)),
        _ => None,
    };
    let free = used.map(|u| ID_LIMIT.saturating_sub(u));
    (dying, used, free, source, notes)
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
pub fn gather(fs: &dyn Cgroupfs, opts: &DiagnoseOptions) -> Result<Facts> {
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
            let row = fs::parse_proc_cgroups_memory(&s);
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

    let (dying, ids_used, ids_free, ids_source, notes) =
        compute_ids(kernel.counts_dying, live, counted, opts.ids_used);
    errors.extend(notes);
    let hierarchy = HierarchyFacts {
        mount: fs.hierarchy_mount().display().to_string(),
        root: fs.root().display().to_string(),
        live,
        counted,
        dying,
        id_limit: ID_LIMIT,
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
        id_limit: ID_LIMIT,
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
                let free_min = ID_LIMIT.saturating_sub(b);
                if free_min <= t.at_risk_ids_free {
                    reasons.push(format!(
                        "live and dying cgroups together could hold {} of {} memcg ids",
                        sep(b),
                        sep(ID_LIMIT)
                    ));
                    status = Status::AtRisk;
                }
            }
            if dying_high(nd, h.live.unwrap_or(1), t.at_risk_dying_ratio) {
                if let Some(l) = h.live {
                    reasons.push(format!(
                        "{:.1} dying cgroups per live one: they accumulate",
                        ratio(nd, l)
                    ));
                }
                status = Status::AtRisk;
            } else if nd >= t.min_dying_for_ratio && h.live.is_none() {
                reasons.push("live cgroups not counted: cannot weigh the dying ones".to_string());
                status = Status::Unknown;
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
     ids 1..65535, see the seed article) and pass it as --ids-used N";

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
         and their ids (costs cold caches: reads go to disk for a while)"
            .to_string(),
    );
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
        if i > 0 && (s.len() - i) % 3 == 0 {
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
    row(
        &mut o,
        "release",
        &format!(
            "{} ({era})",
            if k.release.is_empty() {
                "unknown"
            } else {
                &k.release
            }
        ),
    );
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
        row(
            &mut o,
            "ids used",
            &format!("{} of {} ({src})", opt_n(h.ids_used), sep(h.id_limit)),
        );
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
    serde_json::to_string_pretty(f).expect("Facts always serializes")
}

#[cfg(test)]
mod tests {}
