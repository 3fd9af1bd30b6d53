//! The staging tree of an interrupted repair whose journal is lost or corrupt.
//!
//! A repair builds the staging tree pre-order with every cgroup's settings (create-staging),
//! then moves the pods tree into it leaf-first, removing each emptied cgroup (move-to-staging),
//! then builds the pods tree again and moves back, removing staging (migrate-back), or renames
//! staging (rename). At any interruption point one tree's relative paths are a subset of the
//! other's, the cgroups on both sides have the same settings, and every staging cgroup has
//! memory.move_charge_at_immigrate 3 where the kernel takes it (docs/kernel-facts.md, "Moving
//! tasks", and "Kernel differences"). A cgroup of the staging name that someone else made does not look like that; a
//! new repair over a leftover would start a second migration, so it must be recognised.

use crate::error::{Error, Result};
use crate::host::{Hierarchy, Node};
use crate::model::invocation::cgroup_name_problem;
use crate::model::kernel::KernelInfo;
use crate::model::path::{parent, rebase};
use crate::model::{is_unlimited, CgroupRecord, Layout, Settings, Snapshot};
use crate::repair::journal::{self, Header, Journal};
use crate::repair::plan::{self, PlanInput, Strategy, MOVE_CHARGE_ALL};
use crate::repair::refusal::StagingState;
use crate::scan;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Settings equal as a repair carries them over: move_charge_at_immigrate aside (staging has
/// 3), and every "unlimited" the same (the kernel shows its page-rounded maximum).
fn same_settings(a: &Settings, b: &Settings) -> bool {
    let limit = |x: u64, y: u64| x == y || (is_unlimited(x) && is_unlimited(y));
    let memsw = match (a.memsw_limit_in_bytes, b.memsw_limit_in_bytes) {
        (Some(x), Some(y)) => limit(x, y),
        (x, y) => x == y,
    };
    limit(a.limit_in_bytes, b.limit_in_bytes)
        && memsw
        && limit(a.soft_limit_in_bytes, b.soft_limit_in_bytes)
        && a.swappiness == b.swappiness
        && a.oom_kill_disable == b.oom_kill_disable
        && a.use_hierarchy == b.use_hierarchy
}

/// The records of `snap` by relative path: settings, and whether the cgroup is an empty
/// leaf (no tasks, no child cgroup), which the cgroup a create phase made last may be before
/// its settings are written.
fn records(snap: &Snapshot) -> HashMap<String, (&Settings, bool)> {
    let parents: HashSet<&str> = snap.cgroups.iter().map(|c| parent(&c.path)).collect();
    snap.cgroups
        .iter()
        .map(|c| {
            let empty_leaf = c.tasks.is_empty() && !parents.contains(c.path.as_str());
            let rel = rebase(&c.path, &snap.kubepods, "");
            (rel, (&c.settings, empty_leaf))
        })
        .collect()
}

/// Whether `staging` (a scan of the staging cgroup) is what an interrupted repair of `pods`
/// leaves behind. `move_charge`: whether the kernel takes move_charge_at_immigrate 3
/// ([`crate::model::kernel::KernelInfo::move_charge_supported`]). Pure.
pub fn is_leftover(pods: &Snapshot, staging: &Snapshot, move_charge: Option<bool>) -> bool {
    if staging.layout == Layout::Missing || staging.layout == Layout::Systemd {
        return false;
    }
    let p = records(pods);
    let s = records(staging);
    let nested = s.keys().all(|k| p.contains_key(k)) || p.keys().all(|k| s.contains_key(k));
    let marked = |st: &Settings| {
        move_charge == Some(false)
            || st
                .move_charge_at_immigrate
                .is_none_or(|v| v == MOVE_CHARGE_ALL)
    };
    // Cgroups that do not look like a copy: at most one may, the one made last (a crash
    // between its mkdir and its settings), an empty leaf on one side.
    let odd: Vec<&String> = s
        .iter()
        .filter(|(k, (st, _))| {
            !marked(st) || p.get(*k).is_some_and(|(pt, _)| !same_settings(st, pt))
        })
        .map(|(k, _)| k)
        .collect();
    let excused = match odd.as_slice() {
        [] => true,
        // Another staging cgroup carries the marks: a lone empty cgroup proves nothing.
        [k] => s.len() > 1 && (s[*k].1 || p.get(*k).is_some_and(|(_, leaf)| *leaf)),
        _ => false,
    };
    // Where nothing marks the staging cgroups, a lone empty cgroup mirrors any pods cgroup's
    // settings: ask for more than that.
    let enough =
        move_charge != Some(false) || staging.cgroups.len() > 1 || pods.layout == Layout::Missing;
    nested && excused && enough
}

/// What holds the staging name on the node: nothing, a foreign cgroup or a leftover.
pub fn staging_state(
    fs: &dyn Hierarchy,
    release: &str,
    pods: &Snapshot,
    staging: &str,
    move_charge: Option<bool>,
) -> Result<StagingState> {
    // An invalid name is refused as such; it is not looked up.
    if cgroup_name_problem(staging).is_some() || staging == pods.kubepods || !fs.exists(staging) {
        return Ok(StagingState::Free);
    }
    let snap = scan::scan_tree(fs, release, staging, true)?;
    Ok(if is_leftover(pods, &snap, move_charge) {
        StagingState::Leftover
    } else {
        StagingState::Foreign
    })
}

/// The snapshot an interrupted repair started from, rebuilt from the two live trees: every
/// cgroup of either (staging's rebased to the pods name) in pre-order, its settings from the
/// side that is not a freshly made empty leaf (the pods side first), its tasks from both.
/// move_charge_at_immigrate 3 is what the repair wrote, not the original value: that one is
/// taken from the nearest pods-side ancestor with another value, else 0. Returns the snapshot
/// and how many values were guessed that way. Pure.
pub fn rebuild_snapshot(pods: &Snapshot, staging: &Snapshot) -> (Snapshot, usize) {
    let p = records(pods);
    let mut by_rel: BTreeMap<Vec<String>, CgroupRecord> = BTreeMap::new();
    for c in &staging.cgroups {
        let mut rec = c.clone();
        rec.path = rebase(&c.path, &staging.kubepods, &pods.kubepods);
        by_rel.insert(rec.path.split('/').map(String::from).collect(), rec);
    }
    for c in &pods.cgroups {
        let key: Vec<String> = c.path.split('/').map(String::from).collect();
        let rel = rebase(&c.path, &pods.kubepods, "");
        let fresh_here = p.get(&rel).is_some_and(|(_, leaf)| *leaf);
        let mut rec = c.clone();
        if let Some(other) = by_rel.get(&key) {
            if fresh_here && !same_settings(&c.settings, &other.settings) {
                rec.settings = other.settings.clone();
            }
            rec.tasks.extend(&other.tasks);
            rec.tasks.sort_unstable();
            rec.tasks.dedup();
        }
        by_rel.insert(key, rec);
    }
    // Pre-order, siblings by name: the order of a scan.
    let mut cgroups: Vec<CgroupRecord> = by_rel.into_values().collect();
    let mut known: HashMap<String, Option<u64>> = HashMap::new();
    let mut guessed = 0;
    for rec in &mut cgroups {
        let original = rec
            .settings
            .move_charge_at_immigrate
            .filter(|v| *v != MOVE_CHARGE_ALL);
        let value = match rec.settings.move_charge_at_immigrate {
            None => None,
            Some(_) if original.is_some() => original,
            Some(_) => {
                guessed += 1;
                Some(known.get(parent(&rec.path)).copied().flatten().unwrap_or(0))
            }
        };
        rec.settings.move_charge_at_immigrate = value;
        known.insert(rec.path.clone(), value);
    }
    let layout = scan::layout_of(&cgroups, false);
    let snap = Snapshot {
        layout,
        cgroups,
        ..pods.clone()
    };
    (snap, guessed)
}

/// What [`rebuild_journal`] wrote.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The repair phase resume starts from.
    pub phase: usize,
    pub cgroups: usize,
    /// move_charge_at_immigrate values that could not be known (see [`rebuild_snapshot`]).
    pub guessed_move_charge: usize,
}

