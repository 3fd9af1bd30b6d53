//! The repair plan: pure. A snapshot and a few facts in, an ordered list of operations out; no
//! system calls. The same phases, executed in reconcile mode, serve resume and rollback.
//!
//! Order rules (docs/kernel-facts.md, "Writing settings"):
//! - cgroups are created parents first (pre-order), and each cgroup's settings are written
//!   right after its mkdir, before its children exist (use_hierarchy is EBUSY with children,
//!   and children inherit swappiness and oom_kill_disable at creation) and before any task
//!   enters it (limits must hold from the first task on);
//! - memory.limit_in_bytes before memory.memsw.limit_in_bytes: a fresh cgroup has both
//!   unlimited, and lowering must keep memsw >= limit;
//! - memory.kmem.limit_in_bytes is never written: on 3.10 the first write activates kmem
//!   accounting, and not activating it is the point of the repair;
//! - tasks leave leaf-first (post-order), then force_empty, then rmdir: rmdir is EBUSY while
//!   tasks or child cgroups remain.

use crate::host::knob;
use crate::model::path::{parent, rebase};
use crate::model::{is_unlimited, Kind, Layout, Settings, Snapshot, UNLIMITED_MIN};
use crate::scan::tree_of;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Memcg ids reserved on top of the cgroups the repair creates: other cgroups may be created
/// on the node meanwhile (systemd units, the container runtime), and a repair that runs out of
/// ids half-way must still be able to go back. 256 ids cover a burst of several hundred unit
/// starts at the cost of 0.4% of the id space.
pub const ID_SAFETY_MARGIN: u64 = 256;

/// The value written to memory.move_charge_at_immigrate on destinations: bit 0 anonymous
/// pages, bit 1 file pages (memory.rst section 8.2).
pub const MOVE_CHARGE_ALL: u64 = 3;

/// How the tree gets back under the pods name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Move everything into the staging cgroup, then into a freshly created pods cgroup (the
    /// original procedure).
    MigrateBack,
    /// Move everything into the staging cgroup, then rename it to the pods name (cgroup v1
    /// renames within the same parent): one pass instead of two.
    Rename,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Strategy::MigrateBack => "migrate-back",
            Strategy::Rename => "rename",
        })
    }
}

/// The phases of a repair (and of a rollback, which reuses the last three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseName {
    CreateStaging,
    MoveToStaging,
    CreatePods,
    MoveBack,
    RenameStaging,
    Finalize,
}

impl PhaseName {
    pub fn describe(&self) -> &'static str {
        match self {
            PhaseName::CreateStaging => "create the staging tree with every cgroup's settings",
            PhaseName::MoveToStaging => {
                "move tasks leaf-first into staging; empty and remove the old cgroups"
            }
            PhaseName::CreatePods => "create the pods tree again with every cgroup's settings",
            PhaseName::MoveBack => {
                "move tasks leaf-first back; empty and remove the staging cgroups"
            }
            PhaseName::RenameStaging => "rename the staging cgroup to the pods name",
            PhaseName::Finalize => "restore memory.move_charge_at_immigrate",
        }
    }
}

impl std::fmt::Display for PhaseName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// One operation of the repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Create a cgroup.
    Mkdir { cg: String },
    /// Write a setting (one write(2)).
    Write {
        cg: String,
        file: String,
        value: String,
    },
    /// Write memory.move_charge_at_immigrate; EINVAL (kernel >= 6.13) is tolerated.
    MoveCharge { cg: String, value: u64 },
    /// Move every task of `from` into `to`, one pid per write to cgroup.procs, re-reading
    /// until `from` stays empty, then stray threads through `tasks`. `pids` are the tasks the
    /// scan saw; the executor moves what is there when it runs.
    MoveTasks {
        from: String,
        to: String,
        pids: Vec<u32>,
    },
    /// Write 0 to memory.force_empty: reclaim what can be reclaimed before rmdir.
    ForceEmpty { cg: String },
    /// Remove an empty cgroup.
    Rmdir { cg: String },
    /// Rename a cgroup within its parent.
    Rename { from: String, to: String },
}

