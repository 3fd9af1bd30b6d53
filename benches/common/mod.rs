//! What the real-kernel benchmarks share: reading their options, and deciding what a run that
//! cannot build its tree does (`cargo bench`: exit 1 with the reason; the `cargo test` smoke run:
//! skip, but fail under CI on a machine that has root and memcg v1, tests/common/skip.rs).

use crate::{sandbox, skip};

/// The value after `--name` on the command line, if any.
pub fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The exit code when bench `bench` could not run (`why`): 1 under `cargo bench` (`full`) or
/// when CI says the machine should have run it, 0 for a smoke run that may skip here.
pub fn cannot_run(bench: &str, full: bool, why: &str) -> i32 {
    if full {
        eprintln!("{bench} benchmark cannot run: {why}");
        return 1;
    }
    let (root, memcg) = sandbox::machine();
    let machine = skip::Machine {
        root,
        memcg: memcg.map(|_| ()),
    };
    if let skip::Decision::Fail(why) = skip::decide(skip::ci(), &machine, Err(why.to_string())) {
        eprintln!("{bench} benchmark cannot run: {why}");
        return 1;
    }
    println!("{bench} benchmark not run: {why}");
    0
}

/// Have `cmd`'s process get SIGKILL when the bench dies (Ctrl-C, a panic, kill): nothing it
/// starts outlives it.
pub fn die_with_bench(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
