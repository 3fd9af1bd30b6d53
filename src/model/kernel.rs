//! What the running kernel can do, from its release string (docs/kernel-facts.md, "Kernel
//! differences"). Detection never changes a live cgroup: capabilities are read from the
//! release, and the repair learns the rest from the kernel's answers (EINVAL on
//! move_charge_at_immigrate).

use serde::{Deserialize, Serialize};

/// The memcg id space: MEM_CGROUP_ID_MAX of include/linux/memcontrol.h. No kernel hands out
/// more ids; how many a kernel really hands out is [`KernelInfo::memcg_id_limit`].
pub const MEM_CGROUP_ID_MAX: u64 = 65535;

/// A parsed `uname -r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parse the leading `X.Y[.Z]` of a release such as `3.10.0-1160.el7.x86_64` or
    /// `6.1.0-25-cloud-amd64`.
    pub fn parse(release: &str) -> Option<Version> {
        let head: String = release
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut it = head.split('.').filter(|s| !s.is_empty());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Some(Version::new(major, minor, patch))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Kernel eras that behave differently for cgleak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Era {
    /// Before 3.16 (RHEL/CentOS 7's 3.10): kmem accounting is activated per cgroup by the first
    /// write to memory.kmem.limit_in_bytes; /proc/cgroups counts live memcgs only.
    Legacy,
    /// 3.16 - 6.12: kmem accounting on for every v1 memcg (unless cgroup.memory=nokmem),
    /// num_cgroups counts dying memcgs, charges can move.
    Modern,
    /// 6.13 and later: move_charge_at_immigrate is gone (non-zero write: EINVAL).
    NoMoveCharge,
}

/// What cgleak needs to know about a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub release: String,
    pub version: Option<Version>,
    pub era: Option<Era>,
}

impl KernelInfo {
    pub fn from_release(release: &str) -> KernelInfo {
        let version = Version::parse(release);
        let era = version.map(|v| {
            if v < Version::new(3, 16, 0) {
                Era::Legacy
            } else if v < Version::new(6, 13, 0) {
                Era::Modern
            } else {
                Era::NoMoveCharge
            }
        });
        KernelInfo {
            release: release.trim().to_string(),
            version,
            era,
        }
    }

    /// Whether /proc/cgroups num_cgroups includes dying memcgs (so dying = counted - live).
    pub fn counts_dying(&self) -> Option<bool> {
        self.era.map(|e| e != Era::Legacy)
    }

    /// Whether memory.move_charge_at_immigrate accepts non-zero values.
    pub fn move_charge_supported(&self) -> Option<bool> {
        self.era.map(|e| e != Era::NoMoveCharge)
    }

    /// move_charge_at_immigrate works but logs a deprecation warning (6.3; backported to
    /// 6.1.16 and 5.4.235).
    pub fn move_charge_deprecated(&self) -> Option<bool> {
        let v = self.version?;
        Some(
            v >= Version::new(6, 3, 0)
                || (v.major == 6 && v.minor == 1 && v.patch >= 16)
                || (v.major == 5 && v.minor == 4 && v.patch >= 235),
        )
    }

    /// Whether kmem accounting is per cgroup and activated by writing
    /// memory.kmem.limit_in_bytes (the 3.10 trigger the migration repair fixes).
    pub fn kmem_per_cgroup(&self) -> Option<bool> {
        self.era.map(|e| e == Era::Legacy)
    }

    /// Whether a dying memcg gives its id back at rmdir unless swapped-out pages still
    /// reference it (73f576c04b94, 4.8, backported to 4.4-stable: swap entries pin
    /// memcg->id.ref, page cache does not). Seen in the kernel lab on 5.10 and 6.1: 70000
    /// memcgs dying with page cache, and mkdir still worked. There /proc/cgroups over-counts
    /// the ids in use, and `memcg_id_limit() - counted` is a lower bound of the ids free.
    pub fn ids_released_at_offline(&self) -> Option<bool> {
        self.version.map(|v| v >= Version::new(4, 8, 0))
    }