/// The phase a resume of the rebuilt journal starts from: move-to-staging when staging holds
/// every cgroup (moving what is left is all that remains before the way back), else
/// create-staging. Every phase is safe to repeat in reconcile mode, so starting earlier than
/// the interruption costs time, never correctness; starting later could skip work.
fn resume_phase(pods: &Snapshot, staging: &Snapshot) -> usize {
    let s = records(staging);
    let staging_has_all = records(pods).keys().all(|k| s.contains_key(k));
    usize::from(staging_has_all)
}

/// Write a fresh journal for the leftover staging tree of an interrupted repair whose journal
/// is lost or corrupt, so `resume` and `rollback` can finish or undo it. Refuses (nothing
/// written) unless the staging tree is such a leftover and no readable unfinished journal
/// exists; a corrupt journal.json is kept beside the new one as journal.json.corrupt.
pub fn rebuild_journal(
    fs: &dyn Node,
    kubepods: &str,
    staging: &str,
    state_dir: &Path,
) -> Result<Rebuilt> {
    let _lock = journal::lock(state_dir)?;
    let pods = scan::scan(fs, kubepods)?;
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    if staging_state(
        fs,
        &kernel.release,
        &pods,
        staging,
        kernel.move_charge_supported(),
    )? != StagingState::Leftover
    {
        return Err(Error::refused(
            format!("{staging} is not the staging tree of an interrupted repair of {kubepods} (missing, or not a copy of the pods tree)"),
            "there is no journal to rebuild; check the node with cgleak diagnose",
        ));
    }
    match journal::load(state_dir) {
        Ok(Some((_, p))) if !p.finished() => {
            return Err(Error::refused(
                format!(
                    "{} holds the journal of an unfinished repair",
                    state_dir.display()
                ),
                "use it: run cgleak resume or cgleak rollback without --rebuild-journal",
            ))
        }
        Ok(_) => {}
        Err(_) => {
            let j = state_dir.join(journal::JOURNAL_FILE);
            let keep = state_dir.join(format!("{}.corrupt", journal::JOURNAL_FILE));
            std::fs::rename(&j, &keep).map_err(|e| Error::io("rename", &j, e))?;
        }
    }
    let left = scan::scan(fs, staging)?;
    let (snapshot, guessed) = rebuild_snapshot(&pods, &left);
    let phase = resume_phase(&pods, &left);
    let strategy = Strategy::MigrateBack;
    let plan = plan::plan(
        &snapshot,
        &PlanInput {
            staging: staging.to_string(),
            strategy,
            move_charge: kernel.move_charge_supported(),
            ids_free: None,
        },
    );
    let header = Header {
        format: journal::JOURNAL_FORMAT,
        cgleak_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: super::now(),
        boot_id: fs.boot_id()?.trim().to_string(),
        root: fs.root().display().to_string(),
        kubepods: kubepods.to_string(),
        staging: staging.to_string(),
        strategy,
        snapshot,
        plan,
    };
    let mut j = Journal::create(state_dir, &header)?;
    j.mark(&format!("begin {phase}"))?;
    Ok(Rebuilt {
        phase,
        cgroups: header.snapshot.cgroups.len(),
        guessed_move_charge: guessed,
    })
}

