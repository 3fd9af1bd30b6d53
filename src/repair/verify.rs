//! Comparing the live tree with a snapshot: every cgroup present with equal settings (after
//! page rounding), every task that still lives in its original cgroup, the staging cgroup gone,
//! and on 3.10 no kmem accounting active in the new tree. Tasks that exited meanwhile are
//! reported, not counted as lost.

use crate::error::Result;
use crate::host::Node;
use crate::model::kernel::KernelInfo;
use crate::model::{normalize_limit, CgroupRecord, Settings, Snapshot};
use crate::scan;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One way the live tree differs from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    MissingCgroup {
        cgroup: String,
    },
    Setting {
        cgroup: String,
        setting: String,
        expected: String,
        actual: String,
    },
    /// A task that lives but is not in its original cgroup.
    Misplaced {
        pid: u32,
        expected: String,
        actual: Option<String>,
    },
    StagingPresent {
        cgroup: String,
    },
    KmemActive {
        cgroup: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::MissingCgroup { cgroup } => write!(f, "missing cgroup {cgroup}"),
            Difference::Setting {
                cgroup,
                setting,
                expected,
                actual,
            } => {
                write!(f, "{cgroup}: {setting} is {actual}, expected {expected}")
            }
            Difference::Misplaced {
                pid,
                expected,
                actual,
            } => match actual {
                Some(a) => write!(f, "task {pid} is in {a}, expected {expected}"),
                None => write!(f, "task {pid} left the pods tree, expected in {expected}"),
            },
            Difference::StagingPresent { cgroup } => {
                write!(f, "staging cgroup {cgroup} still exists")
            }
            Difference::KmemActive { cgroup } => {
                write!(
                    f,
                    "kmem accounting is active in {cgroup} (it will leak again)"
                )
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub cgroups_checked: usize,
    pub tasks_checked: usize,
    pub tasks_in_place: usize,
    /// (pid, original cgroup) of tasks that exited since the snapshot: not lost.
    pub exited: Vec<(u32, String)>,
    /// Tasks in the tree that the snapshot did not have (children forked meanwhile).
    pub new_tasks: usize,
    pub differences: Vec<Difference>,
    /// Whether the 3.10 kmem check applied.
    pub kmem_checked: bool,
    /// The pid map the snapshot's pids went through, when the live tree is a rehearsal made by
    /// `cgleak emulate --from-snapshot` of that snapshot (see [`crate::demo::pidmap`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_mapped_through: Option<String>,
}

impl VerifyReport {
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        if let Some(map) = &self.pids_mapped_through {
            s.push_str(&format!(
                "verify: a rehearsal of the snapshot: its pids were mapped to the emulated ones through {map}\n"
            ));
        }
        s.push_str(&format!(
            "verify: {} cgroups, {} tasks checked: {} in place, {} exited meanwhile, {} new\n",
            self.cgroups_checked,
            self.tasks_checked,
            self.tasks_in_place,
            self.exited.len(),
            self.new_tasks
        ));
        for (pid, cg) in self.exited.iter().take(20) {
            s.push_str(&format!("  exited (not lost): pid {pid} of {cg}\n"));
        }
        if self.exited.len() > 20 {
            s.push_str(&format!(
                "  ... and {} more exited\n",
                self.exited.len() - 20
            ));
        }
        for d in &self.differences {
            s.push_str(&format!("  DIFFERENCE: {d}\n"));
        }
        s.push_str(if self.ok {
            "verify: OK, the live tree matches the snapshot\n"
        } else {
            "verify: FAILED, see the differences above\n"
        });
        s
    }
}

fn compare(cg: &str, want: &Settings, got: &Settings, out: &mut Vec<Difference>) {
    let mut diff = |name: &str, e: String, a: String| {
        if e != a {
            out.push(Difference::Setting {
                cgroup: cg.to_string(),
                setting: name.to_string(),
                expected: e,
                actual: a,
            });
        }
    };
    diff(
        "memory.limit_in_bytes",
        normalize_limit(want.limit_in_bytes).to_string(),
        normalize_limit(got.limit_in_bytes).to_string(),
    );
    if let (Some(w), Some(g)) = (want.memsw_limit_in_bytes, got.memsw_limit_in_bytes) {
        diff(
            "memory.memsw.limit_in_bytes",
            normalize_limit(w).to_string(),
            normalize_limit(g).to_string(),
        );
    }
    diff(
        "memory.soft_limit_in_bytes",
        normalize_limit(want.soft_limit_in_bytes).to_string(),
        normalize_limit(got.soft_limit_in_bytes).to_string(),
    );
    diff(
        "memory.swappiness",
        want.swappiness.to_string(),
        got.swappiness.to_string(),
    );
    diff(
        "oom_kill_disable",
        want.oom_kill_disable.to_string(),
        got.oom_kill_disable.to_string(),
    );
    diff(
        "memory.use_hierarchy",
        want.use_hierarchy.to_string(),
        got.use_hierarchy.to_string(),
    );
    if let (Some(w), Some(g)) = (want.move_charge_at_immigrate, got.move_charge_at_immigrate) {
        diff(
            "memory.move_charge_at_immigrate",
            w.to_string(),
            g.to_string(),
        );
    }
}

