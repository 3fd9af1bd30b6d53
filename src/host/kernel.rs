//! The kernel's cgroupfs: [`KernelFs`] reads and writes the control files of a real memory cgroup
//! v1 hierarchy, and reads the machine facts around it from /proc.
//!
//! Rules this module keeps, and why (Documentation/admin-guide/cgroup-v1/memory.rst,
//! kernel/cgroup/cgroup-v1.c, docs/kernel-facts.md, "Writing settings" and "Moving tasks"):
//! - A control-file write is exactly one write(2) of the whole value. cgroupfs parses each
//!   write(2) as one value (cgroup.procs takes one pid per write), so splitting a value or
//!   retrying a partial write would hand the kernel a different value. A short write is EIO.
//! - Files are opened `O_WRONLY|O_CLOEXEC`, never `O_CREAT`/`O_TRUNC`: cgroupfs cannot create
//!   control files, and a missing file (memsw without swap accounting) must fail with ENOENT
//!   instead of making a plain file appear in an emulated or wrong directory.
//! - Every failing system call becomes `Error::Sys(SysError { op, path, errno, value })` with the
//!   absolute path, so an operator sees exactly which cgroup and which knob refused.
//! - `--root` must be on a cgroup v1 filesystem whose hierarchy has the memory controller: a
//!   cgroup2 mount, another v1 hierarchy (cpu, ...) or a plain directory is refused up front with
//!   [`BadRoot`], before anything is read or written.
//!
//! Pure helpers (mountinfo parsing, locating this process's memory cgroup, the cgroup mode) are
//! free functions so they can be unit-tested on sample text and used without a `KernelFs`
//! (`cgleak diagnose` needs [`detect_mode`] and [`parse_nr_dying_descendants`] on v2 hosts).

use crate::error::{errno_of, BadRoot, Error, FsOp, Result, SysError};
use crate::host::{CgroupMode, Hierarchy, Host};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Where the kernel describes this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Where the kernel names this process's cgroup in each hierarchy.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";
const PROC_CGROUPS: &str = "/proc/cgroups";
const PROC_CMDLINE: &str = "/proc/cmdline";
const PROC_OSRELEASE: &str = "/proc/sys/kernel/osrelease";
const PROC_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const PROC_DROP_CACHES: &str = "/proc/sys/vm/drop_caches";
const PROC_SWAPS: &str = "/proc/swaps";
const PROC_MEMINFO: &str = "/proc/meminfo";
/// swapon(2) flags (linux/swap.h): use the priority in the low 15 bits.
const SWAP_FLAG_PREFER: nix::libc::c_int = 0x8000;
const SWAP_FLAG_PRIO_MASK: nix::libc::c_int = 0x7fff;
/// The usual place of the unified hierarchy; cgroup2 mounted here means a pure v2 host.
const SYS_FS_CGROUP: &str = "/sys/fs/cgroup";
/// /proc/PID/comm holds at most TASK_COMM_LEN - 1 = 15 bytes of the command name.
const COMM_MAX: usize = 15;

fn sys(op: FsOp, path: &Path, e: &std::io::Error) -> Error {
    Error::Sys(SysError::new(op, path, errno_of(e)))
}

/// Read an open file to its end. Not `std::fs::read` or `File::read_to_end`: they fstat the
/// file first to size the buffer, a wasted system call per read on cgroupfs and procfs, whose
/// files report a size unrelated to what a read returns (a scan reads ten files per cgroup).
fn read_to_end(f: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Text of a file's bytes (lossy: cgroup and proc files are ASCII).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Read a whole file as text.
fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::File::open(path)
        .and_then(|mut f| read_to_end(&mut f))
        .map_err(|e| sys(FsOp::Read, path, &e))?;
    Ok(text(bytes))
}

/// Open `name` relative to the directory `dir` (read-only, close-on-exec): the directory's
/// path is resolved once, not once per file.
fn open_at(dir: &OwnedFd, name: &str) -> std::io::Result<std::fs::File> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Open a directory as a handle for [`open_at`] (O_PATH: no read permission needed).
fn open_dir(path: &Path) -> std::result::Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Write `value` to an existing file with exactly one write(2).
///
/// No O_CREAT/O_TRUNC: cgroupfs files cannot be created, and a missing knob must fail with
/// ENOENT. One write(2): cgroupfs treats each write as one complete value, so a partial write
/// cannot be completed by a second write; it is reported as EIO.
fn write_once(path: &Path, value: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::Sys(SysError::new(FsOp::Open, path, errno_of(&e)).with_value(value)))?;
    let bytes = value.as_bytes();
    loop {
        match f.write(bytes) {
            // EINTR means the kernel took nothing: trying again is still one write of the value.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Sys(
                    SysError::new(FsOp::Write, path, errno_of(&e)).with_value(value),
                ))
            }
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => {
                return Err(Error::Sys(
                    SysError::new(FsOp::Write, path, Errno::EIO).with_value(value),
                ))
            }
        }
    }
}

extern "C" fn on_alarm(_: nix::libc::c_int) {
    // Nothing to do: the signal exists to make the kernel's force_empty loop return EINTR.
}

