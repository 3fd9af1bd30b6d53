//! KernelFs against the real kernel, inside a sandbox cgroup below this process's own memory
//! cgroup (see tests/common). Tests that need root and a memory v1 hierarchy skip (and log SKIP
//! to $CGLEAK_REAL_LOG) elsewhere. Assertions state what this kernel does; where kernels differ,
//! the comment says which behaviour is being pinned.

mod common;

use cgleak::error::{BadRoot, Error, FsOp, SysError};
use cgleak::host::kernel::{self, KernelFs};
use cgleak::host::{knob, read_procs, read_u64, CgroupMode, Hierarchy, Host};
use nix::errno::Errno;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
use std::path::Path;
use std::time::{Duration, Instant};

/// Larger than any pid the kernel can hand out (PID_MAX_LIMIT = 4194304 on 64-bit): writing it
/// can never move a process that is not ours.
const NO_SUCH_PID: u32 = 4_194_304;

macro_rules! sandbox {
    ($name:expr) => {
        match common::real_kernel($name) {
            Some(sb) => sb,
            None => return,
        }
    };
}

fn sys_err<T: std::fmt::Debug>(r: cgleak::Result<T>) -> SysError {
    match r {
        Err(Error::Sys(e)) => e,
        other => panic!("expected a system-call error, got {other:?}"),
    }
}

fn bad_root(path: &str) -> Option<BadRoot> {
    match KernelFs::open(Path::new(path)) {
        Err(Error::BadRoot { reason, .. }) => Some(reason),
        Err(e) => panic!("{path}: unexpected error {e}"),
        Ok(_) => None,
    }
}

fn is_fs(path: &str, magic: nix::sys::statfs::FsType) -> bool {
    statfs(path)
        .map(|s| s.filesystem_type() == magic)
        .unwrap_or(false)
}

fn open(sb: &common::Sandbox) -> KernelFs {
    KernelFs::open(sb.path()).expect("open the sandbox as --root")
}

/// Retry `f` until it is true or 3 s passed (tasks leave a cgroup asynchronously).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

#[test]
fn open_refuses_what_is_not_a_memory_v1_hierarchy() {
    // Read-only checks: no sandbox needed, they hold on any Linux machine.
    assert_eq!(bad_root("/nonexistent"), Some(BadRoot::NotFound));
    assert_eq!(bad_root("/proc/self/cgroup"), Some(BadRoot::NotADirectory));
    match bad_root("/tmp") {
        Some(BadRoot::NotCgroupFs(fs)) => {
            let mounts =
                kernel::parse_mountinfo(&std::fs::read_to_string(kernel::MOUNTINFO).unwrap());
            let tmp = std::fs::canonicalize("/tmp").unwrap();
            let m = kernel::mount_of(&mounts, &tmp).unwrap();
            assert_eq!(fs, m.fstype, "the filesystem type comes from mountinfo");
        }
        other => panic!("/tmp: {other:?}"),
    }
    // This machine mounts cpu alone (elsewhere often cpu,cpuacct): the message names it.
    if is_fs("/sys/fs/cgroup/cpu", CGROUP_SUPER_MAGIC) {
        match bad_root("/sys/fs/cgroup/cpu") {
            Some(BadRoot::NotMemory(what)) => {
                assert!(what.starts_with("controllers: "), "{what}");
                assert!(what.contains("cpu"), "{what}");
            }
            other => panic!("/sys/fs/cgroup/cpu: {other:?}"),
        }
    } else {
        eprintln!("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu: NotMemory not checked");
    }
    if is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC) {
        assert_eq!(bad_root("/sys/fs/cgroup/unified"), Some(BadRoot::CgroupV2));
    } else {
        eprintln!("no cgroup2 at /sys/fs/cgroup/unified: CgroupV2 not checked");
    }
    let e = KernelFs::open(Path::new("/nonexistent")).err().unwrap();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("--root /nonexistent"), "{e}");
}

#[test]
fn own_memory_cgroup_is_the_dir_of_proc_self_cgroup() {
    let _sb = sandbox!("own_memory_cgroup_is_the_dir_of_proc_self_cgroup");
    let own = kernel::own_memory_cgroup().unwrap();
    let cg = std::fs::read_to_string(kernel::PROC_SELF_CGROUP).unwrap();
    let rel = kernel::memory_cgroup_path(&cg).unwrap();
    assert!(own.is_dir(), "{}", own.display());
    assert!(
        own.ends_with(rel.trim_start_matches('/')),
        "{}",
        own.display()
    );
    // Our own pid is listed there.
    let procs = std::fs::read_to_string(own.join(knob::PROCS)).unwrap();
    let me = std::process::id().to_string();
    assert!(procs.lines().any(|l| l == me));
}

