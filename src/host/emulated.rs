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
//! ```
//!
//! An instance keeps an in-memory index (cgroups, their tasks and charges; tid -> tgid and
//! cgroup) built once at open, and writes through only the files an operation changes, so a
//! mutation costs a constant number of small file writes and never rescans the tree. An
//! instance assumes it is the only writer of the node while it lives: open the node again to
//! see what another instance (another process) changed.
//!
//! The kernel rules emulated are those of KERNEL-FACTS.md and of the mm/memcontrol.c (3.10:
//! also kernel/res_counter.c) functions cited next to each rule. Four kernel profiles differ
//! where cgleak depends on it: 3.10 (RHEL 7), 5.10, 6.1 and 6.13.

use crate::error::{BadRoot, Error, FsOp, Result, SysError};
use crate::host::{join, knob, parent, parse_oom_kill_disable, CgroupMode, Hierarchy, Host};
use crate::model::kernel::cmdline_nokmem;
use crate::model::PAGE_SIZE;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Name of the state file at the base of an emulated node; its presence marks the directory.
pub const STATE_FILE: &str = "cgleak-emulated.json";

/// Number of memcg ids (MEM_CGROUP_ID_MAX): live and dying memcgs, the root included, share them.
pub const MEM_CGROUP_ID_MAX: u64 = 65535;

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
/// Hidden per-process file in `proc/<pid>/`: anon bytes of the process charged to its cgroup.
pub const PROC_ANON_FILE: &str = "emulated.anon_bytes";

const STAT: &str = knob::STAT;
/// 3.10's RESOURCE_MAX (LLONG_MAX), shown for "unlimited" (include/linux/res_counter.h).
const UNLIMITED_3_10: u64 = 9223372036854775807;
/// PAGE_COUNTER_MAX * PAGE_SIZE (LONG_MAX / PAGE_SIZE pages), "unlimited" on newer kernels.
const UNLIMITED_PAGE_COUNTER: u64 = 9223372036854771712;
const SLABINFO_HEADER: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n";
const FIRST_PID: u32 = 1000;

/// The kernel an emulated node behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KernelProfile {
    #[serde(rename = "3.10")]
    V3_10,
    #[serde(rename = "5.10")]
    V5_10,
    #[serde(rename = "6.1")]
    V6_1,
    #[serde(rename = "6.13")]
    V6_13,
}

impl KernelProfile {
    pub const ALL: [KernelProfile; 4] = [
        KernelProfile::V3_10,
        KernelProfile::V5_10,
        KernelProfile::V6_1,
        KernelProfile::V6_13,
    ];

    /// Parse a profile name ("3.10", "5.10", "6.1", "6.13").
    pub fn parse(s: &str) -> Option<KernelProfile> {
        KernelProfile::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
    }

    pub fn name(&self) -> &'static str {
        match self {
            KernelProfile::V3_10 => "3.10",
            KernelProfile::V5_10 => "5.10",
            KernelProfile::V6_1 => "6.1",
            KernelProfile::V6_13 => "6.13",
        }
    }

    /// The `uname -r` the node reports.
    pub fn release(&self) -> &'static str {
        match self {
            KernelProfile::V3_10 => "3.10.0-1160.el7.x86_64",
            KernelProfile::V5_10 => "5.10.0-30-cloud-amd64",
            KernelProfile::V6_1 => "6.1.0-25-cloud-amd64",
            KernelProfile::V6_13 => "6.13.0-1-cloud-amd64",
        }
    }

    /// The value a limit file shows for "unlimited".
    pub fn unlimited(&self) -> u64 {
        match self {
            KernelProfile::V3_10 => UNLIMITED_3_10,
            _ => UNLIMITED_PAGE_COUNTER,
        }
    }

    fn is_3_10(&self) -> bool {
        *self == KernelProfile::V3_10
    }

    /// Memcg ids this kernel hands out. 5.10 allocates from [1, MEM_CGROUP_ID_MAX)
    /// (idr_alloc's end is exclusive): 65534, as the lab's 5.10 guest ran out at 65532 dying
    /// + 2 live; 6.1 handed out 65535 (65533 + 2), and so does 3.10's css_id (1..=65535).
    pub fn id_limit(&self) -> u64 {
        match self {
            KernelProfile::V5_10 => MEM_CGROUP_ID_MAX - 1,
            _ => MEM_CGROUP_ID_MAX,
        }
    }

    /// From 4.8 a deleted memcg gives its id back at offline unless swap entries reference it
    /// (73f576c04b94); before, every dying memcg keeps its id.
    fn ids_released_at_offline(&self) -> bool {
        !self.is_3_10()
    }

    /// memory.use_hierarchy is deprecated and fixed at 1 from ~5.11.
    fn use_hierarchy_fixed(&self) -> bool {
        matches!(self, KernelProfile::V6_1 | KernelProfile::V6_13)
    }

    /// Root use_hierarchy at mount time. 5.10 booted with a bare v1 mount was seen with 0
    /// (KERNEL-FACTS.md); the 3.10 node is modelled as a systemd host (systemd sets it to 1).
    fn root_use_hierarchy(&self) -> u64 {
        match self {
            KernelProfile::V5_10 => 0,
            _ => 1,
        }
    }
}

impl std::fmt::Display for KernelProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// When an injected fault fires.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FaultWhen {
    /// The n-th (0-based) mutating operation (write, mkdir, rmdir, rename) of the instance
    /// fails. One-shot.
    Nth(u64),
    /// The next `times` operations `op` whose absolute path (the control file's for read and
    /// write, the directory's for mkdir/rmdir, the source's for rename) contains the string.
    Match {
        op: FsOp,
        path_contains: String,
        times: u32,
    },
}

/// An injected failure: the operation fails with `errno` and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub when: FaultWhen,
    #[serde(with = "errno_serde")]
    pub errno: Errno,
}

mod errno_serde {
    use nix::errno::Errno;
    pub fn serialize<S: serde::Serializer>(e: &Errno, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*e as i32)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        let v: i32 = serde::Deserialize::deserialize(d)?;
        Ok(Errno::from_raw(v))
    }
}

/// The state file: only what a real node has no file for. Small on purpose (no per-process or
/// per-cgroup tables: those live in the cgroup and proc directories).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct State {
    profile: KernelProfile,
    kernel_release: String,
    cmdline: String,
    boot_id: String,
    cgroup_mode: CgroupMode,
    /// Dying memcgs pinned by kmem (slab) charges: drop_caches never frees them.
    dying_kmem: u64,
    /// Dying memcgs pinned by reclaimable charges: freed by drop_caches (page cache). From 4.8
    /// they hold no id (released at offline, 73f576c04b94); on 3.10 page cache is reparented
    /// at rmdir, so there are none.
    dying_cache: u64,
    /// Swap areas. Profiles >= 4.8 start with one; each area holds the dying memcgs whose
    /// swapped-out pages it keeps (swap entries hold a reference on the memcg id).
    #[serde(default)]
    swaps: Vec<SwapState>,
    /// /proc/meminfo's MemTotal and MemAvailable, in KiB.
    #[serde(default = "default_mem_total")]
    mem_total_kib: u64,
    #[serde(default = "default_mem_available")]
    mem_available_kib: u64,
    next_pid: u32,
    #[serde(default)]
    faults: Vec<Fault>,
    /// One-shot rules: (pid, children forked into the cgroup it leaves when moved).
    #[serde(default)]
    fork_on_move: Vec<(u32, u32)>,
    /// One-shot rules: the pid exits when someone moves it (the move fails ESRCH).
    #[serde(default)]
    exit_on_move: Vec<u32>,
}

