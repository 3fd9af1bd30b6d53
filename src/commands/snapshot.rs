//! `cgleak snapshot`: the scan of the pods tree as JSON (to rehearse on a copy of a node).

use super::{json, open_node, out};
use crate::cli::{Global, SnapshotArgs};
use crate::error::Result;
use crate::scan;

pub(super) fn run(g: &Global, a: &SnapshotArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let snap = scan::scan(fs.as_ref(), &g.kubepods)?;
    let text = json(&snap);
    match &a.output {
        Some(p) => crate::atomic::write_file_atomic(p, text.as_bytes(), ".tmp", 0o600)?,
        None => out(&text),
    }
    Ok(0)
}