impl Step {
    /// Whether the repair pauses after this step (`--pace`): a move of a cgroup's tasks takes
    /// the kernel's threadgroup lock for each task, and an rmdir queues the memcg's offlining
    /// and freeing on kworkers; back to back they hold up the node's forks
    /// (docs/kernel-facts.md, "Pacing").
    pub fn paced(&self) -> bool {
        match self {
            Step::Rmdir { .. } => true,
            Step::MoveTasks { pids, .. } => !pids.is_empty(),
            _ => false,
        }
    }

    /// The cgroup the step works on (the source for moves).
    pub fn cgroup(&self) -> &str {
        match self {
            Step::Mkdir { cg }
            | Step::Write { cg, .. }
            | Step::MoveCharge { cg, .. }
            | Step::ForceEmpty { cg }
            | Step::Rmdir { cg } => cg,
            Step::MoveTasks { from, .. } | Step::Rename { from, .. } => from,
        }
    }

    /// A short name of the operation, for messages.
    pub fn operation(&self) -> String {
        match self {
            Step::Mkdir { .. } => "mkdir".into(),
            Step::Write { file, value, .. } => format!("write {value} to {file}"),
            Step::MoveCharge { value, .. } => format!("write {value} to {}", knob::MOVE_CHARGE),
            Step::MoveTasks { to, .. } => format!("move tasks to {to} ({})", knob::PROCS),
            Step::ForceEmpty { .. } => format!("write 0 to {}", knob::FORCE_EMPTY),
            Step::Rmdir { .. } => "rmdir".into(),
            Step::Rename { to, .. } => format!("rename to {to}"),
        }
    }

    /// The number of system calls that change something this step is expected to make.
    pub fn mutations(&self) -> usize {
        match self {
            Step::MoveTasks { pids, .. } => pids.len(),
            _ => 1,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Mkdir { cg } => write!(f, "mkdir {cg}"),
            Step::Write { cg, file, value } => write!(f, "write {value:>20} > {cg}/{file}"),
            Step::MoveCharge { cg, value } => {
                write!(f, "write {value:>20} > {cg}/{}", knob::MOVE_CHARGE)
            }
            Step::MoveTasks { from, to, pids } => {
                if pids.is_empty() {
                    write!(f, "move tasks      {from} -> {to} (none seen; re-check)")
                } else {
                    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
                    write!(f, "move pids {}  {from} -> {to}", list.join(","))
                }
            }
            Step::ForceEmpty { cg } => write!(f, "write {:>20} > {cg}/{}", 0, knob::FORCE_EMPTY),
            Step::Rmdir { cg } => write!(f, "rmdir {cg}"),
            Step::Rename { from, to } => write!(f, "rename {from} -> {to}"),
        }
    }
}

/// The steps of one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: PhaseName,
    pub steps: Vec<Step>,
}

/// Whether the free memcg ids cover what the repair creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCheck {
    /// Cgroups the repair creates (they hold ids at the same time at its peak).
    pub needed: u64,
    /// [`ID_SAFETY_MARGIN`].
    pub margin: u64,
    /// Free ids, when known.
    pub free: Option<u64>,
    /// `free >= needed + margin`; null when free is unknown.
    pub ok: Option<bool>,
}

/// The facts a plan depends on besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub staging: String,
    pub strategy: Strategy,
    /// Whether memory.move_charge_at_immigrate accepts 3 (None: unknown, try it).
    pub move_charge: Option<bool>,
    /// Free memcg ids, when known.
    pub ids_free: Option<u64>,
}

/// A repair plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub strategy: Strategy,
    pub kubepods: String,
    pub staging: String,
    /// Cgroups of the pods tree (the pods cgroup included) and their tasks.
    pub cgroups: usize,
    pub tasks: usize,
    pub ids: IdCheck,
    /// Whether the plan sets move_charge_at_immigrate on destinations.
    pub move_charge: bool,
    pub phases: Vec<Phase>,
    /// Total steps and the system calls that change something.
    pub steps: usize,
    pub mutations: usize,
    /// Rough wall time on a real kernel, in seconds.
    pub estimate_seconds: f64,
    /// Steps after which the repair pauses for `--pace` ([`Step::paced`]); the estimate leaves
    /// the pauses out.
    #[serde(default)]
    pub pauses: usize,
    /// Why this plan cannot run (empty when it can): the refusals of the repair.
    pub blockers: Vec<Blocker>,
}

