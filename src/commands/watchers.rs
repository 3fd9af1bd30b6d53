//! `cgleak watchers`: read-only; which running containers recorded by a repair still lack their
//! runtime's OOM watcher (src/runtime/record.rs). Exit 0 when none does, 1 when some do, 2 on
//! bad input (no record in --state-dir).

use super::{json, open_node, out};
use crate::cli::{Format, Global, WatchersArgs};
use crate::error::Result;
use crate::runtime::record;

pub(super) fn run(g: &Global, a: &WatchersArgs) -> Result<u8> {
    let rec = record::load(&a.state_dir)?;
    let fs = open_node(&g.root)?;
    let snap = crate::scan::scan_live(fs.as_ref(), &g.kubepods)?;
    let now = crate::runtime::cgroups_of(&snap);
    let report = record::check(fs.as_ref(), &a.state_dir, &rec, &now)?;
    match a.format {
        Format::Json => out(&json(&report)),
        Format::Text => out(&record::render(&report)),
    }
    Ok(if report.lacking == 0 { 0 } else { 1 })
}
