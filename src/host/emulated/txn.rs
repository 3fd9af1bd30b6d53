//! Atomic operations and the node lock.
//!
//! The kernel's mkdir, rmdir, rename and task move are atomic: each runs inside one system call
//! under cgroup_mutex (kernel/cgroup/cgroup.c: cgroup_mkdir, cgroup_rmdir, cgroup1_rename,
//! cgroup_attach_task switching the task's css_set in one step), and SIGKILL is acted on only
//! when the call returns, so a killed process leaves the hierarchy before or after the
//! operation, never between.
//! An emulated operation changes several files (a task move rewrites `tasks` and
//! `cgroup.procs` of two cgroups, their charge files and the state file), so the emulation
//! makes each operation one transaction:
//!
//! - the operation changes only the in-memory index and queues its file changes ([`Effect`]);
//! - commit writes, in one pwrite(2) to [`LOCK_FILE`], the node's next generation and the
//!   whole list with its length and checksum (a torn write fails the checksum: the operation
//!   had not started), applies the list, and clears it;
//! - whoever takes the lock next and finds an intent applies it again (every effect is
//!   idempotent) before anything else: a killed operation ends as if it had finished.
//!
//! New directories (a cgroup, a process's proc directory) are built under [`TMP_DIR`] and
//! renamed into place; removed ones are renamed there first: each appears or disappears in
//! one rename(2). Leftovers of a killed builder are removed at the next open.
//!
//! Processes operating on the same node are serialised by an flock(2) on [`LOCK_FILE`] (the
//! kernel releases it when the holder dies), which also holds the node's generation: an
//! instance whose index is older than the disk reloads it before its next operation.

use super::*;
use nix::fcntl::FlockArg;
use std::os::unix::fs::FileExt;

/// Lock file at the base of a node: flock(2) serialises operations. Its content: the
/// generation (8 bytes, little endian), bumped by every operation that changes a file; the
/// length and FNV-1a hash of the intent (8 bytes each; length 0: none); the intent, a JSON
/// list of [`Effect`]s of the operation being committed.
pub const LOCK_FILE: &str = "emulated.lock";
/// Directory below the base where directories are built before, and put after, a rename.
pub const TMP_DIR: &str = "emulated.tmp";

/// How a queued write is applied in the normal case (a replay always replaces the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum How {
    /// Unlink, then create: the file may be a hard link to a blob (see [`BLOB_DIR`]).
    #[default]
    Replace,
    /// Overwrite in place; the old length when known (no truncation when not longer).
    InPlace(Option<usize>),
}

/// One file change of an operation; paths are relative to the node's base.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Effect {
    Write {
        path: String,
        content: String,
        #[serde(skip)]
        how: How,
    },
    /// Remove a file (absent is fine).
    Remove { path: String },
    /// Rename a file or directory; done when `from` is gone.
    Rename { from: String, to: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Intent {
    effects: Vec<Effect>,
}

/// A removed directory waiting below [`TMP_DIR`], with the files believed to be in it.
pub(super) struct Trash {
    pub(super) dir: PathBuf,
    pub(super) files: Vec<String>,
}

/// The lock file of a node, opened once per instance.
pub(super) struct NodeLock {
    file: std::fs::File,
    path: PathBuf,
}

/// The node lock held; released on drop (or by the kernel when the process dies).
pub(super) struct Held<'a>(&'a NodeLock);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        #[allow(deprecated)] // Flock<T> would own (dup) the file for every operation
        let _ = nix::fcntl::flock(self.0.file.as_raw_fd(), FlockArg::Unlock);
    }
}

const HEADER: usize = 24;

impl NodeLock {
    pub(super) fn open(base: &Path) -> Result<NodeLock> {
        let path = base.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(NodeLock { file, path })
    }

