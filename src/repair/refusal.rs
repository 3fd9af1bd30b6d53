//! Why a repair, resume or rollback must not run: one typed list, computed once from gathered
//! facts by [`for_repair`] (and [`for_node`], the part that needs no state directory, for
//! diagnose). `plan` prints it and exits 2; `repair` shows it as the preflight table and
//! refuses; nothing decides anything by matching a message.
//!
//! The facts are gathered by the callers (the preflight in [`crate::repair::prepare`], the dry
//! run in `commands/plan.rs`); here everything is pure.

use crate::model::invocation::{cgroup_name_problem, Command, WaysOn};
use crate::model::Layout;
use crate::repair::plan::{self, Blocker, Strategy};
use std::path::{Path, PathBuf};

/// The commands a refusal can stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Plan,
    Repair,
    Resume,
    Rollback,
    Diagnose,
}

/// What is in the staging cgroup's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagingState {
    /// No cgroup of that name: the repair can create it.
    Free,
    /// A cgroup of that name that no repair of cgleak made (see [`crate::repair::leftover`]).
    Foreign,
    /// The staging tree of an interrupted repair whose journal is lost: it mirrors the pods tree.
    Leftover,
}

/// Whether a kubelet runs, and what the caller makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kubelet {
    NotRunning,
    Running(Vec<u32>),
    /// Running, and allowed by `--allow-kubelet-running` (tests only).
    Allowed(Vec<u32>),
    /// Running, and `plan --assume-kubelet-stopped`: the operator stops it before the repair.
    AssumedStopped(Vec<u32>),
}

/// The repair journal an earlier run left in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalState {
    /// None, or a finished one (a new repair replaces it).
    Absent,
    Unfinished {
        kubepods: String,
        staging: String,
        strategy: Strategy,
        started_at: u64,
        phase: usize,
    },
    /// journal.json cannot be read or parsed.
    Unreadable { why: String },
}

/// The state directory: can cgleak lock it and write its journal there?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateDir {
    Usable,
    /// Another cgleak holds the node's lock or the state directory's: what holds it, in words.
    LockHeld {
        holder: String,
    },
    /// It cannot be made, opened or locked (a file in its place, read-only...).
    Unusable {
        why: String,
    },
    /// Not looked at (not root: cgleak makes no directory it could not use).
    NotChecked,
}

/// The facts about the node that every command sees the same way (no state directory, no
/// processes): what [`for_node`] needs.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub root: String,
    pub kubepods: String,
    pub layout: Layout,
    pub staging: String,
    pub staging_state: StagingState,
    pub strategy: Strategy,
    /// Cgroups of the pods tree, the pods cgroup included.
    pub cgroups: usize,
    /// Free memcg ids, when known.
    pub ids_free: Option<u64>,
    /// `uname -r`, for the refusal when the ids are unknown.
    pub release: String,
}

/// The facts only a run on the node itself has: permissions, state directory, kubelet.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub may_write: bool,
    pub state_dir: PathBuf,
    pub state: StateDir,
    pub journal: JournalState,
    pub kubelet: Kubelet,
}

/// One reason not to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotRoot {
        root: String,
    },
    StateDirUnusable {
        path: PathBuf,
        why: String,
    },
    LockHeld {
        holder: String,
    },
    UnfinishedJournal {
        /// The command lines that reach this node and this journal.
        ways_on: WaysOn,
        state_dir: PathBuf,
        kubepods: String,
        staging: String,
        strategy: Strategy,
        started_at: u64,
        phase: usize,
    },
    JournalUnreadable {
        state_dir: PathBuf,
        why: String,
    },
    PodsCgroupMissing {
        kubepods: String,
        root: String,
    },
    SystemdDriver {
        kubepods: String,
    },
    /// A name that is not one cgroup directly below the root (the command line checks this;
    /// a library caller can still pass one).
    StagingInvalid {
        staging: String,
    },
    StagingExists {
        staging: String,
    },
    StagingLeftover {
        staging: String,
        kubepods: String,
        /// The command lines that reach this node (the state directory is the caller's).
        ways_on: WaysOn,
    },
    KubeletRunning {
        pids: Vec<u32>,
    },
    IdsShort {
        free: u64,
        needed: u64,
        margin: u64,
        strategy: Strategy,
    },
    IdsUnknown {
        release: String,
        needed: u64,
        margin: u64,
    },
    /// Resume or rollback: no journal in the state directory.
    NoJournal {
        state_dir: PathBuf,
    },
    /// Resume or rollback: the journal is another node's (another `--root`).
    JournalOtherNode {
        state_dir: PathBuf,
        journal_root: String,
        root: String,
        /// The command that reaches the journal's own node.
        way_on: String,
    },
    /// Resume or rollback: the node rebooted since the repair began.
    AfterReboot {
        state_dir: PathBuf,
        root: String,
        then: String,
        now: String,
    },
    /// Resume: a rollback of this repair was started; it must be finished, not resumed.
    RollbackStarted {
        ways_on: WaysOn,
    },
    /// Resume or rollback: neither the pods tree nor the staging tree of the journal exists.
    JournalTreesGone {
        state_dir: PathBuf,
        kubepods: String,
        staging: String,
        root: String,
    },
}

