//! What a node's workloads feel during a repair (issue 13), on the real kernel, below this
//! process's own memory cgroup.
//!
//! For each size it builds, fresh for every run, a kubelet-shaped tree whose containers hold
//! real memory (`tree.rs`: touched anonymous memory and clean page cache in each app container,
//! and one big process), starts three bystander probes (`roles.rs`: fork+exit+wait and page
//! faults outside the pods tree, page faults inside a container the repair moves), lets them
//! run through an idle window, then repairs: `cgleak repair --yes` (the real binary, JSON
//! outcome with each phase's CLOCK_MONOTONIC times) or the floor of the same plan (`measure.rs`).
//! It prints the repair's time, the charge that moved and its rate, the longest single task
//! move, and each probe's median, p99 and maximum per phase against the idle
//! window, with the targets of issue 13 judged.
//!
//! A fresh tree each run: from 6.13 on charges never move, so only the first round trip on a
//! tree finds its memory where the tasks are (after it, the old charges sit in deleted memcgs
//! and the new cgroups start near empty); on kernels that do move charges, the first round trip
//! reclaims the page cache (force_empty) that a second would not find.
//!
//!     cargo bench --bench stalls -- [--pods 110] [--mib 0,8,32] [--big-mib 1024] [--runs 2]
//!                                    [--idle-ms 1500] [--strategy both|migrate-back|rename]
//!                                    [--cgleak PATH] [--pace-us 100] [--who both|cgleak|floor]
//!
//! `--pace-us` is the pause after each task move and rmdir, for cgleak (`--pace`) and the floor
//! alike; cgleak's default unless given. `--pace-us 0` shows what the pauses buy.
//!
//! Under `cargo test` (no `--bench`) it is a smoke run at 6 pods and 2 MiB that skips without
//! root or memcg v1 (and fails under CI on a machine that has them, tests/common/skip.rs).

#[path = "../common/mod.rs"]
mod common;
#[path = "../../tests/common/sandbox.rs"]
#[allow(dead_code)]
mod sandbox;
#[path = "../../tests/common/skip.rs"]
mod skip;

mod hist;
mod measure;
mod report;
mod roles;
mod tree;

use cgleak::model::kernel::KernelInfo;
use cgleak::repair::execute;
use cgleak::repair::plan::{self, PlanInput, Strategy};
use measure::Who;
use std::path::PathBuf;
use std::time::Duration;

/// What to run, from the command line.
pub struct Args {
    full: bool,
    pods: usize,
    mibs: Vec<u64>,
    big_mib: u64,
    runs: usize,
    idle: Duration,
    strategies: Vec<Strategy>,
    cgleak: PathBuf,
    /// Who repairs: both (default), or only one of them (`--who cgleak|floor`).
    who: Vec<Who>,
    /// The pause after each cgroup's task move and rmdir, cgleak's (`--pace`) and the floor's
    /// alike (`--pace-us`; cgleak's default unless given).
    pace: Duration,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| common::arg_value(&args, name);
    let number = |name: &str, default: u64| {
        value(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} {v}: not a number"))
        })
    };
    let full = args.iter().any(|a| a == "--bench");
    let mibs = value("--mib").map_or(if full { vec![0, 8, 32] } else { vec![2] }, |l| {
        l.split(',')
            .map(|m| {
                m.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("--mib {l}: give numbers like 8,32"))
            })
            .collect()
    });
    let strategies = match value("--strategy").as_deref() {
        None | Some("both") => vec![Strategy::MigrateBack, Strategy::Rename],
        Some("migrate-back") => vec![Strategy::MigrateBack],
        Some("rename") => vec![Strategy::Rename],
        Some(o) => panic!("--strategy {o}: give both, migrate-back or rename"),
    };
    Args {
        full,
        pods: number("--pods", if full { 110 } else { 6 }) as usize,
        mibs,
        big_mib: number("--big-mib", if full { 1024 } else { 8 }),
        runs: number("--runs", if full { 2 } else { 1 }).max(1) as usize,
        idle: Duration::from_millis(number("--idle-ms", if full { 1500 } else { 200 })),
        strategies,
        cgleak: value("--cgleak")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cgleak"))),
        who: match value("--who").as_deref() {
            None | Some("both") => vec![Who::Cgleak, Who::Floor],
            Some("cgleak") => vec![Who::Cgleak],
            Some("floor") => vec![Who::Floor],
            Some(o) => panic!("--who {o}: give both, cgleak or floor"),
        },
        pace: Duration::from_micros(number(
            "--pace-us",
            execute::DEFAULT_PACE.as_micros() as u64,
        )),
    }
}

