//! One source of refusals (issue 10, section 1): `plan` exits 2 exactly when `repair` with the
//! same options refuses, with the same refusal codes; `--kubepods` and `--staging` are checked
//! at parse time; the staging tree of an interrupted repair whose journal is lost is recognised
//! as such, and a foreign cgroup of the staging name is not. All on emulated nodes.

use cgleak::demo::build_pods;
use cgleak::demo::fixture::FixtureSpec;
use cgleak::host::emulated::{EmulatedFs, KernelProfile};
use cgleak::host::Hierarchy;
use cgleak::repair::plan::Strategy;
use cgleak::repair::refusal::StagingState;
use cgleak::repair::{self, leftover, RepairOptions};
use cgleak::scan;
use std::collections::BTreeMap;
use std::path::PathBuf;

struct Node {
    dir: tempfile::TempDir,
    emu: EmulatedFs,
}

impl Node {
    fn new(profile: KernelProfile, pods: usize) -> Node {
        let dir = cgleak::host::emulated::tempdir().unwrap();
        let emu = EmulatedFs::create(&dir.path().join("node"), profile).unwrap();
        let spec = FixtureSpec::new("kubepods", pods);
        build_pods(&emu, &spec, profile == KernelProfile::V3_10).unwrap();
        Node { dir, emu }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn opts(&self, strategy: Strategy) -> RepairOptions {
        let mut o = RepairOptions::new("kubepods", "kubepods2", strategy, &self.state());
        o.ids_used = Some(self.emu.ids_used());
        o
    }
    /// Every file of the node, for a byte-for-byte comparison.
    fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        walkdir::WalkDir::new(self.dir.path().join("node"))
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| {
                let body = if e.file_type().is_file() {
                    std::fs::read(e.path()).unwrap()
                } else {
                    vec![]
                };
                (e.path().display().to_string(), body)
            })
            .collect()
    }
    /// `cgleak --root NODE ARGS...`: exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = assert_cmd::Command::cargo_bin("cgleak")
            .unwrap()
            .arg("--root")
            .arg(self.emu.root())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }
}

