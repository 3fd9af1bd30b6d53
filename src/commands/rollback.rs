//! `cgleak rollback`: undo a repair from wherever it stopped, from its journal.

use super::{confirmer, finish, open_node, require_consent};
use crate::cli::{Format, Global, ResumeArgs};
use crate::error::Result;
use crate::repair::{self, execute};
use std::io::IsTerminal;

pub(super) fn run(g: &Global, a: &ResumeArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let guided = require_consent(a.yes, "rollback")?;
    repair::leftover::rebuild_if_asked(
        a.rebuild_journal,
        fs.as_ref(),
        &g.kubepods,
        &g.staging,
        &a.state_dir,
    )?;
    execute::install_interrupt_handler();
    let mut asker = confirmer();
    let confirm: Option<&mut execute::Confirm> = if guided { Some(&mut asker) } else { None };
    let progress = a.format == Format::Text && std::io::stderr().is_terminal();
    let outcome = repair::rollback(fs.as_ref(), &a.state_dir, a.crash_after, progress, confirm)?;
    finish(&outcome, a.format)
}
