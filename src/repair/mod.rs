//! The repair, resume and rollback commands: preflight, journal, phases, verify.
//!
//! A repair moves the pods tree leaf-first into the staging cgroup and back (or renames the
//! staging cgroup), so every cgroup is recreated without kmem accounting activated. Preflight
//! refuses (exit 2, nothing changed) on anything that would make that unsafe.

pub mod execute;
pub mod journal;
pub mod plan;
pub mod report;
pub mod verify;

use crate::error::{Error, Result};
use crate::host::Node;
use crate::ids::{self, IdCount};
use crate::model::kernel::KernelInfo;
use crate::model::{Layout, Snapshot};
use crate::repair::execute::{Confirm, Mode, RunOptions, Runner, Stats};
use crate::repair::journal::{Command, Header, Journal, Lock, Progress, WaysOn};
use crate::repair::plan::{Plan, PlanInput, Strategy};
use crate::repair::verify::VerifyReport;
use crate::scan;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What repair, resume and rollback are given.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    pub kubepods: String,
    pub staging: String,
    pub strategy: Strategy,
    pub state_dir: PathBuf,
    /// Memcg ids in use (systemtap count), for 3.10 where the kernel does not show them.
    pub ids_used: Option<u64>,
    /// For tests only: a running kubelet would recreate or remove cgroups during the move.
    pub allow_kubelet_running: bool,
    /// Test hook: stop dead after this many mutations.
    pub crash_after: Option<u64>,
    pub progress: bool,
}