    /// Hold the node exclusively until the returned guard drops (or the process dies).
    pub(super) fn exclusive(&self) -> Result<Held<'_>> {
        #[allow(deprecated)]
        nix::fcntl::flock(self.file.as_raw_fd(), FlockArg::LockExclusive)
            .map_err(|e| Error::io("flock", &self.path, errno_io(e)))?;
        Ok(Held(self))
    }

    pub(super) fn generation(&self) -> u64 {
        let mut b = [0u8; 8];
        match self.file.read_at(&mut b, 0) {
            Ok(8) => u64::from_le_bytes(b),
            _ => 0,
        }
    }

    /// Start a commit: the new generation and, when `intent` is given, the intent.
    fn begin(&self, generation: u64, intent: Option<&[u8]>) -> Result<()> {
        let mut buf = generation.to_le_bytes().to_vec();
        if let Some(json) = intent {
            buf.extend_from_slice(&(json.len() as u64).to_le_bytes());
            buf.extend_from_slice(&fnv1a(json).to_le_bytes());
            buf.extend_from_slice(json);
        }
        self.file
            .write_all_at(&buf, 0)
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// End a commit: the intent is done.
    fn end(&self) -> Result<()> {
        self.file
            .write_all_at(&0u64.to_le_bytes(), 8)
            .map_err(|e| Error::io("write", &self.path, e))
    }

    /// The intent a killed commit left, if whole (a torn one had not started to apply).
    fn intent(&self) -> Result<Option<Vec<Effect>>> {
        let mut head = [0u8; HEADER];
        match self.file.read_at(&mut head, 0) {
            Ok(HEADER) => {}
            Ok(_) => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        }
        let len = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes")) as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut json = vec![0u8; len];
        match self.file.read_exact_at(&mut json, HEADER as u64) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        }
        if fnv1a(&json) != u64::from_le_bytes(head[16..24].try_into().expect("8 bytes")) {
            return Ok(None);
        }
        let intent: Intent = serde_json::from_slice(&json).map_err(|e| Error::Parse {
            path: self.path.clone(),
            what: format!("emulated operation intent ({e})"),
            content: String::from_utf8_lossy(&json).into_owned(),
        })?;
        Ok(Some(intent.effects))
    }
}