/// One swap area of the node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SwapState {
    path: String,
    size_kib: u64,
    /// Swap in use by live workloads (what swapoff reads back besides the dying memcgs' pages).
    used_kib: u64,
    priority: i32,
    active: bool,
    /// Dying memcgs kept (with their ids, >= 4.8) by swapped-out pages on this area: one page
    /// each.
    dying: u64,
}

fn default_mem_total() -> u64 {
    8 * 1024 * 1024
}

fn default_mem_available() -> u64 {
    6 * 1024 * 1024
}

/// One live cgroup in the index.
#[derive(Debug, Default, Clone)]
struct Node {
    /// Thread ids in the cgroup (its `tasks` file).
    tids: BTreeSet<u32>,
    /// Names of the child cgroups.
    kids: BTreeSet<String>,
    /// Page cache charged to this cgroup.
    cache: u64,
    /// Process (anon) memory charged to this cgroup, whoever charged it.
    anon: u64,
    /// 3.10: kmem accounting active (memcg_kmem_is_active).
    kmem: bool,
    /// The regular files of the cgroup directory on disk (control files and hidden state),
    /// with their content as last read or written by this instance (None: not read yet).
    files: BTreeMap<String, Option<String>>,
    /// Files known to be this directory's own inodes. The others may be hard links to a blob
    /// (see [`BLOB_DIR`]), so they are replaced, not written in place.
    private: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Task {
    tgid: u32,
    /// Cgroup path relative to the mount.
    cg: String,
    /// Leaders only: anon bytes of this process charged to the cgroup it is in.
    anon: u64,
}

struct Inner {
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
    /// Blobs this instance made or linked (known to exist).
    blobs: BTreeSet<String>,
    mutations: u64,
}

/// Why an internal operation failed: a kernel errno (turned into a [`SysError`] by the caller,
/// who knows the operation and path) or an error of the emulation's own files.
enum Fail {
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

type FResult<T> = std::result::Result<T, Fail>;

fn fail_to_error(f: Fail, op: FsOp, path: &Path, value: Option<&str>) -> Error {
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

fn sys(op: FsOp, path: impl Into<PathBuf>, errno: Errno) -> Error {
    Error::Sys(SysError::new(op, path, errno))
}

/// Replace a file's content. Overwrite in place, then cut to length, instead of truncating to
/// zero first: on ext4, truncate-to-zero-then-write (and rename over a file) makes close()
/// start writeback (auto_da_alloc), which costs a millisecond per write.
fn write_file(path: &Path, content: &str) -> Result<()> {
    overwrite(path, content, None)
}

/// [`write_file`] knowing the old length (`None`: unknown): no truncation when the new
/// content is not shorter (open, write, close).
fn overwrite(path: &Path, content: &str, old_len: Option<usize>) -> Result<()> {
    use std::io::Write;
    let io = |e| Error::io("write", path, e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    f.write_all(content.as_bytes()).map_err(io)?;
    if old_len.is_none_or(|l| l > content.len()) {
        f.set_len(content.len() as u64).map_err(io)?;
    }
    Ok(())
}

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// A directory opened for the `*at` calls.
fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Create the new file `name` (relative to `dir`, or a path) holding `content`: one mknod for
/// an empty file, else open, write, close. Fails if it exists.
fn create_at(dir: Option<RawFd>, name: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mode = Mode::from_bits_truncate(0o666);
    if content.is_empty() {
        match nix::sys::stat::mknodat(dir, name, SFlag::S_IFREG, mode, 0) {
            Ok(()) => return Ok(()),
            // Some sandboxes refuse mknod: create it the usual way.
            Err(Errno::EPERM | Errno::ENOSYS | Errno::EINVAL) => {}
            Err(e) => return Err(errno_io(e)),
        }
    }
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        mode,
    )
    .map_err(errno_io)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(content)
}

/// Read a whole file (relative to `dir`, or a path) into `buf`, without the size probe of
/// std::fs::read.
fn read_at(dir: Option<RawFd>, name: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    let fd = nix::fcntl::openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(errno_io)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        match f.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                // A short read of a regular file is its end: no read just to see 0.
                if n < chunk.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_string(path: &Path) -> std::io::Result<String> {
    let mut buf = Vec::new();
    read_at(None, path, &mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn read_file(path: &Path) -> Result<String> {
    read_string(path).map_err(|e| Error::io("read", path, e))
}

fn parse_counter(path: &Path, s: String) -> Result<u64> {
    s.trim().parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        what: "emulated counter".into(),
        content: s,
    })
}

/// Remove a file; absent is fine.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Remove a directory whose files are (believed to be) `files`: unlink them, then rmdir;
/// anything else found there (a file another writer left) falls back to a recursive removal.
fn remove_known_dir<'a>(dir: &Path, files: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let fd = open_dir(dir).map_err(|e| Error::io("rmdir", dir, e))?;
    for name in files {
        match nix::unistd::unlinkat(
            Some(fd.as_raw_fd()),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::io("remove", dir.join(name), errno_io(e))),
        }
    }
    drop(fd);
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => std::fs::remove_dir_all(dir).map_err(|e| Error::io("rmdir", dir, e)),
    }
}

/// Normalize a relative cgroup path: no empty, `.` or `..` components.
fn norm(cg: &str) -> Option<String> {
    if !cg.contains("//") && !cg.starts_with('/') && !cg.ends_with('/') && !cg.contains('.') {
        return Some(cg.to_string());
    }
    let parts: Vec<&str> = cg.split('/').filter(|s| !s.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(parts.join("/"))
}

/// memparse(): a number with an optional K/M/G/T/P/E suffix; anything else is EINVAL.
fn memparse(s: &str) -> std::result::Result<u64, Errno> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits_end == 0 {
        return Err(Errno::EINVAL);
    }
    let n: u128 = s[..digits_end].parse().map_err(|_| Errno::EINVAL)?;
    let shift = match &s[digits_end..] {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return Err(Errno::EINVAL),
    };
    Ok((n << shift).min(u64::MAX as u128) as u64)
}

/// A plain unsigned integer (kstrtoull), as the u64 knobs take.
fn parse_plain(s: &str) -> std::result::Result<u64, Errno> {
    s.parse::<u64>().map_err(|_| Errno::EINVAL)
}

/// The value a limit write stores.
/// 3.10 (kernel/res_counter.c res_counter_memparse_write_strategy): "-1" is RESOURCE_MAX,
/// other values are rounded UP to a page (PAGE_ALIGN), saturating at RESOURCE_MAX.
/// Newer (mm/page_counter.c page_counter_memparse): "-1" is PAGE_COUNTER_MAX, other values are
/// rounded DOWN to a page (bytes / PAGE_SIZE), at most PAGE_COUNTER_MAX pages.
fn parse_limit(profile: KernelProfile, s: &str) -> std::result::Result<u64, Errno> {
    if s == "-1" {
        return Ok(profile.unlimited());
    }
    if s.starts_with('-') {
        return Err(Errno::EINVAL);
    }
    let bytes = memparse(s)?;
    Ok(if profile.is_3_10() {
        let up = bytes.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        up.min(UNLIMITED_3_10)
    } else {
        (bytes / PAGE_SIZE * PAGE_SIZE).min(UNLIMITED_PAGE_COUNTER)
    })
}

fn oom_control_content(profile: KernelProfile, disable: bool) -> String {
    let mut s = format!("oom_kill_disable {}\nunder_oom 0\n", disable as u8);
    // The oom_kill counter line appeared in 4.13 (mem_cgroup_oom_control_read).
    if !profile.is_3_10() {
        s.push_str("oom_kill 0\n");
    }
    s
}

fn stat_content(profile: KernelProfile, cache: u64, anon: u64) -> String {
    let mut s = format!("cache {cache}\nrss {anon}\nrss_huge 0\n");
    if !profile.is_3_10() {
        s.push_str("shmem 0\n");
    }
    s.push_str(&format!(
        "mapped_file 0\nswap 0\ntotal_cache {cache}\ntotal_rss {anon}\n"
    ));
    s
}

/// A random-looking uuid for the boot id (no rand crate: time, pid and a counter mixed).
fn make_uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = next();
    let b = next();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A temporary directory for emulated nodes, on a RAM filesystem when one is at hand: an
/// emulated mkdir creates ~17 files, and inode creation on a disk filesystem can cost a
/// millisecond each (seen on this project's ext4 VMs; tmpfs: ~15 µs). `$CGLEAK_EMUL_TMPDIR`
/// wins, then /dev/shm, then the usual temp directory.
pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    if let Some(d) = std::env::var_os("CGLEAK_EMUL_TMPDIR") {
        return tempfile::tempdir_in(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return Ok(t);
        }
    }
    tempfile::tempdir()
}