/// `--rebuild-journal` of resume and rollback: rebuild when asked, and say what was guessed.
pub fn rebuild_if_asked(
    asked: bool,
    fs: &dyn Node,
    kubepods: &str,
    staging: &str,
    state_dir: &Path,
) -> Result<()> {
    if !asked {
        return Ok(());
    }
    let r = rebuild_journal(fs, kubepods, staging, state_dir)?;
    log::warn!(
        "rebuilt the journal in {} from {kubepods} and {staging}: {} cgroups, resuming from phase {}",
        state_dir.display(),
        r.cgroups,
        r.phase
    );
    if r.guessed_move_charge > 0 {
        log::warn!(
            "memory.move_charge_at_immigrate of {} cgroups was lost with the journal (the repair writes 3 on copies): they get their parent's value, or 0 (kubelet leaves it 0)",
            r.guessed_move_charge
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::plan::tests::snapshot_from;

    /// `snap` renamed to `name`, with move_charge_at_immigrate 3 everywhere: what
    /// create-staging builds.
    fn staging_of(snap: &Snapshot, name: &str) -> Snapshot {
        let mut s = snap.clone();
        s.kubepods = name.into();
        for c in &mut s.cgroups {
            c.path = rebase(&c.path, &snap.kubepods, name);
            c.settings.move_charge_at_immigrate = Some(MOVE_CHARGE_ALL);
        }
        s
    }

    fn tree() -> Snapshot {
        snapshot_from(&[
            (0, 1 << 30, vec![]),
            (0, 0, vec![7]),
            (1, 12345344, vec![8, 9]),
            (0, 0, vec![10]),
        ])
    }

    #[test]
    fn every_interruption_point_is_a_leftover() {
        let pods = tree();
        let full = staging_of(&pods, "kubepods2");
        // create-staging half done: a pre-order prefix of staging.
        let mut half = full.clone();
        half.cgroups.truncate(2);
        assert!(is_leftover(&pods, &half, Some(true)));
        // move-to-staging half done: pods lost its leaves.
        let mut moved = pods.clone();
        moved
            .cgroups
            .retain(|c| c.path == "kubepods" || c.path == "kubepods/n1");
        assert!(is_leftover(&moved, &full, Some(true)));
        // move-to-staging done: the pods cgroup is gone.
        let mut gone = pods.clone();
        gone.cgroups.clear();
        gone.layout = Layout::Missing;
        assert!(is_leftover(&gone, &full, Some(true)));
        assert!(is_leftover(&gone, &full, Some(false)));
    }

    #[test]
    fn a_foreign_cgroup_is_not_a_leftover() {
        let pods = tree();
        // Another tree: a path pods does not have, while pods has paths it lacks.
        let mut other = staging_of(&pods, "kubepods2");
        other.cgroups[3].path = "kubepods2/elsewhere".into();
        assert!(!is_leftover(&pods, &other, Some(true)));
        // Same shape, other limits.
        let mut limits = staging_of(&pods, "kubepods2");
        limits.cgroups[0].settings.limit_in_bytes = 4096;
        assert!(!is_leftover(&pods, &limits, Some(true)));
        // Made by hand: move_charge_at_immigrate as a fresh cgroup has it.
        let mut by_hand = staging_of(&pods, "kubepods2");
        by_hand.cgroups.truncate(1);
        by_hand.cgroups[0].settings = pods.cgroups[0].settings.clone();
        assert!(!is_leftover(&pods, &by_hand, Some(true)));
        // Where nothing marks staging, a lone cgroup proves nothing.
        assert!(!is_leftover(&pods, &by_hand, Some(false)));
    }
}
