//! The kernel's `oom_badness` score of one task for a memcg OOM, recomputed from /proc.
//!
//! points = rss + swap entries + page tables (pages) + oom_score_adj * (totalpages / 1000),
//! with the era's page-table count, root bonus and floor ([`super::era`]); oom_score_adj -1000
//! and kernel threads are unkillable, exiting tasks are skipped. `totalpages` is the OOM memcg's
//! limit plus its swap headroom (`mem_cgroup_get_limit` in 3.10, `mem_cgroup_get_max` later):
//! /proc/PID/oom_score divides by RAM + swap instead, so it cannot tell a memcg's victim.
//! Sources and the derivations: docs/oom-victim.md ("The score", "totalpages").
//!
//! The figures come from /proc/PID/status (proc(5): `VmRSS`, `RssAnon`/`RssFile`/`RssShmem`
//! from 4.5, `VmSwap`, `VmPTE`, `VmPMD` 4.0-4.14, `Threads`, `CapEff`, all sizes in kB),
//! /proc/PID/stat (flags, start time) and /proc/PID/oom_score_adj, read through
//! [`ProcFiles`] so tests use fakes.

use super::era::{Era, PgTables, RootBonus};
use crate::error::Result;
use crate::host::Host;
use serde::Serialize;

/// `OOM_SCORE_ADJ_MIN`: never killed.
pub const OOM_SCORE_ADJ_MIN: i32 = -1000;
/// include/linux/sched.h: a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;
/// include/linux/sched.h: the task is exiting.
const PF_EXITING: u64 = 0x4;
/// include/uapi/linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;

/// Files below /proc (`1234/status`): the one thing the score needs of the host.
pub trait ProcFiles {
    /// The file's contents; None when it does not exist (the process exited).
    fn proc_file(&self, rel: &str) -> Result<Option<String>>;
}

impl<T: Host + ?Sized> ProcFiles for T {
    fn proc_file(&self, rel: &str) -> Result<Option<String>> {
        Host::proc_file(self, rel)
    }
}

/// One process as the score sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskMem {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// Clock ticks after boot (/proc/PID/stat field 22): the join-order approximation.
    pub start_time: u64,
    pub threads: u32,
    /// Resident pages: anon + file + shmem (`get_mm_rss`).
    pub rss_pages: u64,
    /// Swap entries (`MM_SWAPENTS`).
    pub swap_pages: u64,
    /// VmPTE and VmPMD in kB: the page tables, counted by era in [`TaskMem::pgtables_pages`].
    pub pte_kb: u64,
    pub pmd_kb: u64,
    pub oom_score_adj: i32,
    pub cap_sys_admin: bool,
    pub kernel_thread: bool,
    pub exiting: bool,
    /// The page size in kB the figures were converted with.
    pub page_kb: u64,
}

impl TaskMem {
    /// Page-table pages as this era's `oom_badness` counts them. VmPTE is `nr_ptes` pages in
    /// 3.x, PTE pages in 4.0-4.14 (VmPMD the PMD pages), every level from 4.15 (VmPMD gone).
    pub fn pgtables_pages(&self, era: &Era) -> u64 {
        let kb = match era.pgtables {
            PgTables::NrPtes | PgTables::PgtablesBytes => self.pte_kb,
            PgTables::NrPtesPmds => self.pte_kb + self.pmd_kb,
        };
        kb / self.page_kb.max(1)
    }
}

/// A task's standing in the scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Points {
    /// The score `oom_badness` returns.
    Score(i64),
    /// Never chosen, and why (adj -1000, a kernel thread, exiting).
    Excluded(String),
}

/// `oom_badness` for a memcg OOM with `totalpages`, by `era`'s rules.
pub fn badness(era: &Era, t: &TaskMem, totalpages: u64) -> Points {
    if t.kernel_thread {
        return Points::Excluded("kernel thread".into());
    }
    if t.oom_score_adj == OOM_SCORE_ADJ_MIN {
        return Points::Excluded("oom_score_adj -1000".into());
    }
    if t.exiting {
        // 3.10 aborts the scan to wait for it, later kernels skip a task without mm: either
        // way it is not the one chosen now.
        return Points::Excluded("exiting".into());
    }
    let mut base = (t.rss_pages + t.swap_pages + t.pgtables_pages(era)) as i64;
    let mut adj = t.oom_score_adj as i64;
    if t.cap_sys_admin {
        match era.root_bonus {
            RootBonus::AdjMinus30 => adj -= 30,
            RootBonus::ThreePercentOfPoints => base -= base * 3 / 100,
            RootBonus::None => {}
        }
    }
    // `adj *= totalpages / 1000`: the division comes first, in integers.
    let points = base + adj * (totalpages / 1000) as i64;
    Points::Score(if era.floor { points.max(1) } else { points })
}

