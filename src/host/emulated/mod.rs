//! An emulated memory cgroup v1 node in an ordinary directory, for tests, the demo and
//! benchmarks. The files hold the state, so a person can `ls` and `cat` it:
//!
//! ```text
//! base/cgleak-emulated.json     what a real cgroupfs has no file for (profile, kernel release,
//!                               cmdline, boot id, dying memcg counts, next pid, faults, rules)
//! base/memory/                  the hierarchy mount (root cgroup); each cgroup directory holds
//!                               its control files as regular files, plus hidden per-cgroup
//!                               state in `emulated.*` files (kmem active, charged bytes)
//! base/proc/cgroups             like /proc/cgroups
//! base/emulated.blobs/          read-only files named after their content: a new cgroup's
//!                               control files are hard links to them until first written
//! base/proc/<pid>/{comm,status} one directory per process or thread (status has `Tgid:`)
//! base/emulated.runtime.json  the container runtime's processes (parent, exe, cmdline) and
//!                               the eventfds it registered on memcgs (see `runtime.rs`)
//! base/host/                    the machine's other files the runtime detection reads (dpkg)
//! base/emulated.lock           flock(2) serialising operations across processes; holds the
//!                               node's generation and the intent of a commit under way
//! base/emulated.tmp/            directories being built, or just removed, around a rename
//! ```
//!
//! An instance keeps an in-memory index (cgroups, their tasks and charges; tid -> tgid and
//! cgroup) built at open, and writes through only the files an operation changes, so a
//! mutation costs a constant number of small file writes and never rescans the tree. Each
//! operation is atomic like the kernel's, against SIGKILL too, and several processes may work
//! on one node: an instance reloads its index when another changed the node (see `txn.rs`).
//!
//! Where things are: `profile` (the kernels), `hierarchy` (the [`Hierarchy`] side),
//! `knobs` (control file writes), `dirs` (mkdir, rmdir, rename), `tasks` (processes and
//! task moves), `host` (the [`Host`] side), `faults` (fault injection), `txn` (atomicity
//! and the lock), `state` (the state file), `load` (the index from disk), `files` (file
//! primitives), `node_copy` (where nodes live, copies).
//!
//! The kernel rules emulated are those of docs/kernel-facts.md and of the mm/memcontrol.c
//! (3.10: also kernel/res_counter.c) functions cited next to each rule. Four kernel profiles
//! differ where cgleak depends on it: 3.10 (RHEL 7), 5.10, 6.1 and 6.13.

use crate::error::{BadRoot, Error, FsOp, Result, SysError};
use crate::host::{knob, parse_oom_kill_disable, CgroupMode, Hierarchy, Host};
use crate::model::kernel::cmdline_nokmem;
use crate::model::path::{join, parent};
use crate::model::PAGE_SIZE;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

mod dirs;
mod faults;
mod files;
mod hierarchy;
mod host;
mod knobs;
mod load;
mod node_copy;
mod profile;
mod runtime;
mod slab;
mod state;
mod tasks;
mod txn;

pub use faults::{Fault, FaultWhen, FAULTS_HELP};
use node_copy::ensure_empty;
pub use node_copy::{clone_node, copy_node, find_base, tempdir};
pub use profile::KernelProfile;
pub use runtime::{ShimEvent, ShimReaction, Watcher, HOST_DIR, RUNTIME_FILE};
pub use slab::{KMEM_ID_FILE, SLAB_DIR};
pub use txn::{LOCK_FILE, TMP_DIR};

use files::*;
use load::load_tree;
use profile::*;
use state::*;

/// Name of the state file at the base of an emulated node; its presence marks the directory.
pub const STATE_FILE: &str = "cgleak-emulated.json";

/// The memcg id space: live and dying memcgs, the root included, share it.
pub use crate::model::kernel::MEM_CGROUP_ID_MAX;

/// Directory of the memory hierarchy mount below the base.
pub const MEMORY_DIR: &str = "memory";

/// Directory of the emulated /proc below the base.
pub const PROC_DIR: &str = "proc";