/// Write "0" to a memory.force_empty file with one write(2), interrupted after `budget` by a
/// SIGALRM aimed at this thread (a POSIX timer with SIGEV_THREAD_ID, so no other thread and
/// no other write is touched). The handler is installed without SA_RESTART: the write returns
/// EINTR instead of starting over. Ok(true): the kernel finished; Ok(false): cut short.
fn force_empty_within(path: &Path, budget: std::time::Duration) -> Result<bool> {
    use nix::sys::signal::{
        sigaction, SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal,
    };
    use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
    use nix::time::ClockId;
    let value = "0";
    let err = |op, e: Errno| Error::Sys(SysError::new(op, path, e).with_value(value));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| err(FsOp::Open, errno_of(&e)))?;
    let act = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing (async-signal-safe).
    unsafe { sigaction(Signal::SIGALRM, &act) }.map_err(|e| err(FsOp::Write, e))?;
    let mut timer = Timer::new(
        ClockId::CLOCK_MONOTONIC,
        SigEvent::new(SigevNotify::SigevThreadId {
            signal: Signal::SIGALRM,
            thread_id: nix::unistd::gettid().as_raw(),
            si_value: 0,
        }),
    )
    .map_err(|e| err(FsOp::Write, e))?;
    timer
        .set(
            Expiration::OneShot(budget.into()),
            TimerSetTimeFlags::empty(),
        )
        .map_err(|e| err(FsOp::Write, e))?;
    let r = f.write(value.as_bytes());
    // Dropping the timer deletes it (timer_delete): a late expiry only runs the empty handler.
    drop(timer);
    match r {
        Ok(1) => Ok(true),
        Ok(_) => Err(err(FsOp::Write, Errno::EIO)),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(err(FsOp::Write, errno_of(&e))),
    }
}

/// Whether a /proc/PID/stat line (proc(5)) is of a task that has exited or is exiting: state
/// Z (zombie) or X (dead), or the PF_EXITING flag (0x4) set. Such a task is in no cgroup.procs
/// any more (cgroup_exit moves it to the root css_set before it turns zombie), so to verify it
/// has exited, not left the tree.
fn stat_says_exited(stat: &str) -> bool {
    let Some((_, mut fields)) = crate::host::procs::split_stat(stat) else {
        return false;
    };
    let state = fields.next().unwrap_or("");
    // After the state: ppid, pgrp, session, tty_nr, tpgid, then flags (field 9).
    let flags = fields
        .nth(5)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    const PF_EXITING: u64 = 0x4;
    state == "Z" || state == "X" || flags & PF_EXITING != 0
}

/// One line of /proc/self/mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_id: u32,
    pub parent_id: u32,
    /// `major:minor` of the filesystem.
    pub device: String,
    /// The directory of the filesystem that is mounted (for cgroups: the cgroup shown at the
    /// mount point, `/` unless a sub-tree or a cgroup namespace is mounted).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub mount_options: Vec<String>,
    /// Optional fields (`shared:1`, `master:2`, ...).
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options; for cgroup v1 they name the controllers (`rw,memory`).
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether this is a cgroup v1 mount whose hierarchy has the memory controller.
    pub fn is_memory_v1(&self) -> bool {
        self.fstype == "cgroup" && self.super_options.iter().any(|o| o == "memory")
    }

    /// The controllers (and `name=`) among the super options of a cgroup v1 mount.
    pub fn controllers(&self) -> Vec<String> {
        const FLAGS: &[&str] = &[
            "rw",
            "ro",
            "xattr",
            "noprefix",
            "clone_children",
            "cpuset_v2_mode",
            "favordynmods",
            "all",
            "none",
        ];
        self.super_options
            .iter()
            .filter(|o| !FLAGS.contains(&o.as_str()) && !o.starts_with("release_agent="))
            .cloned()
            .collect()
    }
}

/// Undo the octal escapes the kernel writes in mountinfo paths (`\040` space, `\011` tab,
/// `\012` newline, `\134` backslash: show_mountinfo uses mangle() with " \t\n\\").
pub fn unescape_mountinfo(s: &str) -> OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if v <= 0xff {
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// Parse one mountinfo line; None for a malformed line.
pub fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    // The optional fields end at a lone "-"; the fixed fields are 6 before, 3 after.
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    let text = |s: &str| unescape_mountinfo(s).to_string_lossy().into_owned();
    Some(MountInfo {
        mount_id: fields[0].parse().ok()?,
        parent_id: fields[1].parse().ok()?,
        device: fields[2].to_string(),
        root: PathBuf::from(unescape_mountinfo(fields[3])),
        mount_point: PathBuf::from(unescape_mountinfo(fields[4])),
        mount_options: fields[5].split(',').map(str::to_string).collect(),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fstype: text(fields[sep + 1]),
        source: text(fields[sep + 2]),
        super_options: fields
            .get(sep + 3)
            .map(|s| s.split(',').map(text).collect())
            .unwrap_or_default(),
    })
}

/// Parse /proc/self/mountinfo, skipping malformed lines.
pub fn parse_mountinfo(s: &str) -> Vec<MountInfo> {
    s.lines().filter_map(parse_mountinfo_line).collect()
}

fn read_mountinfo() -> Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&read_text(Path::new(MOUNTINFO))?))
}

