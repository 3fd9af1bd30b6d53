//! The kernels an emulated node behaves like, and the kernel's parsing and formatting of the
//! memcg control files that differ between them (docs/kernel-facts.md).

use super::*;

/// 3.10's RESOURCE_MAX (LLONG_MAX), shown for "unlimited" (include/linux/res_counter.h).
pub(super) const UNLIMITED_3_10: u64 = 9223372036854775807;

/// PAGE_COUNTER_MAX * PAGE_SIZE (LONG_MAX / PAGE_SIZE pages), "unlimited" on newer kernels.
pub(super) const UNLIMITED_PAGE_COUNTER: u64 = 9223372036854771712;

pub(super) const SLABINFO_HEADER: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n";

/// The kernel an emulated node behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KernelProfile {
    #[serde(rename = "3.10")]
    V3_10,
    #[serde(rename = "5.10")]
    V5_10,
    #[serde(rename = "6.1")]
    V6_1,
    #[serde(rename = "6.13")]
    V6_13,
}

impl KernelProfile {
    pub const ALL: [KernelProfile; 4] = [
        KernelProfile::V3_10,
        KernelProfile::V5_10,
        KernelProfile::V6_1,
        KernelProfile::V6_13,
    ];

    /// Parse a profile name ("3.10", "5.10", "6.1", "6.13").
    pub fn parse(s: &str) -> Option<KernelProfile> {
        KernelProfile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
    }

    pub fn name(&self) -> &'static str {
        match self {
            KernelProfile::V3_10 => "3.10",
            KernelProfile::V5_10 => "5.10",
            KernelProfile::V6_1 => "6.1",
            KernelProfile::V6_13 => "6.13",
        }
    }

    /// The `uname -r` the node reports.
    pub fn release(&self) -> &'static str {
        match self {
            KernelProfile::V3_10 => "3.10.0-1160.el7.x86_64",
            KernelProfile::V5_10 => "5.10.0-30-cloud-amd64",
            KernelProfile::V6_1 => "6.1.0-25-cloud-amd64",
            KernelProfile::V6_13 => "6.13.0-1-cloud-amd64",
        }
    }

    /// The value a limit file shows for "unlimited".
    pub fn unlimited(&self) -> u64 {
        match self {
            KernelProfile::V3_10 => UNLIMITED_3_10,
            _ => UNLIMITED_PAGE_COUNTER,
        }
    }

    pub(super) fn is_3_10(&self) -> bool {
        *self == KernelProfile::V3_10
    }

    /// How long mem_cgroup_force_empty spends on memory it cannot reclaim before it returns:
    /// MEM_CGROUP_RECLAIM_RETRIES (5) rounds on 3.10 and MAX_RECLAIM_RETRIES (16) on 5.10, each
    /// followed by congestion_wait(HZ/10); the 6.x loop does not sleep (docs/kernel-facts.md,
    /// "force_empty").
    pub(super) fn force_empty_wait(&self) -> std::time::Duration {
        let ms = match self {
            KernelProfile::V3_10 => 5 * 100,
            KernelProfile::V5_10 => 16 * 100,
            _ => 0,
        };
        std::time::Duration::from_millis(ms)
    }

    /// Memcg ids this kernel hands out. 5.10 allocates from [1, MEM_CGROUP_ID_MAX)
    /// (idr_alloc's end is exclusive): 65534, as the lab's 5.10 guest ran out at 65532 dying
    /// + 2 live; 6.1 handed out 65535 (65533 + 2), and so does 3.10's css_id (1..=65535).
    pub fn id_limit(&self) -> u64 {
        match self {
            KernelProfile::V5_10 => MEM_CGROUP_ID_MAX - 1,
            _ => MEM_CGROUP_ID_MAX,
        }
    }

    /// What mkdir returns when no memcg id is left: ENOMEM on 3.10 (seen on 3.10.0-1127, as
    /// kubernetes#61937 reports it), ENOSPC from 4.x (seen on 5.10 and 6.1).
    pub(super) fn ids_exhausted(&self) -> Errno {
        if self.is_3_10() {
            Errno::ENOMEM
        } else {
            Errno::ENOSPC
        }
    }

    /// From 4.8 a deleted memcg gives its id back at offline unless swap entries reference it
    /// (73f576c04b94); before, every dying memcg keeps its id.
    pub(super) fn ids_released_at_offline(&self) -> bool {
        !self.is_3_10()
    }

    /// memory.use_hierarchy is deprecated and fixed at 1 from ~5.11.
    pub(super) fn use_hierarchy_fixed(&self) -> bool {
        matches!(self, KernelProfile::V6_1 | KernelProfile::V6_13)
    }

    /// Root use_hierarchy at mount time. 5.10 booted with a bare v1 mount was seen with 0
    /// (docs/kernel-facts.md, "Writing settings"); the 3.10 node is modelled as a systemd host (systemd sets it to 1).
    pub(super) fn root_use_hierarchy(&self) -> u64 {
        match self {
            KernelProfile::V5_10 => 0,
            _ => 1,
        }
    }
}

