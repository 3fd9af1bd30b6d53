//! `cgleak resume`: finish an interrupted repair from its journal.

use super::from_journal;
use crate::cli::{Global, ResumeArgs};
use crate::error::Result;
use crate::model::invocation::Command;
use crate::repair;

pub(super) fn run(g: &Global, a: &ResumeArgs) -> Result<u8> {
    from_journal(g, a, Command::Resume, repair::resume)
}
