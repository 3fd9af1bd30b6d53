//! Integration tests of the emulated memory cgroup v1 node: every kernel rule it emulates, for
//! every profile where the rule differs (docs/kernel-facts.md, "Kernel differences"), faults,
//! hooks and reopening.

use cgleak::demo::fixture::{self, FixtureLayout, FixtureSpec};
use cgleak::error::{Error, FsOp};
use cgleak::host::emulated::{
    clone_node, copy_node, find_base, EmulatedFs, Fault, FaultWhen, KernelProfile,
    MEM_CGROUP_ID_MAX, STATE_FILE,
};
use cgleak::host::{self, knob, CgroupMode, Hierarchy, Host};
use nix::errno::Errno;
use tempfile::TempDir;

use KernelProfile::*;

fn node(p: KernelProfile) -> (TempDir, EmulatedFs) {
    let t = cgleak::host::emulated::tempdir().unwrap();
    let fs = EmulatedFs::create(&t.path().join("node"), p).unwrap();
    (t, fs)
}

fn errno<T: std::fmt::Debug>(r: cgleak::Result<T>) -> Errno {
    match r {
        Err(Error::Sys(e)) => e.errno,
        other => panic!("expected a system error, got {other:?}"),
    }
}

fn num(fs: &EmulatedFs, cg: &str, file: &str) -> u64 {
    host::read_u64(fs, cg, file).unwrap()
}

fn memory_row(fs: &EmulatedFs) -> u64 {
    host::parse_proc_cgroups_memory(&fs.proc_cgroups().unwrap())
        .unwrap()
        .1
}

#[test]
fn create_layout_and_machine_facts() {
    for p in KernelProfile::ALL {
        let (t, fs) = node(p);
        let base = t.path().join("node").canonicalize().unwrap();
        assert!(base.join(STATE_FILE).is_file());
        assert_eq!(fs.root(), base.join("memory"));
        assert_eq!(fs.hierarchy_mount(), base.join("memory"));
        assert_eq!(fs.kernel_release().unwrap(), p.release());
        assert_eq!(fs.cgroup_mode().unwrap(), CgroupMode::V1);
        assert_eq!(
            fs.describe(),
            format!("emulated {} node at {}", p, base.display())
        );
        assert!(fs.is_emulated() && fs.may_write());
        assert_eq!(fs.boot_id().unwrap().len(), 36);
        assert_eq!(fs.hierarchy_live().unwrap(), 1);
        assert_eq!(fs.ids_used(), 1);
        assert_eq!(memory_row(&fs), 1);
        let on_disk = std::fs::read_to_string(base.join("proc/cgroups")).unwrap();
        assert_eq!(on_disk, fs.proc_cgroups().unwrap());
        assert!(on_disk.contains("cpuset") && on_disk.contains("memory\t4\t1\t1"));
        let uh = if p == V5_10 { 0 } else { 1 };
        assert_eq!(num(&fs, "", knob::USE_HIERARCHY), uh, "{p}");
        assert_eq!(num(&fs, "", knob::LIMIT), p.unlimited());
        assert!(fs.children("").unwrap().is_empty());
        // create refuses a non-empty directory
        assert!(EmulatedFs::create(&base, p).is_err());
    }
}

#[test]
fn mkdir_creates_control_files_with_inherited_values() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        let unl = if p == V3_10 {
            9223372036854775807
        } else {
            9223372036854771712
        };
        for f in [
            knob::LIMIT,
            knob::SOFT_LIMIT,
            knob::MEMSW_LIMIT,
            knob::KMEM_LIMIT,
        ] {
            assert_eq!(num(&fs, "a", f), unl, "{p} {f}");
        }
        assert_eq!(num(&fs, "a", knob::SWAPPINESS), 60);
        assert_eq!(num(&fs, "a", knob::MOVE_CHARGE), 0);
        assert_eq!(num(&fs, "a", knob::USAGE), 0);
        let oom = fs.read("a", knob::OOM_CONTROL).unwrap();
        assert!(oom.starts_with("oom_kill_disable 0\nunder_oom 0\n"));
        assert_eq!(oom.contains("oom_kill 0"), p != V3_10, "{p}");
        assert!(fs.read("a", "memory.stat").unwrap().contains("cache 0\n"));
        assert!(fs.has_file("a", knob::PROCS) && fs.has_file("a", "notify_on_release"));
        assert!(fs.has_file("a", "cgroup.clone_children"));
        assert!(!fs.has_file("a", "emulated.cache_bytes"));
        assert_eq!(fs.read("a", knob::PROCS).unwrap(), "");
        // inheritance of swappiness, use_hierarchy and oom_kill_disable
        if p != V3_10 {
            fs.write("a", knob::SWAPPINESS, "30\n").unwrap();
            fs.write("a", knob::OOM_CONTROL, "1").unwrap();
            fs.mkdir("a/b").unwrap();
            assert_eq!(num(&fs, "a/b", knob::SWAPPINESS), 30);
            let oom = fs.read("a/b", knob::OOM_CONTROL).unwrap();
            assert!(host::parse_oom_kill_disable(std::path::Path::new("x"), &oom).unwrap());
        }
        assert_eq!(
            num(&fs, "a", knob::USE_HIERARCHY),
            if p == V5_10 { 0 } else { 1 }
        );
        assert_eq!(errno(fs.mkdir("a")), Errno::EEXIST);
        assert_eq!(errno(fs.mkdir("x/y")), Errno::ENOENT);
        assert_eq!(fs.children("").unwrap(), vec!["a".to_string()]);
    }
}

