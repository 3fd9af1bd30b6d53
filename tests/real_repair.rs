//! Real-kernel tests of scan, plan, diagnose, repair, resume and verify, in a sandbox below
//! this process's own memory cgroup, with real sleeping processes. They run whenever the
//! machine allows (root, writable memcg v1) and say why when they cannot.

mod common;

use cgleak::demo::fixture::{self, FixtureSpec};
use cgleak::host::kernel::KernelFs;
use cgleak::host::{self, Hierarchy};
use cgleak::repair::plan::Strategy;
use cgleak::repair::{self, RepairOptions};
use cgleak::scan;
use common::Sandbox;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The memory cgroup line of /proc/PID/cgroup.
fn memcg_of(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        ctrl.split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })
}

/// Every process of the tree is in the memory cgroup it was in before.
fn assert_in_place(where_before: &BTreeMap<u32, String>) {
    for (pid, path) in where_before {
        assert_eq!(memcg_of(*pid).as_deref(), Some(path.as_str()), "pid {pid}");
    }
}

/// Wait (at most 20 s) until a running repair's journal says phase 1, the move into staging,
/// has begun; returns the progress file's path.
fn wait_for_move_phase(state_dir: &Path) -> std::path::PathBuf {
    let progress = state_dir.join("progress");
    let t = Instant::now();
    while !std::fs::read_to_string(&progress)
        .unwrap_or_default()
        .contains("begin 1")
        && t.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_micros(200));
    }
    progress
}

/// Build a kubelet-shaped tree with real sleepers; returns (pid -> memcg path).
fn build(sb: &Sandbox, pods: usize) -> BTreeMap<u32, String> {
    let fs = KernelFs::open(sb.path()).unwrap();
    let spec = FixtureSpec::new("kubepods", pods);
    let tree = fixture::kubelet_tree(&spec);
    let mut spawn = |cg: &str| Ok(sb.spawn_sleeper(cg));
    let pids = fixture::build(&fs, &tree, &mut spawn).unwrap();
    pids.into_iter()
        .map(|p| (p, memcg_of(p).unwrap()))
        .collect()
}

fn round_trip(name: &str, strategy: Strategy) {
    let Some(sb) = common::real_kernel(name) else {
        return;
    };
    let where_before = build(&sb, 110);
    let fs = KernelFs::open(sb.path()).unwrap();
    let before = scan::scan(&fs, "kubepods").unwrap();
    assert!(before.cgroups.len() > 300, "{}", before.cgroups.len());
    let state = tempfile::tempdir().unwrap();
    let opts = RepairOptions::new("kubepods", "kubepods2", strategy, state.path());
    let t = Instant::now();
    let prepared = repair::prepare(&fs, &opts).unwrap();
    assert!(
        repair::refusal(&prepared).is_none(),
        "{:?}",
        prepared.failures()
    );
    let out = repair::execute(&fs, &opts, prepared, None).unwrap();
    let wall = t.elapsed();
    assert!(out.verify.ok, "{:?}", out.verify.differences);
    assert_eq!(out.verify.tasks_in_place, where_before.len());
    assert_in_place(&where_before);
    assert!(!fs.exists("kubepods2"));
    eprintln!(
        "real kernel {strategy}: {} cgroups, {} tasks, repair wall {:.3} s (executor {:.3} s, {} mutations)",
        before.cgroups.len(), where_before.len(), wall.as_secs_f64(), out.stats.seconds, out.stats.mutations
    );
}

#[test]
fn real_round_trip_migrate_back_110_pods() {
    round_trip(
        "real_round_trip_migrate_back_110_pods",
        Strategy::MigrateBack,
    );
}

/// The rename strategy through the command line, as an operator runs it.
#[test]
fn real_round_trip_rename_110_pods_cli() {
    let Some(sb) = common::real_kernel("real_round_trip_rename_110_pods_cli") else {
        return;
    };
    let where_before = build(&sb, 110);
    let state = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cgleak");
    let (root, st) = (sb.path().to_str().unwrap(), state.path().to_str().unwrap());
    let t = Instant::now();
    let out = Command::new(bin)
        .args([
            "--root",
            root,
            "repair",
            "--yes",
            "--strategy",
            "rename",
            "--state-dir",
            st,
        ])
        .output()
        .unwrap();
    let wall = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("verify: OK") && text.contains("rename"),
        "{text}"
    );
    let out = Command::new(bin)
        .args(["--root", root, "verify", "--state-dir", st])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_in_place(&where_before);
    eprintln!(
        "real kernel rename via the CLI: {} tasks, wall {:.3} s",
        where_before.len(),
        wall.as_secs_f64()
    );
}

