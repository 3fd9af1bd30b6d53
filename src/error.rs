//! Typed errors. Every system-call failure carries the operation, the path and the errno, and
//! the errnos a repair meets (EBUSY, ENOSPC, ESRCH, EINVAL, EPERM) get a sentence an operator
//! understands (docs/kernel-facts.md has the kernel rules behind each meaning: "The leak", "Moving tasks", "Writing settings", "force_empty", "Ids and swap from 4.8").

use crate::model::invocation::{Command, WaysOn};
use nix::errno::Errno;
use std::fmt;
use std::path::PathBuf;

/// The errno of an I/O error (EIO when the error did not come from a system call).
pub(crate) fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// The filesystem operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsOp {
    Read,
    Write,
    Mkdir,
    Rmdir,
    Rename,
    List,
    Statfs,
    Open,
    Swapoff,
    Swapon,
}

impl fmt::Display for FsOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FsOp::Read => "read",
            FsOp::Write => "write",
            FsOp::Mkdir => "mkdir",
            FsOp::Rmdir => "rmdir",
            FsOp::Rename => "rename",
            FsOp::List => "list",
            FsOp::Statfs => "statfs",
            FsOp::Open => "open",
            FsOp::Swapoff => "swapoff",
            FsOp::Swapon => "swapon",
        };
        f.write_str(s)
    }
}

/// A failed system call on a cgroup file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    pub op: FsOp,
    pub path: PathBuf,
    pub errno: Errno,
    /// The value written, for writes.
    pub value: Option<String>,
}

impl SysError {
    pub fn new(op: FsOp, path: impl Into<PathBuf>, errno: Errno) -> Self {
        SysError {
            op,
            path: path.into(),
            errno,
            value: None,
        }
    }

    pub fn with_value(mut self, value: &str) -> Self {
        self.value = Some(value.trim_end().to_string());
        self
    }

    fn file_name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
    }

    /// What this errno means for this operation, in words an operator understands.
    pub fn meaning(&self) -> &'static str {
        let file = self.file_name();
        match (self.op, self.errno) {
            (FsOp::Mkdir, Errno::ENOSPC) | (FsOp::Mkdir, Errno::ENOMEM) => {
                "no memory cgroup id is free: live and dying memcgs hold every id this kernel \
                 hands out (docs/kernel-facts.md, \"Memcg id limit by kernel\"); free ids first \
                 (cgleak diagnose tells how) or reboot the node"
            }
            (FsOp::Mkdir, Errno::EEXIST) => "the cgroup already exists",
            (FsOp::Rmdir, Errno::EBUSY) => {
                "the cgroup still has tasks or child cgroups (a process was started or moved \
                 into it meanwhile?)"
            }
            (FsOp::Rename, Errno::EIO) | (FsOp::Rename, Errno::EXDEV) => {
                "cgroup v1 renames only within the same parent directory"
            }
            (FsOp::Write, Errno::ESRCH) => "the process exited before it could be moved",
            (FsOp::Write, Errno::EINVAL) if file == "memory.move_charge_at_immigrate" => {
                "this kernel cannot move charges (removed in 6.13): charges stay with the old \
                 cgroup until freed"
            }
            (FsOp::Write, Errno::EINVAL) if file.contains("limit_in_bytes") => {
                "the kernel refused the limit: memory.memsw.limit_in_bytes must stay >= \
                 memory.limit_in_bytes"
            }
            (FsOp::Write, Errno::EINVAL)
                if file == "memory.use_hierarchy"
                    || file == "memory.swappiness"
                    || file == "memory.oom_control" =>
            {
                "the kernel does not allow this setting here (the parent uses hierarchy, the \
                 cgroup has children, or the knob is fixed on this kernel)"
            }
            (FsOp::Write, Errno::EBUSY) if file.contains("limit_in_bytes") => {
                "usage is above the new limit and the kernel could not reclaim enough"
            }
            (FsOp::Write, Errno::EBUSY) => {
                "the cgroup has tasks or children, so this cannot change now"
            }
            (FsOp::Write, Errno::ENOSPC) => "the destination cgroup has no room (limit reached)",
            (FsOp::Swapoff, Errno::ENOMEM) => {
                "not enough free memory to read the swapped-out pages back: the kernel kept the \
                 swap area in use"
            }
            (FsOp::Swapoff, Errno::EINTR) => {
                "interrupted (a signal): the kernel kept the swap area in use"
            }
            (FsOp::Swapoff, Errno::EINVAL) => "not an active swap area",
            (FsOp::Swapon, Errno::EBUSY) => "the swap area is already in use",
            (FsOp::Swapon, Errno::EINVAL) => {
                "the kernel does not take it as a swap area (no swap signature? run mkswap only \
                 if you know the area held swap)"
            }
            (_, Errno::ENOENT) => "it does not exist",
            (_, Errno::EPERM) | (_, Errno::EACCES) => "permission denied: run cgleak as root",
            (_, Errno::EROFS) => "the filesystem is read-only",
            (_, Errno::ENOTDIR) => "not a directory",
            (_, Errno::EINVAL) => "the kernel rejected the value",
            (_, Errno::EBUSY) => "the resource is busy",
            _ => "unexpected error from the kernel",
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} {:?} to {}", self.op, v, self.path.display())?,
            None => write!(f, "{} {}", self.op, self.path.display())?,
        }
        write!(
            f,
            ": {} ({}): {}",
            self.errno.desc(),
            self.errno,
            self.meaning()
        )
    }
}

