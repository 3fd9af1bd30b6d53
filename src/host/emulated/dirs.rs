//! mkdir, rmdir and rename of cgroup directories, each one atomic step on disk like the
//! kernel's (a directory is built under a temporary name and renamed into place).

use super::*;

impl EmulatedFs {
    pub(super) fn do_mkdir(&self, inner: &mut Inner, full: &str) -> FResult<()> {
        if full.is_empty() || inner.nodes.contains_key(full) {
            return Err(Errno::EEXIST.into());
        }
        let par = parent(full).to_string();
        if !inner.nodes.contains_key(&par) {
            return Err(Errno::ENOENT.into());
        }
        // mem_cgroup_alloc: the id allocation fails when every id is taken (by live memcgs
        // and the dying ones that keep theirs): ENOSPC, or ENOMEM on 3.10.
        if self.ids_in_use(inner) >= self.profile.id_limit() {
            return Err(self.profile.ids_exhausted().into());
        }
        let dir = self.dir(full);
        // Something not in the index is there (another writer's): like cgroupfs, EEXIST.
        if std::fs::symlink_metadata(&dir).is_ok() {
            return Err(Errno::EEXIST.into());
        }
        let (files, kmem) = self.new_cgroup_files(inner, &par)?;
        // Built aside and renamed into place at commit: the cgroup appears whole or not at
        // all, as the kernel's mkdir does.
        let (tmp, private) = self.build_dir(inner, &files)?;
        self.queue_rename(inner, &tmp, &dir);
        inner.nodes.insert(
            full.to_string(),
            Node {
                kmem,
                files: files
                    .into_iter()
                    .map(|(n, c)| (n.to_string(), Some(c)))
                    .collect(),
                private,
                ..Node::default()
            },
        );
        let name = crate::model::path::base_name(full).to_string();
        inner
            .nodes
            .get_mut(&par)
            .expect("checked")
            .kids
            .insert(name);
        Ok(self.flush_proc_cgroups(inner)?)
    }