impl Plan {
    pub fn runnable(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// A refusal as plan's JSON shows it ([`crate::repair::refusal::Refusal::blocker`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// Stable kebab-case code (`staging-exists`, `ids-unknown`, ...).
    pub code: String,
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// Rough per-operation costs for the estimate (seconds); the roundtrip benchmark measured
/// 0.36 s of execution for a 393-cgroup migrate-back on 6.18 (README, Performance), about half
/// of it the force_empty writes, which these costs leave out.
const COST_MKDIR: f64 = 60e-6;
const COST_WRITE: f64 = 8e-6;
const COST_MOVE: f64 = 40e-6;
const COST_RMDIR: f64 = 60e-6;
/// Moving charges: the kernel walks the page tables of each moved task (memory.rst 8: "it can
/// take several seconds if you move charges much"); about 2 GiB/s.
const COST_PER_CHARGED_BYTE: f64 = 1.0 / (2u64 << 30) as f64;

/// The settings writes that turn a fresh child of a cgroup with settings `parent` into one with
/// settings `target`, in the kernel's order. Values equal to what the child inherits or starts
/// with are not written: on 3.10 swappiness and oom_control are EINVAL below a parent that uses
/// hierarchy, where they can only equal the inherited value anyway.
pub fn settings_steps(cg: &str, parent: &Settings, target: &Settings) -> Vec<Step> {
    let fresh = Settings::fresh_child_of(parent, UNLIMITED_MIN);
    let mut out = Vec::new();
    let mut w = |file: &str, value: String| {
        out.push(Step::Write {
            cg: cg.to_string(),
            file: file.to_string(),
            value,
        })
    };
    // use_hierarchy first: it can only change while the cgroup has no children.
    if target.use_hierarchy != fresh.use_hierarchy {
        w(
            knob::USE_HIERARCHY,
            u8::from(target.use_hierarchy).to_string(),
        );
    }
    // Limit, then memsw: both start unlimited, and memsw must stay >= limit.
    if !is_unlimited(target.limit_in_bytes) {
        w(knob::LIMIT, target.limit_in_bytes.to_string());
    }
    if let Some(m) = target.memsw_limit_in_bytes {
        if !is_unlimited(m) {
            w(knob::MEMSW_LIMIT, m.to_string());
        }
    }
    if !is_unlimited(target.soft_limit_in_bytes) {
        w(knob::SOFT_LIMIT, target.soft_limit_in_bytes.to_string());
    }
    if target.swappiness != fresh.swappiness {
        w(knob::SWAPPINESS, target.swappiness.to_string());
    }
    if target.oom_kill_disable != fresh.oom_kill_disable {
        w(
            knob::OOM_CONTROL,
            u8::from(target.oom_kill_disable).to_string(),
        );
    }
    out
}

/// Pre-order creation of `snapshot`'s tree under the name `top` (the staging or the pods name).
fn create_phase(snap: &Snapshot, top: &str, name: PhaseName, move_charge: bool) -> Phase {
    // Settings by path, for each cgroup's parent: a search of the list per cgroup would be
    // quadratic in the thousands of cgroups of a big node.
    let settings: HashMap<&str, &Settings> = snap
        .cgroups
        .iter()
        .map(|c| (c.path.as_str(), &c.settings))
        .collect();
    let mut steps = Vec::new();
    for rec in &snap.cgroups {
        let dst = rebase(&rec.path, &snap.kubepods, top);
        let parent_settings = if rec.kind == Kind::PodsRoot {
            &snap.root_settings
        } else {
            // Pre-order: the parent's record came earlier (scan guarantees it).
            *settings
                .get(parent(&rec.path))
                .expect("snapshot in pre-order with parents present")
        };
        steps.push(Step::Mkdir { cg: dst.clone() });
        steps.extend(settings_steps(&dst, parent_settings, &rec.settings));
        if move_charge && rec.settings.move_charge_at_immigrate.is_some() {
            steps.push(Step::MoveCharge {
                cg: dst,
                value: MOVE_CHARGE_ALL,
            });
        }
    }
    Phase { name, steps }
}

/// Post-order (leaf-first) moves from the tree named `from_top` into the one named `to_top`,
/// removing each source cgroup once empty.
fn move_phase(snap: &Snapshot, from_top: &str, to_top: &str, name: PhaseName) -> Phase {
    let tree = tree_of(snap).expect("snapshot in pre-order");
    let mut steps = Vec::new();
    for id in tree.postorder() {
        let rec = &snap.cgroups[id];
        let src = rebase(&rec.path, &snap.kubepods, from_top);
        let dst = rebase(&rec.path, &snap.kubepods, to_top);
        steps.push(Step::MoveTasks {
            from: src.clone(),
            to: dst,
            pids: rec.tasks.clone(),
        });
        steps.push(Step::ForceEmpty { cg: src.clone() });
        steps.push(Step::Rmdir { cg: src });
    }
    Phase { name, steps }
}

/// Put memory.move_charge_at_immigrate back to what each cgroup had.
fn finalize_phase(snap: &Snapshot, move_charge: bool) -> Phase {
    let mut steps = Vec::new();
    if move_charge {
        for rec in &snap.cgroups {
            if let Some(v) = rec.settings.move_charge_at_immigrate {
                if v != MOVE_CHARGE_ALL {
                    steps.push(Step::MoveCharge {
                        cg: rec.path.clone(),
                        value: v,
                    });
                }
            }
        }
    }
    Phase {
        name: PhaseName::Finalize,
        steps,
    }
}

/// The phases that bring everything back under the pods name from the staging tree: used by
/// the migrate-back strategy, and (in reconcile mode) by rollback from any point.
pub fn back_phases(snap: &Snapshot, staging: &str, move_charge: bool) -> Vec<Phase> {
    vec![
        create_phase(snap, &snap.kubepods, PhaseName::CreatePods, move_charge),
        move_phase(snap, staging, &snap.kubepods, PhaseName::MoveBack),
        finalize_phase(snap, move_charge),
    ]
}

/// Memcg ids the repair holds at its peak: the staging tree and, for migrate-back, the new pods
/// tree exist together while the old cgroups may still hold theirs (dying, on 3.10 with kmem).
pub fn ids_needed(cgroups: usize, strategy: Strategy) -> u64 {
    let n = cgroups as u64;
    match strategy {
        Strategy::MigrateBack => 2 * n,
        Strategy::Rename => n,
    }
}

/// Memcg ids that must be free before a repair starts: what it holds at its peak
/// ([`ids_needed`]) plus [`ID_SAFETY_MARGIN`]. Plan, repair and diagnose use this one figure.
pub fn ids_required(cgroups: usize, strategy: Strategy) -> u64 {
    ids_needed(cgroups, strategy) + ID_SAFETY_MARGIN
}

/// The phases of a repair of `snap`: none when there is no pods tree a repair could migrate
/// (missing, or the systemd driver's).
fn phases(snap: &Snapshot, input: &PlanInput, move_charge: bool) -> Vec<Phase> {
    if matches!(snap.layout, Layout::Missing | Layout::Systemd) {
        return Vec::new();
    }
    let mut phases = vec![
        create_phase(snap, &input.staging, PhaseName::CreateStaging, move_charge),
        move_phase(
            snap,
            &snap.kubepods,
            &input.staging,
            PhaseName::MoveToStaging,
        ),
    ];
    match input.strategy {
        Strategy::MigrateBack => phases.extend(back_phases(snap, &input.staging, move_charge)),
        Strategy::Rename => {
            phases.push(Phase {
                name: PhaseName::RenameStaging,
                steps: vec![Step::Rename {
                    from: input.staging.clone(),
                    to: snap.kubepods.clone(),
                }],
            });
            phases.push(finalize_phase(snap, move_charge));
        }
    }
    phases
}

/// Rough wall time of `phases` on a real kernel, in seconds.
fn estimate(snap: &Snapshot, phases: &[Phase], strategy: Strategy, move_charge: bool) -> f64 {
    let mut estimate = 0.0;
    for s in phases.iter().flat_map(|p| &p.steps) {
        estimate += match s {
            Step::Mkdir { .. } => COST_MKDIR,
            Step::Rmdir { .. } => COST_RMDIR,
            Step::MoveTasks { pids, .. } => COST_MOVE * pids.len().max(1) as f64,
            _ => COST_WRITE,
        };
    }
    if move_charge {
        // Charges move twice with migrate-back, once with rename; the pods cgroup's usage is
        // the whole tree's (use_hierarchy).
        let charged: u64 = snap
            .cgroups
            .iter()
            .filter_map(|c| c.usage_in_bytes)
            .max()
            .unwrap_or(0);
        let passes = if strategy == Strategy::MigrateBack {
            2.0
        } else {
            1.0
        };
        estimate += passes * charged as f64 * COST_PER_CHARGED_BYTE;
    }
    estimate
}

/// Plan a repair of `snap`. Pure. The plan has no blockers: the caller attaches the refusals
/// ([`crate::repair::refusal`]), computed from the same facts.
pub fn plan(snap: &Snapshot, input: &PlanInput) -> Plan {
    let needed = ids_needed(snap.cgroups.len(), input.strategy);
    let ok = input
        .ids_free
        .map(|f| f >= ids_required(snap.cgroups.len(), input.strategy));
    let move_charge = input.move_charge != Some(false);
    let phases = phases(snap, input, move_charge);
    let steps = phases.iter().map(|p| p.steps.len()).sum();
    let mutations = phases
        .iter()
        .flat_map(|p| &p.steps)
        .map(Step::mutations)
        .sum();
    Plan {
        strategy: input.strategy,
        kubepods: snap.kubepods.clone(),
        staging: input.staging.clone(),
        cgroups: snap.cgroups.len(),
        tasks: snap.task_count(),
        ids: IdCheck {
            needed,
            margin: ID_SAFETY_MARGIN,
            free: input.ids_free,
            ok,
        },
        move_charge,
        estimate_seconds: estimate(snap, &phases, input.strategy, move_charge),
        pauses: phases
            .iter()
            .flat_map(|p| &p.steps)
            .filter(|s| s.paced())
            .count(),
        phases,
        steps,
        mutations,
        blockers: Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Strategy;
    use super::*;
    use crate::model::{CgroupRecord, SNAPSHOT_FORMAT};
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;
    use std::collections::HashMap;

    pub fn settings(limit: u64, memsw: Option<u64>) -> Settings {
        Settings {
            limit_in_bytes: limit,
            memsw_limit_in_bytes: memsw,
            soft_limit_in_bytes: UNLIMITED_MIN,
            swappiness: 60,
            oom_kill_disable: false,
            use_hierarchy: true,
            move_charge_at_immigrate: Some(0),
        }
    }

    /// A snapshot from (parent index, limit, pids) per node; node 0 is kubepods.
    pub fn snapshot_from(nodes: &[(usize, u64, Vec<u32>)]) -> Snapshot {
        let mut paths: Vec<String> = Vec::new();
        let mut cgroups = Vec::new();
        for (i, (p, limit, pids)) in nodes.iter().enumerate() {
            let path = if i == 0 {
                "kubepods".to_string()
            } else {
                format!("{}/n{}", paths[*p], i)
            };
            paths.push(path.clone());
            let limit = if *limit == 0 { UNLIMITED_MIN } else { *limit };
            cgroups.push(CgroupRecord {
                path,
                kind: if i == 0 { Kind::PodsRoot } else { Kind::Other },
                settings: settings(limit, Some(limit)),
                tasks: pids.clone(),
                kmem_limit_in_bytes: None,
                kmem_active: None,
                usage_in_bytes: None,
            });
        }
        // Pre-order as scan gives it: sort by path components.
        cgroups.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        Snapshot {
            format: SNAPSHOT_FORMAT,
            taken_at: 0,
            root: "/r".into(),
            kubepods: "kubepods".into(),
            kernel_release: "3.10.0".into(),
            layout: Layout::Flat,
            root_settings: settings(UNLIMITED_MIN, Some(UNLIMITED_MIN)),
            cgroups,
        }
    }

    fn input(strategy: Strategy) -> PlanInput {
        PlanInput {
            staging: "kubepods2".into(),
            strategy,
            move_charge: Some(true),
            ids_free: Some(60000),
        }
    }

    #[test]
    fn small_tree_exact_order() {
        let snap = snapshot_from(&[
            (0, 1 << 30, vec![]),
            (0, 0, vec![7]),
            (1, 12345344, vec![8, 9]),
        ]);
        let p = plan(&snap, &input(Strategy::Rename));
        assert!(p.runnable(), "{:?}", p.blockers);
        let lines: Vec<String> = p
            .phases
            .iter()
            .flat_map(|ph| ph.steps.iter().map(|s| s.to_string()))
            .collect();
        let text = lines.join("\n");
        let expect_order = [
            "mkdir kubepods2",
            "> kubepods2/memory.limit_in_bytes",
            "> kubepods2/memory.memsw.limit_in_bytes",
            "> kubepods2/memory.move_charge_at_immigrate",
            "mkdir kubepods2/n1",
            "mkdir kubepods2/n1/n2",
            "12345344 > kubepods2/n1/n2/memory.limit_in_bytes",
            "move pids 8,9  kubepods/n1/n2 -> kubepods2/n1/n2",
            "rmdir kubepods/n1/n2",
            "move pids 7  kubepods/n1 -> kubepods2/n1",
            "rmdir kubepods/n1",
            "rmdir kubepods",
            "rename kubepods2 -> kubepods",
            "0 > kubepods/memory.move_charge_at_immigrate",
        ];
        let mut pos = 0;
        for e in expect_order {
            let found = text[pos..]
                .find(e)
                .unwrap_or_else(|| panic!("{e:?} not after {pos} in\n{text}"));
            pos += found + e.len();
        }
        assert_eq!(p.ids.needed, 3);
        assert_eq!(p.tasks, 3);
        assert!(!text.contains("kmem"));
    }

    #[test]
    fn no_phases_without_a_pods_tree_to_migrate() {
        let snap = snapshot_from(&[(0, 0, vec![])]);
        let mut s2 = snap.clone();
        s2.layout = Layout::Systemd;
        s2.kubepods = "kubepods.slice".into();
        assert!(plan(&s2, &input(Strategy::MigrateBack)).phases.is_empty());
        s2.layout = Layout::Missing;
        s2.cgroups.clear();
        assert!(plan(&s2, &input(Strategy::MigrateBack)).phases.is_empty());
        assert_eq!(plan(&snap, &input(Strategy::MigrateBack)).phases.len(), 5);
    }

    #[test]
    fn the_id_check_uses_the_one_requirement() {
        let snap = snapshot_from(&[(0, 0, vec![]), (0, 0, vec![1])]);
        let mut i = input(Strategy::MigrateBack);
        assert_eq!(ids_required(2, Strategy::MigrateBack), 4 + ID_SAFETY_MARGIN);
        i.ids_free = Some(ids_required(2, Strategy::MigrateBack) - 1);
        assert_eq!(plan(&snap, &i).ids.ok, Some(false));
        i.ids_free = Some(ids_required(2, Strategy::MigrateBack));
        assert_eq!(plan(&snap, &i).ids.ok, Some(true));
        i.ids_free = None;
        assert_eq!(plan(&snap, &i).ids.ok, None);
    }

    #[test]
    fn no_move_charge_on_kernels_without_it() {
        let snap = snapshot_from(&[(0, 0, vec![1])]);
        let mut i = input(Strategy::MigrateBack);
        i.move_charge = Some(false);
        let p = plan(&snap, &i);
        assert!(!p.move_charge);
        assert!(p
            .phases
            .iter()
            .flat_map(|ph| &ph.steps)
            .all(|s| !matches!(s, Step::MoveCharge { .. })));
    }

    #[test]
    fn inherited_values_are_not_written() {
        let parent = settings(UNLIMITED_MIN, Some(UNLIMITED_MIN));
        let mut t = parent.clone();
        assert!(settings_steps("x", &parent, &t).is_empty());
        t.swappiness = 0;
        t.oom_kill_disable = true;
        t.use_hierarchy = false;
        let steps = settings_steps("x", &parent, &t);
        let files: Vec<&str> = steps
            .iter()
            .map(|s| match s {
                Step::Write { file, .. } => file.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(
            files,
            [knob::USE_HIERARCHY, knob::SWAPPINESS, knob::OOM_CONTROL]
        );
    }

    fn arb_nodes() -> impl proptest::strategy::Strategy<Value = Vec<(usize, u64, Vec<u32>)>> {
        (1usize..40).prop_flat_map(|n| {
            (0..n)
                .map(|i| {
                    (
                        0..i.max(1),
                        prop_oneof![Just(0u64), (1u64..1 << 20).prop_map(|x| x * 4096)],
                        proptest::collection::vec(1u32..100000, 0..3),
                    )
                })
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        /// For any tree and either strategy: parents are created before children, each cgroup's
        /// settings come after its mkdir and before its children and before any task enters
        /// it, limit precedes memsw, a cgroup is removed only after its children are removed
        /// and its tasks moved out, kmem is never written, and every cgroup is both created
        /// and removed exactly once per pass.
        #[test]
        fn plan_invariants(nodes in arb_nodes(), rename in any::<bool>()) {
            let snap = snapshot_from(&nodes);
            let strategy = if rename { Strategy::Rename } else { Strategy::MigrateBack };
            let p = plan(&snap, &input(strategy));
            prop_assert!(p.runnable());
            for phase in &p.phases {
                let mut made: HashMap<&str, usize> = HashMap::new();
                let mut removed: HashMap<&str, usize> = HashMap::new();
                let mut moved_out: HashMap<&str, usize> = HashMap::new();
                let mut first_task_in: HashMap<&str, usize> = HashMap::new();
                let mut child_made: HashMap<&str, usize> = HashMap::new();
                let mut limit_at: HashMap<&str, usize> = HashMap::new();
                for (i, s) in phase.steps.iter().enumerate() {
                    match s {
                        Step::Mkdir { cg } => {
                            prop_assert!(made.insert(cg, i).is_none(), "mkdir twice {}", cg);
                            let par = parent(cg);
                            if !par.is_empty() {
                                prop_assert!(made.contains_key(par), "parent of {} not made first", cg);
                                child_made.entry(par).or_insert(i);
                            }
                        }
                        Step::Write { .. } | Step::MoveCharge { .. } if phase.name != PhaseName::Finalize => {
                            let (cg, file) = match s {
                                Step::Write { cg, file, .. } => (cg.as_str(), file.as_str()),
                                Step::MoveCharge { cg, .. } => (cg.as_str(), knob::MOVE_CHARGE),
                                _ => unreachable!(),
                            };
                            prop_assert!(!file.contains("kmem"));
                            prop_assert!(made.contains_key(cg), "setting before mkdir of {}", cg);
                            prop_assert!(!child_made.contains_key(cg), "setting of {} after a child exists", cg);
                            prop_assert!(!first_task_in.contains_key(cg), "setting of {} after tasks entered", cg);
                            if file == knob::LIMIT { limit_at.insert(cg, i); }
                            if file == knob::MEMSW_LIMIT { prop_assert!(limit_at.get(cg).is_none_or(|&l| l < i)); }
                        }
                        Step::MoveTasks { from, to, .. } => {
                            moved_out.insert(from, i);
                            first_task_in.entry(to).or_insert(i);
                        }
                        Step::Rmdir { cg } => {
                            prop_assert!(moved_out.get(cg.as_str()).is_some_and(|&m| m < i), "rmdir {} before its tasks left", cg);
                            // Every child of cg in this pass was removed before.
                            for (other, _) in made.iter().chain(moved_out.iter()) {
                                if parent(other) == cg.as_str() {
                                    prop_assert!(removed.contains_key(other), "rmdir {} before child {}", cg, other);
                                }
                            }
                            prop_assert!(removed.insert(cg, i).is_none());
                        }
                        _ => {}
                    }
                }
                match phase.name {
                    PhaseName::CreateStaging | PhaseName::CreatePods => prop_assert_eq!(made.len(), snap.cgroups.len()),
                    PhaseName::MoveToStaging | PhaseName::MoveBack => prop_assert_eq!(removed.len(), snap.cgroups.len()),
                    _ => {}
                }
            }
            prop_assert_eq!(p.ids.needed, if rename { 1 } else { 2 } * snap.cgroups.len() as u64);
        }
    }
}
