//! What a repair costs the runtimes found, in numbers, and the remedy afterwards.
//!
//! From the lab (docs/runtimes.md; containerd 1.6.20 with shim v2, runc 1.1.5, kernel 6.1):
//! containers keep running and exec lands in the right memcg, but a container started before
//! the repair loses its OOM watcher (the kernel drops the eventfd when the old memcg goes
//! offline, mm/memcontrol.c memcg_event_remove; the shim then finds the path missing and marks
//! the cgroup deleted): a later OOM kill comes as a plain exit 137 (Error, not OOMKilled), and
//! `ctr task metrics` / `docker stats` show nothing, until the container restarts. With runtime
//! v1 the watchers live in containerd itself, which reloads them when it restarts.

use super::classify::ShimKind;
use super::Runtimes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What to do after a repair for the runtimes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remedy {
    /// No container lost a watcher.
    None,
    /// Runtime v1: `systemctl restart containerd` (KillMode=process: the shims and containers
    /// survive) registers the watchers again.
    RestartContainerd,
    /// Shim v2: each container gets a new watcher when it restarts (a rolling restart).
    RollingRestart,
}

/// Containers that lose their watcher, by runtime and shim kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// "containerd 1.6" or "docker 20.10" (the daemon whose containers they are).
    pub runtime: String,
    pub kind: ShimKind,
    pub containers: usize,
}

/// "1.6" of "1.6.20".
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The name and version of the daemon whose containers a shim in `namespace` serves: docker's
/// containers are in containerd's `moby` namespace.
fn runtime_label(r: &Runtimes, namespace: Option<&str>) -> String {
    let daemon = if namespace == Some("moby") && r.daemons.iter().any(|d| d.name == "dockerd") {
        ("docker", "dockerd")
    } else {
        ("containerd", "containerd")
    };
    match r.daemons.iter().find(|d| d.name == daemon.1) {
        Some(d) => match &d.version {
            Some(v) => format!("{} {}", daemon.0, major_minor(v)),
            None => format!("{} (version unknown)", daemon.0),
        },
        None => format!("{} (daemon not running)", daemon.0),
    }
}

/// The losses of a repair of every served cgroup, grouped by runtime and shim kind.
pub fn losses(r: &Runtimes) -> Vec<Loss> {
    let mut by: BTreeMap<(String, ShimKind), usize> = BTreeMap::new();
    for s in &r.served {
        *by.entry((runtime_label(r, s.namespace.as_deref()), s.kind))
            .or_default() += 1;
    }
    by.into_iter()
        .map(|((runtime, kind), containers)| Loss {
            runtime,
            kind,
            containers,
        })
        .collect()
}

/// The sentence of one loss.
pub fn sentence(l: &Loss) -> String {
    let until = match l.kind {
        ShimKind::V1 => "until containerd restarts",
        ShimKind::V2 => "until each restarts",
    };
    format!(
        "{}, {}: {} running containers will report a later OOM kill as Error, not OOMKilled, and have no runtime stats, {until}",
        l.runtime, l.kind, l.containers
    )
}

/// The preflight line: every loss, or None when no container loses anything.
pub fn preflight_line(r: &Runtimes) -> Option<String> {
    let l = losses(r);
    (!l.is_empty()).then(|| l.iter().map(sentence).collect::<Vec<_>>().join("; "))
}

/// The remedy: a rolling restart when shim v2 containers are affected (restarting containerd
/// does not bring back a v2 shim's watchers), else a containerd restart for runtime v1.
pub fn remedy(r: &Runtimes) -> Remedy {
    if r.served.iter().any(|s| s.kind == ShimKind::V2) {
        Remedy::RollingRestart
    } else if r.served.iter().any(|s| s.kind == ShimKind::V1) {
        Remedy::RestartContainerd
    } else {
        Remedy::None
    }
}