#[test]
fn open_sandbox_and_machine_facts() {
    let sb = sandbox!("open_sandbox_and_machine_facts");
    let fs = open(&sb);
    assert_eq!(fs.root(), sb.path());
    let mount = fs.hierarchy_mount();
    assert!(sb.path().starts_with(&mount));
    assert!(is_fs(mount.to_str().unwrap(), CGROUP_SUPER_MAGIC));
    // The mount is the top of the memory hierarchy: it has files only the root cgroup has
    // (cgroup.sane_behavior, release_agent) on v1.
    assert!(mount.join("release_agent").exists());
    assert!(fs.exists(""));
    assert!(fs.may_write());
    let release = fs.kernel_release().unwrap();
    assert_eq!(
        release,
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .trim()
    );
    let d = fs.describe();
    assert!(d.starts_with("kernel cgroupfs: "), "{d}");
    assert!(d.contains(sb.path().to_str().unwrap()), "{d}");
    assert!(
        d.contains(&format!("memory hierarchy at {}", mount.display())),
        "{d}"
    );
    assert!(d.contains(&release), "{d}");
    let boot = fs.boot_id().unwrap();
    assert_eq!(boot.len(), 36, "{boot:?}");
    assert_eq!(boot.matches('-').count(), 4, "{boot:?}");
    let (_, counted, enabled) =
        cgleak::host::parse_proc_cgroups_memory(&fs.proc_cgroups().unwrap())
            .expect("memory row in /proc/cgroups");
    assert!(enabled);
    // num_cgroups counts live and dying memcgs on this kernel: at least the live ones.
    assert!(counted >= 2, "{counted}");
    assert!(!fs.kernel_cmdline().unwrap().trim().is_empty());
    // A root given through a symlink-free relative form is canonicalized.
    let again = KernelFs::open(&sb.path().join(".")).unwrap();
    assert_eq!(again.root(), sb.path());
}

#[test]
fn mkdir_write_read_rmdir_and_page_rounding() {
    let sb = sandbox!("mkdir_write_read_rmdir_and_page_rounding");
    let fs = open(&sb);
    assert!(!fs.exists("a"));
    fs.mkdir("a").unwrap();
    assert!(fs.exists("a"));
    assert!(sb.cg("a").is_dir());
    assert!(fs.has_file("a", knob::LIMIT));
    assert!(fs.has_file("a", knob::PROCS));
    assert!(!fs.has_file("a", "memory.no_such_knob"));
    assert!(!fs.has_file("missing", knob::LIMIT));
    // A fresh child has no limit.
    assert!(cgleak::model::is_unlimited(
        read_u64(&fs, "a", knob::LIMIT).unwrap()
    ));
    // Limits are rounded down to the page size (memory.rst); re-read to learn the value.
    fs.write("a", knob::LIMIT, "12345678").unwrap();
    assert_eq!(read_u64(&fs, "a", knob::LIMIT).unwrap(), 12345344);
    fs.write("a", knob::SOFT_LIMIT, "8388608\n").unwrap();
    assert_eq!(read_u64(&fs, "a", knob::SOFT_LIMIT).unwrap(), 8388608);
    fs.write("a", knob::SWAPPINESS, "17").unwrap();
    assert_eq!(read_u64(&fs, "a", knob::SWAPPINESS).unwrap(), 17);
    fs.write("a", knob::OOM_CONTROL, "1").unwrap();
    let oom = fs.read("a", knob::OOM_CONTROL).unwrap();
    assert!(
        cgleak::host::parse_oom_kill_disable(Path::new("x"), &oom).unwrap(),
        "{oom}"
    );
    // Nested cgroups; mkdir of an existing one is EEXIST with the path.
    fs.mkdir("a/b").unwrap();
    let e = sys_err(fs.mkdir("a"));
    assert_eq!(
        (e.op, e.errno, e.path.as_path()),
        (FsOp::Mkdir, Errno::EEXIST, sb.cg("a").as_path())
    );
    // mkdir needs the parent (no mkdir -p).
    let e = sys_err(fs.mkdir("x/y"));
    assert_eq!((e.op, e.errno), (FsOp::Mkdir, Errno::ENOENT));
    fs.rmdir("a/b").unwrap();
    fs.rmdir("a").unwrap();
    assert!(!fs.exists("a"));
    let e = sys_err(fs.rmdir("a"));
    assert_eq!((e.op, e.errno), (FsOp::Rmdir, Errno::ENOENT));
    // Paths never leave --root.
    let e = sys_err(fs.mkdir("../escape"));
    assert_eq!(e.errno, Errno::EINVAL);
    assert!(!sb.path().parent().unwrap().join("escape").exists());
    let e = sys_err(fs.write("", "../cgroup.procs", "1"));
    assert_eq!(e.errno, Errno::EINVAL);
    assert_eq!(sys_err(fs.rmdir("")).errno, Errno::EINVAL);
}

