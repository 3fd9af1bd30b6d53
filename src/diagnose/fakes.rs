//! Test fakes for the read-only commands (diagnose, reclaim): one per half of the boundary.
//!
//! [`MemHierarchy`] is a memory hierarchy in memory (cgroup path -> control files) whose changes
//! fail with EROFS and are recorded, so a test can prove nothing was attempted; [`FakeHost`]
//! answers the release, /proc/cgroups, the command line and the process list, and refuses (and
//! records) everything that would change the machine.

use crate::error::{Error, FsOp, Result, SysError};
use crate::host::{self, CgroupMode, Hierarchy, Host};
use nix::errno::Errno;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An unlimited limit as the kernel prints it (PAGE_COUNTER_MAX pages of 4 KiB).
pub const UNL: &str = "9223372036854771712";

pub fn sys(op: FsOp, path: &Path, errno: Errno) -> Error {
    Error::Sys(SysError::new(op, path, errno))
}

/// A read-only memory hierarchy in memory. A file holding `!EIO` reads with EIO (3.10's
/// memory.kmem.slabinfo without kmem).
pub struct MemHierarchy {
    pub root: PathBuf,
    pub dirs: BTreeMap<String, BTreeMap<String, String>>,
    /// Live cgroups elsewhere in the hierarchy (system.slice ...), beyond `dirs`.
    pub extra_live: u64,
    pub live_readable: bool,
    /// Every change attempted ("write cg/file", "mkdir cg", ...): diagnose must leave it empty.
    pub attempts: Mutex<Vec<String>>,
}

impl MemHierarchy {
    /// The root cgroup alone.
    pub fn new() -> MemHierarchy {
        let mut h = MemHierarchy {
            root: PathBuf::from("/sys/fs/cgroup/memory"),
            dirs: BTreeMap::new(),
            extra_live: 0,
            live_readable: true,
            attempts: Mutex::new(vec![]),
        };
        h.add("", &[], false);
        h
    }

    /// Add a cgroup with the files a v1 memcg has; `kmem` makes slabinfo readable.
    pub fn add(&mut self, cg: &str, pids: &[u32], kmem: bool) {
        let mut f = BTreeMap::new();
        for (k, v) in [
            (host::knob::LIMIT, UNL),
            (host::knob::SOFT_LIMIT, UNL),
            (host::knob::SWAPPINESS, "60"),
            (host::knob::OOM_CONTROL, "oom_kill_disable 0\nunder_oom 0\n"),
            (host::knob::USE_HIERARCHY, "1"),
            (host::knob::MOVE_CHARGE, "0"),
            (host::knob::KMEM_LIMIT, UNL),
            (host::knob::USAGE, "4096"),
        ] {
            f.insert(k.to_string(), v.to_string());
        }
        let procs: Vec<String> = pids.iter().map(|p| format!("{p}\n")).collect();
        f.insert(host::knob::PROCS.to_string(), procs.concat());
        let slab = if kmem {
            "slabinfo - version: 2.1\n"
        } else {
            "!EIO"
        };
        f.insert(host::knob::KMEM_SLABINFO.to_string(), slab.to_string());
        self.dirs.insert(cg.to_string(), f);
    }

    pub fn set(&mut self, cg: &str, file: &str, v: &str) {
        let dir = self.dirs.get_mut(cg).expect("cgroup added first");
        dir.insert(file.to_string(), v.to_string());
    }

    fn refuse(&self, what: String) -> Result<()> {
        let path = self.root.join(what.split(' ').nth(1).unwrap_or_default());
        self.attempts.lock().unwrap().push(what);
        Err(sys(FsOp::Write, &path, Errno::EROFS))
    }
}

impl Hierarchy for MemHierarchy {
    fn root(&self) -> &Path {
        &self.root
    }
    fn describe(&self) -> String {
        "in-memory hierarchy".into()
    }
    fn exists(&self, cg: &str) -> bool {
        self.dirs.contains_key(cg)
    }
    fn children(&self, cg: &str) -> Result<Vec<String>> {
        if !self.exists(cg) {
            return Err(sys(FsOp::List, &self.root.join(cg), Errno::ENOENT));
        }
        Ok(self
            .dirs
            .keys()
            .filter(|k| !k.is_empty() && crate::model::path::parent(k) == cg)
            .map(|k| crate::model::path::base_name(k).to_string())
            .collect())
    }
    fn has_file(&self, cg: &str, file: &str) -> bool {
        self.dirs.get(cg).is_some_and(|d| d.contains_key(file))
    }
    fn read(&self, cg: &str, file: &str) -> Result<String> {
        let path = self.root.join(cg).join(file);
        match self.dirs.get(cg).and_then(|d| d.get(file)) {
            Some(v) if v == "!EIO" => Err(sys(FsOp::Read, &path, Errno::EIO)),
            Some(v) => Ok(v.clone()),
            None => Err(sys(FsOp::Read, &path, Errno::ENOENT)),
        }
    }
    fn write(&self, cg: &str, file: &str, _: &str) -> Result<()> {
        self.refuse(format!("write {cg}/{file}"))
    }
    fn mkdir(&self, cg: &str) -> Result<()> {
        self.refuse(format!("mkdir {cg}"))
    }
    fn rmdir(&self, cg: &str) -> Result<()> {
        self.refuse(format!("rmdir {cg}"))
    }
    fn rename(&self, from: &str, _: &str) -> Result<()> {
        self.refuse(format!("rename {from}"))
    }
    fn hierarchy_mount(&self) -> PathBuf {
        self.root.clone()
    }
    fn hierarchy_live(&self) -> Result<u64> {
        if !self.live_readable {
            return Err(sys(FsOp::List, &self.root, Errno::EACCES));
        }
        Ok(self.dirs.len() as u64 + self.extra_live)
    }
}

