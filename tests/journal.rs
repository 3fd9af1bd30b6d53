//! The journal telling the truth, through the command line on emulated nodes: what a journal
//! is for (its node, its boot) before anything else, "ways on" lines that work when copied,
//! the node lock, unusable state directories, nothing to undo after a completed repair, and
//! the test hook kept out of the interface. One real-kernel test: flock on a cgroup directory.

mod common;

use assert_cmd::Command;
use cgleak::demo::build_pods;
use cgleak::demo::fixture::FixtureSpec;
use cgleak::host::emulated::{EmulatedFs, Fault, FaultWhen, KernelProfile};
use cgleak::host::Hierarchy;
use cgleak::repair::journal;
use nix::errno::Errno;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The binary's test hook: stop dead after N changing system calls, as kill -9 would.
const CRASH_AFTER: &str = "CGLEAK_TEST_CRASH_AFTER";

/// Run cgleak with `args` and extra environment; (exit code, stdout, stderr).
fn cgleak(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::cargo_bin("cgleak")
        .unwrap()
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An emulated node (pods cgroup `kubepods`) in its own temp dir, with a state dir there.
struct Node {
    dir: tempfile::TempDir,
    emu: EmulatedFs,
}

impl Node {
    fn new(kubepods: &str, pods: usize) -> Node {
        let dir = cgleak::host::emulated::tempdir().unwrap();
        let emu = EmulatedFs::create(&dir.path().join("node"), KernelProfile::V6_1).unwrap();
        build_pods(&emu, &FixtureSpec::new(kubepods, pods), false).unwrap();
        Node { dir, emu }
    }
    fn root(&self) -> String {
        self.emu.root().display().to_string()
    }
    fn state(&self) -> String {
        self.dir.path().join("state").display().to_string()
    }
    /// The node as the last cgleak process left it.
    fn reopen(&mut self) {
        self.emu = EmulatedFs::open(self.emu.base()).unwrap();
    }
    /// `cgleak --root ROOT <args>`.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let root = self.root();
        let mut a = vec!["--root", root.as_str()];
        a.extend_from_slice(args);
        cgleak(&a, env)
    }
    /// `repair --yes` into `state`, with the ids count a 6.1 node shows anyway.
    fn repair(&self, state: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut a = vec!["repair", "--yes", "--state-dir", state];
        a.extend_from_slice(extra);
        self.run(&a, env)
    }
    /// A repair stopped dead after `n` changing system calls; its journal in `self.state()`.
    fn killed_repair(&self, n: u64) {
        let (code, out, err) = self.repair(&self.state(), &[], &[(CRASH_AFTER, &n.to_string())]);
        assert_eq!(code, 137, "{out}{err}");
    }
    /// Every file of the node (cgroups and the emulator's state), for "nothing changed".
    fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        walkdir::WalkDir::new(self.emu.base())
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| {
                let data = if e.file_type().is_file() {
                    std::fs::read(e.path()).unwrap()
                } else {
                    vec![]
                };
                (e.path().display().to_string(), data)
            })
            .collect()
    }
}

fn journal_files(state: &str) -> Vec<String> {
    match std::fs::read_dir(state) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != journal::LOCK_FILE)
            .collect(),
        Err(_) => vec![],
    }
}