/// The code of [`Refusal::StagingLeftover`], for diagnose's advice.
pub const STAGING_LEFTOVER: &str = "staging-leftover";

/// The name of the preflight line a refusal belongs to.
pub mod line {
    pub const PERMISSION: &str = "permission";
    pub const STATE_DIR: &str = "state dir";
    pub const JOURNAL: &str = "journal";
    pub const PODS: &str = "pods cgroup";
    pub const STAGING: &str = "staging cgroup";
    pub const KUBELET: &str = "kubelet";
    pub const IDS: &str = "memcg ids";
}

impl Refusal {
    /// A stable kebab-case code, for JSON and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotRoot { .. } => "not-root",
            Refusal::StateDirUnusable { .. } => "state-dir-unusable",
            Refusal::LockHeld { .. } => "lock-held",
            Refusal::UnfinishedJournal { .. } => "unfinished-journal",
            Refusal::JournalUnreadable { .. } => "journal-unreadable",
            Refusal::PodsCgroupMissing { .. } => "pods-cgroup-missing",
            Refusal::SystemdDriver { .. } => "systemd-driver",
            Refusal::StagingInvalid { .. } => "staging-invalid",
            Refusal::StagingExists { .. } => "staging-exists",
            Refusal::StagingLeftover { .. } => STAGING_LEFTOVER,
            Refusal::KubeletRunning { .. } => "kubelet-running",
            Refusal::IdsShort { .. } => "ids-short",
            Refusal::IdsUnknown { .. } => "ids-unknown",
            Refusal::NoJournal { .. } => "no-journal",
            Refusal::JournalOtherNode { .. } => "journal-other-node",
            Refusal::AfterReboot { .. } => "after-reboot",
            Refusal::JournalTreesGone { .. } => "journal-trees-gone",
            Refusal::RollbackStarted { .. } => "rollback-started",
        }
    }

    /// The preflight line it shows on.
    pub fn line(&self) -> &'static str {
        match self {
            Refusal::NotRoot { .. } => line::PERMISSION,
            Refusal::StateDirUnusable { .. } | Refusal::LockHeld { .. } => line::STATE_DIR,
            Refusal::UnfinishedJournal { .. }
            | Refusal::JournalUnreadable { .. }
            | Refusal::NoJournal { .. }
            | Refusal::JournalOtherNode { .. }
            | Refusal::AfterReboot { .. }
            | Refusal::JournalTreesGone { .. }
            | Refusal::RollbackStarted { .. } => line::JOURNAL,
            Refusal::PodsCgroupMissing { .. } | Refusal::SystemdDriver { .. } => line::PODS,
            Refusal::StagingInvalid { .. }
            | Refusal::StagingExists { .. }
            | Refusal::StagingLeftover { .. } => line::STAGING,
            Refusal::KubeletRunning { .. } => line::KUBELET,
            Refusal::IdsShort { .. } | Refusal::IdsUnknown { .. } => line::IDS,
        }
    }

    /// Whether it stops `gate`. Diagnose reports what would stop a repair of the node as it is
    /// (a running kubelet, the state directory and permissions are the repair's business).
    pub fn applies_to(&self, gate: Gate) -> bool {
        match gate {
            Gate::Plan | Gate::Repair => !self.journal_only(),
            Gate::Diagnose => matches!(
                self,
                Refusal::PodsCgroupMissing { .. }
                    | Refusal::SystemdDriver { .. }
                    | Refusal::StagingExists { .. }
                    | Refusal::StagingLeftover { .. }
                    | Refusal::IdsShort { .. }
                    | Refusal::IdsUnknown { .. }
            ),
            // Resume and rollback work from a journal: they need root and their state
            // directory, and a running kubelet would undo what they do.
            Gate::Resume | Gate::Rollback => matches!(
                self,
                Refusal::NotRoot { .. }
                    | Refusal::StateDirUnusable { .. }
                    | Refusal::LockHeld { .. }
                    | Refusal::JournalUnreadable { .. }
                    | Refusal::KubeletRunning { .. }
                    | Refusal::NoJournal { .. }
                    | Refusal::JournalOtherNode { .. }
                    | Refusal::AfterReboot { .. }
                    | Refusal::JournalTreesGone { .. }
                    | Refusal::RollbackStarted { .. }
            ),
        }
    }

    /// The refusals only a command that works from a journal (resume, rollback) can meet.
    fn journal_only(&self) -> bool {
        matches!(
            self,
            Refusal::NoJournal { .. }
                | Refusal::JournalOtherNode { .. }
                | Refusal::AfterReboot { .. }
                | Refusal::JournalTreesGone { .. }
                | Refusal::RollbackStarted { .. }
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            Refusal::NotRoot { .. } => "run cgleak as root (sudo)".into(),
            Refusal::StateDirUnusable { path, .. } => format!(
                "make {} a writable directory (a tmpfs such as /run/cgleak) or pass --state-dir DIR",
                path.display()
            ),
            Refusal::LockHeld { .. } => {
                "wait for it to finish; it is working on this node now".into()
            }
            Refusal::UnfinishedJournal { ways_on, .. } => format!(
                "finish it with `{}` or undo it with `{}`",
                ways_on.command(Command::Resume),
                ways_on.command(Command::Rollback)
            ),
            Refusal::JournalUnreadable { state_dir, .. } => format!(
                "look at {}: a repair may be unfinished; do not start another before you know",
                state_dir.display()
            ),
            Refusal::PodsCgroupMissing { .. } => "check --root and --kubepods".into(),
            Refusal::SystemdDriver { .. } => {
                "repair by draining and rebooting the node instead".into()
            }
            Refusal::StagingInvalid { .. } => {
                "give --staging one cgroup name directly below --root, other than --kubepods"
                    .into()
            }
            Refusal::StagingExists { .. } => {
                "look at what is in it; pass another --staging name".into()
            }
            Refusal::StagingLeftover { ways_on, .. } => leftover_hint(ways_on),
            Refusal::KubeletRunning { .. } => "stop it first (systemctl stop kubelet)".into(),
            Refusal::IdsShort { strategy, .. } => format!(
                "{}free ids first (cgleak reclaim on kernels >= 3.16) or reboot the node",
                if *strategy == Strategy::MigrateBack {
                    "try --strategy rename (needs half as many), or "
                } else {
                    ""
                }
            ),
            Refusal::IdsUnknown { needed, margin, .. } => format!(
                "count the ids in use with scripts/memcg-ids.stp and pass --ids-used N (or pipe its \
                 output to --ids-used -); without systemtap, prove the room: cgleak probe-headroom \
                 --count {k} makes {k} empty memcgs at once, and if it exits 0 at most {used} ids \
                 are in use: pass --ids-used {used} (the count of dying memcgs from \
                 /sys/kernel/slab is a lower bound and cannot prove room)",
                k = needed + margin,
                used = crate::model::kernel::MEM_CGROUP_ID_MAX.saturating_sub(needed + margin)
            ),
            Refusal::NoJournal { .. } => "there is nothing to resume or roll back here; pass --state-dir if the repair used another one".into(),
            Refusal::JournalOtherNode { way_on, .. } => format!("keep the journal: it is that node's record of the repair; run {way_on}"),
            Refusal::AfterReboot { state_dir, root, .. } => format!("nothing to do: after a reboot kubelet recreates the tree; move the journal aside, keeping a copy (mv {0} {0}.before-reboot), and check the node with cgleak diagnose --root {root}", state_dir.display()),
            Refusal::JournalTreesGone { .. } => "keep the journal and look at the node: both trees were deleted by something other than cgleak; nothing was changed".into(),
            Refusal::RollbackStarted { ways_on } => format!("finish it with {}; then run cgleak repair again if you still want the repair", ways_on.command(Command::Rollback)),
        }
    }

    /// What plan's JSON shows.
    pub fn blocker(&self) -> Blocker {
        Blocker {
            code: self.code().to_string(),
            message: self.to_string(),
            hint: self.hint(),
        }
    }
}