/// The machine around a fake hierarchy: what diagnose reads of it.
pub struct FakeHost {
    pub release: String,
    pub cmdline: String,
    pub proc_cgroups: Option<String>,
    pub kubelet: Vec<u32>,
    /// /sys/kernel/slab's entries; None: no such directory (SLAB).
    pub slab: Option<Vec<String>>,
    /// The process table the runtime detection reads.
    pub processes: Vec<crate::host::procs::ProcInfo>,
    /// Files of the machine outside /proc and the cgroupfs (absolute path -> content); a
    /// directory is listed from the paths below it (the memory doctor's /var/log/pods).
    pub files: BTreeMap<String, String>,
    /// Files below /proc, relative to it (`1234/status`).
    pub proc: BTreeMap<String, String>,
    /// Every change attempted (drop_caches, swapoff, swapon).
    pub attempts: Mutex<Vec<String>>,
}

impl FakeHost {
    pub fn new(release: &str) -> FakeHost {
        FakeHost {
            release: release.to_string(),
            cmdline: "ro quiet".to_string(),
            proc_cgroups: None,
            kubelet: vec![],
            slab: None,
            processes: vec![],
            files: BTreeMap::new(),
            proc: BTreeMap::new(),
            attempts: Mutex::new(vec![]),
        }
    }

    /// A host file at `path` (its directories exist by implication).
    pub fn file(&mut self, path: &str, content: &str) {
        self.files.insert(path.to_string(), content.to_string());
    }

    /// /proc/cgroups with this num_cgroups in the memory row.
    pub fn counted(&mut self, n: u64) {
        self.proc_cgroups = Some(proc_cgroups(n));
    }

    fn refuse(&self, what: String) -> Result<()> {
        self.attempts.lock().unwrap().push(what);
        Err(sys(FsOp::Write, Path::new("/proc"), Errno::EROFS))
    }
}

/// /proc/cgroups with this num_cgroups in the memory row.
pub fn proc_cgroups(n: u64) -> String {
    format!("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t9\t1\nmemory\t4\t{n}\t1\n")
}

impl Host for FakeHost {
    fn kernel_release(&self) -> Result<String> {
        Ok(format!("{}\n", self.release))
    }
    fn proc_cgroups(&self) -> Result<String> {
        self.proc_cgroups
            .clone()
            .ok_or_else(|| sys(FsOp::Read, Path::new("/proc/cgroups"), Errno::ENOENT))
    }
    fn kernel_cmdline(&self) -> Result<String> {
        Ok(self.cmdline.clone())
    }
    fn boot_id(&self) -> Result<String> {
        Ok("b".into())
    }
    fn cgroup_mode(&self) -> Result<CgroupMode> {
        Ok(CgroupMode::V1)
    }
    fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
        Ok(if comm == "kubelet" {
            self.kubelet.clone()
        } else {
            vec![]
        })
    }
    fn pid_alive(&self, _: u32) -> bool {
        false
    }
    fn drop_caches(&self, what: u8) -> Result<()> {
        self.refuse(format!("drop_caches {what}"))
    }
    fn may_write(&self) -> bool {
        false
    }
    fn proc_swaps(&self) -> Result<String> {
        Ok("Filename\tType\tSize\tUsed\tPriority\n".into())
    }
    fn meminfo(&self) -> Result<String> {
        Ok("MemTotal: 4000000 kB\nMemAvailable: 3000000 kB\n".into())
    }
    fn swapoff(&self, p: &Path) -> Result<()> {
        self.refuse(format!("swapoff {}", p.display()))
    }
    fn swapon(&self, p: &Path, _: Option<i32>) -> Result<()> {
        self.refuse(format!("swapon {}", p.display()))
    }
    fn slab_caches(&self) -> Result<Option<Vec<String>>> {
        Ok(self.slab.clone())
    }
    fn processes(&self) -> Result<Vec<crate::host::procs::ProcInfo>> {
        Ok(self.processes.clone())
    }
    fn fd_targets(&self, _: u32) -> Result<Vec<String>> {
        Ok(vec![])
    }
    fn host_file(&self, path: &str) -> Result<Option<String>> {
        Ok(self.files.get(path).cloned())
    }
    fn pass_time(&self, _: std::time::Duration) {}
    fn host_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let names: std::collections::BTreeSet<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        Ok((!names.is_empty()).then(|| names.into_iter().collect()))
    }
    fn proc_file(&self, rel: &str) -> Result<Option<String>> {
        Ok(self.proc.get(rel).cloned())
    }
}
