//! The repair, resume and rollback commands: preflight, journal, phases, verify.
//!
//! A repair moves the pods tree leaf-first into the staging cgroup and back (or renames the
//! staging cgroup), so every cgroup is recreated without kmem accounting activated. Preflight
//! refuses (exit 2, nothing changed) on anything that would make that unsafe.

pub mod execute;
pub mod journal;
pub mod leftover;
pub mod plan;
pub mod refusal;
pub mod report;
pub mod verify;

use crate::error::{Error, Result};
use crate::host::Node;
use crate::ids::{self, IdCount};
use crate::model::invocation::Command;
use crate::model::kernel::KernelInfo;
use crate::model::Snapshot;
pub use crate::repair::execute::Knobs;
use crate::repair::execute::{Confirm, Mode, RunOptions, Runner, Stats};
use crate::repair::journal::{Header, Journal, Lock, LockFailure, Progress};
use crate::repair::plan::{Plan, PlanInput, Strategy};
use crate::repair::refusal::{JournalState, Kubelet, NodeFacts, Refusal, RunFacts, StateDir};
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
    /// `plan --assume-kubelet-stopped`: the dry run before the operator stops kubelet.
    pub assume_kubelet_stopped: bool,
    /// The test hook, the progress bar and the pace.
    pub knobs: Knobs,
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
            assume_kubelet_stopped: false,
            knobs: Knobs::default(),
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

/// Everything checked before a repair, with the lock held (when it could be taken).
pub struct Prepared {
    pub checks: Vec<Check>,
    /// Why the repair must not run; empty when it may.
    pub refusals: Vec<Refusal>,
    pub ids: IdCount,
    pub snapshot: Snapshot,
    pub plan: Plan,
    /// The container runtimes found at preflight.
    pub runtimes: Option<crate::runtime::Runtimes>,
    _lock: Option<Lock>,
}