#[test]
fn memsw_below_limit_is_einval_with_the_path() {
    let sb = sandbox!("memsw_below_limit_is_einval_with_the_path");
    let fs = open(&sb);
    fs.mkdir("m").unwrap();
    if !fs.has_file("m", knob::MEMSW_LIMIT) {
        eprintln!("no swap accounting here (no memory.memsw.*): memsw rule not checked");
        return;
    }
    fs.write("m", knob::LIMIT, "67108864").unwrap();
    let e = sys_err(fs.write("m", knob::MEMSW_LIMIT, "33554432\n"));
    assert_eq!(e.op, FsOp::Write);
    assert_eq!(e.errno, Errno::EINVAL);
    assert_eq!(e.path, sb.cg("m").join(knob::MEMSW_LIMIT));
    assert_eq!(e.value.as_deref(), Some("33554432"));
    let s = Error::Sys(e).to_string();
    assert!(
        s.contains(&sb.cg("m").join(knob::MEMSW_LIMIT).display().to_string()),
        "{s}"
    );
    assert!(s.contains("memsw"), "{s}");
    // Raising: memsw first, then the limit (runc's order).
    fs.write("m", knob::MEMSW_LIMIT, "134217728").unwrap();
    fs.write("m", knob::LIMIT, "134217728").unwrap();
    // Lowering the limit above memsw... raising the limit above memsw is EINVAL too.
    let e = sys_err(fs.write("m", knob::LIMIT, "268435456"));
    assert_eq!(e.errno, Errno::EINVAL);
    assert_eq!(read_u64(&fs, "m", knob::LIMIT).unwrap(), 134217728);
}

#[test]
fn rmdir_is_ebusy_with_a_task_or_a_child() {
    let sb = sandbox!("rmdir_is_ebusy_with_a_task_or_a_child");
    let fs = open(&sb);
    fs.mkdir("busy").unwrap();
    let pid = sb.spawn_sleeper("busy");
    let e = sys_err(fs.rmdir("busy"));
    assert_eq!(
        (e.op, e.errno, e.path.as_path()),
        (FsOp::Rmdir, Errno::EBUSY, sb.cg("busy").as_path())
    );
    assert!(e.meaning().contains("tasks or child cgroups"));
    fs.mkdir("parent").unwrap();
    fs.mkdir("parent/child").unwrap();
    assert_eq!(sys_err(fs.rmdir("parent")).errno, Errno::EBUSY);
    fs.rmdir("parent/child").unwrap();
    fs.rmdir("parent").unwrap();
    // Once the task is gone the cgroup can go (the exit is seen asynchronously).
    assert!(sb.kill(pid));
    assert!(eventually(|| fs.rmdir("busy").is_ok()));
}

