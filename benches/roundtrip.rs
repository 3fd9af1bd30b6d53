//! Round-trip benchmark on the real kernel, below this process's own memory cgroup: builds a
//! kubelet-shaped tree with real sleeping processes, then times on the same tree in the same
//! run, interleaved: `cgleak repair` (each strategy) and the fewest-syscalls floor of the same
//! round trip (the same mkdir, writes, task moves, force_empty, rmdir and rename, with no read
//! at all, one open of cgroup.procs per cgroup). Prints medians and ratios.
//!
//!     cargo bench --bench roundtrip -- [--pods N] [--runs R]
//!
//! Needs root and a writable memory cgroup v1; says why and exits 0 otherwise.

#[path = "../tests/common/sandbox.rs"]
#[allow(dead_code)]
mod sandbox;

use cgleak::fixture::{self, FixtureSpec};
use cgleak::fs::kernel::KernelFs;
use cgleak::fs::knob;
use cgleak::kernel::KernelInfo;
use cgleak::plan::{self, Plan, PlanInput, Step, Strategy};
use cgleak::repair::{self, RepairOptions};
use cgleak::scan;
use sandbox::Sandbox;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One write(2) to an existing control file.
fn put(path: &Path, value: &str) {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(value.as_bytes())
        .unwrap_or_else(|e| panic!("write {} to {}: {e}", value, path.display()));
}

/// The plan's operations with the fewest system calls: no reads, no checks, no journal.
fn floor(root: &Path, p: &Plan) {
    for ph in &p.phases {
        for s in &ph.steps {
            match s {
                Step::Mkdir { cg } => nix::unistd::mkdir(
                    &root.join(cg),
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                )
                .unwrap(),
                Step::Write { cg, file, value } => put(&root.join(cg).join(file), value),
                Step::MoveCharge { cg, value } => {
                    put(&root.join(cg).join(knob::MOVE_CHARGE), &value.to_string())
                }
                Step::MoveTasks { to, pids, .. } => {
                    if !pids.is_empty() {
                        let path = root.join(to).join(knob::PROCS);
                        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
                        for pid in pids {
                            f.write_all(pid.to_string().as_bytes()).unwrap();
                        }
                    }
                }
                Step::ForceEmpty { cg } => put(&root.join(cg).join(knob::FORCE_EMPTY), "0"),
                Step::Rmdir { cg } => std::fs::remove_dir(root.join(cg)).unwrap(),
                Step::Rename { from, to } => {
                    std::fs::rename(root.join(from), root.join(to)).unwrap()
                }
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench --list probes the harness
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let pods = arg("--pods", if full { 110 } else { 10 });
    let runs = arg("--runs", if full { 5 } else { 1 });
    let sb = match Sandbox::new("bench") {
        Ok(sb) => sb,
        Err(why) => {
            println!("roundtrip benchmark not run: {why}");
            return;
        }
    };
    let fs = KernelFs::open(sb.path()).unwrap();
    let tree = fixture::kubelet_tree(&FixtureSpec::new("kubepods", pods));
    let t = Instant::now();
    let mut spawn = |cg: &str| Ok(sb.spawn_sleeper(cg));
    let pids = fixture::build(&fs, &tree, &mut spawn).unwrap();
    let snap = scan::scan(&fs, "kubepods").unwrap();
    let kernel = KernelInfo::from_release(&snap.kernel_release);
    println!(
        "tree: {pods} pods, {} cgroups, {} processes (built in {:.2} s); kernel {}",
        snap.cgroups.len(),
        pids.len(),
        t.elapsed().as_secs_f64(),
        kernel.release
    );
    let plan_for = |strategy| {
        plan::plan(
            &snap,
            &PlanInput {
                staging: "kubepods2".into(),
                strategy,
                move_charge: kernel.move_charge_supported(),
                ids_free: Some(60000),
                staging_exists: false,
            },
        )
    };
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("cgleak repair migrate-back (preflight+run+verify)", vec![]),
        ("  of which executing the plan", vec![]),
        ("floor migrate-back", vec![]),
        ("cgleak repair rename (preflight+run+verify)", vec![]),
        ("  of which executing the plan", vec![]),
        ("floor rename", vec![]),
    ];
    for _ in 0..runs {
        for (i, strategy) in [Strategy::MigrateBack, Strategy::Rename]
            .into_iter()
            .enumerate()
        {
            let state = tempfile::tempdir().unwrap();
            let opts = RepairOptions::new("kubepods", "kubepods2", strategy, state.path());
            let t = Instant::now();
            let p = repair::prepare(&fs, &opts).unwrap();
            let out = repair::execute(&fs, &opts, p, None).unwrap();
            let wall = t.elapsed().as_secs_f64();
            assert!(out.verify.ok, "{:?}", out.verify.differences);
            results[3 * i].1.push(wall);
            results[3 * i + 1].1.push(out.stats.seconds);
            let p = plan_for(strategy);
            let t = Instant::now();
            floor(sb.path(), &p);
            results[3 * i + 2].1.push(t.elapsed().as_secs_f64());
        }
    }
    let after = scan::scan(&fs, "kubepods").unwrap();
    assert_eq!(after.cgroups.len(), snap.cgroups.len());
    println!("medians of {runs} runs:");
    let mut med = Vec::new();
    for (name, v) in results.iter_mut() {
        let m = median(v);
        med.push(m);
        println!("  {name:<52} {:>8.1} ms", m * 1e3);
    }
    println!("ratios:");
    println!(
        "  migrate-back repair / floor          {:.2}x (executing only: {:.2}x)",
        med[0] / med[2],
        med[1] / med[2]
    );
    println!(
        "  rename repair / floor                {:.2}x (executing only: {:.2}x)",
        med[3] / med[5],
        med[4] / med[5]
    );
    println!(
        "  rename repair / migrate-back floor   {:.2}x",
        med[3] / med[2]
    );
}
