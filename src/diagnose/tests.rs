//! The diagnose module's tests: gather on the two fakes, the ids, the ranking on every kernel
//! era, advice, and the text and JSON renderings.

use super::fakes::{FakeHost, MemHierarchy};
use super::gather::{compute_ids, hierarchy_facts};
use super::render::wrap;
use super::*;
use crate::host::{self, CgroupMode};
use crate::model::kernel::{Era, KernelInfo};
use crate::model::Layout;
use crate::repair::plan::{ids_needed, Strategy, ID_SAFETY_MARGIN};

const R310: &str = "3.10.0-1160.el7.x86_64";
const R510: &str = "5.10.0-30-cloud-amd64";
const R618: &str = "6.18.44-fc-v782";

/// A qos-layout pods tree: 11 cgroups: kubepods, burstable, besteffort, 3 pods,
/// 5 containers (pause and app in two pods, pause only in the third); 6 processes.
fn qos_tree(fs: &mut MemHierarchy, kmem: bool) {
    fs.add("kubepods", &[], kmem);
    fs.add("kubepods/burstable", &[], kmem);
    fs.add("kubepods/besteffort", &[], kmem);
    fs.add("kubepods/burstable/poda", &[], kmem);
    fs.add("kubepods/burstable/poda/pause", &[10], kmem);
    fs.add("kubepods/burstable/poda/app", &[11, 12], kmem);
    fs.add("kubepods/burstable/podb", &[], kmem);
    fs.add("kubepods/burstable/podb/pause", &[20], kmem);
    fs.add("kubepods/burstable/podb/app", &[21], kmem);
    fs.add("kubepods/besteffort/podc", &[], kmem);
    fs.add("kubepods/besteffort/podc/pause", &[30], kmem);
}

/// A flat-layout pods tree: 2 pods, 3 containers, one stray directory (7 cgroups).
fn flat_tree(fs: &mut MemHierarchy) {
    fs.add("kubepods", &[], false);
    fs.add("kubepods/pod1", &[], false);
    fs.add("kubepods/pod1/pause", &[100], false);
    fs.add("kubepods/pod1/web", &[101, 102, 103], false);
    fs.add("kubepods/pod2", &[], false);
    fs.add("kubepods/pod2/pause", &[200], false);
    fs.add("kubepods/stray", &[300], false);
}

fn opts(ids_used: Option<u64>) -> DiagnoseOptions {
    DiagnoseOptions {
        kubepods: "kubepods".into(),
        ids_used,
        check_kubelet: true,
        ..Default::default()
    }
}

// ---- gather on the fake fs ----

/// The layout and the counts: [cgroups, qos, pods, containers, other, tasks].
fn assert_tree(k: &KubepodsFacts, layout: Layout, counts: [u64; 6]) {
    assert_eq!(k.layout, Some(layout));
    let got = [k.cgroups, k.qos, k.pods, k.containers, k.other, k.tasks];
    assert_eq!(got, counts.map(Some));
}

#[test]
fn gather_qos_layout_on_310_counts_the_tree_and_sees_kmem() {
    let (mut fs, mut host) = (MemHierarchy::new(), FakeHost::new(R310));
    qos_tree(&mut fs, false);
    // kubelet activated kmem in one pod and its children (inherited).
    fs.set("kubepods/burstable/podb", host::knob::KMEM_SLABINFO, "slab");
    fs.set(
        "kubepods/burstable/podb/app",
        host::knob::KMEM_SLABINFO,
        "slab",
    );
    fs.set(
        "kubepods/burstable/podb/pause",
        host::knob::KMEM_SLABINFO,
        "slab",
    );
    fs.set(
        "kubepods/burstable/podb/app",
        host::knob::KMEM_LIMIT,
        "1048576",
    );
    fs.extra_live = 89;
    host.counted(100); // 3.10 counts live only
    host.kubelet = vec![4242];
    let f = gather(&fs, &host, &opts(None)).unwrap();
    let k = &f.kubepods;
    assert!(k.found);
    assert_eq!(k.name, "kubepods");
    assert_tree(k, Layout::Qos, [11, 2, 3, 5, 0, 6]);
    assert_eq!(k.kmem_active, Some(true));
    assert_eq!(k.kmem_active_cgroups, Some(3));
    assert_eq!(k.kmem_limits_set, Some(1));
    assert_eq!(f.hierarchy.live, Some(101)); // root + 11 + 89 others
    assert_eq!(f.hierarchy.counted, Some(100));
    assert_eq!(f.hierarchy.dying, None);
    assert_eq!(f.hierarchy.ids_source, IdsSource::Unknown);
    assert_eq!(f.kernel.era, Some(Era::Legacy));
    assert_eq!(f.kubelet.running, Some(true));
    assert_eq!(f.kubelet.pids, vec![4242]);
    assert_eq!(f.verdict.status, Status::AtRisk);
    assert!(f.errors.is_empty(), "{:?}", f.errors);
    // Read-only: not one change was attempted on either half.
    assert!(fs.attempts.lock().unwrap().is_empty());
    assert!(host.attempts.lock().unwrap().is_empty());
}