/// The way on from a staging tree without a journal (see [`crate::repair::leftover`]).
fn leftover_hint(w: &WaysOn) -> String {
    let more = "--rebuild-journal --yes";
    format!(
        "do not start another repair (it would migrate the tree a second time); rebuild the journal from the two live trees and finish the repair with `{}`, or undo it with `{}` (MIGRATION.md, \"A repair without its journal\")",
        w.command_with(Command::Resume, more),
        w.command_with(Command::Rollback, more)
    )
}

/// The command lines that reach this node with its names, from `state_dir`.
fn ways_on(n: &NodeFacts, kubepods: &str, staging: &str, state_dir: &Path) -> WaysOn {
    WaysOn {
        root: n.root.clone(),
        kubepods: kubepods.to_string(),
        staging: staging.to_string(),
        state_dir: state_dir.to_path_buf(),
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotRoot { root } => write!(f, "not root: moving tasks and creating cgroups below {root} needs root (EPERM otherwise)"),
            Refusal::StateDirUnusable { path, why } => write!(f, "the state directory {} cannot hold the journal: {why}", path.display()),
            Refusal::LockHeld { holder } => write!(f, "{holder}"),
            Refusal::UnfinishedJournal { state_dir, kubepods, staging, strategy, started_at, phase, .. } => write!(f,
                "an unfinished repair of {kubepods} (strategy {strategy}, staging cgroup {staging}, started at {started_at} s, phase {phase} begun) has its journal in {}", state_dir.display()),
            Refusal::JournalUnreadable { state_dir, why } => write!(f, "the journal in {} cannot be read: {why}", state_dir.display()),
            Refusal::PodsCgroupMissing { kubepods, root } => write!(f, "{kubepods} not found below {root}"),
            Refusal::SystemdDriver { kubepods } => write!(f, "{kubepods} is the systemd cgroup driver's; systemd owns those cgroups and would undo a migration"),
            Refusal::StagingInvalid { staging } => write!(f, "--staging {staging:?} is not one cgroup name directly below the root, other than the pods cgroup"),
            Refusal::StagingExists { staging } => write!(f, "{staging} already exists and no unfinished cgleak repair owns it"),
            Refusal::StagingLeftover { staging, kubepods, .. } => write!(f, "{staging} is the staging tree of an interrupted repair of {kubepods} whose journal is lost: it mirrors the pods tree"),
            Refusal::KubeletRunning { pids } => write!(f, "running (pids {pids:?}): during the move it would recreate missing pod cgroups, kill containers whose cgroups vanish and rewrite the kubepods limit"),
            Refusal::IdsShort { free, needed, margin, .. } => write!(f, "{free} free but the repair creates {needed} cgroups (+{margin} margin)"),
            Refusal::IdsUnknown { release, needed, margin } => write!(f, "unknown: this kernel ({release}) does not show all dying memcgs (the repair creates {needed} cgroups +{margin} margin)"),
            Refusal::NoJournal { state_dir } => write!(f, "no repair journal in {}", state_dir.display()),
            Refusal::JournalOtherNode { state_dir, journal_root, root, .. } => write!(f, "the journal in {} is for the node at --root {journal_root}, not --root {root}", state_dir.display()),
            Refusal::AfterReboot { root, then, now, .. } => write!(f, "the node at {root} rebooted since the repair started (boot_id {then} then, {now} now): the journal describes cgroups and tasks that no longer exist"),
            Refusal::JournalTreesGone { state_dir, kubepods, staging, root } => write!(f, "the journal in {} is for the pods cgroup {kubepods} (staging {staging}), and neither exists below {root}", state_dir.display()),
            Refusal::RollbackStarted { .. } => write!(f, "a rollback of this repair was started"),
        }
    }
}

