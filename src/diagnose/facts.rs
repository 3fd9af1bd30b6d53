//! What `cgleak diagnose` found: the [`Facts`] of a node and the [`Verdict`] drawn from them.
//!
//! These types are the JSON report (`diagnose --format json`): their field names are a contract
//! for scripts (README, "JSON"), and a value that could not be known is `null`, never guessed.

use crate::host::CgroupMode;
use crate::model::kernel::{Era, KernelInfo};
use crate::model::Layout;
use serde::{Deserialize, Serialize};

pub use crate::ids::IdsSource;

use super::thresholds::Thresholds;

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

    /// What cgleak knows of this release (the one place for id limits and kernel eras).
    pub fn info(&self) -> KernelInfo {
        KernelInfo::from_release(&self.release)
    }
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
    /// cgroup v2: `nr_dying_descendants` of the root's cgroup.stat.
    pub nr_dying_descendants: Option<u64>,
    /// 3.10: at least this many dying memcgs, counted from /sys/kernel/slab
    /// ([`crate::ids::slab`]); null where not counted.
    pub dying_at_least: Option<u64>,
    /// 3.10: what that count was made from.
    pub slab_count: Option<crate::ids::slab::SlabCount>,
    /// 3.10: why there is no count from /sys/kernel/slab (no such directory: SLAB, not SLUB).
    pub slab_unavailable: Option<String>,
}

impl HierarchyFacts {
    /// Free ids at most this many: the id limit less the live memcgs and the dying ones seen
    /// in /sys/kernel/slab (3.10, where the count is a lower bound of the ids in use).
    pub fn ids_free_at_most(&self) -> Option<u64> {
        let (d, l) = (self.dying_at_least?, self.live?);
        Some(self.id_limit.saturating_sub(l + d))
    }
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
    /// No pods cgroup below the root: an empty tree, known to be empty.
    pub fn missing(name: &str) -> KubepodsFacts {
        KubepodsFacts {
            layout: Some(Layout::Missing),
            cgroups: Some(0),
            qos: Some(0),
            pods: Some(0),
            containers: Some(0),
            other: Some(0),
            tasks: Some(0),
            kmem_limits_set: Some(0),
            ..KubepodsFacts::unreadable(name, false)
        }
    }

    /// A pods tree that could not be read (or is not looked at): every count unknown.
    pub fn unreadable(name: &str, found: bool) -> KubepodsFacts {
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

impl KubeletFacts {
    /// From the pids found, or None when processes were not (or could not be) listed.
    pub fn from_pids(pids: Option<Vec<u32>>) -> KubeletFacts {
        match pids {
            Some(pids) => KubeletFacts {
                running: Some(!pids.is_empty()),
                pids,
            },
            None => KubeletFacts {
                running: None,
                pids: vec![],
            },
        }
    }
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
    /// What would stop a repair of the node as it stands (the refusals of
    /// [`crate::repair::refusal::for_node`] that concern diagnose: pods cgroup, staging name,
    /// ids), with what to do; empty on cgroup v2 and where the pods tree could not be read.
    pub repair_refusals: Vec<crate::repair::plan::Blocker>,
    /// The container runtimes found from /proc (src/runtime): what a repair costs them. Null
    /// on cgroup v2 and when the process table could not be read.
    #[serde(default)]
    pub runtimes: Option<crate::runtime::Runtimes>,
}

impl Facts {
    /// The unified hierarchy (cgroup v2): no v1 pods tree, no memcg id count.
    pub fn is_v2(&self) -> bool {
        self.cgroup_mode == Some(CgroupMode::V2)
    }

    /// RHEL/CentOS 7's 3.10: kmem activated per cgroup, dying memcgs invisible.
    pub fn is_legacy(&self) -> bool {
        self.kernel.era == Some(Era::Legacy)
    }
}