/// The mount that holds `path` (absolute, canonical): the longest mount point that is a
/// component-wise prefix of it. On equal mount points the later line wins, because a later
/// mount on the same directory hides the earlier one.
pub fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point)
            && best.is_none_or(|b| {
                m.mount_point.components().count() >= b.mount_point.components().count()
            })
        {
            best = Some(m);
        }
    }
    best
}

/// The cgroup mode from parsed mountinfo: cgroup2 at /sys/fs/cgroup is a pure v2 host; v1
/// hierarchies next to any cgroup2 mount are systemd's hybrid layout; v1 alone is V1. A host
/// with no cgroup mount at all is reported as V1 (nothing unified; opening the root fails).
pub fn mode_from_mounts(mounts: &[MountInfo]) -> CgroupMode {
    let v2_at_top = mounts
        .iter()
        .any(|m| m.fstype == "cgroup2" && m.mount_point == Path::new(SYS_FS_CGROUP));
    let any_v1 = mounts.iter().any(|m| m.fstype == "cgroup");
    let any_v2 = mounts.iter().any(|m| m.fstype == "cgroup2");
    if v2_at_top {
        CgroupMode::V2
    } else if any_v1 && any_v2 {
        CgroupMode::Hybrid
    } else if any_v2 {
        CgroupMode::V2
    } else {
        CgroupMode::V1
    }
}

/// How this machine mounts cgroups, from /proc/self/mountinfo (no `KernelFs` needed).
pub fn detect_mode() -> Result<CgroupMode> {
    Ok(mode_from_mounts(&read_mountinfo()?))
}

/// The path of this process's memory cgroup from /proc/self/cgroup text (`4:memory:/a/b`).
pub fn memory_cgroup_path(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|line| {
        // hierarchy-ID:controller-list:cgroup-path; the path may itself contain ':'.
        let mut it = line.splitn(3, ':');
        let _id = it.next()?;
        let controllers = it.next()?;
        let path = it.next()?;
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })
}

/// The absolute directory of the memory cgroup named by `proc_self_cgroup`, given `mounts`.
///
/// /proc/self/cgroup gives the path from the hierarchy's root; a mount shows the hierarchy from
/// its `root` field (not `/` when only a sub-tree is bind-mounted, e.g. inside a container), so
/// the directory is mount point + (cgroup path with the mount root stripped). Mounts whose root
/// is not an ancestor of the path cannot show it; of the others the deepest root wins.
pub fn own_memory_cgroup_from(proc_self_cgroup: &str, mounts: &[MountInfo]) -> Option<PathBuf> {
    let cg = memory_cgroup_path(proc_self_cgroup)?;
    let cg = Path::new(&cg);
    let mut best: Option<(usize, PathBuf)> = None;
    for m in mounts.iter().filter(|m| m.is_memory_v1()) {
        let Ok(rest) = cg.strip_prefix(&m.root) else {
            continue;
        };
        let depth = m.root.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth > *d) {
            best = Some((depth, m.mount_point.join(rest)));
        }
    }
    best.map(|(_, p)| p)
}

/// The absolute directory of this process's memory cgroup (v1), or None when there is no
/// memory v1 hierarchy visible to this process.
pub fn own_memory_cgroup() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string(PROC_SELF_CGROUP).ok()?;
    let mounts = read_mountinfo().ok()?;
    own_memory_cgroup_from(&cgroup, &mounts)
}

/// `nr_dying_descendants` from the text of a cgroup v2 `cgroup.stat`.
pub fn parse_nr_dying_descendants(s: &str) -> Option<u64> {
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some("nr_dying_descendants"))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

