//! `cgleak probe-headroom --count N`: prove that N memcg ids can still be allocated, by making N
//! empty memcgs directly below `--root` and removing them at once. On 3.10 this is the way to
//! learn the headroom without systemtap (the kernel does not show dying memcgs there).
//!
//! Kernel rules relied on (docs/kernel-facts.md, "The leak" and "Memcg id limit by kernel"):
//! every memcg takes one of at most 65535 ids (MEM_CGROUP_ID_MAX; 65534 on 4.4-5.18) when mkdir allocates its css (an idr allocation: css_id on 3.10,
//! mem_cgroup_alloc's idr_alloc later); when none is free, mkdir fails with ENOSPC, or ENOMEM on
//! some kernels (RHEL 3.10.0-1160 among them). A deleted memcg keeps its id only while something
//! is still charged to it; the probe cgroups get no task and no charge, so each gives its id back
//! when removed and the probe leaks nothing. The exception is 3.10 below a cgroup with kmem
//! accounting active: new children inherit the activation (memcg_propagate_kmem), and that is the
//! cgroup state that leaks ids, so the probe refuses such a `--root`.
//!
//! Holding N ids for a moment takes them from kubelet and the container runtime, so N is capped
//! at what a repair of the pods tree would create (default strategy) plus
//! [`plan::ID_SAFETY_MARGIN`]: more headroom than that answers no question cgleak asks.
//!
//! Cleanup on every path: after the last mkdir, after an error, after Ctrl-C (the caller's
//! `interrupted` check, see [`crate::interrupt::interrupted`]), and through a [`Drop`] guard if
//! anything unwinds. Cgroups that cannot be removed are reported one by one with the error.
//! Only a SIGKILL can leave `cgleak-probe-<pid>-<i>` directories behind; the next probe lists
//! them.

use crate::error::{Error, Result};
use crate::host::{self, knob, Node};
use crate::model::is_unlimited;
use crate::model::kernel::KernelInfo;
use crate::repair::plan::{self, Strategy, ID_SAFETY_MARGIN};
use crate::scan;
use nix::errno::Errno;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Name prefix of probe cgroups: `cgleak-probe-<pid>-<i>`.
pub const PROBE_PREFIX: &str = "cgleak-probe-";

/// Tries of an rmdir that fails with EBUSY (something moved a task into a probe cgroup).
const RMDIR_TRIES: u32 = 5;

/// How the probe ended.
#[derive(Debug)]
pub enum End {
    /// All N cgroups existed at once.
    AllMade,
    /// mkdir failed with ENOSPC/ENOMEM: no memcg id was free.
    IdsExhausted(Error),
    /// Ctrl-C (SIGINT/SIGTERM) between two mkdirs.
    Interrupted,
    /// Another error: the probe proves nothing.
    Failed(Error),
}

/// A probe cgroup that could not be removed.
#[derive(Debug)]
pub struct Leftover {
    pub path: PathBuf,
    pub error: Error,
}

/// What the probe found.
#[derive(Debug)]
pub struct Report {
    pub root: PathBuf,
    pub requested: u64,
    /// Probe cgroups that existed at the same time.
    pub made: u64,
    pub end: End,
    pub leftovers: Vec<Leftover>,
    /// Probe cgroups of earlier, killed runs found below the root (they hold ids).
    pub stale: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    /// 0: all N ids were free and everything was removed; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.end {
            End::AllMade if self.leftovers.is_empty() => 0,
            _ => 1,
        }
    }

    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let root = self.root.display();
        let (n, k) = (self.requested, self.made);
        let _ = match &self.end {
            End::AllMade => writeln!(
                o,
                "probe-headroom: {n} of {n} memcg ids free below {root}: {n} empty memcgs \
                 existed at once (made and removed in {} ms)",
                self.elapsed.as_millis()
            ),
            End::IdsExhausted(e) => writeln!(o, "probe-headroom: only {k} of {n} ids free\n  {e}"),
            End::Interrupted => writeln!(
                o,
                "probe-headroom: interrupted (Ctrl-C) after {k} of {n}: at least {k} ids free"
            ),
            End::Failed(e) => writeln!(
                o,
                "probe-headroom: stopped after {k} of {n} by an error that is not about ids; \
                 the headroom is unknown\n  {e}"
            ),
        };
        if self.leftovers.is_empty() {
            let _ = writeln!(o, "All {k} probe memcgs were removed.");
        } else {
            let _ = writeln!(
                o,
                "CLEANUP FAILED: {} of {k} probe memcgs are still there and hold an id each; \
                 remove them with rmdir once the cause is fixed:",
                self.leftovers.len()
            );
            for l in &self.leftovers {
                let _ = writeln!(o, "  {}: {}", l.path.display(), l.error);
            }
        }
        if !self.stale.is_empty() {
            let _ = writeln!(
                o,
                "Probe memcgs of an earlier, killed probe hold ids below {root} (rmdir them): {}",
                self.stale.join(" ")
            );
        }
        o
    }
}

/// The probe cgroups made so far. [`Made::remove_all`] removes them; dropping the guard with
/// some left (a panic, an early return) removes them too and prints what it could not remove.
struct Made<'a> {
    fs: &'a dyn Node,
    cgs: Vec<String>,
}

