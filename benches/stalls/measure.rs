//! One measured repair on a fresh tree: `cgleak repair --yes` (the real binary) or the floor of
//! the same plan, with the probes running through an idle window before it and the repair
//! itself, and what moved with the tasks.
//!
//! The floor here is the plan's operations with the fewest system calls (as in the roundtrip
//! benchmark: no journal, no check; memory.stat read where force_empty is decided, and
//! force_empty written where cgleak writes it, `execute::force_empty_helps`, with cgleak's time
//! budget, `execute::FORCE_EMPTY_BUDGET`: on 5.10 a write the kernel cannot finish retries for
//! 1.6 s), with each task move timed on its own and memory.usage_in_bytes of the source cgroup
//! read before and after each move step: what left it is the charge moved. It pauses where
//! cgleak pauses (`--pace-us`) and gives the core back as cgleak does (`host::share::tick`).

use crate::hist::Timeline;
use crate::roles::now_ns;
use crate::tree::Node;
use cgleak::host::{knob, share, Hierarchy};
use cgleak::repair::execute;
use cgleak::repair::plan::{Plan, Step, Strategy};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Who did the repair.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Who {
    Cgleak,
    Floor,
}

/// A span of CLOCK_MONOTONIC (ns) with a name.
#[derive(Clone, Debug)]
pub struct Span {
    pub name: String,
    pub from: u64,
    pub to: u64,
}