/// Directory below the base of read-only files named after their content: the control files
/// of a new cgroup are hard links to them (a link costs a third of a new file, to make and to
/// remove), and a write replaces a linked file by a file of its own instead of writing into
/// the shared inode.
pub const BLOB_DIR: &str = "emulated.blobs";

/// Hidden per-cgroup file: present when kmem accounting is active (3.10).
pub const KMEM_ACTIVE_FILE: &str = "emulated.kmem_active";

/// Hidden per-cgroup file: page cache bytes charged to the cgroup (absent = 0).
pub const CACHE_FILE: &str = "emulated.cache_bytes";

/// Hidden per-cgroup file: process (anon) bytes charged to the cgroup (absent = 0).
pub const ANON_FILE: &str = "emulated.anon_bytes";

/// Hidden per-cgroup file: kernel memory (slab) bytes charged to the cgroup, which reclaim
/// cannot free (absent = 0).
pub const SLAB_FILE: &str = "emulated.slab_bytes";

/// Hidden per-process file in `proc/<pid>/`: anon bytes of the process charged to its cgroup.
pub const PROC_ANON_FILE: &str = "emulated.anon_bytes";

pub(super) const STAT: &str = knob::STAT;

pub(super) const FIRST_PID: u32 = 1000;

/// One live cgroup in the index.
#[derive(Debug, Default, Clone)]
pub(super) struct Node {
    /// Thread ids in the cgroup (its `tasks` file).
    tids: BTreeSet<u32>,
    /// Names of the child cgroups.
    kids: BTreeSet<String>,
    /// Page cache charged to this cgroup.
    cache: u64,
    /// Process (anon) memory charged to this cgroup, whoever charged it.
    anon: u64,
    /// Kernel memory (slab objects) charged to this cgroup: no reclaim frees it.
    slab: u64,
    /// 3.10: kmem accounting active (memcg_kmem_is_active).
    kmem: bool,
    /// 3.10: the kmem id of its slab cache copies, 0 while it has none ([`slab`]).
    kmem_id: u64,
    /// The regular files of the cgroup directory on disk (control files and hidden state),
    /// with their content as last read or written by this instance (None: not read yet).
    files: BTreeMap<String, Option<String>>,
    /// Files known to be this directory's own inodes. The others may be hard links to a blob
    /// (see [`BLOB_DIR`]), so they are replaced, not written in place.
    private: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Task {
    tgid: u32,
    /// Cgroup path relative to the mount.
    cg: String,
    /// Leaders only: anon bytes of this process charged to the cgroup it is in.
    anon: u64,
}

pub(super) struct Inner {
    state: State,
    /// Serialized state as last written, to rewrite the file only when it changes.
    state_json: Vec<u8>,
    /// Live cgroups by path relative to the mount ("" = root).
    nodes: BTreeMap<String, Node>,
    /// tid -> task.
    tasks: HashMap<u32, Task>,
    /// tgid -> tids of the thread group (leader included).
    groups: HashMap<u32, BTreeSet<u32>>,
    /// Numeric entries of the proc directory (processes and threads, live or stray).
    proc_pids: BTreeSet<u32>,
    /// Command names (proc/<pid>/comm) as read or written.
    comms: HashMap<u32, String>,
    /// proc/cgroups as last written by this instance.
    proc_cgroups_disk: Option<String>,
    /// base/emulated.blobs, opened at the first mkdir.
    blob_dir: Option<OwnedFd>,
    /// Blobs this instance made or linked (known to exist): each one's generation last linked
    /// (see [`files::link_to_blob`]).
    blobs: HashMap<String, u32>,
    mutations: u64,
    /// The node's generation this index is in step with (see [`txn`]).
    generation: u64,
    /// File changes of the operation under way, committed as one transaction.
    pending: Vec<txn::Effect>,
    /// Index in `pending` of the write queued for a path (relative to the base).
    pending_writes: HashMap<String, usize>,
    /// Directories removed by the operation under way, to empty after its commit.
    trash: Vec<txn::Trash>,
    /// Whether base/emulated.tmp is known to exist, and the last name made in it.
    tmp_ready: bool,
    tmp_seq: u64,
    /// The container runtime's processes and watchers (see `runtime.rs`).
    runtime: runtime::RuntimeState,
    /// Its file's content as last read or written.
    runtime_json: Vec<u8>,
}

impl Inner {
    /// The index of the node at `base` as its files are now.
    fn load(base: &Path, mount: &Path) -> Result<Inner> {
        let sp = base.join(STATE_FILE);
        let raw = std::fs::read(&sp).map_err(|e| Error::io("read", &sp, e))?;
        let state: State = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
            path: sp.clone(),
            what: format!("emulated node state ({e})"),
            content: String::from_utf8_lossy(&raw).into_owned(),
        })?;
        let mut inner = Inner {
            state_json: serde_json::to_vec_pretty(&state).expect("state serializes"),
            state,
            nodes: BTreeMap::new(),
            tasks: HashMap::new(),
            groups: HashMap::new(),
            proc_pids: BTreeSet::new(),
            comms: HashMap::new(),
            proc_cgroups_disk: None,
            blob_dir: None,
            blobs: HashMap::new(),
            mutations: 0,
            generation: 0,
            pending: Vec::new(),
            pending_writes: HashMap::new(),
            trash: Vec::new(),
            tmp_ready: false,
            tmp_seq: 0,
            runtime: runtime::RuntimeState::default(),
            runtime_json: Vec::new(),
        };
        inner.runtime = runtime::load_runtime(base)?;
        inner.runtime_json = serde_json::to_vec_pretty(&inner.runtime).expect("serializes");
        load_tree(base, mount, &mut inner)?;
        Ok(inner)
    }
}