/// ENOSPC from 4.x, ENOMEM on 3.10 (seen on 3.10.0-1127; kubernetes#61937).
#[test]
fn id_exhaustion_gives_enospc() {
    for p in KernelProfile::ALL {
        let want = if p == KernelProfile::V3_10 {
            Errno::ENOMEM
        } else {
            Errno::ENOSPC
        };
        let (_t, fs) = node(p);
        let limit = p.id_limit();
        fs.mkdir("kubepods").unwrap();
        fs.add_dying(limit - 3).unwrap();
        assert_eq!(fs.ids_used(), limit - 1);
        fs.mkdir("kubepods/last").unwrap();
        assert_eq!(fs.ids_used(), limit);
        let e = fs.mkdir("kubepods/one-too-many").unwrap_err();
        match &e {
            Error::Sys(s) => {
                assert_eq!((s.op, s.errno), (FsOp::Mkdir, want));
                assert!(s.path.ends_with("memory/kubepods/one-too-many"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!fs.exists("kubepods/one-too-many"));
        assert_eq!(errno(fs.add_dying(1)), want);
        // freeing one live id lets the next mkdir through
        fs.rmdir("kubepods/last").unwrap();
        fs.mkdir("kubepods/again").unwrap();
        let split = fs.dying_split();
        if p == V3_10 {
            assert_eq!(split, (limit - 3, 0, 0));
            assert_eq!(memory_row(&fs), 3, "3.10 counts live only");
        } else {
            assert_eq!(split, (0, 0, limit - 3), "{p}: swap-pinned");
            assert_eq!(memory_row(&fs), limit, "{p}: live + dying");
        }
    }
    // 6.1 hands out 65535 ids, 5.10 one fewer (idr_alloc's end is exclusive there)
    assert_eq!(V6_1.id_limit(), MEM_CGROUP_ID_MAX);
    assert_eq!(V3_10.id_limit(), MEM_CGROUP_ID_MAX);
    assert_eq!(V5_10.id_limit(), MEM_CGROUP_ID_MAX - 1);
    // What diagnose believes of each kernel is what the emulated kernel does.
    for p in KernelProfile::ALL {
        let believed =
            cgleak::model::kernel::KernelInfo::from_release(p.release()).memcg_id_limit();
        assert_eq!(believed, p.id_limit(), "{p}");
    }
}

fn sys_errno<T: std::fmt::Debug>(r: cgleak::Result<T>) -> (FsOp, Errno) {
    match r {
        Err(Error::Sys(e)) => (e.op, e.errno),
        other => panic!("expected a system error, got {other:?}"),
    }
}

/// From 4.8 a deleted memcg releases its id at offline unless swap entries reference it
/// (73f576c04b94), as the lab saw on 5.10 and 6.1: page-cache-pinned dying memcgs beyond the
/// id limit leave mkdir working, swap-pinned ones exhaust the ids, drop_caches frees only the
/// former, swapoff the latter.
#[test]
fn ids_from_4_8_are_held_by_swapped_out_pages_only() {
    for p in [V5_10, V6_1, V6_13] {
        let (_t, fs) = node(p);
        let limit = p.id_limit();
        fs.add_dying_cache(70_000).unwrap();
        assert_eq!(memory_row(&fs), 70_001, "{p}: counted, live + dying");
        assert_eq!(fs.ids_used(), 1, "{p}: page cache holds no id");
        fs.mkdir("a").unwrap();
        fs.add_dying(limit - 2).unwrap();
        assert_eq!(errno(fs.mkdir("b")), Errno::ENOSPC, "{p}");
        let swaps = fs.proc_swaps().unwrap();
        assert!(swaps.contains("/dev/vdb"), "{swaps}");
        assert_eq!(
            std::fs::read_to_string(fs.base().join("proc/swaps")).unwrap(),
            swaps
        );
        fs.drop_caches(1).unwrap();
        assert_eq!(fs.dying_split(), (0, 0, limit - 2), "{p}");
        assert_eq!(
            errno(fs.mkdir("b")),
            Errno::ENOSPC,
            "{p}: drop_caches frees no id"
        );
        // swapoff needs room for the pages it reads back
        fs.set_mem_available(1024).unwrap();
        let dev = std::path::Path::new("/dev/vdb");
        assert_eq!(sys_errno(fs.swapoff(dev)), (FsOp::Swapoff, Errno::ENOMEM));
        assert!(
            fs.proc_swaps().unwrap().contains("/dev/vdb"),
            "still in use"
        );
        fs.set_mem_available(4 << 20).unwrap();
        assert_eq!(
            sys_errno(fs.swapon(dev, None)),
            (FsOp::Swapon, Errno::EBUSY)
        );
        fs.swapoff(dev).unwrap();
        assert_eq!(fs.dying(), 0, "{p}");
        assert!(!fs.proc_swaps().unwrap().contains("/dev/vdb"));
        assert_eq!(sys_errno(fs.swapoff(dev)), (FsOp::Swapoff, Errno::EINVAL));
        fs.mkdir("b").unwrap();
        fs.swapon(dev, Some(5)).unwrap();
        let swaps = fs.proc_swaps().unwrap();
        assert!(swaps.lines().nth(1).unwrap().ends_with("\t5"), "{swaps}");
        assert_eq!(
            sys_errno(fs.swapon(std::path::Path::new("/dev/nope"), None)),
            (FsOp::Swapon, Errno::EINVAL)
        );
        let mi = fs.meminfo().unwrap();
        assert!(mi.contains("MemAvailable:"), "{mi}");
    }
    // 3.10 has no page-cache-pinned dying memcgs (reparented at rmdir)
    let (_t, fs) = node(V3_10);
    assert!(fs.add_dying_cache(1).is_err());
}

#[test]
fn limits_round_and_respect_memsw() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("c").unwrap();
        fs.write("c", knob::LIMIT, "12345678\n").unwrap();
        // Newer kernels round down (page_counter_memparse; seen 12345678 -> 12345344);
        // 3.10's res_counter rounds up (PAGE_ALIGN).
        let want = if p == V3_10 { 12349440 } else { 12345344 };
        assert_eq!(num(&fs, "c", knob::LIMIT), want, "{p}");
        assert_eq!(
            errno(fs.write("c", knob::MEMSW_LIMIT, "4096")),
            Errno::EINVAL
        );
        fs.write("c", knob::MEMSW_LIMIT, "20000000").unwrap();
        assert_eq!(num(&fs, "c", knob::MEMSW_LIMIT) % 4096, 0);
        // raising the limit above memsw: EINVAL; memsw first, then limit
        assert_eq!(errno(fs.write("c", knob::LIMIT, "30000000")), Errno::EINVAL);
        fs.write("c", knob::MEMSW_LIMIT, "-1").unwrap();
        fs.write("c", knob::LIMIT, "30000000").unwrap();
        assert_eq!(num(&fs, "c", knob::MEMSW_LIMIT), p.unlimited());
        fs.write("c", knob::LIMIT, "-1").unwrap();
        assert_eq!(num(&fs, "c", knob::LIMIT), p.unlimited());
        fs.write("c", knob::SOFT_LIMIT, "1000").unwrap();
        let soft = if p == V3_10 { 4096 } else { 0 };
        assert_eq!(num(&fs, "c", knob::SOFT_LIMIT), soft);
        assert_eq!(errno(fs.write("c", knob::LIMIT, "abc")), Errno::EINVAL);
        assert_eq!(errno(fs.write("", knob::LIMIT, "4096")), Errno::EINVAL);
        assert_eq!(errno(fs.write("nope", knob::LIMIT, "4096")), Errno::ENOENT);
        assert_eq!(errno(fs.write("c", "memory.nosuch", "1")), Errno::ENOENT);
        for ro in [knob::USAGE, "memory.stat", knob::KMEM_SLABINFO] {
            assert_eq!(errno(fs.write("c", ro, "0")), Errno::EINVAL, "{ro}");
        }
        // the error carries the op, the file and the value
        match fs.write("c", knob::MEMSW_LIMIT, "4096\n").unwrap_err() {
            Error::Sys(e) => {
                assert_eq!(e.op, FsOp::Write);
                assert!(e.path.ends_with("c/memory.memsw.limit_in_bytes"));
                assert_eq!(e.value.as_deref(), Some("4096"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn limit_below_usage_reclaims_cache_or_ebusy() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("c").unwrap();
        fs.charge_cache("c", 8 << 20).unwrap();
        assert_eq!(num(&fs, "c", knob::USAGE), 8 << 20);
        fs.write("c", knob::LIMIT, &(4 << 20).to_string()).unwrap();
        assert_eq!(num(&fs, "c", knob::USAGE), 4 << 20);
        let pid = fs.spawn("c", "app").unwrap();
        fs.charge_process(pid, 3 << 20).unwrap();
        assert_eq!(fs.charges("c"), Some((4 << 20, 3 << 20)));
        assert_eq!(
            errno(fs.write("c", knob::LIMIT, &(2 << 20).to_string())),
            Errno::EBUSY
        );
        assert_eq!(num(&fs, "c", knob::LIMIT), 4 << 20, "limit unchanged");
        assert_eq!(
            fs.charges("c"),
            Some((0, 3 << 20)),
            "cache reclaimed trying"
        );
        // the usage file on disk follows
        let d = fs.root().join("c/memory.usage_in_bytes");
        assert_eq!(
            std::fs::read_to_string(d).unwrap().trim(),
            (3u64 << 20).to_string()
        );
    }
}

#[test]
fn swappiness_rules() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        assert_eq!(errno(fs.write("a", knob::SWAPPINESS, "101")), Errno::EINVAL);
        assert_eq!(errno(fs.write("a", knob::SWAPPINESS, "-1")), Errno::EINVAL);
        match p {
            V3_10 => {
                // root use_hierarchy=1: children cannot set it (mem_cgroup_swappiness_write)
                assert_eq!(errno(fs.write("a", knob::SWAPPINESS, "0")), Errno::EINVAL);
                assert_eq!(errno(fs.write("", knob::SWAPPINESS, "10")), Errno::EINVAL);
                // with the parent's use_hierarchy 0 it works, until the cgroup has children
                fs.write("", knob::USE_HIERARCHY, "0").unwrap_err();
                let (_t2, fs) = node(p);
                fs.write("", knob::USE_HIERARCHY, "0").unwrap();
                fs.mkdir("b").unwrap();
                fs.write("b", knob::SWAPPINESS, "30").unwrap();
                assert_eq!(num(&fs, "b", knob::SWAPPINESS), 30);
                fs.mkdir("b/c").unwrap();
                assert_eq!(errno(fs.write("b", knob::SWAPPINESS, "0")), Errno::EINVAL);
            }
            _ => {
                fs.write("a", knob::SWAPPINESS, "0").unwrap();
                assert_eq!(num(&fs, "a", knob::SWAPPINESS), 0);
                fs.mkdir("a/b").unwrap();
                fs.write("a", knob::SWAPPINESS, "100").unwrap();
                fs.write("", knob::SWAPPINESS, "10").unwrap();
            }
        }
    }
}

#[test]
fn oom_control_rules() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        assert_eq!(errno(fs.write("", knob::OOM_CONTROL, "1")), Errno::EINVAL);
        assert_eq!(errno(fs.write("a", knob::OOM_CONTROL, "2")), Errno::EINVAL);
        if p == V3_10 {
            assert_eq!(errno(fs.write("a", knob::OOM_CONTROL, "1")), Errno::EINVAL);
        } else {
            fs.write("a", knob::OOM_CONTROL, "1\n").unwrap();
            let s = fs.read("a", knob::OOM_CONTROL).unwrap();
            assert_eq!(s, "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n");
        }
    }
    // 3.10 below a parent without hierarchy: allowed, but not with children
    let (_t, fs) = node(V3_10);
    fs.write("", knob::USE_HIERARCHY, "0").unwrap();
    fs.mkdir("a").unwrap();
    fs.write("a", knob::OOM_CONTROL, "1").unwrap();
    assert_eq!(
        fs.read("a", knob::OOM_CONTROL).unwrap(),
        "oom_kill_disable 1\nunder_oom 0\n"
    );
    fs.mkdir("a/b").unwrap();
    assert_eq!(errno(fs.write("a", knob::OOM_CONTROL, "0")), Errno::EINVAL);
}

#[test]
fn use_hierarchy_rules() {
    // 5.10: root starts at 0 (bare v1 mount) and can change while it has no children
    let (_t, fs) = node(V5_10);
    assert_eq!(num(&fs, "", knob::USE_HIERARCHY), 0);
    fs.mkdir("a").unwrap();
    assert_eq!(errno(fs.write("", knob::USE_HIERARCHY, "1")), Errno::EBUSY);
    fs.write("a", knob::USE_HIERARCHY, "1").unwrap();
    fs.write("a", knob::USE_HIERARCHY, "1").unwrap(); // same value: ok
    fs.mkdir("a/b").unwrap();
    assert_eq!(num(&fs, "a/b", knob::USE_HIERARCHY), 1);
    assert_eq!(errno(fs.write("a", knob::USE_HIERARCHY, "0")), Errno::EBUSY);
    // below a parent with hierarchy: EINVAL
    assert_eq!(
        errno(fs.write("a/b", knob::USE_HIERARCHY, "0")),
        Errno::EINVAL
    );
    assert_eq!(
        errno(fs.write("a", knob::USE_HIERARCHY, "2")),
        Errno::EINVAL
    );
    fs.rmdir("a/b").unwrap();
    fs.rmdir("a").unwrap();
    fs.write("", knob::USE_HIERARCHY, "1").unwrap();
    assert_eq!(num(&fs, "", knob::USE_HIERARCHY), 1);

    // 3.10: root 1; children below it cannot change
    let (_t, fs) = node(V3_10);
    fs.mkdir("a").unwrap();
    fs.write("a", knob::USE_HIERARCHY, "1").unwrap();
    assert_eq!(
        errno(fs.write("a", knob::USE_HIERARCHY, "0")),
        Errno::EINVAL
    );

    // 6.1 / 6.13: fixed at 1
    for p in [V6_1, V6_13] {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        fs.write("a", knob::USE_HIERARCHY, "1").unwrap();
        assert_eq!(
            errno(fs.write("a", knob::USE_HIERARCHY, "0")),
            Errno::EINVAL
        );
        assert_eq!(errno(fs.write("", knob::USE_HIERARCHY, "0")), Errno::EINVAL);
        assert_eq!(num(&fs, "a", knob::USE_HIERARCHY), 1);
    }
}

#[test]
fn move_charge_rules_and_charges_moving() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("old").unwrap();
        fs.mkdir("new").unwrap();
        assert_eq!(
            errno(fs.write("new", knob::MOVE_CHARGE, "4")),
            Errno::EINVAL
        );
        fs.write("new", knob::MOVE_CHARGE, "0").unwrap();
        let r = fs.write("new", knob::MOVE_CHARGE, "3");
        if p == V6_13 {
            assert_eq!(errno(r), Errno::EINVAL);
            assert_eq!(num(&fs, "new", knob::MOVE_CHARGE), 0);
        } else {
            r.unwrap();
            assert_eq!(num(&fs, "new", knob::MOVE_CHARGE), 3);
        }
        let pid = fs.spawn("old", "app").unwrap();
        fs.charge_process(pid, 1 << 20).unwrap();
        assert_eq!(num(&fs, "old", knob::USAGE), 1 << 20);
        fs.write("new", knob::PROCS, &pid.to_string()).unwrap();
        if p == V6_13 {
            // charges never move: they stay with the old memcg
            assert_eq!(fs.charges("old"), Some((0, 1 << 20)));
            assert_eq!(num(&fs, "new", knob::USAGE), 0);
            // so removing the old cgroup leaves a dying memcg
            fs.rmdir("old").unwrap();
            assert_eq!(fs.dying(), 1);
        } else {
            assert_eq!(fs.charges("old"), Some((0, 0)));
            assert_eq!(num(&fs, "new", knob::USAGE), 1 << 20);
            assert!(fs
                .read("new", "memory.stat")
                .unwrap()
                .contains("rss 1048576\n"));
            fs.rmdir("old").unwrap();
            assert_eq!(fs.dying(), 0);
        }
    }
    // without bit 0 the charges stay behind (6.1)
    let (_t, fs) = node(V6_1);
    fs.mkdir("old").unwrap();
    fs.mkdir("new").unwrap();
    let pid = fs.spawn("old", "app").unwrap();
    fs.charge_process(pid, 8192).unwrap();
    fs.write("new", knob::MOVE_CHARGE, "2").unwrap();
    fs.write("new", knob::PROCS, &pid.to_string()).unwrap();
    assert_eq!(fs.charges("old"), Some((0, 8192)));
    assert_eq!(fs.charges("new"), Some((0, 0)));
}