impl RepairOptions {
    pub fn new(kubepods: &str, staging: &str, strategy: Strategy, state_dir: &Path) -> Self {
        RepairOptions {
            kubepods: kubepods.to_string(),
            staging: staging.to_string(),
            strategy,
            state_dir: state_dir.to_path_buf(),
            ids_used: None,
            allow_kubelet_running: false,
            crash_after: None,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// One line of the preflight table.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

/// Everything checked before a repair, with the lock held.
pub struct Prepared {
    pub checks: Vec<Check>,
    pub kernel: KernelInfo,
    pub ids: IdCount,
    pub snapshot: Snapshot,
    pub plan: Plan,
    _lock: Lock,
}

impl Prepared {
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .collect()
    }
}

/// The outcome of a finished repair, resume or rollback.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub command: Command,
    pub strategy: Strategy,
    pub cgroups: usize,
    pub tasks: usize,
    pub stats: Stats,
    pub verify: VerifyReport,
    pub state_dir: PathBuf,
    /// Nothing was left to do.
    pub already_done: bool,
    /// Why nothing was left to do: how the journal had ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

/// Milliseconds since `t`, for the timing lines of `-vv`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn check(
    checks: &mut Vec<Check>,
    name: &'static str,
    status: CheckStatus,
    detail: impl Into<String>,
) {
    checks.push(Check {
        name,
        status,
        detail: detail.into(),
    });
}

/// Preflight: take the lock, scan, plan, and check everything. Changes nothing on the node.
pub fn prepare(fs: &dyn Node, opts: &RepairOptions) -> Result<Prepared> {
    let started = Instant::now();
    if !fs.may_write() {
        return Err(Error::not_root(
            fs.root(),
            "moving tasks and creating cgroups",
            "repair",
        ));
    }
    let lock = journal::lock_node_and_dir(fs.root(), &opts.state_dir)?;
    let mut checks = Vec::new();
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    check(&mut checks, "cgroupfs", CheckStatus::Pass, fs.describe());
    // Not root was refused above.
    check(
        &mut checks,
        "permission",
        CheckStatus::Pass,
        "running as root",
    );
    // The kubelet look-up walks /proc (thousands of processes on a big node) and does not
    // depend on the scan: it runs alongside it. Errors come in the same order as before.
    let t = Instant::now();
    let (snapshot, kubelets) = std::thread::scope(|s| {
        let kubelets = s.spawn(|| fs.find_processes("kubelet"));
        let snapshot = scan::scan(fs, &opts.kubepods);
        (
            snapshot,
            kubelets.join().expect("the kubelet look-up panicked"),
        )
    });
    let snapshot = snapshot?;
    log::debug!(
        "scanned {} cgroups and looked for kubelet in {:.1} ms",
        snapshot.cgroups.len(),
        ms(t)
    );
    match snapshot.layout {
        Layout::Missing => check(&mut checks, "pods cgroup", CheckStatus::Fail, format!("{} not found below {}; check --root and --kubepods", opts.kubepods, fs.root().display())),
        Layout::Systemd => check(&mut checks, "pods cgroup", CheckStatus::Fail, format!("{} is the systemd cgroup driver's; systemd owns those cgroups and would undo a migration: repair by draining and rebooting the node instead", snapshot.kubepods)),
        l => check(&mut checks, "pods cgroup", CheckStatus::Pass, format!("{}: {} cgroups, {} tasks, layout {l}", snapshot.kubepods, snapshot.cgroups.len(), snapshot.task_count())),
    }
    let existing = journal::load(&opts.state_dir)?;
    let unfinished = existing.as_ref().filter(|(_, p)| !p.finished());
    match unfinished {
        Some((h, p)) => check(&mut checks, "journal", CheckStatus::Fail, format!(
            "an unfinished repair of {} (strategy {}, started at {} s, phase {} begun) has its journal in {}: finish it with `cgleak resume` or undo it with `cgleak rollback`",
            h.kubepods, h.strategy, h.started_at, p.resume_phase(), opts.state_dir.display())),
        None => check(&mut checks, "journal", CheckStatus::Pass, format!("no unfinished repair in {}", opts.state_dir.display())),
    }
    let staging_exists = fs.exists(&opts.staging);
    if staging_exists {
        check(&mut checks, "staging cgroup", CheckStatus::Fail, format!("{} already exists and no unfinished cgleak repair owns it: look at what is in it; pass another --staging name", opts.staging));
    } else {
        check(
            &mut checks,
            "staging cgroup",
            CheckStatus::Pass,
            format!("{} is free", opts.staging),
        );
    }
    let kubelets = kubelets?;
    if kubelets.is_empty() {
        check(&mut checks, "kubelet", CheckStatus::Pass, "not running");
    } else if opts.allow_kubelet_running {
        check(
            &mut checks,
            "kubelet",
            CheckStatus::Warn,
            format!("running (pids {kubelets:?}), allowed by --allow-kubelet-running (tests only)"),
        );
    } else {
        check(&mut checks, "kubelet", CheckStatus::Fail, format!(
            "running (pids {kubelets:?}): during the move it would recreate missing pod cgroups, kill containers whose cgroups vanish and rewrite the kubepods limit; stop it first (systemctl stop kubelet)"));
    }
    let ids = ids::count_after_scan(
        fs,
        &kernel,
        opts.ids_used,
        &snapshot.kubepods,
        snapshot.cgroups.len() as u64,
    )?;
    let needed = plan::ids_needed(snapshot.cgroups.len(), opts.strategy);
    match ids.ids_free {
        Some(free) if free >= needed + plan::ID_SAFETY_MARGIN => check(&mut checks, "memcg ids", CheckStatus::Pass, format!("{free} free, repair creates {needed} (+{} margin)", plan::ID_SAFETY_MARGIN)),
        Some(free) => check(&mut checks, "memcg ids", CheckStatus::Fail, format!(
            "{free} free but the repair creates {needed} cgroups (+{} margin): {}free ids first (cgleak reclaim on kernels >= 3.16) or reboot the node",
            plan::ID_SAFETY_MARGIN, if opts.strategy == Strategy::MigrateBack { "try --strategy rename (needs half as many), or " } else { "" })),
        None => check(&mut checks, "memcg ids", CheckStatus::Fail, format!(
            "unknown: this kernel ({}) does not show dying memcgs; count the ids in use with scripts/memcg-ids.stp and pass --ids-used N (or pipe its output to --ids-used -) (the repair creates {needed} cgroups +{} margin)",
            kernel.release, plan::ID_SAFETY_MARGIN)),
    }
    match kernel.move_charge_supported() {
        Some(false) => check(&mut checks, "move charges", CheckStatus::Warn, "this kernel cannot move charges: memory already charged stays with the old cgroups until freed"),
        _ => check(&mut checks, "move charges", CheckStatus::Pass, "move_charge_at_immigrate=3 on destinations"),
    }
    match kernel.kmem_per_cgroup() {
        Some(true) => {
            let active = snapshot.cgroups.iter().filter(|c| c.kmem_active == Some(true)).count();
            check(&mut checks, "kmem accounting", CheckStatus::Pass, format!("active in {active} of {} cgroups; the new cgroups will not have it", snapshot.cgroups.len()))
        }
        _ => check(&mut checks, "kmem accounting", CheckStatus::Warn, format!(
            "kernel {} accounts kmem for every memcg: the migration recreates the cgroups but does not stop dying memcgs from accumulating (see cgleak diagnose: reclaim, or boot with cgroup.memory=nokmem)", kernel.release)),
    }
    let plan = plan::plan(
        &snapshot,
        &PlanInput {
            staging: opts.staging.clone(),
            strategy: opts.strategy,
            move_charge: kernel.move_charge_supported(),
            ids_free: ids.ids_free,
            staging_exists,
        },
    );
    log::debug!(
        "preflight (scan, checks, id count, plan) done in {:.1} ms",
        ms(started)
    );
    Ok(Prepared {
        checks,
        kernel,
        ids,
        snapshot,
        plan,
        _lock: lock,
    })
}

/// Refuse with every failed check.
pub fn refusal(p: &Prepared) -> Option<Error> {
    let f = p.failures();
    if f.is_empty() {
        return None;
    }
    let reason = f
        .iter()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("\n  ");
    Some(Error::refused(
        reason,
        "nothing was changed; fix the above and run cgleak repair again",
    ))
}

/// Run a prepared repair: journal first, then every phase, then verify.
pub fn execute(
    fs: &dyn Node,
    opts: &RepairOptions,
    prepared: Prepared,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    if let Some(e) = refusal(&prepared) {
        return Err(e);
    }
    let header = Header {
        format: journal::JOURNAL_FORMAT,
        cgleak_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: now(),
        boot_id: fs.boot_id()?.trim().to_string(),
        root: fs.root().display().to_string(),
        kubepods: prepared.snapshot.kubepods.clone(),
        staging: opts.staging.clone(),
        strategy: opts.strategy,
        // Moved, not copied: the lock (in `prepared`) stays held until the end of this function.
        snapshot: prepared.snapshot,
        plan: prepared.plan,
    };
    let t = Instant::now();
    let mut j = Journal::create(&opts.state_dir, &header)?;
    log::debug!("journal written in {:.1} ms", ms(t));
    let stats = {
        let mut runner = Runner::new(
            fs,
            &mut j,
            RunOptions {
                command: Command::Repair,
                crash_after: opts.crash_after,
                confirm,
                progress: opts.progress,
            },
        );
        runner.run(&header.plan.phases, 0, Mode::Fresh)?;
        runner.stats
    };
    j.mark("complete")?;
    log::debug!("plan executed in {:.1} ms", stats.seconds * 1e3);
    let t = Instant::now();
    let verify = verify::verify(fs, &header.snapshot, &opts.staging, true)?;
    log::debug!("verified in {:.1} ms", ms(t));
    Ok(Outcome {
        command: Command::Repair,
        strategy: opts.strategy,
        cgroups: header.snapshot.cgroups.len(),
        tasks: header.snapshot.task_count(),
        stats,
        verify,
        state_dir: opts.state_dir.clone(),
        already_done: false,
        ended: None,
    })
}

/// Whether `a` and `b` name one directory (`/x/` and `/x`, a symlink and its target).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Open the journal for resume or rollback, refusing when it cannot be trusted. What the
/// journal is for comes first (its node, then its boot, then its pods tree): a journal of
/// another node is that node's only record of an unfinished migration, never to be removed.
pub fn open_journal(
    fs: &dyn Node,
    state_dir: &Path,
    command: Command,
) -> Result<(Lock, Header, Progress)> {
    let lock = journal::lock_node_and_dir(fs.root(), state_dir)?;
    let (header, progress) = journal::load(state_dir)?.ok_or_else(|| {
        Error::refused(
            format!("no repair journal in {}", state_dir.display()),
            format!(
                "there is nothing to {command}; pass --state-dir if the repair used another one"
            ),
        )
    })?;
    let ways_on = WaysOn::of(&header, state_dir);
    if !same_dir(fs.root(), Path::new(&header.root)) {
        return Err(Error::refused(
            format!(
                "the journal in {} is for the node at --root {}, not --root {}",
                state_dir.display(),
                header.root,
                fs.root().display()
            ),
            format!(
                "keep the journal: it is that node's record of the repair; run {}",
                ways_on.command(command)
            ),
        ));
    }
    let boot = fs.boot_id()?.trim().to_string();
    if boot != header.boot_id {
        return Err(Error::refused(
            format!("the node at {} rebooted since the repair started (boot_id {} then, {boot} now): the journal describes cgroups and tasks that no longer exist", header.root, header.boot_id),
            format!("nothing to {command}: after a reboot kubelet recreates the tree; move the journal aside, keeping a copy (mv {0} {0}.before-reboot), and check the node with cgleak diagnose --root {1}", state_dir.display(), header.root),
        ));
    }
    if !progress.finished() && !fs.exists(&header.kubepods) && !fs.exists(&header.staging) {
        // A repair keeps the pods tree or the staging tree at every instant (rename included).
        return Err(Error::refused(
            format!(
                "the journal in {} is for the pods cgroup {} (staging {}), and neither exists below {}",
                state_dir.display(),
                header.kubepods,
                header.staging,
                fs.root().display()
            ),
            "keep the journal and look at the node: both trees were deleted by something other than cgleak; nothing was changed",
        ));
    }
    Ok((lock, header, progress))
}

/// What resume and rollback have in common: run `phases[from..]` in reconcile mode between two
/// journal marks (unless the journal says it ended already), then verify against the snapshot.
struct Journaled<'h> {
    command: Command,
    header: &'h Header,
    phases: &'h [crate::repair::plan::Phase],
    from: usize,
    begin_mark: &'static str,
    end_mark: &'static str,
    /// How the journal ended, when it did: nothing is run.
    ended: Option<Ended>,
    check_kmem: bool,
}