#[test]
fn gather_310_with_ids_used_and_no_kmem() {
    let (mut fs, mut host) = (MemHierarchy::new(), FakeHost::new(R310));
    qos_tree(&mut fs, false);
    host.counted(12);
    let f = gather(&fs, &host, &opts(Some(3_012))).unwrap();
    assert_eq!(f.kubepods.kmem_active, Some(false));
    assert_eq!(f.kubepods.kmem_active_cgroups, Some(0));
    assert_eq!(f.hierarchy.live, Some(12));
    assert_eq!(f.hierarchy.dying, Some(3_000));
    assert_eq!(f.hierarchy.ids_used, Some(3_012));
    assert_eq!(f.hierarchy.ids_free, Some(62_523));
    assert_eq!(f.hierarchy.ids_source, IdsSource::Systemtap);
    // 3,000 dying for 12 live is accumulating, though kmem is off now.
    assert_eq!(f.verdict.status, Status::AtRisk);
}

#[test]
fn gather_flat_layout_on_modern_kernel() {
    let (mut fs, mut host) = (MemHierarchy::new(), FakeHost::new(R510));
    flat_tree(&mut fs);
    fs.extra_live = 30;
    host.counted(120); // live 38 + 82 dying
    let f = gather(
        &fs,
        &host,
        &DiagnoseOptions {
            check_kubelet: false,
            ..opts(None)
        },
    )
    .unwrap();
    let k = &f.kubepods;
    assert_tree(k, Layout::Flat, [7, 0, 2, 3, 1, 6]);
    // Every v1 memcg accounts kmem from 3.16 on; no per-cgroup answer.
    assert_eq!(k.kmem_active, Some(true));
    assert_eq!(k.kmem_active_cgroups, None);
    assert_eq!(f.hierarchy.live, Some(38));
    assert_eq!(f.hierarchy.dying, Some(82));
    assert_eq!(f.hierarchy.ids_used, Some(120));
    assert_eq!(f.hierarchy.ids_source, IdsSource::ProcCgroups);
    assert_eq!(f.kubelet.running, None);
    assert_eq!(f.verdict.status, Status::Healthy);
    assert!(reasons(&f).contains("every v1 memcg"), "{}", reasons(&f));
}

#[test]
fn gather_modern_nokmem_and_missing_pods() {
    let (mut fs, mut host) = (MemHierarchy::new(), FakeHost::new(R618));
    host.cmdline = "ro cgroup.memory=nokmem".into();
    host.counted(1);
    let f = gather(&fs, &host, &opts(None)).unwrap();
    assert!(f.nokmem && f.kernel.nokmem);
    assert!(!f.kubepods.found);
    assert_eq!(f.kubepods.kmem_active, None);
    assert_eq!(f.kubepods.cgroups, Some(0));
    assert_eq!(f.kubelet.running, Some(false));
    assert_eq!(f.verdict.status, Status::Healthy);

    flat_tree(&mut fs);
    let f = gather(&fs, &host, &opts(None)).unwrap();
    assert_eq!(f.kubepods.kmem_active, Some(false));
}

#[test]
fn gather_unreadable_hierarchy_is_unknown() {
    let (mut fs, host) = (MemHierarchy::new(), FakeHost::new(R510));
    fs.live_readable = false;
    let f = gather(&fs, &host, &opts(None)).unwrap();
    assert_eq!(f.hierarchy.live, None);
    assert_eq!(f.hierarchy.counted, None);
    assert_eq!(f.verdict.status, Status::Unknown);
    assert_eq!(f.verdict.exit_code(), 2);
    assert_eq!(f.errors.len(), 2, "{:?}", f.errors);
}

#[test]
fn gather_rejects_a_path_as_pods_name() {
    let (fs, host) = (MemHierarchy::new(), FakeHost::new(R510));
    let o = DiagnoseOptions {
        kubepods: "a/b".into(),
        ..opts(None)
    };
    assert_eq!(gather(&fs, &host, &o).unwrap_err().exit_code(), 2);
}

// ---- ids and dying ----

#[test]
fn dying_on_310_needs_ids_used() {
    let (d, u, free, src, notes) = compute_ids(Some(false), 65_535, Some(2_000), Some(2_000), None);
    assert_eq!((d, u, free, src), (None, None, None, IdsSource::Unknown));
    assert!(notes.is_empty());
    let (d, u, free, src, _) =
        compute_ids(Some(false), 65_535, Some(2_000), Some(2_000), Some(50_000));
    assert_eq!(d, Some(48_000));
    assert_eq!(u, Some(50_000));
    assert_eq!(free, Some(15_535));
    assert_eq!(src, IdsSource::Systemtap);
}

#[test]
fn counted_below_live_saturates() {
    let (d, u, free, src, _) = compute_ids(Some(true), 65_535, Some(50), Some(48), None);
    assert_eq!(d, Some(0));
    assert_eq!(u, Some(48));
    assert_eq!(free, Some(65_487));
    assert_eq!(src, IdsSource::ProcCgroups);
    // --ids-used above the limit: free saturates at 0.
    let (_, _, free, _, _) = compute_ids(Some(false), 65_535, Some(10), None, Some(70_000));
    assert_eq!(free, Some(0));
}