/// Wait (at most 10 s) until the kernel has freed what the previous run removed: the memory
/// row of /proc/cgroups holding still for 200 ms.
fn settle() {
    let mut last = measure::memcgs();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = measure::memcgs();
        if now == last {
            return;
        }
        last = now;
    }
}

/// MemAvailable of /proc/meminfo, in bytes.
fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// One run: a fresh sandbox and tree, measured, torn down.
fn one(
    args: &Args,
    size: tree::Size,
    cache: &tree::CacheFile,
    who: Who,
    strategy: Strategy,
) -> Result<(measure::Run, report::TreeFacts), String> {
    settle();
    let sb = sandbox::Sandbox::new("stalls")?;
    let mut node = tree::Node::build(&sb, size, cache)?;
    let kernel = KernelInfo::from_release(&node.snap.kernel_release);
    let p = plan::plan(
        &node.snap,
        &PlanInput {
            staging: "kubepods2".into(),
            strategy,
            move_charge: kernel.move_charge_supported(),
            ids_free: Some(60000),
        },
    );
    let facts = report::TreeFacts {
        cgroups: node.snap.cgroups.len(),
        holders: node.holders,
        charged: node.containers_usage(),
        kernel: kernel.release.clone(),
        moves_charges: kernel.move_charge_supported() == Some(true),
        pace: args.pace,
    };
    let r = measure::run(
        &mut node,
        &p,
        who,
        strategy,
        &args.cgleak,
        args.idle,
        args.pace,
    )?;
    let v = cgleak::repair::verify::verify(&node.fs, &node.snap, "kubepods2", false)
        .map_err(|e| e.to_string())?;
    if !v.ok {
        return Err(format!(
            "{who:?} {strategy} did not restore the tree: {:?}",
            v.differences
        ));
    }
    drop(node);
    drop(sb);
    Ok((r, facts))
}

fn run_size(
    args: &Args,
    size: tree::Size,
    cache: &tree::CacheFile,
    lines: &mut Vec<report::Line>,
) -> Result<(), String> {
    for &strategy in &args.strategies {
        let mut runs: Vec<(Who, measure::Run)> = Vec::new();
        let mut facts = None;
        for i in 0..args.runs {
            // Take turns going first, so what one run leaves to the next falls on both.
            let mut order = args.who.clone();
            if i % 2 == 1 {
                order.reverse();
            }
            for who in order {
                let (r, f) = one(args, size, cache, who, strategy)?;
                facts.get_or_insert(f);
                runs.push((who, r));
                eprint!("\r  {strategy}: run {}/{} done", i + 1, args.runs);
            }
        }
        eprintln!();
        lines.push(report::print(
            size,
            strategy,
            &facts.expect("at least one run"),
            &runs,
        ));
    }
    Ok(())
}

fn main_full(args: &Args) -> Result<(), String> {
    let sizes: Vec<tree::Size> = args
        .mibs
        .iter()
        .map(|&m| tree::Size {
            pods: args.pods,
            anon_mib: m,
            big_mib: args.big_mib,
        })
        .collect();
    let cache_len = sizes
        .iter()
        .map(|&s| tree::cache_needed(s))
        .max()
        .unwrap_or(0);
    let cache = tree::CacheFile::new(cache_len.max(1 << 20)).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    for size in sizes {
        let need = (size.anon_mib * 5 / 4 * 3 * size.pods as u64 + size.big_mib) << 20;
        if mem_available() < need + (need >> 2) + (1 << 30) {
            println!(
                "\n== {} pods at {} MiB a container: skipped, it needs about {} MiB and {} MiB are available",
                size.pods,
                size.anon_mib,
                need >> 20,
                mem_available() >> 20
            );
            continue;
        }
        run_size(args, size, &cache, &mut lines)?;
    }
    lines.sort_by_key(|l| (l.strategy.to_string(), l.size.anon_mib));
    report::print_growth(&lines);
    Ok(())
}

fn main() {
    if let Some(code) = tree::role_main() {
        std::process::exit(code);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // cargo bench --list probes the harness
    }
    let args = parse_args();
    if let Err(why) = main_full(&args) {
        std::process::exit(common::cannot_run("stalls", args.full, &why));
    }
}
