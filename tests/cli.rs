//! CLI tests: the command line, exit codes, and every refusal of repair (exit 2, a message that
//! names the cause, the tree unchanged), on emulated nodes.

use assert_cmd::Command;
use cgleak::demo::build_pods;
use cgleak::demo::fixture::FixtureSpec;
use cgleak::host::emulated::{EmulatedFs, KernelProfile};
use cgleak::host::Hierarchy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A small builder for cgleak invocations (after `just`'s Test builder).
struct Run {
    args: Vec<String>,
    stdin: Option<String>,
    env: Vec<(String, String)>,
}

/// The binary's test hook (an environment variable, in no help text): stop dead after N
/// changing system calls, as kill -9 would; the process exits 137.
const CRASH_AFTER: &str = "CGLEAK_TEST_CRASH_AFTER";

impl Run {
    fn new(args: &[&str]) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            env: Vec::new(),
        }
    }
    fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
    fn root(mut self, root: &Path) -> Run {
        self.args.insert(0, root.display().to_string());
        self.args.insert(0, "--root".into());
        self
    }
    /// Feed `text` on standard input (a pipe); without it stdin is closed.
    fn stdin(mut self, text: &str) -> Run {
        self.stdin = Some(text.to_string());
        self
    }
    fn go(self) -> (i32, String, String) {
        let mut cmd = Command::cargo_bin("cgleak").unwrap();
        cmd.args(&self.args).env("RUST_LOG", "warn").envs(self.env);
        if let Some(text) = self.stdin {
            cmd.write_stdin(text);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

struct Node {
    dir: tempfile::TempDir,
    emu: EmulatedFs,
}

impl Node {
    fn new(profile: KernelProfile, pods: usize) -> Node {
        let dir = cgleak::host::emulated::tempdir().unwrap();
        let emu = EmulatedFs::create(&dir.path().join("node"), profile).unwrap();
        build_pods(
            &emu,
            &FixtureSpec::new("kubepods", pods),
            profile == KernelProfile::V3_10,
        )
        .unwrap();
        Node { dir, emu }
    }
    fn root(&self) -> PathBuf {
        self.emu.root().to_path_buf()
    }
    fn state(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }
    /// Every file of the emulated node, for a byte-for-byte comparison.
    fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        walkdir::WalkDir::new(self.dir.path().join("node"))
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| {
                (
                    e.path().display().to_string(),
                    if e.file_type().is_file() {
                        std::fs::read(e.path()).unwrap()
                    } else {
                        vec![]
                    },
                )
            })
            .collect()
    }
    fn repair(&self, extra: &[&str]) -> (i32, String, String) {
        self.repair_run(extra).go()
    }
    fn repair_run(&self, extra: &[&str]) -> Run {
        let ids = self.emu.ids_used().to_string();
        let st = self.state();
        let mut args = vec!["repair", "--state-dir", &st, "--ids-used", &ids];
        args.extend_from_slice(extra);
        Run::new(&args).root(&self.root())
    }
    /// `repair --yes` stopped dead (the test hook) after `n` changing system calls.
    fn repair_killed_after(&self, n: u64) {
        let (code, out, err) = self
            .repair_run(&["--yes"])
            .env(CRASH_AFTER, &n.to_string())
            .go();
        assert_eq!(code, 137, "{out}{err}");
    }
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = Run::new(&["--help"]).go();
    assert_eq!(code, 0);
    for c in [
        "diagnose", "plan", "snapshot", "repair", "resume", "rollback", "verify", "reclaim",
        "demo", "emulate",
    ] {
        assert!(out.contains(c), "{c} missing from --help:\n{out}");
    }
}

#[test]
fn version_names_the_commit() {
    let (code, out, _) = Run::new(&["--version"]).go();
    assert_eq!(code, 0);
    assert!(out.starts_with("cgleak 0."), "{out}");
    assert!(out.contains('('), "{out}");
}

#[test]
fn bad_roots_exit_2_naming_the_path() {
    for (root, what) in [
        ("/nonexistent", "does not exist"),
        ("/tmp", "not on a cgroup filesystem"),
    ] {
        for cmd in ["plan", "diagnose", "snapshot"] {
            let (code, _, err) = Run::new(&[cmd, "--root", root]).go();
            assert_eq!(code, 2, "{cmd} --root {root}: {err}");
            assert!(err.contains(root) && err.contains(what), "{cmd}: {err}");
        }
    }
}

