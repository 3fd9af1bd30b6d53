//! The repair's record of the containers whose watchers it cost (a file in the state
//! directory), and the read-only check of which of them still run without one
//! (`cgleak watchers`), so a rolling restart can be planned and checked.
//!
//! Based on what is observable (docs/runtimes.md): a container keeps lacking its watcher as
//! long as the processes that ran in it at the repair still run (same pid and start time: a
//! restarted container has new processes, and its shim registered a new eventfd on the memcg
//! that exists now). Runtime v1's watchers come back with a restart of containerd: a containerd
//! that is not the process recorded at the repair.
//!
//! The eventfd counts corroborate that judgement. The lab showed (scripts/vm/README.md, boot C,
//! 5.10 and 6.1) that a shim v2 holds exactly one `anon_inode:[eventfd]` per container it
//! watches, and none once the repair has cost it the watch; runtime v1's containerd the same
//! for its v1 containers. So a shim should hold as many eventfds as it serves containers now,
//! less those judged lacking. A count that differs is reported (the judgement of that shim's
//! containers may be wrong, or something else registered an eventfd): never hidden, never
//! turned into a verdict of its own, since the count cannot say which container it belongs to.

use super::classify::ShimKind;
use super::{Runtimes, Served, TaskId};
use crate::error::{Error, Result};
use crate::host::procs::{ProcInfo, EVENTFD_LINK};
use crate::host::Node;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The record's file name in the state directory.
pub const AFFECTED_FILE: &str = "runtime-affected.json";

/// Format of the record.
pub const AFFECTED_FORMAT: u32 = 1;

/// One container that lost its watcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// `pod<uid>` of its path, null outside a pod cgroup.
    pub pod: Option<String>,
    /// The container's cgroup name (its id).
    pub container: String,
    #[serde(flatten)]
    pub served: Served,
}

/// The record written after a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedRecord {
    pub format: u32,
    pub written_at: u64,
    /// containerd as it ran at the repair (runtime v1: a restart brings the watchers back).
    pub containerd: Option<TaskId>,
    pub containers: Vec<Affected>,
}

/// `pod<uid>` in a path, and the last component.
fn pod_and_name(cgroup: &str) -> (Option<String>, String) {
    let parts: Vec<&str> = cgroup.split('/').collect();
    let pod = parts
        .iter()
        .rev()
        .skip(1)
        .find(|p| p.starts_with("pod"))
        .map(|p| p.to_string());
    (pod, parts.last().copied().unwrap_or("").to_string())
}

/// The record of `r` as of now.
pub fn record_of(r: &Runtimes, table: &[ProcInfo], now: u64) -> AffectedRecord {
    let containerd = r
        .daemons
        .iter()
        .find(|d| d.name == "containerd")
        .and_then(|d| table.iter().find(|p| p.pid == d.pid))
        .map(|p| TaskId {
            pid: p.pid,
            start_time: p.start_time,
        });
    AffectedRecord {
        format: AFFECTED_FORMAT,
        written_at: now,
        containerd,
        containers: r
            .served
            .iter()
            .map(|s| {
                let (pod, container) = pod_and_name(&s.cgroup);
                Affected {
                    pod,
                    container,
                    served: s.clone(),
                }
            })
            .collect(),
    }
}

/// Write the record into `dir` (atomically); its path.
pub fn write(dir: &Path, rec: &AffectedRecord) -> Result<PathBuf> {
    let path = dir.join(AFFECTED_FILE);
    let data = serde_json::to_vec_pretty(rec).expect("record serializes");
    crate::atomic::write_file_atomic(&path, &data, ".json", 0o644)?;
    Ok(path)
}

/// The record in `dir`; a clear error (exit 2) when there is none or it is not one.
pub fn load(dir: &Path) -> Result<AffectedRecord> {
    let path = dir.join(AFFECTED_FILE);
    let raw = std::fs::read(&path).map_err(|e| {
        Error::Usage(format!(
            "{}: {e}; give the --state-dir of a repair that found containers of a runtime (it writes {AFFECTED_FILE} there)",
            path.display()
        ))
    })?;
    serde_json::from_slice(&raw).map_err(|e| {
        Error::Usage(format!(
            "{}: not a record of affected containers ({e}); give the --state-dir of a cgleak repair",
            path.display()
        ))
    })
}

/// Where a recorded container stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchState {
    /// Its recorded processes still run: no watcher on the memcg it is in now.
    Lacking,
    /// It runs new processes (restarted), or containerd restarted (runtime v1): watched again.
    Watched,
    /// Neither its processes nor its cgroup exist any more.
    Gone,
}

/// One container of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerWatch {
    pub cgroup: String,
    pub pod: Option<String>,
    pub container: String,
    pub kind: ShimKind,
    pub shim_pid: u32,
    pub state: WatchState,
}

/// The eventfds a watcher's owner (a shim v2, or containerd for runtime v1) holds now, against
/// what the judgement of its containers expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimFds {
    pub pid: u32,
    /// `shim` (v2: watches its own containers) or `containerd` (runtime v1's watchers).
    pub owner: String,
    pub eventfds: usize,
    /// Containers it serves now, less those judged lacking: one eventfd each.
    pub expected: usize,
    /// eventfds == expected.
    pub agrees: bool,
}

