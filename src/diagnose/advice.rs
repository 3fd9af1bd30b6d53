//! What to do, by kernel era: the advice of a verdict.
//!
//! The era decides the remedy (docs/kernel-facts.md, "Kernel differences"): on 3.10 the leak
//! comes from kmem accounting activated per cgroup, and the migration repair recreates the pods
//! cgroups without it; dropping the page cache cannot free slab-pinned memcgs there, so
//! `cgleak reclaim` is never advised on 3.10 (it refuses there). From 3.16 every memcg accounts
//! kmem, a migration does not help, and reclaim, a swap cycle (from 4.8: "Ids and swap from
//! 4.8"), `cgroup.memory=nokmem` or a reboot are the ways. The ids a repair needs come from
//! [`crate::repair::plan::ids_needed`], the same function `cgleak plan` uses.

use super::facts::{Facts, Status};
use super::numbers::sep;
use crate::model::kernel::Era;
use crate::repair::plan::{ids_needed, Strategy, ID_SAFETY_MARGIN};

/// How to count the ids on 3.10, where the kernel does not show dying memcgs.
pub const STAP_HINT: &str = "count the memcg ids in use with the systemtap probe \
     scripts/memcg-ids.stp (it asks the kernel for every memcg id, live or dying, as the \
     original repair's procedure did) and pass it as --ids-used N, or pipe it in: \
     stap -g scripts/memcg-ids.stp | cgleak diagnose --ids-used -; without systemtap, \
     `cgleak probe-headroom --count N` proves N ids free (the count of dying memcgs from \
     /sys/kernel/slab is a lower bound and cannot prove room)";

/// Why `cgleak reclaim` is no remedy on 3.10 (said by diagnose's advice and reclaim's refusal).
pub const RECLAIM_ON_310: &str = "on 3.10 `cgleak reclaim` cannot give ids back: slab objects \
     pin the dying memcgs, dropping the page cache does not free them, and the kernel does not \
     show which ones only page cache holds";

/// The advice for `status`.
pub fn advise(f: &Facts, status: Status) -> Vec<String> {
    let mut out = by_status(f, status);
    // An interrupted repair's staging tree comes before anything else: a second repair would
    // migrate the tree again.
    if let Some(b) = f
        .repair_refusals
        .iter()
        .find(|b| b.code == crate::repair::refusal::STAGING_LEFTOVER)
    {
        out.insert(0, format!("{}: {}", b.message, b.hint));
    }
    out
}

fn by_status(f: &Facts, status: Status) -> Vec<String> {
    match status {
        Status::Healthy => healthy(f),
        Status::Unknown => unknown(f),
        Status::AtRisk | Status::Leaking if f.is_v2() => v2(f),
        Status::AtRisk | Status::Leaking if f.is_legacy() => {
            if f.kubepods.kmem_active == Some(true) {
                legacy_trigger(f)
            } else {
                legacy_no_trigger()
            }
        }
        Status::AtRisk | Status::Leaking => modern(f),
    }
}

fn healthy(f: &Facts) -> Vec<String> {
    if f.is_legacy() && f.kubepods.kmem_active == Some(false) && !f.nokmem {
        return vec![
            "keep kmem accounting off: kubelet built with the nokmem tag (1.14+) and \
                     runc >= 1.0.0-rc94, or boot with cgroup.memory=nokmem"
                .to_string(),
        ];
    }
    vec![]
}

fn unknown(f: &Facts) -> Vec<String> {
    let mut a = Vec::new();
    let kp = &f.kubepods;
    if f.hierarchy.live.is_none() && !f.is_v2() {
        a.push(
            "run as root and pass --root with the memory cgroup v1 directory \
             (usually /sys/fs/cgroup/memory)"
                .to_string(),
        );
    }
    if f.is_legacy() {
        if kp.kmem_active.is_none() && kp.found {
            a.push(format!(
                "check kmem accounting: cat {}/{}/memory.kmem.slabinfo (Input/output error \
                 means not active)",
                f.hierarchy.root, kp.name
            ));
        }
        a.push(STAP_HINT.to_string());
    }
    if f.is_v2() && f.hierarchy.live.is_none() && f.hierarchy.nr_dying_descendants.is_none() {
        a.push(
            "pass --root a cgroup v2 directory whose cgroup.controllers lists memory (usually \
             /sys/fs/cgroup on a v2 host), or the memory cgroup v1 directory \
             (/sys/fs/cgroup/memory) where memory is mounted as v1"
                .to_string(),
        );
    } else if f.is_v2() {
        a.push(
            "read nr_dying_descendants from /sys/fs/cgroup/cgroup.stat and count the live \
             cgroups"
                .to_string(),
        );
    }
    a
}

fn v2(f: &Facts) -> Vec<String> {
    let mut a = vec![
        "cgleak reclaim: drops clean page cache so dying cgroups can be freed \
                      (costs cold caches: reads go to disk for a while)"
            .to_string(),
    ];
    if !f.nokmem {
        a.push(
            "boot with cgroup.memory=nokmem so slab objects stop pinning deleted cgroups, \
             or reboot the node in a maintenance window"
                .to_string(),
        );
    }
    a
}

