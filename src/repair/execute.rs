//! Running plan phases against a cgroupfs, journaled.
//!
//! Two modes. `Fresh` (a new repair) does each step blindly, with the fewest system calls: a
//! cgroup's tasks are read once (what to move must be read, not taken from the snapshot, whose
//! pids may have been reused) and not again until empty, because the rmdir that follows is the
//! kernel's own check that none is left (EBUSY; on 3.10 force_empty is one too), and only then
//! is it drained until empty.
//! `Reconcile` (resume, rollback) first looks at the live tree and skips what is already done,
//! so every step is safe to repeat after an interruption at any instruction: a cgroup that
//! exists, a setting already equal, a task already moved or gone, a cgroup already removed.
//!
//! Rules relied on (docs/kernel-facts.md, "Moving tasks"): cgroup.procs takes one pid per write and moves the whole
//! thread group, ESRCH means the process exited; `tasks` moves one thread; rmdir is EBUSY while
//! tasks or children remain; a non-zero move_charge_at_immigrate is EINVAL from 6.13 on.

use crate::error::{Error, FsOp, Result, StopCause, Stopped, SysError};
use crate::host::{self, knob, Node};
use crate::model::invocation::Command;
use crate::model::normalize_limit;
use crate::repair::journal::Journal;
use crate::repair::plan::{Phase, PhaseName, Step};
use nix::errno::Errno;
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Rounds of re-reading cgroup.procs while moving a cgroup's tasks: children forked during the
/// move land in the old cgroup and show up in the next read. A cgroup that still has tasks
/// after this many rounds has a fork storm the move cannot outrun.
pub const DRAIN_ROUNDS: u32 = 200;

/// Retries of an rmdir that fails with EBUSY (a task raced in), each after moving tasks again.
pub const RMDIR_RETRIES: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fresh,
    Reconcile,
}

/// Pids that more than one MoveTasks step of a phase lists: thread groups split across
/// cgroups (cgroup v1's cgroup.procs lists a group in every cgroup holding one of its threads).
fn split_groups(phase: &Phase) -> HashSet<u32> {
    let mut seen = HashSet::new();
    let mut split = HashSet::new();
    for s in &phase.steps {
        if let Step::MoveTasks { pids, .. } = s {
            for &p in pids {
                if !seen.insert(p) {
                    split.insert(p);
                }
            }
        }
    }
    split
}

/// Asked before each phase in guided mode: (phase index, phase, total phases) -> go on?
pub type Confirm = dyn FnMut(usize, &Phase, usize) -> bool;

/// The pause after each task move and rmdir when nothing else is asked: the shortest pace
/// that kept the node's forks as fast as when idle in the stall benchmark (docs/kernel-facts.md,
/// "Pacing").
pub const DEFAULT_PACE: std::time::Duration = std::time::Duration::from_micros(100);

/// How a run goes, apart from what it changes: the same for repair, resume and rollback.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Test hook: stop dead (no journal flush, no cleanup) before the mutation with this index,
    /// as a SIGKILL would; the stop's cause is [`StopCause::Crashed`].
    pub crash_after: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// The pause after each step that took the kernel's threadgroup lock (a task move) or
    /// queued its cleanup of a memcg (an rmdir); zero for none.
    pub pace: std::time::Duration,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            crash_after: None,
            progress: false,
            pace: DEFAULT_PACE,
        }
    }
}

