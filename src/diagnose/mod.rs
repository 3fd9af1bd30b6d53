//! `cgleak diagnose`: is this node running out of memory-cgroup ids, why, and what to do.
//!
//! One concept a file, read in this order:
//! - [`facts`]: the [`Facts`] of a node, which are also the JSON report (a contract for
//!   scripts: unknown values are `null`, never guessed);
//! - [`gather`]: reading a v1 node through the two halves of the boundary, the hierarchy and the
//!   host; read-only, because a diagnosis must be safe on a node that is already failing;
//! - [`v2`]: the same report on the unified hierarchy;
//! - [`verdict`]: the thresholds and the ranking, one table for every kernel era;
//! - [`advice`]: what to do, by kernel era;
//! - [`render`]: text and JSON; [`export`]: node-problem-detector and Prometheus.
//!
//! The kernel rules behind each decision are in docs/kernel-facts.md: a memcg holds one id from
//! mkdir until its last charge goes ("The leak"), how many ids a kernel has ("Memcg id limit by
//! kernel", [`crate::model::kernel::KernelInfo::memcg_id_limit`]), and how visible dying memcgs
//! are by kernel era ("Counting dying memcgs").

pub mod advice;
pub mod export;
pub mod facts;
pub mod gather;
pub mod numbers;
pub mod render;
pub mod thresholds;
pub mod v2;
pub mod verdict;

#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod tests;

pub use facts::{
    Facts, HierarchyFacts, IdsSource, KernelFacts, KubeletFacts, KubepodsFacts, Status, Verdict,
};
pub use gather::{compute_ids, gather, kubepods_facts, DiagnoseOptions};
pub use numbers::sep;
pub use render::{render_json, render_text};
pub use thresholds::{
    Thresholds, AT_RISK_DYING_RATIO, AT_RISK_IDS_FREE, LEAKING_IDS_FREE, MIN_DYING_FOR_RATIO,
};
pub use v2::{facts_v2, gather_v2, V2Inputs};
pub use verdict::{rank, verdict, FreeIds};
