//! `cgleak verify`: the live tree against the repair's snapshot (from its journal) or a
//! snapshot file.

use super::{json, open_node, out};
use crate::cli::{Format, Global, VerifyArgs};
use crate::demo::pidmap::PidMap;
use crate::error::{Error, Result};
use crate::model::Snapshot;
use crate::repair::{journal, verify};
use std::path::Path;

pub(super) fn run(g: &Global, a: &VerifyArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let mut mapped = None;
    let (snap, staging, check_kmem) = match (&a.state_dir, &a.snapshot) {
        (_, Some(file)) => {
            let mut snap = crate::demo::read_snapshot_file("--snapshot", file)?;
            mapped = map_rehearsal_pids(&g.root, &mut snap)?;
            (snap, g.staging.clone(), true)
        }
        (dir, None) => {
            let dir = dir
                .clone()
                .unwrap_or_else(|| crate::model::invocation::DEFAULT_STATE_DIR.into());
            let (h, p) = journal::load(&dir)?.ok_or_else(|| {
                Error::Usage(format!(
                    "--state-dir {}: no repair journal there; pass the repair's --state-dir or --snapshot FILE",
                    dir.display()
                ))
            })?;
            (h.snapshot, h.staging, !p.rolled_back)
        }
    };
    let mut r = verify::verify(fs.as_ref(), &snap, &staging, check_kmem)?;
    r.pids_mapped_through = mapped;
    match a.format {
        Format::Json => out(&json(&r)),
        Format::Text => out(&r.render_text()),
    }
    Ok(if r.ok { 0 } else { 1 })
}

/// On a rehearsal made by `cgleak emulate --from-snapshot` of this very snapshot, the emulated
/// processes have pids of their own: map the snapshot's through the map emulate recorded.
/// Returns the map's path when it applied.
fn map_rehearsal_pids(root: &Path, snap: &mut Snapshot) -> Result<Option<String>> {
    let Some(base) = crate::host::emulated::find_base(root) else {
        return Ok(None);
    };
    match PidMap::load(&base)? {
        Some(map) if map.applies_to(snap) => {
            map.apply(snap);
            Ok(Some(PidMap::path(&base).display().to_string()))
        }
        _ => Ok(None),
    }
}
