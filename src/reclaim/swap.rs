//! Swap areas and the swap cycle (`swapoff` then `swapon`, area by area) that gives back the
//! memcg ids held by swapped-out pages.
//!
//! Why: from 4.8 (73f576c04b94, "mm: memcontrol: fix cgroup creation failure after many small
//! jobs") a deleted memcg releases its id at offline, except for the references swap entries
//! hold on it (mem_cgroup_id_get_many at swap-out, put at swap-in or when the entry is freed).
//! The kernel lab (scripts/vm/README.md) saw it on 5.10 and 6.1: 70000 dying memcgs pinned by
//! page cache left mkdir working; 65533 pinned by swapped-out pages made it fail with ENOSPC,
//! drop_caches freed none of those, and swapoff (reading every page back) freed them all in
//! 8-17 s. The workloads keep running meanwhile: their pages come back into memory.
//!
//! The cost and the risk: swapoff needs room in RAM for everything on the area
//! (try_to_unuse fails with ENOMEM otherwise and the area stays on), and it is disk IO for
//! as long as it takes. So the cycle is planned here from /proc/swaps and /proc/meminfo and
//! refused unless MemAvailable exceeds the swap in use by a margin; areas go off and on one at
//! a time, each back with the priority /proc/swaps showed where it was set (>= 0; negative
//! ones are the kernel's own numbering, which it hands out anew).

use crate::host::kernel::unescape_mountinfo;
use crate::model::kernel::KernelInfo;
use std::path::PathBuf;

/// One line of /proc/swaps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SwapArea {
    /// The device or file, unescaped (/proc/swaps writes a space as `\040`).
    pub path: PathBuf,
    /// `partition` or `file`.
    pub kind: String,
    pub size_kib: u64,
    pub used_kib: u64,
    /// Negative priorities are the kernel's own choice (swapon without SWAP_FLAG_PREFER).
    pub priority: i32,
}

impl SwapArea {
    /// The priority to give swapon(2): only one that was set by hand (>= 0) is set again; a
    /// negative one was assigned by the kernel and is assigned again.
    pub fn preferred_priority(&self) -> Option<i32> {
        (self.priority >= 0).then_some(self.priority)
    }
}

/// Parse /proc/swaps (a header line, then `Filename Type Size Used Priority`). Lines that do
/// not parse are left out: the caller sees fewer areas, never made-up ones.
pub fn parse_swaps(s: &str) -> Vec<SwapArea> {
    s.lines()
        .skip(1)
        .filter_map(|line| {
            // The file name may contain escaped blanks only, so the last four fields are
            // always type, size, used and priority.
            let mut f = line.split_whitespace().rev();
            let priority = f.next()?.parse().ok()?;
            let used_kib = f.next()?.parse().ok()?;
            let size_kib = f.next()?.parse().ok()?;
            let kind = f.next()?.to_string();
            let name: Vec<&str> = f.rev().collect();
            if name.is_empty() {
                return None;
            }
            Some(SwapArea {
                // seq_file_path escapes " \t\n\\" as octal, as mountinfo does.
                path: PathBuf::from(unescape_mountinfo(&name.join(" "))),
                kind,
                size_kib,
                used_kib,
                priority,
            })
        })
        .collect()
}

/// The line of /proc/meminfo the cycle needs, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MemInfo {
    pub mem_available_kib: u64,
}