    /// The control files of a new child of `par` (name, content), and whether kmem
    /// accounting is active in it.
    fn new_cgroup_files(
        &self,
        inner: &mut Inner,
        par: &str,
    ) -> Result<(Vec<(&'static str, String)>, bool)> {
        // mem_cgroup_css_alloc: swappiness, oom_kill_disable and use_hierarchy inherited.
        let swappiness = self.read_num(inner, par, knob::SWAPPINESS)?;
        let uh = if self.profile.use_hierarchy_fixed() {
            1
        } else {
            self.read_num(inner, par, knob::USE_HIERARCHY)?
        };
        let oom = self.read_oom_disable(inner, par)?;
        // 3.10 memcg_propagate_kmem: a child of a kmem-active memcg is kmem-active.
        let kmem = self.profile.is_3_10() && inner.nodes[par].kmem;
        let mut files = control_files(self.profile, self.profile.unlimited(), swappiness, uh, oom);
        if kmem {
            files.push((KMEM_ACTIVE_FILE, "1\n".into()));
            for f in files.iter_mut() {
                if f.0 == knob::KMEM_SLABINFO {
                    f.1 = SLABINFO_HEADER.into();
                }
            }
        }
        Ok((files, kmem))
    }

    /// A new directory below the temp directory holding `files`: empty ones as files of their
    /// own, the others as links to blobs. Its path and the names of its own files.
    fn build_dir(
        &self,
        inner: &mut Inner,
        files: &[(&'static str, String)],
    ) -> Result<(PathBuf, BTreeSet<String>)> {
        let dir = self.tmp_path(inner)?;
        std::fs::create_dir(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
        let fd = open_dir(&dir).map_err(|e| Error::io("open", &dir, e))?;
        let mut private = BTreeSet::new();
        for (name, content) in files {
            if content.is_empty() {
                create_at(Some(fd.as_raw_fd()), Path::new(name), b"")
                    .map_err(|e| Error::io("write", dir.join(name), e))?;
                private.insert(name.to_string());
            } else {
                self.link_blob(inner, content, fd.as_raw_fd(), name)
                    .map_err(|e| Error::io("link", dir.join(name), e))?;
            }
        }
        Ok((dir, private))
    }

    pub(super) fn do_rmdir(&self, inner: &mut Inner, full: &str) -> FResult<()> {
        if full.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        let Some(node) = inner.nodes.get(full) else {
            return Err(Errno::ENOENT.into());
        };
        // cgroup_rmdir: EBUSY while tasks or child cgroups remain.
        if !node.tids.is_empty() || !node.kids.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        let dir = self.dir(full);
        let files = node.files.keys().cloned().collect();
        // Renamed away in one step at commit, emptied after.
        self.queue_remove_dir(inner, &dir, files);
        let node = inner.nodes.remove(full).expect("checked");
        let par = parent(full).to_string();
        let pn = inner.nodes.get_mut(&par).expect("parent of live");
        pn.kids.remove(crate::model::path::base_name(full));
        if self.profile.is_3_10() {
            // 3.10 mem_cgroup_css_offline reparents user charges (mem_cgroup_reparent_charges);
            // only kmem (slab) charges keep a deleted memcg and its id (the leak): those of
            // its tasks' allocations (its slab cache copies, [`slab`]) or charged by hand. A
            // kmem-active memcg that never allocated holds no kmem charge and is freed.
            if node.cache + node.anon > 0 {
                pn.cache += node.cache;
                pn.anon += node.anon;
                self.flush_charges(inner, &par)?;
            }
            if node.kmem_id != 0 || node.slab > 0 {
                inner.state.dying_kmem += 1;
            }
        } else {
            if node.slab > 0 {
                // From 5.9 (memcg_reparent_objcgs, bf4f059954dc) slab objects move to the
                // parent's object cgroup at offline: they pin no memcg (every newer profile).
                pn.slab += node.slab;
                self.flush_charges(inner, &par)?;
            }
            if node.cache + node.anon > 0 {
                // Newer kernels do not reparent page cache: a charged memcg stays dying until
                // reclaim (drop_caches) frees its pages.
                inner.state.dying_cache += 1;
            }
        }
        self.runtime_offline(inner, full);
        self.persist(inner)?;
        Ok(self.flush_proc_cgroups(inner)?)
    }

    pub(super) fn do_rename(&self, inner: &mut Inner, from: &str, to: &str) -> FResult<()> {
        if from.is_empty() || to.is_empty() {
            return Err(Errno::EBUSY.into());
        }
        if !inner.nodes.contains_key(from) {
            return Err(Errno::ENOENT.into());
        }
        // cgroup1_rename / 3.10 cgroup_rename: "can't move a cgroup between parents": EIO.
        if parent(from) != parent(to) {
            return Err(Errno::EIO.into());
        }
        if from == to {
            return Ok(());
        }
        if inner.nodes.contains_key(to) {
            return Err(Errno::EEXIST.into());
        }
        let (src, dst) = (self.dir(from), self.dir(to));
        // No replacing of whatever is at `to` (an empty directory would be, silently).
        if std::fs::symlink_metadata(&dst).is_ok() {
            return Err(Errno::EEXIST.into());
        }
        self.queue_rename(inner, &src, &dst);
        let prefix = format!("{from}/");
        let keys: Vec<String> = std::iter::once(from.to_string())
            .chain(
                inner
                    .nodes
                    .range(prefix.clone()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(&prefix))
                    .cloned(),
            )
            .collect();
        for k in keys {
            let node = inner.nodes.remove(&k).expect("listed");
            let nk = crate::model::path::rebase(&k, from, to);
            for tid in &node.tids {
                if let Some(t) = inner.tasks.get_mut(tid) {
                    t.cg = nk.clone();
                }
            }
            inner.nodes.insert(nk, node);
        }
        let pn = inner.nodes.get_mut(parent(from)).expect("parent of live");
        pn.kids.remove(crate::model::path::base_name(from));
        pn.kids
            .insert(crate::model::path::base_name(to).to_string());
        self.runtime_renamed(inner, from, to);
        Ok(())
    }
}