/// What one run measured.
pub struct Run {
    /// Wall time of the repair: the whole command for cgleak, the operations for the floor.
    pub seconds: f64,
    pub idle: Span,
    /// The repair's parts in order; the last is the whole repair.
    pub phases: Vec<Span>,
    /// The slowest single task move (seconds).
    pub longest_move: f64,
    /// Floor only: the big process's slowest move, all moves' time, charge moved, force_empty.
    pub big_move: Option<f64>,
    pub move_seconds: Option<f64>,
    pub moved_bytes: Option<u64>,
    pub force_empty: Option<(usize, f64)>,
    /// cgleak only: the times it gave the core back (`stats.yields`).
    pub yields: Option<u64>,
    /// Charge of the containers before and after, and memcgs left dying by the repair.
    pub before: u64,
    pub after: u64,
    /// memory.usage_in_bytes of kubepods itself before and after.
    pub kubepods: (u64, u64),
    pub dying_left: i64,
    pub probes: Vec<(&'static str, Timeline)>,
}

/// The memory row of /proc/cgroups: live and dying memcgs of the whole machine.
pub fn memcgs() -> i64 {
    std::fs::read_to_string("/proc/cgroups")
        .ok()
        .and_then(|s| cgleak::host::parse_proc_cgroups_memory(&s))
        .map_or(0, |(_, n, _)| n as i64)
}

/// Idle window, the repair, a short tail; then stop the probes and read what is charged.
pub fn run(
    node: &mut Node,
    plan: &Plan,
    who: Who,
    strategy: Strategy,
    bin: &Path,
    idle: std::time::Duration,
    pace: std::time::Duration,
) -> Result<Run, String> {
    let before = node.containers_usage();
    let kubepods_before = node.usage("kubepods");
    let memcgs_before = memcgs();
    let idle_from = now_ns();
    std::thread::sleep(idle);
    let idle = Span {
        name: "idle, no repair".into(),
        from: idle_from,
        to: now_ns(),
    };
    let mut r = match who {
        Who::Cgleak => cgleak_repair(bin, node.fs.root(), strategy, pace)?,
        Who::Floor => floor(node, plan, pace),
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    r.probes = node.stop_probes()?;
    r.idle = idle;
    r.before = before;
    r.after = node.containers_usage();
    r.kubepods = (kubepods_before, node.usage("kubepods"));
    r.dying_left = memcgs() - memcgs_before;
    Ok(r)
}

fn empty_run(seconds: f64, phases: Vec<Span>) -> Run {
    Run {
        seconds,
        idle: Span {
            name: String::new(),
            from: 0,
            to: 0,
        },
        phases,
        longest_move: 0.0,
        big_move: None,
        move_seconds: None,
        moved_bytes: None,
        force_empty: None,
        yields: None,
        before: 0,
        after: 0,
        kubepods: (0, 0),
        dying_left: 0,
        probes: Vec::new(),
    }
}

/// `cgleak repair --yes --format json` as the real binary; its phases come from the outcome's
/// CLOCK_MONOTONIC phase times. (Its peak RSS is the roundtrip benchmark's: measured from a
/// launcher, since a child forked from this bench inherits the bench's own peak at exec.)
fn cgleak_repair(
    bin: &Path,
    root: &Path,
    strategy: Strategy,
    pace: std::time::Duration,
) -> Result<Run, String> {
    let state = tempfile::Builder::new()
        .prefix("cgleak-stalls-state-")
        .tempdir_in("/dev/shm")
        .map_err(|e| e.to_string())?;
    let t0 = now_ns();
    let mut child = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["repair", "--yes", "--format", "json", "--strategy"])
        .arg(strategy.to_string())
        .arg("--pace")
        .arg(format!("{}us", pace.as_micros()))
        .arg("--state-dir")
        .arg(state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", bin.display()))?;
    let mut err = child.stderr.take().expect("piped");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    let t1 = now_ns();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("cgleak repair: {status}\n{stderr}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("cgleak output is not JSON ({e})"))?;
    if v["verify"]["ok"] != true {
        return Err(format!("cgleak verify: {}", v["verify"]));
    }
    let mut phases = vec![];
    let mut at = t0;
    let ns = |x: &serde_json::Value| (x.as_f64().unwrap_or(0.0) * 1e9) as u64;
    for p in v["stats"]["phase_clock"].as_array().into_iter().flatten() {
        if phases.is_empty() {
            phases.push(span("start, scan, checks, journal", t0, ns(&p["start"])));
        }
        phases.push(span(
            p["name"].as_str().unwrap_or("?"),
            ns(&p["start"]),
            ns(&p["end"]),
        ));
        at = ns(&p["end"]);
    }
    phases.push(span("verify, exit", at, t1));
    phases.push(span("whole repair", t0, t1));
    let mut r = empty_run((t1 - t0) as f64 * 1e-9, phases);
    r.longest_move = v["stats"]["longest_move"]["seconds"]
        .as_f64()
        .unwrap_or(0.0);
    r.yields = v["stats"]["yields"].as_u64();
    Ok(r)
}

fn span(name: &str, from: u64, to: u64) -> Span {
    Span {
        name: name.to_string(),
        from,
        to,
    }
}

/// One write(2) to an existing control file.
fn put(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// What the floor keeps count of while it runs.
#[derive(Default)]
struct Tally {
    longest: f64,
    big: f64,
    moves: f64,
    moved: u64,
    force_empties: usize,
    force_empty_s: f64,
}

/// The plan with the fewest system calls, each phase timed on CLOCK_MONOTONIC.
fn floor(node: &Node, plan: &Plan, pace: std::time::Duration) -> Run {
    let mut tally = Tally::default();
    let mut phases = Vec::new();
    let (t0, wall) = (now_ns(), Instant::now());
    for ph in &plan.phases {
        let from = now_ns();
        for s in &ph.steps {
            floor_step(node, plan, s, &mut tally);
            // Where cgleak pauses: after a move of a cgroup's tasks and after an rmdir. And
            // as cgleak does, it gives the core back after a slice of steps (host::share): the
            // floor is the kernel's own cost of these moves, not that of a loop that never
            // lets a woken task run (without it its create phases' fork p99 reached 2.6-7.9 ms).
            if s.paced() && !pace.is_zero() {
                std::thread::sleep(pace);
                share::rested();
            } else {
                share::tick();
            }
        }
        phases.push(span(&ph.name.to_string(), from, now_ns()));
    }
    phases.push(span("whole repair", t0, now_ns()));
    let mut r = empty_run(wall.elapsed().as_secs_f64(), phases);
    r.longest_move = tally.longest;
    r.big_move = Some(tally.big);
    r.move_seconds = Some(tally.moves);
    r.moved_bytes = Some(tally.moved);
    r.force_empty = Some((tally.force_empties, tally.force_empty_s));
    r
}

fn floor_step(node: &Node, plan: &Plan, s: &Step, t: &mut Tally) {
    let root = node.fs.root();
    let must = |r: std::io::Result<()>, what: &str| {
        r.unwrap_or_else(|e| panic!("floor: {what}: {e}"));
    };
    match s {
        Step::Mkdir { cg } => must(std::fs::create_dir(root.join(cg)), cg),
        Step::Write { cg, file, value } => must(put(&root.join(cg).join(file), value), cg),
        Step::MoveCharge { cg, value } => must(
            put(&root.join(cg).join(knob::MOVE_CHARGE), &value.to_string()),
            cg,
        ),
        Step::MoveTasks { from, to, pids } if !pids.is_empty() => {
            let before = node.usage(from);
            let path = root.join(to).join(knob::PROCS);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            for pid in pids {
                let w = Instant::now();
                must(f.write_all(pid.to_string().as_bytes()), to);
                let s = w.elapsed().as_secs_f64();
                t.moves += s;
                t.longest = t.longest.max(s);
                if *pid == node.big.0 {
                    t.big = t.big.max(s);
                }
            }
            t.moved += before.saturating_sub(node.usage(from));
        }
        Step::MoveTasks { .. } => {}
        Step::ForceEmpty { cg } => {
            let dir = root.join(cg);
            let stat = std::fs::read_to_string(dir.join(knob::STAT)).unwrap_or_default();
            if execute::force_empty_helps(&stat, plan.move_charge) {
                let w = Instant::now();
                if let Err(e) = node.fs.force_empty(cg, execute::FORCE_EMPTY_BUDGET) {
                    panic!("floor: force_empty {cg}: {e}");
                }
                t.force_empties += 1;
                t.force_empty_s += w.elapsed().as_secs_f64();
            }
        }
        Step::Rmdir { cg } => must(std::fs::remove_dir(root.join(cg)), cg),
        Step::Rename { from, to } => must(std::fs::rename(root.join(from), root.join(to)), from),
    }
}
