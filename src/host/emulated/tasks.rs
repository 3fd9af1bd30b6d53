//! Processes and threads: spawning, exits, and moving tasks between cgroups (cgroup.procs and
//! tasks), with their charges when move_charge_at_immigrate says so.

use super::*;

impl EmulatedFs {
    /// Set the anon bytes of thread-group leader `tgid` (its hidden proc file follows).
    pub(super) fn set_proc_anon(&self, inner: &mut Inner, tgid: u32, v: u64) -> Result<()> {
        let Some(t) = inner.tasks.get_mut(&tgid) else {
            return Ok(());
        };
        let old = std::mem::replace(&mut t.anon, v);
        if old == v {
            return Ok(());
        }
        let p = self.proc_path(tgid).join(PROC_ANON_FILE);
        if v == 0 {
            self.queue_remove(inner, &p);
        } else {
            self.queue_write(inner, &p, format!("{v}\n"), txn::How::InPlace(None));
        }
        Ok(())
    }

    /// Command name of a process, from memory or its proc/<pid>/comm.
    pub(super) fn comm(&self, inner: &mut Inner, pid: u32) -> Result<String> {
        if let Some(c) = inner.comms.get(&pid) {
            return Ok(c.clone());
        }
        let c = read_file(&self.proc_path(pid).join("comm"))?;
        let c = c.trim_end_matches('\n').to_string();
        inner.comms.insert(pid, c.clone());
        Ok(c)
    }

    /// Start a new process (one thread) with command name `comm` in cgroup `cg`; its pid.
    pub fn spawn(&self, cg: &str, comm: &str) -> Result<u32> {
        self.mutate(|inner| {
            let full = self
                .full(cg)
                .filter(|f| inner.nodes.contains_key(f))
                .ok_or_else(|| sys(FsOp::Write, self.abs(cg).join(knob::PROCS), Errno::ENOENT))?;
            let pid = self.alloc_pid(inner)?;
            self.add_task(inner, pid, pid, &full, comm)?;
            inner
                .nodes
                .get_mut(&full)
                .expect("checked")
                .tids
                .insert(pid);
            self.flush_tasks(inner, &full)?;
            self.note_slab_user(inner, &full)?;
            Ok(pid)
        })
    }

    /// Start an extra thread of process `tgid` in cgroup `cg` (may differ from the leader's).
    pub fn spawn_thread(&self, tgid: u32, cg: &str) -> Result<u32> {
        self.mutate(|inner| {
            let full = self
                .full(cg)
                .filter(|f| inner.nodes.contains_key(f))
                .ok_or_else(|| sys(FsOp::Write, self.abs(cg).join(knob::TASKS), Errno::ENOENT))?;
            if inner.tasks.get(&tgid).is_none_or(|t| t.tgid != tgid) {
                return Err(sys(FsOp::Write, self.proc_path(tgid), Errno::ESRCH));
            }
            let comm = self.comm(inner, tgid)?;
            let tid = self.alloc_pid(inner)?;
            self.add_task(inner, tid, tgid, &full, comm.trim_end())?;
            inner
                .nodes
                .get_mut(&full)
                .expect("checked")
                .tids
                .insert(tid);
            self.flush_tasks(inner, &full)?;
            self.note_slab_user(inner, &full)?;
            Ok(tid)
        })
    }

    pub(super) fn alloc_pid(&self, inner: &mut Inner) -> Result<u32> {
        let mut pid = inner.state.next_pid;
        while inner.tasks.contains_key(&pid) || inner.proc_pids.contains(&pid) {
            pid += 1;
        }
        inner.state.next_pid = pid + 1;
        self.persist(inner)?;
        Ok(pid)
    }

    /// Make proc/<tid> (comm, status): built below the temp directory, renamed into place
    /// at commit.
    pub(super) fn make_proc_dir(
        &self,
        inner: &mut Inner,
        tid: u32,
        tgid: u32,
        comm: &str,
    ) -> Result<()> {
        let d = self.tmp_path(inner)?;
        std::fs::create_dir(&d).map_err(|e| Error::io("mkdir", &d, e))?;
        let comm_path = d.join("comm");
        create_at(None, &comm_path, format!("{comm}\n").as_bytes())
            .map_err(|e| Error::io("write", &comm_path, e))?;
        let status_path = d.join("status");
        let status =
            format!("Name:\t{comm}\nState:\tS (sleeping)\nTgid:\t{tgid}\nPid:\t{tid}\nPPid:\t1\n");
        create_at(None, &status_path, status.as_bytes())
            .map_err(|e| Error::io("write", &status_path, e))?;
        self.queue_rename(inner, &d, &self.proc_path(tid));
        inner.proc_pids.insert(tid);
        inner.comms.insert(tid, comm.to_string());
        Ok(())
    }

