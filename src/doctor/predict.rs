//! `oom --predict`: for every memcg of the pods tree with a limit, the task the kernel would kill
//! if that memcg hit its limit now, by this kernel's rules ([`super::era`], [`super::badness`]).
//!
//! The scan is the kernel's (docs/oom-victim.md, "Scan order"): `mem_cgroup_scan_tasks` (3.10:
//! `for_each_mem_cgroup_tree` in `mem_cgroup_out_of_memory`) walks the OOM memcg's subtree in
//! pre-order, the memcg itself first, then each child in creation order (`css->sibling` is
//! tail-added at mkdir). Creation order is read as the directories' inode numbers, which kernfs
//! hands out increasing (seen on 6.18: the later-created of two cgroups is scanned last, whatever
//! the names). Within a memcg the css_set task list is in join order (4.x on; newest first on
//! 3.x), approximated by the processes' start times: v1's cgroup.procs is sorted by pid, not in
//! that order. Which of two equal scores wins depends on the era ([`super::era::Tie`]).
//!
//! For each pod the report warns when the predicted victim is the pod's sandbox (pause) or not
//! its main process (the one with the largest rss), and says what would change it.

use super::badness::{self, Points, TaskMem};
use super::era::{era_for, Era, Tie};
use super::identity::{self, Identity, Names};
use crate::error::Result;
use crate::host::{knob, Hierarchy, Host};
use serde::Serialize;

/// A v1 limit at or above this is "unlimited": `PAGE_COUNTER_MAX * PAGE_SIZE` is
/// 0x7FFFFFFFFFFFF000 with 4 KiB pages, ..FFFF0000 with 64 KiB pages, 3.10's `RESOURCE_MAX`
/// 0x7FFFFFFFFFFFFFFF.
pub const V1_UNLIMITED_MIN: u64 = 0x7FFF_FFFF_FFFF_0000;

/// Where a memcg sits in the pods tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The pods cgroup itself (kubelet's node allocatable limit).
    Kubepods,
    /// A QoS class level (burstable, besteffort) or anything else above the pods.
    Qos,
    Pod,
    Container,
}

/// One candidate as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cand {
    pub pid: u32,
    pub comm: String,
    pub points: i64,
    pub oom_score_adj: i32,
    pub rss_pages: u64,
    pub swap_pages: u64,
    pub pgtables_pages: u64,
    /// The memcg the task is in (relative to --root).
    pub memcg: String,
    pub identity: Option<Identity>,
}

/// A task the kernel would not choose, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excluded {
    pub pid: u32,
    pub comm: String,
    pub reason: String,
}

/// Why a pod's predicted victim is worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WarnKind {
    /// The pod's sandbox (pause) dies first: the whole pod is torn down and recreated.
    Sandbox,
    /// Another process than the pod's main one (the largest rss) dies first.
    Sidecar,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub kind: WarnKind,
    pub message: String,
    /// The pod's main process: the largest rss outside the sandbox.
    pub main: Cand,
    /// What would make the main process the victim instead.
    pub changes: Vec<String>,
}

/// The prediction for one memcg with a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemcgPrediction {
    pub path: String,
    pub level: Level,
    pub limit_bytes: u64,
    pub totalpages: u64,
    pub identity: Option<Identity>,
    /// Every candidate, in the order the kernel scans them.
    pub scan: Vec<Cand>,
    pub excluded: Vec<Excluded>,
    pub victim: Option<Cand>,
    pub runner_up: Option<Cand>,
    /// Victim's points minus the runner-up's.
    pub margin_points: Option<i64>,
    /// The victim and the runner-up score the same: scan order decided.
    pub tie: bool,
    /// Before 5.1: the task the scan chose, when its child dies in its place.
    pub sacrificed_for: Option<u32>,
    /// cgroup v2 `memory.oom.group`: the memcg whose tasks all die with the victim.
    pub oom_group: Option<String>,
    pub warning: Option<Warning>,
}

/// The whole report (`--format json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    pub era: Era,
    pub rules: Vec<String>,
    /// "v1" or "v2".
    pub cgroup: String,
    /// The page size in kB: the unit of every `*_pages` figure and of the points.
    pub page_kb: u64,
    pub memcgs: Vec<MemcgPrediction>,
    pub notes: Vec<String>,
}

impl Report {
    /// Pods whose predicted victim is their sandbox or a sidecar.
    pub fn warnings(&self) -> impl Iterator<Item = &MemcgPrediction> {
        self.memcgs.iter().filter(|m| m.warning.is_some())
    }
}

/// What the command passes in.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub kubepods: String,
    pub pods_log_dir: String,
    pub containerd_dir: String,
    /// The unified hierarchy (memory.max, memory.swap.max, memory.oom.group).
    pub v2: bool,
}

