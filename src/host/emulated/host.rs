//! The [`Host`] side of an emulated node: kernel release, /proc/cgroups, swap, meminfo,
//! drop_caches, boot id; and the dying memcgs and charges tests and the demo set up.

use super::*;

impl EmulatedFs {
    pub(super) fn flush_proc_cgroups(&self, inner: &mut Inner) -> Result<()> {
        let s = self.proc_cgroups_string(inner);
        if inner.proc_cgroups_disk.as_deref() == Some(s.as_str()) {
            return Ok(());
        }
        let old_len = inner.proc_cgroups_disk.as_ref().map(String::len);
        let path = self.base.join(PROC_DIR).join("cgroups");
        self.queue_write(inner, &path, s.clone(), txn::How::InPlace(old_len));
        inner.proc_cgroups_disk = Some(s);
        Ok(())
    }

    pub(super) fn proc_cgroups_string(&self, inner: &Inner) -> String {
        proc_cgroups_content(
            self.profile.is_3_10(),
            inner.nodes.len() as u64,
            Self::dying_all(inner),
        )
    }

    /// Every dying memcg, whatever pins it (what /proc/cgroups counts from 3.16).
    pub(super) fn dying_all(inner: &Inner) -> u64 {
        inner.state.dying_kmem + inner.state.dying_cache + Self::dying_swap(inner)
    }

    pub(super) fn dying_swap(inner: &Inner) -> u64 {
        inner.state.swaps.iter().map(|a| a.dying).sum()
    }

    /// Memcg ids taken: the live memcgs and the dying ones that keep theirs (all of them on
    /// 3.10; from 4.8 only those referenced by swap entries).
    pub(super) fn ids_in_use(&self, inner: &Inner) -> u64 {
        let dying = if self.profile.ids_released_at_offline() {
            Self::dying_swap(inner)
        } else {
            inner.state.dying_kmem + inner.state.dying_cache
        };
        inner.nodes.len() as u64 + dying
    }

    pub(super) fn swaps_string(inner: &Inner) -> String {
        let mut s = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        for a in inner.state.swaps.iter().filter(|a| a.active) {
            // one 4 KiB page per dying memcg it keeps
            let used = a.used_kib + a.dying * 4;
            s.push_str(&format!(
                "{:<40}partition\t{}\t\t{}\t\t{}\n",
                a.path.replace(' ', "\\040"),
                a.size_kib,
                used,
                a.priority
            ));
        }
        s
    }

    pub(super) fn meminfo_string(inner: &Inner) -> String {
        let swap_total: u64 = inner
            .state
            .swaps
            .iter()
            .filter(|a| a.active)
            .map(|a| a.size_kib)
            .sum();
        let swap_used: u64 = inner
            .state
            .swaps
            .iter()
            .filter(|a| a.active)
            .map(|a| a.used_kib + a.dying * 4)
            .sum();
        let st = &inner.state;
        format!(
            "MemTotal:       {:>8} kB\nMemFree:        {:>8} kB\nMemAvailable:   {:>8} kB\n\
             SwapTotal:      {:>8} kB\nSwapFree:       {:>8} kB\n",
            st.mem_total_kib,
            st.mem_available_kib / 2,
            st.mem_available_kib,
            swap_total,
            swap_total.saturating_sub(swap_used)
        )
    }

    /// Rewrite proc/swaps and proc/meminfo from the state (for anyone who looks at the files).
    pub(super) fn flush_swaps(&self, inner: &mut Inner) -> Result<()> {
        let dir = self.base.join(PROC_DIR);
        let (swaps, meminfo) = (Self::swaps_string(inner), Self::meminfo_string(inner));
        self.queue_write(inner, &dir.join("swaps"), swaps, txn::How::InPlace(None));
        self.queue_write(
            inner,
            &dir.join("meminfo"),
            meminfo,
            txn::How::InPlace(None),
        );
        Ok(())
    }

