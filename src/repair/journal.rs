//! The repair journal in the state directory (default /run/cgleak, a tmpfs: it survives a
//! crash of cgleak and is gone after a reboot, when it no longer means anything).
//!
//! - `journal.json`: written once, atomically (temp file, fsync, rename), before the first
//!   change: the snapshot, the plan, the strategy and the kernel's boot_id.
//! - `progress`: append-only lines, `begin P`, `done P S`, `end P`, `rollback`, `complete`,
//!   `rolled-back`. Step lines are batched ([`BATCH`]) so the journal does not dominate the run;
//!   phase lines are written at once. Resume does not depend on step lines: every operation is
//!   safe to repeat, and the live tree tells what is left. They serve the report.
//! - `lock`: flock(2) held by the cgleak working on this state directory.
//!
//! Two locks guard a repair, resume or rollback: the state directory's (one journal, one
//! writer) and the node's, a flock on the `--root` directory itself ([`lock_node`]), so two
//! runs with different state directories cannot work on one node at once.
//!
//! A journal is only meaningful for the node, pods cgroup and boot it was written on; the
//! "ways on" a stop prints ([`WaysOn`]) are built from the journal, so they name that node.

use crate::error::{Error, Result};
use crate::model::invocation::WaysOn;
use crate::model::Snapshot;
use crate::repair::plan::{Plan, Strategy};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "journal.json";
pub const PROGRESS_FILE: &str = "progress";
pub const LOCK_FILE: &str = "lock";
pub const JOURNAL_FORMAT: u32 = 1;

/// Step lines kept in memory before one write(2) appends them.
pub const BATCH: usize = 64;

/// What a repair needs to be resumed or undone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub cgleak_version: String,
    pub started_at: u64,
    /// /proc/sys/kernel/random/boot_id when the repair started.
    pub boot_id: String,
    pub root: String,
    pub kubepods: String,
    pub staging: String,
    pub strategy: Strategy,
    pub snapshot: Snapshot,
    pub plan: Plan,
}

/// What the progress file says happened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Repair phases begun, in order.
    pub begun: Vec<usize>,
    pub rollback_started: bool,
    pub complete: bool,
    pub rolled_back: bool,
}

impl Progress {
    pub fn parse(s: &str) -> Progress {
        let mut p = Progress::default();
        for line in s.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|x| x.parse::<usize>().ok());
            match f.first().copied() {
                Some("begin") => {
                    if let Some(n) = num(1) {
                        p.begun.push(n)
                    }
                }
                // `end P` and `done P S` lines are for people reading the file: resume goes by
                // the last phase begun and the live tree (see the module comment).
                Some("rollback") => p.rollback_started = true,
                Some("complete") => p.complete = true,
                Some("rolled-back") => p.rolled_back = true,
                _ => {} // a torn last line after a crash: ignore it
            }
        }
        p
    }

    /// Finished one way or the other: a new repair may start.
    pub fn finished(&self) -> bool {
        self.complete || self.rolled_back
    }

    /// The repair phase to resume from: the last one begun (its steps are safe to repeat).
    pub fn resume_phase(&self) -> usize {
        self.begun.last().copied().unwrap_or(0)
    }
}

impl Header {
    /// What a command line that goes on from this journal in `state_dir` must carry.
    pub fn ways_on(&self, state_dir: &Path) -> WaysOn {
        WaysOn {
            root: self.root.clone(),
            kubepods: self.kubepods.clone(),
            staging: self.staging.clone(),
            state_dir: state_dir.to_path_buf(),
        }
    }
}

/// An exclusive flock on the state directory, held while cgleak works on it (and, from
/// [`lock_node_and_dir`], the node's lock too).
pub struct Lock {
    _flock: Flock<File>,
    _node: Option<NodeLock>,
}

