//! `cgleak plan`: the dry run. The pods tree, the id check and every operation a repair would
//! do, in order; exit 2 when the repair would refuse. Changes nothing.

use super::{json, open_node, out, resolve_ids_used};
use crate::cli::{Format, Global, PlanArgs};
use crate::error::Result;
use crate::model::kernel::KernelInfo;
use crate::repair::plan::{self, PlanInput};
use crate::repair::report;
use crate::{ids, scan};

pub(super) fn run(g: &Global, a: &PlanArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let snap = scan::scan(fs.as_ref(), &g.kubepods)?;
    let kernel = KernelInfo::from_release(&fs.kernel_release()?);
    let idc = ids::count(fs.as_ref(), &kernel, resolve_ids_used(a.ids_used, "plan")?)?;
    let p = plan::plan(
        &snap,
        &PlanInput {
            staging: g.staging.clone(),
            strategy: a.strategy,
            move_charge: kernel.move_charge_supported(),
            ids_free: idc.ids_free,
            staging_exists: fs.exists(&g.staging),
        },
    );
    match a.format {
        Format::Json => out(&json(&serde_json::json!({ "snapshot": snap, "plan": p }))),
        Format::Text => out(&report::render_plan(&snap, &p, !a.summary)),
    }
    if p.runnable() {
        return Ok(0);
    }
    if a.format == Format::Json {
        eprintln!(
            "cgleak: this plan cannot run:\n  - {}",
            p.blockers.join("\n  - ")
        );
    }
    Ok(2)
}
