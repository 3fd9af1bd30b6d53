//! What a repair, resume or rollback reports about the runtimes (`runtime` in its JSON, which
//! an Ansible role reads), and the next steps it names.

use super::classify::ShimKind;
use super::cost::Remedy;
use super::record::{self, AffectedRecord, AFFECTED_FILE};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The `runtime` object of a repair's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeOutcome {
    /// Running containers that lost their runtime's OOM watcher.
    pub affected: usize,
    pub remedy: Remedy,
    /// The record of those containers in the state directory, null when none.
    pub affected_file: Option<PathBuf>,
    /// The read-only command that tells which of them still lack a watcher, null when none.
    pub check_command: Option<String>,
}

/// The remedy for the containers of a record.
pub fn remedy_of(rec: &AffectedRecord) -> Remedy {
    let kinds = |k| rec.containers.iter().any(|a| a.served.kind == k);
    if kinds(ShimKind::V2) {
        Remedy::RollingRestart
    } else if kinds(ShimKind::V1) {
        Remedy::RestartContainerd
    } else {
        Remedy::None
    }
}

/// `cgleak [--root R] watchers --state-dir D` (--root only when not the default).
pub fn check_command(root: &Path, state_dir: &Path) -> String {
    let root_arg = if root == Path::new("/sys/fs/cgroup/memory") {
        String::new()
    } else {
        format!(" --root {}", root.display())
    };
    format!(
        "cgleak{root_arg} watchers --state-dir {}",
        state_dir.display()
    )
}

/// The outcome from the record a repair left in `state_dir` (none: nothing affected).
pub fn from_state_dir(root: &Path, state_dir: &Path) -> RuntimeOutcome {
    let rec = state_dir
        .join(AFFECTED_FILE)
        .exists()
        .then(|| record::load(state_dir).ok())
        .flatten()
        .filter(|r| !r.containers.is_empty());
    match rec {
        None => RuntimeOutcome {
            affected: 0,
            remedy: Remedy::None,
            affected_file: None,
            check_command: None,
        },
        Some(r) => RuntimeOutcome {
            affected: r.containers.len(),
            remedy: remedy_of(&r),
            affected_file: Some(state_dir.join(AFFECTED_FILE)),
            check_command: Some(check_command(root, state_dir)),
        },
    }
}

/// The next steps for the runtime, numbered from `first`; empty when nothing was affected.
pub fn next_steps(o: &RuntimeOutcome, first: usize) -> String {
    let file = o
        .affected_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let check = o.check_command.clone().unwrap_or_default();
    match o.remedy {
        Remedy::None => String::new(),
        Remedy::RestartContainerd => format!(
            "  {first}. restart containerd (systemctl restart containerd; KillMode=process keeps the shims and containers running): runtime v1 registers the OOM watchers of the {} containers again; check with: {check}\n",
            o.affected
        ),
        Remedy::RollingRestart => format!(
            "  {first}. {} running containers have no OOM watcher and no runtime stats until each restarts (shim v2): they are listed in {file}; restart them pod by pod (kubectl rollout restart, or delete the pods) and check which are left with: {check}\n",
            o.affected
        ),
    }
}