/// Pids of processes whose /proc/PID/comm is `comm` (no KernelFs needed: v2 hosts use it).
pub fn find_processes_in_proc(comm: &str) -> Result<Vec<u32>> {
    // The kernel keeps only the first 15 bytes of a command name in comm.
    let want = comm.as_bytes();
    let want = &want[..want.len().min(COMM_MAX)];
    let proc = Path::new("/proc");
    let rd = std::fs::read_dir(proc).map_err(|e| sys(FsOp::List, proc, &e))?;
    // Every process's comm relative to one handle on /proc: a node has thousands of processes.
    let proc_dir = open_dir(proc).map_err(|e| Error::Sys(SysError::new(FsOp::Open, proc, e)))?;
    let mut pids = Vec::new();
    let mut name = String::new();
    for entry in rd.flatten() {
        crate::host::share::tick();
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        name.clear();
        let _ = std::fmt::Write::write_fmt(&mut name, format_args!("{pid}/comm"));
        // A process may exit between the listing and the read: skip it.
        let Ok(c) = open_at(&proc_dir, &name).and_then(|mut f| read_to_end(&mut f)) else {
            continue;
        };
        let c = c.strip_suffix(b"\n").unwrap_or(&c);
        if c == want {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Number of directories below and including `dir`, on `dir`'s filesystem, not following links.
/// In a cgroup hierarchy every directory is a live cgroup (a dying one has lost its directory).
/// Directories that vanish during the walk (containers being deleted) are not errors.
pub fn count_cgroup_dirs(dir: &Path) -> Result<u64> {
    count_cgroup_dirs_except(dir, None)
}

/// [`count_cgroup_dirs`] without the directory `skip` and everything below it (not walked).
pub fn count_cgroup_dirs_except(dir: &Path, skip: Option<&Path>) -> Result<u64> {
    let mut n = 0u64;
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .same_file_system(true)
        .into_iter()
        .filter_entry(|e| Some(e.path()) != skip)
    {
        match entry {
            Ok(e) if e.file_type().is_dir() => n += 1,
            Ok(_) => {}
            Err(e) => {
                let errno = e.io_error().map(errno_of).unwrap_or(Errno::EIO);
                if errno == Errno::ENOENT && e.depth() > 0 {
                    continue;
                }
                let path = e.path().unwrap_or(dir).to_path_buf();
                return Err(Error::Sys(SysError::new(FsOp::List, path, errno)));
            }
        }
    }
    Ok(n)
}

/// Whether `file` names a file directly in a cgroup directory (no path, no `.`/`..`).
fn file_name_ok(file: &str) -> bool {
    !(file.is_empty() || file.contains('/') || file == "." || file == "..")
}

/// The memory cgroup v1 hierarchy of the running kernel, seen from a `--root` directory.
pub struct KernelFs {
    /// Canonical absolute `--root`.
    root: PathBuf,
    /// Mount point of the memory hierarchy that holds `root`.
    mount: PathBuf,
}

impl KernelFs {
    /// Open `root`, which must be a directory of a cgroup v1 hierarchy with the memory
    /// controller. Nothing is written.
    pub fn open(root: &Path) -> Result<KernelFs> {
        let bad = |reason: BadRoot| Error::BadRoot {
            path: root.to_path_buf(),
            reason,
        };
        let canon = match std::fs::canonicalize(root) {
            Ok(p) => p,
            Err(e) => {
                return Err(match errno_of(&e) {
                    Errno::ENOENT => bad(BadRoot::NotFound),
                    Errno::ENOTDIR => bad(BadRoot::NotADirectory),
                    errno => Error::Sys(SysError::new(FsOp::Open, root, errno)),
                })
            }
        };
        let meta = std::fs::metadata(&canon).map_err(|e| sys(FsOp::Open, &canon, &e))?;
        if !meta.is_dir() {
            return Err(bad(BadRoot::NotADirectory));
        }
        let st = statfs(&canon).map_err(|e| Error::Sys(SysError::new(FsOp::Statfs, &canon, e)))?;
        let magic = st.filesystem_type();
        if magic == CGROUP2_SUPER_MAGIC {
            return Err(bad(BadRoot::CgroupV2));
        }
        let mounts = read_mountinfo()?;
        if magic != CGROUP_SUPER_MAGIC {
            let what = mount_of(&mounts, &canon)
                .map(|m| m.fstype.clone())
                .unwrap_or_else(|| format!("filesystem magic {:#x}", magic.0));
            return Err(bad(BadRoot::NotCgroupFs(what)));
        }
        let cgroup_mounts: Vec<MountInfo> = mounts
            .into_iter()
            .filter(|m| m.fstype == "cgroup")
            .collect();
        let Some(m) = mount_of(&cgroup_mounts, &canon) else {
            return Err(bad(BadRoot::NotMemory(
                "its cgroup mount is not in /proc/self/mountinfo".into(),
            )));
        };
        if !m.is_memory_v1() {
            let c = m.controllers();
            let c = if c.is_empty() {
                "none".to_string()
            } else {
                c.join(",")
            };
            return Err(bad(BadRoot::NotMemory(format!("controllers: {c}"))));
        }
        Ok(KernelFs {
            mount: m.mount_point.clone(),
            root: canon,
        })
    }

    /// Open a directory of the unified hierarchy (cgroup v2), for diagnose only: the same
    /// reads, from a cgroup2 filesystem. Whether its memory controller is enabled is the
    /// caller's question (diagnose answers "unknown" where it is not).
    pub fn open_unified(root: &Path) -> Result<KernelFs> {
        let canon = std::fs::canonicalize(root).map_err(|e| sys(FsOp::Open, root, &e))?;
        let st = statfs(&canon).map_err(|e| Error::Sys(SysError::new(FsOp::Statfs, &canon, e)))?;
        if st.filesystem_type() != CGROUP2_SUPER_MAGIC {
            return Err(Error::BadRoot {
                path: root.to_path_buf(),
                reason: BadRoot::NotCgroupFs("not a cgroup2 filesystem".into()),
            });
        }
        let mounts = read_mountinfo()?;
        let mount = mount_of(&mounts, &canon)
            .filter(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point.clone())
            .unwrap_or_else(|| canon.clone());
        Ok(KernelFs { mount, root: canon })
    }

    /// The absolute path of a cgroup given relative to the root. `..`, absolute and prefix
    /// components are refused (EINVAL): a cgroup path must never leave `--root`.
    fn dir(&self, cg: &str) -> std::result::Result<PathBuf, Errno> {
        let mut p = self.root.clone();
        for c in Path::new(cg).components() {
            match c {
                Component::Normal(n) => p.push(n),
                Component::CurDir => {}
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(p)
    }

    /// The absolute path of a control file, or an error naming the path for `op`.
    fn file(&self, cg: &str, file: &str, op: FsOp) -> Result<PathBuf> {
        let bad = || {
            Error::Sys(SysError::new(
                op,
                self.root.join(cg).join(file),
                Errno::EINVAL,
            ))
        };
        let d = self.dir(cg).map_err(|_| bad())?;
        if !file_name_ok(file) {
            return Err(bad());
        }
        Ok(d.join(file))
    }

    fn dir_for(&self, cg: &str, op: FsOp) -> Result<PathBuf> {
        self.dir(cg)
            .map_err(|e| Error::Sys(SysError::new(op, self.root.join(cg), e)))
    }
}

impl Hierarchy for KernelFs {
    fn root(&self) -> &Path {
        &self.root
    }

    fn describe(&self) -> String {
        let release = self
            .kernel_release()
            .unwrap_or_else(|_| "unknown".to_string());
        format!(
            "kernel cgroupfs: {} (memory hierarchy at {}, kernel {})",
            self.root.display(),
            self.mount.display(),
            release
        )
    }

    fn exists(&self, cg: &str) -> bool {
        self.dir(cg).map(|d| d.is_dir()).unwrap_or(false)
    }

    fn children(&self, cg: &str) -> Result<Vec<String>> {
        let dir = self.dir_for(cg, FsOp::List)?;
        let rd = std::fs::read_dir(&dir).map_err(|e| sys(FsOp::List, &dir, &e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| sys(FsOp::List, &dir, &e))?;
            // In cgroupfs every directory is a child cgroup; files are control files.
            let is_dir = match entry.file_type() {
                Ok(t) => t.is_dir(),
                // Removed meanwhile (a container exited): not a child any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(sys(FsOp::List, &entry.path(), &e)),
            };
            if is_dir {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn has_file(&self, cg: &str, file: &str) -> bool {
        self.file(cg, file, FsOp::Read)
            .map(|p| p.is_file())
            .unwrap_or(false)
    }

    fn read(&self, cg: &str, file: &str) -> Result<String> {
        read_text(&self.file(cg, file, FsOp::Read)?)
    }

    fn read_many(&self, cg: &str, files: &[&str]) -> Vec<Result<String>> {
        // The same results as `read` file by file (errors name the file's absolute path), with
        // the cgroup's path resolved once: that path walk is a good part of each read's cost.
        let Ok(dir) = self.dir(cg) else {
            return files.iter().map(|f| self.read(cg, f)).collect();
        };
        let handle = open_dir(&dir);
        files
            .iter()
            .map(|&f| {
                if !file_name_ok(f) {
                    return self.read(cg, f);
                }
                let fd = handle
                    .as_ref()
                    .map_err(|&e| Error::Sys(SysError::new(FsOp::Read, dir.join(f), e)))?;
                let bytes = open_at(fd, f)
                    .and_then(|mut file| read_to_end(&mut file))
                    .map_err(|e| sys(FsOp::Read, &dir.join(f), &e))?;
                Ok(text(bytes))
            })
            .collect()
    }

    fn write(&self, cg: &str, file: &str, value: &str) -> Result<()> {
        let path = self.file(cg, file, FsOp::Write).map_err(|e| match e {
            Error::Sys(s) => Error::Sys(s.with_value(value)),
            e => e,
        })?;
        write_once(&path, value)
    }

    fn force_empty(&self, cg: &str, budget: std::time::Duration) -> Result<bool> {
        let path = self.file(cg, crate::host::knob::FORCE_EMPTY, FsOp::Write)?;
        force_empty_within(&path, budget)
    }

    fn mkdir(&self, cg: &str) -> Result<()> {
        let path = self.dir_for(cg, FsOp::Mkdir)?;
        if path == self.root {
            return Err(Error::Sys(SysError::new(FsOp::Mkdir, path, Errno::EEXIST)));
        }
        // mkdir(2) of one directory: the kernel creates the cgroup and its control files, and
        // answers ENOSPC (or ENOMEM on some 3.10 builds) when no memcg id is free.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| sys(FsOp::Mkdir, &path, &e))
    }

    fn rmdir(&self, cg: &str) -> Result<()> {
        let path = self.dir_for(cg, FsOp::Rmdir)?;
        if path == self.root {
            // Never remove --root itself: everything cgleak does happens below it.
            return Err(Error::Sys(SysError::new(FsOp::Rmdir, path, Errno::EINVAL)));
        }
        // rmdir(2) only: a cgroup directory holds control files that cannot be unlinked, and
        // the kernel refuses with EBUSY while tasks or child cgroups remain.
        std::fs::remove_dir(&path).map_err(|e| sys(FsOp::Rmdir, &path, &e))
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let src = self.dir_for(from, FsOp::Rename)?;
        let dst = self.dir_for(to, FsOp::Rename)?;
        if src == self.root || dst == self.root {
            return Err(Error::Sys(SysError::new(FsOp::Rename, src, Errno::EINVAL)));
        }
        // cgroup v1 renames within the same parent only (cgroup1_rename: EIO otherwise); an
        // existing destination is EEXIST from kernfs. Let the kernel decide and report it.
        std::fs::rename(&src, &dst).map_err(|e| sys(FsOp::Rename, &src, &e))
    }

    fn hierarchy_mount(&self) -> PathBuf {
        self.mount.clone()
    }

    fn hierarchy_live(&self) -> Result<u64> {
        count_cgroup_dirs(&self.mount)
    }

    fn hierarchy_live_except(&self, cg: &str) -> Result<u64> {
        let skip = self.dir_for(cg, FsOp::List)?;
        count_cgroup_dirs_except(&self.mount, Some(&skip))
    }
}

/// The running machine's side of the boundary: /proc, the boot id, swap, the page cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelHost;

/// A kernel hierarchy is on the running machine: its host is [`KernelHost`].
impl Host for KernelFs {
    fn kernel_release(&self) -> Result<String> {
        KernelHost.kernel_release()
    }
    fn proc_cgroups(&self) -> Result<String> {
        KernelHost.proc_cgroups()
    }
    fn kernel_cmdline(&self) -> Result<String> {
        KernelHost.kernel_cmdline()
    }
    fn boot_id(&self) -> Result<String> {
        KernelHost.boot_id()
    }
    fn cgroup_mode(&self) -> Result<CgroupMode> {
        KernelHost.cgroup_mode()
    }
    fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
        KernelHost.find_processes(comm)
    }
    fn pid_alive(&self, pid: u32) -> bool {
        KernelHost.pid_alive(pid)
    }
    fn drop_caches(&self, what: u8) -> Result<()> {
        KernelHost.drop_caches(what)
    }
    fn may_write(&self) -> bool {
        KernelHost.may_write()
    }
    fn proc_swaps(&self) -> Result<String> {
        KernelHost.proc_swaps()
    }
    fn meminfo(&self) -> Result<String> {
        KernelHost.meminfo()
    }
    fn swapoff(&self, area: &Path) -> Result<()> {
        KernelHost.swapoff(area)
    }
    fn swapon(&self, area: &Path, priority: Option<i32>) -> Result<()> {
        KernelHost.swapon(area, priority)
    }
    fn slab_caches(&self) -> Result<Option<Vec<String>>> {
        KernelHost.slab_caches()
    }
    fn processes(&self) -> Result<Vec<crate::host::procs::ProcInfo>> {
        KernelHost.processes()
    }
    fn fd_targets(&self, pid: u32) -> Result<Vec<String>> {
        KernelHost.fd_targets(pid)
    }
    fn host_file(&self, path: &str) -> Result<Option<String>> {
        KernelHost.host_file(path)
    }
    fn pass_time(&self, d: std::time::Duration) {
        KernelHost.pass_time(d)
    }
    fn host_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        KernelHost.host_dir(path)
    }
    fn proc_file(&self, rel: &str) -> Result<Option<String>> {
        KernelHost.proc_file(rel)
    }
}

impl Host for KernelHost {
    fn kernel_release(&self) -> Result<String> {
        // Same string as uname(2)'s release field.
        Ok(read_text(Path::new(PROC_OSRELEASE))?.trim().to_string())
    }

    fn proc_cgroups(&self) -> Result<String> {
        read_text(Path::new(PROC_CGROUPS))
    }

    fn kernel_cmdline(&self) -> Result<String> {
        read_text(Path::new(PROC_CMDLINE))
    }

    fn boot_id(&self) -> Result<String> {
        Ok(read_text(Path::new(PROC_BOOT_ID))?.trim().to_string())
    }

    fn cgroup_mode(&self) -> Result<CgroupMode> {
        detect_mode()
    }

    fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
        find_processes_in_proc(comm)
    }

    fn slab_caches(&self) -> Result<Option<Vec<String>>> {
        crate::ids::slab::read_names(Path::new(crate::ids::slab::SYS_KERNEL_SLAB))
    }

    fn pid_alive(&self, pid: u32) -> bool {
        // /proc/<tid> resolves for thread ids too, although only thread-group leaders are
        // listed in /proc.
        if pid == 0 {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        !stat_says_exited(&stat)
    }

    fn drop_caches(&self, what: u8) -> Result<()> {
        if !(1..=3).contains(&what) {
            return Err(Error::Usage(format!(
                "drop_caches takes 1 (page cache), 2 (slab) or 3 (both), not {what}"
            )));
        }
        // Freed page cache and slab uncharge dying memcgs, which lets the kernel free their ids.
        write_once(Path::new(PROC_DROP_CACHES), &what.to_string())
    }

    fn may_write(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn proc_swaps(&self) -> Result<String> {
        read_text(Path::new(PROC_SWAPS))
    }

    fn meminfo(&self) -> Result<String> {
        read_text(Path::new(PROC_MEMINFO))
    }

    fn swapoff(&self, area: &Path) -> Result<()> {
        let c = c_path(area, FsOp::Swapoff)?;
        // SAFETY: a valid NUL-terminated path; swapoff(2) only reads it.
        let rc = unsafe { nix::libc::swapoff(c.as_ptr()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Sys(SysError::new(
                FsOp::Swapoff,
                area,
                Errno::last(),
            )))
        }
    }

    fn swapon(&self, area: &Path, priority: Option<i32>) -> Result<()> {
        let c = c_path(area, FsOp::Swapon)?;
        let flags = match priority {
            Some(p) => SWAP_FLAG_PREFER | (p & SWAP_FLAG_PRIO_MASK),
            None => 0,
        };
        // SAFETY: a valid NUL-terminated path; swapon(2) only reads it.
        let rc = unsafe { nix::libc::swapon(c.as_ptr(), flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::Sys(SysError::new(FsOp::Swapon, area, Errno::last())))
        }
    }

    fn processes(&self) -> Result<Vec<crate::host::procs::ProcInfo>> {
        crate::host::procs::read_process_table()
    }

    fn fd_targets(&self, pid: u32) -> Result<Vec<String>> {
        crate::host::procs::read_fd_targets(pid)
    }

    fn host_file(&self, path: &str) -> Result<Option<String>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(text(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sys(FsOp::Read, Path::new(path), &e)),
        }
    }

    fn pass_time(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }

    fn host_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        let p = Path::new(path);
        let rd = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sys(FsOp::List, p, &e)),
        };
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| sys(FsOp::List, p, &e))?;
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }

    fn proc_file(&self, rel: &str) -> Result<Option<String>> {
        let p = Path::new("/proc").join(rel.trim_start_matches('/'));
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(text(b))),
            // ESRCH: a /proc/PID file of a task that exited between open and read.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(Errno::ESRCH as i32) =>
            {
                Ok(None)
            }
            Err(e) => Err(sys(FsOp::Read, &p, &e)),
        }
    }
}

