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

/// `linkat(2)` from a name in one directory to a name in another, a link not followed: the
/// one call [`link_to_blob`] and [`link_or_copy`] make, a parameter so that tests can make it
/// fail with EMLINK without making 65,000 links.
pub(super) type LinkAt = dyn Fn(RawFd, &Path, RawFd, &Path) -> nix::Result<()>;

/// The system's `linkat(2)`.
pub(super) fn linkat(src_dir: RawFd, src: &Path, dst_dir: RawFd, dst: &Path) -> nix::Result<()> {
    nix::unistd::linkat(
        Some(src_dir),
        src,
        Some(dst_dir),
        dst,
        nix::fcntl::AtFlags::empty(), // AT_SYMLINK_FOLLOW unset: a link is linked, not followed
    )
}

/// Name of generation `generation` of the blob named `blob`: the first has the plain name,
/// each later one a suffix. A new generation starts when a blob has as many links as the
/// filesystem allows (EMLINK: ext4 allows 65,000 per inode, and a 5,000-pod node has more
/// cgroups than that with the same usage_in_bytes).
fn generation_name(blob: &str, generation: u32) -> String {
    match generation {
        0 => blob.to_string(),
        g => format!("{blob}.{g}"),
    }
}

/// Make `name` in directory `dir` a hard link to a blob holding `content` in the blob
/// directory `bfd`, making the blob first if needed. `known` maps a blob's name to the
/// generation last linked (known to exist); a full generation (EMLINK) moves to the next one.
pub(super) fn link_to_blob(
    bfd: RawFd,
    known: &mut HashMap<String, u32>,
    content: &str,
    (dir, name): (RawFd, &str),
    link: &LinkAt,
) -> std::io::Result<()> {
    let blob = blob_name(content);
    let mut generation = known.get(&blob).copied().unwrap_or(0);
    // Whether this call made the generation it links to: a fresh blob has one link, so EMLINK
    // or ENOENT right after making it is an error, not a reason to go round again.
    let mut made = false;
    loop {
        let gen_name = generation_name(&blob, generation);
        match link(bfd, Path::new(&gen_name), dir, Path::new(name)) {
            Ok(()) => {
                known.insert(blob, generation);
                return Ok(());
            }
            Err(Errno::EMLINK) if !made => generation += 1,
            // Not made yet, or removed since (another instance emptied the blob directory).
            Err(Errno::ENOENT) if !made => {
                make_blob(bfd, &gen_name, content)?;
                made = true;
            }
            Err(e) => return Err(errno_io(e)),
        }
    }
}

/// Make the blob `name` in the blob directory `bfd` holding `content`: made under a temporary
/// name, then renamed, so a blob is never seen half written.
fn make_blob(bfd: RawFd, name: &str, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!("{name}.tmp{}", std::process::id());
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
        // SAFETY: openat returned a new descriptor that nothing else owns.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        f.write_all(content.as_bytes())?;
    }
    nix::fcntl::renameat(Some(bfd), tmp.as_str(), Some(bfd), name).map_err(errno_io)
}

/// Make `name` in `dfd` a hard link to `name` in `sfd`, or a copy of it (read into `buf`) when
/// the source has as many links as the filesystem allows (EMLINK): the copy of a file that is
/// not written in place (a blob or a file linked to one) may as well be its own inode.
pub(super) fn link_or_copy(
    (sfd, dfd): (RawFd, RawFd),
    name: &Path,
    buf: &mut Vec<u8>,
    link: &LinkAt,
) -> std::io::Result<()> {
    match link(sfd, name, dfd, name) {
        Ok(()) => Ok(()),
        Err(Errno::EMLINK) => {
            read_at(Some(sfd), name, buf)?;
            create_at(Some(dfd), name, buf)
        }
        Err(e) => Err(errno_io(e)),
    }
}

impl EmulatedFs {
    /// Make `name` in directory `dir` a hard link to the blob holding `content`, making the
    /// blob (and the blob directory) first if needed.
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
        link_to_blob(bfd, &mut inner.blobs, content, (dir, name), &linkat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// `linkat(2)` on a filesystem that allows `max` links per inode: EMLINK, as ext4 gives at
    /// 65,000, without making that many.
    fn limited(max: u64) -> impl Fn(RawFd, &Path, RawFd, &Path) -> nix::Result<()> {
        move |sfd, src, dfd, dst| match nix::sys::stat::fstatat(
            Some(sfd),
            src,
            nix::fcntl::AtFlags::empty(),
        ) {
            Ok(st) if st.st_nlink >= max => Err(Errno::EMLINK),
            _ => linkat(sfd, src, dfd, dst),
        }
    }

    fn nlink(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().nlink()
    }

    #[test]
    fn a_full_blob_starts_a_new_generation() {
        let t = tempfile::tempdir().unwrap();
        let (blobs, cg) = (t.path().join("blobs"), t.path().join("cg"));
        std::fs::create_dir(&blobs).unwrap();
        std::fs::create_dir(&cg).unwrap();
        let (bfd, dfd) = (open_dir(&blobs).unwrap(), open_dir(&cg).unwrap());
        let link = limited(3);
        let mut known = HashMap::new();
        for i in 0..7 {
            let name = format!("f{i}");
            link_to_blob(
                bfd.as_raw_fd(),
                &mut known,
                "42\n",
                (dfd.as_raw_fd(), &name),
                &link,
            )
            .unwrap();
        }
        let blob = blob_name("42\n");
        // Each full generation: the blob's own name and two links.
        for g in 0..3 {
            assert_eq!(nlink(&blobs.join(generation_name(&blob, g))), 3, "gen {g}");
        }
        assert_eq!(nlink(&blobs.join(generation_name(&blob, 3))), 2);
        assert_eq!(known.get(&blob), Some(&3));
        // An instance that knows no blob walks past the full generations.
        let mut fresh = HashMap::new();
        link_to_blob(
            bfd.as_raw_fd(),
            &mut fresh,
            "42\n",
            (dfd.as_raw_fd(), "g"),
            &link,
        )
        .unwrap();
        assert_eq!(fresh.get(&blob), Some(&3));
        for i in 0..7 {
            let f = format!("f{i}");
            assert_eq!(std::fs::read_to_string(cg.join(f)).unwrap(), "42\n");
        }
        assert_eq!(std::fs::read_to_string(cg.join("g")).unwrap(), "42\n");
    }

    #[test]
    fn a_file_with_the_most_links_is_copied() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("a"), "max\n").unwrap();
        std::fs::write(src.join("b"), "0\n").unwrap();
        std::fs::hard_link(src.join("b"), src.join("b2")).unwrap();
        let (sfd, dfd) = (open_dir(&src).unwrap(), open_dir(&dst).unwrap());
        let mut buf = Vec::new();
        let link = limited(2);
        for name in ["a", "b"] {
            link_or_copy(
                (sfd.as_raw_fd(), dfd.as_raw_fd()),
                Path::new(name),
                &mut buf,
                &link,
            )
            .unwrap();
        }
        // "a" had one link: linked. "b" had two, the most allowed: copied.
        assert_eq!(nlink(&src.join("a")), 2);
        assert_eq!(nlink(&dst.join("b")), 1);
        assert_eq!(nlink(&src.join("b")), 2);
        assert_eq!(std::fs::read_to_string(dst.join("b")).unwrap(), "0\n");
        assert_eq!(std::fs::read_to_string(dst.join("a")).unwrap(), "max\n");
    }
}
