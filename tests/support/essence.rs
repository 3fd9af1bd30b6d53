//! What a repair must keep of a pods tree, for comparing trees in tests: every cgroup's path,
//! settings (page-rounded) and sorted tasks. Not kmem accounting: a rollback after the move
//! leaves it off, as a repair does.
#![allow(dead_code)]

use cgleak::model::{normalize_limit, Snapshot};
use std::collections::BTreeMap;

/// Path -> (settings, sorted tasks).
pub type Essence = BTreeMap<String, (String, Vec<u32>)>;

pub fn essence(snap: &Snapshot) -> Essence {
    snap.cgroups
        .iter()
        .map(|c| {
            let s = &c.settings;
            let key = format!(
                "limit={} memsw={:?} soft={} swappiness={} oom={} hier={} mc={:?}",
                normalize_limit(s.limit_in_bytes),
                s.memsw_limit_in_bytes.map(normalize_limit),
                normalize_limit(s.soft_limit_in_bytes),
                s.swappiness,
                s.oom_kill_disable,
                s.use_hierarchy,
                s.move_charge_at_immigrate,
            );
            let mut t = c.tasks.clone();
            t.sort_unstable();
            (c.path.clone(), (key, t))
        })
        .collect()
}

/// What differs between two essences, one line each (empty: equal).
pub fn diff(want: &Essence, got: &Essence) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("missing {k}")),
            Some(x) if x != v => out.push(format!("differs {k}: {v:?} vs {x:?}")),
            _ => {}
        }
    }
    out.extend(
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| format!("extra {k}")),
    );
    out
}