/// What stops a repair of the node as it stands, whoever asks: no state directory, no
/// processes. Diagnose calls this; [`for_repair`] adds the rest.
pub fn for_node(n: &NodeFacts) -> Vec<Refusal> {
    let mut out = Vec::new();
    match n.layout {
        // The pods cgroup of a repair interrupted at the end of move-to-staging is gone; the
        // leftover refusal says what that is.
        Layout::Missing if n.staging_state != StagingState::Leftover => {
            out.push(Refusal::PodsCgroupMissing {
                kubepods: n.kubepods.clone(),
                root: n.root.clone(),
            })
        }
        Layout::Systemd => out.push(Refusal::SystemdDriver {
            kubepods: n.kubepods.clone(),
        }),
        _ => {}
    }
    if cgroup_name_problem(&n.staging).is_some() || n.staging == n.kubepods {
        out.push(Refusal::StagingInvalid {
            staging: n.staging.clone(),
        });
    }
    match n.staging_state {
        StagingState::Free => {}
        StagingState::Foreign => out.push(Refusal::StagingExists {
            staging: n.staging.clone(),
        }),
        StagingState::Leftover => out.push(Refusal::StagingLeftover {
            staging: n.staging.clone(),
            kubepods: n.kubepods.clone(),
            ways_on: ways_on(
                n,
                &n.kubepods,
                &n.staging,
                Path::new(crate::model::invocation::DEFAULT_STATE_DIR),
            ),
        }),
    }
    out.extend(ids_refusal(n));
    out
}