/// FNV-1a: a checksum that tells a whole intent from a torn one.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl EmulatedFs {
    /// Path of `abs` relative to the base, for an effect.
    fn rel(&self, abs: &Path) -> String {
        abs.strip_prefix(&self.base)
            .unwrap_or(abs)
            .to_string_lossy()
            .into_owned()
    }

    /// Queue a write of `abs` (the last queued write of a path wins, in its place).
    pub(super) fn queue_write(&self, inner: &mut Inner, abs: &Path, content: String, how: How) {
        let path = self.rel(abs);
        if let Some(&i) = inner.pending_writes.get(&path) {
            if let Effect::Write { content: c, .. } = &mut inner.pending[i] {
                *c = content;
                return;
            }
        }
        inner
            .pending_writes
            .insert(path.clone(), inner.pending.len());
        inner.pending.push(Effect::Write { path, content, how });
    }

    pub(super) fn queue_remove(&self, inner: &mut Inner, abs: &Path) {
        let path = self.rel(abs);
        inner.pending_writes.remove(&path);
        inner.pending.push(Effect::Remove { path });
    }

    pub(super) fn queue_rename(&self, inner: &mut Inner, from: &Path, to: &Path) {
        let (from, to) = (self.rel(from), self.rel(to));
        inner.pending.push(Effect::Rename { from, to });
    }

    /// A new, unique directory path below [`TMP_DIR`] (not created).
    pub(super) fn tmp_path(&self, inner: &mut Inner) -> Result<PathBuf> {
        let tmp = self.base.join(TMP_DIR);
        if !inner.tmp_ready {
            match std::fs::create_dir(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("mkdir", &tmp, e)),
            }
            inner.tmp_ready = true;
        }
        inner.tmp_seq += 1;
        Ok(tmp.join(format!("{}-{}", std::process::id(), inner.tmp_seq)))
    }

    /// Remove directory `dir` in one rename into [`TMP_DIR`] (queued); its files go after
    /// the commit.
    pub(super) fn queue_remove_dir(&self, inner: &mut Inner, dir: &Path, files: Vec<String>) {
        let to = match self.tmp_path(inner) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{e}");
                self.base.join(TMP_DIR).join("lost")
            }
        };
        self.queue_rename(inner, dir, &to);
        inner.trash.push(Trash { dir: to, files });
    }

    /// Run a mutating operation: under the node lock, on an index in step with the disk; its
    /// file changes are committed as one transaction afterwards, whatever it returned.
    pub(super) fn mutate<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&mut Inner) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _held = self.node_lock.exclusive()?;
        self.sync(&mut inner)?;
        let r = f(&mut inner);
        // Another process (a shim) runs while the node changes: it may react now.
        self.runtime_tick(&mut inner, false);
        self.commit(&mut inner)?;
        r
    }

    /// Run an operation that reads, but may change a file (a fault fired): committed if so.
    pub(super) fn read_op<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.lock();
        let r = f(&mut inner);
        if !inner.pending.is_empty() {
            let res = self
                .node_lock
                .exclusive()
                .and_then(|_held| self.commit(&mut inner));
            if let Err(e) = res {
                log::warn!("emulated node {}: {e}", self.base.display());
            }
        }
        r
    }

    /// The index, brought in step with the disk first if another instance changed the node.
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.node_lock.generation() != inner.generation {
            let r = self
                .node_lock
                .exclusive()
                .and_then(|_held| self.sync(&mut inner));
            if let Err(e) = r {
                log::warn!("emulated node {}: {e}", self.base.display());
            }
        }
        inner
    }

    /// Under the lock: finish an operation a killed process left, and reload the index if the
    /// disk is newer than it.
    pub(super) fn sync(&self, inner: &mut Inner) -> Result<()> {
        let g = self.node_lock.generation();
        if g == inner.generation {
            return Ok(());
        }
        recover(&self.base, &self.node_lock)?;
        self.reload(inner)?;
        inner.generation = g;
        Ok(())
    }

    /// Apply the queued effects as one transaction (see the module documentation).
    pub(super) fn commit(&self, inner: &mut Inner) -> Result<()> {
        inner.pending_writes.clear();
        let effects = std::mem::take(&mut inner.pending);
        if effects.is_empty() {
            return Ok(());
        }
        let r = self.commit_effects(inner, &effects);
        if r.is_err() {
            // The index is ahead of the disk: reload before the next operation.
            inner.generation = u64::MAX;
        }
        for t in std::mem::take(&mut inner.trash) {
            if let Err(e) = remove_known_dir(&t.dir, t.files.iter().map(String::as_str)) {
                log::warn!("{e}");
            }
        }
        r
    }

    fn commit_effects(&self, inner: &mut Inner, effects: &[Effect]) -> Result<()> {
        // Bumped before any change: another instance that sees it reloads (and finishes a
        // killed commit); one that does not has the same state as the disk.
        inner.generation = self.node_lock.generation().wrapping_add(1);
        let logged = effects.len() > 1 || !atomic_alone(&effects[0]);
        let json = logged.then(|| {
            serde_json::to_vec(&Intent {
                effects: effects.to_vec(),
            })
            .expect("intent serializes")
        });
        self.node_lock.begin(inner.generation, json.as_deref())?;
        for e in effects {
            self.apply(e)?;
        }
        if logged {
            self.node_lock.end()?;
        }
        Ok(())
    }

    fn apply(&self, e: &Effect) -> Result<()> {
        match e {
            Effect::Write { path, content, how } => {
                let p = self.base.join(path);
                match how {
                    How::InPlace(old_len) => overwrite(&p, content, *old_len),
                    How::Replace => replace_file(&p, content),
                }
            }
            Effect::Remove { path } => remove_file(&self.base.join(path)),
            Effect::Rename { from, to } => {
                let (f, t) = (self.base.join(from), self.base.join(to));
                std::fs::rename(&f, &t).map_err(|e| Error::io("rename", &f, e))
            }
        }
    }
}

