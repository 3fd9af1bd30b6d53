//! cgleak: find and repair the memory-cgroup id leak that stops Kubernetes pods from starting
//! (`mkdir /sys/fs/cgroup/memory/kubepods/...: no space left on device`), without rebooting the
//! node and without restarting a pod.
//!
//! The layers, top down:
//! - [`cli`]: the command line as data, checked at parse time;
//! - [`commands`]: one file per command, each calling the library and returning an exit code;
//! - [`diagnose`], [`repair`] (its refusals, plan, executor, journal, verify), [`reclaim`],
//!   [`ids`] (counting and proving free memcg ids), [`demo`] (the emulated story);
//! - [`scan`]: the pods tree read into the model;
//! - [`model`]: plain data (snapshot, settings, the left-child-right-sibling tree, what a kernel
//!   release can do), no system calls;
//! - [`host`]: the boundary, the cgroup hierarchy and the machine around it, with a kernel side
//!   and an emulated side.
//!
//! The kernel facts the code relies on are in `docs/kernel-facts.md`, cited by section.

pub mod atomic;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod diagnose;
pub mod doctor;
pub mod error;
pub mod host;
pub mod ids;
pub mod interrupt;
pub mod model;
pub mod reclaim;
pub mod repair;
pub mod runtime;
pub mod scan;

pub use error::{Error, Result};

/// `cgleak --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CGLEAK_GIT_COMMIT"),
    ")"
);
