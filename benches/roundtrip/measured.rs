//! One command run and measured: its wall time, its output, and the peak RSS of that process
//! alone. getrusage(RUSAGE_CHILDREN) would give the largest of every child reaped so far (the
//! sleepers, the shells, earlier repairs); wait4 gives the one child's own ru_maxrss.

use nix::libc;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What a measured run gave.
pub struct Measured {
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

/// Run `cmd` (stdin closed, stdout and stderr read to the end), reaped with wait4.
// The child is reaped by wait4 below, which clippy does not see as a wait().
#[allow(clippy::zombie_processes)]
pub fn run(cmd: &mut Command) -> Measured {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
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
    let stderr = err.join().expect("stderr reader");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unreaped child (std's Child does not reap on drop); status
    // and ru are valid for writes.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(
        r,
        child.id() as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    Measured {
        wall: t.elapsed().as_secs_f64(),
        stdout,
        stderr,
        status,
        max_rss: ru.ru_maxrss as u64 * 1024,
    }
}