#[test]
fn procs_moves_the_whole_group_from_wherever_and_tasks_one_thread() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        for d in ["a", "b", "c"] {
            fs.mkdir(d).unwrap();
        }
        let pid = fs.spawn("a", "app").unwrap();
        let t1 = fs.spawn_thread(pid, "b").unwrap();
        let t2 = fs.spawn_thread(pid, "a").unwrap();
        assert_eq!(host::read_tasks(&fs, "a").unwrap(), vec![pid, t2]);
        assert_eq!(host::read_procs(&fs, "a").unwrap(), vec![pid]);
        // a cgroup holding only a thread lists the thread group in cgroup.procs
        assert_eq!(host::read_procs(&fs, "b").unwrap(), vec![pid]);
        assert_eq!(host::read_tasks(&fs, "b").unwrap(), vec![t1]);
        // tasks moves one thread
        fs.write("c", knob::TASKS, &t2.to_string()).unwrap();
        assert_eq!(fs.cgroup_of(t2).as_deref(), Some("c"));
        assert_eq!(fs.cgroup_of(pid).as_deref(), Some("a"));
        // cgroup.procs (even with a thread id) moves every thread
        fs.write("c", knob::PROCS, &format!("{t1}\n")).unwrap();
        for t in [pid, t1, t2] {
            assert_eq!(fs.cgroup_of(t).as_deref(), Some("c"));
        }
        assert_eq!(host::read_tasks(&fs, "c").unwrap(), vec![pid, t1, t2]);
        assert_eq!(fs.read("a", knob::TASKS).unwrap(), "");
        assert_eq!(fs.read("b", knob::PROCS).unwrap(), "");
        // ESRCH for a missing pid; EINVAL for garbage
        assert_eq!(errno(fs.write("a", knob::PROCS, "999999")), Errno::ESRCH);
        assert_eq!(errno(fs.write("a", knob::TASKS, "999999")), Errno::ESRCH);
        assert_eq!(errno(fs.write("a", knob::PROCS, "x")), Errno::EINVAL);
        // exit takes the threads
        fs.exit(pid);
        assert!(!fs.pid_alive(pid) && !fs.pid_alive(t1));
        assert_eq!(fs.read("c", knob::TASKS).unwrap(), "");
        assert_eq!(fs.cgroup_of(t2), None);
        assert_eq!(
            errno(fs.write("a", knob::PROCS, &pid.to_string())),
            Errno::ESRCH
        );
    }
}