/// Ctrl-C (SIGINT) mid-repair stops between two steps with the way on, then rollback.
#[test]
fn real_ctrl_c_stops_cleanly_then_rollback() {
    let Some(sb) = common::real_kernel("real_ctrl_c_stops_cleanly_then_rollback") else {
        return;
    };
    let where_before = build(&sb, 110);
    let fs = KernelFs::open(sb.path()).unwrap();
    let before = scan::scan(&fs, "kubepods").unwrap();
    let state = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cgleak");
    let (root, st) = (sb.path().to_str().unwrap(), state.path().to_str().unwrap());
    let child = Command::new(bin)
        .args(["--root", root, "repair", "--yes", "--state-dir", st])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_move_phase(state.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted (Ctrl-C)") && err.contains("cgleak rollback"),
        "{err}"
    );
    let out = Command::new(bin)
        .args(["--root", root, "rollback", "--yes", "--state-dir", st])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = scan::scan(&fs, "kubepods").unwrap();
    assert_eq!(
        before
            .cgroups
            .iter()
            .map(|c| (&c.path, &c.settings))
            .collect::<Vec<_>>(),
        after
            .cgroups
            .iter()
            .map(|c| (&c.path, &c.settings))
            .collect::<Vec<_>>()
    );
    assert!(!fs.exists("kubepods2"));
    assert_in_place(&where_before);
}

/// Whether a process has exited and waits to be reaped (state Z in /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

