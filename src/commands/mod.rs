//! The commands: one file each, each parsing nothing (that is [`crate::cli`]'s job), calling
//! the library and returning its exit code. Errors go back to main, which prints them and maps
//! them to exit codes. Shared here: output, questions, consent, `--ids-used`.

mod demo;
mod diagnose;
mod generate;
mod memory;
mod oom;
mod plan;
mod predict;
mod probe;
mod reclaim;
mod repair;
mod resume;
mod rollback;
mod snapshot;
mod verify;
mod watchers;

use crate::cli::{Cli, Command, Format, Global, IdsUsed, ResumeArgs};
use crate::error::{Error, Result};
use crate::host::{self, Node};
use crate::ids;
use crate::model::invocation::Command as JCommand;
use crate::repair::execute;
use crate::repair::plan::Phase;
use crate::repair::{report, Outcome};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Run the command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    let r = match &cli.command {
        Command::Diagnose(a) => diagnose::run(g, a),
        Command::Plan(a) => plan::run(g, a),
        Command::Snapshot(a) => snapshot::run(g, a),
        Command::Repair(a) => repair::run(g, a),
        Command::Resume(a) => resume::run(g, a),
        Command::Rollback(a) => rollback::run(g, a),
        Command::Verify(a) => verify::run(g, a),
        Command::Watchers(a) => watchers::run(g, a),
        Command::Oom(a) if a.predict => predict::run(g, a),
        Command::Oom(a) => oom::run(g, a),
        Command::Memory(a) => memory::run(g, a),
        Command::Reclaim(a) => reclaim::run(g, a),
        Command::Demo(a) => demo::run(a),
        Command::Emulate(a) => demo::emulate(a),
        Command::ProbeHeadroom(a) => probe::run(g, a),
        Command::Generate(a) => generate::run(a.what.clone()),
    };
    exit_if_crashed(&r);
    r
}

/// The environment variable of the test hook `RunOptions::crash_after` (tests set it; it is in
/// no help text): stop dead after N changing system calls, as kill -9 would.
#[doc(hidden)]
pub const TEST_CRASH_AFTER_ENV: &str = "CGLEAK_TEST_CRASH_AFTER";