/// An exclusive flock on the node's `--root` directory, held for a whole repair, resume or
/// rollback: the state directory's lock alone lets two runs with different `--state-dir`s work
/// on one node at once. flock(2) works on any directory fd, cgroupfs (kernfs) ones included
/// (docs/kernel-facts.md, "Locks on cgroup directories"), and the lock goes with the process.
pub struct NodeLock {
    _flock: Flock<File>,
}

/// The refusal of an unusable state directory `dir`: `op` on `path` failed with `e`. Nothing
/// was changed (the state directory is made before anything else), so this is bad input.
pub fn unusable(dir: &Path, op: &str, path: &Path, e: &std::io::Error) -> Error {
    use nix::libc;
    let what = match e.raw_os_error() {
        Some(libc::ENOTDIR) | Some(libc::EEXIST) => "it, or a directory above it, is a file",
        Some(libc::EROFS) => "it is on a read-only filesystem",
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied",
        Some(libc::ENOENT) => "a directory above it is missing and cannot be made",
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "its filesystem is full",
        _ => "it cannot be written",
    };
    Error::refused(
        format!(
            "the state directory {} cannot hold the journal: {what} ({op} {}: {e})",
            dir.display(),
            path.display()
        ),
        "pass --state-dir with a directory root can write, on a tmpfs such as /run (the default is /run/cgleak); nothing was changed",
    )
}

fn io_unusable(dir: &Path, e: Error) -> Error {
    match e {
        Error::Io { op, path, source } => unusable(dir, op, &path, &source),
        e => e,
    }
}

/// Make the state directory (0700) if missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    let made = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    match made {
        // A file in the way: create_dir_all reports it as EEXIST.
        Ok(()) if !dir.is_dir() => Err(unusable(
            dir,
            "mkdir",
            dir,
            &std::io::Error::from_raw_os_error(nix::libc::ENOTDIR),
        )),
        Ok(()) => Ok(()),
        Err(e) => Err(unusable(dir, "mkdir", dir, &e)),
    }
}

/// Why a lock of a repair, resume or rollback could not be taken.
#[derive(Debug)]
pub enum LockFailure {
    /// Another cgleak holds it: what it holds, in words (with its pid when known).
    Held(String),
    /// The state directory cannot hold a lock or a journal ([`unusable`]).
    Unusable(Error),
    /// Any other failure (the node's directory could not be opened).
    Failed(Error),
}

impl From<LockFailure> for Error {
    fn from(f: LockFailure) -> Error {
        match f {
            LockFailure::Held(what) => Error::refused(
                what,
                "wait for it to finish (its own output says how it ended); nothing was changed",
            ),
            LockFailure::Unusable(e) | LockFailure::Failed(e) => e,
        }
    }
}

/// Take the lock, or refuse when another cgleak holds it.
pub fn lock(dir: &Path) -> Result<Lock> {
    try_lock(dir).map_err(Error::from)
}

fn try_lock(dir: &Path) -> std::result::Result<Lock, LockFailure> {
    ensure_dir(dir).map_err(LockFailure::Unusable)?;
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| LockFailure::Unusable(unusable(dir, "open", &path, &e)))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Lock {
            _flock: l,
            _node: None,
        }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockFailure::Held(format!(
            "another cgleak holds the lock {}",
            path.display()
        ))),
        Err((_, e)) => Err(LockFailure::Unusable(unusable(
            dir,
            "flock",
            &path,
            &std::io::Error::from(e),
        ))),
    }
}

/// The locks of a repair, resume or rollback: the node at `root` first (a run of this node
/// with another state directory is refused before this one touches its own), then `dir`.
pub fn lock_node_and_dir(root: &Path, dir: &Path) -> Result<Lock> {
    try_lock_node_and_dir(root, dir).map_err(Error::from)
}

/// [`lock_node_and_dir`] saying which failure it met, for the preflight's facts.
pub fn try_lock_node_and_dir(root: &Path, dir: &Path) -> std::result::Result<Lock, LockFailure> {
    let node = try_lock_node(root)?;
    let mut lock = try_lock(dir)?;
    lock._node = Some(node);
    Ok(lock)
}

