//! `cgleak diagnose`: read-only; the verdict in text, JSON, node-problem-detector's line or the
//! Prometheus text format.

use super::{open_node, out, resolve_ids_used};
use crate::cli::{DiagnoseArgs, DiagnoseFormat, Global};
use crate::error::{Error, Result};

/// `cgleak diagnose` in every format. The machine formats (npd, prometheus) turn any error into
/// exit 2 ("could not tell"): their readers take exit 1 for "problem found", which some errors
/// (a failed system call) would otherwise give.
pub(super) fn run(g: &Global, a: &DiagnoseArgs) -> Result<u8> {
    if a.textfile.is_some() && a.format != DiagnoseFormat::Prometheus {
        return Err(Error::Usage(
            "--textfile goes with --format prometheus".to_string(),
        ));
    }
    if let Some(p) = &a.textfile {
        // Refuse before diagnosing: nothing would ever read the result.
        crate::diagnose::export::check_textfile(p)?;
    }
    let machine = matches!(a.format, DiagnoseFormat::Npd | DiagnoseFormat::Prometheus);
    let facts = match diagnose_facts(g, a) {
        Ok(f) => f,
        Err(e) if machine => {
            eprintln!("cgleak: {e}");
            if a.format == DiagnoseFormat::Npd {
                out(&crate::diagnose::export::render_npd_error(&e));
            }
            return Ok(2);
        }
        Err(e) => return Err(e),
    };
    match a.format {
        DiagnoseFormat::Text => out(&crate::diagnose::render_text(&facts)),
        DiagnoseFormat::Json => out(&crate::diagnose::render_json(&facts)),
        DiagnoseFormat::Npd => out(&crate::diagnose::export::render_npd(&facts)),
        DiagnoseFormat::Prometheus => {
            let text =
                crate::diagnose::export::render_prometheus(&facts, std::time::SystemTime::now());
            match &a.textfile {
                // node_exporter reads only the file: stdout stays empty, -v logs the write.
                Some(p) => {
                    if let Err(e) = crate::diagnose::export::write_textfile(p, text.as_bytes()) {
                        eprintln!("cgleak: {e}");
                        return Ok(2);
                    }
                    log::info!("wrote {} ({})", p.display(), facts.verdict.status);
                }
                None => out(&text),
            }
        }
    }
    Ok(facts.verdict.exit_code())
}

/// Everything diagnose found: from the v1 memory hierarchy at --root, or, when --root is on the
/// unified hierarchy, the cgroup v2 report (read from --root, the machine's own host facts).
pub(super) fn diagnose_facts(g: &Global, a: &DiagnoseArgs) -> Result<crate::diagnose::Facts> {
    let fs = match open_node(&g.root) {
        Ok(fs) => fs,
        Err(Error::BadRoot {
            reason: crate::error::BadRoot::CgroupV2,
            ..
        }) => {
            let unified = crate::host::kernel::KernelFs::open_unified(&g.root)?;
            let host = crate::host::kernel::KernelHost;
            return Ok(crate::diagnose::gather_v2(&unified, &host, true));
        }
        Err(e) => return Err(e),
    };
    let node = fs.as_ref();
    crate::diagnose::gather(
        node,
        node,
        &crate::diagnose::DiagnoseOptions {
            kubepods: g.kubepods.clone(),
            ids_used: resolve_ids_used(a.ids_used, "diagnose")?,
            check_kubelet: true,
            staging: g.staging.clone(),
        },
    )
}
