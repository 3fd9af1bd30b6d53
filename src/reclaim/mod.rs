//! `cgleak reclaim`: free the dying memcgs the kernel can free without a reboot, and report
//! how many were dying before and after and how long the kernel took.
//!
//! Two steps, in order:
//! 1. drop the clean page cache (/proc/sys/vm/drop_caches): frees the dying memcgs pinned only
//!    by page cache. Cost: every workload on the node starts with cold page caches.
//! 2. with `--swap-cycle`, on kernels >= 4.8: swapoff and swapon each swap area, one at a time
//!    (see [`crate::reclaim::swap`]). There, page cache does not keep an id (released at offline since
//!    4.8, 73f576c04b94); swapped-out pages do, and only reading them back frees those ids.
//!    Cost: disk IO while the pages come back, and memory for them (refused unless
//!    MemAvailable covers the swap in use plus a margin).
//!
//! What the lab saw on real kernels (scripts/vm/README.md): on 5.10 and 6.1, 70000 memcgs
//! dying with page cache left mkdir working; 65533 dying with swapped-out pages made mkdir fail
//! with ENOSPC; drop_caches freed the former and not one of the latter; swapoff freed those.
//! On 3.10 slab objects pin dying memcgs and neither step helps: `cgleak repair` is the remedy.

pub mod swap;

use crate::error::{Error, Result};
use crate::host::{parse_proc_cgroups_memory, Node};
use crate::model::kernel::KernelInfo;
use crate::reclaim::swap::{parse_meminfo, parse_swaps, plan_cycle, CyclePlan};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What `cgleak reclaim` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReclaimOptions {
    /// Only report the counts and what would be done; change nothing.
    pub dry_run: bool,
    /// After the drop, swapoff and swapon every swap area (kernels >= 3.16).
    pub swap_cycle: bool,
}

/// One swap area's cycle.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AreaCycle {
    pub path: PathBuf,
    /// Seconds swapoff took (reading the area back).
    pub swapoff_seconds: f64,
    /// The area is in use again (swapon worked, or swapoff failed and the kernel kept it on).
    pub in_use: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// The swap part of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SwapReport {
    /// What /proc/swaps and /proc/meminfo said before, and whether a cycle fits.
    pub plan: CyclePlan,
    /// Whether the cycle was asked for.
    pub requested: bool,
    /// The areas cycled, in order (empty for a dry run or when not asked).
    pub cycled: Vec<AreaCycle>,
    /// How long the counted value kept falling after the cycle (the count it settled at is the
    /// report's `dying_after`).
    pub seconds_to_settle: f64,
    /// Stopped by Ctrl-C/SIGTERM before every area was cycled.
    pub interrupted: bool,
}

impl SwapReport {
    /// Areas left out of use by a failed swapon: the operator must swapon them.
    pub fn left_off(&self) -> Vec<&PathBuf> {
        self.cycled
            .iter()
            .filter(|c| !c.in_use)
            .map(|c| &c.path)
            .collect()
    }
}

/// The outcome of a reclaim.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReclaimReport {
    /// Dying memcgs before (None when this kernel's /proc/cgroups does not count them).
    pub dying_before: Option<u64>,
    /// Dying memcgs at the end (after the drop, and after the swap cycle when it ran).
    pub dying_after: Option<u64>,
    /// Dying memcgs right after the page-cache drop settled.
    pub dying_after_drop: Option<u64>,
    /// num_cgroups of the memory row of /proc/cgroups, before and at the end.
    pub counted_before: u64,
    pub counted_after: u64,
    /// Live memcgs (directories of the hierarchy, its root included), at the end.
    pub live: u64,
    /// How long the counted value kept falling after the drop (0 for a dry run).
    pub seconds_to_settle: f64,
    /// Whether drop_caches was written.
    pub dropped: bool,
    /// Kernel >= 4.8: only swapped-out pages keep the ids of dying memcgs.
    pub ids_released_at_offline: Option<bool>,
    pub swap: SwapReport,
}

/// How often the counted value is polled after a change, and how long it must stay put.
const POLL: Duration = Duration::from_millis(100);
const STABLE_FOR: Duration = Duration::from_secs(1);

