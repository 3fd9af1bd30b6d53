//! cgleak: find and repair the memory-cgroup id leak that stops Kubernetes pods from starting
//! (`mkdir /sys/fs/cgroup/memory/kubepods/...: no space left on device`), without rebooting the
//! node and without restarting a pod.
//!
//! Layers, each in its own module: [`fs`] (the cgroup files, kernel or emulated), [`scan`]
//! (the pods tree as a snapshot), [`tree`] (its left-child-right-sibling form), [`kernel`]
//! (what this kernel can do), [`diagnose`], [`plan`] (pure: snapshot in, operations out),
//! [`execute`] (runs a plan, journaled), [`journal`], [`verify`], [`report`] (text and JSON).

pub mod error;
pub mod fs;
pub mod kernel;
pub mod model;
pub mod reclaim;
pub mod tree;

pub use error::{Error, Result};
