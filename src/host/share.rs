//! Giving the core back: long loops of system calls (the scans, the walks of /proc, a phase of
//! mkdirs and writes) call [`tick`], which yields the CPU once a slice of work has run.
//!
//! Why: a task that runs without sleeping keeps a task woken on its core waiting until the
//! scheduler's slice ends, and the kernel notices that only at its next tick (4 ms at HZ=250;
//! the fair scheduler lets the running task finish its slice rather than preempt it at each
//! wakeup). Measured on 6.18 (docs/kernel-facts.md, "Giving the core back"): during cgleak's
//! scan and verify, the node's forks waited behind cgleak's threads 2-4 ms at a time. A
//! `sched_yield` every [`SLICE`] puts cgleak behind the waiting tasks (CFS: the skip buddy;
//! EEVDF: the yielding task's deadline moves a slice on), so a woken task waits at most about
//! that long. With nothing waiting a yield returns at once: about a microsecond per slice.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The work a thread does between two yields: well under a scheduler tick (4 ms at HZ=250) and
/// near an idle fork's latency, so a task woken behind cgleak waits about as long as it would
/// anyway. 500us did as well within the noise; 250us showed no wait over about 1 ms.
pub const SLICE: Duration = Duration::from_micros(250);

static YIELDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Call between two units of work (a cgroup read, a process looked at, a step): yields the core
/// when this thread has worked a [`SLICE`] since its last yield (or its first tick). True when
/// it yielded.
pub fn tick() -> bool {
    let now = Instant::now();
    SINCE.with(|since| match since.get() {
        Some(t) if now.duration_since(t) >= SLICE => {
            // sched_yield cannot fail on Linux; its result says nothing to act on.
            let _ = nix::sched::sched_yield();
            YIELDS.fetch_add(1, Ordering::Relaxed);
            since.set(Some(Instant::now()));
            true
        }
        Some(_) => false,
        None => {
            since.set(Some(now));
            false
        }
    })
}

/// Start this thread's slice afresh: after a sleep or a wait the core was given back already.
pub fn rested() {
    SINCE.with(|since| since.set(Some(Instant::now())));
}

/// Yields of every thread of this process so far.
pub fn yields() -> u64 {
    YIELDS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    /// A thread's first tick starts its slice; the tick after a slice of work yields, and
    /// counts; right after a yield, or after `rested`, the next does not.
    #[test]
    fn yields_once_a_slice_has_passed() {
        std::thread::spawn(|| {
            assert!(!tick());
            spin(SLICE + Duration::from_micros(50));
            let before = yields();
            assert!(tick());
            assert!(yields() > before);
            assert!(!tick());
            spin(SLICE + Duration::from_micros(50));
            rested();
            assert!(!tick());
        })
        .join()
        .unwrap();
    }
}