    /// How many memcg ids this kernel hands out (MEM_CGROUP_ID_MAX is 65535). Before the
    /// private memcg id, memcgs took css ids 1..=65535 (3.10). The private id (73f576c04b94,
    /// 4.7, backported to 4.4-stable) was allocated with `idr_alloc(.., 1, MEM_CGROUP_ID_MAX,
    /// ..)`, whose end is exclusive: 65534 ids, until "mm: memcontrol: fix cannot alloc the
    /// maximum memcg ID" (posted February 2022, in mainline by 5.19) made the end one past
    /// MEM_CGROUP_ID_MAX. The kernel lab saw both: 5.10 ran out at 65534 memcgs, 6.1 at 65535.
    /// Where unsure (5.18, an unparsable release) the smaller number: ids free must never be
    /// over-stated.
    pub fn memcg_id_limit(&self) -> u64 {
        match self.version {
            Some(v) if v < Version::new(4, 4, 0) || v >= Version::new(5, 19, 0) => {
                MEM_CGROUP_ID_MAX
            }
            _ => MEM_CGROUP_ID_MAX - 1,
        }
    }

    /// memory.use_hierarchy is deprecated and always 1 from about 5.11.
    pub fn use_hierarchy_fixed(&self) -> Option<bool> {
        self.version.map(|v| v >= Version::new(5, 11, 0))
    }

    /// A short name of the era for advice ("3.10", "4.x-6.12", ">= 6.13").
    pub fn era_name(&self) -> &'static str {
        match self.era {
            Some(Era::Legacy) => "3.10-era (kmem activated per cgroup)",
            Some(Era::Modern) => "3.16-6.12 (kmem accounted for every memcg)",
            Some(Era::NoMoveCharge) => ">= 6.13 (no charge moving)",
            None => "unknown kernel",
        }
    }
}

/// Whether `cgroup.memory=nokmem` is on the kernel command line.
pub fn cmdline_nokmem(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| {
        w.strip_prefix("cgroup.memory=")
            .map(|v| v.split(',').any(|o| o == "nokmem"))
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_releases() {
        assert_eq!(
            Version::parse("3.10.0-1160.el7.x86_64"),
            Some(Version::new(3, 10, 0))
        );
        assert_eq!(
            Version::parse("6.1.0-25-cloud-amd64"),
            Some(Version::new(6, 1, 0))
        );
        assert_eq!(
            Version::parse("6.18.44-fc-v782"),
            Some(Version::new(6, 18, 44))
        );
        assert_eq!(Version::parse("5.10"), Some(Version::new(5, 10, 0)));
        assert_eq!(Version::parse("garbage"), None);
    }

    #[test]
    fn eras() {
        let k = KernelInfo::from_release("3.10.0-1160.el7.x86_64");
        assert_eq!(k.era, Some(Era::Legacy));
        assert_eq!(k.counts_dying(), Some(false));
        assert_eq!(k.move_charge_supported(), Some(true));
        assert_eq!(k.kmem_per_cgroup(), Some(true));
        let k = KernelInfo::from_release("5.10.0-30-cloud-amd64");
        assert_eq!(k.era, Some(Era::Modern));
        assert_eq!(k.use_hierarchy_fixed(), Some(false));
        let k = KernelInfo::from_release("6.1.0-25-cloud-amd64");
        assert_eq!(k.move_charge_supported(), Some(true));
        assert_eq!(k.use_hierarchy_fixed(), Some(true));
        let k = KernelInfo::from_release("6.18.44-fc-v782");
        assert_eq!(k.move_charge_supported(), Some(false));
        assert_eq!(k.counts_dying(), Some(true));
        assert_eq!(KernelInfo::from_release("weird").counts_dying(), None);
    }

    #[test]
    fn ids_released_at_offline_from_4_8() {
        assert_eq!(
            KernelInfo::from_release("3.10.0-1160.el7.x86_64").ids_released_at_offline(),
            Some(false)
        );
        assert_eq!(
            KernelInfo::from_release("4.8.0").ids_released_at_offline(),
            Some(true)
        );
        assert_eq!(
            KernelInfo::from_release("6.1.0-25-cloud-amd64").ids_released_at_offline(),
            Some(true)
        );
    }

    #[test]
    fn deprecation_backports() {
        assert_eq!(
            KernelInfo::from_release("6.1.15").move_charge_deprecated(),
            Some(false)
        );
        assert_eq!(
            KernelInfo::from_release("6.1.16").move_charge_deprecated(),
            Some(true)
        );
        assert_eq!(
            KernelInfo::from_release("5.4.235").move_charge_deprecated(),
            Some(true)
        );
        assert_eq!(
            KernelInfo::from_release("5.10.0").move_charge_deprecated(),
            Some(false)
        );
    }

    #[test]
    fn nokmem() {
        assert!(cmdline_nokmem("ro quiet cgroup.memory=nokmem"));
        assert!(cmdline_nokmem("cgroup.memory=nosocket,nokmem"));
        assert!(!cmdline_nokmem("cgroup.memory=nosocket"));
        assert!(!cmdline_nokmem(""));
    }
}
