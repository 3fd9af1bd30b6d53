//! `cgleak oom`: read-only; the OOM kills of this node or of a copied kernel log.

use crate::cli::{Global, OomArgs};
use crate::error::{Error, Result};

pub(super) fn run(_g: &Global, _a: &OomArgs) -> Result<u8> {
    Err(Error::Usage("scaffold: not built yet".to_string()))
}
