//! The child processes of the stall benchmark: the bench binary started again with `--role`.
//!
//! Every child waits for one byte on stdin before it does anything, so the parent can move it
//! into its cgroup first (memory is charged to the cgroup the task is in when it faults a page
//! in, and a fork lands in the cgroup of its parent).
//!
//! - `--role hold ANON_BYTES FILE OFFSET CACHE_BYTES`: a container's workload. Maps and
//!   touches ANON_BYTES of anonymous memory, drops its range of FILE from the page cache
//!   (POSIX_FADV_DONTNEED, so no earlier charge of it counts) and reads it (CACHE_BYTES of clean
//!   page cache charged to its cgroup), prints `ready`, then sleeps until stdin closes.
//! - `--role fork`: a bystander that forks a child that exits at once and waits for it, every
//!   half millisecond: each sample is fork + exit + wait, which take the kernel's
//!   cgroup_threadgroup_rwsem for reading (cgroup_can_fork, cgroup_exit's
//!   threadgroup_change_begin), the lock a task move takes for writing.
//! - `--role fault`: a bystander that touches fresh pages of a 64 MiB mapping, 64 pages at a
//!   time with a pause of 200 us between (so it leaves the cores to the repair), each touch
//!   timed: a page fault that allocates and charges a page; at the end of the mapping it gives
//!   the pages back (MADV_DONTNEED) and starts over.
//!
//! Probes run until SIGUSR1, then print their [`Timeline`] on stdout and exit.

use super::hist::Timeline;
use nix::libc;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Run the role named by `args` (what follows `--role`); returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let go = std::io::stdin().read_exact(&mut [0u8; 1]);
    if go.is_err() {
        return 1; // the parent gave up before moving us
    }
    let r = match args.first().map(String::as_str) {
        Some("hold") => hold(&args[1..]),
        Some("fork") => probe(fork_once),
        Some("fault") => fault_probe(),
        other => Err(format!("unknown role {other:?}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("stalls bench child: {e}");
            1
        }
    }
}

fn hold(args: &[String]) -> Result<(), String> {
    let num = |i: usize| -> Result<usize, String> {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("hold: argument {i} missing or not a number: {args:?}"))
    };
    let (anon, offset, cache) = (num(0)?, num(2)?, num(3)?);
    if anon > 0 {
        let p = map(anon)?;
        // SAFETY: p is a fresh private mapping of `anon` bytes; one byte a page is written.
        unsafe {
            for off in (0..anon).step_by(4096) {
                *p.add(off) = 1;
            }
        }
    }
    if cache > 0 {
        read_uncached(&args[1], offset, cache)?;
    }
    let mut out = std::io::stdout();
    out.write_all(b"ready\n").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    // Until the parent closes stdin (or kills us): the memory stays charged meanwhile.
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    Ok(())
}

/// A private anonymous mapping of `len` bytes, not yet touched.
fn map(len: usize) -> Result<*mut u8, String> {
    // SAFETY: a new anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap {len}: {}", std::io::Error::last_os_error()));
    }
    Ok(p as *mut u8)
}

/// Read `len` bytes of `path` from `offset` into the page cache, charged to our cgroup: first
/// drop what of that range is cached (clean pages, charged to whoever read them before).
fn read_uncached(path: &str, offset: usize, len: usize) -> Result<(), String> {
    use std::io::{Seek, SeekFrom};
    use std::os::fd::AsRawFd;
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    // SAFETY: fadvise on our own open descriptor.
    unsafe {
        libc::posix_fadvise(
            f.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    f.seek(SeekFrom::Start(offset as u64))
        .map_err(|e| format!("seek {path}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = f
            .read(&mut buf[..left.min(1 << 20)])
            .map_err(|e| format!("read {path}: {e}"))?;
        if n == 0 {
            return Err(format!("{path}: shorter than {len} bytes"));
        }
        left -= n;
    }
    Ok(())
}

/// Install the SIGUSR1 handler that ends a probe.
fn on_stop() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_usr1),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGUSR1, &act) }.map_err(|e| format!("sigaction: {e}"))?;
    Ok(())
}

/// Print the timeline for the parent.
fn report(t: &Timeline) -> Result<(), String> {
    let mut out = std::io::stdout();
    out.write_all(t.to_text().as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())
}

/// Repeat `once` every half millisecond until SIGUSR1, timing each.
fn probe(once: fn() -> Result<(), String>) -> Result<(), String> {
    on_stop()?;
    let mut t = Timeline::new(now_ns());
    while !STOP.load(Ordering::SeqCst) {
        let t0 = now_ns();
        once()?;
        t.record(t0, now_ns() - t0);
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    report(&t)
}

/// fork, the child exits at once, wait for it.
fn fork_once() -> Result<(), String> {
    // SAFETY: the probe is single-threaded, and the child only calls _exit.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => unsafe { libc::_exit(0) },
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
            }
            Ok(())
        }
    }
}

/// Touch fresh pages, each timed, until SIGUSR1.
fn fault_probe() -> Result<(), String> {
    const LEN: usize = 64 << 20;
    const BATCH: usize = 64;
    on_stop()?;
    let p = map(LEN)?;
    let mut t = Timeline::new(now_ns());
    let mut off = 0;
    while !STOP.load(Ordering::SeqCst) {
        for _ in 0..BATCH {
            let t0 = now_ns();
            // SAFETY: off < LEN, inside our mapping.
            unsafe { std::ptr::write_volatile(p.add(off), 1) };
            t.record(t0, now_ns() - t0);
            off += 4096;
            if off >= LEN {
                // Give the pages back so the next touches fault again (and the charge stays
                // at most 64 MiB); MADV_DONTNEED takes the mmap lock only for reading.
                // SAFETY: our own mapping.
                unsafe { libc::madvise(p as *mut libc::c_void, LEN, libc::MADV_DONTNEED) };
                off = 0;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    report(&t)
}