    /// Add `n` dying memcgs that hold their ids, the way each kernel leaks them: on 3.10
    /// pinned by kmem (slab) charges, which only a migration stops; from 4.8 pinned by
    /// swapped-out pages on the first active swap area (the only references that keep an id
    /// then; the lab's leak). On 3.10 each leaves its slab cache copies in /sys/kernel/slab.
    /// ENOSPC (3.10: ENOMEM) if the ids would run out.
    pub fn add_dying(&self, n: u64) -> Result<()> {
        self.mutate(|inner| {
            if self.ids_in_use(inner) + n > self.profile.id_limit() {
                return Err(sys(FsOp::Mkdir, &self.mount, self.profile.ids_exhausted()));
            }
            if self.profile.ids_released_at_offline() {
                let Some(area) = inner.state.swaps.iter_mut().find(|a| a.active) else {
                    return Err(Error::Usage(format!(
                        "{}: no active swap area, so no dying memcg can keep its id on {}",
                        self.base.display(),
                        self.profile
                    )));
                };
                area.dying += n;
                self.flush_swaps(inner)?;
            } else {
                self.slab_bulk_leak(inner, n)?;
                inner.state.dying_kmem += n;
            }
            self.persist(inner)?;
            self.flush_proc_cgroups(inner)
        })
    }

    /// Add `n` dying memcgs pinned by page cache only (>= 4.8: they hold no id; drop_caches
    /// frees them). 3.10 has none: rmdir reparents page cache there.
    pub fn add_dying_cache(&self, n: u64) -> Result<()> {
        if !self.profile.ids_released_at_offline() {
            return Err(Error::Usage(
                "3.10 reparents page cache at rmdir: no memcg stays dying because of it".into(),
            ));
        }
        self.mutate(|inner| {
            inner.state.dying_cache += n;
            self.persist(inner)?;
            self.flush_proc_cgroups(inner)
        })
    }

    /// Dying memcgs, whatever pins them (/proc/cgroups counts them all from 3.16).
    pub fn dying(&self) -> u64 {
        Self::dying_all(&self.lock())
    }

    /// Dying memcgs split: (pinned by kmem, by reclaimable page cache, by swapped-out pages).
    /// On 3.10 the first is the truth the count from /sys/kernel/slab finds: every kmem-pinned
    /// memcg has cache copies but one charged by hand ([`EmulatedFs::charge_slab`]) whose tasks
    /// never allocated.
    pub fn dying_split(&self) -> (u64, u64, u64) {
        let inner = self.lock();
        (
            inner.state.dying_kmem,
            inner.state.dying_cache,
            Self::dying_swap(&inner),
        )
    }

    /// Memcg ids in use: the live memcgs (root included) and the dying ones keeping an id.
    pub fn ids_used(&self) -> u64 {
        self.ids_in_use(&self.lock())
    }

    /// Set /proc/meminfo's MemAvailable (KiB), e.g. to make a swapoff not fit.
    pub fn set_mem_available(&self, kib: u64) -> Result<()> {
        self.mutate(|inner| {
            inner.state.mem_available_kib = kib;
            self.persist(inner)?;
            self.flush_swaps(inner)
        })
    }

    /// Give the swap area `path` a priority as `swapon -p` would (>= 0: chosen by hand, which
    /// a swap cycle must give back; negative: the kernel's own numbering).
    pub fn set_swap_priority(&self, path: &str, priority: i32) -> Result<()> {
        self.mutate(|inner| {
            let Some(a) = inner.state.swaps.iter_mut().find(|a| a.path == path) else {
                return Err(Error::Usage(format!("no swap area {path} on this node")));
            };
            a.priority = priority;
            self.persist(inner)?;
            self.flush_swaps(inner)
        })
    }

    /// Charge `bytes` of page cache to `cg` (raises its memory.usage_in_bytes).
    pub fn charge_cache(&self, cg: &str, bytes: u64) -> Result<()> {
        self.charge(cg, |n| n.cache = n.cache.saturating_add(bytes))
    }

    /// Charge `bytes` of kernel memory (slab) to `cg`: it raises usage and no reclaim frees
    /// it, so a force_empty there retries until the caller cuts it short.
    pub fn charge_slab(&self, cg: &str, bytes: u64) -> Result<()> {
        self.charge(cg, |n| n.slab = n.slab.saturating_add(bytes))
    }

