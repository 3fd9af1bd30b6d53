//! The data cgleak reads from a pods cgroup: per-cgroup settings and tasks, and the snapshot of
//! a whole tree. Field names are stable: they are the JSON of `cgleak snapshot` and of the
//! repair journal (documented in README.md).

use serde::{Deserialize, Serialize};

/// Page size the kernel rounds limits to (memory.rst: limits are rounded to pages).
pub const PAGE_SIZE: u64 = 4096;

/// Smallest value treated as "no limit". Newer kernels show PAGE_COUNTER_MAX * PAGE_SIZE
/// (9223372036854771712), 3.10 shows RESOURCE_MAX (9223372036854775807); both are above this.
pub const UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_F000;

/// Whether a limit value means "unlimited".
pub fn is_unlimited(v: u64) -> bool {
    v >= UNLIMITED_MIN
}

/// A limit as the kernel will store it: rounded down to a page; any unlimited value is the same.
pub fn normalize_limit(v: u64) -> u64 {
    if is_unlimited(v) {
        UNLIMITED_MIN
    } else {
        v / PAGE_SIZE * PAGE_SIZE
    }
}

/// What kind of cgroup a node of the pods tree is, from its name (kubelet's cgroupfs layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The pods cgroup itself (`kubepods`).
    PodsRoot,
    /// `burstable` or `besteffort` directly below the pods cgroup.
    Qos,
    /// `pod<uid>`.
    Pod,
    /// A directory below a pod: a container (the pause container included).
    Container,
    /// Anything else kubelet did not name; kept and moved like the rest.
    Other,
}

/// How kubelet laid out the pods cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// No pods cgroup found.
    Missing,
    /// The pods cgroup has no children yet.
    Empty,
    /// `kubepods/pod<uid>/<ctr>` only.
    Flat,
    /// `kubepods/{burstable,besteffort}/pod<uid>/<ctr>` (Guaranteed pods directly below).
    Qos,
    /// Both of the above side by side.
    Mixed,
    /// Neither: directories kubelet would not have made (kept and moved all the same).
    Unknown,
    /// The systemd cgroup driver (`kubepods.slice`): systemd owns these, cgleak will not move them.
    Systemd,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Missing => "missing",
            Layout::Empty => "empty",
            Layout::Flat => "flat (kubepods/pod<uid>/<ctr>)",
            Layout::Qos => "qos (kubepods/{burstable,besteffort}/pod<uid>/<ctr>)",
            Layout::Mixed => "mixed (flat and qos)",
            Layout::Unknown => "unknown",
            Layout::Systemd => "systemd driver (kubepods.slice)",
        })
    }
}

/// The settings of one memory cgroup that a repair must carry over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// memory.limit_in_bytes
    pub limit_in_bytes: u64,
    /// memory.memsw.limit_in_bytes; null without swap accounting.
    pub memsw_limit_in_bytes: Option<u64>,
    /// memory.soft_limit_in_bytes
    pub soft_limit_in_bytes: u64,
    /// memory.swappiness
    pub swappiness: u64,
    /// oom_kill_disable from memory.oom_control
    pub oom_kill_disable: bool,
    /// memory.use_hierarchy
    pub use_hierarchy: bool,
    /// memory.move_charge_at_immigrate; null where the file is missing.
    pub move_charge_at_immigrate: Option<u64>,
}

impl Settings {
    /// The settings the kernel gives a cgroup created below a parent with `parent` settings:
    /// no limits, swappiness, oom_kill_disable and use_hierarchy inherited
    /// (mem_cgroup_css_alloc), move_charge_at_immigrate 0.
    pub fn fresh_child_of(parent: &Settings, unlimited: u64) -> Settings {
        Settings {
            limit_in_bytes: unlimited,
            memsw_limit_in_bytes: parent.memsw_limit_in_bytes.map(|_| unlimited),
            soft_limit_in_bytes: unlimited,
            swappiness: parent.swappiness,
            oom_kill_disable: parent.oom_kill_disable,
            use_hierarchy: parent.use_hierarchy,
            move_charge_at_immigrate: parent.move_charge_at_immigrate.map(|_| 0),
        }
    }
}

