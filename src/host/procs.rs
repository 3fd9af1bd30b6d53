//! The process table as /proc shows it: pid, parent, command name, executable, command line and
//! start time of every process, and the open file descriptors of one. Container runtimes are
//! recognised from these alone (src/runtime), so nothing of theirs is run or asked.
//!
//! Formats (proc(5)): `/proc/PID/stat` is `pid (comm) state ppid ...` where comm may hold spaces
//! and ')' (fields start after the LAST ')'), starttime is field 22 in clock ticks since boot;
//! `/proc/PID/cmdline` is the arguments each ended by a NUL (empty for kernel threads and
//! zombies); `/proc/PID/exe` is a symlink whose target ends in " (deleted)" when the binary was
//! replaced on disk (a package upgrade while the daemon runs); `/proc/PID/fd/N` are symlinks,
//! an eventfd reads `anon_inode:[eventfd]`.

use crate::error::{Error, FsOp, Result, SysError};
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What an eventfd's /proc/PID/fd link reads (fs/eventfd.c: anon_inode_getfd("[eventfd]")).
pub const EVENTFD_LINK: &str = "anon_inode:[eventfd]";

/// One process of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// /proc/PID/comm: at most 15 bytes of the command name.
    pub comm: String,
    /// The executable's path, " (deleted)" removed; None when unreadable (kernel threads,
    /// another user's process without ptrace rights).
    pub exe: Option<String>,
    /// The arguments, argv[0] first.
    pub cmdline: Vec<String>,
    /// Clock ticks after boot when the process started: with the pid, it names one process
    /// (a pid is reused, the pair is not).
    pub start_time: u64,
}

/// A /proc/PID/stat line split at its command name: (comm, the fields after it, from state
/// on). The name may hold spaces and ')': it ends at the last ')'. None when malformed.
pub fn split_stat(stat: &str) -> Option<(&str, std::str::SplitWhitespace<'_>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some((
        stat.get(open + 1..close)?,
        stat.get(close + 1..)?.split_whitespace(),
    ))
}

/// Fields of a /proc/PID/stat line: (comm, ppid, starttime). None when malformed.
pub fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let (comm, mut f) = split_stat(stat)?;
    let comm = comm.to_string();
    // After comm: state (3), ppid (4), ... starttime (22): 19 fields after ppid.
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let start = f.nth(17)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// The arguments of a /proc/PID/cmdline (NUL-terminated; a process may have rewritten its
/// argument area with spaces instead, which then stays one argument).
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The target of /proc/PID/exe without the " (deleted)" the kernel appends (d_path) when the
/// file was unlinked: the daemon still runs the old binary, under that name.
pub fn parse_exe(target: &str) -> String {
    target
        .strip_suffix(" (deleted)")
        .unwrap_or(target)
        .to_string()
}

/// One process from /proc/PID; None when it exited meanwhile or is unreadable.
fn read_process(pid: u32) -> Option<ProcInfo> {
    let dir = format!("/proc/{pid}");
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let (comm, ppid, start_time) = parse_stat(&stat)?;
    let cmdline = std::fs::read(format!("{dir}/cmdline"))
        .map(|b| parse_cmdline(&b))
        .unwrap_or_default();
    let exe = std::fs::read_link(format!("{dir}/exe"))
        .ok()
        .map(|p| parse_exe(&String::from_utf8_lossy(p.as_os_str().as_bytes())));
    Some(ProcInfo {
        pid,
        ppid,
        comm,
        exe,
        cmdline,
        start_time,
    })
}

/// Every process of the machine (thread-group leaders, as /proc lists them), by pid.
pub fn read_process_table() -> Result<Vec<ProcInfo>> {
    let proc = Path::new("/proc");
    let rd = std::fs::read_dir(proc).map_err(|e| {
        Error::Sys(SysError::new(
            FsOp::List,
            proc,
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)),
        ))
    })?;
    let mut out: Vec<ProcInfo> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            // Thousands of processes read without a sleep: give the core back now and then.
            super::share::tick();
            read_process(pid)
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    Ok(out)
}

/// The targets of the open fds of `pid` (/proc/PID/fd/*), sorted by fd number; empty when the
/// process is gone. EACCES (not root) is an error: the count would be wrong, not zero.
pub fn read_fd_targets(pid: u32) -> Result<Vec<String>> {
    // Callers walk every process's fds in a loop: give the core back now and then.
    super::share::tick();
    let dir = format!("/proc/{pid}/fd");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Sys(SysError::new(
                FsOp::List,
                Path::new(&dir),
                nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)),
            )))
        }
    };
    let mut fds: Vec<(u32, String)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse::<u32>().ok()?;
            let t = std::fs::read_link(e.path()).ok()?;
            Some((n, t.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    Ok(fds.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        // A real line's shape (proc(5)); comm "a) (b c" holds both.
        let line = "4242 (a) (b c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 9 0 123456 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(("a) (b c".to_string(), 17, 123456)));
        let shim = "917 (containerd-shim) S 1 917 540 0 -1 1077936384 600 0 0 0 3 4 0 0 20 0 11 0 5550 729128960 2411 18446744073709551615 1 1 0 0 0 0 1006254592 0 2143420159 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            parse_stat(shim),
            Some(("containerd-shim".to_string(), 1, 5550))
        );
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cmdline_nuls() {
        let raw = b"/usr/bin/containerd-shim-runc-v2\0-namespace\0k8s.io\0-id\0abc\0-address\0/run/containerd/containerd.sock\0";
        let a = parse_cmdline(raw);
        assert_eq!(a.len(), 7);
        assert_eq!(a[0], "/usr/bin/containerd-shim-runc-v2");
        assert_eq!(a[2], "k8s.io");
        assert!(parse_cmdline(b"").is_empty());
        // Rewritten argument area (setproctitle): one argument with spaces.
        assert_eq!(
            parse_cmdline(b"nginx: worker process"),
            vec!["nginx: worker process"]
        );
    }

    #[test]
    fn exe_deleted_suffix() {
        assert_eq!(
            parse_exe("/usr/bin/containerd (deleted)"),
            "/usr/bin/containerd"
        );
        assert_eq!(parse_exe("/usr/bin/dockerd"), "/usr/bin/dockerd");
    }

    #[test]
    fn this_process_is_in_the_table() {
        let me = std::process::id();
        let t = read_process_table().unwrap();
        let p = t.iter().find(|p| p.pid == me).expect("own pid listed");
        assert_eq!(p.ppid, nix::unistd::getppid().as_raw() as u32);
        assert!(p.exe.is_some());
        assert!(!p.cmdline.is_empty());
        assert!(p.start_time > 0);
    }

    #[test]
    fn own_fds_and_an_eventfd() {
        // SAFETY: eventfd(2) with valid flags; the fd is closed below.
        let efd = unsafe { nix::libc::eventfd(0, nix::libc::EFD_CLOEXEC) };
        assert!(efd >= 0);
        let t = read_fd_targets(std::process::id()).unwrap();
        assert!(t.iter().any(|x| x == EVENTFD_LINK), "{t:?}");
        // SAFETY: closing the fd made above, used nowhere else.
        unsafe { nix::libc::close(efd) };
        assert!(read_fd_targets(u32::MAX - 1).unwrap().is_empty());
    }
}
