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

use crate::error::{Error, Result};
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
pub const DEFAULT_STATE_DIR: &str = "/run/cgleak";
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
    pub ended: Vec<usize>,
    /// The last step recorded done, as (phase, step).
    pub last_done: Option<(usize, usize)>,
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
                Some("end") => {
                    if let Some(n) = num(1) {
                        p.ended.push(n)
                    }
                }
                Some("done") => {
                    if let (Some(a), Some(b)) = (num(1), num(2)) {
                        p.last_done = Some((a, b))
                    }
                }
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

/// An exclusive flock on the state directory, held while cgleak works on it.
pub struct Lock {
    _flock: Flock<File>,
}

/// Make the state directory (0700) if missing.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create state directory", dir, e))
}

/// Take the lock, or refuse when another cgleak holds it.
pub fn lock(dir: &Path) -> Result<Lock> {
    ensure_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Lock { _flock: l }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(Error::refused(
            format!("another cgleak holds the lock {}", path.display()),
            "wait for it to finish; it is working on this node now",
        )),
        Err((_, e)) => Err(Error::io("flock", &path, std::io::Error::from(e))),
    }
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
        File::create(&ppath).map_err(|e| Error::io("create", &ppath, e))?;
        // Once per repair, fsynced: the journal must be complete before anything changes.
        crate::atomic::write_file_atomic(&dir.join(JOURNAL_FILE), &data, ".json.tmp", 0o600)?;
        Self::open(dir)
    }

    /// Open the progress file of an existing journal for appending.
    pub fn open(dir: &Path) -> Result<Journal> {
        let ppath = dir.join(PROGRESS_FILE);
        let progress = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ppath)
            .map_err(|e| Error::io("open", &ppath, e))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            progress,
            pending: String::new(),
            pending_steps: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
        let p = Progress::parse("begin 0\ndone 0 1\ndone 0 2\nend 0\nbegin 1\ndone 1 7\ndo");
        assert_eq!(p.begun, vec![0, 1]);
        assert_eq!(p.ended, vec![0]);
        assert_eq!(p.last_done, Some((1, 7)));
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
        let mut j = Journal::open(d.path()).unwrap();
        j.mark("begin 0").unwrap();
        for i in 0..10 {
            j.step_done(0, i).unwrap();
        }
        let before = fs::read_to_string(d.path().join(PROGRESS_FILE)).unwrap();
        assert_eq!(before, "begin 0\n");
        j.flush().unwrap();
        let after = Progress::parse(&fs::read_to_string(d.path().join(PROGRESS_FILE)).unwrap());
        assert_eq!(after.last_done, Some((0, 9)));
    }
}