/// Walk up from `root` (itself included) to the directory holding [`STATE_FILE`].
pub fn find_base(root: &Path) -> Option<PathBuf> {
    let abs = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(root)
    };
    abs.ancestors()
        .find(|d| d.join(STATE_FILE).is_file())
        .map(Path::to_path_buf)
}

/// Copy a whole emulated node (state file, hierarchy, proc) to `dst_base`, which must not
/// exist or be empty: a "second copy" of a node for tests.
pub fn copy_node(src_base: &Path, dst_base: &Path) -> Result<()> {
    if !src_base.join(STATE_FILE).is_file() {
        return Err(Error::Usage(format!(
            "{} is not an emulated node (no {STATE_FILE})",
            src_base.display()
        )));
    }
    ensure_empty(dst_base)?;
    let mut buf = Vec::with_capacity(8192);
    copy_tree(src_base, dst_base, &mut buf)
}

/// Copy the contents of directory `src` into the existing directory `dst`: each file read
/// once and created once (no metadata probes), through directory descriptors.
fn copy_tree(src: &Path, dst: &Path, buf: &mut Vec<u8>) -> Result<()> {
    let rd = std::fs::read_dir(src).map_err(|e| Error::io("read_dir", src, e))?;
    let sfd = open_dir(src).map_err(|e| Error::io("open", src, e))?;
    let dfd = open_dir(dst).map_err(|e| Error::io("open", dst, e))?;
    let mut dirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read_dir", src, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        let name = entry.file_name();
        let name = Path::new(&name);
        if ft.is_dir() {
            nix::sys::stat::mkdirat(Some(dfd.as_raw_fd()), name, Mode::from_bits_truncate(0o777))
                .map_err(|e| Error::io("mkdir", dst.join(name), errno_io(e)))?;
            dirs.push(name.to_path_buf());
        } else {
            read_at(Some(sfd.as_raw_fd()), name, buf)
                .map_err(|e| Error::io("read", src.join(name), e))?;
            create_at(Some(dfd.as_raw_fd()), name, buf)
                .map_err(|e| Error::io("copy", dst.join(name), e))?;
        }
    }
    drop((sfd, dfd));
    for d in dirs {
        copy_tree(&src.join(&d), &dst.join(&d), buf)?;
    }
    Ok(())
}