/// totalpages of a memcg OOM: the limit in pages, plus, when swappiness is not 0, the swap the
/// memcg may still use, at most the machine's swap (`mem_cgroup_get_max`; 3.10's
/// `mem_cgroup_get_limit` is the same sum as `min(limit + swap, memsw limit)`). The headroom is
/// memsw limit - limit on v1, memory.swap.max on v2; None when it is unlimited. At least 1.
pub fn totalpages(
    limit_bytes: u64,
    swap_headroom_bytes: Option<u64>,
    swappiness: u64,
    swap_total_bytes: u64,
    page_size: u64,
) -> u64 {
    let page = page_size.max(1);
    let max = limit_bytes / page;
    let swap = if swappiness == 0 {
        0
    } else {
        let total = swap_total_bytes / page;
        swap_headroom_bytes.map_or(total, |h| (h / page).min(total))
    };
    (max + swap).max(1)
}

/// The fields of /proc/PID/status the score uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub vm_rss_kb: Option<u64>,
    /// RssAnon + RssFile + RssShmem (4.5 on); VmRSS is their sum.
    pub rss_parts_kb: Option<u64>,
    pub vm_swap_kb: u64,
    pub vm_pte_kb: u64,
    pub vm_pmd_kb: u64,
    pub threads: u32,
    pub cap_eff: u64,
}

/// Parse /proc/PID/status. Unknown lines are skipped; a kernel thread has no Vm lines.
pub fn parse_status(s: &str) -> Status {
    let mut st = Status::default();
    let mut parts: Option<u64> = None;
    for line in s.lines() {
        let Some((key, val)) = line.split_once(':') else {
            continue;
        };
        let val = val.trim();
        let kb = || val.trim_end_matches("kB").trim().parse::<u64>().ok();
        match key {
            "Name" => st.name = val.to_string(),
            "VmRSS" => st.vm_rss_kb = kb(),
            "RssAnon" | "RssFile" | "RssShmem" => {
                parts = Some(parts.unwrap_or(0) + kb().unwrap_or(0));
            }
            "VmSwap" => st.vm_swap_kb = kb().unwrap_or(0),
            "VmPTE" => st.vm_pte_kb = kb().unwrap_or(0),
            "VmPMD" => st.vm_pmd_kb = kb().unwrap_or(0),
            "Threads" => st.threads = val.parse().unwrap_or(0),
            "CapEff" => st.cap_eff = u64::from_str_radix(val, 16).unwrap_or(0),
            _ => {}
        }
    }
    st.rss_parts_kb = parts;
    st
}

/// From /proc/PID/stat: (state, ppid, flags, starttime). None when malformed.
pub fn parse_stat_fields(stat: &str) -> Option<(char, u32, u64, u64)> {
    let (_, mut f) = crate::host::procs::split_stat(stat)?;
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags (field 9).
    let flags = f.nth(4)?.parse().ok()?;
    // minflt .. nice, num_threads, itrealvalue, then starttime (field 22): 12 fields on.
    let start = f.nth(12)?.parse().ok()?;
    Some((state, ppid, flags, start))
}

/// One process's figures, or None when it has gone (any of its files missing).
pub fn read_task<P: ProcFiles + ?Sized>(p: &P, pid: u32, page_kb: u64) -> Result<Option<TaskMem>> {
    let (Some(status), Some(stat), Some(adj)) = (
        p.proc_file(&format!("{pid}/status"))?,
        p.proc_file(&format!("{pid}/stat"))?,
        p.proc_file(&format!("{pid}/oom_score_adj"))?,
    ) else {
        return Ok(None);
    };
    let Some((state, ppid, flags, start_time)) = parse_stat_fields(&stat) else {
        return Ok(None);
    };
    let st = parse_status(&status);
    let page_kb = page_kb.max(1);
    let rss_kb = st.rss_parts_kb.or(st.vm_rss_kb).unwrap_or(0);
    Ok(Some(TaskMem {
        pid,
        comm: st.name.clone(),
        ppid,
        start_time,
        threads: st.threads.max(1),
        rss_pages: rss_kb / page_kb,
        swap_pages: st.vm_swap_kb / page_kb,
        pte_kb: st.vm_pte_kb,
        pmd_kb: st.vm_pmd_kb,
        oom_score_adj: adj.trim().parse().unwrap_or(0),
        cap_sys_admin: st.cap_eff & (1 << CAP_SYS_ADMIN) != 0,
        kernel_thread: flags & PF_KTHREAD != 0,
        exiting: matches!(state, 'Z' | 'X') || flags & PF_EXITING != 0,
        page_kb,
    }))
}

