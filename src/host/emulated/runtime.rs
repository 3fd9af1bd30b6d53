//! The node's container runtime, emulated: what /proc shows of its processes (parent,
//! executable, command line, start time) and the eventfds its watchers registered on memcgs,
//! with the kernel's and the shim's reactions when such a memcg is removed.
//!
//! Kept in `base/emulated.runtime.json` (absent: no runtime facts; every process then has
//! parent 1 and no executable). Rules emulated (docs/runtimes.md):
//! - mm/memcontrol.c, mem_cgroup_css_offline -> memcg_event_remove: an eventfd registered
//!   through cgroup.event_control is signalled once when its memcg goes offline (rmdir) and
//!   dropped by the kernel: it never fires again, whatever happens to the path.
//! - containerd pkg/oom/v1 (the shim v2 epoller; runtime v1: the same code in the daemon): on
//!   the signal it asks whether the cgroup still exists (an lstat of its path). Missing: the
//!   cgroup is "deleted", the watch dropped and the fd closed. Present again: it publishes a
//!   TaskOOM (spurious) and keeps the fd, which the kernel no longer signals.
//! - The shim reacts a little later than the rmdir (another process, woken by epoll): here
//!   after `react_after` more mutations of the node, or at once when time passes
//!   ([`crate::host::Host::pass_time`]).

use super::*;
use crate::host::procs::{ProcInfo, EVENTFD_LINK};
use serde::{Deserialize, Serialize};

/// The runtime state file below the base.
pub const RUNTIME_FILE: &str = "emulated.runtime.json";

/// Directory below the base standing for the machine's other files (`host/var/lib/dpkg/status`).
pub const HOST_DIR: &str = "host";

/// Mutations after a memcg went offline before its watcher's owner reacts, by default.
pub const DEFAULT_REACT_AFTER: u32 = 3;

/// What /proc shows of a process besides comm and its cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcExtra {
    pub ppid: u32,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    pub start_time: u64,
}

/// An eventfd a runtime registered on a memcg (memory.oom_control through cgroup.event_control).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watcher {
    /// The process holding the eventfd (a shim v2, or containerd for runtime v1).
    pub pid: u32,
    pub fd: u32,
    /// The path the owner knows the cgroup by (relative to the mount): what it lstat()s.
    pub path: String,
    /// Where the memcg it is registered on is now (follows renames), None once removed.
    pub memcg: Option<String>,
    /// Mutations left before the owner reacts to the offline signal (Some: signalled).
    pub pending: Option<u32>,
}

/// What a watcher's owner did when the kernel signalled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShimReaction {
    /// The path was missing: cgroup "deleted", watch dropped, fd closed.
    Deleted,
    /// The path existed again: a spurious TaskOOM published.
    TaskOom,
}

/// One reaction, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimEvent {
    pub pid: u32,
    pub path: String,
    pub reaction: ShimReaction,
}

/// The whole runtime state of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub procs: BTreeMap<u32, ProcExtra>,
    pub watchers: Vec<Watcher>,
    pub events: Vec<ShimEvent>,
    pub react_after: u32,
    pub next_fd: u32,
}

impl Default for RuntimeState {
    fn default() -> Self {
        RuntimeState {
            procs: BTreeMap::new(),
            watchers: Vec::new(),
            events: Vec::new(),
            react_after: DEFAULT_REACT_AFTER,
            next_fd: 10,
        }
    }
}

