//! The container runtimes through a repair, on emulated nodes (no QEMU): the preflight line
//! names the runtime and the count of affected containers, a node without a runtime gets
//! nothing extra, the next steps and the record of affected containers, `cgleak watchers`
//! before and after a container restart, and the spurious-TaskOOM race the executor avoids.
//! Also the real /proc of this host, which runs no container runtime.

#[path = "support/emulated_node.rs"]
mod support;

use cgleak::cli::EmulatedRuntime;
use cgleak::demo::fixture::FixtureSpec;
use cgleak::demo::runtimes::add_runtime;
use cgleak::host::emulated::{EmulatedFs, KernelProfile, ShimReaction};
use cgleak::host::{Hierarchy, Host};
use cgleak::repair::plan::Strategy;
use cgleak::repair::{self, RepairOptions};
use cgleak::runtime::cost::Remedy;
use support::cgleak;

/// A 6.1 node with `pods` pods and `rt` on it, in a temp dir removed on drop.
fn node(pods: usize, rt: EmulatedRuntime) -> (tempfile::TempDir, EmulatedFs) {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("node"), KernelProfile::V6_1).unwrap();
    emu.mkdir("system.slice").unwrap();
    cgleak::demo::build_pods(&emu, &FixtureSpec::new("kubepods", pods), false).unwrap();
    add_runtime(&emu, rt, "kubepods").unwrap();
    (dir, emu)
}

/// Container cgroups with processes (what a shim serves).
fn containers(emu: &EmulatedFs) -> usize {
    let snap = cgleak::scan::scan(emu, "kubepods").unwrap();
    snap.cgroups
        .iter()
        .filter(|c| c.kind == cgleak::model::Kind::Container && !c.tasks.is_empty())
        .count()
}

fn opts(dir: &std::path::Path, strategy: Strategy) -> RepairOptions {
    RepairOptions::new("kubepods", "kubepods2", strategy, &dir.join("state"))
}

#[test]
fn preflight_names_the_runtime_and_the_count() {
    let (dir, emu) = node(6, EmulatedRuntime::ContainerdV2);
    let n = containers(&emu);
    assert!(n >= 6);
    let p = repair::prepare(&emu, &opts(dir.path(), Strategy::MigrateBack)).unwrap();
    let line = p
        .checks
        .iter()
        .find(|c| c.name == "runtimes")
        .expect("a runtimes line");
    assert_eq!(
        line.detail,
        format!("containerd 1.6, shim v2: {n} running containers will report a later OOM kill as Error, not OOMKilled, and have no runtime stats, until each restarts")
    );
    assert_eq!(p.runtime_cost().as_deref(), Some(line.detail.as_str()));
    assert!(p.refusals.is_empty(), "information, not a refusal");
}

#[test]
fn runtime_v1_and_docker_lines() {
    let (dir, emu) = node(3, EmulatedRuntime::ContainerdV1);
    let p = repair::prepare(&emu, &opts(dir.path(), Strategy::MigrateBack)).unwrap();
    let cost = p.runtime_cost().unwrap();
    assert!(cost.starts_with("containerd 1.6, runtime v1: "), "{cost}");
    assert!(cost.ends_with("until containerd restarts"), "{cost}");
    let (dir, emu) = node(3, EmulatedRuntime::Docker);
    let p = repair::prepare(&emu, &opts(dir.path(), Strategy::MigrateBack)).unwrap();
    let cost = p.runtime_cost().unwrap();
    assert!(
        cost.starts_with(&format!(
            "docker 20.10, shim v2: {} running",
            containers(&emu)
        )),
        "{cost}"
    );
}

#[test]
fn no_runtime_nothing_extra() {
    let (dir, emu) = node(4, EmulatedRuntime::None);
    let o = opts(dir.path(), Strategy::MigrateBack);
    let p = repair::prepare(&emu, &o).unwrap();
    assert!(p.checks.iter().all(|c| c.name != "runtimes"));
    assert_eq!(p.runtime_cost(), None);
    let out = repair::execute(&emu, &o, p, None).unwrap();
    assert!(out.verify.ok);
    assert_eq!(out.runtime.affected, 0);
    assert_eq!(out.runtime.remedy, Remedy::None);
    assert_eq!(out.runtime.affected_file, None);
    assert!(!dir.path().join("state/runtime-affected.json").exists());
    let text = cgleak::repair::report::render_outcome(&out);
    assert!(!text.contains("watchers"), "{text}");
    assert_eq!(out.stats.runtime_settle, None);
}

