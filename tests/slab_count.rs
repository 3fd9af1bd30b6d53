//! Issue 14: the emulated 3.10 held to what a real RHEL 7.8 kernel (3.10.0-1127) showed, and
//! `diagnose` counting its dying memcgs (the emulated truth: the kmem-pinned dying,
//! `dying_split().0`) from /sys/kernel/slab without systemtap
//! (docs/kernel-facts.md, "Counting dying memcgs").

#[path = "support/emulated_node.rs"]
mod emulated_node;

use cgleak::host::emulated::{EmulatedFs, KernelProfile, SLAB_DIR};
use cgleak::host::{Hierarchy, Host};
use emulated_node::Node;
use nix::errno::Errno;

fn errno(r: cgleak::error::Result<()>) -> Errno {
    match r {
        Err(cgleak::error::Error::Sys(e)) => e.errno,
        other => panic!("expected a system error, got {other:?}"),
    }
}

/// The per-memcg cache names in the node's /sys/kernel/slab, sorted.
fn memcg_caches(base: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(base.join(SLAB_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(')'))
        .collect();
    v.sort();
    v
}

/// A 3.10 node with kmem activated on kubepods the way kubelet and old runc did (1, then -1):
/// children made afterwards inherit it.
fn kmem_node() -> (tempfile::TempDir, EmulatedFs) {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("n"), KernelProfile::V3_10).unwrap();
    emu.mkdir("kubepods").unwrap();
    emu.write("kubepods", "memory.kmem.limit_in_bytes", "1")
        .unwrap();
    emu.write("kubepods", "memory.kmem.limit_in_bytes", "-1")
        .unwrap();
    emu.mkdir("kubepods/podA").unwrap();
    (dir, emu)
}

#[test]
fn cache_copies_appear_for_kmem_active_memcgs_with_tasks_and_outlive_them() {
    let (_d, emu) = kmem_node();
    let base = emu.base().to_path_buf();
    emu.mkdir("kubepods/podA/c1").unwrap();
    emu.mkdir("kubepods/podA/idle").unwrap();
    assert!(memcg_caches(&base).is_empty(), "no task, no copies");
    let pid = emu.spawn("kubepods/podA/c1", "app").unwrap();
    let caches = memcg_caches(&base);
    assert_eq!(caches, ["dentry(1:c1)", "kmalloc-64(1:c1)"], "{caches:?}");
    // The container exits and kubelet removes its cgroup: the copies stay and pin it.
    emu.exit(pid);
    emu.rmdir("kubepods/podA/c1").unwrap();
    assert_eq!(memcg_caches(&base), caches);
    assert_eq!(emu.dying_split().0, 1);
    // A kmem-active memcg whose tasks never allocated holds no kmem charge: freed at rmdir.
    emu.rmdir("kubepods/podA/idle").unwrap();
    assert_eq!(emu.dying(), 1);
    // A new cgroup of the same name gets a new kmem id: ids are not reused.
    emu.mkdir("kubepods/podA/c1").unwrap();
    emu.spawn("kubepods/podA/c1", "app").unwrap();
    assert!(memcg_caches(&base).contains(&"dentry(2:c1)".to_string()));
    // /proc/cgroups counts live memcgs only on 3.10.
    let row = cgleak::host::parse_proc_cgroups_memory(&emu.proc_cgroups().unwrap()).unwrap();
    assert_eq!(row.1, emu.hierarchy_live().unwrap());
}

#[test]
fn a_kmem_inactive_memcg_makes_no_copies() {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("n"), KernelProfile::V3_10).unwrap();
    emu.mkdir("kubepods").unwrap();
    emu.mkdir("kubepods/c").unwrap();
    let pid = emu.spawn("kubepods/c", "app").unwrap();
    emu.exit(pid);
    emu.rmdir("kubepods/c").unwrap();
    assert!(memcg_caches(emu.base()).is_empty());
    assert_eq!(emu.dying(), 0);
}

#[test]
fn mkdir_at_id_exhaustion_is_enomem_on_3_10_and_enospc_later() {
    for (profile, want) in [
        (KernelProfile::V3_10, Errno::ENOMEM),
        (KernelProfile::V6_1, Errno::ENOSPC),
    ] {
        let dir = cgleak::host::emulated::tempdir().unwrap();
        let emu = EmulatedFs::create(&dir.path().join("n"), profile).unwrap();
        emu.add_dying(profile.id_limit() - emu.ids_used()).unwrap();
        assert_eq!(errno(emu.mkdir("one-more")), want, "{profile}");
        assert_eq!(errno(emu.add_dying(1)), want, "{profile}");
    }
}

