//! `cgleak oom --predict`: read-only; the task the kernel would kill next in each memcg of the pods tree.

use crate::cli::{Global, OomArgs};
use crate::error::{Error, Result};

pub(super) fn run(_g: &Global, _a: &OomArgs) -> Result<u8> {
    Err(Error::Usage("scaffold: not built yet".to_string()))
}