/// `cgleak --root R watchers --state-dir S [--format json]`.
fn watchers_args(emu: &EmulatedFs, state: &std::path::Path, json: bool) -> Vec<String> {
    let mut a: Vec<String> = ["--root", &emu.root().display().to_string(), "watchers"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--state-dir".into(), state.display().to_string()]);
    if json {
        a.extend(["--format".into(), "json".into()]);
    }
    a
}

#[test]
fn next_steps_record_and_watchers_before_and_after_a_restart() {
    let (dir, emu) = node(4, EmulatedRuntime::ContainerdV2);
    let n = containers(&emu);
    let o = opts(dir.path(), Strategy::MigrateBack);
    let out = repair::execute(&emu, &o, repair::prepare(&emu, &o).unwrap(), None).unwrap();
    assert!(out.verify.ok);
    assert_eq!(out.runtime.affected, n);
    assert_eq!(out.runtime.remedy, Remedy::RollingRestart);
    let file = out.runtime.affected_file.clone().unwrap();
    assert_eq!(file, dir.path().join("state/runtime-affected.json"));
    let cmd = out.runtime.check_command.clone().unwrap();
    assert!(
        cmd.ends_with(&format!(
            "watchers --state-dir {}",
            dir.path().join("state").display()
        )),
        "{cmd}"
    );
    let text = cgleak::repair::report::render_outcome(&out);
    assert!(
        text.contains(&format!("  4. {n} running containers have no OOM watcher")),
        "{text}"
    );
    assert!(text.contains(&cmd));
    // Every old watcher: signalled at rmdir, path missing when the shim looked: "deleted".
    let ev = emu.shim_events();
    assert_eq!(ev.len(), n);
    assert!(
        ev.iter().all(|e| e.reaction == ShimReaction::Deleted),
        "{ev:?}"
    );
    assert!(emu.watchers().is_empty());

    let state = dir.path().join("state");
    let args = watchers_args(&emu, &state, true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, js, err) = cgleak(&args);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["recorded"], n);
    assert_eq!(v["lacking"], n);
    // Corroboration: every shim serves its containers and watches none, as judged.
    assert_eq!(v["disagreements"], 0, "{js}");
    let shims = v["shims"].as_array().unwrap();
    assert!(!shims.is_empty());
    assert!(shims
        .iter()
        .all(|f| f["eventfds"] == 0 && f["expected"] == 0 && f["owner"] == "shim"));

    // Restart every container (a rolling restart): each gets a new process and watcher.
    let rec = cgleak::runtime::record::load(&state).unwrap();
    let first = &rec.containers[0].served;
    emu.restart_container(&first.cgroup, first.shim_pid, "app")
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&cgleak(&args).1).unwrap();
    assert_eq!(v["lacking"], n - 1);
    assert_eq!(v["watched"], 1);
    for a in &rec.containers[1..] {
        emu.restart_container(&a.served.cgroup, a.served.shim_pid, "app")
            .unwrap();
    }
    let (code, js, _) = cgleak(&args);
    assert_eq!(code, 0, "{js}");
    assert_eq!(emu.watchers().len(), n);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["disagreements"], 0, "{js}");
    assert!(v["shims"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["eventfds"] == f["expected"]));
    let (code, text, _) = cgleak(&args[..5]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Every recorded container that still runs has its watcher again"),
        "{text}"
    );
}

/// An eventfd the judgement does not expect (another agent's, or a watch cgleak missed) is
/// reported with its owner, not hidden; the exit code stays the judgement's.
#[test]
fn watchers_reports_an_eventfd_count_that_disagrees() {
    let (dir, emu) = node(2, EmulatedRuntime::ContainerdV2);
    let o = opts(dir.path(), Strategy::MigrateBack);
    repair::execute(&emu, &o, repair::prepare(&emu, &o).unwrap(), None).unwrap();
    let state = dir.path().join("state");
    let rec = cgleak::runtime::record::load(&state).unwrap();
    let first = &rec.containers[0].served;
    emu.register_watcher(first.shim_pid, &first.cgroup).unwrap();
    let text_args = watchers_args(&emu, &state, false);
    let args: Vec<&str> = text_args.iter().map(String::as_str).collect();
    let (code, text, err) = cgleak(&args);
    assert_eq!(code, 1, "{err}");
    assert!(
        text.contains(&format!(
            "warning: shim pid {} holds 1 eventfds where 0 are expected",
            first.shim_pid
        )),
        "{text}"
    );
    let json = watchers_args(&emu, &state, true);
    let json: Vec<&str> = json.iter().map(String::as_str).collect();
    let v: serde_json::Value = serde_json::from_str(&cgleak(&json).1).unwrap();
    assert_eq!(v["disagreements"], 1);
}

