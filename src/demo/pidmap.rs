//! Which emulated process stands for which task of a snapshot.
//!
//! `cgleak emulate DIR --from-snapshot node.json` recreates a real node's tree with one emulated
//! process per task, and the emulation hands out its own pids. To let `cgleak verify --snapshot
//! node.json` check a rehearsal against the very file it was made from, emulate records the
//! correspondence in [`PID_MAP_FILE`] next to the node's state file, and verify maps the
//! snapshot's pids through it (and says so).

use crate::error::{Error, Result};
use crate::model::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The map's file, in the emulated node's base directory.
pub const PID_MAP_FILE: &str = "snapshot-pids.json";

/// One task of the snapshot and the emulated process made for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedTask {
    pub cgroup: String,
    pub snapshot_pid: u32,
    pub emulated_pid: u32,
}

/// The correspondence for one snapshot. A pid is mapped per cgroup: in v1 a process with a
/// thread in another cgroup is listed in both, and the emulation made a process for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidMap {
    pub kubepods: String,
    pub tasks: Vec<MappedTask>,
}

impl PidMap {
    pub fn new(kubepods: &str) -> PidMap {
        PidMap {
            kubepods: kubepods.to_string(),
            tasks: Vec::new(),
        }
    }

    pub fn add(&mut self, cgroup: &str, snapshot_pid: u32, emulated_pid: u32) {
        self.tasks.push(MappedTask {
            cgroup: cgroup.to_string(),
            snapshot_pid,
            emulated_pid,
        });
    }

    pub fn path(base: &Path) -> PathBuf {
        base.join(PID_MAP_FILE)
    }

    /// Write the map next to the node at `base`, atomically.
    pub fn save(&self, base: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).expect("serializable");
        crate::atomic::write_file_atomic(&PidMap::path(base), &data, ".json.tmp", 0o644)
    }

    /// The map of the node at `base`, None when the node was not made from a snapshot.
    pub fn load(base: &Path) -> Result<Option<PidMap>> {
        let path = PidMap::path(base);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Usage(format!(
                "{}: not a pid map written by cgleak emulate ({e}); remove it to verify without mapping pids",
                path.display()
            ))
        })
    }

    /// Whether `snap` is the snapshot this map was made from: the same pods cgroup and exactly
    /// the same tasks in the same cgroups. Any other snapshot is compared unmapped.
    pub fn applies_to(&self, snap: &Snapshot) -> bool {
        let mine: HashSet<(&str, u32)> = self
            .tasks
            .iter()
            .map(|t| (t.cgroup.as_str(), t.snapshot_pid))
            .collect();
        let theirs: HashSet<(&str, u32)> = snap
            .cgroups
            .iter()
            .flat_map(|c| c.tasks.iter().map(move |&p| (c.path.as_str(), p)))
            .collect();
        self.kubepods == snap.kubepods && mine == theirs
    }

    /// Rewrite the snapshot's pids to the emulated ones.
    pub fn apply(&self, snap: &mut Snapshot) {
        let map: HashMap<(&str, u32), u32> = self
            .tasks
            .iter()
            .map(|t| ((t.cgroup.as_str(), t.snapshot_pid), t.emulated_pid))
            .collect();
        for rec in &mut snap.cgroups {
            for pid in &mut rec.tasks {
                if let Some(&e) = map.get(&(rec.path.as_str(), *pid)) {
                    *pid = e;
                }
            }
        }
    }
}
