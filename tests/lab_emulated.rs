//! The kernel lab's scenarios (scripts/vm/scenarios/, run on real 5.10 and 6.1 kernels under
//! QEMU by scripts/vm-test.sh) on the emulated cgroupfs, through the real binary, so the same
//! behaviour is tested on every machine without QEMU. Each test names the lab scenario it
//! mirrors; the emulated profiles carry what the lab found (ids held by swap only from 4.8,
//! 65534 ids on 5.10), and the repair scenarios check that force_empty is left out where
//! there is no page cache (its cost on such cgroups is not emulated).

use assert_cmd::Command;
use cgleak::demo::build_pods;
use cgleak::demo::fixture::{FixtureLayout, FixtureSpec};
use cgleak::host::emulated::{EmulatedFs, Fault, FaultWhen, KernelProfile};
use cgleak::host::{knob, Hierarchy, Host};
use std::path::Path;
use KernelProfile::*;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cgleak(root: &Path, args: &[&str]) -> Out {
    cgleak_env(root, args, &[])
}

/// The test hook of the binary (not an option: an environment variable): stop dead after N
/// changing system calls, as kill -9 would.
const CRASH_AFTER: &str = "CGLEAK_TEST_CRASH_AFTER";

fn cgleak_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::cargo_bin("cgleak")
        .unwrap()
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The node as the last cgleak process left it (an open EmulatedFs caches its state).
fn reopen(emu: &mut EmulatedFs) {
    let base = emu.base().to_path_buf();
    *emu = EmulatedFs::open(&base).unwrap();
}

fn diagnose(emu: &EmulatedFs) -> (i32, serde_json::Value) {
    let o = cgleak(emu.root(), &["diagnose", "--format", "json"]);
    let v = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout));
    (o.code, v)
}

fn node(p: KernelProfile) -> (tempfile::TempDir, EmulatedFs) {
    let t = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&t.path().join("node"), p).unwrap();
    (t, emu)
}

/// Every (cgroup, pid) pair and every cgroup's settings, to compare before and after.
fn picture(emu: &EmulatedFs, kubepods: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![kubepods.to_string()];
    while let Some(cg) = stack.pop() {
        for file in [
            knob::LIMIT,
            knob::SWAPPINESS,
            knob::USE_HIERARCHY,
            knob::PROCS,
        ] {
            let c = emu.read(&cg, file).unwrap();
            v.push(format!(
                "{cg} {file} {}",
                c.split_whitespace().collect::<Vec<_>>().join(",")
            ));
        }
        for k in emu.children(&cg).unwrap() {
            stack.push(cgleak::model::path::join(&cg, &k));
        }
    }
    v.sort();
    v
}