/// `dir` must not exist (it is created) or be an empty directory.
fn ensure_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} exists and is not empty; an emulated node needs a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))
        }
        Err(e) => Err(Error::io("read_dir", dir, e)),
    }
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
        fs.flush_swaps(&fs.lock())?;
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
        let sp = base.join(STATE_FILE);
        let raw = match std::fs::read(&sp) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(BadRoot::NotCgroupFs(format!(
                    "{} has no {STATE_FILE}: not an emulated node",
                    base.display()
                ))))
            }
            Err(e) => return Err(Error::io("read", &sp, e)),
        };
        let state: State = serde_json::from_slice(&raw).map_err(|e| Error::Parse {
            path: sp.clone(),
            what: format!("emulated node state ({e})"),
            content: String::from_utf8_lossy(&raw).into_owned(),
        })?;
        let base = base
            .canonicalize()
            .map_err(|e| Error::io("open", base, e))?;
        let mount = base.join(MEMORY_DIR);
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
            blobs: BTreeSet::new(),
            mutations: 0,
        };
        load_tree(&base, &mount, &mut inner)?;
        let profile = inner.state.profile;
        Ok(EmulatedFs {
            base,
            mount,
            root: root_abs,
            root_rel,
            profile,
            inner: Mutex::new(inner),
        })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn profile(&self) -> KernelProfile {
        self.profile
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Path of a cgroup (relative to the mount) on disk.
    fn dir(&self, full: &str) -> PathBuf {
        if full.is_empty() {
            self.mount.clone()
        } else {
            self.mount.join(full)
        }
    }

    /// Path relative to the mount of a trait path (relative to root).
    fn full(&self, cg: &str) -> Option<String> {
        let n = norm(cg)?;
        Some(if n.is_empty() {
            self.root_rel.clone()
        } else {
            join(&self.root_rel, &n)
        })
    }

    /// Absolute path of a trait path (no trailing slash for the root itself).
    fn abs(&self, cg: &str) -> PathBuf {
        if cg.is_empty() {
            self.root.clone()
        } else {
            self.root.join(cg)
        }
    }

    /// A trait path relative to root for a path relative to the mount.
    fn rel_to_root(&self, full: &str) -> Option<String> {
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

    fn proc_path(&self, pid: u32) -> PathBuf {
        self.base.join(PROC_DIR).join(pid.to_string())
    }

    fn persist(&self, inner: &mut Inner) -> Result<()> {
        let json = serde_json::to_vec_pretty(&inner.state).expect("state serializes");
        if json != inner.state_json {
            // In place (see write_file): a rename over it would start writeback each time.
            let sp = self.base.join(STATE_FILE);
            write_file(&sp, std::str::from_utf8(&json).expect("json is utf-8"))?;
            inner.state_json = json;
        }
        Ok(())
    }

    /// Count a mutating operation and fire a fault planned for it.
    fn mutation(&self, inner: &mut Inner, op: FsOp, path: &Path) -> FResult<()> {
        let n = inner.mutations;
        inner.mutations += 1;
        if let Some(i) = inner
            .state
            .faults
            .iter()
            .position(|f| f.when == FaultWhen::Nth(n))
        {
            let f = inner.state.faults.remove(i);
            self.persist(inner)?;
            return Err(f.errno.into());
        }
        self.match_fault(inner, op, path)
    }

    /// Fire a `Match` fault for this operation and path, if one is planned.
    fn match_fault(&self, inner: &mut Inner, op: FsOp, path: &Path) -> FResult<()> {
        if inner.state.faults.is_empty() {
            return Ok(());
        }
        let p = path.to_string_lossy();
        let hit = inner.state.faults.iter().position(|f| {
            matches!(&f.when, FaultWhen::Match { op: o, path_contains, times }
                if *o == op && *times > 0 && p.contains(path_contains.as_str()))
        });
        let Some(i) = hit else { return Ok(()) };
        let errno = inner.state.faults[i].errno;
        if let FaultWhen::Match { times, .. } = &mut inner.state.faults[i].when {
            *times -= 1;
            if *times == 0 {
                inner.state.faults.remove(i);
            }
        }
        self.persist(inner)?;
        Err(errno.into())
    }

    /// Content of a file of a live cgroup: from memory, read from disk the first time.
    fn load_file(&self, inner: &mut Inner, full: &str, name: &str) -> std::io::Result<String> {
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
    fn set_file(&self, inner: &mut Inner, full: &str, name: &str, content: String) -> Result<()> {
        let Some(node) = inner.nodes.get_mut(full) else {
            return Ok(());
        };
        let old_len = match node.files.get(name) {
            Some(Some(c)) if *c == content => return Ok(()),
            Some(Some(c)) => Some(c.len()),
            _ => None,
        };
        let path = self.dir(full).join(name);
        // Forget the old content first: if the write fails, the disk is read again.
        let existed = node.files.insert(name.to_string(), None).is_some();
        if node.private.contains(name) {
            overwrite(&path, &content, old_len)?;
        } else {
            // Perhaps a link to a blob: never write into it, replace it.
            if existed {
                remove_file(&path)?;
            }
            match create_at(None, &path, content.as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    remove_file(&path)?;
                    create_at(None, &path, content.as_bytes())
                        .map_err(|e| Error::io("write", &path, e))?;
                }
                Err(e) => return Err(Error::io("write", &path, e)),
            }
            node.private.insert(name.to_string());
        }
        node.files.insert(name.to_string(), Some(content));
        Ok(())
    }

    /// Remove a (hidden) file of a live cgroup if it is there.
    fn remove_cg_file(&self, inner: &mut Inner, full: &str, name: &str) -> Result<()> {
        let Some(node) = inner.nodes.get_mut(full) else {
            return Ok(());
        };
        node.private.remove(name);
        if node.files.remove(name).is_some() {
            remove_file(&self.dir(full).join(name))?;
        }
        Ok(())
    }

    /// Write a hidden counter file; 0 removes it so a fresh cgroup has no extra files.
    fn write_counter(&self, inner: &mut Inner, full: &str, name: &str, v: u64) -> Result<()> {
        if v == 0 {
            self.remove_cg_file(inner, full, name)
        } else {
            self.set_file(inner, full, name, format!("{v}\n"))
        }
    }

    /// Rewrite `tasks` and `cgroup.procs` of a cgroup from the index.
    fn flush_tasks(&self, inner: &mut Inner, full: &str) -> Result<()> {
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
    fn flush_charges(&self, inner: &mut Inner, full: &str) -> Result<()> {
        let Some(node) = inner.nodes.get(full) else {
            return Ok(());
        };
        let (cache, anon) = (node.cache, node.anon);
        self.write_counter(inner, full, CACHE_FILE, cache)?;
        self.write_counter(inner, full, ANON_FILE, anon)?;
        self.set_file(inner, full, knob::USAGE, format!("{}\n", cache + anon))?;
        self.set_file(inner, full, STAT, stat_content(self.profile, cache, anon))
    }

    fn flush_proc_cgroups(&self, inner: &mut Inner) -> Result<()> {
        let s = self.proc_cgroups_string(inner);
        if inner.proc_cgroups_disk.as_deref() == Some(s.as_str()) {
            return Ok(());
        }
        inner.proc_cgroups_disk = None;
        write_file(&self.base.join(PROC_DIR).join("cgroups"), &s)?;
        inner.proc_cgroups_disk = Some(s);
        Ok(())
    }

    fn proc_cgroups_string(&self, inner: &Inner) -> String {
        proc_cgroups_content(
            self.profile.is_3_10(),
            inner.nodes.len() as u64,
            Self::dying_all(inner),
        )
    }

    /// Every dying memcg, whatever pins it (what /proc/cgroups counts from 3.16).
    fn dying_all(inner: &Inner) -> u64 {
        inner.state.dying_kmem + inner.state.dying_cache + Self::dying_swap(inner)
    }

    fn dying_swap(inner: &Inner) -> u64 {
        inner.state.swaps.iter().map(|a| a.dying).sum()
    }

    /// Memcg ids taken: the live memcgs and the dying ones that keep theirs (all of them on
    /// 3.10; from 4.8 only those referenced by swap entries).
    fn ids_in_use(&self, inner: &Inner) -> u64 {
        let dying = if self.profile.ids_released_at_offline() {
            Self::dying_swap(inner)
        } else {
            inner.state.dying_kmem + inner.state.dying_cache
        };
        inner.nodes.len() as u64 + dying
    }

    fn swaps_string(inner: &Inner) -> String {
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

    fn meminfo_string(inner: &Inner) -> String {
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
    fn flush_swaps(&self, inner: &Inner) -> Result<()> {
        let dir = self.base.join(PROC_DIR);
        write_file(&dir.join("swaps"), &Self::swaps_string(inner))?;
        write_file(&dir.join("meminfo"), &Self::meminfo_string(inner))
    }

    fn read_cg_file(&self, inner: &mut Inner, full: &str, file: &str) -> Result<String> {
        self.load_file(inner, full, file)
            .map_err(|e| Error::io("read", self.dir(full).join(file), e))
    }

    fn read_num(&self, inner: &mut Inner, full: &str, file: &str) -> Result<u64> {
        let s = self.read_cg_file(inner, full, file)?;
        crate::host::parse_u64(&self.dir(full).join(file), file, &s)
    }

    fn write_num(&self, inner: &mut Inner, full: &str, file: &str, v: u64) -> Result<()> {
        self.set_file(inner, full, file, format!("{v}\n"))
    }

    fn read_oom_disable(&self, inner: &mut Inner, full: &str) -> Result<bool> {
        let s = self.read_cg_file(inner, full, knob::OOM_CONTROL)?;
        parse_oom_kill_disable(&self.dir(full).join(knob::OOM_CONTROL), &s)
    }

    /// Whether `full` (not the root) has a parent with use_hierarchy 1.
    fn parent_uses_hierarchy(&self, inner: &mut Inner, full: &str) -> Result<bool> {
        Ok(self.read_num(inner, parent(full), knob::USE_HIERARCHY)? == 1)
    }

    /// Set the anon bytes of thread-group leader `tgid` (its hidden proc file follows).
    fn set_proc_anon(&self, inner: &mut Inner, tgid: u32, v: u64) -> Result<()> {
        let Some(t) = inner.tasks.get_mut(&tgid) else {
            return Ok(());
        };
        let old = std::mem::replace(&mut t.anon, v);
        if old == v {
            return Ok(());
        }
        let p = self.proc_path(tgid).join(PROC_ANON_FILE);
        if v == 0 {
            remove_file(&p)
        } else {
            overwrite(&p, &format!("{v}\n"), None)
        }
    }

    /// Command name of a process, from memory or its proc/<pid>/comm.
    fn comm(&self, inner: &mut Inner, pid: u32) -> Result<String> {
        if let Some(c) = inner.comms.get(&pid) {
            return Ok(c.clone());
        }
        let c = read_file(&self.proc_path(pid).join("comm"))?;
        let c = c.trim_end_matches('\n').to_string();
        inner.comms.insert(pid, c.clone());
        Ok(c)
    }

    // ---- hooks for tests and the demo -------------------------------------------------------

    /// Start a new process (one thread) with command name `comm` in cgroup `cg`; its pid.
    pub fn spawn(&self, cg: &str, comm: &str) -> Result<u32> {
        let mut inner = self.lock();
        let full = self
            .full(cg)
            .filter(|f| inner.nodes.contains_key(f))
            .ok_or_else(|| sys(FsOp::Write, self.abs(cg).join(knob::PROCS), Errno::ENOENT))?;
        let pid = self.alloc_pid(&mut inner)?;
        self.make_proc_dir(&mut inner, pid, pid, comm)?;
        inner.tasks.insert(
            pid,
            Task {
                tgid: pid,
                cg: full.clone(),
                anon: 0,
            },
        );
        inner.groups.entry(pid).or_default().insert(pid);
        inner
            .nodes
            .get_mut(&full)
            .expect("checked")
            .tids
            .insert(pid);
        self.flush_tasks(&mut inner, &full)?;
        Ok(pid)
    }

    /// Start an extra thread of process `tgid` in cgroup `cg` (may differ from the leader's).
    pub fn spawn_thread(&self, tgid: u32, cg: &str) -> Result<u32> {
        let mut inner = self.lock();
        let full = self
            .full(cg)
            .filter(|f| inner.nodes.contains_key(f))
            .ok_or_else(|| sys(FsOp::Write, self.abs(cg).join(knob::TASKS), Errno::ENOENT))?;
        if inner.tasks.get(&tgid).is_none_or(|t| t.tgid != tgid) {
            return Err(sys(FsOp::Write, self.proc_path(tgid), Errno::ESRCH));
        }
        let comm = self.comm(&mut inner, tgid)?;
        let tid = self.alloc_pid(&mut inner)?;
        self.make_proc_dir(&mut inner, tid, tgid, comm.trim_end())?;
        inner.tasks.insert(
            tid,
            Task {
                tgid,
                cg: full.clone(),
                anon: 0,
            },
        );
        inner.groups.entry(tgid).or_default().insert(tid);
        inner
            .nodes
            .get_mut(&full)
            .expect("checked")
            .tids
            .insert(tid);
        self.flush_tasks(&mut inner, &full)?;
        Ok(tid)
    }

    fn alloc_pid(&self, inner: &mut Inner) -> Result<u32> {
        let mut pid = inner.state.next_pid;
        while inner.tasks.contains_key(&pid) || inner.proc_pids.contains(&pid) {
            pid += 1;
        }
        inner.state.next_pid = pid + 1;
        self.persist(inner)?;
        Ok(pid)
    }

    fn make_proc_dir(&self, inner: &mut Inner, tid: u32, tgid: u32, comm: &str) -> Result<()> {
        let d = self.proc_path(tid);
        std::fs::create_dir(&d).map_err(|e| Error::io("mkdir", &d, e))?;
        inner.proc_pids.insert(tid);
        inner.comms.insert(tid, comm.to_string());
        let comm_path = d.join("comm");
        create_at(None, &comm_path, format!("{comm}\n").as_bytes())
            .map_err(|e| Error::io("write", &comm_path, e))?;
        let status_path = d.join("status");
        let status =
            format!("Name:\t{comm}\nState:\tS (sleeping)\nTgid:\t{tgid}\nPid:\t{tid}\nPPid:\t1\n");
        create_at(None, &status_path, status.as_bytes())
            .map_err(|e| Error::io("write", &status_path, e))
    }

    /// A process exits: a thread-group leader takes all its threads with it, another thread
    /// exits alone. Its anon charges in its current cgroup are freed. No-op for unknown pids.
    pub fn exit(&self, pid: u32) {
        let mut inner = self.lock();
        if let Err(e) = self.exit_locked(&mut inner, pid) {
            log::warn!("emulated exit of {pid}: {e}");
        }
    }

    fn exit_locked(&self, inner: &mut Inner, pid: u32) -> Result<()> {
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
            match remove_known_dir(&d, files.iter().copied()) {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
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

    /// Add `n` dying memcgs that hold their ids, the way each kernel leaks them: on 3.10
    /// pinned by kmem (slab) charges, which only a migration stops; from 4.8 pinned by
    /// swapped-out pages on the first active swap area (the only references that keep an id
    /// then; the lab's leak). ENOSPC if the ids would run out.
    pub fn add_dying(&self, n: u64) -> Result<()> {
        let mut inner = self.lock();
        if self.ids_in_use(&inner) + n > self.profile.id_limit() {
            return Err(sys(FsOp::Mkdir, &self.mount, Errno::ENOSPC));
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
            self.flush_swaps(&inner)?;
        } else {
            inner.state.dying_kmem += n;
        }
        self.persist(&mut inner)?;
        self.flush_proc_cgroups(&mut inner)
    }

    /// Add `n` dying memcgs pinned by page cache only (>= 4.8: they hold no id; drop_caches
    /// frees them). 3.10 has none: rmdir reparents page cache there.
    pub fn add_dying_cache(&self, n: u64) -> Result<()> {
        if !self.profile.ids_released_at_offline() {
            return Err(Error::Usage(
                "3.10 reparents page cache at rmdir: no memcg stays dying because of it".into(),
            ));
        }
        let mut inner = self.lock();
        inner.state.dying_cache += n;
        self.persist(&mut inner)?;
        self.flush_proc_cgroups(&mut inner)
    }

    /// Dying memcgs, whatever pins them (/proc/cgroups counts them all from 3.16).
    pub fn dying(&self) -> u64 {
        Self::dying_all(&self.lock())
    }

    /// Dying memcgs split: (pinned by kmem, by reclaimable page cache, by swapped-out pages).
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
        let mut inner = self.lock();
        inner.state.mem_available_kib = kib;
        self.persist(&mut inner)?;
        self.flush_swaps(&inner)
    }

    /// Charge `bytes` of page cache to `cg` (raises its memory.usage_in_bytes).
    pub fn charge_cache(&self, cg: &str, bytes: u64) -> Result<()> {
        let mut inner = self.lock();
        let full = self
            .full(cg)
            .filter(|f| inner.nodes.contains_key(f))
            .ok_or_else(|| sys(FsOp::Write, self.abs(cg), Errno::ENOENT))?;
        let n = inner.nodes.get_mut(&full).expect("checked");
        n.cache = n.cache.saturating_add(bytes);
        self.flush_charges(&mut inner, &full)
    }

    /// Charge `bytes` of anonymous memory of process `pid` to the cgroup of its leader.
    pub fn charge_process(&self, pid: u32, bytes: u64) -> Result<()> {
        let mut inner = self.lock();
        let Some(tgid) = inner.tasks.get(&pid).map(|t| t.tgid) else {
            return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
        };
        let leader = inner.tasks.get(&tgid).expect("leader of a live thread");
        let (cg, anon) = (leader.cg.clone(), leader.anon.saturating_add(bytes));
        if let Some(n) = inner.nodes.get_mut(&cg) {
            n.anon = n.anon.saturating_add(bytes);
        }
        self.set_proc_anon(&mut inner, tgid, anon)?;
        self.flush_charges(&mut inner, &cg)
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
        let mut inner = self.lock();
        inner.state.cmdline = cmdline.trim_end().to_string();
        self.persist(&mut inner)
    }

    pub fn set_boot_id(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.state.boot_id = id.trim().to_string();
        self.persist(&mut inner)
    }

    pub fn set_mode(&self, mode: CgroupMode) -> Result<()> {
        let mut inner = self.lock();
        inner.state.cgroup_mode = mode;
        self.persist(&mut inner)
    }

    /// Plan a failure (persisted: another instance opening the node sees it).
    pub fn inject(&self, fault: Fault) -> Result<()> {
        let mut inner = self.lock();
        inner.state.faults.push(fault);
        self.persist(&mut inner)
    }

    pub fn clear_faults(&self) -> Result<()> {
        let mut inner = self.lock();
        inner.state.faults.clear();
        self.persist(&mut inner)
    }

    /// Faults still planned.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().state.faults.clone()
    }

    /// Mutating operations (write, mkdir, rmdir, rename) tried through this instance since
    /// open, failed ones included.
    pub fn mutations(&self) -> u64 {
        self.lock().mutations
    }

    /// One-shot: the next time `pid` is moved through cgroup.procs, `children` new processes
    /// with its comm appear in the cgroup it left (forked during the move).
    pub fn fork_on_move(&self, pid: u32, children: u32) -> Result<()> {
        let mut inner = self.lock();
        if !inner.tasks.contains_key(&pid) {
            return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
        }
        inner.state.fork_on_move.retain(|(p, _)| *p != pid);
        inner.state.fork_on_move.push((pid, children));
        self.persist(&mut inner)
    }

    /// One-shot: moving `pid` (cgroup.procs or tasks) fails with ESRCH and the process is gone.
    pub fn exit_on_move(&self, pid: u32) -> Result<()> {
        let mut inner = self.lock();
        if !inner.tasks.contains_key(&pid) {
            return Err(sys(FsOp::Write, self.proc_path(pid), Errno::ESRCH));
        }
        if !inner.state.exit_on_move.contains(&pid) {
            inner.state.exit_on_move.push(pid);
        }
        self.persist(&mut inner)
    }

    // ---- the kernel's rules ------------------------------------------------------------------

    fn do_write(&self, inner: &mut Inner, full: &str, file: &str, v: &str) -> FResult<()> {
        if !inner.nodes.contains_key(full) || file.starts_with("emulated.") || file.contains('/') {
            return Err(Errno::ENOENT.into());
        }
        let is_root = full.is_empty();
        let p = self.profile;
        match file {
            knob::PROCS => self.move_pid(inner, full, v, true),
            knob::TASKS => self.move_pid(inner, full, v, false),
            knob::LIMIT | knob::MEMSW_LIMIT => {
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
            knob::SOFT_LIMIT => {
                let new = parse_limit(p, v)?;
                Ok(self.write_num(inner, full, file, new)?)
            }
            knob::KMEM_LIMIT => {
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
                            self.set_file(
                                inner,
                                full,
                                knob::KMEM_SLABINFO,
                                SLABINFO_HEADER.into(),
                            )?;
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
            knob::SWAPPINESS => {
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
            knob::OOM_CONTROL => {
                let val = parse_plain(v)?;
                // mem_cgroup_oom_control_write: not on the root, only 0 and 1.
                if is_root || val > 1 {
                    return Err(Errno::EINVAL.into());
                }
                // 3.10: "oom-kill-disable is a flag for subhierarchy".
                if p.is_3_10()
                    && (self.parent_uses_hierarchy(inner, full)?
                        || !inner.nodes[full].kids.is_empty())
                {
                    return Err(Errno::EINVAL.into());
                }
                Ok(self.set_file(inner, full, file, oom_control_content(p, val == 1))?)
            }
            knob::USE_HIERARCHY => {
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
            knob::MOVE_CHARGE => {
                let val = parse_plain(v)?;
                // NR_MOVE_TYPE is 2 (anon, file): values 0..=3. Removed in 6.13.
                if val > 3 || (p == KernelProfile::V6_13 && val != 0) {
                    return Err(Errno::EINVAL.into());
                }
                Ok(self.write_num(inner, full, file, val)?)
            }
            knob::FORCE_EMPTY => {
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

    fn has_file_full(&self, inner: &Inner, full: &str, file: &str) -> bool {
        inner
            .nodes
            .get(full)
            .is_some_and(|n| n.files.contains_key(file))
    }

    /// A write to cgroup.procs (`whole` group) or tasks (one thread).
    fn move_pid(&self, inner: &mut Inner, dest: &str, v: &str, whole: bool) -> FResult<()> {
        let pid: u32 = v.parse().map_err(|_| Errno::EINVAL)?;
        let Some(task) = inner.tasks.get(&pid).cloned() else {
            return Err(Errno::ESRCH.into());
        };
        let tgid = task.tgid;
        let rule_pid = if whole { tgid } else { pid };
        if let Some(i) = inner
            .state
            .exit_on_move
            .iter()
            .position(|p| *p == rule_pid || *p == pid)
        {
            let who = inner.state.exit_on_move.remove(i);
            self.persist(inner)?;
            self.exit_locked(inner, who)?;
            return Err(Errno::ESRCH.into());
        }
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
        let mut touched = BTreeSet::new();
        touched.insert(dest.to_string());
        for tid in &tids {
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
        // Charges follow the leader when the destination's move_charge_at_immigrate has bit 0
        // (anon) set (mem_cgroup_can_attach: only for the mm owner). Otherwise they stay with
        // the old memcg and no longer belong to the process's cgroup.
        let leader_moved = tids.contains(&tgid);
        if let (true, Some(from)) = (leader_moved, leader_from.as_deref()) {
            if from != dest {
                let anon = inner.tasks[&tgid].anon;
                if anon > 0 {
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
                    self.flush_charges(inner, dest)?;
                }
            }
        }
        for cg in &touched {
            self.flush_tasks(inner, cg)?;
        }
        // Forked during the move: the children stay in the cgroup the parent left.
        if whole {
            if let Some(i) = inner
                .state
                .fork_on_move
                .iter()
                .position(|(p, _)| *p == tgid)
            {
                let (_, n) = inner.state.fork_on_move.remove(i);
                self.persist(inner)?;
                let from = leader_from.unwrap_or_default();
                if inner.nodes.contains_key(&from) {
                    let comm = self.comm(inner, tgid)?;
                    for _ in 0..n {
                        let child = self.alloc_pid(inner)?;
                        self.make_proc_dir(inner, child, child, comm.trim_end())?;
                        inner.tasks.insert(
                            child,
                            Task {
                                tgid: child,
                                cg: from.clone(),
                                anon: 0,
                            },
                        );
                        inner.groups.entry(child).or_default().insert(child);
                        inner.nodes.get_mut(&from).expect("live").tids.insert(child);
                    }
                    self.flush_tasks(inner, &from)?;
                }
            }
        }
        Ok(())
    }

    fn do_mkdir(&self, inner: &mut Inner, full: &str) -> FResult<()> {
        if full.is_empty() || inner.nodes.contains_key(full) {
            return Err(Errno::EEXIST.into());
        }
        let par = parent(full).to_string();
        if !inner.nodes.contains_key(&par) {
            return Err(Errno::ENOENT.into());
        }
        // mem_cgroup_alloc: idr_alloc fails when every id is taken (by live memcgs and the
        // dying ones that keep theirs), and mkdir returns ENOSPC.
        if self.ids_in_use(inner) >= self.profile.id_limit() {
            return Err(Errno::ENOSPC.into());
        }
        // mem_cgroup_css_alloc: swappiness, oom_kill_disable and use_hierarchy inherited.
        let swappiness = self.read_num(inner, &par, knob::SWAPPINESS)?;
        let uh = if self.profile.use_hierarchy_fixed() {
            1
        } else {
            self.read_num(inner, &par, knob::USE_HIERARCHY)?
        };
        let oom = self.read_oom_disable(inner, &par)?;
        // 3.10 memcg_propagate_kmem: a child of a kmem-active memcg is kmem-active.
        let kmem = self.profile.is_3_10() && inner.nodes[&par].kmem;
        let dir = self.dir(full);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            // Something not in the index is there (another writer's): like cgroupfs, EEXIST.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Errno::EEXIST.into())
            }
            Err(e) => return Err(Error::io("mkdir", &dir, e).into()),
        }
        let mut files = control_files(self.profile, self.profile.unlimited(), swappiness, uh, oom);
        if kmem {
            files.push((KMEM_ACTIVE_FILE, "1\n".into()));
            for f in files.iter_mut() {
                if f.0 == knob::KMEM_SLABINFO {
                    f.1 = SLABINFO_HEADER.into();
                }
            }
        }
        let fd = open_dir(&dir).map_err(|e| Error::io("open", &dir, e))?;
        let mut private = BTreeSet::new();
        for (name, content) in &files {
            if content.is_empty() {
                create_at(Some(fd.as_raw_fd()), Path::new(name), b"")
                    .map_err(|e| Error::io("write", dir.join(name), e))?;
                private.insert(name.to_string());
            } else {
                self.link_blob(inner, content, fd.as_raw_fd(), name)
                    .map_err(|e| Error::io("link", dir.join(name), e))?;
            }
        }
        drop(fd);
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
        let name = crate::host::base_name(full).to_string();
        inner
            .nodes
            .get_mut(&par)
            .expect("checked")
            .kids
            .insert(name);
        Ok(self.flush_proc_cgroups(inner)?)
    }

    /// Make `name` in directory `dir` a hard link to the blob holding `content`, making the
    /// blob first if needed.
    fn link_blob(
        &self,
        inner: &mut Inner,
        content: &str,
        dir: RawFd,
        name: &str,
    ) -> std::io::Result<()> {
        if inner.blob_dir.is_none() {
            let p = self.base.join(BLOB_DIR);
            match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            inner.blob_dir = Some(open_dir(&p)?);
        }
        let bfd = inner.blob_dir.as_ref().expect("opened").as_raw_fd();
        let blob = blob_name(content);
        let link = || {
            nix::unistd::linkat(
                Some(bfd),
                blob.as_str(),
                Some(dir),
                name,
                nix::fcntl::AtFlags::empty(),
            )
        };
        if inner.blobs.contains(&blob) {
            match link() {
                Ok(()) => return Ok(()),
                Err(Errno::ENOENT) => {
                    inner.blobs.remove(&blob);
                }
                Err(e) => return Err(errno_io(e)),
            }
        } else {
            match link() {
                Ok(()) => {
                    inner.blobs.insert(blob);
                    return Ok(());
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(errno_io(e)),
            }
        }
        // Made under a temporary name, then renamed: a blob is never seen half written.
        let tmp = format!("{blob}.tmp{}", std::process::id());
        let _ = nix::unistd::unlinkat(
            Some(bfd),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        let fd = nix::fcntl::openat(
            Some(bfd),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o444),
        )
        .map_err(errno_io)?;
        {
            use std::io::Write;
            // SAFETY: openat returned a new descriptor that nothing else owns.
            let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            f.write_all(content.as_bytes())?;
        }
        nix::fcntl::renameat(Some(bfd), tmp.as_str(), Some(bfd), blob.as_str())
            .map_err(errno_io)?;
        link().map_err(errno_io)?;
        inner.blobs.insert(blob);
        Ok(())
    }

    fn do_rmdir(&self, inner: &mut Inner, full: &str) -> FResult<()> {
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
        remove_known_dir(&dir, node.files.keys().map(String::as_str))?;
        let node = inner.nodes.remove(full).expect("checked");
        let par = parent(full).to_string();
        let pn = inner.nodes.get_mut(&par).expect("parent of live");
        pn.kids.remove(crate::host::base_name(full));
        if self.profile.is_3_10() {
            // 3.10 mem_cgroup_css_offline reparents user charges (mem_cgroup_reparent_charges);
            // only kmem (slab) charges keep a deleted memcg and its id (the leak).
            if node.cache + node.anon > 0 {
                pn.cache += node.cache;
                pn.anon += node.anon;
                self.flush_charges(inner, &par)?;
            }
            if node.kmem {
                inner.state.dying_kmem += 1;
            }
        } else if node.cache + node.anon > 0 {
            // Newer kernels do not reparent page cache: a charged memcg stays dying until
            // reclaim (drop_caches) frees its pages.
            inner.state.dying_cache += 1;
        }
        self.persist(inner)?;
        Ok(self.flush_proc_cgroups(inner)?)
    }

    fn do_rename(&self, inner: &mut Inner, from: &str, to: &str) -> FResult<()> {
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
        match nix::fcntl::renameat2(
            None,
            &src,
            None,
            &dst,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(Errno::EEXIST.into()),
            Err(Errno::EINVAL | Errno::ENOSYS) => {
                if dst.exists() {
                    return Err(Errno::EEXIST.into());
                }
                std::fs::rename(&src, &dst).map_err(|e| Error::io("rename", &src, e))?;
            }
            Err(e) => return Err(Error::io("rename", &src, errno_io(e)).into()),
        }
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
            let nk = crate::host::rebase(&k, from, to);
            for tid in &node.tids {
                if let Some(t) = inner.tasks.get_mut(tid) {
                    t.cg = nk.clone();
                }
            }
            inner.nodes.insert(nk, node);
        }
        let pn = inner.nodes.get_mut(parent(from)).expect("parent of live");
        pn.kids.remove(crate::host::base_name(from));
        pn.kids.insert(crate::host::base_name(to).to_string());
        Ok(())
    }
}

/// Name of the blob holding `content` (FNV-1a, stable across builds, and the length).
fn blob_name(content: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in content.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}-{}", content.len())
}

/// The control files of a new memcg (name, content) (memory.rst; mem_cgroup_css_alloc).
fn control_files(
    p: KernelProfile,
    unlimited: u64,
    swappiness: u64,
    use_hierarchy: u64,
    oom_disable: bool,
) -> Vec<(&'static str, String)> {
    let u = format!("{unlimited}\n");
    vec![
        (knob::PROCS, String::new()),
        (knob::TASKS, String::new()),
        ("cgroup.clone_children", "0\n".into()),
        ("notify_on_release", "0\n".into()),
        (knob::LIMIT, u.clone()),
        (knob::SOFT_LIMIT, u.clone()),
        (knob::MEMSW_LIMIT, u.clone()),
        (knob::KMEM_LIMIT, u),
        (knob::SWAPPINESS, format!("{swappiness}\n")),
        (knob::USE_HIERARCHY, format!("{use_hierarchy}\n")),
        (knob::OOM_CONTROL, oom_control_content(p, oom_disable)),
        (knob::MOVE_CHARGE, "0\n".into()),
        (knob::FORCE_EMPTY, String::new()),
        (knob::USAGE, "0\n".into()),
        (knob::KMEM_SLABINFO, String::new()),
        (STAT, stat_content(p, 0, 0)),
    ]
}

/// /proc/cgroups as on a real node. 3.10 counts live memcgs only (num_cgroups decremented at
/// rmdir); later kernels count until the css is freed, dying ones included.
fn proc_cgroups_content(is_3_10: bool, live: u64, dying: u64) -> String {
    let memory = if is_3_10 { live } else { live + dying };
    let mut s = String::from("#subsys_name\thierarchy\tnum_cgroups\tenabled\n");
    for (name, h, n) in [
        ("cpuset", 2, 1),
        ("cpu", 3, 1),
        ("cpuacct", 3, 1),
        ("blkio", 5, 1),
        ("memory", 4, memory),
        ("devices", 6, 1),
        ("freezer", 7, 1),
        ("net_cls", 8, 1),
        ("perf_event", 9, 1),
        ("hugetlb", 10, 1),
        ("pids", 11, 1),
    ] {
        s.push_str(&format!("{name}\t{h}\t{n}\t1\n"));
    }
    s
}

/// Build the index from disk: every cgroup directory, its hidden state and tasks, and the
/// thread groups of those tasks (from proc/<tid>/status).
fn load_tree(base: &Path, mount: &Path, inner: &mut Inner) -> Result<()> {
    let proc_dir = base.join(PROC_DIR);
    let rd = std::fs::read_dir(&proc_dir).map_err(|e| Error::io("read_dir", &proc_dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read_dir", &proc_dir, e))?;
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            inner.proc_pids.insert(pid);
        }
    }
    let mut stack = vec![String::new()];
    let mut buf = Vec::with_capacity(8192);
    while let Some(full) = stack.pop() {
        let dir = if full.is_empty() {
            mount.to_path_buf()
        } else {
            mount.join(&full)
        };
        let mut node = Node::default();
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read_dir", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read_dir", &dir, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("stat", entry.path(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                stack.push(join(&full, &name));
                node.kids.insert(name);
            } else {
                if name == KMEM_ACTIVE_FILE {
                    node.kmem = true;
                }
                node.files.insert(name, None);
            }
        }
        for (file, v) in [(CACHE_FILE, &mut node.cache), (ANON_FILE, &mut node.anon)] {
            if node.files.contains_key(file) {
                let p = dir.join(file);
                let s = read_file(&p)?;
                *v = parse_counter(&p, s.clone())?;
                node.files.insert(file.to_string(), Some(s));
            }
        }
        let tp = dir.join(knob::TASKS);
        let tasks = read_file(&tp)?;
        for tid in crate::host::parse_pids(&tp, &tasks)? {
            let pd = proc_dir.join(tid.to_string());
            let sp = pd.join("status");
            let status = read_file(&sp)?;
            let tgid = status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .ok_or_else(|| Error::Parse {
                    path: sp.clone(),
                    what: "Tgid line".into(),
                    content: status.clone(),
                })?;
            let anon = if tgid == tid {
                let ap = pd.join(PROC_ANON_FILE);
                match read_at(None, &ap, &mut buf) {
                    Ok(()) => parse_counter(&ap, String::from_utf8_lossy(&buf).into_owned())?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                    Err(e) => return Err(Error::io("read", &ap, e)),
                }
            } else {
                0
            };
            inner.tasks.insert(
                tid,
                Task {
                    tgid,
                    cg: full.clone(),
                    anon,
                },
            );
            inner.groups.entry(tgid).or_default().insert(tid);
            node.tids.insert(tid);
        }
        node.files.insert(knob::TASKS.to_string(), Some(tasks));
        inner.nodes.insert(full, node);
    }
    Ok(())
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
        let mut inner = self.lock();
        let path = self.abs(cg);
        self.match_fault(&mut inner, FsOp::List, &path)
            .map_err(|f| fail_to_error(f, FsOp::List, &path, None))?;
        match self.full(cg).and_then(|f| inner.nodes.get(&f)) {
            Some(n) => Ok(n.kids.iter().cloned().collect()),
            None => Err(sys(FsOp::List, path, Errno::ENOENT)),
        }
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
        let mut inner = self.lock();
        let path = self.abs(cg).join(file);
        self.match_fault(&mut inner, FsOp::Read, &path)
            .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
        let enoent = || sys(FsOp::Read, &path, Errno::ENOENT);
        let full = self.full(cg).ok_or_else(enoent)?;
        let Some(node) = inner.nodes.get(&full) else {
            return Err(enoent());
        };
        if file.starts_with("emulated.") || file.contains('/') || !node.files.contains_key(file) {
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
            knob::USAGE => Ok(format!("{}\n", node.cache + node.anon)),
            STAT => Ok(stat_content(self.profile, node.cache, node.anon)),
            _ => self
                .load_file(&mut inner, &full, file)
                .map_err(|e| match e.raw_os_error() {
                    Some(n) => sys(FsOp::Read, &path, Errno::from_raw(n)),
                    None => Error::io("read", self.dir(&full).join(file), e),
                }),
        }
    }

    fn write(&self, cg: &str, file: &str, value: &str) -> Result<()> {
        let mut inner = self.lock();
        let path = self.abs(cg).join(file);
        let err = |f| fail_to_error(f, FsOp::Write, &path, Some(value));
        self.mutation(&mut inner, FsOp::Write, &path).map_err(err)?;
        // cgroup_file_write strips surrounding whitespace (the trailing newline of echo).
        let v = value.trim();
        let full = self
            .full(cg)
            .ok_or(Fail::Errno(Errno::ENOENT))
            .map_err(err)?;
        self.do_write(&mut inner, &full, file, v).map_err(err)
    }

    fn mkdir(&self, cg: &str) -> Result<()> {
        let mut inner = self.lock();
        let path = self.abs(cg);
        let err = |f| fail_to_error(f, FsOp::Mkdir, &path, None);
        self.mutation(&mut inner, FsOp::Mkdir, &path).map_err(err)?;
        let full = self
            .full(cg)
            .ok_or(Fail::Errno(Errno::ENOENT))
            .map_err(err)?;
        self.do_mkdir(&mut inner, &full).map_err(err)
    }

    fn rmdir(&self, cg: &str) -> Result<()> {
        let mut inner = self.lock();
        let path = self.abs(cg);
        let err = |f| fail_to_error(f, FsOp::Rmdir, &path, None);
        self.mutation(&mut inner, FsOp::Rmdir, &path).map_err(err)?;
        let full = self
            .full(cg)
            .ok_or(Fail::Errno(Errno::ENOENT))
            .map_err(err)?;
        self.do_rmdir(&mut inner, &full).map_err(err)
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut inner = self.lock();
        let path = self.abs(from);
        let err = |f| fail_to_error(f, FsOp::Rename, &path, None);
        self.mutation(&mut inner, FsOp::Rename, &path)
            .map_err(err)?;
        let (Some(f), Some(t)) = (self.full(from), self.full(to)) else {
            return Err(err(Fail::Errno(Errno::ENOENT)));
        };
        self.do_rename(&mut inner, &f, &t).map_err(err)
    }

    fn hierarchy_mount(&self) -> PathBuf {
        self.mount.clone()
    }

    fn hierarchy_live(&self) -> Result<u64> {
        Ok(self.lock().nodes.len() as u64)
    }
}

impl Host for EmulatedFs {
    fn kernel_release(&self) -> Result<String> {
        Ok(self.lock().state.kernel_release.clone())
    }

    fn proc_cgroups(&self) -> Result<String> {
        let mut inner = self.lock();
        let path = self.base.join(PROC_DIR).join("cgroups");
        self.match_fault(&mut inner, FsOp::Read, &path)
            .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
        Ok(self.proc_cgroups_string(&inner))
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
        let mut inner = self.lock();
        let pids: Vec<u32> = inner.proc_pids.iter().copied().collect();
        let mut out = Vec::new();
        for pid in pids {
            // Like /proc's listing: thread-group leaders only.
            if inner.tasks.get(&pid).is_some_and(|t| t.tgid != pid) {
                continue;
            }
            if matches!(self.comm(&mut inner, pid), Ok(c) if c == comm) {
                out.push(pid);
            }
        }
        Ok(out)
    }

    fn pid_alive(&self, pid: u32) -> bool {
        self.lock().proc_pids.contains(&pid)
    }

    fn drop_caches(&self, what: u8) -> Result<()> {
        let mut inner = self.lock();
        let path = self.base.join(PROC_DIR).join("sys/vm/drop_caches");
        // Not counted as a mutation of the hierarchy, but Match faults (op Write) apply.
        self.match_fault(&mut inner, FsOp::Write, &path)
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
                self.flush_charges(&mut inner, &k)?;
            }
            if inner.state.dying_cache > 0 {
                inner.state.dying_cache = 0;
                self.persist(&mut inner)?;
                self.flush_proc_cgroups(&mut inner)?;
            }
        }
        Ok(())
    }

    fn may_write(&self) -> bool {
        true
    }

    fn proc_swaps(&self) -> Result<String> {
        let mut inner = self.lock();
        let path = self.base.join(PROC_DIR).join("swaps");
        self.match_fault(&mut inner, FsOp::Read, &path)
            .map_err(|f| fail_to_error(f, FsOp::Read, &path, None))?;
        Ok(Self::swaps_string(&inner))
    }

    fn meminfo(&self) -> Result<String> {
        Ok(Self::meminfo_string(&self.lock()))
    }

    fn swapoff(&self, area: &Path) -> Result<()> {
        let mut inner = self.lock();
        self.match_fault(&mut inner, FsOp::Swapoff, area)
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
        self.persist(&mut inner)?;
        self.flush_swaps(&inner)?;
        self.flush_proc_cgroups(&mut inner)
    }

    fn swapon(&self, area: &Path, priority: Option<i32>) -> Result<()> {
        let mut inner = self.lock();
        self.match_fault(&mut inner, FsOp::Swapon, area)
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
        self.persist(&mut inner)?;
        self.flush_swaps(&inner)
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
