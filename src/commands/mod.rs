//! The commands: one file each, each parsing nothing (that is [`crate::cli`]'s job), calling
//! the library and returning its exit code. Errors go back to main, which prints them and maps
//! them to exit codes. Shared here: output, questions, consent, `--ids-used`.

mod demo;
mod diagnose;
mod generate;
mod plan;
mod probe;
mod reclaim;
mod repair;
mod resume;
mod rollback;
mod snapshot;
mod verify;

use crate::cli::{Cli, Command, Format, IdsUsed};
use crate::error::{Error, Result};
use crate::host::{self, Node};
use crate::ids;
use crate::repair::plan::Phase;
use crate::repair::{report, Outcome};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Run the command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Diagnose(a) => diagnose::run(g, a),
        Command::Plan(a) => plan::run(g, a),
        Command::Snapshot(a) => snapshot::run(g, a),
        Command::Repair(a) => repair::run(g, a),
        Command::Resume(a) => resume::run(g, a),
        Command::Rollback(a) => rollback::run(g, a),
        Command::Verify(a) => verify::run(g, a),
        Command::Reclaim(a) => reclaim::run(g, a),
        Command::Demo(a) => demo::run(a),
        Command::Emulate(a) => demo::emulate(a),
        Command::ProbeHeadroom(a) => probe::run(g, a),
        Command::Generate(a) => generate::run(a.what.clone()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serializable") + "\n"
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

fn finish(o: &Outcome, format: Format) -> Result<u8> {
    match format {
        Format::Json => out(&json(o)),
        Format::Text => out(&report::render_outcome(o)),
    }
    Ok(if o.verify.ok { 0 } else { 1 })
}
