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
//! On 3.10 slab objects pin dying memcgs and neither step helps: reclaim refuses there (see
//! [`preflight`]); `cgleak repair` is the remedy.

pub mod swap;

use crate::diagnose::advice::RECLAIM_ON_310;
use crate::error::{Error, Result};
use crate::host::{parse_proc_cgroups_memory, Hierarchy, Host};
use crate::model::kernel::{Era, KernelInfo};
use crate::reclaim::swap::{parse_meminfo, parse_swaps, plan_cycle, CyclePlan};
use nix::errno::Errno;
use std::path::PathBuf;
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
    /// Ctrl-C/SIGTERM stopped its swapoff (EINTR); the kernel kept the area in use.
    pub interrupted: bool,
}

/// The swap part of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SwapReport {
    /// What /proc/swaps and /proc/meminfo said before, and whether a cycle fits (read only
    /// for a swap cycle or a dry run: a plain drop needs neither, nor a kernel with swap).
    pub plan: Option<CyclePlan>,
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
    /// Why `--yes` would be refused on this kernel (a dry run on 3.10); text output only.
    #[serde(skip)]
    pub yes_refused: Option<String>,
}

/// How often the counted value is polled after a change, and how long it must stay put.
const POLL: Duration = Duration::from_millis(100);
const STABLE_FOR: Duration = Duration::from_secs(1);

fn counted(host: &dyn Host) -> Result<u64> {
    let s = host.proc_cgroups()?;
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
fn settle(host: &dyn Host, start: Instant, timeout: Duration) -> Result<(u64, f64)> {
    let mut last = counted(host)?;
    let mut last_fall = Instant::now();
    let mut settled_at = start.elapsed();
    while last_fall.elapsed() < STABLE_FOR && start.elapsed() < timeout {
        std::thread::sleep(POLL);
        let now = counted(host)?;
        if now < last {
            last = now;
            last_fall = Instant::now();
            settled_at = start.elapsed();
        }
    }
    Ok((last, settled_at.as_secs_f64()))
}

/// What reclaim checked before changing anything.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub kernel: KernelInfo,
    /// /proc/cgroups counts dying memcgs on this kernel (not on 3.10).
    pub counts_dying: bool,
    /// The swap areas and whether a cycle fits in memory (None: not read, see [`SwapReport`]).
    pub plan: Option<CyclePlan>,
}

/// Everything that refuses a reclaim, checked before anything changes (and before the
/// operator is asked): on 3.10 any drop (docs/kernel-facts.md, "The 3.10 kmem trigger": slab
/// objects pin the dying memcgs, and nothing shows which ones only page cache holds), root, and
/// for a swap cycle the room in memory. A dry run is refused nothing.
pub fn preflight(host: &dyn Host, opts: &ReclaimOptions) -> Result<Preflight> {
    let kernel = KernelInfo::from_release(host.kernel_release()?.trim());
    let counts_dying = kernel.counts_dying() == Some(true);
    let plan = if opts.swap_cycle || opts.dry_run {
        Some(read_cycle_plan(host, &kernel)?)
    } else {
        None
    };
    if opts.dry_run {
        return Ok(Preflight {
            kernel,
            counts_dying,
            plan,
        });
    }
    if kernel.era == Some(Era::Legacy) {
        return Err(Error::refused(
            format!(
                "kernel {}: {RECLAIM_ON_310}; the drop would cost every workload on the node \
                 its page cache and give back no id it can promise",
                kernel.release
            ),
            "stop kmem accounting (kubelet with the nokmem tag, runc >= 1.0.0-rc94) and run \
             the repair (`cgleak plan`, then `cgleak repair` in a maintenance window with \
             kubelet stopped), boot with cgroup.memory=nokmem, or drain and reboot the node; \
             nothing was changed",
        ));
    }
    if !host.may_write() {
        return Err(Error::refused(
            "dropping the page cache needs root (write to /proc/sys/vm/drop_caches)",
            "run `cgleak reclaim --yes` as root, or `cgleak reclaim --dry-run` to only count",
        ));
    }
    if let Some(why) = plan.as_ref().and_then(|p| p.refusal.as_ref()) {
        return Err(Error::refused(
            format!("--swap-cycle is refused: {why}"),
            why.way_on(),
        ));
    }
    Ok(Preflight {
        kernel,
        counts_dying,
        plan,
    })
}