/// The limit settings of one memcg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    limit: u64,
    /// Swap the memcg may use beyond the limit; None: unlimited.
    swap_headroom: Option<u64>,
    swappiness: u64,
}

/// One memcg of the tree, its tasks in scan order.
struct Memcg {
    path: String,
    limits: Option<Limits>,
    /// v2 memory.oom.group is 1.
    oom_group: bool,
    tasks: Vec<TaskMem>,
    identity: Option<Identity>,
    /// Descendants, pre-order, as indexes into the flat list.
    subtree_end: usize,
}

/// The node's machine-wide figures the scores need.
struct Machine {
    era: Era,
    page_kb: u64,
    swap_total_bytes: u64,
    /// /proc/sys/vm/swappiness: v2 memcgs use it.
    vm_swappiness: u64,
}

/// Predict for the pods tree `opts.kubepods` of `fs`. `order` gives a directory's creation key
/// (its inode number on the kernel's cgroupfs, [`inode_order`]); None falls back to name order.
pub fn predict(
    fs: &dyn Hierarchy,
    host: &dyn Host,
    order: &dyn Fn(&str) -> Option<u64>,
    opts: &PredictOptions,
) -> Result<Report> {
    let release = host.kernel_release()?.trim().to_string();
    let signature = host.proc_file("version_signature").ok().flatten();
    let era = era_for(&release, signature.as_deref());
    let mut notes = era.caveats.clone();
    let (page_kb, page_note) = badness::page_kb(host);
    notes.extend(page_note);
    let m = Machine {
        era,
        page_kb,
        swap_total_bytes: host.meminfo().map(|s| swap_total(&s)).unwrap_or(0),
        vm_swappiness: host
            .proc_file("sys/vm/swappiness")
            .ok()
            .flatten()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(60),
    };
    let names = Names::load(host, &opts.pods_log_dir, &opts.containerd_dir);
    notes.extend(names.notes());
    let mut flat = Vec::new();
    let mut unordered = false;
    walk(fs, &opts.kubepods, order, &mut flat, &mut unordered)?;
    if unordered {
        notes.push(
            "creation order of some cgroups unknown (no inode number): name order used".into(),
        );
    }
    let memcgs = gather(fs, host, &m, opts.v2, &names, flat, &mut notes);
    let mut out = Vec::new();
    for i in 0..memcgs.len() {
        if let Some(p) = predict_one(&m, &memcgs, i) {
            out.push(p);
        }
    }
    for p in &mut out {
        if let Some(id) = &p.identity {
            notes.extend(names.missing(id));
        }
    }
    notes.sort();
    notes.dedup();
    Ok(Report {
        kernel: release,
        rules: m.era.rules(),
        era: m.era,
        cgroup: if opts.v2 { "v2" } else { "v1" }.into(),
        page_kb: m.page_kb,
        memcgs: out,
        notes,
    })
}

/// SwapTotal of /proc/meminfo, in bytes.
fn swap_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The creation key of a cgroup directory of the kernel's cgroupfs: its inode number (kernfs
/// ids increase with each node made; from 5.5 the generation sits in the high bits, so the
/// order holds across a wrap of the 32-bit id). None where it cannot be read.
pub fn inode_order(fs: &dyn Hierarchy) -> impl Fn(&str) -> Option<u64> + '_ {
    use std::os::unix::fs::MetadataExt;
    move |cg: &str| std::fs::metadata(fs.root().join(cg)).ok().map(|m| m.ino())
}

