//! Replacing a file atomically: readers (node_exporter, a resume after a crash) see the old
//! file or the whole new one, never part of one.

use crate::error::{Error, Result};
use std::io::Write as _;
use std::path::Path;

/// Replace `path` with `data` atomically (the Prometheus textfile, `cgleak snapshot -o`, the
/// repair journal): a temp file
/// `.cgleak-XXXXXX<suffix>` in the same directory (same filesystem, so the rename is atomic),
/// with `mode`, fsynced, then renamed over `path`. On any error the temp file is removed and
/// the old file is left as it was.
pub fn write_file_atomic(path: &Path, data: &[u8], suffix: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".cgleak-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temp file in", dir, e))?;
    // tempfile makes it 0600.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", tmp.path(), e))?;
    tmp.write_all(data)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    // Data on disk before the rename makes it visible: after a crash the file is the old one or
    // the complete new one. The directory is not fsynced: a rename lost in a power cut leaves
    // the previous complete file.
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("fsync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename to", path, e.error))?;
    Ok(())
}