/// The codes of `{"plan": {"blockers": [...]}}` or `{"refusals": [...]}`.
fn codes(json: &str, field: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let list = if field == "plan" {
        &v["plan"]["blockers"]
    } else {
        &v["refusals"]
    };
    list.as_array()
        .unwrap_or_else(|| panic!("no {field} list in {json}"))
        .iter()
        .map(|b| b["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn staging_and_kubepods_names_are_refused_at_parse_time() {
    let n = Node::new(KernelProfile::V6_1, 2);
    let st = n.state().display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--staging", "kubepods/x"], "--staging"),
        (&["--staging", "system.slice/x"], "--staging"),
        (&["--staging", "../x"], "--staging"),
        (&["--staging", "kubepods"], "--staging"),
        (&["--kubepods", ".."], "--kubepods"),
    ];
    for (extra, option) in cases {
        let before = n.dump();
        for cmd in ["repair", "plan"] {
            let mut args = vec![cmd, "--state-dir", &st, "--ids-used", "100"];
            if cmd == "repair" {
                args.push("--yes");
            }
            args.extend_from_slice(extra);
            let (code, out, err) = n.run(&args);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            assert!(
                err.contains(option),
                "{args:?} does not name {option}: {err}"
            );
        }
        assert_eq!(n.dump(), before, "{extra:?} changed the tree");
        assert!(!n.state().exists(), "{extra:?} left a state directory");
    }
    // The same names stay fine where no staging cgroup is involved.
    let (code, _, err) = n.run(&["--staging", "kubepods", "snapshot"]);
    assert_eq!(code, 0, "{err}");
}

/// Node states, each with what every refusal the preflight knows needs.
fn case(name: &str) -> (Node, Vec<String>) {
    let profile = if name == "ids-unknown" {
        KernelProfile::V3_10
    } else {
        KernelProfile::V6_1
    };
    let n = Node::new(profile, 3);
    let mut args: Vec<String> = vec!["--state-dir".into(), n.state().display().to_string()];
    if name != "ids-unknown" {
        args.extend(["--ids-used".into(), n.emu.ids_used().to_string()]);
    }
    match name {
        "healthy" => {}
        "pods-cgroup-missing" => args.extend(["--kubepods".into(), "nosuchpods".into()]),
        "staging-exists" => n.emu.mkdir("kubepods2").unwrap(),
        "staging-leftover" => {
            interrupt(&n, Strategy::MigrateBack, 1, 5);
            std::fs::remove_dir_all(n.state()).unwrap();
        }
        "unfinished-journal" => interrupt(&n, Strategy::MigrateBack, 1, 5),
        "kubelet-running" => {
            n.emu.mkdir("system.slice").unwrap();
            n.emu.spawn("system.slice", "kubelet").unwrap();
        }
        "ids-short" => {
            n.emu.add_dying(65535 - n.emu.ids_used() - 20).unwrap();
            args.truncate(2);
        }
        "state-dir-unusable" => std::fs::write(n.state(), "a file").unwrap(),
        "ids-unknown" | "lock-held" => {}
        other => panic!("no case {other}"),
    }
    (n, args)
}

/// Crash a repair in phase `phase` after `into` changing system calls of it (at most all but
/// its last).
fn interrupt(n: &Node, strategy: Strategy, phase: usize, into: u64) {
    let mut o = n.opts(strategy);
    let p = repair::prepare(&n.emu, &o).unwrap();
    let before: u64 = p.plan.phases[..phase]
        .iter()
        .flat_map(|ph| &ph.steps)
        .map(|s| s.mutations() as u64)
        .sum();
    // Within the phase: its last call would finish it.
    let size: u64 = p.plan.phases[phase]
        .steps
        .iter()
        .map(|s| s.mutations() as u64)
        .sum();
    drop(p);
    o.knobs.crash_after = Some(before + into.min(size - 1));
    let e = repair::prepare(&n.emu, &o)
        .and_then(|p| repair::execute(&n.emu, &o, p, None))
        .expect_err("the crash hook stops the repair");
    assert!(
        matches!(&e, cgleak::Error::Stopped(st) if st.crashed().is_some()),
        "{e}"
    );
}

#[test]
fn plan_exits_2_exactly_when_repair_refuses_with_the_same_codes() {
    let names = [
        "healthy",
        "pods-cgroup-missing",
        "staging-exists",
        "staging-leftover",
        "unfinished-journal",
        "kubelet-running",
        "ids-short",
        "ids-unknown",
        "lock-held",
        "state-dir-unusable",
    ];
    for name in names {
        let (n, extra) = case(name);
        let _held =
            (name == "lock-held").then(|| cgleak::repair::journal::lock(&n.state()).unwrap());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let before = n.dump();
        let (pcode, pout, perr) = n.run(&[&["plan", "--format", "json"], &extra[..]].concat());
        assert_eq!(n.dump(), before, "{name}: plan changed the tree");
        let (rcode, rout, rerr) =
            n.run(&[&["repair", "--yes", "--format", "json"], &extra[..]].concat());
        let want: Vec<String> = if name == "healthy" {
            vec![]
        } else {
            vec![name.to_string()]
        };
        assert_eq!(codes(&pout, "plan"), want, "{name}: plan {perr}");
        if name == "healthy" {
            assert_eq!((pcode, rcode), (0, 0), "{name}: {perr}{rerr}");
            continue;
        }
        assert_eq!((pcode, rcode), (2, 2), "{name}: {perr}\n{rout}{rerr}");
        assert_eq!(codes(&rout, "refusals"), want, "{name}: repair {rerr}");
        assert_eq!(
            n.dump(),
            before,
            "{name}: the refused repair changed the tree"
        );
    }
}

#[test]
fn plan_before_kubelet_stops_names_it_and_passes() {
    let n = Node::new(KernelProfile::V6_1, 2);
    n.emu.mkdir("system.slice").unwrap();
    n.emu.spawn("system.slice", "kubelet").unwrap();
    let st = n.state().display().to_string();
    let ids = n.emu.ids_used().to_string();
    let base = ["plan", "--state-dir", &st, "--ids-used", &ids];
    let (code, out, _) = n.run(&base);
    assert_eq!(code, 2);
    assert!(out.contains("stop it first"), "{out}");
    let (code, out, err) = n.run(&[&base[..], &["--assume-kubelet-stopped"]].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("kubelet running") && err.contains("stop it before the repair"),
        "{err}"
    );
}

/// A repair interrupted in `phase` with its journal deleted leaves a staging tree that is
/// recognised as a leftover.
fn leftover_after(profile: KernelProfile, strategy: Strategy, phase: usize, into: u64) -> Node {
    let n = Node::new(profile, 4);
    interrupt(&n, strategy, phase, into);
    std::fs::remove_dir_all(n.state()).unwrap();
    n
}

fn staging_state(n: &Node) -> StagingState {
    let pods = scan::scan(&n.emu, "kubepods").unwrap();
    let mc = cgleak::model::kernel::KernelInfo::from_release(n.emu.profile().release())
        .move_charge_supported();
    leftover::staging_state(&n.emu, &pods.kernel_release, &pods, "kubepods2", mc).unwrap()
}

#[test]
fn an_interrupted_repair_without_journal_is_a_leftover() {
    for profile in [
        KernelProfile::V3_10,
        KernelProfile::V6_1,
        KernelProfile::V6_13,
    ] {
        // create-staging, move-to-staging (early, late), create-pods, move-back.
        for (phase, into) in [(0, 3), (1, 1), (1, 25), (2, 4), (3, 2), (3, 8)] {
            let n = leftover_after(profile, Strategy::MigrateBack, phase, into);
            assert_eq!(
                staging_state(&n),
                StagingState::Leftover,
                "{profile} phase {phase}+{into}"
            );
            let before = n.dump();
            let (code, _, err) = n.run(&[
                "repair",
                "--yes",
                "--ids-used",
                &n.emu.ids_used().to_string(),
                "--state-dir",
                &n.state().display().to_string(),
            ]);
            assert_eq!(code, 2, "{err}");
            assert!(
                err.contains("interrupted repair") && !err.contains("pass another --staging"),
                "{err}"
            );
            // The way on reaches this node and this state directory when copied.
            let way_on = format!(
                "cgleak resume --root {} --state-dir {} --rebuild-journal --yes",
                n.emu.root().display(),
                n.state().display()
            );
            assert!(err.contains(&way_on), "{way_on} not in {err}");
            assert_eq!(n.dump(), before);
        }
    }
}

#[test]
fn diagnose_and_plan_name_the_leftover_of_an_interrupted_repair() {
    let n = leftover_after(KernelProfile::V6_1, Strategy::MigrateBack, 1, 25);
    let before = n.dump();
    let (code, out, err) = n.run(&["diagnose", "--format", "json"]);
    assert!(code == 0 || code == 1, "{code} {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let refusals: Vec<&str> = v["repair_refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["code"].as_str().unwrap())
        .collect();
    assert_eq!(refusals, ["staging-leftover"], "{out}");
    let first = v["verdict"]["advice"][0].as_str().unwrap();
    assert!(
        first.contains("interrupted repair") && first.contains("--rebuild-journal"),
        "{first}"
    );
    let (_, text, _) = n.run(&["diagnose"]);
    assert!(
        text.contains("A repair (cgleak repair) would refuse now"),
        "{text}"
    );
    let st = n.state().display().to_string();
    let (code, out, _) = n.run(&["plan", "--format", "json", "--state-dir", &st]);
    assert_eq!(code, 2);
    assert_eq!(codes(&out, "plan"), ["staging-leftover"]);
    // A healthy node: nothing would stop a repair.
    let healthy = Node::new(KernelProfile::V6_1, 2);
    let (_, out, _) = healthy.run(&["diagnose", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["repair_refusals"], serde_json::json!([]), "{out}");
    assert_eq!(n.dump(), before);
}

#[test]
fn a_foreign_staging_cgroup_is_not_a_leftover() {
    for profile in [KernelProfile::V6_1, KernelProfile::V6_13] {
        let n = Node::new(profile, 4);
        n.emu.mkdir("kubepods2").unwrap();
        n.emu.mkdir("kubepods2/something-else").unwrap();
        assert_eq!(staging_state(&n), StagingState::Foreign, "{profile}");
        let n = Node::new(profile, 4);
        n.emu.mkdir("kubepods2").unwrap();
        n.emu
            .write("kubepods2", "memory.limit_in_bytes", "1048576")
            .unwrap();
        assert_eq!(staging_state(&n), StagingState::Foreign, "{profile}");
    }
}

#[test]
fn a_rebuilt_journal_finishes_or_undoes_the_interrupted_repair() {
    let migrate_back = [(0, 3), (1, 1), (1, 25), (2, 4), (3, 2), (3, 8)];
    // A rename repair has only create-staging and move-to-staging to be interrupted in before
    // its rename (one atomic system call).
    let rename = [(0, 3), (1, 1), (1, 25)];
    let cases = migrate_back
        .iter()
        .map(|c| (Strategy::MigrateBack, *c))
        .chain(rename.iter().map(|c| (Strategy::Rename, *c)));
    for (strategy, (phase, into)) in cases {
        for profile in [KernelProfile::V3_10, KernelProfile::V6_1] {
            for undo in [false, true] {
                let what = format!("{profile} {strategy} phase {phase}+{into} undo {undo}");
                let n = Node::new(profile, 4);
                let original = scan::scan(&n.emu, "kubepods").unwrap();
                interrupt(&n, strategy, phase, into);
                std::fs::remove_dir_all(n.state()).unwrap();
                let st = n.state();
                let r = leftover::rebuild_journal(&n.emu, "kubepods", "kubepods2", &st)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(r.cgroups, original.cgroups.len(), "{what}");
                let out = if undo {
                    repair::rollback(&n.emu, &st, repair::Knobs::default(), None)
                } else {
                    repair::resume(&n.emu, &st, repair::Knobs::default(), None)
                }
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(out.verify.ok, "{what}: {:?}", out.verify.differences);
                // The original tree: every cgroup, its settings and its tasks, staging gone.
                let back =
                    cgleak::repair::verify::verify(&n.emu, &original, "kubepods2", false).unwrap();
                assert!(back.ok, "{what}: {:?}", back.differences);
                let now = scan::scan(&n.emu, "kubepods").unwrap();
                let mc = |s: &cgleak::model::Snapshot| -> Vec<(String, Option<u64>)> {
                    s.cgroups
                        .iter()
                        .map(|c| (c.path.clone(), c.settings.move_charge_at_immigrate))
                        .collect()
                };
                // verify leaves move_charge_at_immigrate out: it is back as it was too.
                assert_eq!(mc(&now), mc(&original), "{what}");
                if !undo && profile == KernelProfile::V3_10 {
                    assert!(
                        now.cgroups.iter().all(|c| c.kmem_active != Some(true)),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn rebuild_journal_through_the_cli_and_refusals() {
    let n = Node::new(KernelProfile::V6_1, 3);
    let st = n.state().display().to_string();
    // Nothing left over: nothing to rebuild, nothing written.
    let (code, _, err) = n.run(&["resume", "--yes", "--rebuild-journal", "--state-dir", &st]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not the staging tree of an interrupted repair"),
        "{err}"
    );
    interrupt(&n, Strategy::MigrateBack, 1, 10);
    // An unfinished journal is used, not replaced.
    let (code, _, err) = n.run(&["rollback", "--yes", "--rebuild-journal", "--state-dir", &st]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without --rebuild-journal"), "{err}");
    // A corrupt one is kept aside.
    std::fs::write(n.state().join("journal.json"), "{ torn").unwrap();
    let (code, out, err) = n.run(&["resume", "--yes", "--rebuild-journal", "--state-dir", &st]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verify: OK"), "{out}");
    assert!(n.state().join("journal.json.corrupt").exists());
}