/// The runtime state at `base` (default when the file is absent).
pub(super) fn load_runtime(base: &Path) -> Result<RuntimeState> {
    let p = base.join(RUNTIME_FILE);
    match std::fs::read(&p) {
        Ok(raw) => serde_json::from_slice(&raw).map_err(|e| Error::Parse {
            path: p.clone(),
            what: format!("emulated runtime state ({e})"),
            content: String::from_utf8_lossy(&raw).into_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RuntimeState::default()),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

impl EmulatedFs {
    /// Queue the runtime file's new content when the state changed.
    pub(super) fn persist_runtime(&self, inner: &mut Inner) {
        let json = serde_json::to_vec_pretty(&inner.runtime).expect("runtime state serializes");
        if json != inner.runtime_json {
            let content = String::from_utf8(json.clone()).expect("json is utf-8");
            let p = self.base.join(RUNTIME_FILE);
            self.queue_write(inner, &p, content, txn::How::Replace);
            inner.runtime_json = json;
        }
    }

    /// rmdir of `full`: the kernel signals the eventfds registered on that memcg, once.
    pub(super) fn runtime_offline(&self, inner: &mut Inner, full: &str) {
        let after = inner.runtime.react_after;
        let mut changed = false;
        for w in inner.runtime.watchers.iter_mut() {
            if w.memcg.as_deref() == Some(full) {
                w.memcg = None;
                w.pending = Some(after);
                changed = true;
            }
        }
        if changed {
            self.persist_runtime(inner);
        }
    }

    /// rename: the memcgs below `from` are now below `to`; their watchers follow.
    pub(super) fn runtime_renamed(&self, inner: &mut Inner, from: &str, to: &str) {
        let mut changed = false;
        for w in inner.runtime.watchers.iter_mut() {
            if let Some(m) = &w.memcg {
                if m == from || m.starts_with(&format!("{from}/")) {
                    w.memcg = Some(crate::model::path::rebase(m, from, to));
                    changed = true;
                }
            }
        }
        if changed {
            self.persist_runtime(inner);
        }
    }

    /// One mutation passed: owners whose wait is over react, as the shim does.
    pub(super) fn runtime_tick(&self, inner: &mut Inner, all: bool) {
        if inner.runtime.watchers.iter().all(|w| w.pending.is_none()) {
            return;
        }
        let mut events = Vec::new();
        let mut keep = Vec::new();
        for mut w in std::mem::take(&mut inner.runtime.watchers) {
            match w.pending {
                Some(n) if n > 0 && !all => {
                    w.pending = Some(n - 1);
                    keep.push(w);
                }
                Some(_) => {
                    let present = inner.nodes.contains_key(&w.path);
                    let reaction = if present {
                        ShimReaction::TaskOom
                    } else {
                        ShimReaction::Deleted
                    };
                    events.push(ShimEvent {
                        pid: w.pid,
                        path: w.path.clone(),
                        reaction,
                    });
                    if present {
                        // The fd stays open; the kernel dropped the event, nothing signals it.
                        w.pending = None;
                        keep.push(w);
                    }
                }
                None => keep.push(w),
            }
        }
        inner.runtime.watchers = keep;
        inner.runtime.events.extend(events);
        self.persist_runtime(inner);
    }

    /// Start a process in `cg` as a child of `ppid`, with its executable and arguments.
    pub fn spawn_process(
        &self,
        cg: &str,
        ppid: u32,
        comm: &str,
        exe: Option<&str>,
        cmdline: &[&str],
    ) -> Result<u32> {
        // comm is what the kernel keeps: 15 bytes (TASK_COMM_LEN - 1).
        let short: String = comm.chars().take(15).collect();
        let pid = self.spawn(cg, &short)?;
        self.mutate(|inner| {
            let start_time = 1000 + u64::from(pid);
            inner.runtime.procs.insert(
                pid,
                ProcExtra {
                    ppid,
                    exe: exe.map(str::to_string),
                    cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
                    start_time,
                },
            );
            self.persist_runtime(inner);
            Ok::<_, Error>(pid)
        })
    }

    /// Make `pid` a child of `ppid` (a container process under its shim).
    pub fn set_parent(&self, pid: u32, ppid: u32) -> Result<()> {
        self.mutate(|inner| {
            let comm = self.comm(inner, pid)?;
            let e = inner.runtime.procs.entry(pid).or_insert_with(|| ProcExtra {
                ppid,
                exe: None,
                cmdline: vec![comm],
                start_time: 1000 + u64::from(pid),
            });
            e.ppid = ppid;
            self.persist_runtime(inner);
            Ok(())
        })
    }

    /// `pid` registers an eventfd on the memcg `cg` (relative to root); the fd number.
    pub fn register_watcher(&self, pid: u32, cg: &str) -> Result<u32> {
        self.mutate(|inner| {
            let full = self
                .full(cg)
                .filter(|f| inner.nodes.contains_key(f))
                .ok_or_else(|| {
                    sys(
                        FsOp::Write,
                        self.abs(cg).join("cgroup.event_control"),
                        Errno::ENOENT,
                    )
                })?;
            let fd = inner.runtime.next_fd;
            inner.runtime.next_fd += 1;
            inner.runtime.watchers.push(Watcher {
                pid,
                fd,
                path: full.clone(),
                memcg: Some(full),
                pending: None,
            });
            self.persist_runtime(inner);
            Ok(fd)
        })
    }

    /// How many mutations a watcher's owner takes to react to an offline memcg.
    pub fn set_react_after(&self, n: u32) -> Result<()> {
        self.mutate(|inner| {
            inner.runtime.react_after = n;
            self.persist_runtime(inner);
            Ok(())
        })
    }

    /// The owners' reactions so far, in order.
    pub fn shim_events(&self) -> Vec<ShimEvent> {
        self.lock().runtime.events.clone()
    }

    /// The watchers as they are (registered, signalled, or dead after a spurious TaskOOM).
    pub fn watchers(&self) -> Vec<Watcher> {
        self.lock().runtime.watchers.clone()
    }

    /// Restart the container in `cg` the way a runtime does: its processes exit, a new one
    /// starts under `shim`, and the watcher of the old one is replaced by one on the memcg
    /// now at `cg`. Returns the new pid.
    pub fn restart_container(&self, cg: &str, shim: u32, comm: &str) -> Result<u32> {
        let pids = crate::host::read_procs(self, cg)?;
        for p in pids {
            self.exit(p);
        }
        let full = self.full(cg).unwrap_or_default();
        self.mutate(|inner| {
            inner
                .runtime
                .watchers
                .retain(|w| !(w.pid == shim && w.path == full));
            self.persist_runtime(inner);
            Ok::<_, Error>(())
        })?;
        let pid = self.spawn_process(cg, shim, comm, None, &[comm])?;
        self.register_watcher(shim, cg)?;
        Ok(pid)
    }

    /// Write a file of the machine outside cgroupfs and /proc (`path` absolute, as on the node).
    pub fn set_host_file(&self, path: &str, content: &str) -> Result<()> {
        let p = self.base.join(HOST_DIR).join(path.trim_start_matches('/'));
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io("mkdir", d, e))?;
        }
        std::fs::write(&p, content).map_err(|e| Error::io("write", &p, e))
    }

    /// The pids /proc lists: thread-group leaders only (and stray entries of no task).
    pub(super) fn leaders(inner: &Inner) -> Vec<u32> {
        inner
            .proc_pids
            .iter()
            .copied()
            .filter(|pid| inner.tasks.get(pid).is_none_or(|t| t.tgid == *pid))
            .collect()
    }

    pub(super) fn process_table(&self) -> Result<Vec<ProcInfo>> {
        self.read_op(|inner| {
            let mut out = Vec::new();
            for pid in Self::leaders(inner) {
                let Ok(comm) = self.comm(inner, pid) else {
                    continue;
                };
                let extra = inner.runtime.procs.get(&pid);
                out.push(ProcInfo {
                    pid,
                    ppid: extra.map_or(1, |e| e.ppid),
                    exe: extra.and_then(|e| e.exe.clone()),
                    cmdline: extra.map_or_else(|| vec![comm.clone()], |e| e.cmdline.clone()),
                    start_time: extra.map_or(1000 + u64::from(pid), |e| e.start_time),
                    comm,
                });
            }
            Ok(out)
        })
    }

    pub(super) fn fd_targets_of(&self, pid: u32) -> Vec<String> {
        let inner = self.lock();
        if !inner.proc_pids.contains(&pid) {
            return Vec::new();
        }
        let mut t: Vec<String> = ["/dev/null", "/dev/null", "/dev/null"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        t.extend(
            inner
                .runtime
                .watchers
                .iter()
                .filter(|w| w.pid == pid)
                .map(|_| EVENTFD_LINK.to_string()),
        );
        t
    }

    pub(super) fn host_file_of(&self, path: &str) -> Result<Option<String>> {
        let p = self.base.join(HOST_DIR).join(path.trim_start_matches('/'));
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    pub(super) fn host_dir_of(&self, path: &str) -> Result<Option<Vec<String>>> {
        let p = self.base.join(HOST_DIR).join(path.trim_start_matches('/'));
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read_dir", &p, e)),
        };
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read_dir", &p, e))?;
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }

    /// Time passes: every signalled owner reacts now.
    pub(super) fn settle_runtime(&self) {
        let r = self.mutate(|inner| {
            self.runtime_tick(inner, true);
            Ok::<_, Error>(())
        });
        if let Err(e) = r {
            log::warn!("emulated node {}: {e}", self.base.display());
        }
    }
}