#[test]
fn global_options_before_or_after_the_command() {
    let n = Node::new(KernelProfile::V6_1, 3);
    let r = n.root();
    let a = Run::new(&[
        "--root",
        r.to_str().unwrap(),
        "--kubepods",
        "kubepods",
        "snapshot",
    ])
    .go();
    let b = Run::new(&[
        "snapshot",
        "--kubepods",
        "kubepods",
        "--root",
        r.to_str().unwrap(),
    ])
    .go();
    assert_eq!(a.0, 0, "{}", a.2);
    let (va, vb): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&a.1).unwrap(),
        serde_json::from_str(&b.1).unwrap(),
    );
    assert_eq!(va["cgroups"], vb["cgroups"]);
}

#[test]
fn snapshot_json_has_the_documented_fields() {
    let n = Node::new(KernelProfile::V3_10, 4);
    let out = n.dir.path().join("snap.json");
    let (code, _, err) = Run::new(&["snapshot", "-o", out.to_str().unwrap()])
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for k in [
        "format",
        "taken_at",
        "root",
        "kubepods",
        "kernel_release",
        "layout",
        "root_settings",
        "cgroups",
    ] {
        assert!(v.get(k).is_some(), "{k}");
    }
    let c = &v["cgroups"][0];
    for k in [
        "path",
        "kind",
        "settings",
        "tasks",
        "kmem_limit_in_bytes",
        "kmem_active",
        "usage_in_bytes",
    ] {
        assert!(c.get(k).is_some(), "{k}");
    }
    for k in [
        "limit_in_bytes",
        "memsw_limit_in_bytes",
        "soft_limit_in_bytes",
        "swappiness",
        "oom_kill_disable",
        "use_hierarchy",
        "move_charge_at_immigrate",
    ] {
        assert!(c["settings"].get(k).is_some(), "{k}");
    }
    assert_eq!(v["layout"], "mixed");
    assert_eq!(c["kind"], "pods_root");
    assert_eq!(c["kmem_active"], true);
}

#[test]
fn plan_text_and_json_and_blockers() {
    let n = Node::new(KernelProfile::V6_1, 5);
    let (code, out, err) = Run::new(&["plan"]).root(&n.root()).go();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Phase 1/5 create-staging")
            && out.contains("mkdir kubepods2")
            && out.contains("Memcg ids"),
        "{out}"
    );
    n.emu.mkdir("kubepods2").unwrap();
    let (code, out, _) = Run::new(&["plan"]).root(&n.root()).go();
    assert_eq!(code, 2);
    assert!(
        out.contains("cannot run") && out.contains("kubepods2 already exists"),
        "{out}"
    );
}

