//! Writes to memcg control files: one function per control file family, each with the rules
//! of the kernel function it cites.

use super::*;

impl EmulatedFs {
    /// A write to a control file of cgroup `full`, by the rules of its family.
    pub(super) fn do_write(
        &self,
        inner: &mut Inner,
        full: &str,
        file: &str,
        v: &str,
    ) -> FResult<()> {
        if !inner.nodes.contains_key(full) || file.starts_with("emulated.") || file.contains('/') {
            return Err(Errno::ENOENT.into());
        }
        match file {
            knob::PROCS => self.move_pid(inner, full, v, true),
            knob::TASKS => self.move_pid(inner, full, v, false),
            knob::LIMIT | knob::MEMSW_LIMIT => self.write_limit(inner, full, file, v),
            knob::SOFT_LIMIT => {
                let new = parse_limit(self.profile, v)?;
                Ok(self.write_num(inner, full, file, new)?)
            }
            knob::KMEM_LIMIT => self.write_kmem_limit(inner, full, file, v),
            knob::SWAPPINESS => self.write_swappiness(inner, full, file, v),
            knob::OOM_CONTROL => self.write_oom_control(inner, full, file, v),
            knob::USE_HIERARCHY => self.write_use_hierarchy(inner, full, file, v),
            knob::MOVE_CHARGE => {
                let val = parse_plain(v)?;
                // NR_MOVE_TYPE is 2 (anon, file): values 0..=3. Removed in 6.13.
                if val > 3 || (self.profile == KernelProfile::V6_13 && val != 0) {
                    return Err(Errno::EINVAL.into());
                }
                Ok(self.write_num(inner, full, file, val)?)
            }
            knob::FORCE_EMPTY => self.write_force_empty(inner, full),
            knob::USAGE | STAT | knob::KMEM_SLABINFO | "cgroup.sane_behavior" => {
                Err(Errno::EINVAL.into())
            }
            "cgroup.clone_children" | "notify_on_release" => {
                let val = parse_plain(v)?;
                if val > 1 {
                    return Err(Errno::EINVAL.into());
                }
                Ok(self.write_num(inner, full, file, val)?)
            }
            _ => {
                if !self.has_file_full(inner, full, file) {
                    return Err(Errno::ENOENT.into());
                }
                Ok(self.set_file(inner, full, file, format!("{v}\n"))?)
            }
        }
    }