/// Today's main said "the node rebooted" and advised removing the state directory (the other
/// node's only journal) when resume or rollback got the --root of another node.
#[test]
fn another_nodes_journal_is_refused_naming_both_roots_and_kept() {
    let a = Node::new("kubepods", 3);
    let b = Node::new("kubepods", 3);
    a.killed_repair(25);
    let st = a.state();
    for cmd in ["resume", "rollback"] {
        let before = b.dump();
        let (code, out, err) = b.run(&[cmd, "--yes", "--state-dir", &st], &[]);
        assert_eq!(code, 2, "{out}{err}");
        let want = format!(
            "is for the node at --root {}, not --root {}",
            a.root(),
            b.root()
        );
        assert!(err.contains(&want), "{err}");
        let line = format!("cgleak {cmd} --root {} --state-dir {st}", a.root());
        assert!(err.contains(&line), "{err}");
        assert!(
            !err.contains("rebooted") && !err.contains("remove"),
            "{err}"
        );
        assert_eq!(b.dump(), before, "{cmd} changed the other node");
        assert!(journal_files(&st).contains(&journal::JOURNAL_FILE.to_string()));
    }
    // The command it printed finishes the repair of the right node.
    let (code, out, err) = a.run(&["resume", "--yes", "--state-dir", &st], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// After a reboot of the same node the journal is meaningless, and even then it is moved aside,
/// not removed (today's main said "remove").
#[test]
fn after_a_reboot_the_journal_is_moved_aside_not_removed() {
    let n = Node::new("kubepods", 3);
    n.killed_repair(25);
    n.emu
        .set_boot_id("00000000-0000-0000-0000-000000000001")
        .unwrap();
    let st = n.state();
    for cmd in ["resume", "rollback"] {
        let (code, out, err) = n.run(&[cmd, "--yes", "--state-dir", &st], &[]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("rebooted"), "{err}");
        assert!(
            err.contains(&format!("mv {st} {st}.before-reboot")),
            "{err}"
        );
        assert!(!err.contains("remove"), "{err}");
        assert!(
            err.contains(&format!("diagnose --root {}", n.root())),
            "{err}"
        );
    }
}

/// The lines a stop prints carry --root, the pods and staging names that are not the default,
/// and --state-dir: copied as they are, they finish the repair (today's main printed
/// `cgleak resume --state-dir DIR`, which resumes against /sys/fs/cgroup/memory).
#[test]
fn ways_on_carry_root_and_names_and_work_when_copied() {
    let mut n = Node::new("pods", 3);
    n.emu
        .inject(Fault {
            when: FaultWhen::Nth(12),
            errno: Errno::EIO,
        })
        .unwrap();
    let st = n.state();
    let names = ["--kubepods", "pods", "--staging", "pods.new"];
    let (code, out, err) = n.repair(&st, &names, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let line = |cmd: &str| {
        format!(
            "cgleak {cmd} --root {} --kubepods pods --staging pods.new --state-dir {st}",
            n.root()
        )
    };
    assert!(err.contains(&line("rollback")), "{err}");
    let resume = err
        .lines()
        .map(str::trim)
        .find(|l| *l == line("resume"))
        .unwrap_or_else(|| panic!("no resume line in:\n{err}"))
        .to_string();
    let mut args: Vec<&str> = resume.split_whitespace().skip(1).collect();
    args.push("--yes");
    let (code, out, err) = cgleak(&args, &[]);
    assert_eq!(code, 0, "{out}{err}");
    n.reopen();
    assert!(!n.emu.exists("pods.new") && n.emu.exists("pods"));
}

/// The lock is the node's, not the state directory's: a second repair of one node with another
/// --state-dir is refused (exit 2) and leaves no journal and no staging (today's main passed
/// preflight, failed on mkdir EEXIST and left a journal).
#[test]
fn a_second_run_on_a_locked_node_is_refused_and_leaves_nothing() {
    let n = Node::new("kubepods", 3);
    let root = PathBuf::from(n.root());
    // The first run, as far as the node can tell: it holds the node's lock.
    let held = journal::lock_node(&root).unwrap();
    let other = n.dir.path().join("other-state").display().to_string();
    let before = n.dump();
    let (code, out, err) = n.repair(&other, &[], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let want = format!(
        "another cgleak repair/resume/rollback of this node is running (pid {})",
        std::process::id()
    );
    assert!(err.contains(&want), "{err}");
    assert_eq!(n.dump(), before, "the refused repair changed the node");
    assert!(!n.emu.exists("kubepods2"));
    assert!(
        journal_files(&other).is_empty(),
        "{:?}",
        journal_files(&other)
    );
    drop(held);
    // Resume and rollback take it too.
    n.killed_repair(25);
    let _held = journal::lock_node(&root).unwrap();
    for cmd in ["resume", "rollback"] {
        let (code, out, err) = n.run(&[cmd, "--yes", "--state-dir", &n.state()], &[]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(err.contains("of this node is running"), "{err}");
    }
}

/// flock(2) on a directory of the real cgroupfs (kernfs) works: the node lock holds there.
#[test]
fn node_lock_holds_on_the_real_cgroupfs() {
    let Some(sb) = common::real_kernel("node_lock_holds_on_the_real_cgroupfs") else {
        return;
    };
    let l = journal::lock_node(sb.path()).unwrap();
    let e = journal::lock_node(sb.path())
        .err()
        .expect("a second lock of the same cgroup directory is refused");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("of this node is running"), "{e}");
    drop(l);
    journal::lock_node(sb.path()).unwrap();
}

/// A state directory that is a file, or below one: exit 2 and a sentence naming the path and
/// what to do, nothing left behind (today's main: exit 1 and a raw OS error).
#[test]
fn unusable_state_dirs_exit_2_naming_the_path() {
    let n = Node::new("kubepods", 2);
    let file = n.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let below = file.join("state");
    for st in [&file, &below] {
        let st = st.display().to_string();
        let before = n.dump();
        for args in [
            vec!["repair", "--yes", "--state-dir", &st],
            vec!["resume", "--yes", "--state-dir", &st],
            vec!["rollback", "--yes", "--state-dir", &st],
        ] {
            let (code, out, err) = n.run(&args, &[]);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            assert!(
                err.contains(&format!("the state directory {st} cannot hold the journal")),
                "{args:?}: {err}"
            );
            assert!(err.contains("pass --state-dir"), "{err}");
            assert_eq!(n.dump(), before, "{args:?} changed the node");
        }
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// After a completed repair, rollback has nothing to undo and resume nothing to resume: exit 0,
/// nothing changed (today's main said "The tree is back as it was").
#[test]
fn nothing_to_undo_after_a_completed_repair() {
    let mut n = Node::new("kubepods", 3);
    let st = n.state();
    let (code, out, err) = n.repair(&st, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    n.reopen();
    let before = n.dump();
    let (code, out, err) = n.run(&["rollback", "--yes", "--state-dir", &st], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("nothing to undo: the repair completed"),
        "{out}"
    );
    assert!(!out.contains("back as it was"), "{out}");
    let (code, out, err) = n.run(&["resume", "--yes", "--state-dir", &st], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("nothing to resume: the repair completed"),
        "{out}"
    );
    let (code, out, err) = n.run(
        &["rollback", "--yes", "--state-dir", &st, "--format", "json"],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["command"], "rollback");
    assert_eq!(v["ended"], "completed");
    assert_eq!(n.dump(), before, "nothing to undo, yet the node changed");
}

/// The crash hook is no option of the binary (an environment variable of the tests): clap
/// rejects `--crash-after`, help does not mention it, and a run killed by the hook exits 137
/// with its journal unfinished, as after kill -9.
#[test]
fn the_crash_hook_is_not_part_of_the_interface() {
    let n = Node::new("kubepods", 2);
    for cmd in ["repair", "resume", "rollback"] {
        let (code, _, err) = n.run(&[cmd, "--yes", "--crash-after", "5"], &[]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("--crash-after"), "{err}");
        let (_, out, _) = cgleak(&[cmd, "--help"], &[]);
        assert!(
            !out.contains("crash-after") && !out.contains(CRASH_AFTER),
            "{out}"
        );
    }
    n.killed_repair(15);
    let progress = std::fs::read_to_string(Path::new(&n.state()).join(journal::PROGRESS_FILE));
    assert!(!progress.unwrap().contains("complete"));
    let (code, out, err) = n.run(&["rollback", "--yes", "--state-dir", &n.state()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("back as it was"), "{out}");
}

/// A journal of this root and this boot whose pods cgroup and staging cgroup are both gone
/// describes no tree here: refused, the journal kept and no deletion advised.
#[test]
fn a_journal_whose_trees_are_both_gone_is_refused_and_kept() {
    let n = Node::new("kubepods", 3);
    n.killed_repair(25);
    let path = Path::new(&n.state()).join(journal::JOURNAL_FILE);
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    j["kubepods"] = "gone".into();
    j["staging"] = "gone2".into();
    let text = serde_json::to_string(&j).unwrap();
    std::fs::write(&path, &text).unwrap();
    let before = n.dump();
    for cmd in ["resume", "rollback"] {
        let (code, out, err) = n.run(&[cmd, "--yes", "--state-dir", &n.state()], &[]);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains("is for the pods cgroup gone (staging gone2), and neither exists"),
            "{err}"
        );
        assert!(
            err.contains("keep the journal") && !err.contains("remove"),
            "{err}"
        );
    }
    assert_eq!(n.dump(), before);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}
