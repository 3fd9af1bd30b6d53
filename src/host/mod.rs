//! The boundary between cgleak's logic and the cgroup files.
//!
//! Everything that reads or changes a memory cgroup goes through [`Node`]. There are two
//! implementations: [`kernel::KernelFs`] (the kernel's cgroupfs, one write(2) per value, never
//! creating files) and [`emulated::EmulatedFs`] (a temp directory whose files hold the state and
//! that behaves like the kernel where cgleak depends on it, with kernel profiles and fault
//! injection). Paths given to the trait are relative to the `--root` directory, with `/`
//! separators; `""` is the root itself.

pub mod emulated;
pub mod kernel;
pub mod procs;
pub mod share;

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Control file names (Documentation/admin-guide/cgroup-v1/memory.rst).
pub mod knob {
    pub const PROCS: &str = "cgroup.procs";
    pub const TASKS: &str = "tasks";
    pub const LIMIT: &str = "memory.limit_in_bytes";
    pub const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
    pub const SOFT_LIMIT: &str = "memory.soft_limit_in_bytes";
    pub const SWAPPINESS: &str = "memory.swappiness";
    pub const OOM_CONTROL: &str = "memory.oom_control";
    pub const USE_HIERARCHY: &str = "memory.use_hierarchy";
    pub const MOVE_CHARGE: &str = "memory.move_charge_at_immigrate";
    pub const FORCE_EMPTY: &str = "memory.force_empty";
    pub const KMEM_LIMIT: &str = "memory.kmem.limit_in_bytes";
    pub const KMEM_SLABINFO: &str = "memory.kmem.slabinfo";
    pub const USAGE: &str = "memory.usage_in_bytes";
    pub const STAT: &str = "memory.stat";
}

/// How the machine mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only cgroup v1 hierarchies.
    V1,
    /// cgroup v1 controllers plus a cgroup2 mount without controllers (systemd's "hybrid").
    Hybrid,
    /// The unified hierarchy only.
    V2,
}

impl std::fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupMode::V1 => "v1",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::V2 => "v2",
        })
    }
}

/// One memory cgroup v1 hierarchy: its directories and control files.
///
/// `cg` arguments are paths relative to [`Hierarchy::root`]. Implementations never create control
/// files: a write to a file that does not exist fails with ENOENT.
pub trait Hierarchy: Send + Sync {
    /// The `--root` directory (absolute), for messages and the snapshot.
    fn root(&self) -> &Path;

    /// One line naming what this is ("kernel cgroupfs ..." or "emulated 3.10 node ...").
    fn describe(&self) -> String;

    /// True for the emulated cgroupfs.
    fn is_emulated(&self) -> bool {
        false
    }

    /// Whether the cgroup directory exists.
    fn exists(&self, cg: &str) -> bool;

    /// Names of the child cgroups of `cg`, sorted.
    fn children(&self, cg: &str) -> Result<Vec<String>>;

    /// Whether the control file exists in `cg` (e.g. memsw files exist only with swap accounting).
    fn has_file(&self, cg: &str, file: &str) -> bool;

    /// Read a whole control file.
    fn read(&self, cg: &str, file: &str) -> Result<String>;

    /// Read several control files of one cgroup: for each name, in order, what [`Hierarchy::read`]
    /// gives. The kernel's implementation resolves the cgroup's path once for all of them (a
    /// scan reads ten files in every cgroup).
    fn read_many(&self, cg: &str, files: &[&str]) -> Vec<Result<String>> {
        files.iter().map(|f| self.read(cg, f)).collect()
    }

    /// Write `value` to a control file with a single write(2). Never creates the file.
    fn write(&self, cg: &str, file: &str, value: &str) -> Result<()>;

    /// Create a cgroup (its parent must exist).
    fn mkdir(&self, cg: &str) -> Result<()>;

    /// Remove an empty cgroup (EBUSY while tasks or children remain).
    fn rmdir(&self, cg: &str) -> Result<()>;

    /// Rename a cgroup within the same parent (cgroup v1 allows nothing else).
    fn rename(&self, from: &str, to: &str) -> Result<()>;

    /// The mount point of the whole memory hierarchy `root` belongs to.
    fn hierarchy_mount(&self) -> PathBuf;

    /// Number of cgroup directories in the whole memory hierarchy, its root included (the live
    /// memcgs; dying ones have no directory).
    fn hierarchy_live(&self) -> Result<u64>;