    /// A new task `tid` of thread group `tgid` in cgroup `full` (relative to the mount).
    fn add_task(
        &self,
        inner: &mut Inner,
        tid: u32,
        tgid: u32,
        full: &str,
        comm: &str,
    ) -> Result<()> {
        self.make_proc_dir(inner, tid, tgid, comm)?;
        let cg = full.to_string();
        inner.tasks.insert(tid, Task { tgid, cg, anon: 0 });
        inner.groups.entry(tgid).or_default().insert(tid);
        if let Some(n) = inner.nodes.get_mut(full) {
            n.tids.insert(tid);
        }
        Ok(())
    }

    /// A process exits: a thread-group leader takes all its threads with it, another thread
    /// exits alone. Its anon charges in its current cgroup are freed. No-op for unknown pids.
    pub fn exit(&self, pid: u32) {
        if let Err(e) = self.mutate(|inner| self.exit_locked(inner, pid)) {
            log::warn!("emulated exit of {pid}: {e}");
        }
    }

    pub(super) fn exit_locked(&self, inner: &mut Inner, pid: u32) -> Result<()> {
        let Some(task) = inner.tasks.get(&pid).cloned() else {
            return Ok(());
        };
        let tids: Vec<u32> = if task.tgid == pid {
            inner
                .groups
                .remove(&pid)
                .map(|s| s.into_iter().collect())
                .unwrap_or_else(|| vec![pid])
        } else {
            if let Some(g) = inner.groups.get_mut(&task.tgid) {
                g.remove(&pid);
            }
            vec![pid]
        };
        let mut touched = BTreeSet::new();
        let mut charge_touched = None;
        for tid in tids {
            let Some(t) = inner.tasks.remove(&tid) else {
                continue;
            };
            if let Some(n) = inner.nodes.get_mut(&t.cg) {
                n.tids.remove(&tid);
                if t.anon > 0 {
                    // Exit frees the process's anon pages: uncharged from its memcg.
                    n.anon = n.anon.saturating_sub(t.anon);
                    charge_touched = Some(t.cg.clone());
                }
            }
            touched.insert(t.cg);
            let d = self.proc_path(tid);
            inner.proc_pids.remove(&tid);
            inner.comms.remove(&tid);
            let files: &[&str] = if t.anon > 0 {
                &["comm", "status", PROC_ANON_FILE]
            } else {
                &["comm", "status"]
            };
            let files = files.iter().map(|f| f.to_string()).collect();
            self.queue_remove_dir(inner, &d, files);
        }
        for cg in &touched {
            self.flush_tasks(inner, cg)?;
        }
        if let Some(cg) = charge_touched {
            self.flush_charges(inner, &cg)?;
        }
        let before = (
            inner.state.fork_on_move.len(),
            inner.state.exit_on_move.len(),
        );
        inner.state.fork_on_move.retain(|(p, _)| *p != pid);
        inner.state.exit_on_move.retain(|p| *p != pid);
        if before
            != (
                inner.state.fork_on_move.len(),
                inner.state.exit_on_move.len(),
            )
        {
            self.persist(inner)?;
        }
        Ok(())
    }

    /// The cgroup (relative to root) of a process or thread; None if it does not exist (or
    /// sits outside root).
    pub fn cgroup_of(&self, pid: u32) -> Option<String> {
        let inner = self.lock();
        let t = inner.tasks.get(&pid)?;
        self.rel_to_root(&t.cg)
    }

    /// Charge `bytes` of anonymous memory of process `pid` to the cgroup of its leader.
    pub fn charge_process(&self, pid: u32, bytes: u64) -> Result<()> {
        self.mutate(|inner| {
            let Some(tgid) = inner.tasks.get(&pid).map(|t| t.tgid) else {
                return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
            };
            let leader = inner.tasks.get(&tgid).expect("leader of a live thread");
            let (cg, anon) = (leader.cg.clone(), leader.anon.saturating_add(bytes));
            if let Some(n) = inner.nodes.get_mut(&cg) {
                n.anon = n.anon.saturating_add(bytes);
            }
            self.set_proc_anon(inner, tgid, anon)?;
            self.flush_charges(inner, &cg)
        })
    }

    /// One-shot: the next time `pid` is moved through cgroup.procs, `children` new processes
    /// with its comm appear in the cgroup it left (forked during the move).
    pub fn fork_on_move(&self, pid: u32, children: u32) -> Result<()> {
        self.mutate(|inner| {
            if !inner.tasks.contains_key(&pid) {
                return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
            }
            inner.state.fork_on_move.retain(|(p, _)| *p != pid);
            inner.state.fork_on_move.push((pid, children));
            self.persist(inner)
        })
    }

    /// One-shot: moving `pid` (cgroup.procs or tasks) fails with ESRCH and the process is gone.
    pub fn exit_on_move(&self, pid: u32) -> Result<()> {
        self.mutate(|inner| {
            if !inner.tasks.contains_key(&pid) {
                return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
            }
            if !inner.state.exit_on_move.contains(&pid) {
                inner.state.exit_on_move.push(pid);
            }
            self.persist(inner)
        })
    }