/// Why an internal operation failed: a kernel errno (turned into a [`SysError`] by the caller,
/// who knows the operation and path) or an error of the emulation's own files.
pub(super) enum Fail {
    Errno(Errno),
    Err(Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Errno(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Err(e)
    }
}

pub(super) type FResult<T> = std::result::Result<T, Fail>;

pub(super) fn fail_to_error(f: Fail, op: FsOp, path: &Path, value: Option<&str>) -> Error {
    match f {
        Fail::Errno(errno) => {
            let e = SysError::new(op, path, errno);
            Error::Sys(match value {
                Some(v) => e.with_value(v),
                None => e,
            })
        }
        Fail::Err(e) => e,
    }
}

pub(super) fn sys(op: FsOp, path: impl Into<PathBuf>, errno: Errno) -> Error {
    Error::Sys(SysError::new(op, path, errno))
}

/// Normalize a relative cgroup path: no empty, `.` or `..` components.
pub(super) fn norm(cg: &str) -> Option<String> {
    if !cg.contains("//") && !cg.starts_with('/') && !cg.ends_with('/') && !cg.contains('.') {
        return Some(cg.to_string());
    }
    let parts: Vec<&str> = cg.split('/').filter(|s| !s.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(parts.join("/"))
}

/// An emulated memory cgroup v1 node (see the module documentation).
pub struct EmulatedFs {
    base: PathBuf,
    /// base/memory: the hierarchy mount.
    mount: PathBuf,
    /// The `--root` directory (the mount or a cgroup below it).
    root: PathBuf,
    /// `root` relative to the mount ("" when root is the mount).
    root_rel: String,
    profile: KernelProfile,
    /// flock(2) and generation of the node, shared with every instance (see [`txn`]).
    node_lock: txn::NodeLock,
    inner: Mutex<Inner>,
}

impl EmulatedFs {
    /// Make a new node at `base` (which must not exist or be empty): the root cgroup with its
    /// control files, /proc files and the state file.
    pub fn create(base: &Path, profile: KernelProfile) -> Result<EmulatedFs> {
        ensure_empty(base)?;
        let mount = base.join(MEMORY_DIR);
        std::fs::create_dir(&mount).map_err(|e| Error::io("mkdir", &mount, e))?;
        let proc_dir = base.join(PROC_DIR);
        std::fs::create_dir(&proc_dir).map_err(|e| Error::io("mkdir", &proc_dir, e))?;
        slab::create_slab_dir(base)?;
        let u = profile.unlimited();
        let mut files = control_files(profile, u, 60, profile.root_use_hierarchy(), false);
        // Files only the root of a v1 hierarchy has.
        files.push(("cgroup.sane_behavior", "0\n".into()));
        files.push(("release_agent", "\n".into()));
        for (name, content) in &files {
            write_file(&mount.join(name), content)?;
        }
        let state = State {
            profile,
            kernel_release: profile.release().to_string(),
            cmdline: format!(
                "BOOT_IMAGE=/boot/vmlinuz-{} root=/dev/vda1 ro console=ttyS0",
                profile.release()
            ),
            boot_id: make_uuid(),
            cgroup_mode: CgroupMode::V1,
            dying_kmem: 0,
            dying_cache: 0,
            // The cloud images the lab boots swap to a partition; 3.10 nodes are modelled
            // without swap (kubelet refuses to run with swap on by default).
            swaps: if profile.is_3_10() {
                Vec::new()
            } else {
                vec![SwapState {
                    path: "/dev/vdb".into(),
                    size_kib: 2 * 1024 * 1024,
                    used_kib: 64 * 1024,
                    priority: -2,
                    active: true,
                    dying: 0,
                }]
            },
            mem_total_kib: default_mem_total(),
            mem_available_kib: default_mem_available(),
            next_pid: FIRST_PID,
            next_kmem_id: 1,
            faults: Vec::new(),
            fork_on_move: Vec::new(),
            exit_on_move: Vec::new(),
        };
        write_file(
            &proc_dir.join("cgroups"),
            &proc_cgroups_content(profile.is_3_10(), 1, 0),
        )?;
        let json = serde_json::to_vec_pretty(&state).expect("state serializes");
        let sp = base.join(STATE_FILE);
        std::fs::write(&sp, &json).map_err(|e| Error::io("write", &sp, e))?;
        let fs = EmulatedFs::open(base)?;
        fs.mutate(|inner| fs.flush_swaps(inner))?;
        Ok(fs)
    }

    /// Open the node at `base` with the hierarchy mount (base/memory) as root.
    pub fn open(base: &Path) -> Result<EmulatedFs> {
        EmulatedFs::open_at(base, &base.join(MEMORY_DIR))
    }

    /// Open the node at `base`; trait paths are relative to `root`, which must be base/memory
    /// or a cgroup directory below it.
    pub fn open_at(base: &Path, root: &Path) -> Result<EmulatedFs> {
        let bad = |reason| Error::BadRoot {
            path: root.to_path_buf(),
            reason,
        };
        if !base.join(STATE_FILE).is_file() {
            return Err(bad(BadRoot::NotCgroupFs(format!(
                "{} has no {STATE_FILE}: not an emulated node",
                base.display()
            ))));
        }
        let base = base
            .canonicalize()
            .map_err(|e| Error::io("open", base, e))?;
        let mount = base.join(MEMORY_DIR);
        let node_lock = txn::NodeLock::open(&base)?;
        let held = node_lock.exclusive()?;
        // An operation a killed process left is finished before anything is read.
        txn::recover(&base, &node_lock)?;
        let root_abs = match root.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(BadRoot::NotFound))
            }
            Err(e) => return Err(Error::io("open", root, e)),
        };
        if !root_abs.is_dir() {
            return Err(bad(BadRoot::NotADirectory));
        }
        let root_rel = match root_abs.strip_prefix(&mount) {
            Ok(r) => r.to_string_lossy().into_owned(),
            Err(_) => {
                return Err(bad(BadRoot::NotCgroupFs(format!(
                    "outside the memory hierarchy {} of the emulated node",
                    mount.display()
                ))))
            }
        };
        let mut inner = Inner::load(&base, &mount)?;
        inner.generation = node_lock.generation();
        drop(held);
        let profile = inner.state.profile;
        Ok(EmulatedFs {
            base,
            mount,
            root: root_abs,
            root_rel,
            profile,
            node_lock,
            inner: Mutex::new(inner),
        })
    }

    /// Rebuild the index from disk (another instance changed the node), keeping what this
    /// instance knows that the disk does not change (blobs, the mutation count).
    pub(super) fn reload(&self, inner: &mut Inner) -> Result<()> {
        let mut fresh = Inner::load(&self.base, &self.mount)?;
        fresh.blob_dir = inner.blob_dir.take();
        fresh.blobs = std::mem::take(&mut inner.blobs);
        fresh.mutations = inner.mutations;
        fresh.tmp_seq = inner.tmp_seq;
        *inner = fresh;
        Ok(())
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn profile(&self) -> KernelProfile {
        self.profile
    }

    /// Path of a cgroup (relative to the mount) on disk.
    pub(super) fn dir(&self, full: &str) -> PathBuf {
        if full.is_empty() {
            self.mount.clone()
        } else {
            self.mount.join(full)
        }
    }

    /// Path relative to the mount of a trait path (relative to root).
    pub(super) fn full(&self, cg: &str) -> Option<String> {
        let n = norm(cg)?;
        Some(if n.is_empty() {
            self.root_rel.clone()
        } else {
            join(&self.root_rel, &n)
        })
    }

    /// Absolute path of a trait path (no trailing slash for the root itself).
    pub(super) fn abs(&self, cg: &str) -> PathBuf {
        if cg.is_empty() {
            self.root.clone()
        } else {
            self.root.join(cg)
        }
    }

    /// A trait path relative to root for a path relative to the mount.
    pub(super) fn rel_to_root(&self, full: &str) -> Option<String> {
        if self.root_rel.is_empty() {
            return Some(full.to_string());
        }
        if full == self.root_rel {
            return Some(String::new());
        }
        full.strip_prefix(&self.root_rel)?
            .strip_prefix('/')
            .map(str::to_string)
    }

    pub(super) fn proc_path(&self, pid: u32) -> PathBuf {
        self.base.join(PROC_DIR).join(pid.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_print() {
        for p in KernelProfile::ALL {
            assert_eq!(KernelProfile::parse(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(KernelProfile::parse("4.4"), None);
        assert_eq!(KernelProfile::V6_1.release(), "6.1.0-25-cloud-amd64");
    }

    #[test]
    fn limit_rounding_by_era() {
        assert_eq!(parse_limit(KernelProfile::V6_1, "12345678"), Ok(12345344));
        assert_eq!(parse_limit(KernelProfile::V3_10, "12345678"), Ok(12349440));
        assert_eq!(
            parse_limit(KernelProfile::V5_10, "-1"),
            Ok(UNLIMITED_PAGE_COUNTER)
        );
        assert_eq!(parse_limit(KernelProfile::V3_10, "-1"), Ok(UNLIMITED_3_10));
        assert_eq!(parse_limit(KernelProfile::V6_13, "1M"), Ok(1 << 20));
        assert_eq!(parse_limit(KernelProfile::V6_13, "-2"), Err(Errno::EINVAL));
        assert_eq!(parse_limit(KernelProfile::V6_13, "12x"), Err(Errno::EINVAL));
        assert_eq!(
            parse_limit(KernelProfile::V3_10, "9223372036854775807"),
            Ok(UNLIMITED_3_10)
        );
    }

    #[test]
    fn norm_paths() {
        assert_eq!(norm("a/b").as_deref(), Some("a/b"));
        assert_eq!(norm("/a//b/").as_deref(), Some("a/b"));
        assert_eq!(norm("a/../b"), None);
        assert_eq!(norm("a.b/c").as_deref(), Some("a.b/c"));
    }

    #[test]
    fn uuid_shape() {
        let u = make_uuid();
        assert_eq!(u.len(), 36, "{u}");
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(u, make_uuid());
    }
}