fn counted(fs: &dyn Node) -> Result<u64> {
    let s = fs.proc_cgroups()?;
    parse_proc_cgroups_memory(&s)
        .map(|(_, n, _)| n)
        .ok_or_else(|| Error::Parse {
            path: "/proc/cgroups".into(),
            what: "memory row".into(),
            content: s.clone(),
        })
}

fn dying(counts_dying: bool, counted: u64, live: u64) -> Option<u64> {
    counts_dying.then(|| counted.saturating_sub(live))
}

/// Poll the counted value from `start` until it has not fallen for 1 s or `timeout` passes:
/// (the last value, seconds from `start` to its last fall).
fn settle(fs: &dyn Node, start: Instant, timeout: Duration) -> Result<(u64, f64)> {
    let mut last = counted(fs)?;
    let mut last_fall = Instant::now();
    let mut settled_at = start.elapsed();
    while last_fall.elapsed() < STABLE_FOR && start.elapsed() < timeout {
        std::thread::sleep(POLL);
        let now = counted(fs)?;
        if now < last {
            last = now;
            last_fall = Instant::now();
            settled_at = start.elapsed();
        }
    }
    Ok((last, settled_at.as_secs_f64()))
}

/// Drop clean page cache, optionally cycle the swap, and wait for the dying memcgs they
/// pinned to be freed.
///
/// Everything that would refuse is checked before anything changes: root, and for a swap
/// cycle the kernel and the room in memory. `settle_timeout` bounds each wait.
pub fn reclaim(
    fs: &dyn Node,
    opts: &ReclaimOptions,
    settle_timeout: Duration,
) -> Result<ReclaimReport> {
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    let counts_dying = kernel.counts_dying() == Some(true);
    if !opts.dry_run && !fs.may_write() {
        return Err(Error::refused(
            "dropping the page cache needs root (write to /proc/sys/vm/drop_caches)",
            "run `cgleak reclaim --yes` as root, or `cgleak reclaim --dry-run` to only count",
        ));
    }
    let plan = plan_cycle(
        parse_swaps(&fs.proc_swaps()?),
        parse_meminfo(&fs.meminfo()?),
    );
    if opts.swap_cycle && !opts.dry_run {
        if !counts_dying {
            return Err(Error::refused(
                format!(
                    "a swap cycle does not free memcg ids on kernel {}: slab objects pin its \
                     dying memcgs, not swap",
                    kernel.release
                ),
                "on 3.10 run `cgleak plan` and `cgleak repair` (see MIGRATION.md); nothing was changed",
            ));
        }
        if let Some(why) = &plan.refusal {
            return Err(Error::refused(
                format!("the swap cycle would not fit: {why}"),
                "run `cgleak reclaim` without --swap-cycle, or free memory first; nothing was changed",
            ));
        }
    }
    let live = fs.hierarchy_live()?;
    let counted_before = counted(fs)?;
    let before = dying(counts_dying, counted_before, live);
    let mut report = ReclaimReport {
        dying_before: before,
        dying_after: before,
        dying_after_drop: before,
        counted_before,
        counted_after: counted_before,
        live,
        seconds_to_settle: 0.0,
        dropped: false,
        ids_released_at_offline: kernel.ids_released_at_offline(),
        swap: SwapReport {
            plan,
            requested: opts.swap_cycle,
            cycled: Vec::new(),
            seconds_to_settle: 0.0,
            interrupted: false,
        },
    };
    if opts.dry_run {
        return Ok(report);
    }
    let start = Instant::now();
    fs.drop_caches(1)?;
    report.dropped = true;
    let (after, secs) = settle(fs, start, settle_timeout)?;
    let live_after = fs.hierarchy_live()?;
    report.counted_after = after;
    report.live = live_after;
    report.dying_after_drop = dying(counts_dying, after, live_after);
    report.dying_after = report.dying_after_drop;
    report.seconds_to_settle = secs;
    if !opts.swap_cycle {
        return Ok(report);
    }
    let start = Instant::now();
    for area in report.swap.plan.areas.clone() {
        if crate::repair::execute::INTERRUPTED.load(Ordering::SeqCst) {
            report.swap.interrupted = true;
            break;
        }
        let t = Instant::now();
        let off = fs.swapoff(&area.path);
        let mut cycle = AreaCycle {
            path: area.path.clone(),
            swapoff_seconds: t.elapsed().as_secs_f64(),
            in_use: true,
            error: None,
        };
        match off {
            // The area is off: put it back at once with the priority it had, whatever else
            // happens (an interruption waits until it is back).
            Ok(()) => {
                if let Err(e) = fs.swapon(&area.path, area.preferred_priority()) {
                    cycle.in_use = false;
                    cycle.error = Some(e.to_string());
                }
            }
            // ENOMEM, EINTR: try_to_unuse failed and the kernel put the area back in use.
            Err(e) => cycle.error = Some(e.to_string()),
        }
        let failed = cycle.error.is_some();
        report.swap.cycled.push(cycle);
        if failed {
            break;
        }
    }
    let (after, secs) = settle(fs, start, settle_timeout)?;
    let live_after = fs.hierarchy_live()?;
    report.counted_after = after;
    report.live = live_after;
    report.dying_after = dying(counts_dying, after, live_after);
    report.swap.seconds_to_settle = secs;
    Ok(report)
}