#[test]
fn rmdir_rules() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        fs.mkdir("a/b").unwrap();
        assert_eq!(errno(fs.rmdir("a")), Errno::EBUSY, "children");
        let pid = fs.spawn("a/b", "x").unwrap();
        assert_eq!(errno(fs.rmdir("a/b")), Errno::EBUSY, "tasks");
        // a thread alone also keeps it busy
        fs.write("", knob::PROCS, &pid.to_string()).unwrap();
        let tid = fs.spawn_thread(pid, "a/b").unwrap();
        assert_eq!(errno(fs.rmdir("a/b")), Errno::EBUSY, "thread");
        fs.write("", knob::TASKS, &tid.to_string()).unwrap();
        fs.rmdir("a/b").unwrap();
        assert!(!fs.exists("a/b"));
        assert!(!fs.root().join("a/b").exists());
        assert_eq!(errno(fs.rmdir("a/b")), Errno::ENOENT);
        assert_eq!(errno(fs.rmdir("")), Errno::EBUSY);
        assert_eq!(fs.hierarchy_live().unwrap(), 2);
        assert_eq!(memory_row(&fs), 2);
        assert_eq!(fs.dying(), 0, "{p}: nothing charged, freed at once");
    }
}

#[test]
fn kmem_on_3_10_activates_inherits_pins_and_hides() {
    let (_t, fs) = node(V3_10);
    fs.mkdir("kubepods").unwrap();
    // not active: slabinfo EIO (root too)
    assert_eq!(errno(fs.read("kubepods", knob::KMEM_SLABINFO)), Errno::EIO);
    assert_eq!(errno(fs.read("", knob::KMEM_SLABINFO)), Errno::EIO);
    // "-1" alone does not activate (memcg_update_kmem_limit; why runc writes 1 then -1)
    fs.write("kubepods", knob::KMEM_LIMIT, "-1").unwrap();
    assert!(!fs.kmem_active("kubepods"));
    // EBUSY with tasks
    let pid = fs.spawn("kubepods", "x").unwrap();
    assert_eq!(
        errno(fs.write("kubepods", knob::KMEM_LIMIT, "1")),
        Errno::EBUSY
    );
    fs.write("", knob::PROCS, &pid.to_string()).unwrap();
    // EBUSY with children (use_hierarchy 1)
    fs.mkdir("kubepods/early").unwrap();
    assert_eq!(
        errno(fs.write("kubepods", knob::KMEM_LIMIT, "1")),
        Errno::EBUSY
    );
    fs.rmdir("kubepods/early").unwrap();
    fs.write("kubepods", knob::KMEM_LIMIT, "1").unwrap();
    fs.write("kubepods", knob::KMEM_LIMIT, "-1").unwrap();
    assert!(fs.kmem_active("kubepods"));
    assert_eq!(num(&fs, "kubepods", knob::KMEM_LIMIT), 9223372036854775807);
    assert!(fs
        .read("kubepods", knob::KMEM_SLABINFO)
        .unwrap()
        .starts_with("slabinfo - version: 2.1"));
    // inherited by new children
    fs.mkdir("kubepods/pod1").unwrap();
    assert!(fs.kmem_active("kubepods/pod1"));
    assert!(fs.read("kubepods/pod1", knob::KMEM_SLABINFO).is_ok());
    assert!(fs
        .root()
        .join("kubepods/pod1/emulated.kmem_active")
        .is_file());
    assert_eq!(fs.children("kubepods").unwrap(), vec!["pod1".to_string()]);
    // rmdir after a task ran there (its slab objects pin the memcg): dying, id kept,
    // /proc/cgroups counts live only
    fs.charge_cache("kubepods/pod1", 4096).unwrap();
    let pid = fs.spawn("kubepods/pod1", "app").unwrap();
    fs.exit(pid);
    fs.rmdir("kubepods/pod1").unwrap();
    assert_eq!(fs.dying_split(), (1, 0, 0));
    assert_eq!(fs.ids_used(), 3);
    assert_eq!(fs.hierarchy_live().unwrap(), 2);
    assert_eq!(memory_row(&fs), 2);
    // user charges were reparented (mem_cgroup_reparent_charges)
    assert_eq!(fs.charges("kubepods"), Some((4096, 0)));
    // drop_caches does not free slab-pinned memcgs
    fs.drop_caches(3).unwrap();
    assert_eq!(fs.dying(), 1);
    assert_eq!(fs.charges("kubepods"), Some((0, 0)));
    // a cgroup without kmem leaves nothing behind
    fs.mkdir("plain").unwrap();
    fs.charge_cache("plain", 4096).unwrap();
    fs.rmdir("plain").unwrap();
    assert_eq!(fs.dying(), 1);
    // force_empty does not clear kmem; EBUSY with children
    fs.mkdir("kubepods/p2").unwrap();
    assert_eq!(
        errno(fs.write("kubepods", knob::FORCE_EMPTY, "0")),
        Errno::EBUSY
    );
    fs.write("kubepods/p2", knob::FORCE_EMPTY, "0").unwrap();
    assert!(fs.kmem_active("kubepods/p2"));
    // nokmem on the command line: no activation
    fs.set_cmdline("ro cgroup.memory=nokmem").unwrap();
    fs.mkdir("other").unwrap();
    fs.write("other", knob::KMEM_LIMIT, "1").unwrap();
    assert!(!fs.kmem_active("other"));
}