/// 3.10 with kmem active under the pods cgroup: stop the trigger, then migrate.
fn legacy_trigger(f: &Facts) -> Vec<String> {
    let mut a = Vec::new();
    if f.nokmem {
        a.push(
            "kmem is active although cgroup.memory=nokmem is set: check that this kernel \
             honours it (RHEL >= 3.10.0-1062)"
                .to_string(),
        );
    } else {
        a.push(
            "stop kmem accounting from being enabled: kubelet built with the nokmem tag \
             (1.14+) and runc >= 1.0.0-rc94, or boot with cgroup.memory=nokmem \
             (RHEL >= 3.10.0-1062)"
                .to_string(),
        );
    }
    let need = f
        .kubepods
        .cgroups
        .map(|n| format!(" The repair of {} cgroups needs {}.", sep(n), repair_ids(n)))
        .unwrap_or_default();
    a.push(format!(
        "then, in a maintenance window with kubelet stopped, run `cgleak plan` and \
         `cgleak repair`: the migration recreates the pods cgroups without kmem \
         accounting, so deletions stop leaking.{need}"
    ));
    if let (Some(free), Some(n)) = (f.hierarchy.ids_free, f.kubepods.cgroups) {
        a.extend(too_few_ids(free, n));
    }
    a.push(format!(
        "ids already leaked come back only when their kmem charges go, in practice on reboot: \
         {RECLAIM_ON_310}"
    ));
    if f.hierarchy.dying.is_none() {
        a.push(STAP_HINT.to_string());
    }
    if f.kubelet.running == Some(true) {
        a.push(
            "kubelet is running: stop it (systemctl stop kubelet) before `cgleak repair`, \
             and restart cAdvisor after"
                .to_string(),
        );
    }
    a
}

/// What a repair of `cgroups` cgroups needs, per strategy, as `cgleak plan` counts it.
pub fn repair_ids(cgroups: u64) -> String {
    let n = cgroups as usize;
    let (back, rename) = (
        ids_needed(n, Strategy::MigrateBack),
        ids_needed(n, Strategy::Rename),
    );
    format!(
        "{} free ids with --strategy migrate-back ({} + {ID_SAFETY_MARGIN} margin), {} with \
         --strategy rename ({} + {ID_SAFETY_MARGIN} margin)",
        sep(back + ID_SAFETY_MARGIN),
        sep(back),
        sep(rename + ID_SAFETY_MARGIN),
        sep(rename),
    )
}

/// When the free ids do not cover a repair: which strategy still fits, or a reboot.
fn too_few_ids(free: u64, cgroups: u64) -> Option<String> {
    let n = cgroups as usize;
    let back = ids_needed(n, Strategy::MigrateBack) + ID_SAFETY_MARGIN;
    let rename = ids_needed(n, Strategy::Rename) + ID_SAFETY_MARGIN;
    if free < rename {
        Some(format!(
            "only {} ids are free, fewer than even --strategy rename needs ({}): drain and \
             reboot the node instead",
            sep(free),
            sep(rename)
        ))
    } else if free < back {
        Some(format!(
            "only {} ids are free, fewer than migrate-back needs ({}): run \
             `cgleak repair --strategy rename` ({})",
            sep(free),
            sep(back),
            sep(rename)
        ))
    } else {
        None
    }
}

/// 3.10, ids short, nothing under the pods cgroup activates kmem now.
fn legacy_no_trigger() -> Vec<String> {
    vec![
        format!(
            "the ids of dying memcgs come back only when their charges go, in practice on \
             reboot: {RECLAIM_ON_310}; plan a drain and a reboot in a maintenance window"
        ),
        "find what activated kmem accounting before (kubelet 1.9-1.13, runc before \
         1.0.0-rc94) and keep it off: kubelet built with the nokmem tag, or boot with \
         cgroup.memory=nokmem"
            .to_string(),
    ]
}

/// 3.16 and later (or an unknown kernel that still counts ids).
fn modern(f: &Facts) -> Vec<String> {
    let mut a = vec![
        "a migration (`cgleak repair`) does NOT help on this kernel: every memcg accounts \
         kernel memory anyway"
            .to_string(),
        "cgleak reclaim: drops clean page cache that pins dying memcgs so the kernel frees \
         them (costs cold caches: reads go to disk for a while)"
            .to_string(),
    ];
    if f.kernel.info().ids_released_at_offline() == Some(true) {
        // docs/kernel-facts.md, "Ids and swap from 4.8": page cache does not hold ids; swap does.
        a.push(
            "from 4.8 on only dying memcgs with swapped-out pages keep their ids: if mkdir \
             fails, `cgleak reclaim --swap-cycle` gives them back (swapoff and swapon, area by \
             area, in a quiet window: needs memory for the swap in use), or a reboot"
                .to_string(),
        );
    }
    if !f.nokmem {
        a.push(
            "boot with cgroup.memory=nokmem so slab objects stop pinning deleted memcgs \
             (a reboot also frees every leaked id)"
                .to_string(),
        );
    } else {
        a.push("a reboot frees every leaked id".to_string());
    }
    if f.kernel.era == Some(Era::NoMoveCharge) {
        a.push(
            "on >= 6.13 charges cannot move between memcgs at all (move_charge_at_immigrate \
             is gone): only freeing the memory releases a dying memcg"
                .to_string(),
        );
    }
    a
}
