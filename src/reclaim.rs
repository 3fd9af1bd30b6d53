//! `cgleak reclaim`: drop the clean page cache (/proc/sys/vm/drop_caches) so that dying memcgs
//! pinned only by page cache are freed, and report how many were dying before and after and
//! how long the kernel took to free them.
//!
//! What the lab saw on real kernels (scripts/vm/README.md): on 5.10 and 6.1 a memcg pinned by
//! page cache alone does not hold its id (the id is released at offline since 4.8), and the
//! ids that stay taken are those of memcgs with swapped-out pages (swap accounting). Dropping
//! the page cache frees the former, not the latter: the report says so through `dying_after`.

use crate::error::{Error, Result};
use crate::fs::{parse_proc_cgroups_memory, Cgroupfs};
use crate::kernel::KernelInfo;
use std::time::{Duration, Instant};

/// What `cgleak reclaim` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReclaimOptions {
    /// Only report the counts; drop nothing.
    pub dry_run: bool,
}

/// The outcome of a reclaim.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReclaimReport {
    /// Dying memcgs before (None when this kernel's /proc/cgroups does not count them).
    pub dying_before: Option<u64>,
    pub dying_after: Option<u64>,
    /// num_cgroups of the memory row of /proc/cgroups, before and after.
    pub counted_before: u64,
    pub counted_after: u64,
    /// Live memcgs (directories of the hierarchy, its root included), before the drop.
    pub live: u64,
    /// How long the counted value kept falling after the drop (0 for a dry run).
    pub seconds_to_settle: f64,
    /// Whether drop_caches was written.
    pub dropped: bool,
}

/// How often the counted value is polled after the drop, and how long it must stay put.
const POLL: Duration = Duration::from_millis(100);
const STABLE_FOR: Duration = Duration::from_secs(1);

fn counted(fs: &dyn Cgroupfs) -> Result<u64> {
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

/// Drop clean page cache and wait for the dying memcgs it pinned to be freed.
///
/// Without `dry_run`: writes 1 to drop_caches, then polls every 100 ms until the counted value
/// has not fallen for 1 s, or `settle_timeout` passes.
pub fn reclaim(
    fs: &dyn Cgroupfs,
    opts: &ReclaimOptions,
    settle_timeout: Duration,
) -> Result<ReclaimReport> {
    let counts_dying = KernelInfo::from_release(&fs.kernel_release()?).counts_dying() == Some(true);
    if !opts.dry_run && !fs.may_write() {
        return Err(Error::refused(
            "dropping the page cache needs root (write to /proc/sys/vm/drop_caches)",
            "run `cgleak reclaim --yes` as root, or `cgleak reclaim --dry-run` to only count",
        ));
    }
    let live = fs.hierarchy_live()?;
    let counted_before = counted(fs)?;
    let mut report = ReclaimReport {
        dying_before: dying(counts_dying, counted_before, live),
        dying_after: dying(counts_dying, counted_before, live),
        counted_before,
        counted_after: counted_before,
        live,
        seconds_to_settle: 0.0,
        dropped: false,
    };
    if opts.dry_run {
        return Ok(report);
    }
    let start = Instant::now();
    fs.drop_caches(1)?;
    report.dropped = true;
    let mut last = counted(fs)?;
    let mut last_fall = Instant::now();
    let mut settled_at = start.elapsed();
    while last_fall.elapsed() < STABLE_FOR && start.elapsed() < settle_timeout {
        std::thread::sleep(POLL);
        let now = counted(fs)?;
        if now < last {
            last = now;
            last_fall = Instant::now();
            settled_at = start.elapsed();
        }
    }
    report.counted_after = last;
    let live_after = fs.hierarchy_live()?;
    report.live = live_after;
    report.dying_after = dying(counts_dying, last, live_after);
    report.seconds_to_settle = settled_at.as_secs_f64();
    Ok(report)
}

impl ReclaimReport {
    /// Numbers freed by the drop (None when the kernel does not count dying memcgs).
    pub fn freed(&self) -> Option<u64> {
        Some(self.dying_before?.saturating_sub(self.dying_after?))
    }

    pub fn render_text(&self) -> String {
        let n = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
        let mut s = String::new();
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
            return s;
        }
        s.push_str(
            "dropped the clean page cache (echo 1 > /proc/sys/vm/drop_caches). Cost: every \
             workload on the node starts with cold page caches; disk IO rises while they refill.\n",
        );
        s.push_str(&format!(
            "dying memcgs:  before {}  after {}  (memory num_cgroups {} -> {}, live {})\n",
            n(self.dying_before),
            n(self.dying_after),
            self.counted_before,
            self.counted_after,
            self.live
        ));
        s.push_str(&format!(
            "the kernel freed them in {:.1} s (counted value stable for 1 s after that)\n",
            self.seconds_to_settle
        ));
        match (self.freed(), self.dying_after) {
            (Some(f), Some(a)) if a > 0 => s.push_str(&format!(
                "{f} freed; {a} still dying: they are pinned by something drop_caches does not \
                 free (on kernels >= 4.8, swapped-out pages: their ids stay taken until the swap \
                 is read back, e.g. swapoff/swapon, or their owners exit)\n"
            )),
            (Some(f), _) => s.push_str(&format!("{f} freed; none left dying\n")),
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
    use crate::fs::CgroupMode;
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

    impl Cgroupfs for Fake {
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
        fn hierarchy_mount(&self) -> PathBuf {
            self.root.clone()
        }
        fn hierarchy_live(&self) -> Result<u64> {
            Ok(self.live)
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
    }

    #[test]
    fn dry_run_counts_and_drops_nothing() {
        let fs = Fake::new("6.1.0-50-cloud-amd64", 65000, 100, 110, 1000);
        let r = reclaim(
            &fs,
            &ReclaimOptions { dry_run: true },
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
        assert!(t.contains("after 1000"), "{t}");
        assert!(t.contains("1000 still dying"), "{t}");
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
            &ReclaimOptions { dry_run: true },
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
            &ReclaimOptions { dry_run: true },
            Duration::from_secs(1)
        )
        .is_ok());
    }
}