#[test]
fn kmem_limit_on_newer_kernels() {
    for p in [V5_10, V6_1, V6_13] {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        let pid = fs.spawn("a", "x").unwrap();
        fs.write("a", knob::KMEM_LIMIT, "1").unwrap(); // no EBUSY with tasks
        let v = num(&fs, "a", knob::KMEM_LIMIT);
        if p == V5_10 {
            assert_eq!(v, 0, "stored, rounded down");
        } else {
            assert_eq!(v, p.unlimited(), "no-op");
        }
        assert_eq!(fs.read("a", knob::KMEM_SLABINFO).unwrap(), "");
        assert!(fs.kmem_active("a"), "kmem accounted for every memcg");
        fs.set_cmdline("cgroup.memory=nokmem").unwrap();
        assert!(!fs.kmem_active("a"));
        fs.exit(pid);
    }
}

#[test]
fn dying_on_newer_kernels_counted_and_freed_by_drop_caches() {
    for p in [V5_10, V6_1, V6_13] {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        fs.mkdir("b").unwrap();
        fs.mkdir("c").unwrap();
        fs.charge_cache("a", 1 << 20).unwrap();
        fs.charge_cache("c", 1 << 20).unwrap();
        fs.rmdir("a").unwrap();
        fs.rmdir("b").unwrap();
        assert_eq!(fs.dying_split(), (0, 1, 0));
        assert_eq!(fs.hierarchy_live().unwrap(), 2);
        assert_eq!(memory_row(&fs), 3, "{p}: live + dying");
        assert_eq!(
            fs.ids_used(),
            2,
            "{p}: the page-cache-pinned one holds no id"
        );
        fs.add_dying(5).unwrap();
        assert_eq!(memory_row(&fs), 8);
        assert_eq!(errno(fs.drop_caches(0)), Errno::EINVAL);
        fs.drop_caches(2).unwrap();
        assert_eq!(fs.dying(), 6, "slab only: page cache stays");
        fs.drop_caches(1).unwrap();
        assert_eq!(fs.dying(), 5, "swap-pinned ones stay");
        assert_eq!(memory_row(&fs), 7);
        assert_eq!(num(&fs, "c", knob::USAGE), 0, "live cache dropped too");
        let disk = std::fs::read_to_string(fs.base().join("proc/cgroups")).unwrap();
        assert!(disk.contains("memory\t4\t7\t1"), "{disk}");
    }
}

#[test]
fn force_empty_rules() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("a").unwrap();
        assert_eq!(errno(fs.read("a", knob::FORCE_EMPTY)), Errno::EINVAL);
        assert_eq!(errno(fs.write("", knob::FORCE_EMPTY, "0")), Errno::EINVAL);
        fs.charge_cache("a", 12288).unwrap();
        let pid = fs.spawn("a", "x").unwrap();
        let r = fs.write("a", knob::FORCE_EMPTY, "0");
        if p == V3_10 {
            assert_eq!(errno(r), Errno::EBUSY);
            assert_eq!(num(&fs, "a", knob::USAGE), 12288);
            fs.exit(pid);
            fs.write("a", knob::FORCE_EMPTY, "0").unwrap();
        } else {
            r.unwrap();
        }
        assert_eq!(num(&fs, "a", knob::USAGE), 0);
        assert!(!fs.root().join("a/emulated.cache_bytes").exists());
    }
}