#[test]
fn modern_kernel_count_wins_over_ids_used() {
    let (d, u, _, src, notes) = compute_ids(Some(true), 65_535, Some(7), Some(45), Some(50));
    assert_eq!((d, u, src), (Some(38), Some(45), IdsSource::ProcCgroups));
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("differs"), "{notes:?}");
    // Unknown kernel: only --ids-used counts.
    let (d, u, _, src, _) = compute_ids(None, 65_535, Some(7), Some(45), Some(50));
    assert_eq!((d, u, src), (Some(43), Some(50), IdsSource::Systemtap));
}

// ---- verdict matrix ----

fn pods(cgroups: u64, kmem: Option<bool>, kmem_n: Option<u64>) -> KubepodsFacts {
    KubepodsFacts {
        found: true,
        name: "kubepods".into(),
        layout: Some(Layout::Qos),
        cgroups: Some(cgroups),
        qos: Some(2),
        pods: Some(cgroups / 3),
        containers: Some(cgroups / 2),
        other: Some(0),
        tasks: Some(cgroups),
        kmem_active: kmem,
        kmem_active_cgroups: kmem_n,
        kmem_limits_set: Some(0),
    }
}

/// Facts as gather would make them, from the numbers alone.
fn mk(
    release: &str,
    live: Option<u64>,
    counted: Option<u64>,
    ids_used: Option<u64>,
    kp: KubepodsFacts,
    kubelet: Option<bool>,
) -> Facts {
    let kernel = KernelFacts::from_release(release, false);
    let mount = "/sys/fs/cgroup/memory".to_string();
    let (hierarchy, notes) =
        hierarchy_facts(mount.clone(), mount, &kernel, (live, counted, ids_used));
    let kubelet = KubeletFacts {
        running: kubelet,
        pids: if kubelet == Some(true) {
            vec![77]
        } else {
            vec![]
        },
    };
    Facts::judged(kernel, Some(CgroupMode::V1), hierarchy, kp, kubelet, notes)
}

fn advice(f: &Facts) -> String {
    f.verdict.advice.join("\n")
}

fn reasons(f: &Facts) -> String {
    f.verdict.reasons.join("\n")
}

fn kmem_on() -> KubepodsFacts {
    pods(900, Some(true), Some(900))
}

fn kmem_off() -> KubepodsFacts {
    pods(600, Some(false), Some(0))
}

#[test]
fn legacy_healthy() {
    let f = mk(
        R310,
        Some(4_800),
        Some(4_800),
        Some(5_000),
        kmem_off(),
        Some(false),
    );
    assert_eq!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
    assert_eq!(f.verdict.exit_code(), 0);
    assert!(advice(&f).contains("nokmem"));
}

#[test]
fn legacy_at_risk_kmem_active_uncounted() {
    let f = mk(R310, Some(4_800), Some(4_800), None, kmem_on(), None);
    assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
    assert_eq!(f.verdict.exit_code(), 1);
    let a = advice(&f);
    assert!(a.contains("--ids-used") && a.contains("systemtap"), "{a}");
    assert!(a.contains("cgleak repair") && a.contains("nokmem"), "{a}");
    // The ids a repair needs, as `cgleak plan` counts them (one function for both).
    for strategy in [Strategy::MigrateBack, Strategy::Rename] {
        let need = sep(ids_needed(900, strategy) + ID_SAFETY_MARGIN);
        assert!(a.contains(&need), "{need}: {a}");
    }
    assert!(a.contains(&format!("+ {ID_SAFETY_MARGIN} margin")), "{a}");
    assert!(reasons(&f).contains("cannot be counted"), "{}", reasons(&f));
}

#[test]
fn legacy_at_risk_few_ids_free_without_kmem() {
    // 57,535 used, 8,000 free, fewer than 2 dying per live: at-risk by ids alone.
    let f = mk(R310, Some(40_000), None, Some(57_535), kmem_off(), None);
    assert_eq!(f.hierarchy.ids_free, Some(8_000));
    assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
    let a = advice(&f);
    assert!(a.contains("reboot"), "{a}");
    assert_no_reclaim_advice(&f);
}

/// No advice line on 3.10 tells the operator to run `cgleak reclaim` (it refuses there: slab
/// pins the dying memcgs); saying why it cannot help is fine.
fn assert_no_reclaim_advice(f: &Facts) {
    for a in &f.verdict.advice {
        let advises = a.starts_with("cgleak reclaim")
            || a.contains("`cgleak reclaim --swap-cycle` gives")
            || a.contains("(`cgleak reclaim` frees");
        assert!(!advises, "3.10 advice advises reclaim: {a}");
        if a.contains("cgleak reclaim") {
            assert!(a.contains("cannot give ids back"), "{a}");
        }
    }
}

/// Issue 10: diagnose advised `cgleak reclaim` on 3.10, whose page-cache drop cannot free
/// kmem-pinned memcgs. Fails on the old code (it advised "cgleak reclaim: drops clean page
/// cache" and "`cgleak reclaim` frees page cache" there).
#[test]
fn no_reclaim_advice_on_310() {
    let cases = [
        mk(R310, Some(40_000), None, Some(57_535), kmem_off(), None),
        mk(R310, Some(2_000), None, Some(30_000), kmem_on(), Some(true)),
        mk(R310, Some(2_000), None, Some(64_900), kmem_on(), None),
        mk(R310, Some(4_800), Some(4_800), None, kmem_on(), None),
    ];
    for f in &cases {
        assert_ne!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
        assert_no_reclaim_advice(f);
    }
}