    /// A write to cgroup.procs (`whole` group) or tasks (one thread).
    pub(super) fn move_pid(
        &self,
        inner: &mut Inner,
        dest: &str,
        v: &str,
        whole: bool,
    ) -> FResult<()> {
        let pid: u32 = v.parse().map_err(|_| Errno::EINVAL)?;
        let Some(task) = inner.tasks.get(&pid).cloned() else {
            return Err(Errno::ESRCH.into());
        };
        let tgid = task.tgid;
        self.exit_if_ruled(inner, if whole { tgid } else { pid }, pid)?;
        // cgroup.procs moves the whole thread group of the pid, wherever its threads are
        // (cgroup_procs_write: threadgroup, tsk->group_leader); tasks moves one thread.
        let tids: Vec<u32> = if whole {
            inner
                .groups
                .get(&tgid)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_else(|| vec![pid])
        } else {
            vec![pid]
        };
        let leader_from = inner.tasks.get(&tgid).map(|t| t.cg.clone());
        let touched = Self::move_tids(inner, &tids, dest);
        self.note_slab_user(inner, dest)?;
        if let (true, Some(from)) = (tids.contains(&tgid), leader_from.as_deref()) {
            self.move_charges(inner, tgid, from, dest)?;
        }
        for cg in &touched {
            self.flush_tasks(inner, cg)?;
        }
        if whole {
            self.fork_during_move(inner, tgid, leader_from.unwrap_or_default())?;
        }
        Ok(())
    }

    /// An exit_on_move rule for `rule_pid` or `pid`: the process exits, the move fails ESRCH.
    fn exit_if_ruled(&self, inner: &mut Inner, rule_pid: u32, pid: u32) -> FResult<()> {
        let Some(i) = inner
            .state
            .exit_on_move
            .iter()
            .position(|p| *p == rule_pid || *p == pid)
        else {
            return Ok(());
        };
        let who = inner.state.exit_on_move.remove(i);
        self.persist(inner)?;
        self.exit_locked(inner, who)?;
        Err(Errno::ESRCH.into())
    }

    /// Put the tasks `tids` in cgroup `dest` in the index; the cgroups whose task lists changed.
    fn move_tids(inner: &mut Inner, tids: &[u32], dest: &str) -> BTreeSet<String> {
        let mut touched = BTreeSet::new();
        touched.insert(dest.to_string());
        for tid in tids {
            let t = inner.tasks.get_mut(tid).expect("group member is a task");
            if t.cg == dest {
                continue;
            }
            let old = std::mem::replace(&mut t.cg, dest.to_string());
            if let Some(n) = inner.nodes.get_mut(&old) {
                n.tids.remove(tid);
            }
            inner
                .nodes
                .get_mut(dest)
                .expect("checked")
                .tids
                .insert(*tid);
            touched.insert(old);
        }
        touched
    }

    /// The leader `tgid` moved from `from` to `dest`: its anon charges follow when the
    /// destination's move_charge_at_immigrate has bit 0 (anon) set (mem_cgroup_can_attach:
    /// only for the mm owner). Otherwise they stay with the old memcg and no longer belong to
    /// the process's cgroup.
    fn move_charges(&self, inner: &mut Inner, tgid: u32, from: &str, dest: &str) -> Result<()> {
        let anon = inner.tasks[&tgid].anon;
        if from == dest || anon == 0 {
            return Ok(());
        }
        let mc = if self.has_file_full(inner, dest, knob::MOVE_CHARGE) {
            self.read_num(inner, dest, knob::MOVE_CHARGE)?
        } else {
            0
        };
        if mc & 1 == 1 {
            let f = inner.nodes.get_mut(from).expect("live");
            let moved = anon.min(f.anon);
            f.anon -= moved;
            inner.nodes.get_mut(dest).expect("checked").anon += moved;
            self.set_proc_anon(inner, tgid, moved)?;
        } else {
            self.set_proc_anon(inner, tgid, 0)?;
        }
        self.flush_charges(inner, from)?;
        self.flush_charges(inner, dest)
    }

    /// A fork_on_move rule for `tgid`: the children forked during the move stay in the cgroup
    /// `from` the parent left.
    fn fork_during_move(&self, inner: &mut Inner, tgid: u32, from: String) -> Result<()> {
        let Some(i) = inner
            .state
            .fork_on_move
            .iter()
            .position(|(p, _)| *p == tgid)
        else {
            return Ok(());
        };
        let (_, n) = inner.state.fork_on_move.remove(i);
        self.persist(inner)?;
        if !inner.nodes.contains_key(&from) {
            return Ok(());
        }
        let comm = self.comm(inner, tgid)?;
        for _ in 0..n {
            let child = self.alloc_pid(inner)?;
            self.add_task(inner, child, child, &from, comm.trim_end())?;
        }
        self.flush_tasks(inner, &from)
    }
}