/// /proc/swaps and /proc/meminfo, planned into a cycle; a file the kernel does not have
/// (no swap support) is a refusal of the cycle, not an error.
fn read_cycle_plan(host: &dyn Host, kernel: &KernelInfo) -> Result<CyclePlan> {
    let absent = |e: &Error| e.errno() == Some(Errno::ENOENT);
    let areas = match host.proc_swaps() {
        Ok(s) => Some(parse_swaps(&s)),
        Err(e) if absent(&e) => None,
        Err(e) => return Err(e),
    };
    let mem = match host.meminfo() {
        Ok(s) => parse_meminfo(&s),
        Err(e) if absent(&e) => None,
        Err(e) => return Err(e),
    };
    Ok(plan_cycle(kernel, areas, mem))
}

/// Drop clean page cache, optionally cycle the swap, and wait for the dying memcgs they
/// pinned to be freed. Reads the live memcgs from `h`; everything else (and every change)
/// goes through `host`.
///
/// Everything that would refuse is checked first ([`preflight`]). `settle_timeout` bounds each
/// wait.
pub fn reclaim(
    h: &dyn Hierarchy,
    host: &dyn Host,
    opts: &ReclaimOptions,
    settle_timeout: Duration,
) -> Result<ReclaimReport> {
    let pre = preflight(host, opts)?;
    let live = h.hierarchy_live()?;
    let counted_before = counted(host)?;
    let before = dying(pre.counts_dying, counted_before, live);
    let mut report = ReclaimReport {
        dying_before: before,
        dying_after: before,
        dying_after_drop: before,
        counted_before,
        counted_after: counted_before,
        live,
        seconds_to_settle: 0.0,
        dropped: false,
        ids_released_at_offline: pre.kernel.ids_released_at_offline(),
        yes_refused: (pre.kernel.era == Some(Era::Legacy)).then(|| RECLAIM_ON_310.to_string()),
        swap: SwapReport {
            plan: pre.plan,
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
    host.drop_caches(1)?;
    report.dropped = true;
    let (after, secs) = settle(host, start, settle_timeout)?;
    report.seconds_to_settle = secs;
    record_after(h, pre.counts_dying, after, &mut report)?;
    report.dying_after_drop = report.dying_after;
    if opts.swap_cycle {
        let start = Instant::now();
        cycle_swap(host, &mut report);
        let (after, secs) = settle(host, start, settle_timeout)?;
        report.swap.seconds_to_settle = secs;
        record_after(h, pre.counts_dying, after, &mut report)?;
    }
    Ok(report)
}

/// The counts after a step settled at `counted`.
fn record_after(
    h: &dyn Hierarchy,
    counts_dying: bool,
    counted: u64,
    report: &mut ReclaimReport,
) -> Result<()> {
    let live = h.hierarchy_live()?;
    report.counted_after = counted;
    report.live = live;
    report.dying_after = dying(counts_dying, counted, live);
    Ok(())
}

/// swapoff and swapon each area in turn, stopping at the first failure or an interruption.
fn cycle_swap(host: &dyn Host, report: &mut ReclaimReport) {
    let areas = report.swap.plan.as_ref().map(|p| p.areas.clone());
    for area in areas.unwrap_or_default() {
        if crate::interrupt::interrupted() {
            report.swap.interrupted = true;
            break;
        }
        let t = Instant::now();
        let off = host.swapoff(&area.path);
        let mut cycle = AreaCycle {
            path: area.path.clone(),
            swapoff_seconds: t.elapsed().as_secs_f64(),
            in_use: true,
            error: None,
            interrupted: false,
        };
        match off {
            // The area is off: put it back at once with the priority it had, whatever else
            // happens (an interruption waits until it is back).
            Ok(()) => {
                if let Err(e) = host.swapon(&area.path, area.preferred_priority()) {
                    cycle.in_use = false;
                    cycle.error = Some(e.to_string());
                }
            }
            // EINTR: Ctrl-C reached swapoff's try_to_unuse (it checks signal_pending); the
            // kernel put the area back in use (reinsert_swap_info) and what was read back
            // stays in memory. Not a failure of the cycle: an interruption.
            Err(e) if e.errno() == Some(Errno::EINTR) => {
                cycle.interrupted = true;
                report.swap.interrupted = true;
                report.swap.cycled.push(cycle);
                break;
            }
            // ENOMEM: try_to_unuse failed and the kernel put the area back in use.
            Err(e) => cycle.error = Some(e.to_string()),
        }
        let failed = cycle.error.is_some();
        report.swap.cycled.push(cycle);
        if failed {
            break;
        }
    }
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

    /// The report for a terminal.
    pub fn render_text(&self) -> String {
        if !self.dropped {
            return self.render_dry_run();
        }
        let mut s = String::from(
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
            self.render_cycle(&mut s);
        }
        s.push_str(&self.render_remaining());
        s
    }

    fn swap_line(plan: &CyclePlan) -> String {
        if plan.refusal == Some(swap::CycleRefusal::NoSwapSupport) {
            return "swap: this kernel has no swap support (no /proc/swaps)".to_string();
        }
        if plan.areas.is_empty() {
            return "swap: none in use".to_string();
        }
        let areas: Vec<String> = plan
            .areas
            .iter()
            .map(|a| a.path.display().to_string())
            .collect();
        format!(
            "swap: {} in use on {} ({} available in memory, {} margin)",
            mib(plan.used_kib),
            areas.join(", "),
            mib(plan.mem_available_kib),
            mib(plan.margin_kib)
        )
    }

    fn render_dry_run(&self) -> String {
        let mut s = String::from("dry run: nothing was dropped\n");
        s.push_str(&format!(
            "dying memcgs now:  {} (memory num_cgroups {}, live {})\n",
            n(self.dying_before),
            self.counted_before,
            self.live
        ));
        if let Some(why) = &self.yes_refused {
            s.push_str(&format!(
                "`cgleak reclaim --yes` refuses on this kernel: {why}. Run `cgleak diagnose` \
                 for what helps (the repair, cgroup.memory=nokmem, a reboot).\n"
            ));
            return s;
        }
        s.push_str(
            "`cgleak reclaim --yes` would write 1 to /proc/sys/vm/drop_caches: the kernel drops \
             every clean page-cache page on the node, so every workload starts with cold \
             page caches and disk IO rises while they refill.\n",
        );
        let Some(plan) = &self.swap.plan else {
            return s;
        };
        s.push_str(&Self::swap_line(plan));
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
        s
    }

    fn render_cycle(&self, s: &mut String) {
        for c in &self.swap.cycled {
            let p = c.path.display();
            match (&c.error, c.in_use) {
                _ if c.interrupted => s.push_str(&format!(
                    "swap cycle: {p} interrupted during swapoff after {:.1} s: the kernel kept \
                     it in use; what it had read back stays in memory\n",
                    c.swapoff_seconds
                )),
                (None, _) => s.push_str(&format!(
                    "swap cycle: {p} off in {:.1} s, back on\n",
                    c.swapoff_seconds
                )),
                (Some(e), true) => s.push_str(&format!("swap cycle: {p} stayed in use: {e}\n")),
                (Some(e), false) => s.push_str(&format!(
                    "SWAP AREA LEFT OFF: {p} ({e}): run `swapon {p}` now\n"
                )),
            }
        }
        if self.swap.interrupted {
            s.push_str("swap cycle interrupted: the areas not listed above were not touched\n");
        }
        s.push_str(&format!(
            "dying memcgs after the swap cycle: {} (settled in {:.1} s)\n",
            n(self.dying_after),
            self.swap.seconds_to_settle
        ));
    }

    /// What was freed and what still pins the rest.
    fn render_remaining(&self) -> String {
        match (self.freed(), self.dying_after) {
            (Some(f), Some(0)) => format!("{f} freed; none left dying\n"),
            (Some(f), Some(a)) => format!("{f} freed; {a} still dying{}", self.why_left()),
            _ => "this kernel does not count dying memcgs in /proc/cgroups: probe with mkdir \
                  whether ids are free again\n"
                .to_string(),
        }
    }

    fn why_left(&self) -> String {
        if self.ids_released_at_offline != Some(true) {
            return ": pinned by something the page-cache drop does not free (kernel memory); \
                    on this kernel each keeps its id\n"
                .to_string();
        }
        if self.swap.requested {
            ": pinned by kernel memory (slab), which holds no id on this kernel; \
             `cgleak diagnose` tells whether ids are short\n"
                .to_string()
        } else {
            // A plain drop reads no swap state (a kernel may have none): point at the dry run
            // that does.
            ". On this kernel only swapped-out pages keep their ids: if mkdir still fails, \
             `cgleak reclaim --dry-run --swap-cycle` tells whether a swap cycle would free \
             them and fits in memory\n"
                .to_string()
        }
    }
}

fn n(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

fn mib(kib: u64) -> String {
    format!("{} MiB", kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fakes::{proc_cgroups, sys, MemHierarchy};
    use crate::error::FsOp;
    use crate::host::CgroupMode;
    use nix::errno::Errno;
    use std::path::Path;
    use std::sync::Mutex;

    /// A host whose counted value falls by `step` per read after drop_caches, down to `floor`;
    /// no swap. Everything reclaim does not use fails.
    struct Falling {
        release: String,
        counted: Mutex<u64>,
        floor: u64,
        step: u64,
        dropped: Mutex<Vec<u8>>,
        writable: bool,
    }

    /// The node: `live` memcgs in a read-only hierarchy, and the falling host.
    fn node(
        release: &str,
        counted: u64,
        live: u64,
        floor: u64,
        step: u64,
    ) -> (MemHierarchy, Falling) {
        let mut h = MemHierarchy::new();
        h.extra_live = live - 1;
        let host = Falling {
            release: release.into(),
            counted: Mutex::new(counted),
            floor,
            step,
            dropped: Mutex::new(vec![]),
            writable: true,
        };
        (h, host)
    }

    fn unused<T>(what: &str) -> Result<T> {
        Err(sys(FsOp::Read, Path::new(what), Errno::ENOSYS))
    }

    impl Host for Falling {
        fn kernel_release(&self) -> Result<String> {
            Ok(self.release.clone())
        }
        fn proc_cgroups(&self) -> Result<String> {
            let mut c = self.counted.lock().unwrap();
            let v = *c;
            if !self.dropped.lock().unwrap().is_empty() {
                *c = c.saturating_sub(self.step).max(self.floor);
            }
            Ok(proc_cgroups(v))
        }
        fn kernel_cmdline(&self) -> Result<String> {
            unused("/proc/cmdline")
        }
        fn boot_id(&self) -> Result<String> {
            unused("boot_id")
        }
        fn cgroup_mode(&self) -> Result<CgroupMode> {
            Ok(CgroupMode::V1)
        }
        fn find_processes(&self, _: &str) -> Result<Vec<u32>> {
            unused("/proc")
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
            unused("swapoff")
        }
        fn swapon(&self, _: &Path, _: Option<i32>) -> Result<()> {
            unused("swapon")
        }
        fn slab_caches(&self) -> Result<Option<Vec<String>>> {
            unused("slab_caches")
        }
        fn processes(&self) -> Result<Vec<crate::host::procs::ProcInfo>> {
            unused("/proc")
        }
        fn fd_targets(&self, _: u32) -> Result<Vec<String>> {
            unused("/proc/PID/fd")
        }
        fn host_file(&self, p: &str) -> Result<Option<String>> {
            unused(p)
        }
        fn pass_time(&self, _: std::time::Duration) {}
    }

    #[test]
    fn dry_run_counts_and_drops_nothing() {
        let (h, fs) = node("6.1.0-50-cloud-amd64", 65000, 100, 110, 1000);
        let r = reclaim(
            &h,
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
        let (h, fs) = node("5.10.0-32-cloud-amd64", 10100, 100, 1100, 3000);
        let r = reclaim(&h, &fs, &ReclaimOptions::default(), Duration::from_secs(10)).unwrap();
        assert!(r.dropped);
        assert_eq!(*fs.dropped.lock().unwrap(), vec![1]);
        assert_eq!(r.counted_before, 10100);
        assert_eq!(r.counted_after, 1100);
        assert_eq!(r.dying_before, Some(10000));
        assert_eq!(r.dying_after, Some(1000));
        assert_eq!(r.freed(), Some(9000));
        let t = r.render_text();
        assert!(t.contains("before 10000"), "{t}");
        assert!(t.contains("after the drop 1000"), "{t}");
        assert!(t.contains("1000 still dying"), "{t}");
        assert!(t.contains("--dry-run --swap-cycle"), "{t}");
        assert!(t.contains("IO rises"), "{t}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["dying_before"], 10000);
        assert_eq!(j["dropped"], true);
    }

    #[test]
    fn timeout_bounds_the_wait() {
        // falls by 1 per read forever: only the timeout ends the wait
        let (h, fs) = node("6.1.0", 100_000, 10, 0, 1);
        let r = reclaim(
            &h,
            &fs,
            &ReclaimOptions::default(),
            Duration::from_millis(500),
        )
        .unwrap();
        // It returned although the count never settled, with what it saw by then.
        assert!(r.counted_after < 100_000);
        assert!(r.dropped);
    }

    /// Issue 10: on 3.10 `reclaim --yes` dropped the node's page cache although slab objects
    /// pin the dying memcgs there. Fails on the old code (it dropped and reported).
    #[test]
    fn legacy_kernel_refuses_the_drop_and_counts_no_dying() {
        let (h, fs) = node("3.10.0-1160.el7.x86_64", 500, 500, 500, 0);
        let dry = ReclaimOptions {
            dry_run: true,
            ..Default::default()
        };
        let r = reclaim(&h, &fs, &dry, Duration::from_secs(1)).unwrap();
        assert_eq!(r.dying_before, None);
        assert_eq!(r.freed(), None);
        let t = r.render_text();
        assert!(
            t.contains("refuses on this kernel") && t.contains("slab"),
            "{t}"
        );
        assert!(!t.contains("would write 1"), "{t}");
        let e = reclaim(&h, &fs, &ReclaimOptions::default(), Duration::from_secs(3)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("slab") && msg.contains("cgleak repair"),
            "{msg}"
        );
        assert!(msg.contains("nokmem") && msg.contains("reboot"), "{msg}");
        assert!(msg.contains("nothing was changed"), "{msg}");
        // Issue 15 review: the sentences were joined by runs of blanks (lost line joins).
        assert!(!msg.contains("   "), "{msg}");
        assert!(fs.dropped.lock().unwrap().is_empty());
    }

    #[test]
    fn refuses_without_write_access() {
        let (h, mut fs) = node("6.1.0", 100, 10, 10, 1);
        fs.writable = false;
        let e = reclaim(&h, &fs, &ReclaimOptions::default(), Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, Error::Refused { .. }), "{e}");
        assert!(fs.dropped.lock().unwrap().is_empty());
        // a dry run needs no write access
        assert!(reclaim(
            &h,
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