impl ReclaimReport {
    /// Dying memcgs freed by the drop and the cycle together (None when not counted).
    pub fn freed(&self) -> Option<u64> {
        Some(self.dying_before?.saturating_sub(self.dying_after?))
    }

    /// Whether every step that ran worked (no swap area left off or failed).
    pub fn ok(&self) -> bool {
        self.swap.cycled.iter().all(|c| c.error.is_none()) && !self.swap.interrupted
    }

    pub fn render_text(&self) -> String {
        let n = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
        let mib = |kib: u64| format!("{} MiB", kib / 1024);
        let plan = &self.swap.plan;
        let mut s = String::new();
        let swap_line = if plan.areas.is_empty() {
            "swap: none in use".to_string()
        } else {
            format!(
                "swap: {} in use on {} ({} available in memory, {} margin)",
                mib(plan.used_kib),
                plan.areas
                    .iter()
                    .map(|a| a.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                mib(plan.mem_available_kib),
                mib(plan.margin_kib)
            )
        };
        if !self.dropped {
            s.push_str("dry run: nothing was dropped\n");
            s.push_str(&format!(
                "dying memcgs now:  {} (memory num_cgroups {}, live {})\n",
                n(self.dying_before),
                self.counted_before,
                self.live
            ));
            s.push_str(
                "`cgleak reclaim --yes` would write 1 to /proc/sys/vm/drop_caches: the kernel drops \
                 every clean page-cache page on the node, so every workload starts with cold \
                 page caches and disk IO rises while they refill.\n",
            );
            s.push_str(&swap_line);
            s.push('\n');
            match &plan.refusal {
                None => s.push_str(&format!(
                    "`--swap-cycle` would then swapoff and swapon each area in turn, reading {} \
                     back into memory (the workloads keep running; disk IO while it reads), \
                     which frees the ids swapped-out pages hold (kernels >= 4.8)\n",
                    mib(plan.used_kib)
                )),
                Some(why) if self.swap.requested => {
                    s.push_str(&format!("`--swap-cycle` would be refused: {why}\n"))
                }
                Some(_) => {}
            }
            return s;
        }
        s.push_str(
            "dropped the clean page cache (echo 1 > /proc/sys/vm/drop_caches). Cost: every \
             workload on the node starts with cold page caches; disk IO rises while they refill.\n",
        );
        s.push_str(&format!(
            "dying memcgs:  before {}  after the drop {}  (memory num_cgroups {}, live {})\n",
            n(self.dying_before),
            n(self.dying_after_drop),
            self.counted_before,
            self.live
        ));
        s.push_str(&format!(
            "the kernel freed them in {:.1} s (counted value stable for 1 s after that)\n",
            self.seconds_to_settle
        ));
        if self.swap.requested {
            for c in &self.swap.cycled {
                match (&c.error, c.in_use) {
                    (None, _) => s.push_str(&format!(
                        "swap cycle: {} off in {:.1} s, back on\n",
                        c.path.display(),
                        c.swapoff_seconds
                    )),
                    (Some(e), true) => s.push_str(&format!(
                        "swap cycle: {} stayed in use: {e}\n",
                        c.path.display()
                    )),
                    (Some(e), false) => s.push_str(&format!(
                        "SWAP AREA LEFT OFF: {} ({e}): run `swapon {}` now\n",
                        c.path.display(),
                        c.path.display()
                    )),
                }
            }
            if self.swap.interrupted {
                s.push_str("swap cycle interrupted: the areas not listed above were not touched\n");
            }
            if plan.areas.is_empty() {
                s.push_str("swap cycle: no swap area is active, nothing to cycle\n");
            }
            s.push_str(&format!(
                "dying memcgs after the swap cycle: {} (settled in {:.1} s)\n",
                n(self.dying_after),
                self.swap.seconds_to_settle
            ));
        }
        match (self.freed(), self.dying_after) {
            (Some(f), Some(0)) => s.push_str(&format!("{f} freed; none left dying\n")),
            (Some(f), Some(a)) => {
                s.push_str(&format!("{f} freed; {a} still dying"));
                if self.ids_released_at_offline == Some(true) {
                    if self.swap.requested {
                        s.push_str(
                            ": pinned by kernel memory (slab), which holds no id on this kernel; \
                             `cgleak diagnose` tells whether ids are short\n",
                        );
                    } else if plan.used_kib > 0 {
                        s.push_str(&format!(
                            ". On this kernel only swapped-out pages keep their ids ({} in swap): \
                             if mkdir still fails, `cgleak reclaim --swap-cycle` in a quiet window \
                             frees them\n",
                            mib(plan.used_kib)
                        ));
                    } else {
                        s.push_str(
                            ": no swap is in use, so they hold no ids on this kernel (kernel \
                             memory pins them)\n",
                        );
                    }
                } else {
                    s.push_str(
                        ": pinned by something the page-cache drop does not free (kernel memory); \
                         on this kernel each keeps its id\n",
                    );
                }
            }
            _ => s.push_str(
                "this kernel does not count dying memcgs in /proc/cgroups: probe with mkdir \
                 whether ids are free again\n",
            ),
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::CgroupMode;
    use crate::host::{Hierarchy, Host};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// A fake whose counted value falls by `step` per read after drop_caches, down to `floor`.
    struct Fake {
        release: String,
        counted: Mutex<u64>,
        live: u64,
        floor: u64,
        step: u64,
        dropped: Mutex<Vec<u8>>,
        writable: bool,
        root: PathBuf,
    }

    impl Fake {
        fn new(release: &str, counted: u64, live: u64, floor: u64, step: u64) -> Fake {
            Fake {
                release: release.into(),
                counted: Mutex::new(counted),
                live,
                floor,
                step,
                dropped: Mutex::new(vec![]),
                writable: true,
                root: PathBuf::from("/sys/fs/cgroup/memory"),
            }
        }
    }

    impl Hierarchy for Fake {
        fn root(&self) -> &Path {
            &self.root
        }
        fn describe(&self) -> String {
            "fake".into()
        }
        fn exists(&self, _: &str) -> bool {
            true
        }
        fn children(&self, _: &str) -> Result<Vec<String>> {
            Ok(vec![])
        }
        fn has_file(&self, _: &str, _: &str) -> bool {
            false
        }
        fn read(&self, _: &str, _: &str) -> Result<String> {
            Ok(String::new())
        }
        fn write(&self, _: &str, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        fn mkdir(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn rmdir(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn rename(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        fn hierarchy_mount(&self) -> PathBuf {
            self.root.clone()
        }
        fn hierarchy_live(&self) -> Result<u64> {
            Ok(self.live)
        }
    }

    impl Host for Fake {
        fn kernel_release(&self) -> Result<String> {
            Ok(self.release.clone())
        }
        fn proc_cgroups(&self) -> Result<String> {
            let mut c = self.counted.lock().unwrap();
            let v = *c;
            if !self.dropped.lock().unwrap().is_empty() {
                *c = c.saturating_sub(self.step).max(self.floor);
            }
            Ok(format!(
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t5\t1\nmemory\t4\t{v}\t1\n"
            ))
        }
        fn kernel_cmdline(&self) -> Result<String> {
            Ok(String::new())
        }
        fn boot_id(&self) -> Result<String> {
            Ok("b".into())
        }
        fn cgroup_mode(&self) -> Result<CgroupMode> {
            Ok(CgroupMode::V1)
        }
        fn find_processes(&self, _: &str) -> Result<Vec<u32>> {
            Ok(vec![])
        }
        fn pid_alive(&self, _: u32) -> bool {
            false
        }
        fn drop_caches(&self, what: u8) -> Result<()> {
            self.dropped.lock().unwrap().push(what);
            Ok(())
        }
        fn may_write(&self) -> bool {
            self.writable
        }
        fn proc_swaps(&self) -> Result<String> {
            Ok("Filename\tType\tSize\tUsed\tPriority\n".into())
        }
        fn meminfo(&self) -> Result<String> {
            Ok("MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n".into())
        }
        fn swapoff(&self, _: &Path) -> Result<()> {
            panic!("no swap here")
        }
        fn swapon(&self, _: &Path, _: Option<i32>) -> Result<()> {
            panic!("no swap here")
        }
    }

    #[test]
    fn dry_run_counts_and_drops_nothing() {
        let fs = Fake::new("6.1.0-50-cloud-amd64", 65000, 100, 110, 1000);
        let r = reclaim(
            &fs,
            &ReclaimOptions {
                dry_run: true,
                ..Default::default()
            },
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!r.dropped);
        assert!(fs.dropped.lock().unwrap().is_empty());
        assert_eq!(r.dying_before, Some(64900));
        assert_eq!(r.dying_after, Some(64900));
        assert_eq!(r.seconds_to_settle, 0.0);
        let t = r.render_text();
        assert!(t.contains("dry run"), "{t}");
        assert!(t.contains("64900"), "{t}");
        assert!(t.contains("cold page caches"), "{t}");
    }

    #[test]
    fn drop_waits_until_the_count_settles() {
        let fs = Fake::new("5.10.0-32-cloud-amd64", 10100, 100, 1100, 3000);
        let r = reclaim(&fs, &ReclaimOptions::default(), Duration::from_secs(10)).unwrap();
        assert!(r.dropped);
        assert_eq!(*fs.dropped.lock().unwrap(), vec![1]);
        assert_eq!(r.counted_before, 10100);
        assert_eq!(r.counted_after, 1100);
        assert_eq!(r.dying_before, Some(10000));
        assert_eq!(r.dying_after, Some(1000));
        assert_eq!(r.freed(), Some(9000));
        assert!(r.seconds_to_settle < 2.0, "{}", r.seconds_to_settle);
        let t = r.render_text();
        assert!(t.contains("before 10000"), "{t}");
        assert!(t.contains("after the drop 1000"), "{t}");
        assert!(t.contains("1000 still dying"), "{t}");
        assert!(t.contains("no swap is in use"), "{t}");
        assert!(t.contains("IO rises"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["dying_before"], 10000);
        assert_eq!(j["dropped"], true);
    }

    #[test]
    fn timeout_bounds_the_wait() {
        // falls by 1 per read forever: only the timeout ends the wait
        let fs = Fake::new("6.1.0", 100_000, 10, 0, 1);
        let t = Instant::now();
        let r = reclaim(&fs, &ReclaimOptions::default(), Duration::from_millis(500)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(r.counted_after < 100_000);
    }

    #[test]
    fn legacy_kernel_has_no_dying_count() {
        let fs = Fake::new("3.10.0-1160.el7.x86_64", 500, 500, 500, 0);
        let r = reclaim(
            &fs,
            &ReclaimOptions {
                dry_run: true,
                ..Default::default()
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(r.dying_before, None);
        assert_eq!(r.freed(), None);
        let fs = Fake::new("3.10.0-1160.el7.x86_64", 500, 500, 500, 0);
        let r = reclaim(&fs, &ReclaimOptions::default(), Duration::from_secs(3)).unwrap();
        assert!(r.render_text().contains("does not count dying"));
    }

    #[test]
    fn refuses_without_write_access() {
        let mut fs = Fake::new("6.1.0", 100, 10, 10, 1);
        fs.writable = false;
        let e = reclaim(&fs, &ReclaimOptions::default(), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e}");
        assert!(fs.dropped.lock().unwrap().is_empty());
        // a dry run needs no write access
        assert!(reclaim(
            &fs,
            &ReclaimOptions {
                dry_run: true,
                ..Default::default()
            },
            Duration::from_secs(1)
        )
        .is_ok());
    }
}