#[test]
fn watchers_without_a_record_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = cgleak(&["watchers", "--state-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("runtime-affected.json"), "{err}");
}

#[test]
fn the_emulated_shim_reports_a_spurious_oom_when_the_path_is_back_in_time() {
    // The race itself: the memcg removed, the path made again before the shim looked.
    let (_d, emu) = node(1, EmulatedRuntime::ContainerdV2);
    emu.mkdir("kubepods/x").unwrap();
    let shim = emu.watchers()[0].pid;
    emu.register_watcher(shim, "kubepods/x").unwrap();
    emu.rmdir("kubepods/x").unwrap();
    emu.mkdir("kubepods/x").unwrap();
    emu.pass_time(std::time::Duration::from_millis(20));
    let ev = emu.shim_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].reaction, ev[0].path.as_str()),
        (ShimReaction::TaskOom, "kubepods/x")
    );
    // Path missing when it looks: deleted, fd closed.
    emu.register_watcher(shim, "kubepods/x").unwrap();
    let before = emu.fd_targets(shim).unwrap().len();
    emu.rmdir("kubepods/x").unwrap();
    emu.pass_time(std::time::Duration::from_millis(20));
    assert_eq!(emu.shim_events()[1].reaction, ShimReaction::Deleted);
    assert_eq!(emu.fd_targets(shim).unwrap().len(), before - 1);
}

#[test]
fn the_rename_strategy_waits_so_no_shim_sees_its_path_again() {
    for strategy in [Strategy::Rename, Strategy::MigrateBack] {
        let (dir, emu) = node(5, EmulatedRuntime::ContainerdV2);
        // Slow shims: without the wait, the last containers removed would find their paths
        // back after the rename and publish TaskOOMs.
        emu.set_react_after(10_000).unwrap();
        let o = opts(dir.path(), strategy);
        let out = repair::execute(&emu, &o, repair::prepare(&emu, &o).unwrap(), None).unwrap();
        assert!(out.verify.ok);
        let ev = emu.shim_events();
        assert_eq!(ev.len(), containers(&emu), "{strategy:?}");
        assert!(
            ev.iter().all(|e| e.reaction == ShimReaction::Deleted),
            "{strategy:?}: {ev:?}"
        );
        let s = out.stats.runtime_settle.clone().expect("waited");
        assert!(s.settled);
        assert_eq!((s.eventfds_before, s.eventfds_after), (containers(&emu), 0));
    }
}

#[test]
fn diagnose_says_none_found_on_an_emulated_node_without_runtime() {
    let n = support::Node::new("6.1", 3, 0, false);
    let (_, v) = n.json(&["diagnose", "--format", "json"]);
    assert_eq!(v["runtimes"]["none_found"], true);
    assert_eq!(v["runtimes"]["containers_served"], 0);
    let (_, text, _) = n.diagnose(&[]);
    assert!(text.contains("no container runtime found"), "{text}");
}

#[test]
fn real_proc_of_this_host() {
    // This machine runs no container runtime: "none found", unless a fake shim of ours runs.
    let host = cgleak::host::kernel::KernelHost;
    let r = cgleak::runtime::detect(&host, &[]).unwrap();
    let others = r.daemons.len() + r.shims.len();
    // A process of our own whose executable is named like a shim v2: a copy of `sleep`.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("containerd-shim-runc-v2");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut child = std::process::Command::new(&fake).arg("30").spawn().unwrap();
    let pid = child.id();
    let mut found = None;
    for _ in 0..50 {
        let r = cgleak::runtime::detect(&host, &[]).unwrap();
        found = r.shims.iter().find(|s| s.pid == pid).cloned();
        if found.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let s = found.expect("the fake shim is found by its executable");
    assert_eq!(s.kind, cgleak::runtime::classify::ShimKind::V2);
    assert_eq!((s.namespace, s.containers), (None, 0));
    if others == 0 {
        assert!(r.none_found);
        assert_eq!(
            cgleak::runtime::render_line(&r),
            "no container runtime found (no containerd, dockerd or containerd-shim process)"
        );
    }
}

#[test]
fn a_repair_killed_and_resumed_reports_the_runtime_and_still_waits() {
    let (dir, emu) = node(4, EmulatedRuntime::ContainerdV2);
    let n = containers(&emu);
    emu.set_react_after(10_000).unwrap();
    let mut o = opts(dir.path(), Strategy::Rename);
    // Killed in move-to-staging: the record was written before the first change.
    o.knobs.crash_after = Some(40);
    let r = repair::execute(&emu, &o, repair::prepare(&emu, &o).unwrap(), None);
    assert!(r.is_err());
    assert!(dir.path().join("state/runtime-affected.json").exists());
    let out = repair::resume(
        &emu,
        &dir.path().join("state"),
        repair::Knobs::default(),
        None,
    )
    .unwrap();
    assert!(out.verify.ok);
    assert_eq!(out.runtime.affected, n);
    assert_eq!(out.runtime.remedy, Remedy::RollingRestart);
    assert!(out.stats.runtime_settle.as_ref().is_some_and(|s| s.settled));
    let ev = emu.shim_events();
    assert_eq!(ev.len(), n);
    assert!(
        ev.iter().all(|e| e.reaction == ShimReaction::Deleted),
        "{ev:?}"
    );
}
