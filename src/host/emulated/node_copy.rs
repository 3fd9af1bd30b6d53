//! Where emulated nodes live: the temp directory, finding a node's base from a `--root`, and a
//! copy of a whole node (a full one, or a cheap clone of a node no instance writes any more).

use super::*;

/// A temporary directory for emulated nodes, on a RAM filesystem when one is at hand: an
/// emulated mkdir creates ~17 files, and inode creation on a disk filesystem can cost a
/// millisecond each (seen on this project's ext4 VMs; tmpfs: ~15 µs). `$CGLEAK_EMUL_TMPDIR`
/// wins, then /dev/shm, then the usual temp directory.
pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    if let Some(d) = std::env::var_os("CGLEAK_EMUL_TMPDIR") {
        return tempfile::tempdir_in(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return Ok(t);
        }
    }
    tempfile::tempdir()
}

/// Walk up from `root` (itself included) to the directory holding [`STATE_FILE`].
pub fn find_base(root: &Path) -> Option<PathBuf> {
    let abs = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(root)
    };
    abs.ancestors()
        .find(|d| d.join(STATE_FILE).is_file())
        .map(Path::to_path_buf)
}

/// Copy a whole emulated node (state file, hierarchy, proc) to `dst_base`, which must not
/// exist or be empty: a "second copy" of a node for tests.
pub fn copy_node(src_base: &Path, dst_base: &Path) -> Result<()> {
    check_copy(src_base, dst_base)?;
    let mut buf = Vec::with_capacity(8192);
    copy_tree(src_base, dst_base, &mut buf, false)
}

/// A copy of a whole node whose cgroup files (and blobs) are hard links to the source's: one
/// link(2) per file instead of a read and a create, for tests and benchmarks that fork one node
/// many times (the interruption sweeps, tests/repair_emulated.rs).
///
/// Why the two nodes stay independent: an instance writes a cgroup file in place only once it
/// has replaced it (unlink, create) itself, or made it (see `Node::private`); a freshly opened
/// instance therefore never writes into an inode it shares. The files written in place from
/// the start (the state file, the lock, everything below proc) are copied.
/// The source must not be written by an instance that was open before the clone (it may hold
/// files of its own that it would write in place): clone a node at rest.
pub fn clone_node(src_base: &Path, dst_base: &Path) -> Result<()> {
    check_copy(src_base, dst_base)?;
    let mut buf = Vec::with_capacity(8192);
    let rd = std::fs::read_dir(src_base).map_err(|e| Error::io("read_dir", src_base, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read_dir", src_base, e))?;
        let name = entry.file_name();
        let (src, dst) = (src_base.join(&name), dst_base.join(&name));
        let ft = entry.file_type().map_err(|e| Error::io("stat", &src, e))?;
        if !ft.is_dir() {
            std::fs::read(&src)
                .and_then(|b| create_at(None, &dst, &b))
                .map_err(|e| Error::io("copy", &dst, e))?;
            continue;
        }
        std::fs::create_dir(&dst).map_err(|e| Error::io("mkdir", &dst, e))?;
        let link = name == MEMORY_DIR || name == BLOB_DIR;
        copy_tree(&src, &dst, &mut buf, link)?;
    }
    Ok(())
}

/// Copy the contents of directory `src` into the existing directory `dst`: each file read
/// once and created once (no metadata probes), or hard-linked when `link` (copied where the
/// source has the most links the filesystem allows), through directory descriptors.
pub(super) fn copy_tree(src: &Path, dst: &Path, buf: &mut Vec<u8>, link: bool) -> Result<()> {
    let rd = std::fs::read_dir(src).map_err(|e| Error::io("read_dir", src, e))?;
    let sfd = open_dir(src).map_err(|e| Error::io("open", src, e))?;
    let dfd = open_dir(dst).map_err(|e| Error::io("open", dst, e))?;
    let mut dirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read_dir", src, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        let name = entry.file_name();
        let name = Path::new(&name);
        if ft.is_dir() {
            nix::sys::stat::mkdirat(Some(dfd.as_raw_fd()), name, Mode::from_bits_truncate(0o777))
                .map_err(|e| Error::io("mkdir", dst.join(name), errno_io(e)))?;
            dirs.push(name.to_path_buf());
        } else if link {
            link_or_copy((sfd.as_raw_fd(), dfd.as_raw_fd()), name, buf, &linkat)
                .map_err(|e| Error::io("link", dst.join(name), e))?;
        } else {
            read_at(Some(sfd.as_raw_fd()), name, buf)
                .map_err(|e| Error::io("read", src.join(name), e))?;
            create_at(Some(dfd.as_raw_fd()), name, buf)
                .map_err(|e| Error::io("copy", dst.join(name), e))?;
        }
    }
    drop((sfd, dfd));
    for d in dirs {
        copy_tree(&src.join(&d), &dst.join(&d), buf, link)?;
    }
    Ok(())
}

/// A copy needs an emulated node at `src_base` and a new or empty `dst_base` (created).
fn check_copy(src_base: &Path, dst_base: &Path) -> Result<()> {
    if !src_base.join(STATE_FILE).is_file() {
        return Err(Error::Usage(format!(
            "{} is not an emulated node (no {STATE_FILE})",
            src_base.display()
        )));
    }
    ensure_empty(dst_base)
}

/// `dir` must not exist (it is created) or be an empty directory.
pub(super) fn ensure_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} exists and is not empty; an emulated node needs a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))
        }
        Err(e) => Err(Error::io("read_dir", dir, e)),
    }
}