/// Lab scenario "repair": a kubelet-shaped tree (flat and QoS pods, settings, processes,
/// page cache and anonymous memory charged) repaired with each strategy and verified; the
/// anonymous charge moves along (destination usage rises); a kill -9 in the middle, then
/// resume, then verify.
#[test]
fn lab_repair_each_strategy_moves_charges_and_survives_kill() {
    for p in [V5_10, V6_1] {
        let (t, mut emu) = node(p);
        let mut spec = FixtureSpec::new("kubepods", 8);
        spec.layout = FixtureLayout::Mixed;
        build_pods(&emu, &spec, false).unwrap();
        // one container with 20 MiB anon, a few with page cache
        let containers: Vec<String> = {
            let mut all = Vec::new();
            let mut stack = vec!["kubepods".to_string()];
            while let Some(cg) = stack.pop() {
                let kids = emu.children(&cg).unwrap();
                if kids.is_empty() {
                    all.push(cg.clone());
                }
                for k in kids {
                    stack.push(cgleak::model::path::join(&cg, &k));
                }
            }
            all.sort();
            all
        };
        let anon_cg = containers[0].clone();
        let pid: u32 = emu
            .read(&anon_cg, knob::PROCS)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        emu.charge_process(pid, 20 << 20).unwrap();
        for c in containers.iter().skip(1).step_by(3) {
            emu.charge_cache(c, 1 << 20).unwrap();
        }
        let before = picture(&emu, "kubepods");
        let state = t.path().join("state");
        let st = state.to_str().unwrap();
        for strategy in ["migrate-back", "rename"] {
            let o = cgleak(
                emu.root(),
                &["repair", "--yes", "--strategy", strategy, "--state-dir", st],
            );
            reopen(&mut emu);
            assert_eq!(o.code, 0, "{p} {strategy}: {}{}", o.stdout, o.stderr);
            assert!(o.stdout.contains("verify: OK"), "{}", o.stdout);
            // cgroups without page cache get no force_empty (the kernel would only retry on
            // their kernel memory: 1.6 s each on 5.10 in the lab)
            assert!(
                o.stdout.contains("force_empty left out on"),
                "{p} {strategy}: {}",
                o.stdout
            );
            let v = cgleak(emu.root(), &["verify", "--state-dir", st]);
            reopen(&mut emu);
            assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
            assert_eq!(picture(&emu, "kubepods"), before, "{p} {strategy}");
            let moved = emu.charges(&anon_cg).unwrap().1;
            assert_eq!(
                moved,
                20 << 20,
                "{p} {strategy}: the anon charge moved along"
            );
            std::fs::remove_dir_all(&state).unwrap();
        }
        // kill -9 in the middle (the test hook stops dead after N changing system calls)
        let o = cgleak_env(
            emu.root(),
            &["repair", "--yes", "--state-dir", st],
            &[(CRASH_AFTER, "40")],
        );
        reopen(&mut emu);
        assert_ne!(o.code, 0, "{}", o.stdout);
        assert!(emu.exists("kubepods2"), "{p}: stopped half-way");
        let o = cgleak(emu.root(), &["resume", "--yes", "--state-dir", st]);
        reopen(&mut emu);
        assert_eq!(o.code, 0, "{p}: {}{}", o.stdout, o.stderr);
        let v = cgleak(emu.root(), &["verify", "--state-dir", st]);
        reopen(&mut emu);
        assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
        assert_eq!(picture(&emu, "kubepods"), before, "{p} after resume");
        assert!(!emu.exists("kubepods2"));
    }
}