/// Lock the node at `root`, or refuse (exit 2, nothing changed) when another cgleak holds it.
pub fn lock_node(root: &Path) -> Result<NodeLock> {
    try_lock_node(root).map_err(Error::from)
}

fn try_lock_node(root: &Path) -> std::result::Result<NodeLock, LockFailure> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY)
        .open(root)
        .map_err(|e| LockFailure::Failed(Error::io("open", root, e)))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(NodeLock { _flock: l }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockFailure::Held(node_lock_holder(root))),
        Err((_, e)) => Err(LockFailure::Failed(Error::io(
            "flock",
            root,
            std::io::Error::from(e),
        ))),
    }
}

/// Whether another cgleak holds the node's lock, without keeping it: for `plan`, which locks
/// nothing. Some(what holds it) when held.
pub fn node_lock_held(root: &Path) -> Option<String> {
    match try_lock_node(root) {
        Err(LockFailure::Held(what)) => Some(what),
        _ => None,
    }
}

fn node_lock_holder(root: &Path) -> String {
    let pid = lock_holder(root)
        .map(|p| format!(" (pid {p})"))
        .unwrap_or_default();
    format!(
        "another cgleak repair/resume/rollback of this node is running{pid}: it holds the lock on {}",
        root.display()
    )
}

/// The pid holding a flock on `path`, from /proc/locks (`N: FLOCK ADVISORY WRITE PID
/// MAJ:MIN:INODE ...`, major and minor in hex): the kernel's own table, for the real and the
/// emulated node alike (both are directories of the running kernel). None when unknown.
fn lock_holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(path).ok()?;
    let dev = md.dev();
    let key = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        md.ino()
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Waiters are listed as `N: -> FLOCK ...`: not holders.
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&key.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// Whether a journal exists, and its header and progress.
pub fn load(dir: &Path) -> Result<Option<(Header, Progress)>> {
    let jpath = dir.join(JOURNAL_FILE);
    let text = match fs::read_to_string(&jpath) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &jpath, e)),
    };
    let header: Header = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: jpath.clone(),
        what: format!("repair journal ({e})"),
        content: text.chars().take(80).collect(),
    })?;
    let ppath = dir.join(PROGRESS_FILE);
    let progress = match fs::read_to_string(&ppath) {
        Ok(t) => Progress::parse(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Progress::default(),
        Err(e) => return Err(Error::io("read", &ppath, e)),
    };
    Ok(Some((header, progress)))
}

/// An open journal: appends progress lines.
pub struct Journal {
    dir: PathBuf,
    ways_on: WaysOn,
    progress: File,
    pending: String,
    pending_steps: usize,
}

impl Journal {
    /// Write a new journal (replacing a finished one) before the first change.
    pub fn create(dir: &Path, header: &Header) -> Result<Journal> {
        ensure_dir(dir)?;
        let data = serde_json::to_vec(header).expect("journal serializes");
        // The progress file first: a journal.json is never without one.
        let ppath = dir.join(PROGRESS_FILE);
        File::create(&ppath).map_err(|e| unusable(dir, "create", &ppath, &e))?;
        // Once per repair, fsynced: the journal must be complete before anything changes.
        crate::atomic::write_file_atomic(&dir.join(JOURNAL_FILE), &data, ".json.tmp", 0o600)
            .map_err(|e| io_unusable(dir, e))?;
        Self::open(dir, header.ways_on(dir))
    }

    /// Open the progress file of an existing journal for appending; `ways_on` is what a stop
    /// tells the operator to run next.
    pub fn open(dir: &Path, ways_on: WaysOn) -> Result<Journal> {
        let ppath = dir.join(PROGRESS_FILE);
        let progress = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ppath)
            .map_err(|e| unusable(dir, "open", &ppath, &e))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            ways_on,
            progress,
            pending: String::new(),
            pending_steps: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ways_on(&self) -> &WaysOn {
        &self.ways_on
    }

