//! The model: plain data with no system calls. The snapshot of a pods tree and its settings
//! ([`snapshot`], re-exported here), the tree in left-child-right-sibling form ([`tree`]), and
//! what a kernel release can do ([`kernel`]), cgroup paths ([`path`]), and what a command line carries ([`invocation`]).

pub mod invocation;
pub mod kernel;
pub mod path;
pub mod snapshot;
pub mod tree;

pub use snapshot::*;
