//! `cgleak probe-headroom --count N`: prove N memcg ids free by making and removing N empty
//! memcgs.

use super::{open_node, out};
use crate::cli::{Global, ProbeArgs};
use crate::error::Result;
use crate::repair::execute;

pub(super) fn run(g: &Global, a: &ProbeArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    // Ctrl-C stops the probe between two mkdirs; the probe cgroups are removed either way.
    execute::install_interrupt_handler();
    let interrupted = || execute::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst);
    let r = crate::ids::probe::probe(fs.as_ref(), a.count, &g.kubepods, &interrupted)?;
    out(&r.render_text());
    Ok(r.exit_code())
}