    /// [`Hierarchy::hierarchy_live`] without the cgroup `cg` and the cgroups below it: for a
    /// caller that has just counted those in a scan, so they are not listed twice. The kernel's
    /// implementation does not walk that subtree; this default counts it and subtracts.
    fn hierarchy_live_except(&self, cg: &str) -> Result<u64> {
        let mut below = 0u64;
        let mut stack = if self.exists(cg) {
            vec![cg.to_string()]
        } else {
            Vec::new()
        };
        while let Some(c) = stack.pop() {
            below += 1;
            stack.extend(
                self.children(&c)?
                    .iter()
                    .map(|n| crate::model::path::join(&c, n)),
            );
        }
        Ok(self.hierarchy_live()?.saturating_sub(below))
    }

    /// Write 0 to memory.force_empty, giving the kernel at most `budget`: Ok(true) when it
    /// finished, Ok(false) when it was cut short (what it reclaimed so far stays reclaimed).
    ///
    /// Why a budget: the kernel loops while the cgroup's usage is above 0, and kernel memory
    /// charged there cannot be reclaimed, so it ends only after its retries, each followed by a
    /// 100 ms sleep (5 on 3.10, 16 on 4.x-5.x); its loop checks signal_pending() and returns
    /// EINTR, which is how the kernel implementation cuts it. Nothing depends on it finishing:
    /// rmdir works with charges left (docs/kernel-facts.md, "force_empty": it succeeds with kmem left).
    fn force_empty(&self, cg: &str, budget: std::time::Duration) -> Result<bool> {
        let _ = budget;
        self.write(cg, knob::FORCE_EMPTY, "0").map(|()| true)
    }
}

/// The machine around the hierarchy: the kernel release, /proc, processes, the boot id, swap
/// and the page cache. Apart from [`Hierarchy`] so that read-only code can be tested with a
/// small fake of each.
pub trait Host: Send + Sync {
    /// `uname -r` of the kernel this hierarchy belongs to.
    fn kernel_release(&self) -> Result<String>;

    /// Contents of /proc/cgroups.
    fn proc_cgroups(&self) -> Result<String>;

    /// Contents of /proc/cmdline.
    fn kernel_cmdline(&self) -> Result<String>;

    /// /proc/sys/kernel/random/boot_id: a repair journal is meaningless after a reboot.
    fn boot_id(&self) -> Result<String>;

    /// How the machine mounts cgroups.
    fn cgroup_mode(&self) -> Result<CgroupMode>;

    /// Pids of processes whose command name (/proc/PID/comm) equals `comm`.
    fn find_processes(&self, comm: &str) -> Result<Vec<u32>>;

    /// Whether a process or thread with this id exists and has not exited: a zombie or a task
    /// in exit counts as gone (it is in no cgroup any more).
    fn pid_alive(&self, pid: u32) -> bool;

    /// Write to /proc/sys/vm/drop_caches (1 = page cache, 2 = slab, 3 = both).
    fn drop_caches(&self, what: u8) -> Result<()>;

    /// Whether this process may change the hierarchy (root, or the emulation).
    fn may_write(&self) -> bool;

    /// Contents of /proc/swaps (the active swap areas).
    fn proc_swaps(&self) -> Result<String>;

    /// Contents of /proc/meminfo.
    fn meminfo(&self) -> Result<String>;

    /// swapoff(2): read every page of the area back into memory and stop using it. On failure
    /// (ENOMEM, EINTR) the kernel puts the area back in use (try_to_unuse failed).
    fn swapoff(&self, area: &Path) -> Result<()>;

    /// swapon(2) with a priority set by hand, or None for the kernel's own choice.
    fn swapon(&self, area: &Path, priority: Option<i32>) -> Result<()>;

    /// The entry names of /sys/kernel/slab (SLUB's caches; on 3.10 with a copy per kmem-active
    /// memcg, [`crate::ids::slab`]); None where the directory does not exist (SLAB).
    fn slab_caches(&self) -> Result<Option<Vec<String>>>;
    /// Every process (thread-group leader) with its parent, names and start time: what the
    /// container runtimes are recognised from (src/runtime).
    fn processes(&self) -> Result<Vec<procs::ProcInfo>>;

    /// The targets of the open fds of `pid` (`anon_inode:[eventfd]` for an eventfd); empty
    /// when the process is gone.
    fn fd_targets(&self, pid: u32) -> Result<Vec<String>>;

    /// A file of the machine outside /proc and the cgroupfs, read-only (the package database,
    /// /var/lib/dpkg/status, for the runtimes' versions); None when it does not exist.
    fn host_file(&self, path: &str) -> Result<Option<String>>;

    /// Let `d` pass (a sleep): the other processes of the node (a runtime's shims) get to run.
    fn pass_time(&self, d: std::time::Duration);

