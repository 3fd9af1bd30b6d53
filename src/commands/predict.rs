//! `cgleak oom --predict`: read-only; the task the kernel would kill next in each memcg of the
//! pods tree, as text (a table per pod), JSON, node-problem-detector's line or Prometheus.
//! Exit 0: no pod's predicted victim is its sandbox or a sidecar; 1: some pod's is; 2: could
//! not tell (the tree unreadable, the kernel release not understood).

use super::{open_node, out};
use crate::cli::{DoctorFormat, Global, OomArgs};
use crate::doctor::identity::Identity;
use crate::doctor::predict::{
    self, mib, Cand, Level, MemcgPrediction, PredictOptions, Report, WarnKind,
};
use crate::error::{BadRoot, Error, Result};
use crate::host::kernel::{KernelFs, KernelHost};

use crate::diagnose::export::NPD_MAX_LINE;

pub(super) fn run(g: &Global, a: &OomArgs) -> Result<u8> {
    if a.since.is_some() {
        return Err(Error::Usage(
            "--since selects past kills; --predict looks at the tasks running now".into(),
        ));
    }
    super::textfile_first(a.format, a.textfile.as_deref())?;
    let report = match build(g, a) {
        Ok(r) => r,
        Err(e) => return Ok(super::could_not_tell(a.format, &e)),
    };
    match a.format {
        DoctorFormat::Text => out(&render_text(&report)),
        DoctorFormat::Json => out(&super::json(&report)),
        DoctorFormat::Npd => out(&render_npd(&report)),
        DoctorFormat::Prometheus => {
            let text = render_prometheus(&report, std::time::SystemTime::now());
            if let Err(e) = super::prometheus_out(&text, a.textfile.as_deref()) {
                eprintln!("cgleak: {e}");
                return Ok(2);
            }
        }
    }
    Ok(exit_code(&report))
}

/// 2 when the rules were guessed, 1 when some pod would lose its sandbox or a sidecar first.
fn exit_code(r: &Report) -> u8 {
    if !r.era.known {
        2
    } else if r.warnings().next().is_some() {
        1
    } else {
        0
    }
}

/// The report from the v1 memory hierarchy at --root, or the unified hierarchy when --root is
/// a cgroup2 mount.
fn build(g: &Global, a: &OomArgs) -> Result<Report> {
    let opts = |v2| PredictOptions {
        kubepods: g.kubepods.clone(),
        pods_log_dir: a.pods_log_dir.to_string_lossy().into_owned(),
        containerd_dir: a.containerd_state_dir.to_string_lossy().into_owned(),
        v2,
    };
    match open_node(&g.root) {
        Ok(fs) => {
            need_tree(fs.as_ref(), g)?;
            let order = predict::inode_order(fs.as_ref());
            predict::predict(fs.as_ref(), fs.as_ref(), &order, &opts(false))
        }
        Err(Error::BadRoot {
            reason: BadRoot::CgroupV2,
            ..
        }) => {
            let unified = KernelFs::open_unified(&g.root)?;
            need_tree(&unified, g)?;
            let order = predict::inode_order(&unified);
            predict::predict(&unified, &KernelHost, &order, &opts(true))
        }
        Err(e) => Err(e),
    }
}

fn need_tree(fs: &dyn crate::host::Hierarchy, g: &Global) -> Result<()> {
    if fs.exists(&g.kubepods) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "no pods cgroup {:?} below {}: pass --kubepods (kubepods.slice with the systemd driver) \
         or --root",
        g.kubepods,
        g.root.display()
    )))
}

/// What a memcg is, in words: "pod shop/web", "container app of pod shop/web", "the pods tree".
fn memcg_label(m: &MemcgPrediction) -> String {
    let pod = m.identity.as_ref().and_then(Identity::pod_label);
    let container = m.identity.as_ref().and_then(Identity::container_label);
    match (m.level, pod, container) {
        (Level::Kubepods, _, _) => format!("the pods tree {}", m.path),
        (Level::Qos, _, _) => format!("QoS level {}", m.path),
        (Level::Container, Some(p), Some(c)) => format!("{c} of {p}"),
        (_, Some(p), _) => p,
        _ => m.path.clone(),
    }
}

