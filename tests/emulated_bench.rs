//! Cost of the emulated node in the repair sweeps: copy a template node, run a repair
//! interrupted at mutation k, open the copy again and resume. Run with
//! `cargo test --release --test emulated_bench -- --ignored --nocapture`.

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

#[test]
#[ignore]
fn timing_interrupted_runs() {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let base = dir.path().join("node");
    let profile = KernelProfile::V3_10;
    let emu = EmulatedFs::create(&base, profile).unwrap();
    let mut spec = FixtureSpec::new("kubepods", 30);
    spec.layout = FixtureLayout::Mixed;
    spec.max_containers = 1;
    build_pods(&emu, &spec, true).unwrap();
    drop(emu);
    let (mut files, mut dirs) = (0, 0);
    for e in walkdir::WalkDir::new(&base) {
        if e.unwrap().file_type().is_dir() {
            dirs += 1
        } else {
            files += 1
        }
    }
    println!("template node: {files} files in {dirs} directories");
    let runs = 20u64;
    let (mut copy_t, mut run_t, mut open_t, mut resume_t) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut muts = 0;
    let all = Instant::now();
    for i in 0..runs {
        let b = dir.path().join(format!("k{i}"));
        let s = dir.path().join(format!("k{i}-state"));
        let t = Instant::now();
        copy_node(&base, &b).unwrap();
        copy_t += t.elapsed();
        let t = Instant::now();
        let emu = EmulatedFs::open(&b).unwrap();
        open_t += t.elapsed();
        let mut o = opts(&emu, &s);
        // Interrupt late so most of the repair runs.
        o.crash_after = Some(300 + i * 7);
        let t = Instant::now();
        let p = repair::prepare(&emu, &o).unwrap();
        match repair::execute(&emu, &o, p, None) {
            Err(Error::Stopped(st)) if st.crashed().is_some() => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
        run_t += t.elapsed();
        muts += emu.mutations();
        drop(emu);
        let t = Instant::now();
        let emu = EmulatedFs::open(&b).unwrap();
        open_t += t.elapsed();
        let t = Instant::now();
        let out = repair::resume(&emu, &s, None, false, None).unwrap();
        assert!(out.verify.ok);
        resume_t += t.elapsed();
        muts += emu.mutations();
        drop(emu);
        std::fs::remove_dir_all(&b).unwrap();
        let _ = std::fs::remove_dir_all(&s);
    }
    let n = runs as u32;
    println!(
        "per interrupted run: {:?} (copy {:?}, open x2 {:?}, repair {:?}, resume {:?}); {:.1} µs per mutation over {} mutations/run",
        all.elapsed() / n,
        copy_t / n,
        open_t / n,
        run_t / n,
        resume_t / n,
        (run_t + resume_t).as_secs_f64() * 1e6 / muts as f64,
        muts / runs
    );
}