/// A path as a C string for a system call (a NUL byte inside is EINVAL, as the kernel would say).
fn c_path(path: &Path, op: FsOp) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Sys(SysError::new(op, path, Errno::EINVAL)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_of_exited_and_exiting_tasks() {
        let live = "123 (sleep) S 1 123 123 0 -1 4194304 90 0 0 0";
        assert!(!stat_says_exited(live));
        assert!(stat_says_exited(
            "123 (sleep) Z 1 123 123 0 -1 4194308 90 0 0 0"
        ));
        assert!(stat_says_exited(
            "123 (sleep) X 1 123 123 0 -1 4194304 90 0 0 0"
        ));
        // Still running, but in do_exit: PF_EXITING.
        assert!(stat_says_exited(
            "123 (sleep) R 1 123 123 0 -1 4194308 90 0 0 0"
        ));
        // A command name with spaces and a parenthesis.
        assert!(!stat_says_exited("7 (a) b) S 1 7 7 0 -1 0 0 0"));
        assert!(stat_says_exited("7 (a) b) Z 1 7 7 0 -1 0 0 0"));
    }

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:11 master:3 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn mountinfo_fields_and_optional_fields() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 8);
        let mem = &m[5];
        assert_eq!(mem.mount_id, 35);
        assert_eq!(mem.parent_id, 31);
        assert_eq!(mem.device, "0:32");
        assert_eq!(mem.root, Path::new("/"));
        assert_eq!(mem.mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(mem.optional, vec!["shared:11", "master:3"]);
        assert_eq!(mem.fstype, "cgroup");
        assert_eq!(mem.source, "cgroup");
        assert_eq!(mem.super_options, vec!["rw", "memory"]);
        assert!(mem.is_memory_v1());
        assert!(!m[4].is_memory_v1());
        assert_eq!(m[4].controllers(), vec!["cpu", "cpuacct"]);
        assert_eq!(m[6].controllers(), vec!["name=systemd"]);
        assert!(m[1].optional.is_empty());
    }

    #[test]
    fn mountinfo_octal_escapes() {
        let line = r"50 27 0:40 /a\040b /mnt/with\040space\011tab\134back rw - tmpfs my\040src rw";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m.root, Path::new("/a b"));
        assert_eq!(m.mount_point, Path::new("/mnt/with space\ttab\\back"));
        assert_eq!(m.source, "my src");
        assert_eq!(unescape_mountinfo(r"\012"), OsString::from("\n"));
        // Not an escape: kept as is.
        assert_eq!(unescape_mountinfo(r"a\9b\04"), OsString::from(r"a\9b\04"));
        // Non-UTF-8 bytes survive in paths.
        assert_eq!(unescape_mountinfo(r"\377").into_vec(), vec![0xffu8]);
    }

    #[test]
    fn mountinfo_malformed_lines_are_skipped() {
        assert!(parse_mountinfo_line("").is_none());
        assert!(parse_mountinfo_line("1 2 0:1 / /x rw tmpfs tmpfs rw").is_none());
        assert!(parse_mountinfo_line("x 2 0:1 / /x rw - tmpfs tmpfs rw").is_none());
        assert_eq!(
            parse_mountinfo("garbage\n1 0 0:1 / / rw - ext4 /dev/a rw\n").len(),
            1
        );
    }

    #[test]
    fn mount_lookup_is_component_wise_and_last_wins() {
        let m = parse_mountinfo(HYBRID);
        let p = Path::new("/sys/fs/cgroup/memory/kubepods");
        assert_eq!(mount_of(&m, p).unwrap().mount_id, 35);
        // /sys/fs/cgroup/cpuX is not below /sys/fs/cgroup/cpu.
        assert_eq!(
            mount_of(&m, Path::new("/sys/fs/cgroup/cpux"))
                .unwrap()
                .mount_id,
            31
        );
        let mut m2 = m.clone();
        m2.push(
            parse_mountinfo_line("99 35 0:50 / /sys/fs/cgroup/memory rw - tmpfs tmpfs rw").unwrap(),
        );
        assert_eq!(mount_of(&m2, p).unwrap().mount_id, 99);
    }

    #[test]
    fn modes() {
        assert_eq!(
            mode_from_mounts(&parse_mountinfo(HYBRID)),
            CgroupMode::Hybrid
        );
        let v1: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(mode_from_mounts(&parse_mountinfo(&v1)), CgroupMode::V1);
        let v2 = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                  30 27 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(mode_from_mounts(&parse_mountinfo(v2)), CgroupMode::V2);
        assert_eq!(mode_from_mounts(&[]), CgroupMode::V1);
    }

    #[test]
    fn own_memory_cgroup_with_root_mount() {
        let mounts = parse_mountinfo(HYBRID);
        let cg = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n";
        assert_eq!(memory_cgroup_path(cg).as_deref(), Some("/process_api/abc"));
        assert_eq!(
            own_memory_cgroup_from(cg, &mounts),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"))
        );
        let cg = "4:memory:/\n";
        assert_eq!(
            own_memory_cgroup_from(cg, &mounts),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        // No memory line, or no memory mount.
        assert_eq!(own_memory_cgroup_from("1:cpu:/\n0::/x\n", &mounts), None);
        assert_eq!(own_memory_cgroup_from(cg, &mounts[..5]), None);
    }

    #[test]
    fn own_memory_cgroup_with_subtree_mount() {
        // Inside a container: only the container's sub-tree is mounted, and the path in
        // /proc/self/cgroup is still from the hierarchy root (no cgroup namespace).
        let mounts = parse_mountinfo(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 0:32 /kubepods/podx/ctr /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
        );
        let cg = "5:memory:/kubepods/podx/ctr/sub\n";
        assert_eq!(
            own_memory_cgroup_from(cg, &mounts),
            Some(PathBuf::from("/sys/fs/cgroup/memory/sub"))
        );
        // A path outside the mounted sub-tree cannot be reached.
        assert_eq!(own_memory_cgroup_from("5:memory:/other\n", &mounts), None);
        // Combined controllers and a path containing ':'.
        let mounts = parse_mountinfo(
            "2 1 0:32 / /cg/mem rw - cgroup cgroup rw,memory,hugetlb\n\
             3 1 0:32 /a /cg/a rw - cgroup cgroup rw,memory,hugetlb\n",
        );
        assert_eq!(
            own_memory_cgroup_from("3:hugetlb,memory:/a/b:c\n", &mounts),
            Some(PathBuf::from("/cg/a/b:c"))
        );
    }

    #[test]
    fn cgroup_stat_dying() {
        let s = "nr_descendants 3\nnr_dying_descendants 17\nnr_subsys_memory 4\n";
        assert_eq!(parse_nr_dying_descendants(s), Some(17));
        assert_eq!(parse_nr_dying_descendants("nr_descendants 3\n"), None);
        assert_eq!(parse_nr_dying_descendants("nr_dying_descendants x\n"), None);
    }

    #[test]
    fn count_dirs_of_a_plain_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::create_dir(d.path().join("c")).unwrap();
        std::fs::write(d.path().join("a/file"), "x").unwrap();
        std::os::unix::fs::symlink(d.path().join("a"), d.path().join("link")).unwrap();
        assert_eq!(count_cgroup_dirs(d.path()).unwrap(), 4);
    }

    #[test]
    fn write_once_never_creates_and_errors_carry_the_value() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("memory.limit_in_bytes");
        let e = write_once(&p, "4096\n").unwrap_err();
        match e {
            Error::Sys(s) => {
                assert_eq!(s.op, FsOp::Open);
                assert_eq!(s.errno, Errno::ENOENT);
                assert_eq!(s.path, p);
                assert_eq!(s.value.as_deref(), Some("4096"));
            }
            e => panic!("{e}"),
        }
        assert!(!p.exists());
        std::fs::write(&p, "old value that is long\n").unwrap();
        write_once(&p, "12").unwrap();
        // No O_TRUNC: a regular file keeps its tail (cgroupfs files have no tail to keep).
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "12d value that is long\n"
        );
    }

    #[test]
    fn open_refuses_plain_dirs_and_missing_paths() {
        let d = tempfile::tempdir().unwrap();
        let e = KernelFs::open(d.path()).err().unwrap();
        assert!(
            matches!(
                &e,
                Error::BadRoot {
                    reason: BadRoot::NotCgroupFs(_),
                    ..
                }
            ),
            "{e}"
        );
        let e = KernelFs::open(&d.path().join("missing")).err().unwrap();
        assert!(
            matches!(
                &e,
                Error::BadRoot {
                    reason: BadRoot::NotFound,
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(d.path().join("f"), "").unwrap();
        let e = KernelFs::open(&d.path().join("f")).err().unwrap();
        assert!(
            matches!(
                &e,
                Error::BadRoot {
                    reason: BadRoot::NotADirectory,
                    ..
                }
            ),
            "{e}"
        );
        let e = KernelFs::open(&d.path().join("f/x")).err().unwrap();
        assert!(
            matches!(
                &e,
                Error::BadRoot {
                    reason: BadRoot::NotADirectory,
                    ..
                }
            ),
            "{e}"
        );
    }
}