/// The container a candidate belongs to, for the table.
fn container_of(c: &Cand) -> String {
    c.identity
        .as_ref()
        .and_then(Identity::container_label)
        .unwrap_or_else(|| "-".into())
}

fn render_text(r: &Report) -> String {
    let mut o = format!(
        "OOM victim prediction: kernel {}, rules {} (cgroup {})\n",
        r.kernel, r.era.name, r.cgroup
    );
    for rule in &r.rules {
        o.push_str(&format!("  {rule}\n"));
    }
    if r.memcgs.is_empty() {
        o.push_str("\nNo memcg of the pods tree has a memory limit: nothing to predict.\n");
    }
    let page_kb = r.page_kb;
    for m in &r.memcgs {
        o.push('\n');
        o.push_str(&render_memcg(m, page_kb));
    }
    if !r.notes.is_empty() {
        o.push_str("\nNotes:\n");
        for n in &r.notes {
            o.push_str(&format!("  - {n}\n"));
        }
    }
    o
}

fn render_memcg(m: &MemcgPrediction, page_kb: u64) -> String {
    let mut o = format!(
        "{}: {}\n  limit {:.1} MiB, totalpages {} (limit + swap headroom), {} points per oom_score_adj unit\n",
        memcg_label(m),
        m.path,
        m.limit_bytes as f64 / 1_048_576.0,
        m.totalpages,
        m.totalpages / 1000
    );
    if !m.scan.is_empty() {
        o.push_str(&format!(
            "  {:>4} {:>8} {:<15} {:<24} {:>5} {:>10} {:>6} {:>5} {:>9}\n",
            "scan", "pid", "comm", "container", "adj", "rss", "swap", "pt", "points"
        ));
    }
    let victim = m.victim.as_ref().map(|v| v.pid);
    let runner = m.runner_up.as_ref().map(|v| v.pid);
    for (i, c) in m.scan.iter().enumerate() {
        let mark = if Some(c.pid) == victim {
            "  <- victim"
        } else if Some(c.pid) == runner {
            "  <- runner-up"
        } else {
            ""
        };
        o.push_str(&format!(
            "  {:>4} {:>8} {:<15} {:<24} {:>5} {:>10} {:>6} {:>5} {:>9}{mark}\n",
            i + 1,
            c.pid,
            c.comm,
            truncate(&container_of(c), 24),
            c.oom_score_adj,
            mib(c.rss_pages, page_kb),
            c.swap_pages,
            c.pgtables_pages,
            c.points
        ));
    }
    for x in &m.excluded {
        o.push_str(&format!(
            "       {:>8} {:<15} never chosen: {}\n",
            x.pid, x.comm, x.reason
        ));
    }
    o.push_str(&verdict_lines(m));
    o
}

fn verdict_lines(m: &MemcgPrediction) -> String {
    let mut o = String::new();
    match (&m.victim, &m.runner_up, m.margin_points) {
        (None, _, _) => o.push_str("  no killable task: the kernel would find nothing to kill\n"),
        (Some(v), Some(r), Some(margin)) => {
            let tie = if m.tie {
                " (a tie: decided by scan order)"
            } else {
                ""
            };
            o.push_str(&format!(
                "  victim {} (pid {}); runner-up {} (pid {}), margin {margin} points{tie}\n",
                v.comm, v.pid, r.comm, r.pid
            ));
        }
        (Some(v), _, _) => o.push_str(&format!(
            "  victim {} (pid {}), the only candidate\n",
            v.comm, v.pid
        )),
    }
    if let Some(p) = m.sacrificed_for {
        o.push_str(&format!(
            "  chosen by the scan: pid {p}; its child above dies in its place (before 5.1)\n"
        ));
    }
    if let Some(g) = &m.oom_group {
        o.push_str(&format!(
            "  memory.oom.group is set on {g}: every task there dies with the victim\n"
        ));
    }
    if let Some(w) = &m.warning {
        o.push_str(&format!("  WARNING: {}\n", w.message));
        for c in &w.changes {
            o.push_str(&format!("    - {c}\n"));
        }
    }
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('~');
    t
}

/// `head`, then as many of `fields` as fit in [`NPD_MAX_LINE`] bytes, with a newline: the
/// diagnose NPD line's rule.
fn fit(head: &str, fields: &[String]) -> String {
    crate::diagnose::export::fit(head, fields, NPD_MAX_LINE) + "\n"
}

