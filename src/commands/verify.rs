//! `cgleak verify`: the live tree against the repair's snapshot (from its journal) or a
//! snapshot file.

use super::{json, open_node, out};
use crate::cli::{Format, Global, VerifyArgs};
use crate::error::{Error, Result};
use crate::model::Snapshot;
use crate::repair::{journal, verify};
use std::path::Path;

pub(super) fn run(g: &Global, a: &VerifyArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let (snap, staging, check_kmem) = match (&a.state_dir, &a.snapshot) {
        (_, Some(file)) => (read_snapshot(file)?, g.staging.clone(), true),
        (dir, None) => {
            let dir = dir
                .clone()
                .unwrap_or_else(|| journal::DEFAULT_STATE_DIR.into());
            let (h, p) = journal::load(&dir)?.ok_or_else(|| {
                Error::Usage(format!(
                    "--state-dir {}: no repair journal there; pass the repair's --state-dir or --snapshot FILE",
                    dir.display()
                ))
            })?;
            (h.snapshot, h.staging, !p.rolled_back)
        }
    };
    let r = verify::verify(fs.as_ref(), &snap, &staging, check_kmem)?;
    match a.format {
        Format::Json => out(&json(&r)),
        Format::Text => out(&r.render_text()),
    }
    Ok(if r.ok { 0 } else { 1 })
}

/// A snapshot file written by `cgleak snapshot`.
fn read_snapshot(file: &Path) -> Result<Snapshot> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("--snapshot {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "--snapshot {}: not a cgleak snapshot ({e})",
            file.display()
        ))
    })
}
