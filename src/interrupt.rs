//! Ctrl-C and SIGTERM for the commands that change a node: the signal only sets a flag, and the
//! work stops between two steps (a repair between two system calls, a probe between two
//! mkdirs, a reclaim between a swapoff and its swapon never), so it never stops half-way
//! through one.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the SIGINT/SIGTERM handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Make Ctrl-C (and SIGTERM) set the flag instead of killing cgleak.
pub fn install_handler() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = sigaction(sig, &act);
        }
    }
}

/// Whether a Ctrl-C or SIGTERM arrived since the handler was installed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