#[test]
fn legacy_kmem_active_and_many_dying_is_at_risk_while_ids_are_plenty() {
    // 28,000 dying for 2,000 live (14x) with kmem on, 35,535 ids free: the trigger and the
    // pile-up are indicators (at-risk); leaking needs the ids to be short. The old code said
    // leaking here.
    let f = mk(
        R310,
        Some(2_000),
        Some(2_000),
        Some(30_000),
        kmem_on(),
        Some(true),
    );
    assert_eq!(f.hierarchy.dying, Some(28_000));
    assert_eq!(f.hierarchy.ids_free, Some(35_535));
    assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
    let a = advice(&f);
    assert!(
        a.contains("cgleak plan") && a.contains("cgleak repair"),
        "{a}"
    );
    assert!(a.contains("1.0.0-rc94") && a.contains("3.10.0-1062"), "{a}");
    assert!(
        a.contains("stop it"),
        "kubelet running must be mentioned: {a}"
    );
    assert!(!a.contains("systemtap"), "{a}");
}

#[test]
fn legacy_leaking_when_ids_are_short() {
    let f = mk(R310, Some(2_000), None, Some(64_700), kmem_on(), Some(true));
    assert_eq!(f.hierarchy.ids_free, Some(835));
    assert_eq!(f.verdict.status, Status::Leaking, "{:?}", f.verdict);
    // 900 cgroups: migrate-back needs 2,056, rename 1,156: neither fits in 835.
    assert!(advice(&f).contains("drain and reboot"), "{}", advice(&f));
    // 1,500 free: rename (1,156) fits, migrate-back (2,056) does not.
    let f = mk(R310, Some(2_000), None, Some(64_035), kmem_on(), None);
    assert_eq!(f.verdict.status, Status::AtRisk);
    let a = advice(&f);
    assert!(a.contains("cgleak repair --strategy rename"), "{a}");
}

/// Issue 10's two nodes: on 3.10 with kmem active and 64,335 ids free the old code said
/// LEAKING ("hours at most"), while a 5.10 node with 1,418 free was only AT-RISK. Now the node
/// with fewer ids free is never ranked below the other, and neither is leaking.
#[test]
fn severity_is_not_inverted_across_kernels() {
    let old = mk(R310, Some(1_000), None, Some(1_200), kmem_on(), None);
    assert_eq!(old.hierarchy.ids_free, Some(64_335));
    let new = mk(
        R510,
        Some(2_000),
        Some(65_534 - 1_418),
        None,
        pods(300, Some(true), None),
        None,
    );
    assert_eq!(new.hierarchy.ids_free, Some(1_418));
    assert_eq!(old.verdict.status, Status::AtRisk, "{:?}", old.verdict);
    assert_eq!(new.verdict.status, Status::AtRisk, "{:?}", new.verdict);
    assert!(severity(new.verdict.status) >= severity(old.verdict.status));
}

fn severity(s: Status) -> u8 {
    match s {
        Status::Unknown => 0,
        Status::Healthy => 1,
        Status::AtRisk => 2,
        Status::Leaking => 3,
    }
}

/// One node of the matrix: (live, ids used) giving `free` free ids with the dying ratio high
/// (>= 2 dying per live, >= 1,000 dying) or low, on a kernel with id space `limit`.
fn live_used(limit: u64, free: u64, ratio_high: bool) -> (u64, u64) {
    let used = limit - free;
    let live = if ratio_high { used / 10 } else { used * 2 / 3 };
    (live, used)
}

/// The ranking is one table for every era: for the same ids free and the same indicators the
/// status is the same on 3.10, 5.10 and 6.18; kmem active changes it only where it is the
/// trigger (3.10), and only up to at-risk. Fails on the old code (3.10 with kmem and many dying
/// was leaking at 50,000 free).
#[test]
fn ranking_matrix_over_eras() {
    let t = Thresholds::default();
    for release in [R310, R510, R618] {
        let legacy = KernelInfo::from_release(release).era == Some(Era::Legacy);
        let limit = KernelInfo::from_release(release).memcg_id_limit();
        for free in [Some(500), Some(5_000), Some(50_000), None] {
            for kmem in [true, false] {
                for ratio_high in [true, false] {
                    let kp = pods(
                        300,
                        Some(kmem),
                        legacy.then_some(if kmem { 300 } else { 0 }),
                    );
                    let f = match free {
                        Some(n) => {
                            let (live, used) = live_used(limit, n, ratio_high);
                            if legacy {
                                mk(release, Some(live), Some(live), Some(used), kp, None)
                            } else {
                                mk(release, Some(live), Some(used), None, kp, None)
                            }
                        }
                        None => mk(release, Some(2_000), None, None, kp, None),
                    };
                    assert_eq!(f.hierarchy.ids_free, free, "{release}");
                    let piling = free.is_some() && ratio_high;
                    let going = piling || (legacy && kmem);
                    let counted = free.map_or(FreeIds::Unknown, FreeIds::Counted);
                    let want = rank(counted, going, &t);
                    let case = format!("{release} free={free:?} kmem={kmem} ratio={ratio_high}");
                    assert_eq!(f.verdict.status, want, "{case}: {:?}", f.verdict);
                    // The same ids free rank the same whatever the kernel and the indicators.
                    match free {
                        Some(500) => assert_eq!(want, Status::Leaking, "{case}"),
                        Some(5_000) => assert_eq!(want, Status::AtRisk, "{case}"),
                        _ => assert_ne!(want, Status::Leaking, "{case}"),
                    }
                    if legacy {
                        assert_no_reclaim_advice(&f);
                    }
                }
            }
        }
    }
}