impl Made<'_> {
    /// Remove every probe cgroup, newest first; returns those that are still there.
    fn remove_all(&mut self) -> Vec<Leftover> {
        let mut left = Vec::new();
        while let Some(cg) = self.cgs.pop() {
            let mut tries = 1;
            let res = loop {
                match self.fs.rmdir(&cg) {
                    Err(e) if e.errno() == Some(Errno::EBUSY) && tries < RMDIR_TRIES => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    r => break r,
                }
            };
            match res {
                // Gone already (removed by someone else): all the probe wants.
                Err(e) if e.errno() == Some(Errno::ENOENT) => {}
                Err(error) => left.push(Leftover {
                    path: self.fs.root().join(&cg),
                    error,
                }),
                Ok(()) => {}
            }
        }
        left.reverse();
        left
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        for l in self.remove_all() {
            eprintln!(
                "cgleak: probe memcg {} left behind ({}): rmdir it",
                l.path.display(),
                l.error
            );
        }
    }
}

/// The largest `--count`: the ids a repair of `kubepods` with the default strategy creates, plus
/// the margin; only the margin when there is no pods tree.
pub fn bound(fs: &dyn Node, kubepods: &str) -> Result<u64> {
    let snap = scan::scan(fs, kubepods)?;
    Ok(plan::ids_needed(snap.cgroups.len(), Strategy::MigrateBack) + ID_SAFETY_MARGIN)
}

/// Refuse a `--root` whose new children would have kmem accounting active: on 3.10 they inherit
/// it, and that is what makes deleted memcgs keep their ids. Kernels >= 3.16 account kmem in every
/// memcg without per-cgroup activation; an empty memcg has nothing charged there either.
fn check_root_kmem(fs: &dyn Node, kernel: &KernelInfo) -> Result<()> {
    if kernel.kmem_per_cgroup() == Some(false) {
        return Ok(());
    }
    let root = fs.root().display();
    let hint = "probe below a cgroup without kmem accounting, e.g. --root at the memory \
                hierarchy's mount (the root memcg never accounts kmem); nothing was changed";
    // On 3.10 a limit other than unlimited means kmem was activated; runc writes 1 then
    // unlimited, so an unlimited limit proves nothing and slabinfo decides.
    let limit = if fs.has_file("", knob::KMEM_LIMIT) {
        Some(host::read_u64(fs, "", knob::KMEM_LIMIT)?)
    } else {
        None
    };
    let active = scan::kmem_active(fs, kernel, "");
    if active == Some(true) || limit.is_some_and(|l| !is_unlimited(l)) {
        return Err(Error::refused(
            format!(
                "kmem accounting is active in {root} (memory.kmem.slabinfo readable or \
                 memory.kmem.limit_in_bytes set): memcgs made below it inherit it and can stay \
                 dying, holding ids, after removal"
            ),
            hint,
        ));
    }
    if active.is_none() && fs.has_file("", knob::KMEM_SLABINFO) {
        return Err(Error::refused(
            format!(
                "cannot tell whether kmem accounting is active in {root} ({}/{} unreadable)",
                root,
                knob::KMEM_SLABINFO
            ),
            hint,
        ));
    }
    Ok(())
}

/// Make `count` empty memcgs below the root, all at once, then remove them. Stops at the first
/// ENOSPC/ENOMEM (ids exhausted), other error, or when `interrupted()` turns true. Refusals
/// (exit 2, nothing changed): a count of 0 or above [`bound`], not root, kmem active in the root.
pub fn probe(
    fs: &dyn Node,
    count: u64,
    kubepods: &str,
    interrupted: &dyn Fn() -> bool,
) -> Result<Report> {
    if count == 0 {
        return Err(Error::Usage(
            "--count 0: give the number of ids to prove free".into(),
        ));
    }
    if !fs.may_write() {
        return Err(Error::not_root(
            fs.root(),
            "creating memcgs",
            "probe-headroom",
        ));
    }
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    check_root_kmem(fs, &kernel)?;
    let bound = bound(fs, kubepods)?;
    if count > bound {
        return Err(Error::refused(
            format!(
                "--count {count} is above {bound}: the ids a repair of {kubepods} creates plus \
                 the margin of {ID_SAFETY_MARGIN}; holding more ids answers nothing and takes \
                 them from pods starting meanwhile"
            ),
            format!("probe at most --count {bound}; nothing was changed"),
        ));
    }
    let stale: Vec<String> = fs
        .children("")?
        .into_iter()
        .filter(|c| c.starts_with(PROBE_PREFIX))
        .collect();
    let start = Instant::now();
    let mut made = Made {
        fs,
        cgs: Vec::new(),
    };
    let pid = std::process::id();
    let mut end = End::AllMade;
    for i in 0..count {
        if interrupted() {
            end = End::Interrupted;
            break;
        }
        let cg = format!("{PROBE_PREFIX}{pid}-{i}");
        match fs.mkdir(&cg) {
            Ok(()) => made.cgs.push(cg),
            Err(e) if matches!(e.errno(), Some(Errno::ENOSPC | Errno::ENOMEM)) => {
                end = End::IdsExhausted(e);
                break;
            }
            Err(e) => {
                end = End::Failed(e);
                break;
            }
        }
    }
    let n_made = made.cgs.len() as u64;
    let leftovers = made.remove_all();
    Ok(Report {
        root: fs.root().to_path_buf(),
        requested: count,
        made: n_made,
        end,
        leftovers,
        stale,
        elapsed: start.elapsed(),
    })
}