/// How a journal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ended {
    /// The repair finished (`complete`).
    Completed,
    /// A rollback finished (`rolled-back`).
    RolledBack,
}

fn run_journaled(
    fs: &dyn Node,
    state_dir: &Path,
    w: Journaled<'_>,
    crash_after: Option<u64>,
    progress_bar: bool,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    let mut stats = Stats::default();
    if w.ended.is_none() {
        let mut j = Journal::open(state_dir, WaysOn::of(w.header, state_dir))?;
        j.mark(w.begin_mark)?;
        {
            let opts = RunOptions {
                command: w.command,
                crash_after,
                confirm,
                progress: progress_bar,
            };
            let mut runner = Runner::new(fs, &mut j, opts);
            runner.run(w.phases, w.from, Mode::Reconcile)?;
            stats = runner.stats;
        }
        j.mark(w.end_mark)?;
    }
    let h = w.header;
    let verify = verify::verify(fs, &h.snapshot, &h.staging, w.check_kmem)?;
    Ok(Outcome {
        command: w.command,
        strategy: h.strategy,
        cgroups: h.snapshot.cgroups.len(),
        tasks: h.snapshot.task_count(),
        stats,
        verify,
        state_dir: state_dir.to_path_buf(),
        already_done: w.ended.is_some(),
        ended: w.ended,
    })
}