#[test]
fn a_bulk_leak_leaves_one_copy_per_dying_memcg() {
    let dir = cgleak::host::emulated::tempdir().unwrap();
    let emu = EmulatedFs::create(&dir.path().join("n"), KernelProfile::V3_10).unwrap();
    emu.add_dying(300).unwrap();
    let caches = memcg_caches(emu.base());
    assert_eq!(caches.len(), 300);
    let ids: std::collections::HashSet<_> = caches
        .iter()
        .map(|c| cgleak::ids::slab::parse_memcg_cache(c).unwrap().0)
        .collect();
    assert_eq!(ids.len(), 300);
}

/// The acceptance: diagnose reports "at least N" with N the emulated truth, and the verdict
/// uses it (no --ids-used).
#[test]
fn diagnose_counts_at_least_the_slab_pinned_memcgs_and_ranks_on_it() {
    let node = Node::new("3.10", 10, 64_600, true);
    // Containers that ran and were removed, as kubelet does it, on top of the bulk leak.
    let emu = node.emu();
    let snap = cgleak::scan::scan(&emu, "kubepods").unwrap();
    let mut removed = 0;
    for c in snap
        .cgroups
        .iter()
        .rev()
        .filter(|c| !c.tasks.is_empty())
        .take(5)
    {
        for pid in &c.tasks {
            emu.exit(*pid);
        }
        emu.rmdir(&c.path).unwrap();
        removed += 1;
    }
    assert_eq!(removed, 5);
    let truth = emu.dying_split().0;
    assert_eq!(truth, 64_605);
    drop(emu);
    let (code, j) = node.json(&["diagnose", "--format", "json"]);
    let h = &j["hierarchy"];
    assert_eq!(h["dying_at_least"], truth, "{h}");
    assert_eq!(
        h["dying"],
        serde_json::Value::Null,
        "the exact count stays unknown"
    );
    assert_eq!(h["slab_count"]["dying_at_least"], truth);
    assert_eq!(j["verdict"]["status"], "leaking", "{}", j["verdict"]);
    assert_eq!(code, 1);
    let reasons = j["verdict"]["reasons"].to_string();
    assert!(
        reasons.contains("at least 64,605 dying memcgs"),
        "{reasons}"
    );
    assert!(reasons.contains("ENOMEM"), "{reasons}");
    let (_, text, _) = node.diagnose(&[]);
    assert!(
        text.contains("at least 64,605 (from /sys/kernel/slab)"),
        "{text}"
    );
    assert!(text.contains("at most"), "{text}");
    let (_, prom, _) = node.diagnose(&["--format", "prometheus"]);
    assert!(
        prom.contains(&format!("cgleak_memcg_dying_at_least {truth}")),
        "{prom}"
    );
    let (_, npd, _) = node.diagnose(&["--format", "npd"]);
    assert!(npd.contains("dying at least 64605"), "{npd}");
}

#[test]
fn a_few_slab_pinned_memcgs_leave_the_verdict_on_the_trigger() {
    let node = Node::new("3.10", 10, 2_000, true);
    let (_, j) = node.json(&["diagnose", "--format", "json"]);
    assert_eq!(j["hierarchy"]["dying_at_least"], 2_000);
    // At most ~63,000 free proves nothing; kmem active under kubepods is the sign.
    assert_eq!(j["verdict"]["status"], "at-risk", "{}", j["verdict"]);
}

#[test]
fn without_sys_kernel_slab_the_count_is_unavailable_and_says_why() {
    let node = Node::new("3.10", 5, 100, true);
    std::fs::remove_dir_all(node.base.join(SLAB_DIR)).unwrap();
    let (_, j) = node.json(&["diagnose", "--format", "json"]);
    let h = &j["hierarchy"];
    assert_eq!(h["dying_at_least"], serde_json::Value::Null);
    let why = h["slab_unavailable"].as_str().unwrap();
    assert!(why.contains("SLAB allocator"), "{why}");
    assert!(j["verdict"]["reasons"]
        .to_string()
        .contains("not counted from slab caches"));
}

#[test]
fn newer_kernels_are_not_counted_from_slab() {
    let node = Node::new("6.1", 5, 100, false);
    let (_, j) = node.json(&["diagnose", "--format", "json"]);
    assert_eq!(j["hierarchy"]["dying_at_least"], serde_json::Value::Null);
    assert_eq!(j["hierarchy"]["slab_unavailable"], serde_json::Value::Null);
    assert_eq!(j["hierarchy"]["dying"], 100);
}

/// The repair's id gate needs an upper bound of the ids in use: the slab count cannot give it,
/// and the refusal points at probe-headroom.
#[test]
fn the_id_gate_still_refuses_and_names_probe_headroom() {
    let node = Node::new("3.10", 10, 500, true);
    let (code, out, err) = node.run(&["plan", "--assume-kubelet-stopped"]);
    assert_eq!(code, 2, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("probe-headroom --count"), "{all}");
    assert!(all.contains("cannot prove room"), "{all}");
}