impl std::fmt::Display for KernelProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// memparse(): a number with an optional K/M/G/T/P/E suffix; anything else is EINVAL.
pub(super) fn memparse(s: &str) -> std::result::Result<u64, Errno> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(Errno::EINVAL);
    }
    let n: u128 = s[..digits_end].parse().map_err(|_| Errno::EINVAL)?;
    let shift = match &s[digits_end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return Err(Errno::EINVAL),
    };
    Ok((n << shift).min(u64::MAX as u128) as u64)
}

/// A plain unsigned integer (kstrtoull), as the u64 knobs take.
pub(super) fn parse_plain(s: &str) -> std::result::Result<u64, Errno> {
    s.parse::<u64>().map_err(|_| Errno::EINVAL)
}

/// The value a limit write stores.
/// 3.10 (kernel/res_counter.c res_counter_memparse_write_strategy): "-1" is RESOURCE_MAX,
/// other values are rounded UP to a page (PAGE_ALIGN), saturating at RESOURCE_MAX.
/// Newer (mm/page_counter.c page_counter_memparse): "-1" is PAGE_COUNTER_MAX, other values are
/// rounded DOWN to a page (bytes / PAGE_SIZE), at most PAGE_COUNTER_MAX pages.
pub(super) fn parse_limit(profile: KernelProfile, s: &str) -> std::result::Result<u64, Errno> {
    if s == "-1" {
        return Ok(profile.unlimited());
    }
    if s.starts_with('-') {
        return Err(Errno::EINVAL);
    }
    let bytes = memparse(s)?;
    Ok(if profile.is_3_10() {
        let up = bytes.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        up.min(UNLIMITED_3_10)
    } else {
        (bytes / PAGE_SIZE * PAGE_SIZE).min(UNLIMITED_PAGE_COUNTER)
    })
}

pub(super) fn oom_control_content(profile: KernelProfile, disable: bool) -> String {
    let mut s = format!("oom_kill_disable {}\nunder_oom 0\n", disable as u8);
    // The oom_kill counter line appeared in 4.13 (mem_cgroup_oom_control_read).
    if !profile.is_3_10() {
        s.push_str("oom_kill 0\n");
    }
    s
}

pub(super) fn stat_content(profile: KernelProfile, cache: u64, anon: u64) -> String {
    let mut s = format!("cache {cache}\nrss {anon}\nrss_huge 0\n");
    if !profile.is_3_10() {
        s.push_str("shmem 0\n");
    }
    s.push_str(&format!(
        "mapped_file 0\nswap 0\ntotal_cache {cache}\ntotal_rss {anon}\n"
    ));
    s
}

/// The control files of a new memcg (name, content) (memory.rst; mem_cgroup_css_alloc).
pub(super) fn control_files(
    p: KernelProfile,
    unlimited: u64,
    swappiness: u64,
    use_hierarchy: u64,
    oom_disable: bool,
) -> Vec<(&'static str, String)> {
    let u = format!("{unlimited}\n");
    vec![
        (knob::PROCS, String::new()),
        (knob::TASKS, String::new()),
        ("cgroup.clone_children", "0\n".into()),
        ("notify_on_release", "0\n".into()),
        (knob::LIMIT, u.clone()),
        (knob::SOFT_LIMIT, u.clone()),
        (knob::MEMSW_LIMIT, u.clone()),
        (knob::KMEM_LIMIT, u),
        (knob::SWAPPINESS, format!("{swappiness}\n")),
        (knob::USE_HIERARCHY, format!("{use_hierarchy}\n")),
        (knob::OOM_CONTROL, oom_control_content(p, oom_disable)),
        (knob::MOVE_CHARGE, "0\n".into()),
        (knob::FORCE_EMPTY, String::new()),
        (knob::USAGE, "0\n".into()),
        (knob::KMEM_SLABINFO, String::new()),
        (STAT, stat_content(p, 0, 0)),
    ]
}

/// /proc/cgroups as on a real node. 3.10 counts live memcgs only (num_cgroups decremented at
/// rmdir); later kernels count until the css is freed, dying ones included.
pub(super) fn proc_cgroups_content(is_3_10: bool, live: u64, dying: u64) -> String {
    let memory = if is_3_10 { live } else { live + dying };
    let mut s = String::from("#subsys_name\thierarchy\tnum_cgroups\tenabled\n");
    for (name, h, n) in [
        ("cpuset", 2, 1),
        ("cpu", 3, 1),
        ("cpuacct", 3, 1),
        ("blkio", 5, 1),
        ("memory", 4, memory),
        ("devices", 6, 1),
        ("freezer", 7, 1),
        ("net_cls", 8, 1),
        ("perf_event", 9, 1),
        ("hugetlb", 10, 1),
        ("pids", 11, 1),
    ] {
        s.push_str(&format!("{name}\t{h}\t{n}\t1\n"));
    }
    s
}