impl Prepared {
    /// The preflight's runtime line (what the repair will cost them), None when nothing.
    pub fn runtime_cost(&self) -> Option<String> {
        self.runtimes
            .as_ref()
            .and_then(crate::runtime::cost::preflight_line)
    }
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
    /// The runtimes' containers this run cost their OOM watcher, and the remedy.
    pub runtime: crate::runtime::outcome::RuntimeOutcome,
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

/// What plan and repair both learn about the node before deciding anything.
pub struct Gathered {
    pub snapshot: Snapshot,
    pub kernel: KernelInfo,
    pub ids: IdCount,
    pub node: NodeFacts,
    pub run: RunFacts,
    /// The container runtimes found (None: the process table could not be read, see
    /// `runtime_error`).
    pub runtimes: Option<crate::runtime::Runtimes>,
    pub runtime_error: Option<String>,
}

impl Gathered {
    /// Every refusal, and the plan with them as its blockers.
    fn refusals_and_plan(&self, opts: &RepairOptions) -> (Vec<Refusal>, Plan) {
        let refusals = refusal::for_repair(&self.node, &self.run);
        let mut p = plan::plan(
            &self.snapshot,
            &PlanInput {
                staging: opts.staging.clone(),
                strategy: opts.strategy,
                move_charge: self.kernel.move_charge_supported(),
                ids_free: self.ids.ids_free,
            },
        );
        p.blockers = refusals.iter().map(Refusal::blocker).collect();
        (refusals, p)
    }
}

/// The journal an earlier run left in `dir`, as a fact.
fn journal_state(dir: &Path) -> JournalState {
    match journal::load(dir) {
        Ok(None) => JournalState::Absent,
        Ok(Some((_, p))) if p.finished() => JournalState::Absent,
        Ok(Some((h, p))) => JournalState::Unfinished {
            kubepods: h.kubepods,
            staging: h.staging,
            strategy: h.strategy,
            started_at: h.started_at,
            phase: p.resume_phase(),
        },
        Err(e) => JournalState::Unreadable { why: e.to_string() },
    }
}

fn kubelet_fact(pids: Vec<u32>, opts: &RepairOptions) -> Kubelet {
    if pids.is_empty() {
        Kubelet::NotRunning
    } else if opts.assume_kubelet_stopped {
        Kubelet::AssumedStopped(pids)
    } else if opts.allow_kubelet_running {
        Kubelet::Allowed(pids)
    } else {
        Kubelet::Running(pids)
    }
}

/// Scan, look for kubelet, count ids, look at the staging name and the journal. Changes
/// nothing; `state` is what the caller found of the state directory.
pub fn gather(fs: &dyn Node, opts: &RepairOptions, state: StateDir) -> Result<Gathered> {
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    // The kubelet look-up and the runtime detection's process table walk /proc (thousands of
    // processes on a big node) and do not depend on the scan: they run alongside it. Errors
    // come in the same order as before.
    let t = Instant::now();
    let (snapshot, (kubelets, host_table)) = std::thread::scope(|s| {
        let procs = s.spawn(|| {
            let kubelets = fs.find_processes("kubelet");
            (kubelets, crate::runtime::read_host(fs))
        });
        let snapshot = scan::scan(fs, &opts.kubepods);
        (
            snapshot,
            procs.join().expect("the kubelet look-up panicked"),
        )
    });
    let snapshot = snapshot?;
    log::debug!(
        "scanned {} cgroups and looked for kubelet in {:.1} ms",
        snapshot.cgroups.len(),
        ms(t)
    );
    let journal = match state {
        StateDir::Unusable { .. } => JournalState::Absent,
        _ => journal_state(&opts.state_dir),
    };
    let kubelet = kubelet_fact(kubelets?, opts);
    let cgroups = snapshot.cgroups.len();
    let ids = ids::count_after_scan(
        fs,
        &kernel,
        opts.ids_used,
        &snapshot.kubepods,
        cgroups as u64,
    )?;
    let staging_state = leftover::staging_state(
        fs,
        &kernel.release,
        &snapshot,
        &opts.staging,
        kernel.move_charge_supported(),
    )?;
    let node = NodeFacts {
        root: fs.root().display().to_string(),
        kubepods: opts.kubepods.clone(),
        layout: snapshot.layout,
        staging: opts.staging.clone(),
        staging_state,
        strategy: opts.strategy,
        cgroups,
        ids_free: ids.ids_free,
        release: kernel.release.clone(),
    };
    let run = RunFacts {
        may_write: fs.may_write(),
        state_dir: opts.state_dir.clone(),
        state,
        journal,
        kubelet,
    };
    let cgroups_served = crate::runtime::cgroups_of(&snapshot);
    let (runtimes, runtime_error) = match host_table {
        Ok((table, status)) => (
            Some(crate::runtime::detect_from(
                &table,
                status.as_deref(),
                &cgroups_served,
            )),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Gathered {
        snapshot,
        kernel,
        ids,
        node,
        run,
        runtimes,
        runtime_error,
    })
}

/// Take the node's lock and the state directory's, as a fact: held by another cgleak, or a
/// directory that cannot be made or locked, is a refusal, not an error.
fn take_lock(root: &Path, dir: &Path) -> Result<(StateDir, Option<Lock>)> {
    match journal::try_lock_node_and_dir(root, dir) {
        Ok(l) => Ok((StateDir::Usable, Some(l))),
        Err(LockFailure::Held(holder)) => Ok((StateDir::LockHeld { holder }, None)),
        Err(LockFailure::Unusable(e)) => Ok((StateDir::Unusable { why: e.to_string() }, None)),
        Err(LockFailure::Failed(e)) => Err(e),
    }
}

/// The state directory and the node's lock as `plan` sees them without making or locking
/// anything: what [`take_lock`] would find.
fn probe_state_dir(root: &Path, dir: &Path) -> StateDir {
    use nix::fcntl::{Flock, FlockArg};
    if let Some(holder) = journal::node_lock_held(root) {
        return StateDir::LockHeld { holder };
    }
    let unusable = |why: String| StateDir::Unusable { why };
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return StateDir::Usable,
        Err(e) => return unusable(e.to_string()),
        Ok(m) if !m.is_dir() => return unusable("it is a file, not a directory".into()),
        Ok(_) => {}
    }
    if let Err(e) = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) {
        return unusable(std::io::Error::from(e).to_string());
    }
    let lock = dir.join(journal::LOCK_FILE);
    match std::fs::File::open(&lock) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateDir::Usable,
        Err(e) => unusable(format!("open {}: {e}", lock.display())),
        // Taken and at once let go: nothing of another cgleak's is disturbed.
        Ok(f) => match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(_) => StateDir::Usable,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => StateDir::LockHeld {
                holder: format!("another cgleak holds the lock {}", lock.display()),
            },
            Err((_, e)) => unusable(std::io::Error::from(e).to_string()),
        },
    }
}