impl std::error::Error for SysError {}

/// Why a `--root` directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRoot {
    NotFound,
    NotADirectory,
    CgroupV2,
    NotMemory(String),
    NotCgroupFs(String),
}

impl fmt::Display for BadRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRoot::NotFound => write!(f, "does not exist; pass --root with the memory cgroup v1 directory (usually /sys/fs/cgroup/memory)"),
            BadRoot::NotADirectory => write!(f, "is not a directory; pass --root with a memory cgroup v1 directory"),
            BadRoot::CgroupV2 => write!(f, "is on a cgroup v2 (unified) filesystem; cgleak repairs memory cgroup v1 hierarchies only (on v2 see `cgleak diagnose`)"),
            BadRoot::NotMemory(what) => write!(f, "is a cgroup v1 hierarchy without the memory controller ({what}); pass the memory hierarchy, usually /sys/fs/cgroup/memory"),
            BadRoot::NotCgroupFs(fs) => write!(f, "is not on a cgroup filesystem ({fs}); pass --root with the memory cgroup v1 directory (usually /sys/fs/cgroup/memory), or an emulated node made by cgleak"),
        }
    }
}

/// Every error cgleak reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sys(#[from] SysError),

    #[error("--root {path}: {reason}")]
    BadRoot { path: PathBuf, reason: BadRoot },

    /// Bad input from the user (arguments, files); nothing was changed.
    #[error("{0}")]
    Usage(String),

    /// A refusal before any change: the reason and what to do instead.
    #[error("refused: {reason}\n  what to do: {hint}")]
    Refused { reason: String, hint: String },

    /// A cgroup file held something cgleak cannot parse.
    #[error("cannot parse {path}: {what} (content {content:?})")]
    Parse {
        path: PathBuf,
        what: String,
        content: String,
    },

    /// Reading or writing cgleak's own files (journal, snapshot, report).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A repair, resume or rollback stopped part-way; the journal is kept.
    #[error("{0}")]
    Stopped(Box<Stopped>),
}

impl Error {
    /// Exit code: 2 for bad input and refusals (nothing changed), 1 for operations that did not
    /// complete.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadRoot { .. } | Error::Usage(_) | Error::Refused { .. } => 2,
            Error::Parse { .. } => 2,
            _ => 1,
        }
    }

    pub fn refused(reason: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused {
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    /// The refusal of a command that changes cgroups below `root` when not run as root
    /// (cgroupfs writes would fail with EPERM); `doing` says what needs it.
    pub fn not_root(root: &std::path::Path, doing: &str, command: &str) -> Self {
        Error::refused(
            format!(
                "not root: {doing} below {} needs root (EPERM otherwise)",
                root.display()
            ),
            format!("run cgleak {command} as root (sudo); nothing was changed"),
        )
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The errno, when this is a failed system call on a cgroup.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys(e) => Some(e.errno),
            _ => None,
        }
    }
}