    /// Change the charges of the live cgroup `cg` and write them out.
    fn charge(&self, cg: &str, f: impl FnOnce(&mut Node)) -> Result<()> {
        self.mutate(|inner| {
            let full = self
                .full(cg)
                .filter(|f| inner.nodes.contains_key(f))
                .ok_or_else(|| sys(FsOp::Write, self.abs(cg), Errno::ENOENT))?;
            f(inner.nodes.get_mut(&full).expect("checked"));
            self.flush_charges(inner, &full)
        })
    }

    /// (page cache, anon) bytes charged to a cgroup; None if it does not exist.
    pub fn charges(&self, cg: &str) -> Option<(u64, u64)> {
        let inner = self.lock();
        let n = inner.nodes.get(&self.full(cg)?)?;
        Some((n.cache, n.anon))
    }

    /// Whether kmem accounting is active in `cg`. 3.10: per cgroup (activated by the first
    /// limit write, inherited by new children). Newer kernels account kmem for every v1 memcg
    /// unless booted with `cgroup.memory=nokmem`.
    pub fn kmem_active(&self, cg: &str) -> bool {
        let inner = self.lock();
        let Some(node) = self.full(cg).and_then(|f| inner.nodes.get(&f)) else {
            return false;
        };
        if self.profile.is_3_10() {
            node.kmem
        } else {
            !cmdline_nokmem(&inner.state.cmdline)
        }
    }

    pub fn set_cmdline(&self, cmdline: &str) -> Result<()> {
        self.mutate(|inner| {
            inner.state.cmdline = cmdline.trim_end().to_string();
            self.persist(inner)
        })
    }

    pub fn set_boot_id(&self, id: &str) -> Result<()> {
        self.mutate(|inner| {
            inner.state.boot_id = id.trim().to_string();
            self.persist(inner)
        })
    }

    pub fn set_mode(&self, mode: CgroupMode) -> Result<()> {
        self.mutate(|inner| {
            inner.state.cgroup_mode = mode;
            self.persist(inner)
        })
    }
}

impl Host for EmulatedFs {
    fn kernel_release(&self) -> Result<String> {
        Ok(self.lock().state.kernel_release.clone())
    }

    fn proc_cgroups(&self) -> Result<String> {
        self.read_op(|inner| {
            let path = self.base.join(PROC_DIR).join("cgroups");
            self.match_fault(inner, FsOp::Read, &path)
                .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
            Ok(self.proc_cgroups_string(inner))
        })
    }

    fn kernel_cmdline(&self) -> Result<String> {
        Ok(format!("{}\n", self.lock().state.cmdline))
    }

    fn boot_id(&self) -> Result<String> {
        Ok(self.lock().state.boot_id.clone())
    }

    fn cgroup_mode(&self) -> Result<CgroupMode> {
        Ok(self.lock().state.cgroup_mode)
    }

    fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
        self.read_op(|inner| {
            let mut out = Vec::new();
            for pid in Self::leaders(inner) {
                if matches!(self.comm(inner, pid), Ok(c) if c == comm) {
                    out.push(pid);
                }
            }
            Ok(out)
        })
    }

    fn pid_alive(&self, pid: u32) -> bool {
        self.lock().proc_pids.contains(&pid)
    }

    fn slab_caches(&self) -> Result<Option<Vec<String>>> {
        crate::ids::slab::read_names(&self.base.join(SLAB_DIR))
    }

    fn drop_caches(&self, what: u8) -> Result<()> {
        self.mutate(|inner| {
            let path = self.base.join(PROC_DIR).join("sys/vm/drop_caches");
            // Not counted as a mutation of the hierarchy, but Match faults (op Write) apply.
            self.match_fault(inner, FsOp::Write, &path)
                .map_err(|f| fail_to_error(f, FsOp::Write, &path, Some(&what.to_string())))?;
            // drop_caches_sysctl_handler: 1..=4.
            if !(1..=4).contains(&what) {
                return Err(Error::Sys(
                    SysError::new(FsOp::Write, path, Errno::EINVAL).with_value(&what.to_string()),
                ));
            }
            if what & 1 == 1 {
                // Page cache dropped everywhere; memcgs pinned only by it are freed. Slab-pinned
                // (3.10 kmem) ones stay.
                let cached: Vec<String> = inner
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.cache > 0)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in cached {
                    inner.nodes.get_mut(&k).expect("listed").cache = 0;
                    self.flush_charges(inner, &k)?;
                }
                if inner.state.dying_cache > 0 {
                    inner.state.dying_cache = 0;
                    self.persist(inner)?;
                    self.flush_proc_cgroups(inner)?;
                }
            }
            Ok(())
        })
    }

    fn may_write(&self) -> bool {
        true
    }

    fn proc_swaps(&self) -> Result<String> {
        self.read_op(|inner| {
            let path = self.base.join(PROC_DIR).join("swaps");
            self.match_fault(inner, FsOp::Read, &path)
                .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
            Ok(Self::swaps_string(inner))
        })
    }

    fn meminfo(&self) -> Result<String> {
        Ok(Self::meminfo_string(&self.lock()))
    }

    fn swapoff(&self, area: &Path) -> Result<()> {
        self.mutate(|inner| {
            self.match_fault(inner, FsOp::Swapoff, area)
                .map_err(|f| fail_to_error(f, FsOp::Swapoff, area, None))?;
            let name = area.to_string_lossy();
            let Some(i) = inner
                .state
                .swaps
                .iter()
                .position(|a| a.active && a.path == name)
            else {
                return Err(sys(FsOp::Swapoff, area, Errno::EINVAL));
            };
            let a = &inner.state.swaps[i];
            let used = a.used_kib + a.dying * 4;
            // try_to_unuse reads every page back; without room (security_vm_enough_memory_mm)
            // swapoff fails with ENOMEM and the area stays in use.
            if used > inner.state.mem_available_kib {
                return Err(sys(FsOp::Swapoff, area, Errno::ENOMEM));
            }
            let a = &mut inner.state.swaps[i];
            a.active = false;
            // The pages of dying memcgs come back and are freed with the memcgs (their last
            // references): the ids are released. Live workloads' pages come back into memory.
            a.dying = 0;
            let used_live = std::mem::take(&mut a.used_kib);
            inner.state.mem_available_kib = inner.state.mem_available_kib.saturating_sub(used_live);
            self.persist(inner)?;
            self.flush_swaps(inner)?;
            self.flush_proc_cgroups(inner)
        })
    }

    fn swapon(&self, area: &Path, priority: Option<i32>) -> Result<()> {
        self.mutate(|inner| {
            self.match_fault(inner, FsOp::Swapon, area)
                .map_err(|f| fail_to_error(f, FsOp::Swapon, area, None))?;
            let name = area.to_string_lossy();
            let Some(a) = inner.state.swaps.iter_mut().find(|a| a.path == name) else {
                // not a swap area of this node (no swap signature)
                return Err(sys(FsOp::Swapon, area, Errno::EINVAL));
            };
            if a.active {
                return Err(sys(FsOp::Swapon, area, Errno::EBUSY));
            }
            a.active = true;
            // Without SWAP_FLAG_PREFER the kernel assigns the next negative priority.
            a.priority = priority.unwrap_or(-2);
            self.persist(inner)?;
            self.flush_swaps(inner)
        })
    }

    fn processes(&self) -> Result<Vec<crate::host::procs::ProcInfo>> {
        self.process_table()
    }

    fn fd_targets(&self, pid: u32) -> Result<Vec<String>> {
        Ok(self.fd_targets_of(pid))
    }

    fn host_file(&self, path: &str) -> Result<Option<String>> {
        self.host_file_of(path)
    }

    fn host_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        self.host_dir_of(path)
    }

    /// Emulated time: nothing sleeps; the runtime's processes react to what they were told.
    fn pass_time(&self, _: std::time::Duration) {
        self.settle_runtime();
    }
}
