//! cgleak's entry point: parse arguments, set up logging, run, map errors to exit codes.
//!
//! SIGPIPE: Rust ignores it, so a write to a closed pipe (`cgleak diagnose | head -1`) fails
//! with EPIPE, and `println!` panics on that. Commands that only read and print get the default
//! action back, as other command-line tools have: a closed pipe ends them quietly. Commands that
//! change a node, or hold a temporary emulated node they must remove (`demo`), keep it ignored:
//! a reader that goes away must not kill them between two steps; their output ignores EPIPE.

use cgleak::cli::Command;
use nix::sys::signal::{signal, SigHandler, Signal};
use std::process::ExitCode;

/// Whether `cmd` changes a node or owns something to clean up: it must run to its end even when
/// the reader of its output has gone.
fn must_finish(cmd: &Command) -> bool {
    match cmd {
        Command::Repair(_)
        | Command::Resume(_)
        | Command::Rollback(_)
        | Command::Reclaim(_)
        | Command::ProbeHeadroom(_)
        | Command::Demo(_)
        | Command::Emulate(_) => true,
        Command::Diagnose(_)
        | Command::Plan(_)
        | Command::Snapshot(_)
        | Command::Verify(_)
        | Command::Watchers(_)
        | Command::Oom(_)
        | Command::Memory(_)
        | Command::Generate(_) => false,
    }
}

/// Set SIGPIPE's action. Failure is harmless (the action stays as it was), so it is ignored.
fn sigpipe(action: SigHandler) {
    // SAFETY: called on the main thread before any other thread exists; SIG_DFL and SIG_IGN
    // are not handler functions, so no async-signal-safety question arises.
    let _ = unsafe { signal(Signal::SIGPIPE, action) };
}

fn main() -> ExitCode {
    // Before any output: `cgleak --help | head -1` ends quietly too.
    sigpipe(SigHandler::SigDfl);
    let cli = cgleak::cli::Cli::parse_checked();
    if must_finish(&cli.command) {
        sigpipe(SigHandler::SigIgn);
    }
    let level = if cli.global.quiet {
        "error"
    } else {
        match cli.global.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match cgleak::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cgleak: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