    /// A phase or outcome line: written at once (after the pending step lines).
    pub fn mark(&mut self, line: &str) -> Result<()> {
        self.pending.push_str(line);
        self.pending.push('\n');
        self.flush()
    }

    /// A step done: batched.
    pub fn step_done(&mut self, phase: usize, step: usize) -> Result<()> {
        use std::fmt::Write as _;
        let _ = writeln!(self.pending, "done {phase} {step}");
        self.pending_steps += 1;
        if self.pending_steps >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Append what is pending with one write(2).
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(PROGRESS_FILE);
        self.progress
            .write_all(self.pending.as_bytes())
            .map_err(|e| Error::io("append", &path, e))?;
        self.pending.clear();
        self.pending_steps = 0;
        Ok(())
    }

    /// Drop pending lines without writing them: what a SIGKILL would do (test hook).
    pub fn forget_pending(&mut self) {
        self.pending.clear();
        self.pending_steps = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_parse_tolerates_a_torn_line() {
        // Journals of older versions (and this one) have `done` and `end` lines: read, unused.
        let p = Progress::parse("begin 0\ndone 0 1\ndone 0 2\nend 0\nbegin 1\ndone 1 7\ndo");
        assert_eq!(p.begun, vec![0, 1]);
        assert_eq!(p.resume_phase(), 1);
        assert!(!p.finished());
        let p = Progress::parse("begin 0\nrollback\nrolled-back\n");
        assert!(p.rollback_started && p.rolled_back && p.finished());
    }

    #[test]
    fn lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path()).unwrap();
        let e = lock(d.path()).err().expect("second lock refused");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("another cgleak holds the lock"));
        drop(l);
        lock(d.path()).unwrap();
    }

    #[test]
    fn batched_steps_reach_the_file_on_flush() {
        let d = tempfile::tempdir().unwrap();
        let mut j = Journal::open(d.path(), ways_on(d.path())).unwrap();
        j.mark("begin 0").unwrap();
        for i in 0..10 {
            j.step_done(0, i).unwrap();
        }
        let before = fs::read_to_string(d.path().join(PROGRESS_FILE)).unwrap();
        assert_eq!(before, "begin 0\n");
        j.flush().unwrap();
        let after = fs::read_to_string(d.path().join(PROGRESS_FILE)).unwrap();
        assert_eq!(after.lines().count(), 11);
        assert_eq!(after.lines().last(), Some("done 0 9"));
    }

    fn ways_on(dir: &Path) -> WaysOn {
        WaysOn {
            root: "/sys/fs/cgroup/memory".into(),
            kubepods: crate::model::invocation::DEFAULT_KUBEPODS.into(),
            staging: crate::model::invocation::DEFAULT_STAGING.into(),
            state_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn node_lock_is_exclusive_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let l = lock_node(d.path()).unwrap();
        let e = lock_node(d.path()).err().expect("second node lock refused");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(
            msg.contains("another cgleak repair/resume/rollback of this node is running"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "{msg}"
        );
        drop(l);
        lock_node(d.path()).unwrap();
    }

    #[test]
    fn unusable_state_dirs_are_refused_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("file");
        fs::write(&file, "x").unwrap();
        for dir in [file.clone(), file.join("state")] {
            let e = lock(&dir).err().expect("refused");
            assert_eq!(e.exit_code(), 2, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(&dir.display().to_string()), "{msg}");
            assert!(
                msg.contains("is a file") && msg.contains("--state-dir"),
                "{msg}"
            );
        }
        assert_eq!(fs::read(&file).unwrap(), b"x");
        // Root passes permission bits, so a read-only filesystem is what stops it: the errno
        // gets its sentence.
        let rofs = std::io::Error::from_raw_os_error(nix::libc::EROFS);
        let msg = unusable(&file, "open", &file.join(LOCK_FILE), &rofs).to_string();
        assert!(msg.contains("read-only filesystem"), "{msg}");
    }
}