/// Why a repair, resume or rollback stopped before its end.
#[derive(Debug)]
pub enum StopCause {
    /// An operation failed in a way cgleak cannot handle by itself.
    Failed(Error),
    /// Ctrl-C (SIGINT/SIGTERM) between two steps.
    Interrupted,
    /// The operator answered no at a phase prompt.
    Declined,
    /// Test hook (`RunOptions::crash_after`): the executor stopped dead before its mutation
    /// number N, journal lines not yet written dropped, as kill -9 would leave it. The binary
    /// exits at once on it ([`Stopped::crashed`]); nothing else ever makes it.
    #[doc(hidden)]
    Crashed(u64),
}

/// Where a repair stopped, and how to go on from there. The journal is kept.
#[derive(Debug)]
pub struct Stopped {
    /// The command that stopped.
    pub command: Command,
    pub phase: String,
    /// The cgroup being worked on, when there was one.
    pub cgroup: Option<String>,
    /// The operation being done (`mkdir`, `write memory.limit_in_bytes`, ...).
    pub operation: Option<String>,
    pub cause: StopCause,
    /// Steps done of the plan, and its total.
    pub steps_done: usize,
    pub steps_total: usize,
    /// The journal's node and state directory: the command lines printed to go on.
    pub ways_on: WaysOn,
}

impl Stopped {
    /// The test hook's simulated kill -9, with the mutation budget it was given.
    pub fn crashed(&self) -> Option<u64> {
        match self.cause {
            StopCause::Crashed(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            StopCause::Failed(e) => writeln!(f, "{} stopped: {}", self.command, e)?,
            StopCause::Interrupted => writeln!(
                f,
                "{} interrupted (Ctrl-C) at a consistent point",
                self.command
            )?,
            StopCause::Declined => writeln!(f, "{} paused: you answered no", self.command)?,
            StopCause::Crashed(n) => writeln!(
                f,
                "{} stopped dead after {n} operations (test hook)",
                self.command
            )?,
        }
        writeln!(f, "  phase:     {}", self.phase)?;
        if let Some(cg) = &self.cgroup {
            writeln!(f, "  cgroup:    {cg}")?;
        }
        if let Some(op) = &self.operation {
            writeln!(f, "  operation: {op}")?;
        }
        if let StopCause::Failed(e) = &self.cause {
            if let Some(errno) = e.errno() {
                writeln!(f, "  errno:     {errno} ({})", errno.desc())?;
            }
        }
        writeln!(
            f,
            "  progress:  {} of {} steps done",
            self.steps_done, self.steps_total
        )?;
        writeln!(
            f,
            "  journal:   {} (kept)",
            self.ways_on.state_dir.display()
        )?;
        writeln!(
            f,
            "Every task is in a cgroup with its settings; nothing is lost. Two ways on:"
        )?;
        writeln!(f, "  finish the repair from here:")?;
        writeln!(f, "    {}", self.ways_on.command(Command::Resume))?;
        writeln!(f, "  put the tree back as it was:")?;
        write!(f, "    {}", self.ways_on.command(Command::Rollback))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_on_mkdir_names_the_id_limit() {
        let e = SysError::new(
            FsOp::Mkdir,
            "/sys/fs/cgroup/memory/kubepods/x",
            Errno::ENOSPC,
        );
        let s = e.to_string();
        assert!(s.contains("mkdir /sys/fs/cgroup/memory/kubepods/x"), "{s}");
        assert!(s.contains("no memory cgroup id is free"), "{s}");
        assert!(s.contains("ENOSPC"), "{s}");
    }

    #[test]
    fn einval_on_move_charge_explains_the_kernel() {
        let e = SysError::new(
            FsOp::Write,
            "/x/memory.move_charge_at_immigrate",
            Errno::EINVAL,
        )
        .with_value("3\n");
        let s = e.to_string();
        assert!(
            s.contains("write \"3\" to /x/memory.move_charge_at_immigrate"),
            "{s}"
        );
        assert!(s.contains("6.13"), "{s}");
    }

    #[test]
    fn ebusy_on_rmdir_and_esrch_on_procs() {
        let e = SysError::new(FsOp::Rmdir, "/x", Errno::EBUSY);
        assert!(e.meaning().contains("tasks or child cgroups"));
        let e = SysError::new(FsOp::Write, "/x/cgroup.procs", Errno::ESRCH);
        assert!(e.meaning().contains("exited"));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::refused("a", "b").exit_code(), 2);
        assert_eq!(
            Error::Sys(SysError::new(FsOp::Rmdir, "/x", Errno::EBUSY)).exit_code(),
            1
        );
    }
}