/// Lab scenarios "leak" and "remedy": page-cache-pinned dying memcgs made by mkdir, charge,
/// rmdir (they hold no id from 4.8), then swap-pinned ones until mkdir fails with ENOSPC;
/// diagnose says leaking with the true dying count and 0 ids free; reclaim's dry run changes
/// nothing; the page-cache drop frees the former but mkdir still fails; the swap cycle brings
/// mkdir back and diagnose is no longer leaking.
#[test]
fn lab_leak_diagnose_and_reclaim() {
    for p in [V5_10, V6_1] {
        let (_t, mut emu) = node(p);
        emu.mkdir("leak").unwrap();
        for i in 0..3000 {
            let cg = format!("leak/pc{i}");
            emu.mkdir(&cg).unwrap();
            emu.charge_cache(&cg, 4096).unwrap();
            emu.rmdir(&cg).unwrap();
        }
        assert_eq!(emu.dying(), 3000);
        emu.mkdir("leak/still-works").unwrap();
        emu.rmdir("leak/still-works").unwrap();
        // swap-pinned ones until the ids run out
        let mut made = 0u64;
        while emu.add_dying(1000).is_ok() {
            made += 1000;
        }
        while emu.add_dying(1).is_ok() {
            made += 1;
        }
        let e = emu.mkdir("leak/probe").unwrap_err();
        assert!(e.to_string().contains("ENOSPC"), "{e}");
        let truth = 3000 + made;
        assert_eq!(made + 2, p.id_limit(), "{p}: root and leak live");

        let (code, d) = diagnose(&emu);
        assert_eq!(code, 1, "{d}");
        assert_eq!(d["verdict"]["status"], "leaking", "{d}");
        assert_eq!(d["hierarchy"]["dying"], truth, "{d}");
        assert_eq!(d["hierarchy"]["ids_free"], 0, "{d}");

        let dry = cgleak(emu.root(), &["reclaim", "--dry-run", "--swap-cycle"]);
        reopen(&mut emu);
        assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
        assert!(
            dry.stdout.contains("--swap-cycle` would then swapoff"),
            "{}",
            dry.stdout
        );
        assert_eq!(emu.dying(), truth, "dry run changes nothing");

        // a swap cycle that would not fit in memory is refused before anything changes
        emu.set_mem_available(1024).unwrap();
        let no = cgleak(emu.root(), &["reclaim", "--yes", "--swap-cycle"]);
        reopen(&mut emu);
        assert_eq!(no.code, 2, "{}{}", no.stdout, no.stderr);
        assert!(
            no.stderr.contains("--swap-cycle is refused") && no.stderr.contains("needs room"),
            "{}",
            no.stderr
        );
        assert_eq!(
            emu.dying(),
            truth,
            "refused: not even the page cache was dropped"
        );
        emu.set_mem_available(6 << 20).unwrap();

        let drop = cgleak(emu.root(), &["reclaim", "--yes"]);
        reopen(&mut emu);
        assert_eq!(drop.code, 0, "{}{}", drop.stdout, drop.stderr);
        assert_eq!(
            emu.dying(),
            made,
            "{p}: the page-cache-pinned ones are freed"
        );
        assert!(
            drop.stdout.contains("reclaim --dry-run --swap-cycle"),
            "{}",
            drop.stdout
        );
        assert!(emu.mkdir("leak/probe").is_err(), "{p}: no id came back");

        let cycle = cgleak(
            emu.root(),
            &["reclaim", "--yes", "--swap-cycle", "--format", "json"],
        );
        reopen(&mut emu);
        assert_eq!(cycle.code, 0, "{}{}", cycle.stdout, cycle.stderr);
        let r: serde_json::Value = serde_json::from_str(&cycle.stdout).unwrap();
        assert_eq!(r["dying_after"], 0, "{r}");
        assert_eq!(r["swap"]["cycled"][0]["in_use"], true, "{r}");
        assert!(
            emu.proc_swaps().unwrap().contains("/dev/vdb"),
            "swap back on"
        );
        emu.mkdir("leak/probe").unwrap();
        let (code, d) = diagnose(&emu);
        assert_ne!(d["verdict"]["status"], "leaking", "{d}");
        assert_eq!(code, 0, "{d}");
    }
}

/// `reclaim --yes --swap-cycle` on a 6.1 node with 10 memcgs dying on /dev/vdb, whose
/// swapoff or swapon fails once with `errno`: the node as the run left it, and the run.
fn swap_cycle_failing(
    op: cgleak::error::FsOp,
    errno: nix::errno::Errno,
) -> (tempfile::TempDir, EmulatedFs, Out) {
    let (t, mut emu) = node(V6_1);
    emu.add_dying(10).unwrap();
    let fault = FaultWhen::Match {
        op,
        path_contains: "/dev/vdb".into(),
        times: 1,
    };
    emu.inject(Fault { when: fault, errno }).unwrap();
    let o = cgleak(emu.root(), &["reclaim", "--yes", "--swap-cycle"]);
    reopen(&mut emu);
    (t, emu, o)
}

/// A failed swapon after a successful swapoff is reported loudly, with exit 1.
#[test]
fn lab_swap_area_left_off_is_loud() {
    let (_t, emu, o) = swap_cycle_failing(cgleak::error::FsOp::Swapon, nix::errno::Errno::EIO);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("SWAP AREA LEFT OFF: /dev/vdb"),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("run `swapon /dev/vdb`"), "{}", o.stderr);
    assert!(
        !emu.proc_swaps().unwrap().contains("/dev/vdb"),
        "the area is really off"
    );
}

/// Issue 15: Ctrl-C during swapoff (EINTR from try_to_unuse) is an interruption, with the
/// area's state (the kernel kept it in use), not "stayed in use: EINTR". Fails on the old code.
#[test]
fn swapoff_interrupted_is_reported_as_interrupted() {
    let (_t, emu, o) = swap_cycle_failing(cgleak::error::FsOp::Swapoff, nix::errno::Errno::EINTR);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("/dev/vdb interrupted during swapoff after")
            && o.stdout.contains("the kernel kept it in use"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("stayed in use"), "{}", o.stdout);
    assert!(emu.proc_swaps().unwrap().contains("/dev/vdb"), "still on");
    let j = cgleak(emu.root(), &["reclaim", "--dry-run", "--format", "json"]);
    assert_eq!(j.code, 0, "{}", j.stderr);
}

