//! `cgleak reclaim`: drop the clean page cache (and with `--swap-cycle` cycle the swap) so the
//! kernel frees dying memcgs; tells what it costs the node and asks first.

use super::{ask, json, open_node, out, require_consent};
use crate::cli::{Format, Global, ReclaimArgs};
use crate::error::Result;
use crate::reclaim::{self, ReclaimOptions};

pub(super) fn run(g: &Global, a: &ReclaimArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let node = fs.as_ref();
    let opts = ReclaimOptions {
        dry_run: a.dry_run,
        swap_cycle: a.swap_cycle,
    };
    // Refusals (3.10, not root, a swap cycle that does not fit) come before the question.
    reclaim::preflight(node, &opts)?;
    if !a.dry_run && !consent(a)? {
        eprintln!("Nothing was changed.");
        return Ok(2);
    }
    let r = reclaim::reclaim(node, node, &opts, std::time::Duration::from_secs(60))?;
    match a.format {
        Format::Json => out(&json(&r)),
        Format::Text => out(&r.render_text()),
    }
    for p in r.swap.left_off() {
        eprintln!(
            "cgleak: swap area {} is OFF: run `swapon {}`",
            p.display(),
            p.display()
        );
    }
    Ok(if r.ok() { 0 } else { 1 })
}

/// Say what the drop (and the swap cycle) costs the node's workloads, then ask (or take
/// `--yes`). False: the operator said no.
fn consent(a: &ReclaimArgs) -> Result<bool> {
    eprintln!(
        "reclaim drops the clean page cache of the whole node (/proc/sys/vm/drop_caches): every \
         workload starts with cold caches and reads from disk rise until they refill."
    );
    if a.swap_cycle {
        eprintln!(
            "--swap-cycle then turns each swap area off and on again (swapoff, swapon): every \
             swapped-out page is read back into memory, with disk IO for as long as that takes; \
             the workloads keep running."
        );
    }
    let q = if a.swap_cycle {
        "Drop the page cache and cycle the swap now?"
    } else {
        "Drop the page cache now?"
    };
    if require_consent(a.yes, "reclaim")? && !ask(q) {
        return Ok(false);
    }
    if a.swap_cycle {
        // Ctrl-C must not kill cgleak between a swapoff and its swapon.
        crate::interrupt::install_handler();
    }
    Ok(true)
}