    /// memory.limit_in_bytes and memory.memsw.limit_in_bytes.
    fn write_limit(&self, inner: &mut Inner, full: &str, file: &str, v: &str) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        // mem_cgroup_write / mem_cgroup_resize_max: "Can't set limit on root".
        if is_root {
            return Err(Errno::EINVAL.into());
        }
        let new = parse_limit(p, v)?;
        let memsw = file == knob::MEMSW_LIMIT;
        // memory.rst: memsw.limit_in_bytes must stay >= limit_in_bytes
        // (mem_cgroup_resize_max: limits_invariant, else EINVAL).
        if memsw {
            if new < self.read_num(inner, full, knob::LIMIT)? {
                return Err(Errno::EINVAL.into());
            }
        } else if self.has_file_full(inner, full, knob::MEMSW_LIMIT)
            && new > self.read_num(inner, full, knob::MEMSW_LIMIT)?
        {
            return Err(Errno::EINVAL.into());
        }
        // Usage above the new limit: the kernel reclaims (page cache only here), then
        // gives up with EBUSY (page_counter_set_max + try_to_free_mem_cgroup_pages).
        let node = inner.nodes.get_mut(full).expect("checked");
        if node.cache + node.anon > new {
            node.cache = new.saturating_sub(node.anon);
            let busy = node.anon > new;
            self.flush_charges(inner, full)?;
            if busy {
                return Err(Errno::EBUSY.into());
            }
        }
        Ok(self.write_num(inner, full, file, new)?)
    }

    /// memory.kmem.limit_in_bytes: 3.10 activates kmem accounting with it.
    fn write_kmem_limit(&self, inner: &mut Inner, full: &str, file: &str, v: &str) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        if is_root {
            return Err(Errno::EINVAL.into());
        }
        let new = parse_limit(p, v)?;
        match p {
            KernelProfile::V3_10 => {
                // memcg_update_kmem_limit: the first limit other than unlimited
                // activates kmem accounting (that is why runc writes 1 then -1); EBUSY
                // if tasks joined or (with use_hierarchy) children exist. Not with
                // cgroup.memory=nokmem (RHEL >= 3.10.0-1062).
                let activate = !inner.nodes[full].kmem
                    && new != UNLIMITED_3_10
                    && !cmdline_nokmem(&inner.state.cmdline);
                if activate {
                    let uh = self.read_num(inner, full, knob::USE_HIERARCHY)? == 1;
                    let node = &inner.nodes[full];
                    if !node.tids.is_empty() || (uh && !node.kids.is_empty()) {
                        return Err(Errno::EBUSY.into());
                    }
                    self.set_file(inner, full, KMEM_ACTIVE_FILE, "1\n".into())?;
                    self.set_file(inner, full, knob::KMEM_SLABINFO, SLABINFO_HEADER.into())?;
                    inner.nodes.get_mut(full).expect("checked").kmem = true;
                }
                Ok(self.write_num(inner, full, file, new)?)
            }
            // 5.10: stored, accounting is on anyway (warns from 5.4).
            KernelProfile::V5_10 => Ok(self.write_num(inner, full, file, new)?),
            // 6.1.55+ and 6.13: accepted and ignored (memcg1 kmem limit is a no-op).
            KernelProfile::V6_1 | KernelProfile::V6_13 => Ok(()),
        }
    }

    /// memory.swappiness.
    fn write_swappiness(&self, inner: &mut Inner, full: &str, file: &str, v: &str) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        let val = parse_plain(v)?;
        if val > 100 {
            return Err(Errno::EINVAL.into());
        }
        if p.is_3_10() {
            // 3.10 mem_cgroup_swappiness_write: not on the root (no parent), and
            // "if under hierarchy, only empty-root can set this value".
            if is_root
                || self.parent_uses_hierarchy(inner, full)?
                || !inner.nodes[full].kids.is_empty()
            {
                return Err(Errno::EINVAL.into());
            }
        }
        Ok(self.write_num(inner, full, file, val)?)
    }

    /// memory.oom_control (oom_kill_disable).
    fn write_oom_control(&self, inner: &mut Inner, full: &str, file: &str, v: &str) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        let val = parse_plain(v)?;
        // mem_cgroup_oom_control_write: not on the root, only 0 and 1.
        if is_root || val > 1 {
            return Err(Errno::EINVAL.into());
        }
        // 3.10: "oom-kill-disable is a flag for subhierarchy".
        if p.is_3_10()
            && (self.parent_uses_hierarchy(inner, full)? || !inner.nodes[full].kids.is_empty())
        {
            return Err(Errno::EINVAL.into());
        }
        Ok(self.set_file(inner, full, file, oom_control_content(p, val == 1))?)
    }

    /// memory.use_hierarchy.
    fn write_use_hierarchy(
        &self,
        inner: &mut Inner,
        full: &str,
        file: &str,
        v: &str,
    ) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        let val = parse_plain(v)?;
        if p.use_hierarchy_fixed() {
            // Deprecated ~5.11: always 1; writing 0 is refused.
            return if val == 1 {
                Ok(())
            } else {
                Err(Errno::EINVAL.into())
            };
        }
        // mem_cgroup_hierarchy_write (3.10, 5.10).
        if self.read_num(inner, full, file)? == val {
            return Ok(());
        }
        if (is_root || !self.parent_uses_hierarchy(inner, full)?) && val <= 1 {
            if !inner.nodes[full].kids.is_empty() {
                return Err(Errno::EBUSY.into());
            }
            Ok(self.write_num(inner, full, file, val)?)
        } else {
            Err(Errno::EINVAL.into())
        }
    }

    /// memory.force_empty: reclaim, and on 3.10 reparent the rest.
    fn write_force_empty(&self, inner: &mut Inner, full: &str) -> FResult<()> {
        let is_root = full.is_empty();
        let p = self.profile;
        // mem_cgroup_force_empty_write: not on the root.
        if is_root {
            return Err(Errno::EINVAL.into());
        }
        let node = inner.nodes.get(full).expect("checked");
        if p.is_3_10() {
            // 3.10 mem_cgroup_force_empty: EBUSY with tasks or children; after reclaim
            // the rest is reparented (mem_cgroup_reparent_charges).
            if !node.tids.is_empty() || !node.kids.is_empty() {
                return Err(Errno::EBUSY.into());
            }
            let anon = node.anon;
            let par = parent(full).to_string();
            inner.nodes.get_mut(full).expect("checked").anon = 0;
            if anon > 0 {
                inner.nodes.get_mut(&par).expect("parent of live").anon += anon;
                self.flush_charges(inner, &par)?;
            }
        }
        // Reclaims page cache; kmem (slab) charges stay.
        inner.nodes.get_mut(full).expect("checked").cache = 0;
        Ok(self.flush_charges(inner, full)?)
    }
}