/// One cgroup of the pods tree as scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRecord {
    /// Path relative to `--root` (`kubepods/burstable/pod<uid>/<ctr>`).
    pub path: String,
    /// Classified from the name.
    pub kind: Kind,
    pub settings: Settings,
    /// Pids in cgroup.procs (thread-group leaders).
    pub tasks: Vec<u32>,
    /// memory.kmem.limit_in_bytes, for diagnosis only (never written by cgleak).
    pub kmem_limit_in_bytes: Option<u64>,
    /// Whether kmem accounting is active (3.10: memory.kmem.slabinfo readable); null if unknown.
    pub kmem_active: Option<bool>,
    /// memory.usage_in_bytes, for information.
    pub usage_in_bytes: Option<u64>,
}

/// The scan of a pods cgroup: what a repair must reproduce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version of this JSON.
    pub format: u32,
    /// Seconds since the epoch when the scan ran.
    pub taken_at: u64,
    /// The `--root` directory.
    pub root: String,
    /// Name of the pods cgroup below root.
    pub kubepods: String,
    /// `uname -r`.
    pub kernel_release: String,
    pub layout: Layout,
    /// Settings of the `--root` directory itself (its children inherit from it).
    pub root_settings: Settings,
    /// Every cgroup of the pods tree in pre-order, the pods cgroup first.
    pub cgroups: Vec<CgroupRecord>,
}

pub const SNAPSHOT_FORMAT: u32 = 1;

impl Snapshot {
    pub fn find(&self, path: &str) -> Option<&CgroupRecord> {
        self.cgroups.iter().find(|c| c.path == path)
    }

    pub fn task_count(&self) -> usize {
        self.cgroups.iter().map(|c| c.tasks.len()).sum()
    }

    pub fn count_kind(&self, kind: Kind) -> usize {
        self.cgroups.iter().filter(|c| c.kind == kind).count()
    }
}

/// Classify a cgroup of the pods tree from its path relative to the pods cgroup's parent.
/// `depth` is 0 for the pods cgroup, `parent_kind` the kind of its parent.
pub fn classify(name: &str, depth: usize, parent_kind: Option<Kind>) -> Kind {
    if depth == 0 {
        return Kind::PodsRoot;
    }
    let is_pod = name.starts_with("pod") && name.len() > 3;
    match parent_kind {
        Some(Kind::PodsRoot) if name == "burstable" || name == "besteffort" => Kind::Qos,
        Some(Kind::PodsRoot) | Some(Kind::Qos) if is_pod => Kind::Pod,
        Some(Kind::Pod) => Kind::Container,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_values_of_both_kernel_eras() {
        assert!(is_unlimited(9223372036854771712));
        assert!(is_unlimited(9223372036854775807));
        assert!(!is_unlimited(1 << 40));
        assert_eq!(normalize_limit(12345678), 12345344);
        assert_eq!(
            normalize_limit(9223372036854775807),
            normalize_limit(9223372036854771712)
        );
    }

    #[test]
    fn classify_names() {
        assert_eq!(classify("kubepods", 0, None), Kind::PodsRoot);
        assert_eq!(classify("burstable", 1, Some(Kind::PodsRoot)), Kind::Qos);
        assert_eq!(classify("pod1234-ab", 1, Some(Kind::PodsRoot)), Kind::Pod);
        assert_eq!(classify("pod1234-ab", 2, Some(Kind::Qos)), Kind::Pod);
        assert_eq!(classify("abcdef", 2, Some(Kind::Pod)), Kind::Container);
        assert_eq!(classify("abcdef", 3, Some(Kind::Pod)), Kind::Container);
        assert_eq!(classify("weird", 1, Some(Kind::PodsRoot)), Kind::Other);
        assert_eq!(classify("x", 4, Some(Kind::Container)), Kind::Other);
        assert_eq!(classify("pod", 1, Some(Kind::PodsRoot)), Kind::Other);
    }
}