/// A swap area with a priority set by hand (swapon -p 10) gets it back after the cycle.
#[test]
fn swap_cycle_gives_a_hand_set_priority_back() {
    let (_t, mut emu) = node(V6_1);
    emu.add_dying(10).unwrap();
    emu.set_swap_priority("/dev/vdb", 10).unwrap();
    let line = |e: &EmulatedFs| {
        e.proc_swaps()
            .unwrap()
            .lines()
            .find(|l| l.starts_with("/dev/vdb"))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(line(&emu).as_deref(), Some("10"));
    let o = cgleak(emu.root(), &["reclaim", "--yes", "--swap-cycle"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    reopen(&mut emu);
    assert_eq!(line(&emu).as_deref(), Some("10"), "priority kept");
}

/// Issue 15: a plain `reclaim` reads neither /proc/swaps nor /proc/meminfo (a kernel without
/// swap support has no /proc/swaps); `--swap-cycle` there is refused as such. Fails on the old
/// code (it read /proc/swaps for every reclaim).
#[test]
fn plain_reclaim_needs_no_swap_support() {
    let (_t, mut emu) = node(V6_1);
    emu.add_dying_cache(5).unwrap();
    emu.inject(Fault {
        when: FaultWhen::Match {
            op: cgleak::error::FsOp::Read,
            path_contains: "proc/swaps".into(),
            times: 100,
        },
        errno: nix::errno::Errno::ENOENT,
    })
    .unwrap();
    let o = cgleak(emu.root(), &["reclaim", "--yes"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("dropped the clean page cache"),
        "{}",
        o.stdout
    );
    reopen(&mut emu);
    let o = cgleak(emu.root(), &["reclaim", "--yes", "--swap-cycle"]);
    assert_eq!(o.code, 2, "{}{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("no swap support"), "{}", o.stderr);
    let o = cgleak(emu.root(), &["reclaim", "--dry-run"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("no swap support"), "{}", o.stdout);
}

/// Lab scenario "nokmem": booted with cgroup.memory=nokmem, diagnose reports it.
#[test]
fn lab_nokmem_is_reported() {
    for p in [V5_10, V6_1] {
        let (_t, emu) = node(p);
        build_pods(&emu, &FixtureSpec::new("kubepods", 2), false).unwrap();
        emu.set_cmdline("console=ttyS0 cgroup.memory=nokmem")
            .unwrap();
        let (_, d) = diagnose(&emu);
        assert_eq!(d["nokmem"], true, "{d}");
        assert_eq!(d["kubepods"]["kmem_active"], false, "{d}");
    }
}

/// Lab scenario "use_hierarchy" (5.10 only): memory.use_hierarchy is 0 on a bare v1 root and
/// each cgroup's own value survives a repair.
#[test]
fn lab_use_hierarchy_values_survive_on_5_10() {
    let (t, mut emu) = node(V5_10);
    assert_eq!(emu.read("", knob::USE_HIERARCHY).unwrap().trim(), "0");
    build_pods(&emu, &FixtureSpec::new("kubepods", 4), false).unwrap();
    // a mix: some subtrees hierarchical, some not (set before children exist)
    emu.mkdir("kubepods/flat-pod").unwrap();
    emu.write("kubepods/flat-pod", knob::USE_HIERARCHY, "1")
        .unwrap();
    emu.mkdir("kubepods/flat-pod/ctr").unwrap();
    emu.spawn("kubepods/flat-pod/ctr", "app").unwrap();
    let before = picture(&emu, "kubepods");
    assert!(before.iter().any(|l| l.ends_with("memory.use_hierarchy 1")));
    assert!(before.iter().any(|l| l.ends_with("memory.use_hierarchy 0")));
    let st = t.path().join("state");
    let o = cgleak(
        emu.root(),
        &["repair", "--yes", "--state-dir", st.to_str().unwrap()],
    );
    reopen(&mut emu);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_eq!(picture(&emu, "kubepods"), before);
}
