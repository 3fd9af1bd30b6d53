//! Cost of the emulated node in the repair sweeps: copy a template node, run a repair
//! interrupted at mutation k, open the copy again and resume; prints the time of each part.
//!
//!     cargo bench --bench interrupted_runs
//!
//! Under `cargo test` (no `--bench` argument) it is a smoke run: one interrupted run, whose
//! resume must verify; no time is asserted anywhere.

use cgleak::demo::build_pods;
use cgleak::demo::fixture::{FixtureLayout, FixtureSpec};
use cgleak::error::Error;
use cgleak::host::emulated::{copy_node, EmulatedFs, KernelProfile};
use cgleak::repair::plan::Strategy;
use cgleak::repair::{self, RepairOptions};
use std::time::{Duration, Instant};

fn opts(emu: &EmulatedFs, state: &std::path::Path) -> RepairOptions {
    let mut o = RepairOptions::new("kubepods", "kubepods2", Strategy::MigrateBack, state);
    o.ids_used = Some(emu.ids_used());
    o
}

/// The sums of each part's time over the runs.
#[derive(Default)]
struct Times {
    copy: Duration,
    open: Duration,
    repair: Duration,
    resume: Duration,
    mutations: u64,
}

/// The template: a 3.10 node of 30 pods (mixed layout, one container each), kmem active;
/// returns its base.
fn template(dir: &std::path::Path) -> std::path::PathBuf {
    let base = dir.join("node");
    let profile = KernelProfile::V3_10;
    let emu = EmulatedFs::create(&base, profile).unwrap();
    let mut spec = FixtureSpec::new("kubepods", 30);
    spec.layout = FixtureLayout::Mixed;
    spec.max_containers = 1;
    build_pods(&emu, &spec, true).unwrap();
    drop(emu);
    base
}

fn count_entries(base: &std::path::Path) -> (usize, usize) {
    let (mut files, mut dirs) = (0, 0);
    for e in walkdir::WalkDir::new(base) {
        if e.unwrap().file_type().is_dir() {
            dirs += 1
        } else {
            files += 1
        }
    }
    (files, dirs)
}

/// Copy the template, repair the copy until the simulated crash after mutation `crash_after`,
/// reopen it and resume; the resume must verify.
fn interrupted_run(
    base: &std::path::Path,
    dir: &std::path::Path,
    i: u64,
    crash_after: u64,
    t: &mut Times,
) {
    let b = dir.join(format!("k{i}"));
    let s = dir.join(format!("k{i}-state"));
    let start = Instant::now();
    copy_node(base, &b).unwrap();
    t.copy += start.elapsed();
    let start = Instant::now();
    let emu = EmulatedFs::open(&b).unwrap();
    t.open += start.elapsed();
    let mut o = opts(&emu, &s);
    o.knobs.crash_after = Some(crash_after);
    let start = Instant::now();
    let p = repair::prepare(&emu, &o).unwrap();
    match repair::execute(&emu, &o, p, None) {
        Err(Error::Stopped(st)) if st.crashed().is_some() => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    t.repair += start.elapsed();
    t.mutations += emu.mutations();
    drop(emu);
    let start = Instant::now();
    let emu = EmulatedFs::open(&b).unwrap();
    t.open += start.elapsed();
    let start = Instant::now();
    let out = repair::resume(&emu, &s, repair::Knobs::default(), None).unwrap();
    assert!(out.verify.ok, "{:?}", out.verify.differences);
    t.resume += start.elapsed();
    t.mutations += emu.mutations();
    drop(emu);
    std::fs::remove_dir_all(&b).unwrap();
    let _ = std::fs::remove_dir_all(&s);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench --list probes the harness
    }
    let full = std::env::args().any(|a| a == "--bench");
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let base = template(dir.path());
    let (files, dirs) = count_entries(&base);
    println!("template node: {files} files in {dirs} directories");
    let runs: u64 = if full { 20 } else { 1 };
    let mut t = Times::default();
    let all = Instant::now();
    for i in 0..runs {
        // Interrupt late so most of the repair runs.
        interrupted_run(&base, dir.path(), i, 300 + i * 7, &mut t);
    }
    let n = runs as u32;
    println!(
        "per interrupted run: {:?} (copy {:?}, open x2 {:?}, repair {:?}, resume {:?}); {:.1} µs per mutation over {} mutations/run",
        all.elapsed() / n,
        t.copy / n,
        t.open / n,
        t.repair / n,
        t.resume / n,
        (t.repair + t.resume).as_secs_f64() * 1e6 / t.mutations as f64,
        t.mutations / runs
    );
}