/// Options of a run.
pub struct RunOptions<'c> {
    pub command: Command,
    pub knobs: Knobs,
    pub confirm: Option<&'c mut Confirm>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cgroups_created: usize,
    pub cgroups_removed: usize,
    pub settings_written: usize,
    pub tasks_moved: usize,
    pub threads_moved: usize,
    pub tasks_exited: usize,
    /// The kernel refused move_charge_at_immigrate (>= 6.13): charges stayed behind.
    pub move_charge_unsupported: bool,
    /// force_empty steps left out because the cgroup had no page cache to reclaim.
    pub force_empty_skipped: usize,
    /// force_empty steps left out because the cgroup keeps its tasks' memory (a kernel that
    /// cannot move charges): it stays until they free it, whatever its page cache does.
    pub force_empty_pinned: usize,
    /// force_empty writes the kernel had not finished within [`FORCE_EMPTY_BUDGET`].
    pub force_empty_cut: usize,
    pub mutations: u64,
    /// The wait for the runtimes' watchers before the original paths came back (None: no
    /// runtime, or not reached).
    pub runtime_settle: Option<crate::runtime::settle::Settled>,
    pub seconds: f64,
    pub phase_seconds: Vec<(String, f64)>,
    /// When each phase ran, on CLOCK_MONOTONIC (the clock of the kernel log's timestamps and
    /// of most latency tools), so what the node saw meanwhile can be lined up with the phases.
    pub phase_clock: Vec<PhaseClock>,
    /// The slowest single task move: each write to cgroup.procs or tasks holds the kernel's
    /// threadgroup lock, which every fork, exec and exit on the node waits for meanwhile.
    pub longest_move: Option<LongestMove>,
    /// The pauses of the pace (`--pace`): how many, and the time they took in all.
    pub pauses: usize,
    pub pause_seconds: f64,
    /// The times cgleak gave the core back during the whole command (the scans, the walks of
    /// /proc, the phases' steps; `host::share`): each one let the tasks woken on that core run
    /// ahead of cgleak's next slice of work. A count of the whole process (`share::yields`),
    /// so the command layer fills it in when the command ends; 0 until then.
    pub yields: u64,
}

/// A phase's start and end on CLOCK_MONOTONIC, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseClock {
    pub name: String,
    pub start: f64,
    pub end: f64,
}

/// One write that moved a task, and how long the kernel took for it.
#[derive(Debug, Clone, Serialize)]
pub struct LongestMove {
    pub seconds: f64,
    pub pid: u32,
    pub to: String,
}

/// Now on CLOCK_MONOTONIC, in seconds (0 if the clock cannot be read, which Linux never does).
pub fn monotonic_now() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

/// How long the kernel may spend in one force_empty. Reclaiming page cache is quick (the lab's
/// 20 MiB containers took well under this); what takes long is the kernel retrying on kernel
/// memory it cannot reclaim, 100 ms a retry. Cut there, the rest stays charged to the deleted
/// cgroup: from 4.8 that holds no id, and 3.10 moves it to the parent at rmdir anyway.
pub const FORCE_EMPTY_BUDGET: Duration = Duration::from_millis(250);

/// Whether force_empty can do anything for a cgroup whose tasks have just moved out, from its
/// memory.stat and whether this kernel moved their charges along.
///
/// It needs page cache to reclaim ([`stat_shows_page_cache`]). And where charges stay behind
/// (>= 6.13: no move_charge_at_immigrate), the cgroup keeps the anonymous memory of the tasks
/// that left (`total_rss`), which no reclaim can take without swapping their memory out: the
/// deleted cgroup stays until they free it, so reclaiming its page cache cannot free it and
/// only costs the workloads their cache, and the node 2-3 ms of reclaim a cgroup (the stalls
/// benchmark on 6.18: 165 writes were 80% of a repair and doubled bystanders' fork p99).
/// The global reclaim takes that cache later, if memory gets short.
pub fn force_empty_helps(stat: &str, charges_move: bool) -> bool {
    stat_shows_page_cache(stat)
        && (charges_move || stat_value(stat, "total_rss", "rss").is_none_or(|anon| anon == 0))
}

