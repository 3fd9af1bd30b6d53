//! Small file primitives of the emulation: reads, writes, creates and removals through directory
//! descriptors, and the content-named blobs new control files link to.

use super::*;

/// Replace a file's content. Overwrite in place, then cut to length, instead of truncating to
/// zero first: on ext4, truncate-to-zero-then-write (and rename over a file) makes close()
/// start writeback (auto_da_alloc), which costs a millisecond per write.
pub(super) fn write_file(path: &Path, content: &str) -> Result<()> {
    overwrite(path, content, None)
}

/// [`write_file`] knowing the old length (`None`: unknown): no truncation when the new
/// content is not shorter (open, write, close).
pub(super) fn overwrite(path: &Path, content: &str, old_len: Option<usize>) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::io("write", path, e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    f.write_all(content.as_bytes()).map_err(io)?;
    if old_len.is_none_or(|l| l > content.len()) {
        f.set_len(content.len() as u64).map_err(io)?;
    }
    Ok(())
}

pub(super) fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// A directory opened for the `*at` calls.
pub(super) fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Create the new file `name` (relative to `dir`, or a path) holding `content`: one mknod for
/// an empty file, else open, write, close. Fails if it exists.
pub(super) fn create_at(dir: Option<RawFd>, name: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mode = Mode::from_bits_truncate(0o666);
    if content.is_empty() {
        match nix::sys::stat::mknodat(dir, name, SFlag::S_IFREG, mode, 0) {
            Ok(()) => return Ok(()),
            // Some sandboxes refuse mknod: create it the usual way.
            Err(Errno::EPERM | Errno::ENOSYS | Errno::EINVAL) => {}
            Err(e) => return Err(errno_io(e)),
        }
    }
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(errno_io)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(content)
}

/// Read a whole file (relative to `dir`, or a path) into `buf`, without the size probe of
/// std::fs::read.
pub(super) fn read_at(dir: Option<RawFd>, name: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let fd = nix::fcntl::openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(errno_io)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                // A short read of a regular file is its end: no read just to see 0.
                if n < chunk.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn read_string(path: &Path) -> std::io::Result<String> {
    let mut buf = Vec::new();
    read_at(None, path, &mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub(super) fn read_file(path: &Path) -> Result<String> {
    read_string(path).map_err(|e| Error::io("read", path, e))
}

pub(super) fn parse_counter(path: &Path, s: String) -> Result<u64> {
    s.trim().parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        what: "emulated counter".into(),
        content: s,
    })
}

/// Remove a file; absent is fine.
pub(super) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Remove a directory whose files are (believed to be) `files`: unlink them, then rmdir;
/// anything else found there (a file another writer left) falls back to a recursive removal.
pub(super) fn remove_known_dir<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let fd = open_dir(dir).map_err(|e| Error::io("rmdir", dir, e))?;
    for name in files {
        match nix::unistd::unlinkat(
            Some(fd.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::io("remove", dir.join(name), errno_io(e))),
        }
    }
    drop(fd);
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => std::fs::remove_dir_all(dir).map_err(|e| Error::io("rmdir", dir, e)),
    }
}

/// Name of the blob holding `content` (FNV-1a, stable across builds, and the length).
pub(super) fn blob_name(content: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}-{}", content.len())
}

impl EmulatedFs {
    /// Make `name` in directory `dir` a hard link to the blob holding `content`, making the
    /// blob first if needed.
    pub(super) fn link_blob(
        &self,
        inner: &mut Inner,
        content: &str,
        dir: RawFd,
        name: &str,
    ) -> std::io::Result<()> {
        if inner.blob_dir.is_none() {
            let p = self.base.join(BLOB_DIR);
            match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            inner.blob_dir = Some(open_dir(&p)?);
        }
        let bfd = inner.blob_dir.as_ref().expect("opened").as_raw_fd();
        let blob = blob_name(content);
        let link = || {
            nix::unistd::linkat(
                Some(bfd),
                blob.as_str(),
                Some(dir),
                name,
                nix::fcntl::AtFlags::empty(),
            )
        };
        if inner.blobs.contains(&blob) {
            match link() {
                Ok(()) => return Ok(()),
                Err(Errno::ENOENT) => {
                    inner.blobs.remove(&blob);
                }
                Err(e) => return Err(errno_io(e)),
            }
        } else {
            match link() {
                Ok(()) => {
                    inner.blobs.insert(blob);
                    return Ok(());
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        // Made under a temporary name, then renamed: a blob is never seen half written.
        let tmp = format!("{blob}.tmp{}", std::process::id());
        let _ = nix::unistd::unlinkat(
            Some(bfd),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        let fd = nix::fcntl::openat(
            Some(bfd),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o444),
        )
        .map_err(errno_io)?;
        {
            use std::io::Write;
            // SAFETY: openat returned a new descriptor that nothing else owns.
            let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            f.write_all(content.as_bytes())?;
        }
        nix::fcntl::renameat(Some(bfd), tmp.as_str(), Some(bfd), blob.as_str())
            .map_err(errno_io)?;
        link().map_err(errno_io)?;
        inner.blobs.insert(blob);
        Ok(())
    }
}
