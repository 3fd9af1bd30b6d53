//! `cgleak plan`: the dry run. The pods tree, the id check and every operation a repair would
//! do, in order; exit 2 when a repair with the same options would refuse, with the same
//! reasons ([`crate::repair::refusal`]). Changes nothing, takes no lock, makes no directory.

use super::{json, open_node, out, resolve_ids_used};
use crate::cli::{Format, Global, PlanArgs};
use crate::error::Result;
use crate::repair::refusal::Kubelet;
use crate::repair::{self, report, RepairOptions};

pub(super) fn run(g: &Global, a: &PlanArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let mut opts = RepairOptions::new(&g.kubepods, &g.staging, a.strategy, &a.state_dir);
    opts.ids_used = resolve_ids_used(a.ids_used, "plan")?;
    opts.assume_kubelet_stopped = a.assume_kubelet_stopped;
    let (facts, p) = repair::dry_run(fs.as_ref(), &opts)?;
    let snap = &facts.snapshot;
    let cost = facts
        .runtimes
        .as_ref()
        .and_then(crate::runtime::cost::preflight_line);
    match a.format {
        Format::Json => out(&json(&serde_json::json!({
            "snapshot": snap,
            "plan": p,
            "runtimes": facts.runtimes,
            "runtime_cost": cost,
        }))),
        Format::Text => {
            out(&report::render_plan(snap, &p, !a.summary));
            // Information, not a refusal: what the repair will cost the container runtime.
            if let Some(cost) = &cost {
                out(&format!("Runtimes: {cost}\n"));
            }
        }
    }
    if let Kubelet::AssumedStopped(pids) = &facts.run.kubelet {
        eprintln!("cgleak: kubelet running (pids {pids:?}): stop it before the repair");
    }
    if p.runnable() {
        return Ok(0);
    }
    if a.format == Format::Json {
        let lines: Vec<String> = p
            .blockers
            .iter()
            .map(|b| format!("{} ({}): {}", b.message, b.code, b.hint))
            .collect();
        eprintln!(
            "cgleak: this plan cannot run:\n  - {}",
            lines.join("\n  - ")
        );
    }
    Ok(2)
}