/// Issue 14: "at most N free" (3.10, from the slab count) ranks like a count when it is small,
/// and proves nothing when it is large: the trigger decides then, as without a count.
#[test]
fn at_most_free_ranks_like_a_count_only_when_small() {
    let t = Thresholds::default();
    for going in [true, false] {
        assert_eq!(rank(FreeIds::AtMost(500), going, &t), Status::Leaking);
        assert_eq!(rank(FreeIds::AtMost(5_000), going, &t), Status::AtRisk);
    }
    assert_eq!(rank(FreeIds::AtMost(50_000), true, &t), Status::AtRisk);
    assert_eq!(rank(FreeIds::AtMost(50_000), false, &t), Status::Unknown);
    assert_eq!(rank(FreeIds::Counted(50_000), false, &t), Status::Healthy);
}

#[test]
fn legacy_leaking_by_ids_and_too_few_for_migration() {
    let f = mk(R310, Some(5_000), None, Some(65_300), kmem_on(), None);
    assert_eq!(f.hierarchy.ids_free, Some(235));
    assert_eq!(f.verdict.status, Status::Leaking);
    assert!(
        advice(&f).contains("reboot the node instead"),
        "{}",
        advice(&f)
    );
}

#[test]
fn legacy_kmem_active_few_dying_is_at_risk_not_leaking() {
    let f = mk(R310, Some(2_000), None, Some(2_300), kmem_on(), None);
    assert_eq!(f.verdict.status, Status::AtRisk);
    // 4,000 dying for 2,000 live: accumulating, but under the leaking ratio.
    let f = mk(R310, Some(2_000), None, Some(6_000), kmem_on(), None);
    assert_eq!(f.verdict.status, Status::AtRisk);
}

#[test]
fn legacy_unknown() {
    // kmem state unreadable, no --ids-used.
    let f = mk(
        R310,
        Some(3_000),
        Some(3_000),
        None,
        pods(600, None, None),
        None,
    );
    assert_eq!(f.verdict.status, Status::Unknown, "{:?}", f.verdict);
    assert_eq!(f.verdict.exit_code(), 2);
    let a = advice(&f);
    assert!(
        a.contains("memory.kmem.slabinfo") && a.contains("--ids-used"),
        "{a}"
    );
    // kmem off but ids uncountable: still unknown, never guessed.
    let f = mk(R310, Some(3_000), Some(3_000), None, kmem_off(), None);
    assert_eq!(f.verdict.status, Status::Unknown);
    // no pods cgroup and no count.
    let missing = KubepodsFacts::missing("kubepods");
    let f = mk(R310, Some(3_000), Some(3_000), None, missing, None);
    assert_eq!(f.verdict.status, Status::Unknown);
}

/// healthy, at-risk by ratio, at-risk by ids, leaking, unknown.
fn modern_matrix(release: &str) -> [Facts; 5] {
    let kp = || pods(300, Some(true), None);
    [
        mk(release, Some(800), Some(900), None, kp(), None),
        mk(release, Some(2_000), Some(20_000), None, kp(), None),
        mk(release, Some(50_000), Some(60_000), None, kp(), None),
        mk(release, Some(9_000), Some(65_000), None, kp(), Some(true)),
        mk(release, Some(800), None, None, kp(), None),
    ]
}

fn check_modern(release: &str) {
    let [healthy, ratio, ids, leaking, unknown] = modern_matrix(release);
    assert_eq!(
        healthy.verdict.status,
        Status::Healthy,
        "{:?}",
        healthy.verdict
    );
    assert!(healthy.verdict.advice.is_empty());
    // 18,000 dying for 2,000 live: at-risk, never leaking from a ratio on these kernels.
    assert_eq!(ratio.verdict.status, Status::AtRisk, "{:?}", ratio.verdict);
    assert!(
        reasons(&ratio).contains("accumulate"),
        "{}",
        reasons(&ratio)
    );
    // 60,000 and 65,000 ids in use, of 65,535 (65,534 on 4.4-5.18).
    let limit = KernelInfo::from_release(release).memcg_id_limit();
    assert_eq!(ids.hierarchy.id_limit, limit);
    assert_eq!(ids.hierarchy.ids_free, Some(limit - 60_000));
    assert_eq!(ids.verdict.status, Status::AtRisk);
    assert_eq!(leaking.hierarchy.ids_free, Some(limit - 65_000));
    assert_eq!(leaking.verdict.status, Status::Leaking);
    assert_eq!(unknown.verdict.status, Status::Unknown);
    let a = advice(&leaking);
    assert!(a.contains("does NOT help"), "{a}");
    assert!(
        a.contains("cgleak reclaim") && a.contains("cold caches"),
        "{a}"
    );
    assert!(a.contains("cgroup.memory=nokmem"), "{a}");
    assert!(!a.contains("cgleak plan"), "{a}");
}

