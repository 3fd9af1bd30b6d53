//! The limits the verdict uses, and why each value: one place, read by the verdict
//! ([`super::verdict`]) and carried in the facts (`thresholds` in the JSON) so a reader of a
//! report knows which limits judged it.

use serde::{Deserialize, Serialize};

/// Free ids at or below which the node is at risk. A busy node churns a few ids per pod start
/// (pod cgroup, pause container, each container); while the leak runs, each deleted container
/// keeps its id, so 10,000 is days of churn, not weeks. It also leaves room for the migration
/// repair on 3.10, which needs free ids for the cgroups it recreates (see
/// [`crate::repair::plan::ids_needed`]), so there is still time to plan a maintenance window.
pub const AT_RISK_IDS_FREE: u64 = 10_000;

/// Free ids at or below which the node is leaking now: a few hundred pod starts at most before
/// kubelet's mkdir fails with "no space left on device", and too few ids left to be sure a
/// migration repair can finish.
pub const LEAKING_IDS_FREE: u64 = 1_000;

/// Dying memcgs per live memcg at or above which they are piling up (an indicator: at-risk). A
/// few dying memcgs are normal (page cache of a deleted cgroup keeps it until reclaimed); twice
/// as many dying as live means they accumulate faster than memory pressure frees them.
pub const AT_RISK_DYING_RATIO: f64 = 2.0;

/// The dying ratio applies only from this many dying memcgs: on a small node (seen here: 7 live,
/// 38 dying) a high ratio is harmless, 1,000 ids are 1.5% of the id space.
pub const MIN_DYING_FOR_RATIO: u64 = 1_000;

/// The limits the verdict uses (see the constants for why each value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Free ids at or below this: at-risk ([`AT_RISK_IDS_FREE`]).
    pub at_risk_ids_free: u64,
    /// Free ids at or below this: leaking ([`LEAKING_IDS_FREE`]).
    pub leaking_ids_free: u64,
    /// dying/live at or above this (with at least `min_dying_for_ratio` dying): at-risk
    /// ([`AT_RISK_DYING_RATIO`]).
    pub at_risk_dying_ratio: f64,
    /// Fewer dying memcgs than this never count as piling up ([`MIN_DYING_FOR_RATIO`]).
    pub min_dying_for_ratio: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            at_risk_ids_free: AT_RISK_IDS_FREE,
            leaking_ids_free: LEAKING_IDS_FREE,
            at_risk_dying_ratio: AT_RISK_DYING_RATIO,
            min_dying_for_ratio: MIN_DYING_FOR_RATIO,
        }
    }
}