/// The tree below `cg`, pre-order, children in creation order: (path, subtree end) pairs.
fn walk(
    fs: &dyn Hierarchy,
    cg: &str,
    order: &dyn Fn(&str) -> Option<u64>,
    flat: &mut Vec<(String, usize)>,
    unordered: &mut bool,
) -> Result<()> {
    let me = flat.len();
    flat.push((cg.to_string(), me + 1));
    let mut kids: Vec<(Option<u64>, String)> = fs
        .children(cg)?
        .into_iter()
        .map(|n| {
            let p = crate::model::path::join(cg, &n);
            (order(&p), p)
        })
        .collect();
    *unordered |= kids.iter().any(|(k, _)| k.is_none());
    kids.sort_by(|a, b| (a.0.unwrap_or(u64::MAX), &a.1).cmp(&(b.0.unwrap_or(u64::MAX), &b.1)));
    for (_, p) in kids {
        match walk(fs, &p, order, flat, unordered) {
            Ok(()) => {}
            // Removed while walking (a pod went away): not part of the tree any more.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    flat[me].1 = flat.len();
    Ok(())
}

/// Read each memcg's limits and tasks; a memcg that cannot be read is skipped with a note.
fn gather(
    fs: &dyn Hierarchy,
    host: &dyn Host,
    m: &Machine,
    v2: bool,
    names: &Names,
    flat: Vec<(String, usize)>,
    notes: &mut Vec<String>,
) -> Vec<Memcg> {
    let mut gone = 0usize;
    let out = flat
        .into_iter()
        .map(|(path, subtree_end)| {
            let limits = match read_limits(fs, &path, v2, m.vm_swappiness) {
                Ok(l) => l,
                Err(e) => {
                    notes.push(format!("{path}: limits unreadable, not predicted: {e}"));
                    None
                }
            };
            let tasks = read_tasks(fs, host, &path, m, &mut gone, notes);
            let oom_group = v2
                && fs
                    .read(&path, "memory.oom.group")
                    .is_ok_and(|s| s.trim() == "1");
            let identity = identity::from_cgroup_path(&path).map(|mut id| {
                names.fill(&mut id);
                id
            });
            Memcg {
                path,
                limits,
                oom_group,
                tasks,
                identity,
                subtree_end,
            }
        })
        .collect();
    if gone > 0 {
        notes.push(format!(
            "{gone} task(s) exited while the tree was read: left out"
        ));
    }
    out
}

/// The memcg's limit, or None when it has none.
fn read_limits(
    fs: &dyn Hierarchy,
    cg: &str,
    v2: bool,
    vm_swappiness: u64,
) -> Result<Option<Limits>> {
    let num = |file: &str| -> Result<Option<u64>> {
        let s = fs.read(cg, file)?;
        let t = s.trim();
        if t == "max" {
            return Ok(None);
        }
        let v = crate::host::parse_u64(&fs.root().join(cg).join(file), file, t)?;
        Ok((v < V1_UNLIMITED_MIN).then_some(v))
    };
    if v2 {
        let Some(limit) = num("memory.max")? else {
            return Ok(None);
        };
        let swap_headroom = if fs.has_file(cg, "memory.swap.max") {
            num("memory.swap.max")?
        } else {
            None
        };
        return Ok(Some(Limits {
            limit,
            swap_headroom,
            swappiness: vm_swappiness,
        }));
    }
    let Some(limit) = num(knob::LIMIT)? else {
        return Ok(None);
    };
    let swap_headroom = if fs.has_file(cg, knob::MEMSW_LIMIT) {
        num(knob::MEMSW_LIMIT)?.map(|memsw| memsw.saturating_sub(limit))
    } else {
        None
    };
    let swappiness = match fs.read(cg, knob::SWAPPINESS) {
        Ok(s) => s.trim().parse().unwrap_or(vm_swappiness),
        Err(_) => vm_swappiness,
    };
    Ok(Some(Limits {
        limit,
        swap_headroom,
        swappiness,
    }))
}

/// The memcg's own tasks in the era's scan order: start time (then pid) approximates the join
/// order of the css_set list.
fn read_tasks(
    fs: &dyn Hierarchy,
    host: &dyn Host,
    cg: &str,
    m: &Machine,
    gone: &mut usize,
    notes: &mut Vec<String>,
) -> Vec<TaskMem> {
    let pids = match crate::host::read_procs(fs, cg) {
        Ok(p) => p,
        Err(e) => {
            if e.errno() != Some(nix::errno::Errno::ENOENT) {
                notes.push(format!("{cg}: cgroup.procs unreadable: {e}"));
            }
            return Vec::new();
        }
    };
    let mut tasks = Vec::new();
    for pid in pids {
        match badness::read_task(host, pid, m.page_kb) {
            Ok(Some(t)) => tasks.push(t),
            Ok(None) => *gone += 1,
            Err(e) => notes.push(format!("pid {pid} in {cg}: unreadable, left out: {e}")),
        }
    }
    tasks.sort_by_key(|t| (t.start_time, t.pid));
    if m.era.task_order == super::era::TaskOrder::NewestFirst {
        tasks.reverse();
    }
    tasks
}

/// One scanned task with its score.
struct Scored<'a> {
    task: &'a TaskMem,
    memcg: &'a Memcg,
    points: Points,
}

/// The memcg's level from its identity and place.
fn level_of(mc: &Memcg, is_root: bool) -> Level {
    match &mc.identity {
        _ if is_root => Level::Kubepods,
        Some(id) if id.container_id.is_some() => Level::Container,
        Some(_) => Level::Pod,
        None => Level::Qos,
    }
}

/// The kernel's choice among `scored` (scan order), leaving out index `skip`: the highest
/// score; on equal scores the first or the last found, by era.
fn select(tie: Tie, scored: &[Scored], skip: Option<usize>) -> Option<usize> {
    let mut chosen: Option<(usize, i64)> = None;
    for (i, s) in scored.iter().enumerate() {
        let Points::Score(p) = s.points else {
            continue;
        };
        if Some(i) == skip {
            continue;
        }
        let take = match chosen {
            None => true,
            Some((_, c)) => match tie {
                Tie::FirstFound => p > c,
                Tie::LastFound => p >= c,
            },
        };
        if take {
            chosen = Some((i, p));
        }
    }
    chosen.map(|(i, _)| i)
}

/// Before 5.1 `oom_kill_process` looks at the chosen task's children (fork order) and kills
/// the highest-scoring killable one instead (`victim_points` starts at 0, so any child with
/// points beats the parent; the first of equals stays): docs/oom-victim.md, "Sacrifice child".
/// Children outside the OOM memcg score 0 there, so only the scanned ones count.
fn sacrifice(scored: &[Scored], chosen: usize) -> usize {
    let mut best = 0i64;
    let parent = scored[chosen].task.pid;
    let mut kids: Vec<usize> = (0..scored.len())
        .filter(|&i| scored[i].task.ppid == parent && i != chosen)
        .collect();
    kids.sort_by_key(|&i| (scored[i].task.start_time, scored[i].task.pid));
    let mut victim = chosen;
    for i in kids {
        if let Points::Score(p) = scored[i].points {
            if p > best {
                best = p;
                victim = i;
            }
        }
    }
    victim
}

fn cand(era: &Era, s: &Scored) -> Cand {
    Cand {
        pid: s.task.pid,
        comm: s.task.comm.clone(),
        points: match s.points {
            Points::Score(p) => p,
            Points::Excluded(_) => i64::MIN,
        },
        oom_score_adj: s.task.oom_score_adj,
        rss_pages: s.task.rss_pages,
        swap_pages: s.task.swap_pages,
        pgtables_pages: s.task.pgtables_pages(era),
        memcg: s.memcg.path.clone(),
        identity: s.memcg.identity.clone(),
    }
}

/// The prediction for memcg `i` of the flat pre-order list, or None when it has no limit.
fn predict_one(m: &Machine, all: &[Memcg], i: usize) -> Option<MemcgPrediction> {
    let mc = &all[i];
    let lim = mc.limits?;
    let page = m.page_kb * 1024;
    let tp = badness::totalpages(
        lim.limit,
        lim.swap_headroom,
        lim.swappiness,
        m.swap_total_bytes,
        page,
    );
    let scored: Vec<Scored> = all[i..mc.subtree_end]
        .iter()
        .flat_map(|c| c.tasks.iter().map(move |t| (c, t)))
        .map(|(c, t)| Scored {
            task: t,
            memcg: c,
            points: badness::badness(&m.era, t, tp),
        })
        .collect();
    let excluded = scored
        .iter()
        .filter_map(|s| match &s.points {
            Points::Excluded(r) => Some(Excluded {
                pid: s.task.pid,
                comm: s.task.comm.clone(),
                reason: r.clone(),
            }),
            Points::Score(_) => None,
        })
        .collect();
    let chosen = select(m.era.tie, &scored, None);
    let runner = chosen.and_then(|c| select(m.era.tie, &scored, Some(c)));
    let killed = chosen.map(|c| {
        if m.era.sacrifice_child {
            sacrifice(&scored, c)
        } else {
            c
        }
    });
    let victim = killed.map(|k| cand(&m.era, &scored[k]));
    let runner_up = runner.map(|r| cand(&m.era, &scored[r]));
    let margin = match (chosen, &runner_up) {
        (Some(c), Some(r)) => Some(cand(&m.era, &scored[c]).points - r.points),
        _ => None,
    };
    let level = level_of(mc, i == 0);
    let warning = match (level, killed) {
        (Level::Pod, Some(k)) => warn(m, &scored, k, tp),
        _ => None,
    };
    Some(MemcgPrediction {
        path: mc.path.clone(),
        level,
        limit_bytes: lim.limit,
        totalpages: tp,
        identity: mc.identity.clone(),
        scan: scored
            .iter()
            .filter(|s| matches!(s.points, Points::Score(_)))
            .map(|s| cand(&m.era, s))
            .collect(),
        excluded,
        victim,
        runner_up,
        margin_points: margin,
        tie: margin == Some(0),
        sacrificed_for: match (chosen, killed) {
            (Some(c), Some(k)) if c != k => Some(scored[c].task.pid),
            _ => None,
        },
        oom_group: killed.and_then(|k| oom_group_of(all, i, scored[k].memcg)),
        warning,
    })
}

/// v2: the highest memcg from the OOM memcg `top` down to the victim's with memory.oom.group
/// set (`mem_cgroup_get_oom_group`): all its tasks die together.
fn oom_group_of(all: &[Memcg], top: usize, victim_memcg: &Memcg) -> Option<String> {
    all[top..all[top].subtree_end]
        .iter()
        .filter(|c| c.oom_group)
        .find(|c| {
            victim_memcg.path == c.path || victim_memcg.path.starts_with(&format!("{}/", c.path))
        })
        .map(|c| c.path.clone())
}

/// Whether a scanned task is its pod's sandbox: the runtime says so, or it is named pause.
fn is_sandbox(s: &Scored) -> bool {
    s.memcg.identity.as_ref().and_then(|id| id.sandbox) == Some(true) || s.task.comm == "pause"
}

/// The pod-level warning when the victim `k` is the sandbox or not the main process.
fn warn(m: &Machine, scored: &[Scored], k: usize, tp: u64) -> Option<Warning> {
    let main = (0..scored.len())
        .filter(|&i| !is_sandbox(&scored[i]) && matches!(scored[i].points, Points::Score(_)))
        .max_by_key(|&i| (scored[i].task.rss_pages, std::cmp::Reverse(i)))?;
    if main == k {
        return None;
    }
    let v = cand(&m.era, &scored[k]);
    let mc = cand(&m.era, &scored[main]);
    let kind = if is_sandbox(&scored[k]) {
        WarnKind::Sandbox
    } else {
        WarnKind::Sidecar
    };
    let who = match kind {
        WarnKind::Sandbox => format!("the pod's sandbox ({}, pid {})", v.comm, v.pid),
        WarnKind::Sidecar if v.memcg == mc.memcg => {
            format!(
                "another process of the main container ({}, pid {})",
                v.comm, v.pid
            )
        }
        WarnKind::Sidecar => format!("a sidecar ({}, pid {})", v.comm, v.pid),
    };
    let why = if v.points == mc.points {
        format!(
            "both score {} points and the {} found wins",
            v.points,
            if m.era.tie == Tie::FirstFound {
                "first"
            } else {
                "last"
            }
        )
    } else {
        format!(
            "it scores {} points (oom_score_adj {}) against {} (oom_score_adj {})",
            v.points, v.oom_score_adj, mc.points, mc.oom_score_adj
        )
    };
    let message = format!(
        "{who} would die before the main process {} (pid {}, rss {}): {why}",
        mc.comm,
        mc.pid,
        mib(mc.rss_pages, m.page_kb),
    );
    Some(Warning {
        kind,
        message,
        changes: changes(m, scored, k, main, tp),
        main: mc,
    })
}

/// "12.3 MiB" from pages.
pub fn mib(pages: u64, page_kb: u64) -> String {
    format!("{:.1} MiB", (pages * page_kb) as f64 / 1024.0)
}

/// What would make `main` the victim instead of `k`: the floor gone (5.9+ rules), or an
/// oom_score_adj of either.
fn changes(m: &Machine, scored: &[Scored], k: usize, main: usize, tp: u64) -> Vec<String> {
    let mut out = Vec::new();
    let main_t = scored[main].task;
    if m.era.floor {
        let modern = era_for("5.9.0", None);
        let rescored = rescore(&modern, scored, tp, None);
        let pick = select(modern.tie, &rescored, None);
        out.push(if pick == Some(main) {
            format!(
                "on >= 5.9 (or 5.4.143+) the floor is gone and {} (rss {}) would be chosen",
                main_t.comm,
                mib(main_t.rss_pages, m.page_kb)
            )
        } else {
            "on >= 5.9 (or 5.4.143+), without the floor, the main process would still not be chosen"
                .to_string()
        });
    }
    let try_adj = |who: usize, adj: i32| -> bool {
        let rescored = rescore(&m.era, scored, tp, Some((who, adj)));
        let c = select(m.era.tie, &rescored, None);
        let c = c.map(|c| {
            if m.era.sacrifice_child {
                sacrifice(&rescored, c)
            } else {
                c
            }
        });
        c == Some(main)
    };
    let vt = scored[k].task;
    let need = |adj: i32| {
        if adj < 0 {
            " (negative values need CAP_SYS_RESOURCE)"
        } else {
            ""
        }
    };
    if let Some(a) = (main_t.oom_score_adj + 1..=1000).find(|&a| try_adj(main, a)) {
        out.push(format!(
            "oom_score_adj of {} {} -> {a}{} would make it the victim",
            main_t.comm,
            main_t.oom_score_adj,
            need(a)
        ));
    }
    if let Some(a) = (-999..vt.oom_score_adj).rev().find(|&a| try_adj(k, a)) {
        out.push(format!(
            "oom_score_adj of {} {} -> {a}{} would make {} the victim",
            vt.comm,
            vt.oom_score_adj,
            need(a),
            main_t.comm
        ));
    } else if vt.oom_score_adj > -999 {
        out.push(format!(
            "no oom_score_adj of {} alone makes {} the victim (-1000 makes it unkillable)",
            vt.comm, main_t.comm
        ));
    }
    out
}

/// The scores again under `era`, with one task's oom_score_adj replaced.
fn rescore<'a>(
    era: &Era,
    scored: &[Scored<'a>],
    tp: u64,
    with: Option<(usize, i32)>,
) -> Vec<Scored<'a>> {
    scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let points = match with {
                Some((w, adj)) if w == i => {
                    let mut t = s.task.clone();
                    t.oom_score_adj = adj;
                    badness::badness(era, &t, tp)
                }
                _ => badness::badness(era, s.task, tp),
            };
            Scored {
                task: s.task,
                memcg: s.memcg,
                points,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fakes::{FakeHost, MemHierarchy};
    use std::collections::BTreeMap;

    const POD: &str = "kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000001";
    const PAUSE: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
    const APP: &str = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
    const SIDE: &str = "b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3";

    /// One process: (pid, comm, container, rss pages, adj, start time, ppid).
    struct P(u32, &'static str, &'static str, u64, i32, u64, u32);

    /// A node on `release` with the pod at 96 MiB (24576 pages, 24 per adj unit) and its
    /// containers created in `created` order (their inode numbers).
    fn node(
        release: &str,
        created: &[&str],
        procs: &[P],
    ) -> (MemHierarchy, FakeHost, BTreeMap<String, u64>) {
        let mut h = MemHierarchy::new();
        h.add("kubepods", &[], false);
        h.add("kubepods/burstable", &[], false);
        h.add(POD, &[], false);
        h.set(POD, knob::LIMIT, &(96u64 << 20).to_string());
        h.set(POD, knob::MEMSW_LIMIT, &(96u64 << 20).to_string());
        let mut order = BTreeMap::new();
        for (n, c) in created.iter().enumerate() {
            let cg = format!("{POD}/{c}");
            let pids: Vec<u32> = procs.iter().filter(|p| p.2 == *c).map(|p| p.0).collect();
            h.add(&cg, &pids, false);
            order.insert(cg, 100 + n as u64);
        }
        let mut host = FakeHost::new(release);
        host.proc
            .insert("self/smaps".into(), "KernelPageSize: 4 kB\n".into());
        for p in procs {
            host.proc.insert(
                format!("{}/status", p.0),
                format!("Name:\t{}\nVmRSS:\t{} kB\nVmPTE:\t48 kB\nVmSwap:\t0 kB\nThreads:\t1\nCapEff:\t0000000000000000\n", p.1, p.3 * 4),
            );
            host.proc.insert(
                format!("{}/stat", p.0),
                format!(
                    "{} ({}) S {} 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0",
                    p.0, p.1, p.6, p.5
                ),
            );
            host.proc
                .insert(format!("{}/oom_score_adj", p.0), format!("{}\n", p.4));
        }
        (h, host, order)
    }

    fn run(n: &(MemHierarchy, FakeHost, BTreeMap<String, u64>)) -> Report {
        let (h, host, order) = n;
        let opts = PredictOptions {
            kubepods: "kubepods".into(),
            pods_log_dir: "/nonexistent/pods".into(),
            containerd_dir: "/nonexistent/containerd".into(),
            v2: false,
        };
        predict(h, host, &|cg: &str| order.get(cg).copied(), &opts).unwrap()
    }

    fn pod(r: &Report) -> &MemcgPrediction {
        r.memcgs
            .iter()
            .find(|m| m.path == POD)
            .expect("pod predicted")
    }

    fn three(pause_adj: i32, app_adj: i32, side_adj: i32) -> Vec<P> {
        vec![
            P(100, "pause", PAUSE, 250, pause_adj, 10, 1),
            P(200, "app", APP, 17_000, app_adj, 20, 1),
            P(300, "side", SIDE, 2_500, side_adj, 30, 1),
        ]
    }

    #[test]
    fn all_999_the_largest_dies_and_nothing_is_warned() {
        let r = run(&node(
            "6.18.44-fc-v1147",
            &[PAUSE, APP, SIDE],
            &three(999, 999, 999),
        ));
        let p = pod(&r);
        assert_eq!(
            (p.level, p.totalpages, p.limit_bytes),
            (Level::Pod, 24576, 96 << 20)
        );
        let v = p.victim.as_ref().unwrap();
        // rss 17000 + 12 page-table pages + 999 * 24.
        assert_eq!((v.pid, v.points), (200, 17_012 + 23_976));
        assert_eq!(p.runner_up.as_ref().unwrap().pid, 300);
        assert_eq!(p.margin_points, Some(17_000 - 2_500));
        assert!(!p.tie && p.warning.is_none());
        assert_eq!(
            p.scan.iter().map(|c| c.pid).collect::<Vec<_>>(),
            vec![100, 200, 300]
        );
        // Only the pod has a limit.
        assert_eq!(r.memcgs.len(), 1);
        assert_eq!(r.era.name, "5.9+");
    }

    #[test]
    fn adj_2_app_loses_to_a_999_sidecar() {
        let r = run(&node("6.18.44", &[PAUSE, APP, SIDE], &three(999, 2, 999)));
        let p = pod(&r);
        assert_eq!(p.victim.as_ref().unwrap().pid, 300);
        let w = p.warning.as_ref().unwrap();
        assert_eq!(w.kind, WarnKind::Sidecar);
        assert_eq!(w.main.pid, 200);
        assert!(
            w.message.contains("a sidecar (side, pid 300)"),
            "{}",
            w.message
        );
        // app (17012 + 24 adj) must beat side's 2512 + 23976 strictly: side is found later.
        let raise = w
            .changes
            .iter()
            .find(|c| c.starts_with("oom_score_adj of app"))
            .unwrap();
        assert!(
            raise.contains("2 -> 395 would make it the victim"),
            "{:?}",
            w.changes
        );
        // Lowering side alone leaves pause (999) ahead of app: not enough.
        assert!(
            w.changes
                .iter()
                .any(|c| c.starts_with("no oom_score_adj of side")),
            "{:?}",
            w.changes
        );
    }

    #[test]
    fn floored_310_kills_the_first_found_sandbox() {
        // The fixtures' guaranteed case: all at -998, every task floors to 1.
        let r = run(&node(
            "3.10.0-1127.el7.x86_64",
            &[PAUSE, APP, SIDE],
            &three(-998, -998, -998),
        ));
        let p = pod(&r);
        assert!(p.scan.iter().all(|c| c.points == 1), "{:?}", p.scan);
        assert_eq!(p.victim.as_ref().unwrap().pid, 100);
        assert!(p.tie);
        let w = p.warning.as_ref().unwrap();
        assert_eq!(w.kind, WarnKind::Sandbox);
        assert!(
            w.message
                .contains("both score 1 points and the first found wins"),
            "{}",
            w.message
        );
        assert!(
            w.changes[0].contains(
                "on >= 5.9 (or 5.4.143+) the floor is gone and app (rss 66.4 MiB) would be chosen"
            ),
            "{:?}",
            w.changes
        );
    }

    #[test]
    fn equal_scores_last_found_wins_in_creation_order() {
        let twins = vec![
            P(100, "pause", PAUSE, 2_500, 999, 10, 1),
            P(200, "app", APP, 2_500, 999, 20, 1),
        ];
        // app's container made first: pause is scanned last and dies.
        let r = run(&node("6.18.44", &[APP, PAUSE], &twins));
        let p = pod(&r);
        assert_eq!(p.victim.as_ref().unwrap().pid, 100);
        assert!(p.tie && p.margin_points == Some(0));
        assert_eq!(p.warning.as_ref().unwrap().kind, WarnKind::Sandbox);
        // Created the other way round, the app is last and dies; the names sort the same.
        let r = run(&node("6.18.44", &[PAUSE, APP], &twins));
        let p = pod(&r);
        assert_eq!(p.victim.as_ref().unwrap().pid, 200);
        assert!(p.tie && p.warning.is_none());
        // 5.2: the first found keeps it.
        let r = run(&node("5.2.21", &[APP, PAUSE], &twins));
        assert_eq!(pod(&r).victim.as_ref().unwrap().pid, 200);
    }

    #[test]
    fn within_a_memcg_join_order_by_start_time() {
        let two = vec![
            P(900, "app", APP, 2_500, 999, 50, 1),
            P(901, "app", APP, 2_500, 999, 40, 1),
        ];
        // 901 started first: on 6.18 (join order) 900 is last and wins the tie.
        let r = run(&node("6.18.44", &[APP], &two));
        assert_eq!(pod(&r).victim.as_ref().unwrap().pid, 900);
        // 3.x scans the newest first (900) and the first found keeps it; 4.19 scans in join
        // order (901 first) and the first found keeps it.
        let r = run(&node("3.10.0-1127.el7.x86_64", &[APP], &two));
        assert_eq!(pod(&r).victim.as_ref().unwrap().pid, 900);
        let r = run(&node("4.19.0", &[APP], &two));
        assert_eq!(pod(&r).victim.as_ref().unwrap().pid, 901);
    }

    #[test]
    fn sacrifice_child_before_51() {
        let procs = vec![
            P(100, "pause", PAUSE, 250, 999, 10, 1),
            P(200, "sh", APP, 300, 999, 20, 1),
            P(201, "java", APP, 20_000, 0, 21, 200),
        ];
        // 4.14: sh (300 + 999 * 24) is chosen; its child java, killable, dies in its place
        // although it scores less.
        let r = run(&node("4.14.200", &[PAUSE, APP], &procs));
        let p = pod(&r);
        assert_eq!(p.victim.as_ref().unwrap().pid, 201);
        assert_eq!(p.sacrificed_for, Some(200));
        // 5.10: sh itself.
        let r = run(&node("5.10.0-30-amd64", &[PAUSE, APP], &procs));
        assert_eq!(pod(&r).victim.as_ref().unwrap().pid, 200);
        assert_eq!(pod(&r).sacrificed_for, None);
    }

    #[test]
    fn unkillable_tasks_are_listed_not_chosen() {
        let r = run(&node("6.18.44", &[PAUSE, APP, SIDE], &three(-1000, 0, 0)));
        let p = pod(&r);
        assert_eq!(
            p.excluded,
            vec![Excluded {
                pid: 100,
                comm: "pause".into(),
                reason: "oom_score_adj -1000".into()
            }]
        );
        assert_eq!(p.victim.as_ref().unwrap().pid, 200);
        assert_eq!(p.scan.len(), 2);
    }

    #[test]
    fn kubepods_and_container_limits_are_predicted_too() {
        let mut n = node("6.18.44", &[PAUSE, APP, SIDE], &three(999, 999, 999));
        n.0.set("kubepods", knob::LIMIT, &(1u64 << 30).to_string());
        let app = format!("{POD}/{APP}");
        n.0.set(&app, knob::LIMIT, &(64u64 << 20).to_string());
        let r = run(&n);
        let levels: Vec<(Level, &str)> = r
            .memcgs
            .iter()
            .map(|m| (m.level, m.path.as_str()))
            .collect();
        assert_eq!(
            levels,
            vec![
                (Level::Kubepods, "kubepods"),
                (Level::Pod, POD),
                (Level::Container, app.as_str())
            ]
        );
        let c = &r.memcgs[2];
        assert_eq!(
            (
                c.totalpages,
                c.victim.as_ref().unwrap().pid,
                c.runner_up.as_ref()
            ),
            (16384, 200, None)
        );
        assert!(c.warning.is_none());
    }

    #[test]
    fn v2_limits_swap_and_oom_group() {
        let mut n = node(
            "6.1.0-25-cloud-amd64",
            &[PAUSE, APP, SIDE],
            &three(999, 999, 999),
        );
        n.0.set(POD, "memory.max", &(96u64 << 20).to_string());
        n.0.set(POD, "memory.swap.max", &(4u64 << 20).to_string());
        n.0.set("kubepods", "memory.max", "max");
        n.0.set("kubepods/burstable", "memory.max", "max");
        for c in [PAUSE, APP, SIDE] {
            let cg = format!("{POD}/{c}");
            n.0.set(&cg, "memory.max", "max");
            n.0.set(&cg, "memory.oom.group", "1");
        }
        n.1.proc.insert("sys/vm/swappiness".into(), "60\n".into());
        let (h, host, order) = &n;
        let opts = PredictOptions {
            kubepods: "kubepods".into(),
            pods_log_dir: "/x".into(),
            containerd_dir: "/y".into(),
            v2: true,
        };
        let r = predict(h, host, &|cg: &str| order.get(cg).copied(), &opts).unwrap();
        let p = pod(&r);
        // 96 MiB; swap.max allows 4 MiB but the fake machine has no swap (badness's tests
        // cover the headroom sum).
        assert_eq!(p.totalpages, 24576);
        assert_eq!(
            p.oom_group.as_deref(),
            Some(format!("{POD}/{APP}").as_str())
        );
        assert_eq!(r.cgroup, "v2");
    }

    #[test]
    fn sandbox_from_the_runtime_record() {
        let mut procs = three(999, 999, 999);
        procs[0].1 = "sleeper"; // not named pause: only containerd says it is the sandbox
        procs[0].3 = 20_000;
        let mut n = node("6.18.44", &[PAUSE, APP, SIDE], &procs);
        let cfg = r#"{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"web","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"0f1e2d3c-aaaa-bbbb-cccc-000000000001"}}"#;
        n.1.file(&format!("/run/ctd/k8s.io/{PAUSE}/config.json"), cfg);
        let (h, host, order) = &n;
        let opts = PredictOptions {
            kubepods: "kubepods".into(),
            pods_log_dir: "/x".into(),
            containerd_dir: "/run/ctd".into(),
            v2: false,
        };
        let r = predict(h, host, &|cg: &str| order.get(cg).copied(), &opts).unwrap();
        let p = pod(&r);
        assert_eq!(p.victim.as_ref().unwrap().pid, 100);
        let w = p.warning.as_ref().unwrap();
        assert_eq!((w.kind, w.main.pid), (WarnKind::Sandbox, 200));
        let id = p.victim.as_ref().unwrap().identity.as_ref().unwrap();
        assert_eq!(
            (id.namespace.as_deref(), id.pod_name.as_deref()),
            (Some("shop"), Some("web"))
        );
    }

    #[test]
    fn tasks_gone_mid_scan_are_counted() {
        let mut n = node("6.18.44", &[PAUSE, APP, SIDE], &three(999, 999, 999));
        n.1.proc.remove("300/status");
        let r = run(&n);
        assert_eq!(pod(&r).scan.len(), 2);
        assert!(
            r.notes.iter().any(|x| x.starts_with("1 task(s) exited")),
            "{:?}",
            r.notes
        );
    }
}