/// The dry run: what [`prepare`] would find, without taking the lock or making the state
/// directory. The plan's blockers are the refusals a repair with these options would give.
pub fn dry_run(fs: &dyn Node, opts: &RepairOptions) -> Result<(Gathered, Plan)> {
    let g = gather(fs, opts, probe_state_dir(fs.root(), &opts.state_dir))?;
    let (_, p) = g.refusals_and_plan(opts);
    Ok((g, p))
}

/// Preflight: take the lock, gather the facts, plan, and derive the refusals and the
/// preflight table from them. Changes nothing on the node.
pub fn prepare(fs: &dyn Node, opts: &RepairOptions) -> Result<Prepared> {
    let started = Instant::now();
    // Not root: make no state directory that could not be used anyway.
    let (state, lock) = if !fs.may_write() {
        (StateDir::NotChecked, None)
    } else {
        // The probe says plainly what is wrong with a file or a read-only directory in the
        // way; the lock is taken only where it can be.
        match probe_state_dir(fs.root(), &opts.state_dir) {
            unusable @ StateDir::Unusable { .. } => (unusable, None),
            _ => take_lock(fs.root(), &opts.state_dir)?,
        }
    };
    let g = gather(fs, opts, state)?;
    let (refusals, plan) = g.refusals_and_plan(opts);
    let checks = preflight_checks(&fs.describe(), &g, &refusals);
    log::debug!(
        "preflight (scan, checks, id count, plan) done in {:.1} ms",
        ms(started)
    );
    Ok(Prepared {
        checks,
        refusals,
        ids: g.ids,
        snapshot: g.snapshot,
        plan,
        runtimes: g.runtimes,
        _lock: lock,
    })
}