/// force_empty reclaims the page cache charged to a cgroup; the executor skips it where
/// memory.stat shows none; the budget's timer signal (SIGALRM at this thread) cuts the write
/// short at worst and never kills the process.
#[test]
fn force_empty_reclaims_page_cache_within_its_budget() {
    let sb = sandbox!("force_empty_reclaims_page_cache_within_its_budget");
    let fs = open(&sb);
    fs.mkdir("cache-writer").unwrap();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let pid = sb.spawn_page_cache_writer("cache-writer", &dir.path().join("data"), 8);
    let cache = |fs: &KernelFs| -> u64 {
        let stat = fs.read("cache-writer", knob::STAT).unwrap();
        stat.lines()
            .find_map(|l| l.strip_prefix("total_cache "))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(cache(&fs) >= 4 << 20, "{}", cache(&fs));
    assert!(cgleak::repair::execute::stat_shows_page_cache(
        &fs.read("cache-writer", knob::STAT).unwrap()
    ));
    // move the writer out, so only its page cache is left in the cgroup
    fs.write("", knob::PROCS, &pid.to_string()).unwrap();
    let done = fs
        .force_empty("cache-writer", Duration::from_secs(5))
        .unwrap();
    assert!(done, "6.x finishes at once");
    // what stays is the mapped text of the shell and sleep binaries (in use, not reclaimable)
    assert!(cache(&fs) < 1 << 20, "{}", cache(&fs));
    // a budget that expires at once: cut or finished, never an error or a dead process
    for _ in 0..20 {
        fs.force_empty("cache-writer", Duration::from_nanos(1))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    fs.rmdir("cache-writer").unwrap();
    // not on the root
    assert_eq!(
        sys_err(fs.force_empty("missing", Duration::from_secs(1))).errno,
        Errno::ENOENT
    );
}

#[test]
fn cgroup_procs_moves_a_process_and_dead_pids_are_esrch() {
    let sb = sandbox!("cgroup_procs_moves_a_process_and_dead_pids_are_esrch");
    let fs = open(&sb);
    fs.mkdir("a").unwrap();
    fs.mkdir("b").unwrap();
    let pid = sb.spawn_sleeper("a");
    assert_eq!(read_procs(&fs, "a").unwrap(), vec![pid]);
    fs.write("b", knob::PROCS, &pid.to_string()).unwrap();
    assert_eq!(read_procs(&fs, "b").unwrap(), vec![pid]);
    assert!(read_procs(&fs, "a").unwrap().is_empty());
    let proc_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = kernel::memory_cgroup_path(&proc_cg).unwrap();
    assert!(mem.ends_with("/b"), "{mem}");
    // tasks lists the same (single-threaded) process.
    assert_eq!(cgleak::host::read_tasks(&fs, "b").unwrap(), vec![pid]);
    // A pid that does not exist: ESRCH, with the value in the error.
    let e = sys_err(fs.write("b", knob::PROCS, &NO_SUCH_PID.to_string()));
    assert_eq!(
        (e.op, e.errno, e.path.as_path()),
        (
            FsOp::Write,
            Errno::ESRCH,
            sb.cg("b").join(knob::PROCS).as_path()
        )
    );
    assert_eq!(e.value, Some(NO_SUCH_PID.to_string()));
    // Garbage is EINVAL (kstrtoint).
    assert_eq!(
        sys_err(fs.write("b", knob::PROCS, "abc")).errno,
        Errno::EINVAL
    );
}

#[test]
fn a_zombie_cannot_be_moved() {
    let sb = sandbox!("a_zombie_cannot_be_moved");
    let fs = open(&sb);
    fs.mkdir("z").unwrap();
    fs.mkdir("to").unwrap();
    // Our own child, exited but not reaped: its pid stays ours while it is a zombie.
    let pid = sb.spawn_sleeper("z");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(eventually(|| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }));
    let r = fs.write("to", knob::PROCS, &pid.to_string());
    eprintln!("zombie {pid} -> cgroup.procs: {r:?}");
    // A zombie has left its cgroup: it is not listed any more.
    assert!(!read_procs(&fs, "z").unwrap().contains(&pid));
    assert!(!read_procs(&fs, "to").unwrap().contains(&pid));
    // The kernel refuses or ignores it, it never fails with anything but ESRCH.
    if let Err(e) = r {
        assert_eq!(e.errno(), Some(Errno::ESRCH), "{e}");
    }
    assert!(sb.kill(pid));
}

#[test]
fn writes_never_create_files() {
    let sb = sandbox!("writes_never_create_files");
    let fs = open(&sb);
    fs.mkdir("w").unwrap();
    let e = sys_err(fs.write("w", "memory.bogus_knob", "1"));
    assert_eq!(e.op, FsOp::Open);
    assert_eq!(e.errno, Errno::ENOENT);
    assert_eq!(e.path, sb.cg("w").join("memory.bogus_knob"));
    assert_eq!(e.value.as_deref(), Some("1"));
    assert!(!fs.has_file("w", "memory.bogus_knob"));
    let e = sys_err(fs.write("missing", knob::LIMIT, "4096"));
    assert_eq!((e.op, e.errno), (FsOp::Open, Errno::ENOENT));
    assert!(!fs.exists("missing"));
    // Reading a missing file is ENOENT too.
    let e = sys_err(fs.read("w", "memory.bogus_knob"));
    assert_eq!((e.op, e.errno), (FsOp::Read, Errno::ENOENT));
}

#[test]
fn rename_within_the_same_parent() {
    let sb = sandbox!("rename_within_the_same_parent");
    let fs = open(&sb);
    fs.mkdir("p").unwrap();
    fs.mkdir("p/x").unwrap();
    fs.write("p/x", knob::LIMIT, "8388608").unwrap();
    let pid = sb.spawn_sleeper("p/x");
    fs.rename("p/x", "p/y").unwrap();
    assert!(!fs.exists("p/x"));
    assert!(fs.exists("p/y"));
    // The cgroup keeps its settings and tasks: rename only changes the name.
    assert_eq!(read_u64(&fs, "p/y", knob::LIMIT).unwrap(), 8388608);
    assert_eq!(read_procs(&fs, "p/y").unwrap(), vec![pid]);
    // Top level of --root as well.
    fs.rename("p", "q").unwrap();
    assert_eq!(fs.children("").unwrap(), vec!["q"]);
    // Another parent: cgroup v1 refuses (cgroup1_rename: EIO).
    fs.mkdir("other").unwrap();
    let e = sys_err(fs.rename("q/y", "other/y"));
    assert_eq!(e.op, FsOp::Rename);
    assert_eq!(e.errno, Errno::EIO, "{e}");
    assert_eq!(e.path, sb.cg("q/y"));
    // An existing destination: EEXIST (kernfs does not replace).
    fs.mkdir("q/z").unwrap();
    let e = sys_err(fs.rename("q/y", "q/z"));
    assert_eq!(e.errno, Errno::EEXIST, "{e}");
    assert!(fs.exists("q/y"));
}

#[test]
fn children_are_sorted_directories() {
    let sb = sandbox!("children_are_sorted_directories");
    let fs = open(&sb);
    for cg in ["c", "a", "b10", "b", "a/deep"] {
        fs.mkdir(cg).unwrap();
    }
    assert_eq!(fs.children("").unwrap(), vec!["a", "b", "b10", "c"]);
    assert_eq!(fs.children("a").unwrap(), vec!["deep"]);
    assert!(fs.children("a/deep").unwrap().is_empty());
    let e = sys_err(fs.children("missing"));
    assert_eq!((e.op, e.errno), (FsOp::List, Errno::ENOENT));
}

#[test]
fn hierarchy_live_counts_the_new_cgroups() {
    let sb = sandbox!("hierarchy_live_counts_the_new_cgroups");
    let fs = open(&sb);
    for cg in ["l1", "l1/l2", "l3"] {
        fs.mkdir(cg).unwrap();
    }
    // Exact on our own sub-tree: sandbox + 3.
    assert_eq!(kernel::count_cgroup_dirs(sb.path()).unwrap(), 4);
    let all = fs.hierarchy_live().unwrap();
    let depth = sb.path().strip_prefix(fs.hierarchy_mount()).unwrap();
    assert!(all >= 4 + depth.components().count() as u64, "{all}");
    // The whole hierarchy is shared with other processes that make cgroups: look for one
    // quiet moment where creating 3 cgroups adds exactly 3.
    let mut seen = Vec::new();
    let ok = (0..10).any(|i| {
        let before = fs.hierarchy_live().unwrap();
        let names = [format!("n{i}a"), format!("n{i}b"), format!("n{i}c")];
        for n in &names {
            fs.mkdir(n).unwrap();
        }
        let after = fs.hierarchy_live().unwrap();
        for n in &names {
            fs.rmdir(n).unwrap();
        }
        seen.push((before, after));
        after == before + 3
    });
    assert!(ok, "{seen:?}");
}

#[test]
fn cgroup_mode_is_hybrid_here() {
    let sb = sandbox!("cgroup_mode_is_hybrid_here");
    let fs = open(&sb);
    let mode = fs.cgroup_mode().unwrap();
    assert_eq!(mode, kernel::detect_mode().unwrap());
    // This machine has v1 hierarchies (memory among them) and a cgroup2 at
    // /sys/fs/cgroup/unified: systemd's hybrid layout. Checked with statfs, not mountinfo.
    if is_fs("/sys/fs/cgroup/unified", CGROUP2_SUPER_MAGIC)
        && !is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC)
    {
        assert_eq!(mode, CgroupMode::Hybrid);
        // diagnose reads a v2 directory through the same boundary (open_unified).
        let unified = KernelFs::open_unified(Path::new("/sys/fs/cgroup/unified")).unwrap();
        let stat = unified.read("", "cgroup.stat").unwrap();
        assert!(
            kernel::parse_nr_dying_descendants(&stat).is_some(),
            "{stat}"
        );
    } else {
        assert_ne!(mode, CgroupMode::V2, "a memory v1 hierarchy is mounted");
    }
    // A v1 memory cgroup has no cgroup.stat.
    assert!(!sb.path().join("cgroup.stat").exists());
}