#[test]
fn modern_matrix_510() {
    check_modern(R510);
    let [_, _, _, leaking, _] = modern_matrix(R510);
    assert!(!advice(&leaking).contains("6.13"));
}

#[test]
fn no_move_charge_matrix_618() {
    check_modern(R618);
    let [_, _, _, leaking, _] = modern_matrix(R618);
    assert!(advice(&leaking).contains(">= 6.13"), "{}", advice(&leaking));
}

#[test]
fn small_nodes_with_high_ratio_stay_healthy() {
    // Seen on this machine: 45 counted, 7 live.
    let missing = KubepodsFacts::missing("kubepods");
    let f = mk(R618, Some(7), Some(45), None, missing, None);
    assert_eq!(f.hierarchy.dying, Some(38));
    assert_eq!(f.verdict.status, Status::Healthy);
}

#[test]
fn modern_with_nokmem_advises_reboot_not_nokmem() {
    let kp = pods(10, Some(false), None);
    let mut f = mk(R510, Some(9_000), Some(65_000), None, kp, None);
    f.kernel.nokmem = true;
    f.nokmem = true;
    f.judge(&Thresholds::default());
    assert_eq!(f.verdict.status, Status::Leaking);
    let a = advice(&f);
    assert!(!a.contains("boot with"), "{a}");
    assert!(a.contains("reboot"), "{a}");
}

#[test]
fn unknown_kernel_release() {
    let f = mk(
        "weird",
        Some(500),
        Some(500),
        None,
        pods(10, None, None),
        None,
    );
    assert_eq!(f.kernel.era, None);
    assert_eq!(f.verdict.status, Status::Unknown);
    let f = mk(
        "weird",
        Some(500),
        Some(500),
        Some(520),
        pods(10, None, None),
        None,
    );
    assert_eq!(f.verdict.status, Status::Healthy);
}

#[test]
fn thresholds_are_honoured() {
    let kp = pods(10, Some(true), None);
    let mut f = mk(R510, Some(800), Some(30_000), None, kp, None);
    assert_eq!(f.verdict.status, Status::AtRisk); // by ratio
    f.judge(&Thresholds {
        at_risk_ids_free: 40_000,
        leaking_ids_free: 36_000,
        ..Thresholds::default()
    });
    assert_eq!(f.verdict.status, Status::Leaking);
    assert_eq!(f.thresholds.leaking_ids_free, 36_000);
}

#[test]
fn v2_hosts() {
    let inp = |live, nd| V2Inputs {
        root: "/sys/fs/cgroup".into(),
        kernel: KernelFacts::from_release(R618, false),
        live,
        nr_dying_descendants: nd,
        kubelet: KubeletFacts::from_pids(Some(vec![])),
        errors: vec![],
    };
    let f = facts_v2(&inp(Some(300), Some(100)));
    assert_eq!(f.cgroup_mode, Some(CgroupMode::V2));
    assert_eq!(f.hierarchy.nr_dying_descendants, Some(100));
    assert_eq!(f.kubelet.running, Some(false));
    assert_eq!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
    let f = facts_v2(&inp(Some(2_000), Some(40_000)));
    assert_eq!(f.verdict.status, Status::AtRisk, "{:?}", f.verdict);
    assert!(advice(&f).contains("cgleak reclaim"));
    assert!(
        reasons(&f).contains("nr_dying_descendants"),
        "{}",
        reasons(&f)
    );
    let f = facts_v2(&inp(Some(20_000), Some(36_000)));
    assert_eq!(f.verdict.status, Status::AtRisk, "bound near the limit");
    let f = facts_v2(&inp(Some(300), None));
    assert_eq!(f.verdict.status, Status::Unknown);
    let f = facts_v2(&inp(None, Some(10)));
    assert_eq!(
        f.verdict.status,
        Status::Unknown,
        "no live count: never guessed"
    );
    let f = facts_v2(&inp(None, Some(5_000)));
    assert_eq!(f.verdict.status, Status::Unknown);
    let t = render_text(&f);
    assert!(t.contains("dying (v2)") && t.contains("5,000"), "{t}");
    let v: serde_json::Value = serde_json::from_str(&render_json(&f)).unwrap();
    assert_eq!(v["cgroup_mode"], "v2");
    assert_eq!(v["hierarchy"]["nr_dying_descendants"], 5000);
    assert!(v["hierarchy"]["ids_used"].is_null());
}

