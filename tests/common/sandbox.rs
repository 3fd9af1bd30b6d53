//! A throw-away memory cgroup for real-kernel tests.
//!
//! Safety rules (this machine's memory hierarchy is real and shared): every cgroup a test makes
//! lives in `<own memory cgroup>/cgleak-test-<tag>-<pid>-<nanos>-<counter>`; the only processes
//! ever signalled are the children this sandbox started, and processes found inside the
//! sandbox's own cgroups (descendants of those children), each checked through a pidfd so that a
//! recycled pid is never hit; [`Drop`] removes every cgroup of the sandbox, leaf first, even
//! when the test panics.
//!
//! Reaping: PID 1 of this machine does not reap orphans, so grandchildren (the forker's
//! `sleep 0.2 &`) orphaned by killing their parent would stay zombies for good. The test process
//! therefore makes itself a child subreaper, and [`Drop`] stops each child first, kills the
//! child's own children while they are pinned (a stopped parent reaps nothing, so their pids
//! cannot be recycled), kills the child, and reaps the grandchildren that were reparented to us.

use nix::errno::Errno;
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

/// The state letter of /proc/PID/stat (R, S, T, Z, ...), None when the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: the state follows the last ')'.
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The parent pid from /proc/PID/stat.
fn proc_ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The children of `parent` (which must be stopped or a zombie-holding parent, so the list
/// stays valid): every /proc entry whose parent pid is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&p| proc_ppid(p) == Some(parent))
        .collect()
}

fn signal_pid(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Kill and reap the processes this sandbox started, and their children.
fn kill_and_reap(children: &mut [Child]) {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let mut grandchildren = Vec::new();
    for c in children.iter_mut() {
        if matches!(c.try_wait(), Ok(Some(_))) {
            continue; // reaped: the pid is no longer ours
        }
        let pid = c.id();
        // Unreaped, so the pid still names our child. Stop it so it forks and reaps no more.
        signal_pid(pid, Signal::SIGSTOP);
        let start = Instant::now();
        while !matches!(proc_state(pid), Some('T') | Some('t') | Some('Z') | None)
            && start.elapsed() < Duration::from_secs(1)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Its children cannot be reaped while it is stopped: their pids are pinned. Unless it
        // is confirmed stopped, leave them alone (the cgroup.procs sweep still gets them).
        if !matches!(proc_state(pid), Some('T') | Some('t')) {
            continue;
        }
        for g in children_of(pid) {
            signal_pid(g, Signal::SIGKILL);
            grandchildren.push(g);
        }
    }
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    // Reparented to us (subreaper) when their parent died: reap them. ECHILD if someone else
    // (no subreaper) got them.
    for g in grandchildren {
        let start = Instant::now();
        loop {
            match waitpid(
                nix::unistd::Pid::from_raw(g as i32),
                Some(WaitPidFlag::WNOHANG),
            ) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(Errno::EINTR)
                    if start.elapsed() < Duration::from_secs(2) =>
                {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => break,
            }
        }
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

/// What this machine offers real-kernel tests: whether we are root, and this process's own
/// memory cgroup when it is a writable cgroup v1 memory cgroup (why not, otherwise; only probed
/// as root). Writability is probed with an mkdir and rmdir of a uniquely named cgroup.
pub fn machine() -> (bool, Result<PathBuf, String>) {
    if !nix::unistd::geteuid().is_root() {
        return (false, Err("not probed: not root".into()));
    }
    (true, writable_own_memcg())
}

fn writable_own_memcg() -> Result<PathBuf, String> {
    let own = cgleak::host::kernel::own_memory_cgroup().ok_or_else(|| {
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
    Ok(own)
}

/// A uniquely named cgroup below this process's own memory cgroup, removed on drop.
pub struct Sandbox {
    path: PathBuf,
    children: Mutex<Vec<Child>>,
}

impl Sandbox {
    /// Make a sandbox, or say why real-kernel tests cannot run here.
    pub fn new(tag: &str) -> Result<Sandbox, String> {
        let (root, memcg) = machine();
        if !root {
            return Err(format!(
                "not root (euid {}): creating memory cgroups needs root",
                nix::unistd::geteuid()
            ));
        }
        Sandbox::create_in(&memcg?, tag)
    }

    /// Make a sandbox below `own`, this process's memory cgroup as [`machine`] found it.
    pub fn create_in(own: &Path, tag: &str) -> Result<Sandbox, String> {
        // Orphans of our children come to us, not to a PID 1 that may never reap them.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("prctl(PR_SET_CHILD_SUBREAPER): {e}"))?;
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
        // It forks only once it is in `rel_cg`: a child forked before spawn_into moved it would
        // stay in this test's own cgroup (a child starts in its parent's cgroup at fork). The
        // wait reads /proc/$$/cgroup with shell builtins, forking nothing.
        let script = format!(
            "inside() {{ while read -r l; do case \"$l\" in *memory*'/{}') return 0;; esac; \
             done < /proc/$$/cgroup; return 1; }}; until inside; do :; done; \
             end=$(( $(date +%s) + 60 )); \
             while [ \"$(date +%s)\" -lt \"$end\" ]; do sleep 0.2 & sleep 0.005; done",
            self.cg(rel_cg).file_name().unwrap().to_string_lossy(),
        );
        self.spawn_into(rel_cg, Command::new("sh").arg("-c").arg(script))
    }

    /// Start a shell that, once moved into `rel_cg`, writes `mib` MiB of zeros to `file`
    /// (page cache charged to that cgroup) and then sleeps; returns its pid once the file is
    /// complete.
    pub fn spawn_page_cache_writer(&self, rel_cg: &str, file: &Path, mib: u32) -> u32 {
        let done = file.with_extension("done");
        let script = format!(
            "while ! grep -q '{}' /proc/$$/cgroup; do sleep 0.01; done; \
             head -c {}M /dev/zero > '{}' && touch '{}'; exec sleep 3600",
            self.cg(rel_cg).file_name().unwrap().to_string_lossy(),
            mib,
            file.display(),
            done.display()
        );
        let pid = self.spawn_into(rel_cg, Command::new("sh").arg("-c").arg(script));
        let start = std::time::Instant::now();
        while !done.exists() {
            assert!(
                start.elapsed().as_secs() < 30,
                "{} never written",
                file.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        pid
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
        kill_and_reap(std::slice::from_mut(c));
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
        kill_and_reap(&mut children);
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