/// Finish an interrupted repair from whatever state the live tree is in: the phase it was in
/// is run again in reconcile mode (every step is safe to repeat), then the rest.
pub fn resume(
    fs: &dyn Node,
    state_dir: &Path,
    crash_after: Option<u64>,
    progress_bar: bool,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    let (_lock, header, progress) = open_journal(fs, state_dir, Command::Resume)?;
    if progress.rollback_started {
        let ways_on = WaysOn::of(&header, state_dir);
        return Err(Error::refused(
            "a rollback of this repair was started",
            format!(
                "finish it with {}; then run cgleak repair again if you still want the repair",
                ways_on.command(Command::Rollback)
            ),
        ));
    }
    let w = Journaled {
        command: Command::Resume,
        header: &header,
        phases: &header.plan.phases,
        from: progress.resume_phase(),
        begin_mark: "resume",
        end_mark: "complete",
        ended: progress.complete.then_some(Ended::Completed),
        check_kmem: true,
    };
    run_journaled(fs, state_dir, w, crash_after, progress_bar, confirm)
}

/// Return the tree to its original layout under the pods cgroup with the original settings,
/// from any interruption point, and remove the staging tree. A repair that completed has
/// nothing to undo: its tree is the repaired one, and it is left so.
pub fn rollback(
    fs: &dyn Node,
    state_dir: &Path,
    crash_after: Option<u64>,
    progress_bar: bool,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    let (_lock, header, progress) = open_journal(fs, state_dir, Command::Rollback)?;
    // Whatever the interruption point, the way back is the same: make sure every original
    // cgroup exists with its settings, move everything from staging back leaf-first, remove
    // staging, restore move_charge_at_immigrate. Reconcile mode skips what is done.
    let phases = plan::back_phases(&header.snapshot, &header.staging, header.plan.move_charge);
    let ended = if progress.rolled_back {
        Some(Ended::RolledBack)
    } else if progress.complete {
        Some(Ended::Completed)
    } else {
        None
    };
    let w = Journaled {
        command: Command::Rollback,
        header: &header,
        phases: &phases,
        from: 0,
        begin_mark: "rollback",
        end_mark: "rolled-back",
        ended,
        // The original cgroups that were never moved keep their kmem accounting; a completed
        // repair's tree is checked as the repair checked it.
        check_kmem: ended == Some(Ended::Completed),
    };
    run_journaled(fs, state_dir, w, crash_after, progress_bar, confirm)
}