#[test]
fn exit_codes_and_separators() {
    let v = |status| Verdict {
        status,
        reasons: vec![],
        advice: vec![],
    };
    assert_eq!(v(Status::Healthy).exit_code(), 0);
    assert_eq!(v(Status::AtRisk).exit_code(), 1);
    assert_eq!(v(Status::Leaking).exit_code(), 1);
    assert_eq!(v(Status::Unknown).exit_code(), 2);
    assert_eq!(sep(0), "0");
    assert_eq!(sep(999), "999");
    assert_eq!(sep(1_000), "1,000");
    assert_eq!(sep(65_535), "65,535");
    assert_eq!(sep(1_234_567), "1,234,567");
}

// ---- rendering ----

/// The JSON contract (README, "JSON"): each object and its keys ("" is the top level).
const CONTRACT: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "kernel",
            "cgroup_mode",
            "nokmem",
            "hierarchy",
            "kubepods",
            "kubelet",
            "verdict",
            "thresholds",
        ],
    ),
    (
        "kernel",
        &[
            "release",
            "version",
            "era",
            "nokmem",
            "move_charge_supported",
            "move_charge_deprecated",
            "counts_dying",
            "kmem_per_cgroup",
        ],
    ),
    (
        "hierarchy",
        &[
            "mount",
            "root",
            "live",
            "counted",
            "dying",
            "id_limit",
            "ids_used",
            "ids_free",
            "ids_source",
            "nr_dying_descendants",
        ],
    ),
    (
        "kubepods",
        &[
            "found",
            "name",
            "layout",
            "cgroups",
            "qos",
            "pods",
            "containers",
            "other",
            "tasks",
            "kmem_active",
            "kmem_active_cgroups",
            "kmem_limits_set",
        ],
    ),
    ("kubelet", &["running", "pids"]),
    ("verdict", &["status", "reasons", "advice"]),
    (
        "thresholds",
        &[
            "at_risk_ids_free",
            "leaking_ids_free",
            "at_risk_dying_ratio",
            "min_dying_for_ratio",
        ],
    ),
];

fn json(f: &Facts) -> serde_json::Value {
    serde_json::from_str(&render_json(f)).unwrap()
}

/// Facts of an unknown kernel with no pods cgroup: most values unknown.
fn unknown_node() -> Facts {
    let missing = KubepodsFacts::missing("kubepods");
    mk("weird", Some(3_000), Some(3_000), None, missing, None)
}

#[test]
fn json_has_every_contract_key() {
    let v = json(&unknown_node());
    for (object, keys) in CONTRACT {
        let o = if object.is_empty() { &v } else { &v[*object] };
        for k in *keys {
            assert!(o.get(k).is_some(), "missing key {k} in {object}: {o}");
        }
    }
}

#[test]
fn json_nulls_for_unknowns() {
    let v = json(&unknown_node());
    for k in [
        "version",
        "era",
        "move_charge_supported",
        "move_charge_deprecated",
        "counts_dying",
        "kmem_per_cgroup",
    ] {
        assert!(v["kernel"][k].is_null(), "kernel.{k}: {}", v["kernel"]);
    }
    for k in ["dying", "ids_used", "ids_free", "nr_dying_descendants"] {
        assert!(v["hierarchy"][k].is_null(), "hierarchy.{k} must be null");
    }
    assert_eq!(v["hierarchy"]["ids_source"], "unknown");
    // An unknown kernel gets the smaller id space, so ids free is never over-stated.
    assert_eq!(v["hierarchy"]["id_limit"], 65534);
    assert_eq!(v["hierarchy"]["live"], 3000);
    assert!(v["kubepods"]["kmem_active"].is_null());
    assert_eq!(v["kubepods"]["found"], false);
    assert_eq!(v["kubepods"]["layout"], "missing");
    assert!(v["kubelet"]["running"].is_null());
    assert_eq!(v["verdict"]["status"], "unknown");
    assert_eq!(v["cgroup_mode"], "v1");
    assert_eq!(v["nokmem"], false);
    assert_eq!(v["thresholds"]["at_risk_ids_free"], 10_000);
}

#[test]
fn json_known_values_and_spellings() {
    let v = json(&mk(
        R310,
        Some(2_000),
        Some(2_000),
        Some(30_000),
        kmem_on(),
        Some(true),
    ));
    assert_eq!(v["kernel"]["era"], "legacy");
    assert_eq!(v["kernel"]["version"], "3.10.0");
    assert_eq!(v["hierarchy"]["ids_source"], "systemtap");
    assert_eq!(v["hierarchy"]["dying"], 28_000);
    // 35,535 ids free: the trigger makes it at-risk, not leaking.
    assert_eq!(v["verdict"]["status"], "at-risk");
    assert_eq!(v["kubelet"]["pids"][0], 77);
    let kp = || pods(10, Some(true), None);
    let v = json(&mk(R618, Some(800), Some(20_000), None, kp(), None));
    assert_eq!(v["kernel"]["era"], "no_move_charge");
    assert_eq!(v["verdict"]["status"], "at-risk");
    assert_eq!(v["hierarchy"]["ids_source"], "proc_cgroups");
    let f = mk(R510, Some(800), Some(900), None, kp(), None);
    let v = json(&f);
    assert_eq!(v["kernel"]["era"], "modern");
    assert_eq!(v["verdict"]["status"], "healthy");
    let back: Facts = serde_json::from_str(&render_json(&f)).unwrap();
    assert_eq!(back, f);
}