#[test]
fn pid_alive_and_find_processes() {
    let sb = sandbox!("pid_alive_and_find_processes");
    let fs = open(&sb);
    fs.mkdir("s").unwrap();
    let pid = sb.spawn_sleeper("s");
    assert!(fs.pid_alive(pid));
    assert!(fs.pid_alive(std::process::id()));
    assert!(!fs.pid_alive(NO_SUCH_PID));
    assert!(!fs.pid_alive(0));
    // A zombie (exited, not reaped yet) is in no cgroup any more: not alive.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let zombie = child.id();
    // waitid(WNOWAIT) returns once the child has exited and leaves it unreaped: a zombie, by
    // the kernel's word rather than a deadline.
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    waitid(
        Id::Pid(nix::unistd::Pid::from_raw(zombie as i32)),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
    )
    .unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{zombie}/stat"))
        .unwrap()
        .contains(") Z "));
    assert!(!fs.pid_alive(zombie));
    child.wait().unwrap();
    // A thread id is not listed in /proc, but /proc/<tid> resolves.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    assert_ne!(tid, std::process::id());
    assert!(fs.pid_alive(tid));
    done_tx.send(()).unwrap();
    t.join().unwrap();
    let found = fs.find_processes("sleep").unwrap();
    assert!(found.contains(&pid), "{found:?}");
    assert!(!fs.find_processes("cgleak-no-such").unwrap().contains(&pid));
    // comm keeps 15 bytes: a longer name matches on its first 15.
    // Our own test binary is named longer than that (kernel_fs-<hash>).
    let exe = std::env::current_exe().unwrap();
    let exe = exe.file_name().unwrap().to_str().unwrap();
    assert!(exe.len() > 15, "{exe}");
    let me = fs.find_processes(exe).unwrap();
    assert!(me.contains(&std::process::id()), "{exe}: {me:?}");
    assert!(sb.kill(pid));
    assert!(!fs.pid_alive(pid));
}