fn ids_refusal(n: &NodeFacts) -> Option<Refusal> {
    let needed = plan::ids_needed(n.cgroups, n.strategy);
    let margin = plan::ID_SAFETY_MARGIN;
    match n.ids_free {
        Some(free) if free >= plan::ids_required(n.cgroups, n.strategy) => None,
        Some(free) => Some(Refusal::IdsShort {
            free,
            needed,
            margin,
            strategy: n.strategy,
        }),
        None => Some(Refusal::IdsUnknown {
            release: n.release.clone(),
            needed,
            margin,
        }),
    }
}

/// Every reason a repair (or its dry run, `plan`) must not run, in the order of the preflight
/// table. The one list both commands use.
pub fn for_repair(n: &NodeFacts, r: &RunFacts) -> Vec<Refusal> {
    let mut out = Vec::new();
    if !r.may_write {
        out.push(Refusal::NotRoot {
            root: n.root.clone(),
        });
    }
    out.extend(state_refusal(&r.state, &r.state_dir));
    let owned_by_journal = match &r.journal {
        JournalState::Absent => false,
        JournalState::Unfinished {
            kubepods,
            staging,
            strategy,
            started_at,
            phase,
        } => {
            out.push(Refusal::UnfinishedJournal {
                ways_on: ways_on(n, kubepods, staging, &r.state_dir),
                state_dir: r.state_dir.clone(),
                kubepods: kubepods.clone(),
                staging: staging.clone(),
                strategy: *strategy,
                started_at: *started_at,
                phase: *phase,
            });
            *staging == n.staging
        }
        JournalState::Unreadable { why } => {
            out.push(Refusal::JournalUnreadable {
                state_dir: r.state_dir.clone(),
                why: why.clone(),
            });
            false
        }
    };
    let mut node = for_node(n);
    for x in &mut node {
        if let Refusal::StagingLeftover { ways_on, .. } = x {
            ways_on.state_dir = r.state_dir.clone();
        }
    }
    if owned_by_journal {
        // The unfinished repair's own staging tree: the journal refusal says what to do.
        node.retain(|x| {
            !matches!(
                x,
                Refusal::StagingExists { .. } | Refusal::StagingLeftover { .. }
            )
        });
    }
    out.extend(node);
    if let Kubelet::Running(pids) = &r.kubelet {
        out.push(Refusal::KubeletRunning { pids: pids.clone() });
    }
    // The order of the preflight table (stable: the order within a line stays).
    out.sort_by_key(|x| TABLE_ORDER.iter().position(|l| *l == x.line()));
    out
}

/// The lines of the preflight table that refusals fail, in the table's order.
const TABLE_ORDER: [&str; 7] = [
    line::PERMISSION,
    line::STATE_DIR,
    line::PODS,
    line::JOURNAL,
    line::STAGING,
    line::KUBELET,
    line::IDS,
];

fn state_refusal(s: &StateDir, dir: &Path) -> Option<Refusal> {
    match s {
        StateDir::Usable | StateDir::NotChecked => None,
        StateDir::LockHeld { holder } => Some(Refusal::LockHeld {
            holder: holder.clone(),
        }),
        StateDir::Unusable { why } => Some(Refusal::StateDirUnusable {
            path: dir.to_path_buf(),
            why: why.clone(),
        }),
    }
}