fn short_lines(s: &str) {
    for l in s.lines() {
        assert!(l.chars().count() < 100, "line too long ({}): {l}", l.len());
    }
}

#[test]
fn text_for_310_leak() {
    let f = mk(
        R310,
        Some(2_000),
        Some(2_000),
        Some(64_700),
        kmem_on(),
        Some(true),
    );
    let t = render_text(&f);
    assert!(t.contains("VERDICT: LEAKING"), "{t}");
    assert!(t.contains("64,700 of 65,535"), "{t}");
    // What a repair needs, per strategy, as plan counts it.
    assert!(
        t.contains("repair needs") && t.contains("2,056") && t.contains("1,156"),
        "{t}"
    );
    assert!(t.contains("  1. "), "{t}");
    assert!(t.contains("nokmem") && t.contains("cgleak repair"), "{t}");
    assert!(t.contains("yes (pid 77)"), "{t}");
    assert!(t.contains("yes (900 cgroups)"), "{t}");
    // kmem on 3.10 is per cgroup: no claim that every memcg accounts it.
    assert!(!t.contains("every v1 memcg"), "{t}");
    short_lines(&t);
}

#[test]
fn text_for_modern_at_risk_and_healthy() {
    let [healthy, ratio, ..] = modern_matrix(R618);
    let t = render_text(&ratio);
    assert!(t.contains("VERDICT: AT-RISK"), "{t}");
    assert!(
        t.contains("cgleak reclaim") && t.contains("does NOT help"),
        "{t}"
    );
    assert!(t.contains("not supported (>= 6.13)"), "{t}");
    short_lines(&t);
    let t = render_text(&healthy);
    assert!(t.contains("VERDICT: HEALTHY"), "{t}");
    assert!(!t.contains("Advice"), "{t}");
    short_lines(&t);
}

#[test]
fn text_for_unknown() {
    let f = mk(
        R310,
        Some(3_000),
        Some(3_000),
        None,
        pods(600, None, None),
        None,
    );
    let t = render_text(&f);
    assert!(t.contains("VERDICT: UNKNOWN"), "{t}");
    assert!(t.contains("not countable here"), "{t}");
    assert!(t.contains("--ids-used"), "{t}");
    short_lines(&t);
}

#[test]
fn wrap_keeps_lines_short() {
    let mut o = String::new();
    let long = "word ".repeat(80);
    wrap(&mut o, "  1. ", "     ", &long);
    short_lines(&o);
    assert!(o.lines().count() > 3);
    assert!(o.lines().skip(1).all(|l| l.starts_with("     word")));
}

/// A hierarchy shaped like a cgroup v2 directory (no v2 mount needed): its controllers, the
/// ones enabled below, and one child.
fn v2_dir(controllers: &str, subtree: &str, dying: u64) -> MemHierarchy {
    let mut h = MemHierarchy::new();
    h.root = std::path::PathBuf::from("/sys/fs/cgroup");
    h.set("", "cgroup.controllers", controllers);
    h.set("", "cgroup.subtree_control", subtree);
    let stat = format!("nr_descendants 1\nnr_dying_descendants {dying}\n");
    h.set("", "cgroup.stat", &stat);
    h.add("system.slice", &[], false);
    h
}

/// Issue 10: `--root` on a cgroup v2 directory without the memory controller reported HEALTHY
/// (its dying cgroups hold no memcg ids, so nothing can be told). Fails on the old code, which
/// judged the directory's counts whatever its controllers.
#[test]
fn v2_without_memory_controller_is_unknown() {
    let host = FakeHost::new(R618);
    let dir = v2_dir("cpu io pids\n", "cpu\n", 0);
    let f = gather_v2(&dir, &host, true);
    assert_eq!(f.verdict.status, Status::Unknown, "{:?}", f.verdict);
    assert_eq!(f.verdict.exit_code(), 2);
    let reasons = f.verdict.reasons.join("\n");
    assert!(
        reasons.contains("memory controller is not enabled")
            && reasons.contains("cgroup.controllers")
            && reasons.contains("--root")
            && reasons.contains("/sys/fs/cgroup:"),
        "{reasons}"
    );
    assert_eq!(
        (f.hierarchy.live, f.hierarchy.nr_dying_descendants),
        (None, None)
    );
    // Memory there, but not enabled for the cgroups below: still nothing to tell.
    let dir = v2_dir("cpu memory\n", "cpu\n", 0);
    let f = gather_v2(&dir, &host, true);
    assert_eq!(f.verdict.status, Status::Unknown, "{:?}", f.verdict);
    assert!(f
        .verdict
        .reasons
        .join("\n")
        .contains("cgroup.subtree_control"));
    // Enabled: the counts are read and judged.
    let dir = v2_dir("cpu memory\n", "memory\n", 10);
    let f = gather_v2(&dir, &host, true);
    assert_eq!(f.verdict.status, Status::Healthy, "{:?}", f.verdict);
    assert_eq!(f.hierarchy.live, Some(2));
    assert_eq!(f.hierarchy.nr_dying_descendants, Some(10));
    assert_eq!(f.kubelet.running, Some(false));
    assert!(f.errors.is_empty(), "{:?}", f.errors);
}