fn test_crash_after() -> Option<u64> {
    std::env::var(TEST_CRASH_AFTER_ENV)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The test hook's simulated kill -9 ends the process there and then, with the journal as the
/// executor left it and nothing printed: what a real kill -9 leaves. 137 is a shell's status
/// for a process killed by signal 9.
fn exit_if_crashed(r: &Result<u8>) {
    if let Err(Error::Stopped(st)) = r {
        if st.crashed().is_some() {
            std::process::exit(137);
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serializable") + "\n"
}

/// The memory doctor's shared edges (oom, oom --predict, memory), the rules diagnose follows:
/// --textfile goes with Prometheus only and is checked before any work, since nothing would
/// ever read the result.
fn textfile_first(
    format: crate::cli::DoctorFormat,
    textfile: Option<&std::path::Path>,
) -> Result<()> {
    if textfile.is_some() && format != crate::cli::DoctorFormat::Prometheus {
        return Err(Error::Usage(
            "--textfile goes with --format prometheus".to_string(),
        ));
    }
    match textfile {
        Some(p) => crate::diagnose::export::check_textfile(p),
        None => Ok(()),
    }
}

/// "Could not tell": the error on standard error, node-problem-detector's UNKNOWN line, exit 2
/// (exit 1 means something was found, which an error must never read as).
fn could_not_tell(format: crate::cli::DoctorFormat, e: &Error) -> u8 {
    eprintln!("cgleak: {e}");
    if format == crate::cli::DoctorFormat::Npd {
        out(&crate::diagnose::export::render_npd_error(e));
    }
    2
}

/// The Prometheus text, atomically into --textfile (node_exporter reads only the file) or to
/// standard output.
fn prometheus_out(text: &str, textfile: Option<&std::path::Path>) -> Result<()> {
    match textfile {
        Some(p) => {
            crate::diagnose::export::write_textfile(p, text.as_bytes())?;
            log::info!("wrote {}", p.display());
            Ok(())
        }
        None => {
            out(text);
            Ok(())
        }
    }
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed pipe (| head) is not an error worth a message.
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Ask a yes/no question on the terminal.
pub fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Refuse an unattended change without --yes.
fn require_consent(yes: bool, command: &str) -> Result<bool> {
    if yes {
        return Ok(false);
    }
    if !interactive() {
        return Err(Error::refused(
            format!("{command} changes the node and there is no terminal to ask on"),
            format!("run it on a terminal to be asked before each phase, or pass --yes for an unattended {command}"),
        ));
    }
    Ok(true)
}

/// The node at `--root`: the kernel's hierarchy, or an emulated node.
fn open_node(root: &Path) -> Result<Box<dyn Node>> {
    host::open(root)
}

/// `--ids-used N|-`: the count, read from standard input for `-` (scripts/memcg-ids.stp piped
/// in). A terminal on stdin means nothing was piped: refuse rather than wait for typing.
fn resolve_ids_used(arg: Option<IdsUsed>, command: &str) -> Result<Option<u64>> {
    match arg {
        None => Ok(None),
        Some(IdsUsed::Count(n)) => Ok(Some(n)),
        Some(IdsUsed::Stdin) if std::io::stdin().is_terminal() => Err(Error::Usage(format!(
            "--ids-used -: standard input is a terminal, not the output of scripts/memcg-ids.stp; {}",
            ids::stap_howto(command)
        ))),
        Some(IdsUsed::Stdin) => ids::read_ids_used(std::io::stdin().lock(), command).map(Some),
    }
}

fn confirmer() -> impl FnMut(usize, &Phase, usize) -> bool {
    |i: usize, ph: &Phase, n: usize| {
        ask(&format!(
            "Phase {}/{} {}: {} ({} steps). Go on?",
            i + 1,
            n,
            ph.name,
            ph.name.describe(),
            ph.steps.len()
        ))
    }
}

/// `resume` or `rollback` (the library's function for it): consent, Ctrl-C between steps, the
/// run from the journal in `--state-dir`, the report.
type FromJournal =
    fn(&dyn Node, &Path, crate::repair::Knobs, Option<&mut execute::Confirm>) -> Result<Outcome>;

fn from_journal(g: &Global, a: &ResumeArgs, command: JCommand, f: FromJournal) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let guided = require_consent(a.yes, command.as_str())?;
    crate::repair::leftover::rebuild_if_asked(
        a.rebuild_journal,
        fs.as_ref(),
        &g.kubepods,
        &g.staging,
        &a.state_dir,
    )?;
    crate::interrupt::install_handler();
    let mut asker = confirmer();
    let confirm: Option<&mut execute::Confirm> = if guided { Some(&mut asker) } else { None };
    let knobs = crate::repair::Knobs {
        crash_after: test_crash_after(),
        progress: a.format == Format::Text && std::io::stderr().is_terminal(),
        pace: a.pacing.pace,
    };
    let outcome = f(fs.as_ref(), &a.state_dir, knobs, confirm)?;
    finish(outcome, a.format)
}

fn finish(mut o: Outcome, format: Format) -> Result<u8> {
    // Counted to the end of the command: the scan before the plan and verify after it yield too.
    // Not in the text outcome: the count depends on timing, and says nothing to act on (-v logs
    // it; the JSON carries it for the stall benchmark).
    o.stats.yields = crate::host::share::yields();
    log::info!(
        "gave the core back {} times, at most once every {} us of work: the node's woken tasks ran between cgleak's reads and writes",
        o.stats.yields,
        crate::host::share::SLICE.as_micros()
    );
    match format {
        Format::Json => out(&json(&o)),
        Format::Text => out(&report::render_outcome(&o)),
    }
    Ok(if o.verify.ok { 0 } else { 1 })
}
