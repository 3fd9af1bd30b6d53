//! `cgleak probe-headroom --count N`: prove N memcg ids free by making and removing N empty
//! memcgs.

use super::{open_node, out};
use crate::cli::{Global, ProbeArgs};
use crate::error::Result;

pub(super) fn run(g: &Global, a: &ProbeArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    // Ctrl-C stops the probe between two mkdirs; the probe cgroups are removed either way.
    crate::interrupt::install_handler();
    let interrupted = crate::interrupt::interrupted;
    let r = crate::ids::probe::probe(fs.as_ref(), a.count, &g.kubepods, &interrupted)?;
    out(&r.render_text());
    Ok(r.exit_code())
}
