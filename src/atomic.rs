//! Replacing a file atomically: readers (node_exporter, a resume after a crash) see the old
//! file or the whole new one, never part of one.

use crate::error::{Error, Result};
use std::io::Write as _;
use std::path::Path;

/// Replace `path` with `data` atomically (the Prometheus textfile, `cgleak snapshot -o`, the
/// repair journal): a temp file
/// `.cgleak-XXXXXX<suffix>` in the same directory (same filesystem, so the rename is atomic),
/// with `mode`, fsynced, then renamed over `path`. On any error the temp file is removed and
/// the old file is left as it was. A path that cannot take a file (its directory missing, not
/// a directory, read-only or not writable; `path` itself a directory) is the caller's input to
/// fix: [`Error::Usage`] with a sentence naming the path, before anything is written.
pub fn write_file_atomic(path: &Path, data: &[u8], suffix: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is a directory; give the path of a file to write",
            path.display()
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".cgleak-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| unusable_dir(path, dir, e))?;
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

/// The error for a directory a file cannot be created in: a sentence for the causes the user
/// fixes (exit 2), the raw I/O error for the others (a full disk, an I/O error: exit 1).
fn unusable_dir(path: &Path, dir: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    // By kind, not errno: tempfile wraps the OS error with the temp file's name.
    let why = match e.kind() {
        ErrorKind::NotFound => "does not exist; create it first or write elsewhere",
        ErrorKind::NotADirectory => "is not a directory; write elsewhere",
        ErrorKind::PermissionDenied => {
            "is not writable by this user; write elsewhere or run as its owner"
        }
        ErrorKind::ReadOnlyFilesystem => "is on a read-only filesystem; write elsewhere",
        _ => return Error::io("create a temp file in", dir, e),
    };
    Error::Usage(format!(
        "cannot write {}: the directory {} {why} (nothing was written)",
        path.display(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn unusable_directories_are_usage_errors_naming_the_path() {
        let (path, dir) = (Path::new("/x/out.json"), Path::new("/x"));
        for (kind, says) in [
            (ErrorKind::NotFound, "does not exist"),
            (ErrorKind::NotADirectory, "is not a directory"),
            (ErrorKind::PermissionDenied, "is not writable"),
            (ErrorKind::ReadOnlyFilesystem, "read-only"),
        ] {
            let e = unusable_dir(path, dir, std::io::Error::from(kind));
            assert_eq!(e.exit_code(), 2, "{kind:?}");
            let s = e.to_string();
            assert!(s.contains("/x/out.json") && s.contains(says), "{s}");
        }
        // A full disk is not the user's input: the I/O error, exit 1.
        let e = unusable_dir(path, dir, std::io::Error::from(ErrorKind::StorageFull));
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn a_write_leaves_no_temp_file_and_replaces_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "old").unwrap();
        write_file_atomic(&p, b"new", ".tmp", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