    /// The entry names of a directory of the machine outside /proc and the cgroupfs, sorted
    /// (kubelet's /var/log/pods, containerd's state directory, for pod and container names);
    /// None when it does not exist.
    fn host_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        let _ = path;
        Ok(None)
    }

    /// A file below /proc, `rel` relative to it (`stat`, `1234/status`, `1234/oom_score_adj`);
    /// None when it does not exist (the process has exited).
    fn proc_file(&self, rel: &str) -> Result<Option<String>> {
        let _ = rel;
        Ok(None)
    }
}

/// A node: its memory hierarchy and its host, for the commands that need both (a repair
/// checks processes and the boot id as it changes cgroups). Every type that is both is one.
pub trait Node: Hierarchy + Host {}

impl<T: Hierarchy + Host + ?Sized> Node for T {}

/// Parse a number written by a cgroup file.
pub fn parse_u64(path: &Path, what: &str, s: &str) -> Result<u64> {
    s.trim().parse::<u64>().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        what: what.to_string(),
        content: s.to_string(),
    })
}

/// Parse a list of pids (cgroup.procs, tasks).
pub fn parse_pids(path: &Path, s: &str) -> Result<Vec<u32>> {
    s.split_whitespace()
        .map(|t| {
            t.parse::<u32>().map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                what: "pid".to_string(),
                content: t.to_string(),
            })
        })
        .collect()
}

/// Read the pids of a cgroup's cgroup.procs.
pub fn read_procs(fs: &dyn Hierarchy, cg: &str) -> Result<Vec<u32>> {
    let s = fs.read(cg, knob::PROCS)?;
    parse_pids(&fs.root().join(cg).join(knob::PROCS), &s)
}

/// Read the thread ids of a cgroup's tasks file.
pub fn read_tasks(fs: &dyn Hierarchy, cg: &str) -> Result<Vec<u32>> {
    let s = fs.read(cg, knob::TASKS)?;
    parse_pids(&fs.root().join(cg).join(knob::TASKS), &s)
}

/// Read a numeric control file.
pub fn read_u64(fs: &dyn Hierarchy, cg: &str, file: &str) -> Result<u64> {
    let s = fs.read(cg, file)?;
    parse_u64(&fs.root().join(cg).join(file), file, &s)
}

/// `oom_kill_disable` from memory.oom_control (lines `oom_kill_disable N`, `under_oom N`, ...).
pub fn parse_oom_kill_disable(path: &Path, s: &str) -> Result<bool> {
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some("oom_kill_disable") {
            return match it.next() {
                Some("0") => Ok(false),
                Some("1") => Ok(true),
                _ => break,
            };
        }
    }
    Err(Error::Parse {
        path: path.to_path_buf(),
        what: "oom_kill_disable line".into(),
        content: s.to_string(),
    })
}

/// Parse the `memory` row of /proc/cgroups: (hierarchy id, num_cgroups, enabled).
pub fn parse_proc_cgroups_memory(s: &str) -> Option<(u32, u64, bool)> {
    for line in s.lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 && f[0] == "memory" {
            return Some((f[1].parse().ok()?, f[2].parse().ok()?, f[3] == "1"));
        }
    }
    None
}

/// Open the cgroupfs at `root`: the kernel's when `root` is on a cgroup filesystem, an
/// emulated node when `root` lies inside a directory made by [`emulated::EmulatedFs`].
pub fn open(root: &Path) -> Result<Box<dyn Node>> {
    if let Some(base) = emulated::find_base(root) {
        return Ok(Box::new(emulated::EmulatedFs::open_at(&base, root)?));
    }
    Ok(Box::new(kernel::KernelFs::open(root)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_control_parse() {
        let p = Path::new("x");
        assert!(
            !parse_oom_kill_disable(p, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n").unwrap()
        );
        assert!(parse_oom_kill_disable(p, "oom_kill_disable 1\nunder_oom 0\n").unwrap());
        assert!(parse_oom_kill_disable(p, "garbage").is_err());
    }

    #[test]
    fn proc_cgroups_parse() {
        let s =
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t4\t43\t1\n";
        assert_eq!(parse_proc_cgroups_memory(s), Some((4, 43, true)));
        assert_eq!(parse_proc_cgroups_memory("cpu 1 1 1\n"), None);
    }

    #[test]
    fn pids_parse() {
        assert_eq!(parse_pids(Path::new("x"), "1\n22\n").unwrap(), vec![1, 22]);
        assert!(parse_pids(Path::new("x"), "1\nabc\n").is_err());
    }
}