/// Parse /proc/meminfo. None when MemAvailable (3.14+) is missing: without it the room for a
/// swapoff cannot be judged.
pub fn parse_meminfo(s: &str) -> Option<MemInfo> {
    let get = |key: &str| {
        s.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(MemInfo {
        mem_available_kib: get("MemAvailable")?,
    })
}

/// Free memory to keep beyond the swap read back: the larger of 256 MiB and a quarter of the
/// swap in use (page tables, the kernel's own reserves and the workloads' growth meanwhile).
pub fn margin_kib(used_kib: u64) -> u64 {
    (256 * 1024).max(used_kib / 4)
}

/// Why a swap cycle must not run: every rule of the cycle, for the refusal and the dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleRefusal {
    /// This kernel's /proc/cgroups does not count dying memcgs (3.10, or a release cgleak
    /// cannot place), so nothing shows whether swapped-out pages hold ids.
    Kernel { release: String },
    /// No /proc/swaps: the kernel was built without swap (CONFIG_SWAP=n).
    NoSwapSupport,
    /// /proc/swaps lists no area.
    NoArea,
    /// /proc/meminfo has no MemAvailable (or no /proc/meminfo).
    NoMemAvailable,
    /// The swap in use plus the margin does not fit in MemAvailable.
    NoRoom {
        used_kib: u64,
        available_kib: u64,
        margin_kib: u64,
    },
}

impl std::fmt::Display for CycleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CycleRefusal::Kernel { release } => write!(
                f,
                "a swap cycle does not free memcg ids on kernel {release}: it cannot tell how \
                 many dying memcgs hold ids"
            ),
            CycleRefusal::NoSwapSupport => {
                f.write_str("this kernel has no swap support (no /proc/swaps): nothing to cycle")
            }
            CycleRefusal::NoArea => {
                f.write_str("no swap area is active (/proc/swaps lists none): nothing to cycle")
            }
            CycleRefusal::NoMemAvailable => f.write_str(
                "/proc/meminfo has no MemAvailable: the room for reading the swap back cannot be \
                 judged",
            ),
            CycleRefusal::NoRoom {
                used_kib,
                available_kib,
                margin_kib,
            } => write!(
                f,
                "{} MiB are swapped out but only {} MiB of memory are available; swapoff needs \
                 room for all of it plus a margin of {} MiB (free memory first, or cycle in a \
                 quieter hour)",
                used_kib / 1024,
                available_kib / 1024,
                margin_kib / 1024
            ),
        }
    }
}

impl CycleRefusal {
    /// What the operator can do instead.
    pub fn way_on(&self) -> &'static str {
        match self {
            CycleRefusal::Kernel { .. } => {
                "run `cgleak diagnose` for what helps on this kernel; nothing was changed"
            }
            CycleRefusal::NoRoom { .. } => {
                "run `cgleak reclaim` without --swap-cycle, or free memory first; nothing was \
                 changed"
            }
            _ => "run `cgleak reclaim` without --swap-cycle; nothing was changed",
        }
    }
}

impl serde::Serialize for CycleRefusal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether a swap cycle of these areas fits in memory, and why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CyclePlan {
    pub areas: Vec<SwapArea>,
    pub used_kib: u64,
    pub mem_available_kib: u64,
    pub margin_kib: u64,
    /// None: the cycle may run; Some(reason): it must not.
    pub refusal: Option<CycleRefusal>,
}

