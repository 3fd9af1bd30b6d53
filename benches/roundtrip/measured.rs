//! One command run and measured: its wall time, its output, and the peak RSS of that process
//! alone, from wait4's ru_maxrss of that one child (getrusage(RUSAGE_CHILDREN) would give the
//! largest of every child reaped so far: the sleepers, the shells, earlier repairs).
//!
//! The command is not started by the bench itself but by a launcher: this bench binary run
//! afresh with [`LAUNCH`] first, which starts the command, reaps it with wait4 and reports.
//! Why: exec records the peak RSS of the address space it replaces into the new program's
//! ru_maxrss (the kernel's exec_mmap), and a child spawned by vfork (posix_spawn) or fork
//! replaces the bench's address space, or a copy of it: the bench's own tens of MB (the tree's
//! snapshot, the sleepers' handles) would show up as cgleak's. The launcher's address space is
//! that of a program just started, a few MB, below what cgleak itself needs.

use nix::libc;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// First argument of the bench binary run as the launcher: then the program and its arguments.
pub const LAUNCH: &str = "--measure-child";

/// How the launcher's report starts: its last line on stderr.
const REPORT: &str = "#measured ";

/// What a measured run gave.
pub struct Measured {
    /// From the command's start to its reaping, measured by the launcher.
    pub wall: f64,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The wait status (see `libc::WIFEXITED`).
    pub status: i32,
    /// Peak resident set of the process, bytes (ru_maxrss is in KiB on Linux).
    pub max_rss: u64,
}

impl Measured {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }
}

/// Reap `pid` (an unreaped child) with wait4: (wait status, its rusage).
fn wait4(pid: u32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unreaped child (std's Child does not reap on drop); status
    // and ru are valid for writes.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(
        r,
        pid as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    (status, ru)
}

/// The launcher, when this process is one (`args` = [bench, LAUNCH, program, args...]): run
/// the program with this process's stdin, stdout and stderr, reap it, print the report as the
/// last line of stderr and exit. Returns when this process is not the launcher.
pub fn launcher(args: &[OsString]) {
    if args.get(1).is_none_or(|a| a != LAUNCH) || args.len() < 3 {
        return;
    }
    let t = Instant::now();
    // The child is reaped by wait4 below, which clippy does not see as a wait().
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&args[2])
        .args(&args[3..])
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", args[2]));
    let (status, ru) = wait4(child.id());
    eprintln!(
        "\n{REPORT}{} {} {}",
        t.elapsed().as_secs_f64(),
        status,
        ru.ru_maxrss
    );
    std::process::exit(0);
}

/// Run `bin` with `args` through the launcher (stdin closed, stdout and stderr read to the end).
pub fn run(bin: &Path, args: &[OsString]) -> Measured {
    let me = std::env::current_exe().expect("the bench binary's path");
    // The launcher is reaped by wait() below; its own rusage is not the command's.
    let mut child = Command::new(me)
        .arg(LAUNCH)
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn the launcher of {}: {e}", bin.display()));
    let mut err_pipe = child.stderr.take().expect("piped");
    // stderr on a thread of its own: a child filling one pipe while we read the other would
    // otherwise wait for us forever.
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let mut stdout = Vec::new();
    let _ = child.stdout.take().expect("piped").read_to_end(&mut stdout);
    let mut stderr = err.join().expect("stderr reader");
    let launched = child.wait().expect("reap the launcher");
    let at = stderr
        .rfind(REPORT)
        .unwrap_or_else(|| panic!("the launcher ({launched}) did not report: {stderr}"));
    let report: Vec<f64> = stderr[at + REPORT.len()..]
        .split_whitespace()
        .map(|f| f.parse().expect("the launcher's report is numbers"))
        .collect();
    stderr.truncate(at.saturating_sub(1));
    Measured {
        wall: report[0],
        stdout,
        stderr,
        status: report[1] as i32,
        max_rss: report[2] as u64 * 1024,
    }
}