#[test]
fn repair_round_trip_through_the_cli_then_verify() {
    let n = Node::new(KernelProfile::V3_10, 6);
    let (code, out, err) = n.repair(&["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verify: OK") && out.contains("start kubelet"),
        "{out}"
    );
    let st = n.state();
    let (code, out, _) = Run::new(&["verify", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = Run::new(&["verify", "--state-dir", &st, "--format", "json"])
        .root(&n.root())
        .go();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["kmem_checked"], true);
}

/// The outcome says when each phase ran (CLOCK_MONOTONIC, to line up with the kernel log and
/// outside measurements) and which task move was slowest, in text and JSON.
#[test]
fn repair_outcome_has_phase_clock_and_slowest_move() {
    let n = Node::new(KernelProfile::V6_1, 4);
    let before = cgleak::repair::execute::monotonic_now();
    let (code, out, err) = n.repair(&["--yes", "--format", "json"]);
    let after = cgleak::repair::execute::monotonic_now();
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let phases = v["stats"]["phase_clock"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let timed: Vec<&str> = v["stats"]["phase_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(names, timed, "one clock entry per phase, in order");
    let mut last = before;
    for p in phases {
        let (start, end) = (p["start"].as_f64().unwrap(), p["end"].as_f64().unwrap());
        assert!(last <= start && start <= end && end <= after, "{p}");
        last = end;
    }
    let m = &v["stats"]["longest_move"];
    assert!(m["seconds"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["to"].as_str().unwrap().starts_with("kubepods"), "{m}");
    assert!(m["pid"].as_u64().unwrap() > 0, "{m}");
    // The emulated node lets no time pass: the default pace pauses nowhere there.
    assert_eq!(v["stats"]["pauses"], 0, "{}", v["stats"]);
    let n = Node::new(KernelProfile::V6_1, 4);
    let (code, out, err) = n.repair(&["--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("slowest task move"), "{out}");
}

#[test]
fn verify_lists_every_difference() {
    let n = Node::new(KernelProfile::V6_1, 3);
    let snap = n.dir.path().join("s.json");
    Run::new(&["snapshot", "-o", snap.to_str().unwrap()])
        .root(&n.root())
        .go();
    n.emu
        .write("kubepods/burstable", "memory.limit_in_bytes", "1048576")
        .unwrap();
    n.emu.mkdir("kubepods2").unwrap();
    let (code, out, _) = Run::new(&["verify", "--snapshot", snap.to_str().unwrap()])
        .root(&n.root())
        .go();
    assert_eq!(code, 1);
    assert!(
        out.contains("kubepods/burstable: memory.limit_in_bytes is 1048576"),
        "{out}"
    );
    assert!(
        out.contains("staging cgroup kubepods2 still exists"),
        "{out}"
    );
}

#[test]
fn crash_then_resume_and_rollback_through_the_cli() {
    let n = Node::new(KernelProfile::V3_10, 5);
    let before = cgleak::scan::scan(&n.emu, "kubepods").unwrap();
    n.repair_killed_after(150);
    let st = n.state();
    let (code, out, err) = Run::new(&["rollback", "--yes", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("back as it was"), "{out}");
    let after = cgleak::scan::scan(&n.emu, "kubepods").unwrap();
    assert_eq!(
        before
            .cgroups
            .iter()
            .map(|c| (&c.path, &c.tasks))
            .collect::<Vec<_>>(),
        after
            .cgroups
            .iter()
            .map(|c| (&c.path, &c.tasks))
            .collect::<Vec<_>>()
    );
    // A new repair, interrupted, then resumed.
    n.repair_killed_after(90);
    let (code, out, err) = Run::new(&["resume", "--yes", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = Run::new(&["resume", "--yes", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(
        code, 0,
        "resume of a finished repair has nothing to do: {err}"
    );
}

/// Assert a refusal: exit 2, the cause named, nothing changed.
fn refused(n: &Node, extra: &[&str], cause: &str) {
    let before = n.dump();
    let (code, out, err) = n.repair(extra);
    assert_eq!(code, 2, "expected a refusal for {cause:?}: {out}{err}");
    assert!(
        err.contains(cause),
        "message does not name {cause:?}:\n{err}"
    );
    assert_eq!(n.dump(), before, "refusal {cause:?} changed the tree");
}

#[test]
fn refusal_without_terminal_and_without_yes() {
    let n = Node::new(KernelProfile::V6_1, 2);
    refused(&n, &[], "no terminal to ask on");
}

#[test]
fn refusal_pods_cgroup_missing() {
    let n = Node::new(KernelProfile::V6_1, 2);
    refused(
        &n,
        &["--yes", "--kubepods", "nosuchpods"],
        "nosuchpods not found",
    );
}

#[test]
fn refusal_systemd_layout() {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("node"), KernelProfile::V6_1).unwrap();
    emu.mkdir("kubepods.slice").unwrap();
    emu.mkdir("kubepods.slice/kubepods-burstable.slice")
        .unwrap();
    let n = Node { dir, emu };
    refused(&n, &["--yes"], "systemd");
}

#[test]
fn refusal_staging_exists() {
    let n = Node::new(KernelProfile::V6_1, 2);
    n.emu.mkdir("kubepods2").unwrap();
    refused(&n, &["--yes"], "kubepods2 already exists");
}

#[test]
fn refusal_unfinished_journal() {
    let n = Node::new(KernelProfile::V6_1, 2);
    n.repair_killed_after(10);
    refused(&n, &["--yes"], "cgleak resume");
}

#[test]
fn refusal_lock_held() {
    let n = Node::new(KernelProfile::V6_1, 2);
    let st = n.state();
    let _held = cgleak::repair::journal::lock(Path::new(&st)).unwrap();
    refused(&n, &["--yes"], "another cgleak holds the lock");
}

#[test]
fn refusal_kubelet_running() {
    let n = Node::new(KernelProfile::V6_1, 2);
    n.emu.mkdir("system.slice").unwrap();
    n.emu.spawn("system.slice", "kubelet").unwrap();
    refused(&n, &["--yes"], "kubelet");
    let (code, out, err) = n.repair(&["--yes", "--allow-kubelet-running"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn refusal_ids_short() {
    let n = Node::new(KernelProfile::V6_1, 4);
    let free = 65535 - n.emu.ids_used();
    n.emu.add_dying(free - 20).unwrap();
    refused(&n, &["--yes"], "free but the repair creates");
}

#[test]
fn refusal_ids_unknown_on_310() {
    let n = Node::new(KernelProfile::V3_10, 2);
    let before = n.dump();
    let st = n.state();
    let (code, _, err) = Run::new(&["repair", "--yes", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(code, 2);
    assert!(
        err.contains("memcg-ids.stp") && err.contains("--ids-used"),
        "{err}"
    );
    assert_eq!(n.dump(), before);
}

#[test]
fn refusal_root_not_memory_cgroup() {
    let d = tempfile::tempdir().unwrap();
    let (code, _, err) = Run::new(&["repair", "--yes", "--root", d.path().to_str().unwrap()]).go();
    assert_eq!(code, 2);
    assert!(err.contains(d.path().to_str().unwrap()), "{err}");
}

#[test]
fn refusal_resume_without_journal() {
    let n = Node::new(KernelProfile::V6_1, 2);
    let st = n.state();
    let (code, _, err) = Run::new(&["resume", "--yes", "--state-dir", &st])
        .root(&n.root())
        .go();
    assert_eq!(code, 2);
    assert!(err.contains("no repair journal"), "{err}");
}

#[test]
fn refusal_not_root_on_the_kernel() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP refusal_not_root_on_the_kernel: needs root to drop to nobody");
        return;
    }
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        eprintln!("SKIP refusal_not_root_on_the_kernel: no memory v1 hierarchy");
        return;
    }
    let st = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("cgleak"))
        .args([
            "repair",
            "--yes",
            "--root",
            "/sys/fs/cgroup/memory",
            "--kubepods",
            "cgleak-test-no-such-pods",
            "--state-dir",
            st.path().to_str().unwrap(),
        ])
        .uid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not root"), "{err}");
}

#[test]
fn demo_runs_and_shows_the_whole_story() {
    let (code, out, err) = Run::new(&["demo", "--pods", "12"]).go();
    assert_eq!(code, 0, "{out}{err}");
    for s in [
        "diagnose",
        "LEAKING",
        "plan",
        "repair",
        "verify: OK",
        "kmem accounting active in",
    ] {
        assert!(
            out.to_lowercase().contains(&s.to_lowercase()),
            "{s} missing:\n{out}"
        );
    }
}

#[test]
fn emulate_then_rehearse_from_a_snapshot() {
    let n = Node::new(KernelProfile::V3_10, 4);
    let snap = n.dir.path().join("s.json");
    Run::new(&["snapshot", "-o", snap.to_str().unwrap()])
        .root(&n.root())
        .go();
    let copy = n.dir.path().join("rehearsal");
    let (code, out, err) = Run::new(&[
        "emulate",
        copy.to_str().unwrap(),
        "--profile",
        "3.10",
        "--from-snapshot",
        snap.to_str().unwrap(),
    ])
    .go();
    assert_eq!(code, 0, "{out}{err}");
    let emu = EmulatedFs::open(&copy).unwrap();
    let a = cgleak::scan::scan(&n.emu, "kubepods").unwrap();
    let b = cgleak::scan::scan(&emu, "kubepods").unwrap();
    assert_eq!(a.cgroups.len(), b.cgroups.len());
    assert_eq!(a.task_count(), b.task_count());
    for (x, y) in a.cgroups.iter().zip(&b.cgroups) {
        assert_eq!(
            (&x.path, &x.settings, x.kmem_active),
            (&y.path, &y.settings, y.kmem_active)
        );
    }
}

#[test]
fn diagnose_reports_a_systemd_driver_node() {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("node"), KernelProfile::V6_1).unwrap();
    emu.mkdir("kubepods.slice").unwrap();
    emu.mkdir("kubepods.slice/kubepods-burstable.slice")
        .unwrap();
    let (_, out, err) = Run::new(&["diagnose", "--format", "json"])
        .root(emu.root())
        .go();
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(v["kubepods"]["layout"], "systemd");
    assert_eq!(v["kubepods"]["name"], "kubepods.slice");
    assert_eq!(v["kubepods"]["cgroups"], 2);
    let reasons = v["verdict"]["reasons"].to_string();
    assert!(reasons.contains("systemd cgroup driver"), "{reasons}");
}

#[test]
fn diagnose_on_the_emulated_leaking_node_exits_1() {
    let n = Node::new(KernelProfile::V6_1, 3);
    let free = 65535 - n.emu.ids_used();
    n.emu.add_dying(free - 200).unwrap();
    let (code, out, _) = Run::new(&["diagnose", "--format", "json"])
        .root(&n.root())
        .go();
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"]["status"], "leaking");
    assert_eq!(v["hierarchy"]["ids_free"], 200);
    assert_eq!(v["hierarchy"]["dying"].as_u64(), Some(free - 200));
}

/// A 3.10 node leaking ids (kmem active, many dying memcgs): only a systemtap count tells.
fn leaking_310_node() -> Node {
    let n = Node::new(KernelProfile::V3_10, 3);
    n.emu.add_dying(60_000).unwrap();
    n
}

#[test]
fn ids_used_from_stdin_equals_the_number_given() {
    let n = leaking_310_node();
    let ids = n.emu.ids_used().to_string();
    let diag = |run: Run| {
        let (code, out, err) = run.root(&n.root()).go();
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, v["hierarchy"].clone())
    };
    let (code_arg, arg) = diag(Run::new(&[
        "diagnose",
        "--format",
        "json",
        "--ids-used",
        &ids,
    ]));
    // What `stap -g scripts/memcg-ids.stp` prints: the number and a newline.
    let (code_pipe, pipe) = diag(
        Run::new(&["diagnose", "--format", "json", "--ids-used", "-"]).stdin(&format!("{ids}\n")),
    );
    assert_eq!((code_arg, code_pipe), (1, 1));
    assert_eq!(arg, pipe);
    assert_eq!(pipe["ids_source"], "systemtap");
    assert_eq!(pipe["ids_used"].to_string(), ids);
    let (code, out, err) = Run::new(&["plan", "--summary", "--ids-used", "-"])
        .stdin(&format!("  {ids}  \n"))
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{out}{err}");
    // The piped count is used: the free ids are known (unknown would say "unknown free").
    let free = 65535 - n.emu.ids_used();
    assert!(out.contains(&format!("Memcg ids: {free} free")), "{out}");
    assert!(!out.contains("UNKNOWN"), "{out}");
}

#[test]
fn repair_takes_ids_used_from_stdin() {
    let n = Node::new(KernelProfile::V3_10, 3);
    let st = n.state();
    let (code, out, err) = Run::new(&["repair", "--yes", "--state-dir", &st, "--ids-used", "-"])
        .stdin(&format!("{}\n", n.emu.ids_used()))
        .root(&n.root())
        .go();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verify: OK"), "{out}");
}

#[test]
fn ids_used_bad_stdin_exits_2_naming_stdin_and_stap() {
    let n = leaking_310_node();
    let before = n.dump();
    let st = n.state();
    for (input, what) in [
        ("", "standard input is empty"),
        ("\n \n", "standard input is empty"),
        (
            "semantic error: unresolved function css_lookup\n",
            "is not a number",
        ),
        ("1200 1300\n", "is not a number"),
        ("-5\n", "is not a number"),
        ("70000\n", "more than the 65535"),
        ("0\n", "root memcg"),
    ] {
        for cmd in [
            vec!["diagnose", "--ids-used", "-"],
            vec!["plan", "--ids-used", "-"],
            vec!["repair", "--yes", "--state-dir", &st, "--ids-used", "-"],
        ] {
            let (code, out, err) = Run::new(&cmd).stdin(input).root(&n.root()).go();
            assert_eq!(code, 2, "{cmd:?} with stdin {input:?}: {out}{err}");
            assert!(
                err.contains("--ids-used -: standard input")
                    && err.contains(what)
                    && err.contains(&format!(
                        "stap -g scripts/memcg-ids.stp | cgleak {}",
                        cmd[0]
                    )),
                "{cmd:?} with stdin {input:?}:\n{err}"
            );
            assert!(out.is_empty(), "{cmd:?} printed a report: {out}");
        }
    }
    assert_eq!(n.dump(), before, "a bad --ids-used - changed the node");
}

#[test]
fn ids_used_argument_is_checked_too() {
    let n = leaking_310_node();
    for (arg, what) in [
        ("70000", "more than the 65535"),
        ("many", "is not a number"),
    ] {
        let (code, _, err) = Run::new(&["diagnose", "--ids-used", arg])
            .root(&n.root())
            .go();
        assert_eq!(code, 2, "{arg}: {err}");
        assert!(
            err.contains("--ids-used") && err.contains(what),
            "{arg}: {err}"
        );
    }
}