/// Under the lock: apply a left intent again, then remove the leftovers below TMP_DIR.
pub(super) fn recover(base: &Path, lock: &NodeLock) -> Result<()> {
    if let Some(effects) = lock.intent()? {
        for e in &effects {
            replay(base, e)?;
        }
        lock.end()?;
    }
    // Only what is inside: an instance that made the directory goes on using it.
    let tmp = base.join(TMP_DIR);
    let rd = match std::fs::read_dir(&tmp) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read_dir", &tmp, e)),
    };
    for entry in rd {
        let p = entry.map_err(|e| Error::io("read_dir", &tmp, e))?.path();
        let r = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| Error::io("remove", &p, e))?;
    }
    Ok(())
}

/// Apply an effect again after a crash: whatever part of it was done, the end is the same.
fn replay(base: &Path, e: &Effect) -> Result<()> {
    match e {
        Effect::Write { path, content, .. } => {
            let p = base.join(path);
            // Its directory went later in the same operation: nothing to write.
            if !p.parent().is_some_and(Path::is_dir) {
                return Ok(());
            }
            remove_file(&p)?;
            create_at(None, &p, content.as_bytes()).map_err(|e| Error::io("write", &p, e))
        }
        Effect::Remove { path } => remove_file(&base.join(path)),
        Effect::Rename { from, to } => {
            let (f, t) = (base.join(from), base.join(to));
            if std::fs::symlink_metadata(&f).is_err() {
                return Ok(());
            }
            std::fs::rename(&f, &t).map_err(|e| Error::io("rename", &f, e))
        }
    }
}

/// Whether an effect alone is one atomic step on disk: a rename, an unlink, or an in-place
/// write of at most a page that does not shorten the file (one write(2), no truncation).
fn atomic_alone(e: &Effect) -> bool {
    match e {
        Effect::Rename { .. } | Effect::Remove { .. } => true,
        Effect::Write { content, how, .. } => {
            matches!(how, How::InPlace(Some(old)) if *old <= content.len())
                && content.len() <= PAGE_SIZE as usize
        }
    }
}

/// Replace a file that may be a hard link to a blob by a new file of its own.
fn replace_file(p: &Path, content: &str) -> Result<()> {
    remove_file(p)?;
    match create_at(None, p, content.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            remove_file(p)?;
            create_at(None, p, content.as_bytes()).map_err(|e| Error::io("write", p, e))
        }
        Err(e) => Err(Error::io("write", p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node whose last commit was killed after its intent was written: the next open
    /// applies the whole intent; a torn intent (wrong checksum) is ignored, as nothing of it
    /// had been applied.
    #[test]
    fn open_finishes_a_killed_commit_and_ignores_a_torn_one() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("node");
        let fs = EmulatedFs::create(&base, KernelProfile::V6_1).unwrap();
        fs.mkdir("a").unwrap();
        drop(fs);
        let effects = vec![
            Effect::Write {
                path: "memory/a/notify_on_release".into(),
                content: "1\n".into(),
                how: How::Replace,
            },
            Effect::Rename {
                from: "memory/a".into(),
                to: "memory/b".into(),
            },
        ];
        let json = serde_json::to_vec(&Intent { effects }).unwrap();
        let lock = NodeLock::open(&base).unwrap();
        let g = lock.generation() + 1;
        // Torn: the checksum does not match the bytes.
        lock.begin(g, Some(&json)).unwrap();
        lock.file.write_all_at(&[0u8; 8], 16).unwrap();
        let fs = EmulatedFs::open(&base).unwrap();
        assert!(
            fs.exists("a") && !fs.exists("b"),
            "a torn intent is not applied"
        );
        drop(fs);
        lock.begin(g + 1, Some(&json)).unwrap();
        let fs = EmulatedFs::open(&base).unwrap();
        assert!(
            !fs.exists("a") && fs.exists("b"),
            "a whole intent is applied"
        );
        assert_eq!(fs.read("b", "notify_on_release").unwrap(), "1\n");
        assert!(lock.intent().unwrap().is_none(), "and cleared");
    }
}
