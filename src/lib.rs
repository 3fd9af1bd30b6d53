//! cgleak: find and repair the memory-cgroup id leak that stops Kubernetes pods from starting
//! (`mkdir /sys/fs/cgroup/memory/kubepods/...: no space left on device`), without rebooting the
//! node and without restarting a pod.
//!
//! Layers, each in its own module: [`fs`] (the cgroup files, kernel or emulated; [`fixture`]
//! builds kubelet-shaped trees on them for tests and the demo), [`scan`]
//! (the pods tree as a snapshot), [`tree`] (its left-child-right-sibling form), [`kernel`]
//! (what this kernel can do), [`diagnose`], [`plan`] (pure: snapshot in, operations out),
//! [`execute`] (runs a plan, journaled), [`journal`], [`verify`], [`report`] (text and JSON),
//! [`export`] (diagnose for node-problem-detector and Prometheus), [`reclaim`] and [`swap`]
//! (freeing dying memcgs without a reboot), [`probe`] (proving ids free on 3.10).

pub mod app;
pub mod atomic;
pub mod cli;
pub mod demo;
pub mod diagnose;
pub mod error;
pub mod execute;
pub mod export;
pub mod fixture;
pub mod fs;
pub mod ids;
pub mod journal;
pub mod kernel;
pub mod model;
pub mod plan;
pub mod probe;
pub mod reclaim;
pub mod repair;
pub mod report;
pub mod scan;
pub mod swap;
pub mod tree;
pub mod verify;

pub use error::{Error, Result};

/// `cgleak --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CGLEAK_GIT_COMMIT"),
    ")"
);
