//! The memory doctor: which pod and container an OOM kill hit (the kernel log), which task the
//! kernel would kill next in each pod (this kernel's own victim rules), and why a container's
//! working set looks full (memory.stat as kubelet reads it). Read-only, v1 and v2.

pub mod badness;
pub mod era;
pub mod identity;
pub mod kmsg;
pub mod memory;
pub mod oom_render;
pub mod oomlog;
pub mod predict;
