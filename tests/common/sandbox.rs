//! A throw-away memory cgroup for real-kernel tests.
//!
//! Safety rules (this machine's memory hierarchy is real and shared): every cgroup a test makes
//! lives in `<own memory cgroup>/cgleak-test-<tag>-<pid>-<nanos>-<counter>`; the only processes
//! ever signalled are the children this sandbox started, and processes found inside the
//! sandbox's own cgroups (descendants of those children), each checked through a pidfd so that a
//! recycled pid is never hit; [`Drop`] removes every cgroup of the sandbox, leaf first, even
//! when the test panics.

use nix::libc;
use nix::sys::statfs::{statfs, CGROUP_SUPER_MAGIC};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How long [`Drop`] retries an rmdir that fails with EBUSY: killed tasks leave their cgroup
/// asynchronously, after wait(2) has returned.
const RMDIR_PATIENCE: Duration = Duration::from_secs(3);

/// A unique name: pid, time and a per-process counter (tests of one binary share the pid).
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Write a pid (or any value) to a cgroup file with one write(2), as the kernel wants.
fn write_value(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let n = f.write(value.as_bytes())?;
    if n != value.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

fn read_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// SIGKILL `pid` only if it is (still) a member of the cgroup `dir`, which belongs to this
/// sandbox. The pidfd pins the process: if it is alive after `dir`'s cgroup.procs listed its pid,
/// the listing was about that very process, not a later one that got the recycled pid.
fn kill_member(pid: u32, dir: &Path) {
    // SAFETY: plain system calls with integer arguments; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return; // gone already
    }
    // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !read_pids(dir).contains(&pid) {
        return;
    }
    let signal = |sig: i32| unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if signal(0) == 0 {
        signal(libc::SIGKILL);
    }
}

/// Kill whatever is left in the cgroup `dir` (children of our forker, orphaned by its death).
fn kill_members(dir: &Path) {
    for pid in read_pids(dir) {
        if pid != std::process::id() {
            kill_member(pid, dir);
        }
    }
}

/// rmdir a sandbox cgroup, retrying EBUSY while its last tasks leave.
fn remove_cgroup(dir: &Path) {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < RMDIR_PATIENCE => {
                kill_members(dir);
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                eprintln!("sandbox cleanup: rmdir {}: {e}", dir.display());
                return;
            }
        }
    }
}

/// A uniquely named cgroup below this process's own memory cgroup, removed on drop.
pub struct Sandbox {
    path: PathBuf,
    children: Mutex<Vec<Child>>,
}

impl Sandbox {
    /// Make a sandbox, or say why real-kernel tests cannot run here.
    pub fn new(tag: &str) -> Result<Sandbox, String> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(format!(
                "not root (euid {euid}): creating memory cgroups needs root"
            ));
        }
        let own = cgleak::fs::kernel::own_memory_cgroup().ok_or_else(|| {
            "no memory cgroup v1 hierarchy (no memory line in /proc/self/cgroup or no cgroup \
             mount with the memory controller)"
                .to_string()
        })?;
        match statfs(&own) {
            Ok(st) if st.filesystem_type() == CGROUP_SUPER_MAGIC => {}
            Ok(_) => {
                return Err(format!(
                    "own memory cgroup {} is not on a cgroup v1 filesystem",
                    own.display()
                ))
            }
            Err(e) => return Err(format!("own memory cgroup {}: {e}", own.display())),
        }
        let probe = own.join(unique("cgleak-probe"));
        std::fs::create_dir(&probe).map_err(|e| {
            format!(
                "own memory cgroup {} is not writable (mkdir {}: {e})",
                own.display(),
                probe.display()
            )
        })?;
        std::fs::remove_dir(&probe)
            .map_err(|e| format!("cannot remove probe cgroup {}: {e}", probe.display()))?;
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let path = own.join(unique(&format!("cgleak-test-{tag}")));
        std::fs::create_dir(&path).map_err(|e| format!("mkdir sandbox {}: {e}", path.display()))?;
        Ok(Sandbox {
            path,
            children: Mutex::new(Vec::new()),
        })
    }

    /// The sandbox cgroup (absolute): pass it as `--root`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The absolute path of a cgroup relative to the sandbox; refuses to leave it.
    pub fn cg(&self, rel: &str) -> PathBuf {
        let mut p = self.path.clone();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(n) => p.push(n),
                Component::CurDir => {}
                _ => panic!("sandbox path {rel:?} must stay inside the sandbox"),
            }
        }
        p
    }

    /// Create a cgroup (and missing parents) below the sandbox; returns its absolute path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.cg(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Start `sleep 3600` and move it into the sandbox cgroup `rel_cg`; returns its pid.
    pub fn spawn_sleeper(&self, rel_cg: &str) -> u32 {
        self.spawn_into(rel_cg, Command::new("sleep").arg("3600"))
    }

    /// Start a shell that forks a short-lived `sleep 0.2 &` every ~5 ms, in `rel_cg`; it exits
    /// by itself after about 60 s. Its children inherit the cgroup, so a cgroup holding a forker
    /// keeps gaining tasks (the race a repair must survive).
    pub fn spawn_forker(&self, rel_cg: &str) -> u32 {
        let script = "end=$(( $(date +%s) + 60 )); \
                      while [ \"$(date +%s)\" -lt \"$end\" ]; do sleep 0.2 & sleep 0.005; done";
        self.spawn_into(rel_cg, Command::new("sh").arg("-c").arg(script))
    }

    fn spawn_into(&self, rel_cg: &str, cmd: &mut Command) -> u32 {
        let procs = self.cg(rel_cg).join("cgroup.procs");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let pid = child.id();
        // Keep the Child before anything can fail, so Drop kills it.
        self.children.lock().unwrap().push(child);
        write_value(&procs, &pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} to {}: {e}", procs.display()));
        pid
    }

    /// Pids of the processes this sandbox started (alive or not).
    pub fn pids(&self) -> Vec<u32> {
        self.children
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.id())
            .collect()
    }

    /// SIGKILL one of our children and reap it; false if `pid` is not ours.
    pub fn kill(&self, pid: u32) -> bool {
        let mut children = self.children.lock().unwrap();
        let Some(c) = children.iter_mut().find(|c| c.id() == pid) else {
            return false;
        };
        // Not reaped yet, so the pid still names our child (a zombie at worst).
        let _ = c.kill();
        let _ = c.wait();
        true
    }

    /// Every cgroup directory of the sandbox, deepest first (the sandbox itself last).
    pub fn cgroups_leaf_first(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&self.path)
            .follow_links(false)
            .same_file_system(true)
            .contents_first(true)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_dir())
            .map(|e| e.into_path())
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let mut children = std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| {
            // A test panicked while holding the lock: clean up all the same.
            p.into_inner()
        }));
        for c in &mut children {
            let _ = c.kill();
        }
        for c in &mut children {
            let _ = c.wait();
        }
        for dir in self.cgroups_leaf_first() {
            // Never anything outside the sandbox: the walk starts at it and stays on the fs.
            debug_assert!(dir.starts_with(&self.path));
            remove_cgroup(&dir);
        }
        if self.path.exists() {
            eprintln!(
                "sandbox cleanup: {} could not be removed",
                self.path.display()
            );
        }
    }
}