#[test]
fn sandbox_cleanup_leaves_nothing_behind() {
    let sb = sandbox!("sandbox_cleanup_leaves_nothing_behind");
    let path = sb.path().to_path_buf();
    sb.mkdir("a/b/c");
    sb.mkdir("d");
    let sleeper = sb.spawn_sleeper("a/b/c");
    let forker = sb.spawn_forker("d");
    // Let the forker fill its cgroup with short-lived children.
    assert!(eventually(|| {
        std::fs::read_to_string(sb.cg("d").join(knob::PROCS))
            .map(|s| s.lines().count() > 1)
            .unwrap_or(false)
    }));
    let fs = open(&sb);
    assert!(fs.pid_alive(sleeper) && fs.pid_alive(forker));
    let mut pids = sb.pids();
    pids.sort_unstable();
    let mut want = vec![sleeper, forker];
    want.sort_unstable();
    assert_eq!(pids, want);
    let in_d = read_procs(&fs, "d").unwrap();
    drop(sb);
    assert!(!path.exists(), "{} left behind", path.display());
    // The forker's children were killed and reaped, not left as zombies of an init that may
    // never reap them (PID 1 here is not a shell or an init that reaps promptly).
    let stat = |p: u32| std::fs::read_to_string(format!("/proc/{p}/stat")).ok();
    let zombies: Vec<_> = in_d
        .iter()
        .filter_map(|&p| stat(p))
        .filter(|s| s.contains("(sleep) Z"))
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
    // Our children were reaped (their pids are free; a recycled pid would be someone else's).
    let own = kernel::own_memory_cgroup().unwrap();
    let tag = "cgleak-test-sandbox_cleanup_leaves_nothing_behind";
    let prefix = format!("{tag}-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir(&own)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn read_many_gives_what_read_gives() {
    let sb = sandbox!("read_many_gives_what_read_gives");
    let fs = open(&sb);
    fs.mkdir("r").unwrap();
    fs.write("r", knob::LIMIT, "8388608").unwrap();
    let pid = sb.spawn_sleeper("r");
    let files = [
        knob::LIMIT,
        knob::PROCS,
        "memory.bogus_knob",
        "../r/memory.limit_in_bytes",
        knob::OOM_CONTROL,
    ];
    let same = |cg: &str| {
        for (f, many) in files.iter().zip(fs.read_many(cg, &files)) {
            match (fs.read(cg, f), many) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{cg} {f}"),
                (Err(a), Err(b)) => assert_eq!(sys_err::<()>(Err(a)), sys_err::<()>(Err(b))),
                (a, b) => panic!("{cg} {f}: read {a:?}, read_many {b:?}"),
            }
        }
    };
    same("r");
    same("gone");
    same("../escape");
    let r = fs.read_many("r", &[knob::PROCS, "memory.bogus_knob"]);
    assert_eq!(r[0].as_ref().unwrap().trim(), pid.to_string());
    let e = sys_err(r.into_iter().nth(1).unwrap());
    assert_eq!((e.op, e.errno), (FsOp::Read, Errno::ENOENT));
    assert_eq!(e.path, sb.cg("r").join("memory.bogus_knob"));
    assert!(sb.kill(pid));
}