/// Plan a cycle of every active area (pure: the kernel, /proc/swaps (None: absent) and
/// /proc/meminfo in, a verdict out). The kernel rule comes first: on a kernel that does not
/// count dying memcgs a cycle is refused whatever the room.
pub fn plan_cycle(
    kernel: &KernelInfo,
    areas: Option<Vec<SwapArea>>,
    mem: Option<MemInfo>,
) -> CyclePlan {
    let swap_support = areas.is_some();
    let areas = areas.unwrap_or_default();
    let used_kib: u64 = areas.iter().map(|a| a.used_kib).sum();
    let margin = margin_kib(used_kib);
    let available = mem.map_or(0, |m| m.mem_available_kib);
    let refusal = if kernel.counts_dying() != Some(true) {
        Some(CycleRefusal::Kernel {
            release: kernel.release.clone(),
        })
    } else if !swap_support {
        Some(CycleRefusal::NoSwapSupport)
    } else if areas.is_empty() {
        Some(CycleRefusal::NoArea)
    } else if mem.is_none() {
        Some(CycleRefusal::NoMemAvailable)
    } else if used_kib + margin > available {
        Some(CycleRefusal::NoRoom {
            used_kib,
            available_kib: available,
            margin_kib: margin,
        })
    } else {
        None
    };
    CyclePlan {
        areas,
        used_kib,
        mem_available_kib: available,
        margin_kib: margin,
        refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/vdb                                partition\t524284\t\t262144\t\t-2\n\
/var/swap\\040file                       file\t\t1048572\t\t1024\t\t10\n";

    #[test]
    fn parses_areas_with_escaped_names() {
        let a = parse_swaps(SWAPS);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].path, PathBuf::from("/dev/vdb"));
        assert_eq!(a[0].kind, "partition");
        assert_eq!(
            (a[0].size_kib, a[0].used_kib, a[0].priority),
            (524284, 262144, -2)
        );
        assert_eq!(a[0].preferred_priority(), None);
        assert_eq!(a[1].path, PathBuf::from("/var/swap file"));
        assert_eq!(a[1].preferred_priority(), Some(10));
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
        assert!(parse_swaps("Filename Type Size Used Priority\ngarbage line\n").is_empty());
    }

    #[test]
    fn meminfo_needs_mem_available() {
        let m = parse_meminfo("MemTotal:  2000000 kB\nMemFree: 10 kB\nMemAvailable:  1500000 kB\n");
        assert_eq!(
            m,
            Some(MemInfo {
                mem_available_kib: 1_500_000
            })
        );
        assert_eq!(parse_meminfo("MemTotal: 1 kB\nMemFree: 1 kB\n"), None);
    }

    fn k(release: &str) -> KernelInfo {
        KernelInfo::from_release(release)
    }

    #[test]
    fn cycle_needs_room_for_the_swap_plus_a_margin() {
        let areas = Some(parse_swaps(SWAPS));
        let used = 262144 + 1024;
        let mem = |avail| {
            Some(MemInfo {
                mem_available_kib: avail,
            })
        };
        let k61 = k("6.1.0-50-cloud-amd64");
        let ok = plan_cycle(&k61, areas.clone(), mem(used + 256 * 1024));
        assert_eq!(ok.refusal, None);
        assert_eq!(ok.used_kib, used);
        let tight = plan_cycle(&k61, areas.clone(), mem(used + 256 * 1024 - 1));
        assert!(matches!(tight.refusal, Some(CycleRefusal::NoRoom { .. })));
        assert!(tight.refusal.unwrap().to_string().contains("only"));
        let none = plan_cycle(&k61, Some(vec![]), mem(10_000_000));
        assert_eq!(none.refusal, Some(CycleRefusal::NoArea));
        let no_mem = plan_cycle(&k61, areas.clone(), None);
        assert_eq!(no_mem.refusal, Some(CycleRefusal::NoMemAvailable));
        // a big swap needs a quarter of itself as margin
        assert_eq!(margin_kib(4 * 1024 * 1024), 1024 * 1024);
    }

    /// Issue 15: the kernel rule is one of the cycle's refusals, ahead of the room; a kernel
    /// without swap support is told apart from one without an active area.
    #[test]
    fn the_kernel_and_swap_support_are_rules_of_the_cycle() {
        let areas = Some(parse_swaps(SWAPS));
        let room = Some(MemInfo {
            mem_available_kib: 100_000_000,
        });
        let legacy = plan_cycle(&k("3.10.0-1160.el7.x86_64"), areas, room);
        let r = legacy.refusal.unwrap();
        assert!(matches!(r, CycleRefusal::Kernel { .. }));
        assert!(r.to_string().contains("3.10.0-1160"), "{r}");
        assert!(r.way_on().contains("cgleak diagnose"));
        let none = plan_cycle(&k("6.1.0"), None, room);
        assert_eq!(none.refusal, Some(CycleRefusal::NoSwapSupport));
        let json = serde_json::to_value(&none).unwrap();
        assert!(json["refusal"]
            .as_str()
            .unwrap()
            .contains("no swap support"));
    }
}
