//! The node's container runtimes, found without their APIs: from the process table
//! ([`crate::host::Host::processes`]) and the package database only, so that diagnose and the
//! repair's preflight can say what a repair costs them (docs/runtimes.md, from the lab).
//!
//! Found: the daemons (containerd, dockerd) with their versions where the package database
//! names them; the shims (runtime v1 `containerd-shim`, shim v2 `containerd-shim-runc-v1/-v2`)
//! with their namespace (`k8s.io` for the CRI plugin, `moby` for docker); and which shim serves
//! which cgroup of the pods tree: the parent chain from each cgroup's tasks up to a shim (runc
//! starts a container's init as a child of its shim, which is its subreaper).

pub mod classify;
pub mod cost;
pub mod outcome;
pub mod record;
pub mod settle;
pub mod version;

use crate::error::Result;
use crate::host::procs::ProcInfo;
use crate::host::Host;
use classify::{role, Role, ShimKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How far up the parent chain a container's process may be from its shim (a shell in a
/// container running a program running another): deeper chains are not followed.
const MAX_DEPTH: usize = 64;

/// A runtime daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    /// "containerd" or "dockerd".
    pub name: String,
    pub pid: u32,
    /// The upstream version ("1.6.20"), null when the package database does not name it.
    pub version: Option<String>,
}

/// A shim and how many cgroups of the pods tree it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shim {
    pub pid: u32,
    pub kind: ShimKind,
    /// `-namespace` of its command line (k8s.io, moby), null without one.
    pub namespace: Option<String>,
    pub containers: usize,
}

/// One process of a container, named so that a reused pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskId {
    pub pid: u32,
    pub start_time: u64,
}

/// A cgroup of the pods tree whose tasks a shim serves: a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// Path relative to --root (`kubepods/burstable/pod<uid>/<id>`).
    pub cgroup: String,
    pub shim_pid: u32,
    pub kind: ShimKind,
    pub namespace: Option<String>,
    pub tasks: Vec<TaskId>,
}

/// What diagnose reports (`runtimes` in its JSON) and the preflight line is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtimes {
    pub daemons: Vec<Daemon>,
    pub shims: Vec<Shim>,
    /// Cgroups of the pods tree served by a shim.
    pub containers_served: usize,
    /// No daemon and no shim found.
    pub none_found: bool,
    /// The served cgroups themselves (for the repair's record; not in diagnose's JSON).
    #[serde(skip)]
    pub served: Vec<Served>,
}

/// The shim a process runs under: the first shim on its parent chain.
fn shim_above<'a>(
    by_pid: &HashMap<u32, &'a ProcInfo>,
    roles: &HashMap<u32, Role>,
    pid: u32,
) -> Option<&'a ProcInfo> {
    let mut cur = by_pid.get(&pid)?.ppid;
    for _ in 0..MAX_DEPTH {
        let p = by_pid.get(&cur)?;
        if matches!(roles.get(&cur), Some(Role::Shim { .. })) {
            return Some(p);
        }
        if p.ppid == 0 || p.ppid == cur {
            return None;
        }
        cur = p.ppid;
    }
    None
}

/// Detect the runtimes from a process table and the pods tree's cgroups with their tasks.
pub fn detect_from(
    table: &[ProcInfo],
    dpkg_status: Option<&str>,
    cgroups: &[(String, Vec<u32>)],
) -> Runtimes {
    let by_pid: HashMap<u32, &ProcInfo> = table.iter().map(|p| (p.pid, p)).collect();
    let roles: HashMap<u32, Role> = table.iter().map(|p| (p.pid, role(p))).collect();
    let mut daemons = Vec::new();
    let mut shims: BTreeMap<u32, Shim> = BTreeMap::new();
    for p in table {
        match &roles[&p.pid] {
            Role::Daemon(name) => daemons.push(Daemon {
                name: name.to_string(),
                pid: p.pid,
                version: version::daemon_version(name, p.exe.as_deref(), dpkg_status),
            }),
            Role::Shim { kind, namespace } => {
                shims.insert(
                    p.pid,
                    Shim {
                        pid: p.pid,
                        kind: *kind,
                        namespace: namespace.clone(),
                        containers: 0,
                    },
                );
            }
            Role::Other => {}
        }
    }
    let mut served = Vec::new();
    for (cg, pids) in cgroups {
        let Some(shim) = pids.iter().find_map(|&p| shim_above(&by_pid, &roles, p)) else {
            continue;
        };
        let s = shims.get_mut(&shim.pid).expect("every shim is listed");
        s.containers += 1;
        let tasks = pids
            .iter()
            .filter_map(|p| by_pid.get(p))
            .map(|p| TaskId {
                pid: p.pid,
                start_time: p.start_time,
            })
            .collect();
        served.push(Served {
            cgroup: cg.clone(),
            shim_pid: shim.pid,
            kind: s.kind,
            namespace: s.namespace.clone(),
            tasks,
        });
    }
    Runtimes {
        none_found: daemons.is_empty() && shims.is_empty(),
        containers_served: served.len(),
        daemons,
        shims: shims.into_values().collect(),
        served,
    }
}

/// Detect the runtimes on `host`, serving the given cgroups (path, pids).
pub fn detect(host: &dyn Host, cgroups: &[(String, Vec<u32>)]) -> Result<Runtimes> {
    let (table, status) = read_host(host)?;
    Ok(detect_from(&table, status.as_deref(), cgroups))
}

/// What [`detect`] reads of the host, which does not depend on the cgroups: the process table
/// and the package database (dpkg's status file). A repair reads it alongside its scan.
pub fn read_host(host: &dyn Host) -> Result<(Vec<ProcInfo>, Option<String>)> {
    let table = host.processes()?;
    // An unreadable package database only costs the versions.
    let status = host.host_file(version::DPKG_STATUS).unwrap_or(None);
    Ok((table, status))
}

/// The pods tree's cgroups with their tasks, as a scan saw them.
pub fn cgroups_of(snap: &crate::model::Snapshot) -> Vec<(String, Vec<u32>)> {
    snap.cgroups
        .iter()
        .filter(|c| !c.tasks.is_empty())
        .map(|c| (c.path.clone(), c.tasks.clone()))
        .collect()
}

/// One line for people: "containerd 1.6.20 (pid 540), dockerd version unknown (pid 610);
/// 12 shims (shim v2: 12, namespace k8s.io) serve 24 containers", or that none was found.
pub fn render_line(r: &Runtimes) -> String {
    if r.none_found {
        return "no container runtime found (no containerd, dockerd or containerd-shim process)"
            .into();
    }
    let daemons: Vec<String> = r
        .daemons
        .iter()
        .map(|d| match &d.version {
            Some(v) => format!("{} {v} (pid {})", d.name, d.pid),
            None => format!("{}, version unknown (pid {})", d.name, d.pid),
        })
        .collect();
    let mut kinds: BTreeMap<(ShimKind, String), usize> = BTreeMap::new();
    for s in &r.shims {
        let ns = s.namespace.clone().unwrap_or_else(|| "no namespace".into());
        *kinds.entry((s.kind, ns)).or_default() += 1;
    }
    let kinds: Vec<String> = kinds
        .iter()
        .map(|((k, ns), n)| format!("{k}: {n}, namespace {ns}"))
        .collect();
    let daemons = if daemons.is_empty() {
        "no daemon".to_string()
    } else {
        daemons.join(", ")
    };
    format!(
        "{daemons}; {} shims ({}) serve {} containers of the pods tree",
        r.shims.len(),
        if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join("; ")
        },
        r.containers_served
    )
}

#[cfg(test)]
pub(crate) mod tests;