#[test]
fn hierarchy_live_except_leaves_out_a_subtree() {
    let sb = sandbox!("hierarchy_live_except_leaves_out_a_subtree");
    let fs = open(&sb);
    for cg in ["l1", "l1/l2", "l1/l2/l3", "l4"] {
        fs.mkdir(cg).unwrap();
    }
    // Other processes make cgroups meanwhile: look for one quiet moment.
    let mut seen = Vec::new();
    let ok = (0..10).any(|_| {
        let all = fs.hierarchy_live().unwrap();
        let except = fs.hierarchy_live_except("l1").unwrap();
        let missing = fs.hierarchy_live_except("no-such").unwrap();
        let again = fs.hierarchy_live().unwrap();
        seen.push((all, except, missing, again));
        all == again && except + 3 == all && missing == all
    });
    assert!(ok, "{seen:?}");
}

/// On the kernel's cgroupfs a big scan lists and reads in parallel: it must give exactly what
/// reading each cgroup as it is listed, depth first, gives.
#[test]
fn a_parallel_scan_gives_the_depth_first_records() {
    use cgleak::demo::fixture::{build, kubelet_tree, FixtureSpec};
    use cgleak::model::classify;
    use cgleak::model::kernel::KernelInfo;
    use cgleak::scan;
    let sb = sandbox!("a_parallel_scan_gives_the_depth_first_records");
    let fs = open(&sb);
    // 30 pods: over a hundred cgroups, enough for the parallel path.
    let tree = kubelet_tree(&FixtureSpec::new("kubepods", 30));
    build(&fs, &tree, &mut |cg| Ok(sb.spawn_sleeper(cg))).unwrap();
    let snap = scan::scan(&fs, "kubepods").unwrap();
    let kernel = KernelInfo::from_release(&fs.kernel_release().unwrap());
    let mut want = Vec::new();
    let mut stack = vec![("kubepods".to_string(), 0, None)];
    while let Some((cg, depth, parent_kind)) = stack.pop() {
        let kind = classify(cgleak::model::path::base_name(&cg), depth, parent_kind);
        let children = fs.children(&cg).unwrap();
        want.push(scan::read_record(&fs, &kernel, &cg, kind).unwrap());
        for name in children.iter().rev() {
            stack.push((cgleak::model::path::join(&cg, name), depth + 1, Some(kind)));
        }
    }
    assert_eq!(snap.cgroups.len(), tree.len());
    // Usage moves on its own (the sleepers' pages): compare everything else.
    let strip = |c: &cgleak::model::CgroupRecord| {
        let mut c = c.clone();
        c.usage_in_bytes = c.usage_in_bytes.map(|_| 0);
        c
    };
    let got: Vec<_> = snap.cgroups.iter().map(strip).collect();
    let want: Vec<_> = want.iter().map(strip).collect();
    assert_eq!(got, want);
}