/// The page size in kB, from the first `KernelPageSize` of /proc/self/smaps; 4 when it cannot
/// be read (the note says so).
pub fn page_kb<P: ProcFiles + ?Sized>(p: &P) -> (u64, Option<String>) {
    let found = p.proc_file("self/smaps").ok().flatten().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("KernelPageSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match found {
        Some(kb) if kb > 0 => (kb, None),
        _ => (
            4,
            Some("page size unknown (no KernelPageSize in /proc/self/smaps): 4 KiB assumed".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::era::era_for;
    use std::collections::BTreeMap;

    struct Fake(BTreeMap<String, String>);
    impl ProcFiles for Fake {
        fn proc_file(&self, rel: &str) -> Result<Option<String>> {
            Ok(self.0.get(rel).cloned())
        }
    }

    fn task(rss: u64, adj: i32) -> TaskMem {
        TaskMem {
            pid: 10,
            comm: "app".into(),
            ppid: 1,
            start_time: 100,
            threads: 1,
            rss_pages: rss,
            swap_pages: 0,
            pte_kb: 40,
            pmd_kb: 8,
            oom_score_adj: adj,
            cap_sys_admin: false,
            kernel_thread: false,
            exiting: false,
            page_kb: 4,
        }
    }

    const STATUS_618: &str =
        "Name:\tapp\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPPid:\t17\n\
        VmPeak:\t   75000 kB\nVmRSS:\t   71680 kB\nRssAnon:\t   70000 kB\nRssFile:\t    1600 kB\n\
        RssShmem:\t      80 kB\nVmPTE:\t     188 kB\nVmSwap:\t     400 kB\nThreads:\t1\n\
        CapEff:\t000001ffffffffff\nvoluntary_ctxt_switches:\t3\n";

    const STAT: &str = "4242 (app) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn status_fields() {
        let st = parse_status(STATUS_618);
        assert_eq!(st.name, "app");
        assert_eq!(st.vm_rss_kb, Some(71680));
        assert_eq!(st.rss_parts_kb, Some(71680));
        assert_eq!((st.vm_swap_kb, st.vm_pte_kb, st.vm_pmd_kb), (400, 188, 0));
        assert_eq!(st.threads, 1);
        assert_ne!(st.cap_eff & (1 << CAP_SYS_ADMIN), 0);
        // 3.10: no Rss* split, VmRSS only; a kernel thread has no Vm lines at all.
        let old = parse_status("Name:\tjava\nVmRSS:\t  1024 kB\nVmPTE:\t 8 kB\nVmSwap:\t0 kB\n");
        assert_eq!((old.rss_parts_kb, old.vm_rss_kb), (None, Some(1024)));
        assert_eq!(
            parse_status("Name:\tkthreadd\nThreads:\t1\n").vm_rss_kb,
            None
        );
    }

    #[test]
    fn stat_fields() {
        assert_eq!(parse_stat_fields(STAT), Some(('S', 17, 4194560, 123456)));
        assert_eq!(parse_stat_fields("1 (x) S 0"), None);
    }

    #[test]
    fn read_a_task_through_the_fake() {
        let mut m = BTreeMap::new();
        m.insert("4242/status".to_string(), STATUS_618.to_string());
        m.insert("4242/stat".to_string(), STAT.to_string());
        m.insert("4242/oom_score_adj".to_string(), "999\n".to_string());
        let f = Fake(m);
        let t = read_task(&f, 4242, 4).unwrap().unwrap();
        assert_eq!(t.rss_pages, 71680 / 4);
        assert_eq!(t.swap_pages, 100);
        assert_eq!(t.pgtables_pages(&era_for("6.18.44", None)), 47);
        assert_eq!((t.oom_score_adj, t.ppid, t.start_time), (999, 17, 123456));
        assert!(t.cap_sys_admin && !t.kernel_thread && !t.exiting);
        // Gone between the listing and the read.
        assert_eq!(read_task(&f, 1, 4).unwrap(), None);
    }

    #[test]
    fn kernel_threads_and_exiting_tasks_from_stat_flags() {
        let mut m = BTreeMap::new();
        let kt = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0";
        m.insert("2/status".into(), "Name:\tkthreadd\nThreads:\t1\n".into());
        m.insert("2/stat".into(), kt.into());
        m.insert("2/oom_score_adj".into(), "0".into());
        let z = STAT.replacen(" S ", " Z ", 1);
        m.insert("7/status".into(), STATUS_618.into());
        m.insert("7/stat".into(), z);
        m.insert("7/oom_score_adj".into(), "0".into());
        let f = Fake(m);
        let era = era_for("6.18.44", None);
        let k = read_task(&f, 2, 4).unwrap().unwrap();
        assert_eq!(
            badness(&era, &k, 1000),
            Points::Excluded("kernel thread".into())
        );
        let z = read_task(&f, 7, 4).unwrap().unwrap();
        assert_eq!(badness(&era, &z, 1000), Points::Excluded("exiting".into()));
    }

    #[test]
    fn scores_by_era() {
        // 96 MiB limit, no swap: 24576 pages, 24 per adj unit.
        let tp = totalpages(96 << 20, None, 60, 0, 4096);
        assert_eq!(tp, 24576);
        let new = era_for("6.18.44", None);
        // rss 1000 + PTE 40 kB (10 pages) + 999 * 24.
        assert_eq!(
            badness(&new, &task(1000, 999), tp),
            Points::Score(1010 + 999 * 24)
        );
        // 4.14 counts the PMD pages too.
        let e414 = era_for("4.14.200", None);
        assert_eq!(badness(&e414, &task(1000, 0), tp), Points::Score(1012));
        assert_eq!(
            badness(&new, &task(1000, -1000), tp),
            Points::Excluded("oom_score_adj -1000".into())
        );
    }

    #[test]
    fn the_floor_ties_what_adj_outweighs() {
        let tp = 40960; // 160 MiB
        let old = era_for("3.10.0-1127.el7.x86_64", None);
        let new = era_for("5.10.0-30-amd64", None);
        // The fixtures' case: pause (262 pages) and app (38158) at -998 both floor to 1.
        let pause = task(262, -998);
        let app = task(38158, -998);
        assert_eq!(badness(&old, &pause, tp), Points::Score(1));
        assert_eq!(badness(&old, &app, tp), Points::Score(1));
        // Without the floor the app stands out.
        let (Points::Score(p), Points::Score(a)) =
            (badness(&new, &pause, tp), badness(&new, &app, tp))
        else {
            panic!("scores expected");
        };
        assert!(a > p, "{a} {p}");
        assert_eq!(p, 262 + 10 - 998 * 40);
    }

    #[test]
    fn root_bonus_by_era() {
        let mut t = task(10_000, 0);
        t.cap_sys_admin = true;
        let tp = 100_000;
        // Upstream 3.10: adj - 30, times totalpages / 1000.
        let up = era_for("3.10.108", None);
        assert_eq!(badness(&up, &t, tp), Points::Score(10_010 - 30 * 100));
        // RHEL 7 and 3.19-4.16: 3 % of the points.
        let rhel = era_for("3.10.0-1127.el7.x86_64", None);
        assert_eq!(
            badness(&rhel, &t, tp),
            Points::Score(10_010 - 10_010 * 3 / 100)
        );
        // 4.17 on: nothing.
        assert_eq!(
            badness(&era_for("4.19", None), &t, tp),
            Points::Score(10_010)
        );
    }

    #[test]
    fn adj_is_scaled_after_integer_division() {
        // totalpages 1999: one adj unit is 1 page, not 1.999.
        let new = era_for("6.1", None);
        assert_eq!(badness(&new, &task(0, 500), 1999), Points::Score(10 + 500));
    }

    #[test]
    fn totalpages_swap_headroom() {
        let g = 1u64 << 30;
        // memsw = limit: no headroom, whatever the swap.
        assert_eq!(totalpages(g, Some(0), 60, 8 * g, 4096), 262_144);
        // memsw = limit + 1 GiB, 8 GiB of swap: 1 GiB more.
        assert_eq!(totalpages(g, Some(g), 60, 8 * g, 4096), 524_288);
        // Unlimited memsw: the machine's swap.
        assert_eq!(totalpages(g, None, 60, 2 * g, 4096), 786_432);
        // swappiness 0: the swap does not count.
        assert_eq!(totalpages(g, None, 0, 2 * g, 4096), 262_144);
        // A limit of 0 pages: 1, never a division by zero.
        assert_eq!(totalpages(0, None, 0, 0, 4096), 1);
    }

    #[test]
    fn page_size_from_smaps() {
        let mut m = BTreeMap::new();
        m.insert(
            "self/smaps".to_string(),
            "5555-5556 r--p 0 08:01 1 /bin/x\nSize: 4 kB\nKernelPageSize:       64 kB\n"
                .to_string(),
        );
        assert_eq!(page_kb(&Fake(m)), (64, None));
        let (kb, note) = page_kb(&Fake(BTreeMap::new()));
        assert_eq!(kb, 4);
        assert!(note.unwrap().contains("assumed"));
    }
}