#[test]
fn rename_rules() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("kubepods").unwrap();
        fs.mkdir("kubepods/pod1").unwrap();
        fs.mkdir("other").unwrap();
        let pid = fs.spawn("kubepods/pod1", "app").unwrap();
        assert_eq!(errno(fs.rename("kubepods/pod1", "other/pod1")), Errno::EIO);
        assert_eq!(errno(fs.rename("kubepods", "other")), Errno::EEXIST);
        assert_eq!(errno(fs.rename("nope", "nope2")), Errno::ENOENT);
        assert_eq!(errno(fs.rename("", "x")), Errno::EBUSY);
        fs.rename("kubepods", "kubepods2").unwrap();
        assert!(!fs.exists("kubepods") && fs.exists("kubepods2/pod1"));
        assert_eq!(fs.cgroup_of(pid).as_deref(), Some("kubepods2/pod1"));
        assert_eq!(host::read_procs(&fs, "kubepods2/pod1").unwrap(), vec![pid]);
        assert_eq!(fs.children("").unwrap(), vec!["kubepods2", "other"]);
        // the index follows: moves and rmdir work on the new names
        fs.write("other", knob::PROCS, &pid.to_string()).unwrap();
        fs.rmdir("kubepods2/pod1").unwrap();
        fs.rmdir("kubepods2").unwrap();
        assert_eq!(fs.hierarchy_live().unwrap(), 2);
    }
}

#[test]
fn nth_fault_fires_once_and_changes_nothing() {
    let (_t, fs) = node(V6_1);
    fs.inject(Fault {
        when: FaultWhen::Nth(2),
        errno: Errno::EIO,
    })
    .unwrap();
    fs.mkdir("a").unwrap(); // 0
    fs.write("a", knob::LIMIT, "8192").unwrap(); // 1
    let e = fs.mkdir("a/b"); // 2: fails
    assert_eq!(errno(e), Errno::EIO);
    assert!(!fs.exists("a/b") && !fs.root().join("a/b").exists());
    fs.mkdir("a/b").unwrap(); // 3: one-shot
    assert_eq!(fs.mutations(), 4);
    assert!(fs.faults().is_empty());
    // failed kernel errors count too
    let _ = fs.write("a", knob::SWAPPINESS, "500");
    assert_eq!(fs.mutations(), 5);
    // reads are not mutations
    fs.read("a", knob::LIMIT).unwrap();
    assert_eq!(fs.mutations(), 5);
}

#[test]
fn match_fault_counts_down_and_persists_across_open() {
    let (t, fs) = node(V5_10);
    fs.mkdir("kubepods").unwrap();
    fs.mkdir("kubepods2").unwrap();
    fs.inject(Fault {
        when: FaultWhen::Match {
            op: FsOp::Rmdir,
            path_contains: "kubepods/".into(),
            times: 2,
        },
        errno: Errno::EBUSY,
    })
    .unwrap();
    fs.inject(Fault {
        when: FaultWhen::Match {
            op: FsOp::Read,
            path_contains: "memory.limit_in_bytes".into(),
            times: 1,
        },
        errno: Errno::EACCES,
    })
    .unwrap();
    fs.mkdir("kubepods/a").unwrap();
    fs.mkdir("kubepods/b").unwrap();
    fs.rmdir("kubepods2").unwrap(); // no match
    assert_eq!(errno(fs.rmdir("kubepods/a")), Errno::EBUSY);
    assert!(fs.exists("kubepods/a"));
    // another instance opened now sees the remaining count (1) and the read fault
    let base = t.path().join("node");
    let other = EmulatedFs::open(&base).unwrap();
    assert_eq!(other.faults().len(), 2);
    assert_eq!(errno(other.read("kubepods", knob::LIMIT)), Errno::EACCES);
    other.read("kubepods", knob::LIMIT).unwrap();
    assert_eq!(errno(other.rmdir("kubepods/b")), Errno::EBUSY);
    other.rmdir("kubepods/b").unwrap();
    assert!(other.faults().is_empty());
    assert!(EmulatedFs::open(&base).unwrap().faults().is_empty());
    // clear_faults
    other
        .inject(Fault {
            when: FaultWhen::Match {
                op: FsOp::Mkdir,
                path_contains: String::new(),
                times: 9,
            },
            errno: Errno::ENOMEM,
        })
        .unwrap();
    assert_eq!(errno(other.mkdir("x")), Errno::ENOMEM);
    other.clear_faults().unwrap();
    other.mkdir("x").unwrap();
}

#[test]
fn fork_on_move_leaves_children_behind() {
    for p in KernelProfile::ALL {
        let (_t, fs) = node(p);
        fs.mkdir("old").unwrap();
        fs.mkdir("new").unwrap();
        let pid = fs.spawn("old", "nginx").unwrap();
        fs.fork_on_move(pid, 2).unwrap();
        fs.write("new", knob::PROCS, &pid.to_string()).unwrap();
        assert_eq!(fs.cgroup_of(pid).as_deref(), Some("new"));
        let left = host::read_procs(&fs, "old").unwrap();
        assert_eq!(left.len(), 2);
        assert!(!left.contains(&pid));
        let mut all = fs.find_processes("nginx").unwrap();
        all.sort();
        let mut want = vec![pid, left[0], left[1]];
        want.sort();
        assert_eq!(all, want);
        // one-shot
        fs.write("old", knob::PROCS, &pid.to_string()).unwrap();
        assert_eq!(host::read_procs(&fs, "new").unwrap(), Vec::<u32>::new());
        assert_eq!(fs.find_processes("nginx").unwrap().len(), 3);
    }
}

#[test]
fn exit_on_move_fails_esrch_and_the_process_is_gone() {
    let (_t, fs) = node(V6_13);
    fs.mkdir("old").unwrap();
    fs.mkdir("new").unwrap();
    let pid = fs.spawn("old", "sh").unwrap();
    let tid = fs.spawn_thread(pid, "old").unwrap();
    fs.exit_on_move(pid).unwrap();
    assert_eq!(
        errno(fs.write("new", knob::PROCS, &pid.to_string())),
        Errno::ESRCH
    );
    assert!(!fs.pid_alive(pid) && !fs.pid_alive(tid));
    assert_eq!(fs.read("old", knob::PROCS).unwrap(), "");
    assert_eq!(fs.read("new", knob::TASKS).unwrap(), "");
    fs.rmdir("old").unwrap();
    assert_eq!(errno(fs.exit_on_move(pid)), Errno::ESRCH);
}

#[test]
fn find_processes_and_proc_files() {
    let (_t, fs) = node(V6_1);
    fs.mkdir("a").unwrap();
    let p1 = fs.spawn("a", "kubelet").unwrap();
    let p2 = fs.spawn("", "containerd").unwrap();
    let t = fs.spawn_thread(p1, "").unwrap();
    assert_eq!(
        fs.find_processes("kubelet").unwrap(),
        vec![p1],
        "threads not listed"
    );
    assert_eq!(fs.find_processes("containerd").unwrap(), vec![p2]);
    assert!(fs.find_processes("nope").unwrap().is_empty());
    let status = std::fs::read_to_string(fs.base().join(format!("proc/{t}/status"))).unwrap();
    assert!(status.contains(&format!("Tgid:\t{p1}\n")), "{status}");
    assert_eq!(
        std::fs::read_to_string(fs.base().join(format!("proc/{t}/comm"))).unwrap(),
        "kubelet\n"
    );
    assert!(fs.pid_alive(t) && !fs.pid_alive(424242));
    assert_eq!(fs.cgroup_of(t).as_deref(), Some(""));
}