/// A byte count of memory.stat: the hierarchical `total` line, else the cgroup's own.
fn stat_value(stat: &str, total: &str, own: &str) -> Option<u64> {
    let value = |key: &str| {
        stat.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    value(total).or_else(|| value(own))
}

/// Whether the text of a memory.stat shows page cache: `total_cache` (the subtree), or `cache`
/// where there are no hierarchical lines; no such line (or a malformed one) counts as yes.
///
/// force_empty exists to uncharge page cache before rmdir, so the deleted memcg is not kept
/// dying by it. Without page cache it has nothing to do, and it is not free: the kernel loops
/// while memory.usage_in_bytes is above 0, and kernel memory (slab) is charged there too and
/// cannot be reclaimed, so it gives up only after its retries, sleeping 100 ms after each
/// (congestion_wait(HZ/10)): 5 retries on 3.10 (MEM_CGROUP_RECLAIM_RETRIES), 16 on 5.x
/// (MAX_RECLAIM_RETRIES) -- the lab's 5.10 repair spent 1.6 s per cgroup there, 50 s for 31
/// cgroups. rmdir works either way (docs/kernel-facts.md, "force_empty": succeeds with kmem
/// left, and rmdir does not need usage 0).
pub fn stat_shows_page_cache(stat: &str) -> bool {
    stat_value(stat, "total_cache", "cache").is_none_or(|bytes| bytes > 0)
}

/// Why a force_empty step did not write.
enum LeftOut {
    /// No page cache to reclaim.
    NoPageCache,
    /// The cgroup keeps its tasks' memory (charges did not move): it cannot be freed now.
    Pinned,
}

/// Runs phases of a plan.
pub struct Runner<'a, 'c> {
    fs: &'a dyn Node,
    journal: &'a mut Journal,
    opts: RunOptions<'c>,
    pub stats: Stats,
    warned_move_charge: bool,
    /// The plan sets a non-zero move_charge_at_immigrate (see [`Runner::charges_move`]).
    plan_moves_charges: bool,
    /// Destination of the last task move, for an rmdir retry after EBUSY.
    last_move: Option<String>,
    /// Thread groups split across cgroups in the snapshot (a pid listed by several cgroups'
    /// cgroup.procs): their threads move one by one, so each stays in its own cgroup.
    split: HashSet<u32>,
}

/// Why a step did not finish: an error, or the test hook's simulated kill -9 (which must not
/// flush the journal, so it is not an error the executor handles like the others).
enum Halt {
    Failed(Error),
    Crashed(u64),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Failed(e)
    }
}

impl Halt {
    fn errno(&self) -> Option<Errno> {
        match self {
            Halt::Failed(e) => e.errno(),
            Halt::Crashed(_) => None,
        }
    }
}

type StepResult<T = ()> = std::result::Result<T, Halt>;

/// Where the run is: for the report of a stop.
struct At<'p> {
    pi: usize,
    phase: &'p Phase,
    done_before: usize,
    total: usize,
}

impl<'a, 'c> Runner<'a, 'c> {
    pub fn new(fs: &'a dyn Node, journal: &'a mut Journal, opts: RunOptions<'c>) -> Self {
        Runner {
            fs,
            journal,
            opts,
            stats: Stats::default(),
            warned_move_charge: false,
            plan_moves_charges: false,
            last_move: None,
            split: HashSet::new(),
        }
    }

    /// Run `phases[from..]` (indices into the plan's phase list are `base + i`). On a stop,
    /// returns `Error::Stopped` with the exact place (a simulated crash too, cause `Crashed`).
    pub fn run(&mut self, phases: &[Phase], from: usize, mode: Mode) -> Result<()> {
        let total: usize = phases.iter().map(|p| p.steps.len()).sum();
        let mut done_before: usize = phases[..from.min(phases.len())]
            .iter()
            .map(|p| p.steps.len())
            .sum();
        let start = Instant::now();
        self.plan_moves_charges = phases
            .iter()
            .flat_map(|p| &p.steps)
            .any(|s| matches!(s, Step::MoveCharge { value, .. } if *value != 0));
        for (pi, phase) in phases.iter().enumerate().skip(from) {
            let at = At {
                pi,
                phase,
                done_before,
                total,
            };
            if let Some(confirm) = self.opts.confirm.as_mut() {
                if !confirm(pi, phase, phases.len()) {
                    return Err(self.stopped(&at, None, StopCause::Declined, 0));
                }
            }
            let (t0, clock0) = (Instant::now(), monotonic_now());
            if matches!(phase.name, PhaseName::CreatePods | PhaseName::RenameStaging) {
                self.settle_watchers();
            }
            self.run_phase(&at, mode)?;
            done_before += phase.steps.len();
            self.stats
                .phase_seconds
                .push((phase.name.to_string(), t0.elapsed().as_secs_f64()));
            self.stats.phase_clock.push(PhaseClock {
                name: phase.name.to_string(),
                start: clock0,
                end: monotonic_now(),
            });
        }
        self.stats.seconds += start.elapsed().as_secs_f64();
        Ok(())
    }

