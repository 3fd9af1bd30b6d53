//! `cgleak memory`: read-only; per container, usage, working set and what could be reclaimed.

use crate::cli::{Global, MemoryArgs};
use crate::error::{Error, Result};

pub(super) fn run(_g: &Global, _a: &MemoryArgs) -> Result<u8> {
    Err(Error::Usage("scaffold: not built yet".to_string()))
}
