//! The command line's loose ends: output into a closed pipe, output paths that cannot take a
//! file, `emulate` failing part-way, `verify --snapshot` of a rehearsal; and the rule that
//! decides whether a real-kernel test may skip (tests/common/skip.rs).

#[path = "common/skip.rs"]
#[allow(dead_code)]
mod skip;

use cgleak::demo::build_pods;
use cgleak::demo::fixture::FixtureSpec;
use cgleak::host::emulated::{EmulatedFs, KernelProfile};
use cgleak::host::Hierarchy;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

fn cgleak() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cgleak"))
}

/// Run cgleak with `args`; (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = cgleak().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Files in `dir` (names), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A small emulated node made by `cgleak emulate`; returns its --root.
fn emulated_node(dir: &Path) -> String {
    let (code, out, err) = run(&["emulate", s(dir), "--pods", "3", "--profile", "6.1"]);
    assert_eq!(code, 0, "{out}{err}");
    s(&dir.join("memory")).to_string()
}

/// Fails on the old code: `println!` panicked on EPIPE ("failed printing to stdout").
#[test]
fn demo_into_a_closed_pipe_ends_quietly_and_removes_its_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = cgleak()
        .arg("demo")
        .env("CGLEAK_EMUL_TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader goes away after one line, as `| head -1` does.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.contains("emulated"), "{first}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// A read-only command ends quietly too (the default SIGPIPE action, no message).
#[test]
fn help_into_a_closed_pipe_says_nothing() {
    let mut child = cgleak()
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Fails on the old code: exit 1 and tempfile's raw "No such file or directory (os error 2)".
#[test]
fn snapshot_into_a_missing_directory_is_exit_2_with_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let root = emulated_node(&tmp.path().join("node"));
    let target = tmp.path().join("no-such-dir").join("node.json");
    let (code, _, err) = run(&["--root", &root, "snapshot", "-o", s(&target)]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(s(&target)) && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert!(!tmp.path().join("no-such-dir").exists());
}

/// A directory as the output, or a file as its directory: exit 2, no temp file left.
#[test]
fn snapshot_into_unusable_paths_is_exit_2_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = emulated_node(&tmp.path().join("node"));
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let (code, _, err) = run(&["--root", &root, "snapshot", "-o", s(&out_dir)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert!(entries(&out_dir).is_empty(), "{:?}", entries(&out_dir));
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = run(&["--root", &root, "snapshot", "-o", s(&file.join("x.json"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a directory"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

/// `cgleak emulate DIR` whose ids run out after the tree is built (a failure half-way): it
/// must exit 2; returns its stderr.
fn emulate_out_of_ids(dir: &Path) -> String {
    let (code, _, err) = run(&["emulate", s(dir), "--dying", "70000"]);
    assert_eq!(code, 2, "{err}");
    err
}

/// Fails on the old code: exit 1 and DIR left half-built (ids ran out after the tree).
#[test]
fn emulate_failing_half_way_removes_the_dir_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let err = emulate_out_of_ids(&dir);
    assert!(err.contains(s(&dir)) && err.contains("removed"), "{err}");
    assert!(!dir.exists());
}

/// Parents that emulate had to make go too.
#[test]
fn emulate_failing_removes_the_parents_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    emulate_out_of_ids(&tmp.path().join("a/b/node"));
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// An empty directory given to emulate is empty again after a failure, not removed.
#[test]
fn emulate_failing_in_an_empty_dir_empties_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let err = emulate_out_of_ids(tmp.path());
    assert!(err.contains("emptied"), "{err}");
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// Bad inputs are refused before DIR is made. A snapshot whose cgroup comes before its parent
/// fails on the old code: a panic (exit 101) with DIR half-built.
#[test]
fn emulate_bad_inputs_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let root = emulated_node(&tmp.path().join("src"));
    let snap_file = tmp.path().join("snap.json");
    let (code, _, err) = run(&["--root", &root, "snapshot", "-o", s(&snap_file)]);
    assert_eq!(code, 0, "{err}");
    let mut snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snap_file).unwrap()).unwrap();
    let cgroups = snap["cgroups"].as_array_mut().unwrap();
    let last = cgroups.pop().unwrap();
    cgroups.insert(1, last);
    let disordered = tmp.path().join("disordered.json");
    std::fs::write(&disordered, snap.to_string()).unwrap();
    let garbage = tmp.path().join("garbage.json");
    std::fs::write(&garbage, "{}").unwrap();
    let missing = tmp.path().join("missing.json");
    for (args, says) in [
        (vec!["--profile", "9.9"], "--profile 9.9"),
        (
            vec!["--from-snapshot", s(&garbage)],
            "not a cgleak snapshot",
        ),
        (vec!["--from-snapshot", s(&missing)], s(&missing)),
        (vec!["--from-snapshot", s(&disordered)], "listed before it"),
    ] {
        let mut all = vec!["emulate", s(&dir)];
        all.extend(args);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(says), "{all:?}: {err}");
        assert!(!dir.exists(), "{all:?} left {}", dir.display());
    }
}

/// A node whose pids differ from a fresh emulation's: processes outside the pods tree first.
fn node_with_shifted_pids(base: &Path) -> String {
    let emu = EmulatedFs::create(base, KernelProfile::V6_1).unwrap();
    emu.mkdir("system.slice").unwrap();
    for _ in 0..7 {
        emu.spawn("system.slice", "daemon").unwrap();
    }
    build_pods(&emu, &FixtureSpec::new("kubepods", 4), false).unwrap();
    s(emu.root()).to_string()
}

/// A snapshot of a node (pids shifted) and a rehearsal made from it by `cgleak emulate
/// --from-snapshot`; returns (snapshot file, rehearsal's --root).
fn rehearsal(tmp: &Path) -> (std::path::PathBuf, String) {
    let real = node_with_shifted_pids(&tmp.join("real"));
    let snap = tmp.join("node.json");
    let (code, _, err) = run(&["--root", &real, "snapshot", "-o", s(&snap)]);
    assert_eq!(code, 0, "{err}");
    let dir = tmp.join("rehearsal");
    let (code, out, err) = run(&[
        "emulate",
        s(&dir),
        "--profile",
        "6.1",
        "--from-snapshot",
        s(&snap),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    (snap, s(&dir.join("memory")).to_string())
}

/// Fails on the old code: every task "left the pods tree" (the rehearsal's pids are its own).
#[test]
fn verify_snapshot_of_a_rehearsal_maps_the_pids() {
    let tmp = tempfile::tempdir().unwrap();
    let (snap, root) = rehearsal(tmp.path());
    let st = tmp.path().join("state");
    let (code, out, err) = run(&["--root", &root, "repair", "--yes", "--state-dir", s(&st)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["--root", &root, "verify", "--snapshot", s(&snap)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("verify: OK") && out.contains("mapped"),
        "{out}"
    );
    let json = [
        "--root",
        &root,
        "verify",
        "--snapshot",
        s(&snap),
        "--format",
        "json",
    ];
    let (code, out, _) = run(&json);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["pids_mapped_through"].as_str().is_some(), "{out}");
    assert_eq!(v["tasks_in_place"], v["tasks_checked"], "{out}");
}

/// The map is for the snapshot it was made from: on the node itself, another snapshot is
/// compared unmapped (a snapshot of the rehearsal already has the rehearsal's pids).
#[test]
fn verify_another_snapshot_of_a_rehearsal_is_not_mapped() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, root) = rehearsal(tmp.path());
    let own = tmp.path().join("own.json");
    assert_eq!(run(&["--root", &root, "snapshot", "-o", s(&own)]).0, 0);
    let (code, out, err) = run(&["--root", &root, "verify", "--snapshot", s(&own)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("mapped"), "{out}");
}

// The skip rule of real-kernel tests (tests/common/skip.rs).

use skip::{decide, Decision, Machine};

fn machine(root: bool, writable: bool) -> Machine {
    Machine {
        root,
        memcg: if writable {
            Ok(())
        } else {
            Err("own memory cgroup /x is not writable".into())
        },
    }
}

#[test]
fn skip_rule_outside_ci_skips_with_the_reason() {
    for (root, writable) in [(false, false), (false, true), (true, false)] {
        match decide(false, &machine(root, writable), Ok(())) {
            Decision::Skip(why) => assert!(!why.is_empty()),
            d => panic!("root {root} writable {writable}: {d:?}"),
        }
    }
    assert_eq!(decide(false, &machine(true, true), Ok(())), Decision::Run);
    assert!(matches!(
        decide(
            false,
            &machine(true, true),
            Err("mkdir sandbox: EIO".into())
        ),
        Decision::Skip(_)
    ));
}

#[test]
fn skip_rule_under_ci_fails_where_the_machine_allows_real_tests() {
    // Not root, or no writable memory v1 cgroup: the machine cannot run them; still a skip.
    assert!(matches!(
        decide(true, &machine(false, true), Ok(())),
        Decision::Skip(w) if w.contains("not root")
    ));
    assert!(matches!(
        decide(true, &machine(true, false), Ok(())),
        Decision::Skip(w) if w.contains("not writable")
    ));
    assert_eq!(decide(true, &machine(true, true), Ok(())), Decision::Run);
    // Root and a writable memory cgroup, yet the sandbox failed: under CI that is a failure.
    assert!(matches!(
        decide(true, &machine(true, true), Err("mkdir sandbox: EIO".into())),
        Decision::Fail(w) if w.contains("EIO")
    ));
}

#[test]
fn ci_is_read_from_the_environment_value() {
    assert!(skip::ci_value(Some("true")));
    assert!(skip::ci_value(Some("1")));
    assert!(!skip::ci_value(Some("false")));
    assert!(!skip::ci_value(Some("")));
    assert!(!skip::ci_value(None));
}
