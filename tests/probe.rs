//! `cgleak probe-headroom`: on emulated nodes (ids plenty or nearly exhausted, the bound, kmem
//! in the root, injected faults on mkdir and rmdir, Ctrl-C, a panic) and on the real kernel in a
//! sandbox cgroup. Every test checks that no probe cgroup is left and no id leaked.

mod common;

use assert_cmd::Command;
use cgleak::error::FsOp;
use cgleak::host::emulated::{EmulatedFs, Fault, FaultWhen, KernelProfile};
use cgleak::host::Hierarchy;
use cgleak::ids::probe::{self, End, PROBE_PREFIX};
use nix::errno::Errno;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An emulated node made by `cgleak emulate` (kmem active under the pods cgroup on 3.10, as
/// kubelet did there).
fn node(profile: KernelProfile, pods: usize) -> (tempfile::TempDir, EmulatedFs) {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let base = dir.path().join("node");
    let mut cmd = Command::cargo_bin("cgleak").unwrap();
    cmd.arg("emulate")
        .arg(&base)
        .args(["--profile", profile.name(), "--pods", &pods.to_string()]);
    if profile == KernelProfile::V3_10 {
        cmd.arg("--kmem");
    }
    cmd.assert().success();
    let emu = EmulatedFs::open(&base).unwrap();
    (dir, emu)
}

/// `cgleak --root ROOT probe-headroom --count N [extra]`: (exit code, stdout, stderr).
fn run(root: &Path, count: u64, extra: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("cgleak")
        .unwrap()
        .arg("--root")
        .arg(root)
        .args(["probe-headroom", "--count", &count.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Probe cgroup directories directly below `root`.
fn probe_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .filter(|e| e.file_name().to_string_lossy().starts_with(PROBE_PREFIX))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Ids in use as another process left them (the CLI runs in its own process).
fn ids_used(emu: &EmulatedFs) -> u64 {
    EmulatedFs::open(emu.base()).unwrap().ids_used()
}

#[test]
fn plenty_of_ids_all_n_made_and_removed_on_every_profile() {
    for profile in KernelProfile::ALL {
        let (_d, emu) = node(profile, 3);
        let before = ids_used(&emu);
        let (code, out, err) = run(emu.root(), 50, &[]);
        assert_eq!(code, 0, "{profile}: {out}{err}");
        assert!(
            out.contains("50 of 50 memcg ids free")
                && out.contains("All 50 probe memcgs were removed"),
            "{profile}: {out}"
        );
        assert!(probe_dirs(emu.root()).is_empty(), "{profile}");
        assert_eq!(ids_used(&emu), before, "{profile}: the probe leaked ids");
    }
}

#[test]
fn nearly_exhausted_ids_give_k_of_n_and_exit_1() {
    for profile in [KernelProfile::V3_10, KernelProfile::V6_1] {
        let (_d, emu) = node(profile, 3);
        emu.add_dying(65535 - emu.ids_used() - 7).unwrap();
        let before = ids_used(&emu);
        let (code, out, err) = run(emu.root(), 50, &[]);
        assert_eq!(code, 1, "{profile}: {out}{err}");
        assert!(
            out.contains("only 7 of 50 ids free")
                && out.contains(if profile == KernelProfile::V3_10 {
                    "ENOMEM"
                } else {
                    "ENOSPC"
                }),
            "{profile}: {out}"
        );
        assert!(out.contains("All 7 probe memcgs were removed"), "{out}");
        assert!(probe_dirs(emu.root()).is_empty());
        assert_eq!(ids_used(&emu), before);
    }
}

#[test]
fn count_above_the_repairs_needs_plus_margin_is_refused() {
    let (_d, emu) = node(KernelProfile::V6_1, 4);
    let snap = cgleak::scan::scan(&emu, "kubepods").unwrap();
    let bound = probe::bound(&emu, "kubepods").unwrap();
    assert_eq!(bound, 2 * snap.cgroups.len() as u64 + 256);
    let (code, _, err) = run(emu.root(), bound + 1, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--count {} is above {bound}", bound + 1))
            && err.contains(&format!("at most --count {bound}")),
        "{err}"
    );
    assert_eq!(
        ids_used(&emu),
        emu.ids_used(),
        "the refusal changed the node"
    );
    let (code, out, err) = run(emu.root(), bound, &[]);
    assert_eq!(code, 0, "{out}{err}");
    // No pods tree: only the margin.
    assert_eq!(probe::bound(&emu, "nosuchpods").unwrap(), 256);
    let (code, _, err) = run(emu.root(), 257, &["--kubepods", "nosuchpods"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is above 256"), "{err}");
    let (code, _, err) = run(emu.root(), 0, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(probe_dirs(emu.root()).is_empty());
}

#[test]
fn root_with_kmem_active_is_refused_on_310() {
    let (_d, emu) = node(KernelProfile::V3_10, 2);
    let pods_root = emu.root().join("kubepods");
    let before = ids_used(&emu);
    let (code, out, err) = run(&pods_root, 10, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("kmem accounting is active in") && err.contains("kubepods"),
        "{err}"
    );
    assert!(probe_dirs(&pods_root).is_empty());
    assert_eq!(ids_used(&emu), before);
    // From 3.16 on kmem is not activated per cgroup: nothing to refuse.
    let (_d2, emu2) = node(KernelProfile::V6_1, 2);
    let (code, out, err) = run(&emu2.root().join("kubepods"), 10, &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn failed_rmdir_reports_every_leftover_and_ebusy_is_retried() {
    let (_d, emu) = node(KernelProfile::V6_1, 2);
    let fault = |errno, times| Fault {
        when: FaultWhen::Match {
            op: FsOp::Rmdir,
            path_contains: PROBE_PREFIX.into(),
            times,
        },
        errno,
    };
    // Injected through a fresh instance each time: `emu` does not see what the CLI changed.
    let inject = |f| EmulatedFs::open(emu.base()).unwrap().inject(f).unwrap();
    // EBUSY twice: retried, everything removed.
    inject(fault(Errno::EBUSY, 2));
    let (code, out, err) = run(emu.root(), 20, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(probe_dirs(emu.root()).is_empty());
    // EIO on two rmdirs: both reported with their path, exit 1.
    inject(fault(Errno::EIO, 2));
    let (code, out, err) = run(emu.root(), 20, &[]);
    assert_eq!(code, 1, "{out}{err}");
    let left = probe_dirs(emu.root());
    assert_eq!(left.len(), 2, "{out}");
    assert!(out.contains("CLEANUP FAILED: 2 of 20"), "{out}");
    for l in &left {
        assert!(out.contains(&format!("{}: rmdir", l.display())), "{out}");
    }
    // The next probe names them (they hold ids).
    let (code, out, _) = run(emu.root(), 5, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("earlier, killed probe"), "{out}");
    for l in &left {
        assert!(
            out.contains(l.file_name().unwrap().to_str().unwrap()),
            "{out}"
        );
    }
}

#[test]
fn failed_mkdir_removes_what_was_made() {
    let (_d, emu) = node(KernelProfile::V3_10, 2);
    let before = ids_used(&emu);
    // The probe's mkdirs are the CLI instance's first mutations: the 11th fails.
    emu.inject(Fault {
        when: FaultWhen::Nth(10),
        errno: Errno::EIO,
    })
    .unwrap();
    let (code, out, err) = run(emu.root(), 30, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("stopped after 10 of 30 by an error that is not about ids")
            && out.contains("All 10 probe memcgs were removed"),
        "{out}"
    );
    assert!(probe_dirs(emu.root()).is_empty());
    assert_eq!(ids_used(&emu), before);
}

#[test]
fn interrupt_stops_and_removes() {
    let (_d, emu) = node(KernelProfile::V6_1, 2);
    let before = emu.ids_used();
    let calls = AtomicU64::new(0);
    // Ctrl-C arrives while the 16th mkdir is due.
    let r = probe::probe(&emu, 40, "kubepods", &|| {
        calls.fetch_add(1, Ordering::SeqCst) >= 15
    })
    .unwrap();
    assert!(matches!(r.end, End::Interrupted), "{:?}", r.end);
    assert_eq!(r.made, 15);
    assert!(r.leftovers.is_empty());
    assert_eq!(r.exit_code(), 1);
    assert!(r.render_text().contains("at least 15 ids free"));
    assert!(probe_dirs(emu.root()).is_empty());
    assert_eq!(emu.ids_used(), before);
}

#[test]
fn a_panic_mid_probe_still_removes_the_cgroups() {
    let (_d, emu) = node(KernelProfile::V6_1, 2);
    let before = emu.ids_used();
    let calls = AtomicU64::new(0);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        probe::probe(&emu, 40, "kubepods", &|| {
            if calls.fetch_add(1, Ordering::SeqCst) == 12 {
                panic!("injected panic after 12 mkdirs");
            }
            false
        })
    }));
    assert!(res.is_err(), "the injected panic did not happen");
    assert!(
        probe_dirs(emu.root()).is_empty(),
        "the Drop guard left probe cgroups"
    );
    assert_eq!(emu.ids_used(), before);
}

#[test]
fn real_kernel_probe_in_the_sandbox() {
    let Some(sb) = common::real_kernel("probe_headroom_real") else {
        return;
    };
    let t = std::time::Instant::now();
    let (code, out, err) = run(sb.path(), 50, &[]);
    let wall = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("50 of 50 memcg ids free"), "{out}");
    eprintln!("real kernel: probe of 50 memcgs: {out:?} (process wall {wall:?})");
    let left: Vec<PathBuf> = sb
        .cgroups_leaf_first()
        .into_iter()
        .filter(|p| p != sb.path())
        .collect();
    assert!(left.is_empty(), "cgroups left in the sandbox: {left:?}");
}

/// Issue 15: `--count 0` is refused while the arguments are parsed, before any hierarchy is
/// opened: the error names the option, not the root. Fails on the old code (it opened the root
/// first and complained about it).
#[test]
fn count_zero_is_refused_at_parse_time() {
    let missing = Path::new("/nonexistent/cgleak-probe-root");
    let (code, _, err) = run(missing, 0, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--count"), "{err}");
    assert!(!err.contains("/nonexistent"), "{err}");
}