    /// Before the phase that makes the original cgroup paths exist again: let the runtimes
    /// react to the removal of the old memcgs first, so none finds its path back and reports a
    /// spurious TaskOOM (src/runtime/settle.rs, docs/runtimes.md). Not a step: it changes
    /// nothing, and a resume reaching this phase waits again. A process table that cannot be
    /// read costs only the wait, with a warning.
    fn settle_watchers(&mut self) {
        match crate::runtime::settle::settle(self.fs) {
            Ok(s) => {
                if let Some(s) = &s {
                    log::info!(
                        "runtime watchers: {} eventfds of {} owners before, {} after {} ms (settled: {})",
                        s.eventfds_before, s.owners, s.eventfds_after, s.waited_ms, s.settled
                    );
                }
                self.stats.runtime_settle = s;
            }
            Err(e) => log::warn!("runtime watchers not waited for: {e}"),
        }
    }

    /// One phase between its `begin` and `end` lines, a progress bar on stderr if asked.
    fn run_phase(&mut self, at: &At<'_>, mode: Mode) -> Result<()> {
        let (pi, phase) = (at.pi, at.phase);
        self.split = split_groups(phase);
        self.journal.mark(&format!("begin {pi}"))?;
        let bar = self.progress_bar(phase);
        for (si, step) in phase.steps.iter().enumerate() {
            let halted = if crate::interrupt::interrupted() {
                Some(StopCause::Interrupted)
            } else {
                match self.step(step, mode) {
                    Ok(()) => None,
                    Err(Halt::Failed(e)) => Some(StopCause::Failed(e)),
                    Err(Halt::Crashed(n)) => Some(StopCause::Crashed(n)),
                }
            };
            if let Some(cause) = halted {
                if let Some(b) = &bar {
                    b.abandon();
                }
                if matches!(cause, StopCause::Crashed(_)) {
                    // As kill -9: the batched step lines are lost.
                    self.journal.forget_pending();
                } else {
                    self.journal.flush()?;
                }
                return Err(self.stopped(at, Some(step), cause, si));
            }
            self.journal.step_done(pi, si)?;
            self.pace_after(step);
            // Steps not paced (mkdirs, settings) run back to back: give the core back now and
            // then (host/share.rs).
            crate::host::share::tick();
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        self.journal.mark(&format!("end {pi}"))
    }

    fn progress_bar(&self, phase: &Phase) -> Option<indicatif::ProgressBar> {
        if !self.opts.knobs.progress || phase.steps.is_empty() {
            return None;
        }
        let b = indicatif::ProgressBar::new(phase.steps.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>16} [{bar:40}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_prefix(phase.name.to_string());
        Some(b)
    }

    /// Pause after a step that moved tasks or removed a cgroup ([`Step::paced`]): a short
    /// pause lets the node's forks and the kernel's memcg cleanup through. The emulated node
    /// lets no time pass (its `pass_time` drives the emulated runtimes instead).
    fn pace_after(&mut self, step: &Step) {
        let pace = self.opts.knobs.pace;
        if step.paced() && !pace.is_zero() && !self.fs.is_emulated() {
            let t = std::time::Instant::now();
            self.fs.pass_time(pace);
            crate::host::share::rested();
            self.stats.pauses += 1;
            self.stats.pause_seconds += t.elapsed().as_secs_f64();
        }
    }

    /// The stop at step `si` of the phase `at` (or before the phase, for no step).
    fn stopped(&self, at: &At<'_>, step: Option<&Step>, cause: StopCause, si: usize) -> Error {
        let phase = at.phase.name;
        Error::Stopped(Box::new(Stopped {
            command: self.opts.command,
            phase: format!("{phase} ({})", phase.describe()),
            cgroup: step.map(|s| s.cgroup().to_string()),
            operation: step.map(|s| s.operation()),
            cause,
            steps_done: at.done_before + si,
            steps_total: at.total,
            ways_on: self.journal.ways_on().clone(),
        }))
    }

    /// Count a mutation; stop dead when the crash budget is spent.
    fn mutation(&mut self) -> StepResult {
        if let Some(k) = self.opts.knobs.crash_after {
            if self.stats.mutations >= k {
                return Err(Halt::Crashed(k));
            }
        }
        self.stats.mutations += 1;
        Ok(())
    }

    fn write(&mut self, cg: &str, file: &str, value: &str) -> StepResult {
        self.mutation()?;
        Ok(self.fs.write(cg, file, value)?)
    }

    fn step(&mut self, step: &Step, mode: Mode) -> StepResult {
        let rec = mode == Mode::Reconcile;
        match step {
            Step::Mkdir { cg } => self.mkdir(cg, rec),
            Step::Write { cg, file, value } => self.setting(cg, file, value, rec),
            Step::MoveCharge { cg, value } => self.move_charge(cg, *value, rec),
            Step::MoveTasks { from, to, pids } => {
                if rec && !self.fs.exists(from) {
                    return Ok(());
                }
                self.last_move = Some(to.clone());
                if rec {
                    // Resuming: the journal cannot tell how far the move got; read until empty.
                    self.drain(from, to)?;
                } else if !pids.is_empty() {
                    // One round, not read again until empty: the rmdir of `from` two steps on
                    // is that check (the kernel refuses to remove a cgroup that still has a
                    // task, EBUSY), and a task forked during the move is drained there.
                    self.move_round(from, to)?;
                }
                // A fresh repair of a cgroup that had no task in the snapshot reads nothing: a
                // task that came in since is found the same way, by the rmdir's EBUSY.
                Ok(())
            }
            Step::ForceEmpty { cg } => {
                if rec && !self.fs.exists(cg) {
                    return Ok(());
                }
                match self.force_empty_left_out(cg) {
                    None => return self.force_empty(cg),
                    Some(LeftOut::NoPageCache) => self.stats.force_empty_skipped += 1,
                    Some(LeftOut::Pinned) => self.stats.force_empty_pinned += 1,
                }
                Ok(())
            }
            Step::Rmdir { cg } => self.rmdir(cg, rec),
            Step::Rename { from, to } => {
                if rec && !self.fs.exists(from) && self.fs.exists(to) {
                    return Ok(());
                }
                self.mutation()?;
                Ok(self.fs.rename(from, to)?)
            }
        }
    }

    fn mkdir(&mut self, cg: &str, rec: bool) -> StepResult {
        if rec && self.fs.exists(cg) {
            return Ok(());
        }
        self.mutation()?;
        match self.fs.mkdir(cg) {
            Ok(()) => self.stats.cgroups_created += 1,
            Err(e) if rec && e.errno() == Some(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn setting(&mut self, cg: &str, file: &str, value: &str, rec: bool) -> StepResult {
        if rec && self.setting_equals(cg, file, value)? {
            return Ok(());
        }
        match self.write(cg, file, value) {
            Ok(()) => self.stats.settings_written += 1,
            // A limit above the current memsw limit (reconcile on a cgroup that has other
            // values): raise memsw first, memsw must stay >= limit; the plan's next step sets
            // memsw to its target.
            Err(e)
                if rec
                    && file == knob::LIMIT
                    && e.errno() == Some(Errno::EINVAL)
                    && self.fs.has_file(cg, knob::MEMSW_LIMIT) =>
            {
                self.write(cg, knob::MEMSW_LIMIT, value)?;
                self.write(cg, file, value)?;
                self.stats.settings_written += 2;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn move_charge(&mut self, cg: &str, value: u64, rec: bool) -> StepResult {
        if value != 0 && self.stats.move_charge_unsupported {
            return Ok(());
        }
        if rec && host::read_u64(self.fs, cg, knob::MOVE_CHARGE).ok() == Some(value) {
            return Ok(());
        }
        match self.write(cg, knob::MOVE_CHARGE, &value.to_string()) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(Errno::EINVAL) && value != 0 => {
                // Kernel >= 6.13: charge moving is gone. Go on: the tasks move, their
                // charges stay with the old cgroups until freed.
                self.stats.move_charge_unsupported = true;
                if !self.warned_move_charge {
                    self.warned_move_charge = true;
                    log::warn!(
                        "this kernel refuses memory.move_charge_at_immigrate (EINVAL, removed in 6.13): \
                         tasks move without their charges; memory already charged stays with the old \
                         cgroups until freed, and usage of the new cgroups starts low"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn rmdir(&mut self, cg: &str, rec: bool) -> StepResult {
        if rec && !self.fs.exists(cg) {
            return Ok(());
        }
        let mut tries = 0;
        loop {
            self.mutation()?;
            match self.fs.rmdir(cg) {
                Ok(()) => {
                    self.stats.cgroups_removed += 1;
                    return Ok(());
                }
                Err(e) if rec && e.errno() == Some(Errno::ENOENT) => return Ok(()),
                Err(e) if e.errno() == Some(Errno::EBUSY) && tries < RMDIR_RETRIES => {
                    // A task is still here: forked while its parent moved (the child is made
                    // in the old cgroup), or come in since the snapshot. Move until empty,
                    // reclaim what it charged meanwhile, and try again.
                    tries += 1;
                    if let Some(to) = self.last_move.clone() {
                        self.drain(cg, &to)?;
                    }
                    if self.force_empty_left_out(cg).is_none() {
                        self.force_empty(cg)?;
                    }
                    std::thread::sleep(Duration::from_millis(2 * tries as u64));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// force_empty `cg`, giving the kernel at most [`FORCE_EMPTY_BUDGET`]. 3.10 refuses it
    /// while the cgroup has a task or a child (mem_cgroup_force_empty: EBUSY): in a fresh repair
    /// that is a task forked during the move or come in since the snapshot, which was not read
    /// for again (see [`Mode`]). Move it after the others, then reclaim.
    fn force_empty(&mut self, cg: &str) -> StepResult {
        self.mutation()?;
        let done = match self.fs.force_empty(cg, FORCE_EMPTY_BUDGET) {
            Err(e) if e.errno() == Some(Errno::EBUSY) => {
                if let Some(to) = self.last_move.clone() {
                    self.drain(cg, &to)?;
                }
                self.mutation()?;
                self.fs.force_empty(cg, FORCE_EMPTY_BUDGET)?
            }
            r => r?,
        };
        if !done {
            self.stats.force_empty_cut += 1;
        }
        Ok(())
    }

    /// Whether `file` of `cg` already holds `value` (as the kernel would store it).
    fn setting_equals(&self, cg: &str, file: &str, value: &str) -> Result<bool> {
        let cur = self.fs.read(cg, file)?;
        if file == knob::OOM_CONTROL {
            let path = self.fs.root().join(cg).join(file);
            return Ok(host::parse_oom_kill_disable(&path, &cur)? == (value.trim() == "1"));
        }
        let (c, v) = (cur.trim(), value.trim());
        if file.ends_with("limit_in_bytes") {
            if let (Ok(c), Ok(v)) = (c.parse::<u64>(), v.parse::<u64>()) {
                return Ok(normalize_limit(c) == normalize_limit(v));
            }
        }
        Ok(c == v)
    }

    /// Why force_empty is left out on `cg`, from its memory.stat ([`force_empty_helps`]); None:
    /// write it (also where memory.stat cannot be read: the write is what the plan lists).
    fn force_empty_left_out(&self, cg: &str) -> Option<LeftOut> {
        let stat = self.fs.read(cg, knob::STAT).ok()?;
        if !stat_shows_page_cache(&stat) {
            Some(LeftOut::NoPageCache)
        } else if !force_empty_helps(&stat, self.charges_move()) {
            Some(LeftOut::Pinned)
        } else {
            None
        }
    }

    /// Whether this run's moves take the tasks' charges along: the plan writes a non-zero
    /// move_charge_at_immigrate and the kernel has not refused it.
    fn charges_move(&self) -> bool {
        self.plan_moves_charges && !self.stats.move_charge_unsupported
    }

    /// One task move (a pid to cgroup.procs or a tid to tasks), timed: the slowest is reported,
    /// since the node's forks and exits wait for each one.
    fn move_one(&mut self, to: &str, file: &str, id: u32) -> StepResult {
        let t = Instant::now();
        let r = self.write(to, file, &id.to_string());
        let seconds = t.elapsed().as_secs_f64();
        if r.is_ok()
            && self
                .stats
                .longest_move
                .as_ref()
                .is_none_or(|m| seconds > m.seconds)
        {
            self.stats.longest_move = Some(LongestMove {
                seconds,
                pid: id,
                to: to.to_string(),
            });
        }
        r
    }

    /// Move every task of `from` into `to`, re-reading cgroup.procs until `from` stays empty
    /// (children forked during the move land in the old cgroup and show up in the next read).
    fn drain(&mut self, from: &str, to: &str) -> StepResult {
        for round in 0..DRAIN_ROUNDS {
            if !self.move_round(from, to)? {
                return Ok(());
            }
            if round >= 2 {
                // Forks in flight finish before the next read.
                std::thread::sleep(Duration::from_micros(200 * round as u64));
            }
        }
        Err(Halt::Failed(Error::Sys(SysError::new(
            FsOp::Write,
            self.fs.root().join(from).join(knob::PROCS),
            Errno::EBUSY,
        ))))
    }

    /// One round of a move: read which tasks `from` has and move them to `to`, one pid per
    /// write to cgroup.procs, or thread by thread through `tasks` where a thread group is split
    /// across cgroups. Whether there was any task to move (a missing `from` has none).
    fn move_round(&mut self, from: &str, to: &str) -> StepResult<bool> {
        // What to move is read now, not taken from the snapshot: a pid the snapshot listed may
        // have exited and been reused by a process elsewhere, which a write would drag in.
        let pids = match host::read_procs(self.fs, from) {
            Ok(p) => p,
            Err(e) if e.errno() == Some(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if pids.is_empty() {
            // cgroup.procs lists the thread group of every task in the cgroup: empty means no
            // task at all is left.
            return Ok(false);
        }
        // Writing a pid to cgroup.procs moves its whole thread group, wherever its threads
        // are. Do that only for groups whose leader is here and whose threads all live
        // together; otherwise move this cgroup's threads one by one through `tasks`, so a
        // thread whose leader lives elsewhere (or a leader whose threads do) stays apart.
        let tids: HashSet<u32> = host::read_tasks(self.fs, from)?.into_iter().collect();
        let by_thread = pids
            .iter()
            .any(|p| !tids.contains(p) || self.split.contains(p));
        if by_thread {
            let mut tids: Vec<u32> = tids.into_iter().collect();
            tids.sort_unstable();
            for tid in tids {
                match self.move_one(to, knob::TASKS, tid) {
                    Ok(()) => self.stats.threads_moved += 1,
                    Err(e) if e.errno() == Some(Errno::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            for pid in pids {
                match self.move_one(to, knob::PROCS, pid) {
                    Ok(()) => self.stats.tasks_moved += 1,
                    // The process exited between the read and the write: nothing to move.
                    Err(e) if e.errno() == Some(Errno::ESRCH) => self.stats.tasks_exited += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::stat_shows_page_cache;

    #[test]
    fn page_cache_from_memory_stat() {
        // The subtree's total wins over the cgroup's own line (children's cache counts).
        assert!(stat_shows_page_cache(
            "cache 0\nrss 4096\ntotal_cache 8192\n"
        ));
        assert!(!stat_shows_page_cache("cache 0\nrss 4096\ntotal_cache 0\n"));
        // No hierarchical lines: the cgroup's own.
        assert!(stat_shows_page_cache("cache 4096\n"));
        assert!(!stat_shows_page_cache("cache 0\nrss 0\n"));
        // Nothing to go by: unknown counts as yes (force_empty then runs, as it always did).
        assert!(stat_shows_page_cache(""));
        assert!(stat_shows_page_cache("total_cache x\n"));
    }

    #[test]
    fn force_empty_only_where_it_can_free_the_cgroup() {
        use super::force_empty_helps;
        let pinned = "cache 0\nrss 0\ntotal_cache 8192\ntotal_rss 4096\n";
        // Charges moved along: what is left is cache only the old cgroup holds.
        assert!(force_empty_helps(pinned, true));
        // Charges stayed (>= 6.13): the tasks' anonymous memory keeps the cgroup anyway.
        assert!(!force_empty_helps(pinned, false));
        assert!(force_empty_helps("total_cache 8192\ntotal_rss 0\n", false));
        // No page cache: nothing to do on any kernel.
        assert!(!force_empty_helps("total_cache 0\ntotal_rss 0\n", true));
        // No rss line: unknown, the write goes ahead as the plan lists it.
        assert!(force_empty_helps("cache 4096\n", false));
    }
}
