//! `cgleak diagnose` and `cgleak reclaim` end to end on emulated nodes: the verdict ranks the
//! same on every kernel, diagnose and plan agree on the ids a repair needs, and reclaim refuses
//! on 3.10 without touching the page cache.

#[path = "support/emulated_node.rs"]
mod emulated_node;

use emulated_node::Node;

/// Issue 10: a 3.10 node with kmem active and 64,000-odd ids free was LEAKING, a 5.10 node with
/// 1,418 free only AT-RISK. Fails on the old binary (the first said leaking).
#[test]
fn the_node_with_fewer_ids_free_is_never_ranked_lower() {
    let old = Node::new("3.10", 20, 1_000, true);
    let used = old.emu().ids_used().to_string();
    let (code, o) = old.json(&["diagnose", "--format", "json", "--ids-used", &used]);
    assert!(o["hierarchy"]["ids_free"].as_u64().unwrap() > 60_000, "{o}");
    assert_eq!(o["verdict"]["status"], "at-risk", "{}", o["verdict"]);
    assert_eq!(code, 1);
    let new = Node::new("5.10", 20, 0, false);
    let free = 65_534 - new.emu().ids_used();
    new.emu().add_dying(free - 1_418).unwrap();
    let (code, n) = new.json(&["diagnose", "--format", "json"]);
    assert_eq!(n["hierarchy"]["ids_free"], 1_418, "{n}");
    assert_eq!(n["verdict"]["status"], "at-risk", "{}", n["verdict"]);
    assert_eq!(code, 1);
}

/// Issue 10: diagnose said "needs 111 free ids" where plan said "222 + 256 margin". Both now
/// count with repair::plan::ids_needed and the same margin. Fails on the old binary.
#[test]
fn diagnose_and_plan_agree_on_the_ids_a_repair_needs() {
    let node = Node::new("3.10", 20, 30_000, true);
    let used = node.emu().ids_used().to_string();
    let (_, out, err) = node.run(&["diagnose", "--ids-used", &used]);
    for strategy in ["migrate-back", "rename"] {
        let (_, p) = node.json(&[
            "plan",
            "--format",
            "json",
            "--ids-used",
            &used,
            "--strategy",
            strategy,
        ]);
        let ids = &p["plan"]["ids"];
        let (needed, margin) = (
            ids["needed"].as_u64().unwrap(),
            ids["margin"].as_u64().unwrap(),
        );
        let total = (needed + margin).to_string();
        let parts = format!("({needed} + {margin} margin)");
        let said = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            said.contains(&format!("{total} with --strategy {strategy} {parts}"))
                || said.contains(&format!(
                    "{total} free ids with --strategy {strategy} {parts}"
                )),
            "{strategy}: plan says {total} {parts}; diagnose:\n{out}{err}"
        );
    }
}

/// Issue 10: on 3.10 `reclaim --yes` dropped the page cache of the whole node although it
/// cannot free kmem-pinned memcgs. Now it refuses (exit 2, the reason, what to do instead) and
/// the page cache is untouched. Fails on the old binary (exit 0, the cache dropped).
#[test]
fn reclaim_refuses_on_310_and_drops_nothing() {
    let node = Node::new("3.10", 5, 100, true);
    // Page cache charged to the pods cgroup: a drop (echo 1 > drop_caches) would free it.
    node.emu().charge_cache("kubepods", 1 << 20).unwrap();
    let cache = || node.emu().charges("kubepods").unwrap().0;
    let before = node.emu().ids_used();
    let (code, out, err) = node.run(&["reclaim", "--yes"]);
    assert_eq!(code, 2, "{out}{err}");
    for word in [
        "refused",
        "slab",
        "cgleak repair",
        "nokmem",
        "reboot",
        "nothing was changed",
    ] {
        assert!(err.contains(word), "{word} missing: {err}");
    }
    assert_eq!(cache(), 1 << 20, "drop_caches was written");
    assert_eq!(node.emu().ids_used(), before);
    // The dry run still counts, and says --yes refuses here.
    let (code, out, err) = node.run(&["reclaim", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("refuses on this kernel"), "{out}");
    assert_eq!(cache(), 1 << 20);
    // Diagnose does not send the operator there either.
    let used = before.to_string();
    let (_, d) = node.json(&["diagnose", "--format", "json", "--ids-used", &used]);
    for a in d["verdict"]["advice"].as_array().unwrap() {
        let a = a.as_str().unwrap();
        assert!(!a.starts_with("cgleak reclaim"), "{a}");
    }
}