/// The refusals that stop `gate`.
pub fn applying(list: &[Refusal], gate: Gate) -> Vec<Refusal> {
    list.iter()
        .filter(|r| r.applies_to(gate))
        .cloned()
        .collect()
}

/// The refusal error of `command`: every reason with what to do about it; nothing changed.
pub fn to_error(list: &[Refusal], command: &str) -> crate::error::Error {
    let reason = list
        .iter()
        .map(|r| format!("{}: {}; {}", r.line(), r, r.hint()))
        .collect::<Vec<_>>()
        .join("\n  ");
    // A journal of another node, or of a boot gone, is not fixed by running again.
    let hint = if list.iter().all(Refusal::journal_only) {
        "nothing was changed".to_string()
    } else {
        format!("nothing was changed; fix the above and run cgleak {command} again")
    };
    crate::error::Error::refused(reason, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn node() -> NodeFacts {
        NodeFacts {
            root: "/sys/fs/cgroup/memory".into(),
            kubepods: "kubepods".into(),
            layout: Layout::Qos,
            staging: "kubepods2".into(),
            staging_state: StagingState::Free,
            strategy: Strategy::MigrateBack,
            cgroups: 100,
            ids_free: Some(60000),
            release: "5.10.0".into(),
        }
    }

    fn run() -> RunFacts {
        RunFacts {
            may_write: true,
            state_dir: "/run/cgleak".into(),
            state: StateDir::Usable,
            journal: JournalState::Absent,
            kubelet: Kubelet::NotRunning,
        }
    }

    fn codes(l: &[Refusal]) -> Vec<&'static str> {
        l.iter().map(Refusal::code).collect()
    }

    #[test]
    fn journal_refusals_stop_resume_and_rollback_only() {
        let all = [
            Refusal::NoJournal {
                state_dir: "/run/cgleak".into(),
            },
            Refusal::JournalOtherNode {
                state_dir: "/run/cgleak".into(),
                journal_root: "/a".into(),
                root: "/b".into(),
                way_on: "cgleak resume --root /a --state-dir /run/cgleak".into(),
            },
            Refusal::AfterReboot {
                state_dir: "/run/cgleak".into(),
                root: "/a".into(),
                then: "x".into(),
                now: "y".into(),
            },
            Refusal::JournalTreesGone {
                state_dir: "/run/cgleak".into(),
                kubepods: "kubepods".into(),
                staging: "kubepods2".into(),
                root: "/a".into(),
            },
            Refusal::RollbackStarted {
                ways_on: WaysOn {
                    root: "/a".into(),
                    kubepods: "kubepods".into(),
                    staging: "kubepods2".into(),
                    state_dir: "/run/cgleak".into(),
                },
            },
        ];
        for r in &all {
            assert!(
                r.applies_to(Gate::Resume) && r.applies_to(Gate::Rollback),
                "{r}"
            );
            assert!(
                !r.applies_to(Gate::Plan) && !r.applies_to(Gate::Repair),
                "{r}"
            );
            assert!(!r.applies_to(Gate::Diagnose), "{r}");
            assert_eq!(r.line(), line::JOURNAL);
        }
        assert!(all[4]
            .hint()
            .contains("cgleak rollback --root /a --state-dir /run/cgleak"));
        let e = to_error(&all[1..2], "resume").to_string();
        assert!(
            e.contains("--root /a") && e.contains("not --root /b"),
            "{e}"
        );
        assert!(
            e.contains("keep the journal") && !e.contains("run cgleak resume again"),
            "{e}"
        );
    }

    #[test]
    fn a_healthy_node_has_no_refusal() {
        assert!(for_repair(&node(), &run()).is_empty());
        assert!(for_node(&node()).is_empty());
    }

    #[test]
    fn every_fact_gives_its_refusal_in_table_order() {
        let mut n = node();
        n.layout = Layout::Systemd;
        n.staging_state = StagingState::Foreign;
        n.ids_free = Some(100);
        let mut r = run();
        r.may_write = false;
        r.state = StateDir::LockHeld {
            holder: "another cgleak holds the lock".into(),
        };
        r.kubelet = Kubelet::Running(vec![42]);
        assert_eq!(
            codes(&for_repair(&n, &r)),
            [
                "not-root",
                "lock-held",
                "systemd-driver",
                "staging-exists",
                "kubelet-running",
                "ids-short"
            ]
        );
    }

    #[test]
    fn ids_unknown_and_short_use_the_one_requirement() {
        let mut n = node();
        n.ids_free = Some(plan::ids_required(100, Strategy::MigrateBack) - 1);
        assert_eq!(codes(&for_node(&n)), ["ids-short"]);
        n.ids_free = Some(plan::ids_required(100, Strategy::MigrateBack));
        assert!(for_node(&n).is_empty());
        n.ids_free = None;
        let l = for_node(&n);
        assert_eq!(codes(&l), ["ids-unknown"]);
        assert!(l[0].to_string().contains("5.10.0"));
    }

    #[test]
    fn the_unfinished_repairs_staging_tree_is_the_journals_business() {
        let mut n = node();
        n.staging_state = StagingState::Leftover;
        let mut r = run();
        r.journal = JournalState::Unfinished {
            kubepods: "kubepods".into(),
            staging: "kubepods2".into(),
            strategy: Strategy::Rename,
            started_at: 1,
            phase: 1,
        };
        let l = for_repair(&n, &r);
        assert_eq!(codes(&l), ["unfinished-journal"]);
        let hint = l[0].hint();
        assert!(
            hint.contains("cgleak resume --root /sys/fs/cgroup/memory --state-dir /run/cgleak"),
            "{hint}"
        );
    }

    #[test]
    fn a_leftover_with_the_pods_cgroup_gone_is_one_refusal() {
        let mut n = node();
        n.layout = Layout::Missing;
        n.staging_state = StagingState::Leftover;
        let l = for_node(&n);
        assert_eq!(codes(&l), ["staging-leftover"]);
        assert!(l[0]
            .hint()
            .contains("cgleak resume --root /sys/fs/cgroup/memory --state-dir /run/cgleak --rebuild-journal --yes`"));
        n.staging = "k2".into();
        let mut r = run();
        r.state_dir = "/tmp/st".into();
        let hint = for_repair(&n, &r)[0].hint();
        assert!(
            hint.contains("cgleak rollback --root /sys/fs/cgroup/memory --staging k2 --state-dir /tmp/st --rebuild-journal --yes`"),
            "{hint}"
        );
        n.staging = "kubepods2".into();
        n.staging_state = StagingState::Free;
        assert_eq!(codes(&for_node(&n)), ["pods-cgroup-missing"]);
    }

    #[test]
    fn diagnose_sees_what_applies_without_a_state_dir() {
        let mut n = node();
        n.staging_state = StagingState::Foreign;
        let mut r = run();
        r.kubelet = Kubelet::Running(vec![1]);
        r.state = StateDir::LockHeld {
            holder: "another cgleak holds the lock".into(),
        };
        let all = for_repair(&n, &r);
        assert_eq!(codes(&applying(&all, Gate::Diagnose)), codes(&for_node(&n)));
        assert_eq!(
            codes(&applying(&all, Gate::Resume)),
            ["lock-held", "kubelet-running"]
        );
    }

    #[test]
    fn staging_names_are_checked_by_one_rule() {
        for bad in ["", ".", "..", "kubepods/x", "../x", "-x"] {
            assert!(cgroup_name_problem(bad).is_some(), "{bad:?}");
            let mut n = node();
            n.staging = bad.into();
            assert_eq!(codes(&for_node(&n)), ["staging-invalid"], "{bad:?}");
        }
        let mut n = node();
        n.staging = "kubepods".into();
        assert_eq!(codes(&for_node(&n)), ["staging-invalid"]);
        assert_eq!(cgroup_name_problem("kubepods2"), None);
    }

    #[test]
    fn every_refusal_has_a_code_a_sentence_and_a_hint() {
        let mut n = node();
        n.layout = Layout::Missing;
        n.staging = "a/b".into();
        let mut r = run();
        r.may_write = false;
        r.state = StateDir::Unusable {
            why: "a file".into(),
        };
        r.journal = JournalState::Unreadable { why: "bad".into() };
        r.kubelet = Kubelet::Running(vec![1]);
        let l = for_repair(&n, &r);
        assert_eq!(l.len(), 6, "{l:?}");
        for x in &l {
            assert!(!x.to_string().is_empty() && !x.hint().is_empty());
            assert!(x.code().chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            assert_eq!(x.blocker().code, x.code());
        }
    }
}