#[test]
fn reopen_gives_the_same_state() {
    for p in KernelProfile::ALL {
        let (t, fs) = node(p);
        let base = t.path().join("node");
        fs.mkdir("kubepods").unwrap();
        fs.mkdir("kubepods/pod").unwrap();
        let pid = fs.spawn("kubepods/pod", "app").unwrap();
        let tid = fs.spawn_thread(pid, "kubepods").unwrap();
        fs.charge_cache("kubepods/pod", 4096).unwrap();
        fs.charge_process(pid, 8192).unwrap();
        fs.mkdir("gone").unwrap();
        fs.charge_cache("gone", 4096).unwrap();
        if p == V3_10 {
            // kmem active and a task that allocated: slab pins it on 3.10
            fs.write("gone", knob::KMEM_LIMIT, "1").unwrap();
            let t = fs.spawn("gone", "app").unwrap();
            fs.exit(t);
        }
        fs.rmdir("gone").unwrap();
        fs.set_cmdline("quiet").unwrap();
        fs.set_boot_id("11111111-2222-3333-4444-555555555555")
            .unwrap();
        fs.set_mode(CgroupMode::Hybrid).unwrap();
        let rc = fs.proc_cgroups().unwrap();
        drop(fs);

        let fs = EmulatedFs::open(&base).unwrap();
        assert_eq!(fs.profile(), p);
        assert_eq!(fs.dying(), 1);
        // from 4.8 the page-cache-pinned dying memcg holds no id
        assert_eq!(fs.ids_used(), if p == V3_10 { 4 } else { 3 });
        assert_eq!(fs.proc_cgroups().unwrap(), rc);
        assert_eq!(fs.kernel_cmdline().unwrap(), "quiet\n");
        assert_eq!(
            fs.boot_id().unwrap(),
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(fs.cgroup_mode().unwrap(), CgroupMode::Hybrid);
        assert_eq!(fs.cgroup_of(pid).as_deref(), Some("kubepods/pod"));
        assert_eq!(fs.cgroup_of(tid).as_deref(), Some("kubepods"));
        assert_eq!(fs.charges("kubepods/pod"), Some((4096, 8192)));
        assert_eq!(fs.mutations(), 0);
        // the thread group survives the reopen: procs moves both
        fs.mkdir("x").unwrap();
        fs.write("x", knob::PROCS, &pid.to_string()).unwrap();
        assert_eq!(host::read_tasks(&fs, "x").unwrap(), vec![pid, tid]);
        // new pids do not collide
        let q = fs.spawn("x", "q").unwrap();
        assert!(q > tid);
    }
}

#[test]
fn open_at_subdirectory_and_find_base() {
    let (t, fs) = node(V6_1);
    fs.mkdir("kubepods").unwrap();
    fs.mkdir("kubepods/pod").unwrap();
    let base = t.path().join("node");
    let sub = base.join("memory/kubepods");
    assert_eq!(find_base(&sub).unwrap(), base);
    assert_eq!(find_base(&base.join("memory")).unwrap(), base);
    assert_eq!(find_base(t.path()), None);
    let sfs = EmulatedFs::open_at(&base, &sub).unwrap();
    assert_eq!(sfs.children("").unwrap(), vec!["pod"]);
    sfs.mkdir("pod2").unwrap();
    assert!(host::read_u64(&sfs, "pod2", knob::LIMIT).is_ok());
    assert_eq!(sfs.hierarchy_live().unwrap(), 4, "whole hierarchy");
    assert_eq!(
        sfs.hierarchy_mount(),
        base.join("memory").canonicalize().unwrap()
    );
    let pid = sfs.spawn("pod", "a").unwrap();
    assert_eq!(sfs.cgroup_of(pid).as_deref(), Some("pod"));
    // host::open finds the emulated node
    let g = host::open(&sub).unwrap();
    assert!(g.is_emulated());
    assert!(g.exists("pod2"));
    // bad roots
    match EmulatedFs::open_at(&base, &base.join("proc")) {
        Err(Error::BadRoot { .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("proc accepted as root"),
    }
    assert!(matches!(
        EmulatedFs::open_at(&base, &base.join("memory/nope")),
        Err(Error::BadRoot { .. })
    ));
    assert!(matches!(
        EmulatedFs::open(t.path()),
        Err(Error::BadRoot { .. })
    ));
}

#[test]
fn copy_node_makes_an_independent_second_copy() {
    let (t, fs) = node(V3_10);
    fs.mkdir("kubepods").unwrap();
    let pid = fs.spawn("kubepods", "app").unwrap();
    let dst = t.path().join("copy");
    copy_node(fs.base(), &dst).unwrap();
    let c = EmulatedFs::open(&dst).unwrap();
    assert_eq!(c.cgroup_of(pid).as_deref(), Some("kubepods"));
    c.mkdir("only-in-copy").unwrap();
    assert!(!fs.exists("only-in-copy"));
    assert!(copy_node(fs.base(), &dst).is_err(), "destination not empty");
}

/// A clone shares the cgroup files' inodes with its source until either side writes one, and
/// a write on either side (the first replaces the file, later ones go in place) never shows on
/// the other; tasks, the state file and proc are the node's own.
#[test]
fn clone_node_and_its_source_never_write_into_each_other() {
    let (t, fs) = node(V6_1);
    fs.mkdir("kubepods").unwrap();
    fs.write("kubepods", knob::LIMIT, "1M").unwrap();
    let pid = fs.spawn("kubepods", "app").unwrap();
    let base = fs.base().to_path_buf();
    drop(fs); // at rest: no instance that wrote it stays open
    let dst = t.path().join("clone");
    clone_node(&base, &dst).unwrap();
    let file = |b: &std::path::Path| b.join("memory/kubepods").join(knob::LIMIT);
    let nlink = |p: std::path::PathBuf| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().nlink()
    };
    assert!(nlink(file(&dst)) >= 2, "the clone links the source's files");
    let c = EmulatedFs::open(&dst).unwrap();
    for v in ["2M", "3M"] {
        c.write("kubepods", knob::LIMIT, v).unwrap();
    }
    c.mkdir("kubepods/x").unwrap();
    c.write("kubepods/x", knob::PROCS, &pid.to_string())
        .unwrap();
    let src = EmulatedFs::open(&base).unwrap();
    assert_eq!(src.read("kubepods", knob::LIMIT).unwrap(), "1048576\n");
    assert_eq!(src.cgroup_of(pid).as_deref(), Some("kubepods"));
    assert!(!src.exists("kubepods/x"));
    for v in ["4M", "5M"] {
        src.write("kubepods", knob::LIMIT, v).unwrap();
    }
    drop(c);
    let c = EmulatedFs::open(&dst).unwrap();
    assert_eq!(c.read("kubepods", knob::LIMIT).unwrap(), "3145728\n");
    assert_eq!(c.cgroup_of(pid).as_deref(), Some("kubepods/x"));
    assert!(clone_node(&base, &dst).is_err(), "destination not empty");
}

#[test]
fn control_files_are_readable_by_a_person() {
    let (_t, fs) = node(V6_1);
    fs.mkdir("a").unwrap();
    fs.write("a", knob::LIMIT, "1M").unwrap();
    let pid = fs.spawn("a", "x").unwrap();
    let dir = fs.root().join("a");
    assert_eq!(
        std::fs::read_to_string(dir.join(knob::LIMIT)).unwrap(),
        "1048576\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(knob::PROCS)).unwrap(),
        format!("{pid}\n")
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"memory.oom_control".to_string()));
    assert!(fs.has_file("a", knob::MEMSW_LIMIT));
    assert!(!fs.has_file("a", "memory.nosuch"));
    assert_eq!(errno(fs.read("a", "emulated.kmem_active")), Errno::ENOENT);
}

#[test]
fn fixture_builds_on_every_profile() {
    for p in KernelProfile::ALL {
        for layout in [
            FixtureLayout::Flat,
            FixtureLayout::Qos,
            FixtureLayout::Mixed,
        ] {
            let (_t, fs) = node(p);
            let mut spec = FixtureSpec::new("kubepods", 12);
            spec.layout = layout;
            spec.max_containers = 3;
            spec.procs_per_container = 2;
            let tree = fixture::kubelet_tree(&spec);
            let pids = fixture::build(&fs, &tree, &mut |cg| fs.spawn(cg, "app")).unwrap();
            let want: usize = tree.iter().map(|c| c.processes).sum();
            assert_eq!(pids.len(), want);
            assert_eq!(fs.hierarchy_live().unwrap(), tree.len() as u64 + 1);
            for c in &tree {
                assert!(fs.exists(&c.path), "{}", c.path);
                assert_eq!(host::read_procs(&fs, &c.path).unwrap().len(), c.processes);
                for (file, value) in &c.settings {
                    let got = fs.read(&c.path, file).unwrap();
                    match *file {
                        knob::LIMIT | knob::MEMSW_LIMIT | knob::SOFT_LIMIT => {
                            let v: u64 = value.parse().unwrap();
                            let g: u64 = got.trim().parse().unwrap();
                            assert!(g.abs_diff(v) < 4096, "{p} {} {file}", c.path);
                            assert_eq!(g % 4096, 0);
                        }
                        knob::SWAPPINESS if p == V3_10 => {
                            assert_eq!(got.trim(), "60", "3.10: refused, inherited")
                        }
                        knob::SWAPPINESS => assert_eq!(got.trim(), value),
                        knob::OOM_CONTROL if p != V3_10 => {
                            assert!(got.starts_with("oom_kill_disable 1"))
                        }
                        _ => {}
                    }
                }
            }
            if layout == FixtureLayout::Flat {
                assert!(!fs.exists("kubepods/burstable"));
            } else {
                assert!(fs.exists("kubepods/burstable") && fs.exists("kubepods/besteffort"));
            }
        }
    }
}

/// README.md, "Fault injection": the worked example, step by step through the binary.
#[test]
fn readme_fault_injection_example() {
    let t = cgleak::host::emulated::tempdir().unwrap();
    let (node, state) = (t.path().join("node"), t.path().join("state"));
    let cgleak = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cgleak"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let n = node.to_str().unwrap();
    let (code, text) = cgleak(&["emulate", n, "--profile", "6.1", "--pods", "5"]);
    assert_eq!(code, 0, "{text}");
    // "in /tmp/node/cgleak-emulated.json:" the faults entry, as the README spells it.
    let sp = node.join(STATE_FILE);
    let mut state_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sp).unwrap()).unwrap();
    let entry = r#"[{"when": {"Match": {"op": "mkdir", "path_contains": "/kubepods2/", "times": 1}},
                "errno": "ENOSPC"}]"#;
    state_json["faults"] = serde_json::from_str(entry).unwrap();
    std::fs::write(&sp, serde_json::to_vec_pretty(&state_json).unwrap()).unwrap();
    let root = format!("{n}/memory");
    let st = state.to_str().unwrap();
    let (code, text) = cgleak(&["--root", &root, "repair", "--yes", "--state-dir", st]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("mkdir") && text.contains("ENOSPC"), "{text}");
    assert!(state.join("journal.json").is_file(), "journal kept: {text}");
    let (code, text) = cgleak(&["--root", &root, "resume", "--yes", "--state-dir", st]);
    assert_eq!(code, 0, "{text}");
    let emu = EmulatedFs::open(&node).unwrap();
    assert!(emu.faults().is_empty(), "the spent fault left the file");
    assert!(emu.exists("kubepods") && !emu.exists("kubepods2"));
}