/// The parent of a process (field 4 of /proc/PID/stat), None once it is gone.
fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Children of a process, from /proc/*/stat (ppid is field 4).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            out.push(pid);
        }
    }
    out
}

#[test]
fn real_forking_process_keeps_all_children_in_its_container() {
    let Some(sb) = common::real_kernel("real_forking_process_keeps_all_children_in_its_container")
    else {
        return;
    };
    build(&sb, 20);
    let fs = KernelFs::open(sb.path()).unwrap();
    let snap = scan::scan(&fs, "kubepods").unwrap();
    let ctr = snap
        .cgroups
        .iter()
        .rev()
        .find(|c| c.kind == cgleak::model::Kind::Container)
        .unwrap()
        .path
        .clone();
    let forker = sb.spawn_forker(&ctr);
    std::thread::sleep(Duration::from_millis(50));
    let want = memcg_of(forker).unwrap();
    for strategy in [Strategy::MigrateBack, Strategy::Rename] {
        let state = tempfile::tempdir().unwrap();
        let opts = RepairOptions::new("kubepods", "kubepods2", strategy, state.path());
        let p = repair::prepare(&fs, &opts).unwrap();
        let out = repair::execute(&fs, &opts, p, None).unwrap();
        assert!(out.verify.ok, "{:?}", out.verify.differences);
        assert_eq!(memcg_of(forker).as_deref(), Some(want.as_str()));
        let kids = children_of(forker);
        for k in &kids {
            // An exited child (a zombie until the forker reaps it) shows "/": the kernel moves a
            // task to the root css_set when it exits (cgroup_exit).
            if is_zombie(*k) {
                continue;
            }
            if let Some(cg) = memcg_of(*k) {
                // "/" is an exiting task: cgroup_exit moves it to the root css_set before it
                // turns zombie (and the forker may reap it before we look again). cgleak never
                // moves anything to the hierarchy's root, so this cannot hide a misplaced child.
                assert!(
                    cg == want || cg == "/" || is_zombie(*k),
                    "child {k} of the forker is in {cg}, not {want}"
                );
            }
        }
        // Every task in the container's cgroup right now is the forker, one of its children
        // (alive or exited meanwhile), or a sleeper of the fixture. A child being reaped between
        // the two reads shows ppid 0: /proc/PID/stat gives 0 once the task is unhashed
        // (do_task_stat: `pid_alive(task) ? ... : 0`).
        for pid in host::read_procs(&fs, &ctr).unwrap() {
            let parent = ppid_of(pid);
            assert!(
                pid == forker
                    || parent.is_none()
                    || parent == Some(0)
                    || parent == Some(forker)
                    || sb.pids().contains(&pid),
                "stranger {pid} (parent {parent:?}) in {ctr}"
            );
        }
        eprintln!("{strategy}: forker kept {} children in {want}", kids.len());
    }
}

#[test]
fn real_sigkill_mid_repair_then_resume_then_verify() {
    let Some(sb) = common::real_kernel("real_sigkill_mid_repair_then_resume_then_verify") else {
        return;
    };
    let where_before = build(&sb, 110);
    let state = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cgleak");
    let root = sb.path().to_str().unwrap();
    let st = state.path().to_str().unwrap();
    let mut child = Command::new(bin)
        .args(["--root", root, "repair", "--yes", "--state-dir", st])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the move into staging has begun (phase 1 of 5).
    let progress = wait_for_move_phase(state.path());
    std::thread::sleep(Duration::from_millis(5));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let p = std::fs::read_to_string(&progress).unwrap();
    assert!(
        !p.contains("complete"),
        "the repair finished before the kill; progress:\n{p}"
    );
    assert!(status.code().is_none(), "killed by a signal");
    let fs = KernelFs::open(sb.path()).unwrap();
    assert!(fs.exists("kubepods2"), "killed mid-move: staging exists");
    let out = Command::new(bin)
        .args(["--root", root, "resume", "--yes", "--state-dir", st])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin)
        .args(["--root", root, "verify", "--state-dir", st])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_in_place(&where_before);
}

#[test]
fn real_plan_and_diagnose_see_exactly_the_tree_and_change_nothing() {
    let Some(sb) =
        common::real_kernel("real_plan_and_diagnose_see_exactly_the_tree_and_change_nothing")
    else {
        return;
    };
    let pids = build(&sb, 110);
    let fs = KernelFs::open(sb.path()).unwrap();
    let snap = scan::scan(&fs, "kubepods").unwrap();
    let dirs: Vec<_> = walkdir::WalkDir::new(sb.path().join("kubepods"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_dir())
        .collect();
    assert_eq!(snap.cgroups.len(), dirs.len());
    assert_eq!(snap.task_count(), pids.len());
    let before = dump(sb.path());
    let bin = env!("CARGO_BIN_EXE_cgleak");
    let root = sb.path().to_str().unwrap();
    let out = Command::new(bin)
        .args(["--root", root, "plan", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cgroups = v["snapshot"]["cgroups"].as_array().unwrap();
    assert_eq!(cgroups.len(), dirs.len());
    let planned_pids: usize = cgroups
        .iter()
        .map(|c| c["tasks"].as_array().unwrap().len())
        .sum();
    assert_eq!(planned_pids, pids.len());
    let moves: usize = v["plan"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
        .filter(|s| s["op"] == "move_tasks")
        .map(|s| s["pids"].as_array().unwrap().len())
        .sum();
    assert_eq!(moves, 2 * pids.len(), "every task moved out and back");
    let out = Command::new(bin)
        .args(["--root", root, "diagnose", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["kubepods"]["cgroups"].as_u64(), Some(dirs.len() as u64));
    assert_eq!(d["kubepods"]["tasks"].as_u64(), Some(pids.len() as u64));
    assert_eq!(dump(sb.path()), before, "plan and diagnose changed nothing");
}

/// Every readable control file of the tree, for a byte-for-byte comparison.
fn dump(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
    {
        let name = e.file_name().to_string_lossy().to_string();
        // Counters that the kernel changes by itself are not state cgleak could change.
        let volatile = name.contains("usage")
            || name.contains("stat")
            || name.contains("failcnt")
            || name.contains("slabinfo")
            || name == "memory.pressure_level"
            || name == "memory.force_empty"
            || name == "cgroup.event_control";
        if e.file_type().is_file() && !volatile {
            if let Ok(b) = std::fs::read(e.path()) {
                m.insert(e.path().display().to_string(), b);
            }
        } else if e.file_type().is_dir() {
            m.insert(e.path().display().to_string(), vec![]);
        }
    }
    m
}

/// `--pace` pauses after each task move and each removal, on the real kernel (the emulated
/// node lets no time pass and pauses nowhere); `--pace 0` never pauses, but still yields.
#[test]
fn real_pace_pauses_after_moves_and_removals() {
    let bin = env!("CARGO_BIN_EXE_cgleak");
    for (pace, secs) in [("3ms", 0.003), ("0", 0.0)] {
        let Some(sb) = common::real_kernel("real_pace_pauses_after_moves_and_removals") else {
            return;
        };
        let root = sb.path().to_str().unwrap().to_string();
        let where_before = build(&sb, 6);
        let state = tempfile::tempdir().unwrap();
        let st = state.path().to_str().unwrap();
        // The plan counts the steps the repair pauses after (Step::paced).
        let out = Command::new(bin)
            .args(["--root", &root, "plan", "--format", "json"])
            .output()
            .unwrap();
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let planned = plan["plan"]["pauses"].as_u64().unwrap();
        let args = ["--root", &root, "repair", "--yes", "--format", "json"];
        let out = Command::new(bin)
            .args(args)
            .args(["--pace", pace, "--state-dir", st])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v["stats"];
        let (pauses, removed) = (
            s["pauses"].as_u64().unwrap(),
            s["cgroups_removed"].as_u64().unwrap(),
        );
        if secs > 0.0 {
            // One after every rmdir, and one after every move of a cgroup that had tasks.
            assert!(pauses > removed && removed > 0, "{s}");
            assert_eq!(pauses, planned, "{s}");
            assert!(
                s["pause_seconds"].as_f64().unwrap() >= pauses as f64 * secs,
                "{s}"
            );
        } else {
            assert_eq!(pauses, 0, "{s}");
            // Unpaced, the steps alone run for milliseconds: cgleak gives the core back
            // between them (host::share::SLICE), and says how often.
            assert!(s["yields"].as_u64().unwrap() > 0, "{s}");
        }
        assert_in_place(&where_before);
    }
}
