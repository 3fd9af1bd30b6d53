//! Waiting, before a repair makes the original cgroup paths exist again, until the runtimes
//! have reacted to the removal of the old memcgs.
//!
//! Why (docs/runtimes.md, "The spurious TaskOOM"): when a removed memcg goes offline the
//! kernel signals the eventfds registered on it (mm/memcontrol.c memcg_event_remove), and the
//! watcher's owner (a shim v2; containerd for runtime v1) then lstat()s the container's cgroup
//! path. Missing, it drops the watch and closes the fd; present again, it publishes a TaskOOM
//! the container never had, and the CRI plugin records OOMKilled at its next exit. The lab saw
//! that with the rename strategy, where the original paths come back one rename after the last
//! rmdir. So before the phase that brings them back, cgleak lets the owners run until their
//! eventfd counts have stopped changing, bounded in time. Nothing is journaled for it: it
//! changes nothing, and a resume that reaches the same phase waits again.

use super::classify::{role, Role};
use crate::error::Result;
use crate::host::procs::EVENTFD_LINK;
use crate::host::Host;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest wait: the lab's shims reacted within milliseconds of the rmdir.
pub const SETTLE_BUDGET: Duration = Duration::from_secs(3);

/// Time between two counts.
pub const SAMPLE: Duration = Duration::from_millis(20);

/// Counts in a row that must agree (100 ms without a change).
pub const STABLE_SAMPLES: u32 = 5;

/// What the wait saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// Processes whose eventfds were counted (shims, containerd).
    pub owners: usize,
    pub eventfds_before: usize,
    pub eventfds_after: usize,
    pub waited_ms: u64,
    /// The counts stopped changing within [`SETTLE_BUDGET`].
    pub settled: bool,
}

/// The processes that own memcg watchers: shims, and containerd (runtime v1 keeps them there).
fn owners(host: &dyn Host) -> Result<Vec<u32>> {
    Ok(host
        .processes()?
        .iter()
        .filter(|p| matches!(role(p), Role::Shim { .. } | Role::Daemon("containerd")))
        .map(|p| p.pid)
        .collect())
}

fn eventfds(host: &dyn Host, pids: &[u32]) -> Result<usize> {
    let mut n = 0;
    for &p in pids {
        n += host
            .fd_targets(p)?
            .iter()
            .filter(|t| *t == EVENTFD_LINK)
            .count();
    }
    Ok(n)
}

/// Wait until the watcher owners' eventfd counts stop changing; None without any owner.
pub fn settle(host: &dyn Host) -> Result<Option<Settled>> {
    let pids = owners(host)?;
    if pids.is_empty() {
        return Ok(None);
    }
    let before = eventfds(host, &pids)?;
    let (mut last, mut stable, mut waited) = (before, 0u32, Duration::ZERO);
    let settled = loop {
        host.pass_time(SAMPLE);
        waited += SAMPLE;
        let now = eventfds(host, &pids)?;
        if now == last {
            stable += 1;
        } else {
            (last, stable) = (now, 0);
        }
        if stable >= STABLE_SAMPLES {
            break true;
        }
        if waited >= SETTLE_BUDGET {
            break false;
        }
    };
    Ok(Some(Settled {
        owners: pids.len(),
        eventfds_before: before,
        eventfds_after: last,
        waited_ms: waited.as_millis() as u64,
        settled,
    }))
}
