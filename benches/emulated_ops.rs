//! Cost per operation of the emulated node (src/host/emulated): writes, task moves, mkdir,
//! rename, rmdir and reads on a 30-pod kubelet-shaped tree, and a many-writes run that shows
//! an operation never rescans the tree (far below a millisecond each, even in debug builds).
//! Moved here from tests/emulated_fs.rs: timings are figures to read, not test assertions.
//!
//!     cargo bench --bench emulated_ops

use cgleak::demo::fixture::{self, FixtureSpec};
use cgleak::host::emulated::{EmulatedFs, KernelProfile};
use cgleak::host::{self, knob, Hierarchy};
use std::time::{Duration, Instant};

fn node() -> (tempfile::TempDir, EmulatedFs) {
    let t = cgleak::host::emulated::tempdir().unwrap();
    let fs = EmulatedFs::create(&t.path().join("node"), KernelProfile::V6_1).unwrap();
    (t, fs)
}

/// Many writes on a tree of ~100 cgroups: each must stay far below a millisecond.
fn mutation_cost() {
    let (_t, fs) = node();
    let mut spec = FixtureSpec::new("kubepods", 30);
    spec.max_containers = 2;
    let tree = fixture::kubelet_tree(&spec);
    fixture::build(&fs, &tree, &mut |cg| fs.spawn(cg, "app")).unwrap();
    let leaf = &tree.last().unwrap().path;
    let n = 2000u32;
    let start = Instant::now();
    for i in 0..n {
        fs.write(leaf, knob::SOFT_LIMIT, &(4096 * (i + 1)).to_string())
            .unwrap();
    }
    let per = start.elapsed() / n;
    let verdict = if per < Duration::from_millis(1) {
        "ok: no rescan"
    } else {
        "TOO SLOW: an operation rescans the tree?"
    };
    println!(
        "{n} writes on {} cgroups: {per:?} per write ({verdict})",
        tree.len()
    );
}

/// Time `n` runs of `f`, printed per run.
fn time(what: &str, n: u32, mut f: impl FnMut(u32)) {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    println!("{what}: {:?}", t.elapsed() / n);
}

fn per_operation() {
    let (_t, fs) = node();
    let tree = fixture::kubelet_tree(&FixtureSpec::new("kubepods", 30));
    let t0 = Instant::now();
    fixture::build(&fs, &tree, &mut |cg| fs.spawn(cg, "app")).unwrap();
    println!("fixture of {} cgroups: {:?}", tree.len(), t0.elapsed());
    let leaf = tree.last().unwrap().path.clone();
    time("write soft limit", 5000, |i| {
        fs.write(&leaf, knob::SOFT_LIMIT, &(4096 * (i + 1)).to_string())
            .unwrap()
    });
    time("write limit (reads memsw)", 5000, |i| {
        fs.write(&leaf, knob::LIMIT, &(1 << 30 | (i << 12)).to_string())
            .unwrap_or(())
    });
    let pid = host::read_procs(&fs, &leaf).unwrap()[0].to_string();
    time("cgroup.procs move", 5000, |i| {
        let to = if i % 2 == 0 { "kubepods" } else { &leaf };
        fs.write(to, knob::PROCS, &pid).unwrap()
    });
    time("mkdir", 300, |i| {
        fs.mkdir(&format!("kubepods/x{i}")).unwrap()
    });
    time("rename", 300, |i| {
        fs.rename(&format!("kubepods/x{i}"), &format!("kubepods/y{i}"))
            .unwrap()
    });
    time("rmdir", 300, |i| {
        fs.rmdir(&format!("kubepods/y{i}")).unwrap()
    });
    time("read", 300, |_| {
        fs.read(&leaf, knob::LIMIT).unwrap();
    });
}

fn main() {
    mutation_cost();
    per_operation();
}
