//! The [`Hierarchy`] side of an emulated node: cgroup directories and control files, served
//! from the in-memory index and written through to disk within the operation's transaction.

use super::*;

impl EmulatedFs {
    /// Content of a file of a live cgroup: from memory, read from disk the first time.
    pub(super) fn load_file(
        &self,
        inner: &mut Inner,
        full: &str,
        name: &str,
    ) -> std::io::Result<String> {
        let node = inner
            .nodes
            .get_mut(full)
            .ok_or_else(|| errno_io(Errno::ENOENT))?;
        match node.files.get_mut(name) {
            None => Err(errno_io(Errno::ENOENT)),
            Some(Some(c)) => Ok(c.clone()),
            Some(slot) => {
                let c = read_string(&self.dir(full).join(name))?;
                *slot = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// Set a file of a live cgroup, written through to disk unless the content is unchanged.
    pub(super) fn set_file(
        &self,
        inner: &mut Inner,
        full: &str,
        name: &str,
        content: String,
    ) -> Result<()> {
        let Some(node) = inner.nodes.get_mut(full) else {
            return Ok(());
        };
        let old_len = match node.files.get(name) {
            Some(Some(c)) if *c == content => return Ok(()),
            Some(Some(c)) => Some(c.len()),
            _ => None,
        };
        // A file not known to be the directory's own may be a link to a blob: never written
        // into, replaced.
        let how = if node.private.contains(name) {
            txn::How::InPlace(old_len)
        } else {
            node.private.insert(name.to_string());
            txn::How::Replace
        };
        node.files.insert(name.to_string(), Some(content.clone()));
        let path = self.dir(full).join(name);
        self.queue_write(inner, &path, content, how);
        Ok(())
    }

    /// Remove a (hidden) file of a live cgroup if it is there.
    pub(super) fn remove_cg_file(&self, inner: &mut Inner, full: &str, name: &str) -> Result<()> {
        let Some(node) = inner.nodes.get_mut(full) else {
            return Ok(());
        };
        node.private.remove(name);
        if node.files.remove(name).is_some() {
            let path = self.dir(full).join(name);
            self.queue_remove(inner, &path);
        }
        Ok(())
    }

    /// Write a hidden counter file; 0 removes it so a fresh cgroup has no extra files.
    pub(super) fn write_counter(
        &self,
        inner: &mut Inner,
        full: &str,
        name: &str,
        v: u64,
    ) -> Result<()> {
        if v == 0 {
            self.remove_cg_file(inner, full, name)
        } else {
            self.set_file(inner, full, name, format!("{v}\n"))
        }
    }

    /// Rewrite `tasks` and `cgroup.procs` of a cgroup from the index.
    pub(super) fn flush_tasks(&self, inner: &mut Inner, full: &str) -> Result<()> {
        use std::fmt::Write;
        let Some(node) = inner.nodes.get(full) else {
            return Ok(());
        };
        let mut tasks = String::with_capacity(node.tids.len() * 8);
        let mut tgids = BTreeSet::new();
        for tid in &node.tids {
            let _ = writeln!(tasks, "{tid}");
            if let Some(t) = inner.tasks.get(tid) {
                tgids.insert(t.tgid);
            }
        }
        let mut procs = String::with_capacity(tgids.len() * 8);
        for p in &tgids {
            let _ = writeln!(procs, "{p}");
        }
        self.set_file(inner, full, knob::TASKS, tasks)?;
        self.set_file(inner, full, knob::PROCS, procs)
    }

    /// Rewrite the charge files of a cgroup (hidden counters, usage, stat).
    pub(super) fn flush_charges(&self, inner: &mut Inner, full: &str) -> Result<()> {
        let Some(node) = inner.nodes.get(full) else {
            return Ok(());
        };
        let (cache, anon, slab) = (node.cache, node.anon, node.slab);
        self.write_counter(inner, full, CACHE_FILE, cache)?;
        self.write_counter(inner, full, ANON_FILE, anon)?;
        self.write_counter(inner, full, SLAB_FILE, slab)?;
        // v1 memory.usage_in_bytes counts kernel memory too (accounted with __GFP_ACCOUNT).
        let usage = cache + anon + slab;
        self.set_file(inner, full, knob::USAGE, format!("{usage}\n"))?;
        self.set_file(inner, full, STAT, stat_content(self.profile, cache, anon))
    }

    pub(super) fn read_cg_file(&self, inner: &mut Inner, full: &str, file: &str) -> Result<String> {
        self.load_file(inner, full, file)
            .map_err(|e| Error::io("read", self.dir(full).join(file), e))
    }

    pub(super) fn read_num(&self, inner: &mut Inner, full: &str, file: &str) -> Result<u64> {
        let s = self.read_cg_file(inner, full, file)?;
        crate::host::parse_u64(&self.dir(full).join(file), file, &s)
    }

    pub(super) fn write_num(
        &self,
        inner: &mut Inner,
        full: &str,
        file: &str,
        v: u64,
    ) -> Result<()> {
        self.set_file(inner, full, file, format!("{v}\n"))
    }

    pub(super) fn read_oom_disable(&self, inner: &mut Inner, full: &str) -> Result<bool> {
        let s = self.read_cg_file(inner, full, knob::OOM_CONTROL)?;
        parse_oom_kill_disable(&self.dir(full).join(knob::OOM_CONTROL), &s)
    }

    /// Whether `full` (not the root) has a parent with use_hierarchy 1.
    pub(super) fn parent_uses_hierarchy(&self, inner: &mut Inner, full: &str) -> Result<bool> {
        Ok(self.read_num(inner, parent(full), knob::USE_HIERARCHY)? == 1)
    }

    pub(super) fn has_file_full(&self, inner: &Inner, full: &str, file: &str) -> bool {
        inner
            .nodes
            .get(full)
            .is_some_and(|n| n.files.contains_key(file))
    }
}

impl Hierarchy for EmulatedFs {
    fn root(&self) -> &Path {
        &self.root
    }

    fn describe(&self) -> String {
        format!("emulated {} node at {}", self.profile, self.base.display())
    }

    fn is_emulated(&self) -> bool {
        true
    }

    fn exists(&self, cg: &str) -> bool {
        let inner = self.lock();
        self.full(cg).is_some_and(|f| inner.nodes.contains_key(&f))
    }

    fn children(&self, cg: &str) -> Result<Vec<String>> {
        self.read_op(|inner| {
            let path = self.abs(cg);
            self.match_fault(inner, FsOp::List, &path)
                .map_err(|f| fail_to_error(f, FsOp::List, &path, None))?;
            match self.full(cg).and_then(|f| inner.nodes.get(&f)) {
                Some(n) => Ok(n.kids.iter().cloned().collect()),
                None => Err(sys(FsOp::List, path, Errno::ENOENT)),
            }
        })
    }

    fn has_file(&self, cg: &str, file: &str) -> bool {
        if file.starts_with("emulated.") || file.contains('/') {
            return false;
        }
        let inner = self.lock();
        match self.full(cg) {
            Some(f) => self.has_file_full(&inner, &f, file),
            _ => false,
        }
    }

    fn read(&self, cg: &str, file: &str) -> Result<String> {
        self.read_op(|inner| {
            let path = self.abs(cg).join(file);
            self.match_fault(inner, FsOp::Read, &path)
                .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
            let enoent = || sys(FsOp::Read, &path, Errno::ENOENT);
            let full = self.full(cg).ok_or_else(enoent)?;
            let Some(node) = inner.nodes.get(&full) else {
                return Err(enoent());
            };
            if file.starts_with("emulated.") || file.contains('/') || !node.files.contains_key(file)
            {
                return Err(enoent());
            }
            match file {
                // memory.force_empty has no read handler: EINVAL.
                knob::FORCE_EMPTY => Err(sys(FsOp::Read, &path, Errno::EINVAL)),
                knob::KMEM_SLABINFO => {
                    if self.profile.is_3_10() {
                        // 3.10 mem_cgroup_slabinfo_read: EIO unless kmem is active in the memcg.
                        if full.is_empty() || !node.kmem {
                            Err(sys(FsOp::Read, &path, Errno::EIO))
                        } else {
                            Ok(SLABINFO_HEADER.to_string())
                        }
                    } else {
                        // Slab rework (5.9): the v1 file is empty.
                        Ok(String::new())
                    }
                }
                knob::USAGE => Ok(format!("{}\n", node.cache + node.anon + node.slab)),
                STAT => Ok(stat_content(self.profile, node.cache, node.anon)),
                _ => self
                    .load_file(inner, &full, file)
                    .map_err(|e| match e.raw_os_error() {
                        Some(n) => sys(FsOp::Read, &path, Errno::from_raw(n)),
                        None => Error::io("read", self.dir(&full).join(file), e),
                    }),
            }
        })
    }

    fn write(&self, cg: &str, file: &str, value: &str) -> Result<()> {
        self.mutate(|inner| {
            let path = self.abs(cg).join(file);
            let err = |f| fail_to_error(f, FsOp::Write, &path, Some(value));
            self.mutation(inner, FsOp::Write, &path).map_err(err)?;
            // cgroup_file_write strips surrounding whitespace (the trailing newline of echo).
            let v = value.trim();
            let full = self
                .full(cg)
                .ok_or(Fail::Errno(Errno::ENOENT))
                .map_err(err)?;
            self.do_write(inner, &full, file, v).map_err(err)
        })
    }

    fn mkdir(&self, cg: &str) -> Result<()> {
        self.mutate(|inner| {
            let path = self.abs(cg);
            let err = |f| fail_to_error(f, FsOp::Mkdir, &path, None);
            self.mutation(inner, FsOp::Mkdir, &path).map_err(err)?;
            let full = self
                .full(cg)
                .ok_or(Fail::Errno(Errno::ENOENT))
                .map_err(err)?;
            self.do_mkdir(inner, &full).map_err(err)
        })
    }

    fn rmdir(&self, cg: &str) -> Result<()> {
        self.mutate(|inner| {
            let path = self.abs(cg);
            let err = |f| fail_to_error(f, FsOp::Rmdir, &path, None);
            self.mutation(inner, FsOp::Rmdir, &path).map_err(err)?;
            let full = self
                .full(cg)
                .ok_or(Fail::Errno(Errno::ENOENT))
                .map_err(err)?;
            self.do_rmdir(inner, &full).map_err(err)
        })
    }

    /// The kernel loops in mem_cgroup_force_empty while usage is above 0; on memory reclaim
    /// cannot free (slab) it gives up only after its retries (see
    /// [`KernelProfile::force_empty_wait`]), so a budget shorter than that is spent and the
    /// write cut short (docs/kernel-facts.md, "force_empty"). Emulated time: it answers at once.
    fn force_empty(&self, cg: &str, budget: std::time::Duration) -> Result<bool> {
        self.write(cg, knob::FORCE_EMPTY, "0")?;
        let slab = {
            let inner = self.lock();
            self.full(cg)
                .and_then(|f| inner.nodes.get(&f).map(|n| n.slab))
                .unwrap_or(0)
        };
        Ok(slab == 0 || self.profile.force_empty_wait() <= budget)
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.mutate(|inner| {
            let path = self.abs(from);
            let err = |f| fail_to_error(f, FsOp::Rename, &path, None);
            self.mutation(inner, FsOp::Rename, &path).map_err(err)?;
            let (Some(f), Some(t)) = (self.full(from), self.full(to)) else {
                return Err(err(Fail::Errno(Errno::ENOENT)));
            };
            self.do_rename(inner, &f, &t).map_err(err)
        })
    }

    fn hierarchy_mount(&self) -> PathBuf {
        self.mount.clone()
    }

    fn hierarchy_live(&self) -> Result<u64> {
        Ok(self.lock().nodes.len() as u64)
    }
}