/// Compare the live tree under `fs` with `snap`. `check_kmem`: on 3.10, require that kmem
/// accounting is not active anywhere in the tree (after a repair; not after a rollback, which
/// keeps the original cgroups).
pub fn verify(
    fs: &dyn Node,
    snap: &Snapshot,
    staging: &str,
    check_kmem: bool,
) -> Result<VerifyReport> {
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    // One scan of the live tree gives every cgroup's settings and tasks (and, on 3.10, whether
    // kmem accounting is active): each file is read once, not once for the snapshot's cgroups
    // and again for the cgroups the snapshot lacks.
    let live_snap = scan::scan_live(fs, &snap.kubepods)?;
    let check_kmem = check_kmem && kernel.kmem_per_cgroup() == Some(true);
    let mut differences = Vec::new();
    let (live_pids, any_live) = check_cgroups(snap, &live_snap, check_kmem, &mut differences);
    let tasks = check_tasks(fs, snap, &live_pids, &mut differences);
    if !staging.is_empty() && staging != snap.kubepods && fs.exists(staging) {
        differences.push(Difference::StagingPresent {
            cgroup: staging.to_string(),
        });
    }
    Ok(VerifyReport {
        ok: differences.is_empty(),
        cgroups_checked: snap.cgroups.len(),
        tasks_checked: tasks.checked,
        tasks_in_place: tasks.in_place,
        exited: tasks.exited,
        new_tasks: tasks.new,
        differences,
        kmem_checked: check_kmem && any_live,
        pids_mapped_through: None,
    })
}

/// Where every task of the live tree is. A pid can be listed in several cgroups: in v1,
/// cgroup.procs shows the thread-group id of every thread in the cgroup, so a process with a
/// thread elsewhere is listed in both.
type LivePids = HashMap<u32, Vec<String>>;

/// Each cgroup of the snapshot against the live tree (present, settings, kmem when
/// `check_kmem`); returns where every live task is (in the snapshot's cgroups and the others),
/// and whether any of the snapshot's cgroups is live.
fn check_cgroups(
    snap: &Snapshot,
    live_snap: &Snapshot,
    check_kmem: bool,
    differences: &mut Vec<Difference>,
) -> (LivePids, bool) {
    let live: HashMap<&str, &CgroupRecord> = live_snap
        .cgroups
        .iter()
        .map(|r| (r.path.as_str(), r))
        .collect();
    let mut live_pids = LivePids::new();
    let mut any_live = false;
    for rec in &snap.cgroups {
        let Some(got) = live.get(rec.path.as_str()) else {
            differences.push(Difference::MissingCgroup {
                cgroup: rec.path.clone(),
            });
            continue;
        };
        any_live = true;
        compare(&rec.path, &rec.settings, &got.settings, differences);
        for &pid in &got.tasks {
            live_pids.entry(pid).or_default().push(rec.path.clone());
        }
        if check_kmem && got.kmem_active == Some(true) {
            differences.push(Difference::KmemActive {
                cgroup: rec.path.clone(),
            });
        }
    }
    // Cgroups in the live tree that the snapshot lacks may hold tasks too.
    let snap_paths: HashSet<&str> = snap.cgroups.iter().map(|c| c.path.as_str()).collect();
    for rec in &live_snap.cgroups {
        if !snap_paths.contains(rec.path.as_str()) {
            for &pid in &rec.tasks {
                live_pids.entry(pid).or_default().push(rec.path.clone());
            }
        }
    }
    (live_pids, any_live)
}

/// What became of the snapshot's tasks.
struct TaskCheck {
    checked: usize,
    in_place: usize,
    exited: Vec<(u32, String)>,
    new: usize,
}

/// Every task of the snapshot: in its cgroup, elsewhere (a difference), or exited (not lost).
fn check_tasks(
    fs: &dyn Node,
    snap: &Snapshot,
    live_pids: &LivePids,
    differences: &mut Vec<Difference>,
) -> TaskCheck {
    let mut t = TaskCheck {
        checked: 0,
        in_place: 0,
        exited: Vec::new(),
        new: 0,
    };
    let mut expected_pids = HashSet::new();
    for rec in &snap.cgroups {
        for &pid in &rec.tasks {
            t.checked += 1;
            expected_pids.insert(pid);
            match live_pids.get(&pid) {
                Some(cgs) if cgs.contains(&rec.path) => t.in_place += 1,
                Some(cgs) => differences.push(Difference::Misplaced {
                    pid,
                    expected: rec.path.clone(),
                    actual: Some(cgs.join(", ")),
                }),
                None if !fs.pid_alive(pid) => t.exited.push((pid, rec.path.clone())),
                None => differences.push(Difference::Misplaced {
                    pid,
                    expected: rec.path.clone(),
                    actual: None,
                }),
            }
        }
    }
    t.new = live_pids
        .keys()
        .filter(|p| !expected_pids.contains(p))
        .count();
    t
}