/// What `cgleak watchers` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchersReport {
    pub affected_file: PathBuf,
    pub recorded: usize,
    pub lacking: usize,
    pub watched: usize,
    pub gone: usize,
    pub containers: Vec<ContainerWatch>,
    pub shims: Vec<ShimFds>,
    /// Owners whose eventfd count does not match the judgement.
    pub disagreements: usize,
}

/// Compare the record with the node now.
///
/// `cgroups_now`: the cgroups of the pods tree with their tasks now
/// ([`super::cgroups_of`] of a scan), to count the containers each shim serves now.
pub fn check(
    node: &dyn Node,
    dir: &Path,
    rec: &AffectedRecord,
    cgroups_now: &[(String, Vec<u32>)],
) -> Result<WatchersReport> {
    let table = node.processes()?;
    let running: HashSet<(u32, u64)> = table.iter().map(|p| (p.pid, p.start_time)).collect();
    let containerd_same = rec
        .containerd
        .is_some_and(|t| running.contains(&(t.pid, t.start_time)));
    let mut containers = Vec::new();
    for a in &rec.containers {
        let s = &a.served;
        let old_runs = s
            .tasks
            .iter()
            .any(|t| running.contains(&(t.pid, t.start_time)));
        let state = match (old_runs, s.kind) {
            (true, ShimKind::V1) if !containerd_same => WatchState::Watched,
            (true, _) => WatchState::Lacking,
            (false, _) if node.exists(&s.cgroup) => WatchState::Watched,
            (false, _) => WatchState::Gone,
        };
        containers.push(ContainerWatch {
            cgroup: s.cgroup.clone(),
            pod: a.pod.clone(),
            container: a.container.clone(),
            kind: s.kind,
            shim_pid: s.shim_pid,
            state,
        });
    }
    let now = super::detect_from(&table, None, cgroups_now);
    let shims = corroborate(node, &now, &containers)?;
    let count = |w: WatchState| containers.iter().filter(|c| c.state == w).count();
    Ok(WatchersReport {
        affected_file: dir.join(AFFECTED_FILE),
        recorded: containers.len(),
        lacking: count(WatchState::Lacking),
        watched: count(WatchState::Watched),
        gone: count(WatchState::Gone),
        disagreements: shims.iter().filter(|f| !f.agrees).count(),
        containers,
        shims,
    })
}

/// The eventfd count of every watcher owner that serves a container now, against the
/// containers it serves now less those judged lacking.
fn corroborate(node: &dyn Node, now: &Runtimes, judged: &[ContainerWatch]) -> Result<Vec<ShimFds>> {
    let containerd = now
        .daemons
        .iter()
        .find(|d| d.name == "containerd")
        .map(|d| d.pid);
    // Runtime v1: the shim only holds the task; containerd holds the watch.
    let owner = |kind: ShimKind, shim_pid: u32| match kind {
        ShimKind::V1 => containerd.map(|p| (p, "containerd")),
        _ => Some((shim_pid, "shim")),
    };
    // owner pid -> (kind, served now, judged lacking)
    let mut owners: std::collections::BTreeMap<u32, (&str, usize, usize)> = Default::default();
    for s in &now.served {
        if let Some((pid, name)) = owner(s.kind, s.shim_pid) {
            owners.entry(pid).or_insert((name, 0, 0)).1 += 1;
        }
    }
    for c in judged.iter().filter(|c| c.state == WatchState::Lacking) {
        if let Some(o) = owner(c.kind, c.shim_pid).and_then(|(p, _)| owners.get_mut(&p)) {
            o.2 += 1;
        }
    }
    let mut out = Vec::new();
    for (pid, (owner, served, lacking)) in owners {
        let fds = node.fd_targets(pid)?;
        let eventfds = fds.iter().filter(|t| *t == EVENTFD_LINK).count();
        let expected = served.saturating_sub(lacking);
        out.push(ShimFds {
            pid,
            owner: owner.to_string(),
            eventfds,
            expected,
            agrees: eventfds == expected,
        });
    }
    Ok(out)
}

/// The report for people.
pub fn render(r: &WatchersReport) -> String {
    let mut s = format!(
        "{} containers recorded in {}: {} still lack their runtime's OOM watcher, {} watched again (restarted), {} gone\n",
        r.recorded,
        r.affected_file.display(),
        r.lacking,
        r.watched,
        r.gone
    );
    for c in r
        .containers
        .iter()
        .filter(|c| c.state == WatchState::Lacking)
    {
        s.push_str(&format!(
            "  lacking: {} (pod {}, {}, shim pid {})\n",
            c.cgroup,
            c.pod.as_deref().unwrap_or("-"),
            c.kind,
            c.shim_pid
        ));
    }
    if r.lacking == 0 {
        s.push_str("Every recorded container that still runs has its watcher again.\n");
    }
    for f in r.shims.iter().filter(|f| !f.agrees) {
        s.push_str(&format!(
            "  warning: {} pid {} holds {} eventfds where {} are expected (one per container it watches): the judgement of its containers may be off; check them with `ctr task metrics` or `crictl stats`\n",
            f.owner, f.pid, f.eventfds, f.expected
        ));
    }
    if r.disagreements == 0 && !r.shims.is_empty() {
        s.push_str("The runtimes' eventfd counts agree (one per watched container).\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_and_container_of_paths() {
        assert_eq!(
            pod_and_name("kubepods/burstable/pod12-ab/c0ffee"),
            (Some("pod12-ab".into()), "c0ffee".into())
        );
        assert_eq!(pod_and_name("kubepods/x"), (None, "x".into()));
    }
}
