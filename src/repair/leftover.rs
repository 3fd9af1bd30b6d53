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

use crate::error::Result;
use crate::host::{parent, rebase, Node};
use crate::model::{is_unlimited, Layout, Settings, Snapshot};
use crate::repair::plan::MOVE_CHARGE_ALL;
use crate::repair::refusal::{cgroup_name_problem, StagingState};
use crate::scan;
use std::collections::{HashMap, HashSet};

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
    fs: &dyn Node,
    pods: &Snapshot,
    staging: &str,
    move_charge: Option<bool>,
) -> Result<StagingState> {
    // An invalid name is refused as such; it is not looked up.
    if cgroup_name_problem(staging).is_some() || staging == pods.kubepods || !fs.exists(staging) {
        return Ok(StagingState::Free);
    }
    let snap = scan::scan(fs, staging)?;
    Ok(if is_leftover(pods, &snap, move_charge) {
        StagingState::Leftover
    } else {
        StagingState::Foreign
    })
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