/// A fault's errno may be a name or a number in the state file.
#[test]
fn fault_errno_by_name_or_number() {
    for (v, want) in [("\"EBUSY\"", Errno::EBUSY), ("28", Errno::ENOSPC)] {
        let f: Fault =
            serde_json::from_str(&format!(r#"{{"when": {{"Nth": 0}}, "errno": {v}}}"#)).unwrap();
        assert_eq!(f.errno, want);
    }
    let bad = serde_json::from_str::<Fault>(r#"{"when": {"Nth": 0}, "errno": "ENOPE"}"#);
    assert!(bad.unwrap_err().to_string().contains("unknown errno name"));
}

/// Two instances of one node (two processes, in effect): each sees what the other changed
/// without being opened again, because the lock file's generation tells it to reload.
#[test]
fn instances_of_one_node_see_each_other() {
    let (t, a) = node(V6_1);
    let b = EmulatedFs::open(&t.path().join("node")).unwrap();
    a.mkdir("kubepods").unwrap();
    assert!(b.exists("kubepods"), "b sees a's mkdir");
    let pid = b.spawn("kubepods", "app").unwrap();
    assert_eq!(a.cgroup_of(pid).as_deref(), Some("kubepods"));
    b.mkdir("kubepods/x").unwrap();
    a.write("kubepods/x", knob::PROCS, &pid.to_string())
        .unwrap();
    assert_eq!(b.cgroup_of(pid).as_deref(), Some("kubepods/x"));
    assert_eq!(errno(b.rmdir("kubepods/x")), Errno::EBUSY);
    a.exit(pid);
    b.rmdir("kubepods/x").unwrap();
    assert!(!a.exists("kubepods/x"));
    // Nothing is left around the renames.
    let tmp = t.path().join("node").join(cgleak::host::emulated::TMP_DIR);
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}