/// The pod a prediction is for, as a short name.
fn pod_name(m: &MemcgPrediction) -> String {
    m.identity
        .as_ref()
        .and_then(Identity::pod_label)
        .unwrap_or_else(|| m.path.clone())
}

fn render_npd(r: &Report) -> String {
    let warned: Vec<String> = r
        .warnings()
        .filter_map(|m| {
            let w = m.warning.as_ref()?;
            let what = match w.kind {
                WarnKind::Sandbox => "sandbox",
                WarnKind::Sidecar => "sidecar",
            };
            Some(format!("{} {what} first", pod_name(m)))
        })
        .collect();
    let pods = r.memcgs.iter().filter(|m| m.level == Level::Pod).count();
    if warned.is_empty() {
        return fit(
            &format!("OK: no pod's OOM victim would be its sandbox or a sidecar ({pods} pods)"),
            &[],
        );
    }
    fit(
        &format!("WARNING: {} of {pods} pods:", warned.len()),
        &warned,
    )
}

/// Prometheus label values escaped as the text format wants.
pub(super) use crate::diagnose::export::labels as prom_labels;

/// One gauge family: HELP, TYPE and its samples (label set, value).
pub(super) fn prom_family(o: &mut String, name: &str, help: &str, samples: &[(String, String)]) {
    if samples.is_empty() {
        return;
    }
    o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, v) in samples {
        o.push_str(&format!("{name}{labels} {v}\n"));
    }
}

fn render_prometheus(r: &Report, now: std::time::SystemTime) -> String {
    let mut sandbox = Vec::new();
    let mut sidecar = Vec::new();
    let mut margin = Vec::new();
    for m in r.memcgs.iter().filter(|m| m.level == Level::Pod) {
        let id = m.identity.clone().unwrap_or_default();
        let labels = prom_labels(&[
            ("namespace", id.namespace.as_deref().unwrap_or("")),
            ("pod", id.pod_name.as_deref().unwrap_or("")),
            ("pod_uid", id.pod_uid.as_deref().unwrap_or("")),
        ]);
        let kind = m.warning.as_ref().map(|w| w.kind);
        let flag = |k| if kind == Some(k) { "1" } else { "0" }.to_string();
        sandbox.push((labels.clone(), flag(WarnKind::Sandbox)));
        sidecar.push((labels.clone(), flag(WarnKind::Sidecar)));
        if let Some(p) = m.margin_points {
            margin.push((labels, p.to_string()));
        }
    }
    let mut o = String::new();
    prom_family(&mut o, "cgleak_oom_predicted_victim_is_sandbox",
        "1 when the task the kernel would kill first at the pod's memory limit is its sandbox (pause): the whole pod would be recreated.",
        &sandbox);
    prom_family(&mut o, "cgleak_oom_predicted_victim_is_sidecar",
        "1 when the task the kernel would kill first at the pod's memory limit is not its main process (the largest rss) nor its sandbox.",
        &sidecar);
    prom_family(&mut o, "cgleak_oom_predicted_margin_points",
        "oom_badness points of the predicted victim minus the runner-up's (0: a tie, decided by scan order).",
        &margin);
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    prom_family(
        &mut o,
        "cgleak_oom_predict_last_run_timestamp_seconds",
        "When this prediction ran, in seconds since the epoch.",
        &[(String::new(), format!("{secs:.3}"))],
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            prom_labels(&[("pod", "a\"b\\c\nd"), ("namespace", "x")]),
            "{pod=\"a\\\"b\\\\c\\nd\",namespace=\"x\"}"
        );
    }

    #[test]
    fn npd_lines_fit() {
        let long: Vec<String> = (0..20)
            .map(|i| format!("namespace-{i}/pod-{i} sandbox first"))
            .collect();
        let l = fit("WARNING: 20 of 20 pods:", &long);
        assert!(l.len() <= NPD_MAX_LINE + 1, "{l}");
        assert!(
            l.starts_with("WARNING: 20 of 20 pods: namespace-0/pod-0 sandbox first"),
            "{l}"
        );
        assert_eq!(truncate("abcdef", 4), "abc~");
    }
}