/// The preflight table: one line per thing checked, failed by the refusals of that line
/// ([`Refusal::line`]), passed or warned from the same facts otherwise.
fn preflight_checks(describe: &str, g: &Gathered, refusals: &[Refusal]) -> Vec<Check> {
    use refusal::line;
    let (n, r) = (&g.node, &g.run);
    let snap = &g.snapshot;
    let needed = plan::ids_needed(n.cgroups, n.strategy);
    let mut checks = vec![Check {
        name: "cgroupfs",
        status: CheckStatus::Pass,
        detail: describe.to_string(),
    }];
    let passes: [(&'static str, CheckStatus, String); 6] = [
        (
            line::PERMISSION,
            CheckStatus::Pass,
            "running as root".into(),
        ),
        state_line(r),
        (
            line::PODS,
            CheckStatus::Pass,
            format!(
                "{}: {} cgroups, {} tasks, layout {}",
                snap.kubepods,
                n.cgroups,
                snap.task_count(),
                snap.layout
            ),
        ),
        (
            line::JOURNAL,
            CheckStatus::Pass,
            format!("no unfinished repair in {}", r.state_dir.display()),
        ),
        (
            line::STAGING,
            CheckStatus::Pass,
            format!("{} is free", n.staging),
        ),
        kubelet_line(&r.kubelet),
    ];
    for (name, status, detail) in passes {
        checks.push(line_of(name, status, detail, refusals));
    }
    let ids = format!(
        "{} free, repair creates {needed} (+{} margin)",
        n.ids_free.unwrap_or(0),
        plan::ID_SAFETY_MARGIN
    );
    checks.push(line_of(line::IDS, CheckStatus::Pass, ids, refusals));
    checks.push(match g.kernel.move_charge_supported() {
        Some(false) => Check { name: "move charges", status: CheckStatus::Warn, detail: "this kernel cannot move charges: memory already charged stays with the old cgroups until freed".into() },
        _ => Check { name: "move charges", status: CheckStatus::Pass, detail: "move_charge_at_immigrate=3 on destinations".into() },
    });
    checks.push(match g.kernel.kmem_per_cgroup() {
        Some(true) => {
            let active = snap.cgroups.iter().filter(|c| c.kmem_active == Some(true)).count();
            Check { name: "kmem accounting", status: CheckStatus::Pass, detail: format!("active in {active} of {} cgroups; the new cgroups will not have it", n.cgroups) }
        }
        _ => Check { name: "kmem accounting", status: CheckStatus::Warn, detail: format!(
            "kernel {} accounts kmem for every memcg: the migration recreates the cgroups but does not stop dying memcgs from accumulating (see cgleak diagnose: reclaim, or boot with cgroup.memory=nokmem)", n.release) },
    });
    checks.extend(runtime_check(g));
    checks
}

/// The runtimes line: what the repair will cost the containers of the runtimes found; none on a
/// node without a runtime (docs/runtimes.md).
fn runtime_check(g: &Gathered) -> Option<Check> {
    if let Some(e) = &g.runtime_error {
        return Some(Check {
            name: "runtimes",
            status: CheckStatus::Warn,
            detail: format!("the process table could not be read ({e}): what the repair costs the container runtime is not known"),
        });
    }
    let line = crate::runtime::cost::preflight_line(g.runtimes.as_ref()?)?;
    Some(Check {
        name: "runtimes",
        status: CheckStatus::Warn,
        detail: line,
    })
}

fn state_line(r: &RunFacts) -> (&'static str, CheckStatus, String) {
    let dir = r.state_dir.display();
    match r.state {
        StateDir::NotChecked => (
            refusal::line::STATE_DIR,
            CheckStatus::Warn,
            format!("{dir} not looked at (not root)"),
        ),
        _ => (
            refusal::line::STATE_DIR,
            CheckStatus::Pass,
            format!("{dir} locked while cgleak works"),
        ),
    }
}

fn kubelet_line(k: &Kubelet) -> (&'static str, CheckStatus, String) {
    match k {
        Kubelet::NotRunning | Kubelet::Running(_) => (
            refusal::line::KUBELET,
            CheckStatus::Pass,
            "not running".into(),
        ),
        Kubelet::Allowed(pids) => (
            refusal::line::KUBELET,
            CheckStatus::Warn,
            format!("running (pids {pids:?}), allowed by --allow-kubelet-running (tests only)"),
        ),
        Kubelet::AssumedStopped(pids) => (
            refusal::line::KUBELET,
            CheckStatus::Warn,
            format!("running (pids {pids:?}): stop it before the repair"),
        ),
    }
}

/// The line `name`: failed with its refusals' sentences and hints, else `status` and `detail`.
fn line_of(name: &'static str, status: CheckStatus, detail: String, refusals: &[Refusal]) -> Check {
    let failed: Vec<String> = refusals
        .iter()
        .filter(|x| x.line() == name)
        .map(|x| format!("{x}: {}", x.hint()))
        .collect();
    if failed.is_empty() {
        Check {
            name,
            status,
            detail,
        }
    } else {
        Check {
            name,
            status: CheckStatus::Fail,
            detail: failed.join("; "),
        }
    }
}

/// Refuse with every reason found by the preflight.
pub fn refusal(p: &Prepared) -> Option<Error> {
    if p.refusals.is_empty() {
        return None;
    }
    Some(refusal::to_error(&p.refusals, "repair"))
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
    record_affected(fs, &opts.state_dir, prepared.runtimes.as_ref())?;
    let t = Instant::now();
    let mut j = Journal::create(&opts.state_dir, &header)?;
    log::debug!("journal written in {:.1} ms", ms(t));
    let stats = {
        let mut runner = Runner::new(
            fs,
            &mut j,
            RunOptions {
                command: Command::Repair,
                knobs: opts.knobs,
                confirm,
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
        runtime: crate::runtime::outcome::from_state_dir(fs.root(), &opts.state_dir),
    })
}

/// Before the first change: record the containers whose watchers the repair will cost (for
/// `cgleak watchers` and a resume's report), or remove the record of an earlier repair.
fn record_affected(
    fs: &dyn Node,
    dir: &Path,
    runtimes: Option<&crate::runtime::Runtimes>,
) -> Result<()> {
    use crate::runtime::record;
    match runtimes.filter(|r| !r.served.is_empty()) {
        Some(r) => {
            let rec = record::record_of(r, &fs.processes()?, now());
            record::write(dir, &rec).map(|_| ())
        }
        None => match std::fs::remove_file(dir.join(record::AFFECTED_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", dir.join(record::AFFECTED_FILE), e))
            }
            _ => Ok(()),
        },
    }
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
    let refuse = |r: Refusal| refusal::to_error(&[r], command.as_str());
    let (header, progress) = journal::load(state_dir)?.ok_or_else(|| {
        refuse(Refusal::NoJournal {
            state_dir: state_dir.to_path_buf(),
        })
    })?;
    if let Some(r) = journal_refusal(fs, state_dir, command, &header, &progress)? {
        return Err(refuse(r));
    }
    Ok((lock, header, progress))
}

/// Why the journal in `state_dir` cannot be resumed or rolled back on this node, checked in the
/// order that keeps a journal from being called meaningless when it is another node's: the
/// node first, then the boot, then its trees.
fn journal_refusal(
    fs: &dyn Node,
    state_dir: &Path,
    command: Command,
    header: &Header,
    progress: &Progress,
) -> Result<Option<Refusal>> {
    let root = fs.root().display().to_string();
    if !same_dir(fs.root(), Path::new(&header.root)) {
        return Ok(Some(Refusal::JournalOtherNode {
            state_dir: state_dir.to_path_buf(),
            journal_root: header.root.clone(),
            root,
            way_on: header.ways_on(state_dir).command(command),
        }));
    }
    let boot = fs.boot_id()?.trim().to_string();
    if boot != header.boot_id {
        return Ok(Some(Refusal::AfterReboot {
            state_dir: state_dir.to_path_buf(),
            root: header.root.clone(),
            then: header.boot_id.clone(),
            now: boot,
        }));
    }
    // A repair keeps the pods tree or the staging tree at every instant (rename included).
    if !progress.finished() && !fs.exists(&header.kubepods) && !fs.exists(&header.staging) {
        return Ok(Some(Refusal::JournalTreesGone {
            state_dir: state_dir.to_path_buf(),
            kubepods: header.kubepods.clone(),
            staging: header.staging.clone(),
            root,
        }));
    }
    Ok(None)
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
    knobs: Knobs,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    let mut stats = Stats::default();
    if w.ended.is_none() {
        let mut j = Journal::open(state_dir, w.header.ways_on(state_dir))?;
        j.mark(w.begin_mark)?;
        {
            let opts = RunOptions {
                command: w.command,
                knobs,
                confirm,
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
        runtime: crate::runtime::outcome::from_state_dir(fs.root(), state_dir),
    })
}

/// Finish an interrupted repair from whatever state the live tree is in: the phase it was in
/// is run again in reconcile mode (every step is safe to repeat), then the rest.
pub fn resume(
    fs: &dyn Node,
    state_dir: &Path,
    knobs: Knobs,
    confirm: Option<&mut Confirm>,
) -> Result<Outcome> {
    let (_lock, header, progress) = open_journal(fs, state_dir, Command::Resume)?;
    if progress.rollback_started {
        let r = Refusal::RollbackStarted {
            ways_on: header.ways_on(state_dir),
        };
        return Err(refusal::to_error(&[r], Command::Resume.as_str()));
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
    run_journaled(fs, state_dir, w, knobs, confirm)
}

/// Return the tree to its original layout under the pods cgroup with the original settings,
/// from any interruption point, and remove the staging tree. A repair that completed has
/// nothing to undo: its tree is the repaired one, and it is left so.
pub fn rollback(
    fs: &dyn Node,
    state_dir: &Path,
    knobs: Knobs,
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
    run_journaled(fs, state_dir, w, knobs, confirm)
}
