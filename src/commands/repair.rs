//! `cgleak repair`: preflight (the refusals), the plan, then the journaled migration and
//! verify; guided (a question before each phase) unless `--yes`.

use super::{ask, confirmer, finish, json, open_node, out, require_consent, resolve_ids_used};
use crate::cli::{Format, Global, RepairArgs};
use crate::error::Result;
use crate::repair::{self, execute, report, RepairOptions};
use std::io::IsTerminal;

pub(super) fn run(g: &Global, a: &RepairArgs) -> Result<u8> {
    let fs = open_node(&g.root)?;
    let guided = require_consent(a.yes, "repair")?;
    let mut opts = RepairOptions::new(&g.kubepods, &g.staging, a.strategy, &a.state_dir);
    opts.ids_used = resolve_ids_used(a.ids_used, "repair")?;
    opts.allow_kubelet_running = a.allow_kubelet_running;
    opts.knobs.crash_after = super::test_crash_after();
    opts.knobs.progress = a.format == Format::Text && std::io::stderr().is_terminal();
    opts.knobs.pace = a.pacing.pace;
    let prepared = repair::prepare(fs.as_ref(), &opts)?;
    if a.format == Format::Text {
        eprint!("{}", report::render_checks(&prepared.checks));
    }
    if let Some(e) = repair::refusal(&prepared) {
        if a.format == Format::Json {
            // The same objects as plan's `blockers`, for scripts that gate on the codes.
            out(&json(
                &serde_json::json!({ "refusals": prepared.plan.blockers }),
            ));
        }
        return Err(e);
    }
    if a.format == Format::Text {
        eprintln!();
        eprint!(
            "{}",
            report::render_plan(&prepared.snapshot, &prepared.plan, false)
        );
        eprintln!();
    }
    // What the runtimes lose is asked about on its own: the operator accepts that cost, not
    // only the phases.
    if let (true, Some(cost)) = (guided, prepared.runtime_cost()) {
        if !ask(&format!("{cost}. Accept this?")) {
            eprintln!("Nothing was changed.");
            return Ok(2);
        }
    }
    if guided && !ask("Start the repair?") {
        eprintln!("Nothing was changed.");
        return Ok(2);
    }
    crate::interrupt::install_handler();
    let mut asker = confirmer();
    let confirm: Option<&mut execute::Confirm> = if guided { Some(&mut asker) } else { None };
    let outcome = repair::execute(fs.as_ref(), &opts, prepared, confirm)?;
    finish(outcome, a.format)
}
