//! `cgleak oom`'s output forms: text (one block per kill, newest last), JSON (the
//! [`Report`] as serde writes it; one [`Kill`] per line under --follow), node-problem-detector's
//! one line and the Prometheus text format for node_exporter's textfile collector.
//!
//! NPD's custom plugin protocol (as `diagnose --format npd`, src/diagnose/export.rs): the exit
//! code is the status (0 no kill in the window, 1 kills, 2 could not tell) and stdout one
//! ASCII line of at most [`crate::diagnose::export::NPD_MAX_LINE`] bytes, whole fields dropped
//! to fit. Prometheus: `cgleak_oom_kills_total` counts the kills the kernel log still holds,
//! per pod, container, victim kind and constraint; the ring buffer forgets old records, so the
//! count can fall (a counter reset to Prometheus, which `increase()` takes as such).

use super::oomlog::{Kill, Report};
use crate::diagnose::export::{fit, label_value as label, NPD_MAX_LINE};
use std::fmt::Write as _;

/// KiB for text: as they are below 1 MiB, else MiB with one decimal.
fn mib(kib: u64) -> String {
    if kib < 1024 {
        return format!("{kib} KiB");
    }
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "?".to_string())
}

/// The whole report as text.
pub fn render_text(r: &Report, since: Option<&str>) -> String {
    let mut o = String::new();
    let window = since.map(|s| format!(" since {s}")).unwrap_or_default();
    match r.kills.len() {
        0 => {
            let _ = writeln!(o, "no OOM kills in {}{window}", r.source);
        }
        n => {
            let _ = writeln!(o, "{n} OOM kill(s) in {}{window}, oldest first:", r.source);
        }
    }
    for k in &r.kills {
        o.push('\n');
        o.push_str(&render_kill_text(k));
    }
    let _ = writeln!(
        o,
        "\n{} records read, {} garbled or truncated lines skipped",
        r.records, r.skipped
    );
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// One kill's block.
pub fn render_kill_text(k: &Kill) -> String {
    let mut o = String::new();
    let when = match (&k.time, k.since_boot_s) {
        (Some(t), Some(s)) => format!("{t} ({s:.3} s after boot)"),
        (Some(t), None) => t.clone(),
        (None, Some(s)) => format!("time unknown, {s:.3} s after boot"),
        (None, None) => "time unknown".to_string(),
    };
    let scope = match (&k.oom_memcg, k.global_oom) {
        (Some(m), _) => format!("memcg OOM in {m}"),
        (None, true) => "node (global) OOM".to_string(),
        (None, false) if k.constraint.as_deref() == Some("CONSTRAINT_MEMCG") => {
            "memcg OOM (memcg not in the log)".to_string()
        }
        (None, false) => "OOM (kind not in the log)".to_string(),
    };
    let _ = writeln!(o, "{when}  {scope}");
    let _ = writeln!(o, "  victim:   {}", victim_line(k));
    if let Some(id) = &k.identity {
        identity_lines(&mut o, id);
    }
    if let Some(m) = &k.task_memcg {
        let _ = writeln!(o, "  memcg:    {m}");
    }
    if k.memory.limit_kib.is_some() || k.memory.usage_kib.is_some() {
        let _ = writeln!(
            o,
            "  memory:   usage {} of limit {}, failcnt {}",
            k.memory.usage_kib.map(mib).unwrap_or_else(|| "?".into()),
            k.memory.limit_kib.map(mib).unwrap_or_else(|| "?".into()),
            opt(k.memory.failcnt)
        );
    }
    if let Some(c) = &k.invoker.comm {
        let _ = writeln!(
            o,
            "  invoker:  {c} pid {} (oom_score_adj {})",
            opt(k.invoker.pid),
            opt(k.invoker.oom_score_adj)
        );
    }
    for m in &k.group {
        let _ = writeln!(
            o,
            "  also:     {} pid {} ({})",
            opt(m.task.comm.as_deref()),
            opt(m.task.pid),
            m.because
        );
    }
    if let Some(r) = &k.reaper {
        let state = match (r.reaped, r.anon_rss_kib) {
            (true, Some(a)) => format!("reaped its memory (anon-rss now {})", mib(a)),
            (true, None) => "reaped its memory".to_string(),
            (false, _) => "could not reap its memory".to_string(),
        };
        let _ = writeln!(o, "  reaper:   the oom_reaper {state}");
    }
    if k.sandbox_killed {
        let _ = writeln!(o, "  SANDBOX:  {}", k.why.as_deref().unwrap_or_default());
    }
    o
}

fn victim_line(k: &Kill) -> String {
    let v = &k.victim;
    let mut s = format!("{} pid {}", opt(v.comm.as_deref()), opt(v.pid));
    let mut extra = Vec::new();
    if let Some(a) = v.oom_score_adj {
        extra.push(format!("oom_score_adj {a}"));
    }
    if let Some(sc) = v.score {
        extra.push(format!("score {sc}"));
    }
    if let Some(a) = v.anon_rss_kib {
        extra.push(format!("anon-rss {}", mib(a)));
    }
    if let Some(f) = v.file_rss_kib {
        extra.push(format!("file-rss {}", mib(f)));
    }
    if let Some(u) = v.uid {
        extra.push(format!("uid {u}"));
    }
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join(", "));
    }
    s
}

fn identity_lines(o: &mut String, id: &super::identity::Identity) {
    if let Some(p) = id.pod_label() {
        let uid = match (&id.pod_name, &id.pod_uid) {
            (Some(_), Some(u)) => format!(" (uid {u})"),
            _ => String::new(),
        };
        let qos = id
            .qos
            .map(|q| format!(", QoS {}", q.as_str()))
            .unwrap_or_default();
        let _ = writeln!(o, "  pod:      {p}{uid}{qos}");
    }
    if let Some(c) = id.container_label() {
        let _ = writeln!(o, "  container: {c}");
    }
}

/// The report as pretty JSON.
pub fn render_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}

/// One kill as one JSON line (--follow).
pub fn render_kill_json_line(k: &Kill) -> String {
    serde_json::to_string(k).unwrap_or_default() + "\n"
}

/// The NPD line (with its newline): the count, the sandbox kills, then the newest kill's
/// victim, pod and time, as many as fit.
pub fn render_npd(r: &Report) -> String {
    let Some(last) = r.kills.last() else {
        return fit("OK: no OOM kills", &[], NPD_MAX_LINE) + "\n";
    };
    let mut fields = vec![format!("{} kills", r.kills.len())];
    let sandboxes = r.kills.iter().filter(|k| k.sandbox_killed).count();
    if sandboxes > 0 {
        fields.push(format!("{sandboxes} sandbox"));
    }
    fields.push(format!(
        "last {} pid {}",
        opt(last.victim.comm.as_deref()),
        opt(last.victim.pid)
    ));
    if let Some(pod) = last.identity.as_ref().and_then(|i| i.pod_label()) {
        fields.push(pod);
    }
    if let Some(t) = &last.time {
        fields.push(t.clone());
    }
    fit("OOM:", &fields, NPD_MAX_LINE) + "\n"
}

/// What the victim was, for the metric's label: the pod's sandbox, a pod's container, a
/// process outside pods killed by a memcg OOM, or a node-wide OOM's victim outside pods.
pub fn victim_kind(k: &Kill) -> &'static str {
    if k.sandbox_killed {
        "sandbox"
    } else if k.identity.is_some() {
        "container"
    } else if k.global_oom {
        "node"
    } else {
        "process"
    }
}

/// The Prometheus text exposition (0.0.4) of the report.
pub fn render_prometheus(r: &Report) -> String {
    let mut counts: std::collections::BTreeMap<[String; 5], u64> = Default::default();
    for k in &r.kills {
        let id = k.identity.clone().unwrap_or_default();
        let key = [
            id.namespace.unwrap_or_default(),
            id.pod_name.or(id.pod_uid).unwrap_or_default(),
            id.container_name.or(id.container_id).unwrap_or_default(),
            victim_kind(k).to_string(),
            k.constraint.clone().unwrap_or_default(),
        ];
        *counts.entry(key).or_default() += 1;
    }
    let mut o = String::new();
    o.push_str(
        "# HELP cgleak_oom_kills_total OOM kills the kernel log still holds, by pod (name, or uid \
         when the node has no name for it), container (name, or id) and victim kind (sandbox, \
         container, process outside pods, node: a global OOM's victim outside pods). Falls when \
         the kernel overwrites old records.\n# TYPE cgleak_oom_kills_total counter\n",
    );
    for ([ns, pod, c, kind, constraint], n) in &counts {
        let _ = writeln!(
            o,
            "cgleak_oom_kills_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\",victim_kind=\"{}\",constraint=\"{}\"}} {n}",
            label(ns),
            label(pod),
            label(c),
            label(kind),
            label(constraint)
        );
    }
    if let Some(last) = r.kills.iter().filter_map(|k| k.wall_us).max() {
        o.push_str(
            "# HELP cgleak_oom_last_kill_timestamp_seconds Wall time of the newest OOM kill in \
             the kernel log. Absent when no kill has a wall time.\n\
             # TYPE cgleak_oom_last_kill_timestamp_seconds gauge\n",
        );
        let _ = writeln!(
            o,
            "cgleak_oom_last_kill_timestamp_seconds {}",
            last.div_euclid(1_000_000)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::identity::Identity;

    fn kill(comm: &str, id: Option<Identity>, global: bool) -> Kill {
        let mut k = Kill {
            identity: id,
            global_oom: global,
            constraint: Some("CONSTRAINT_MEMCG".into()),
            wall_us: Some(1_796_278_303_500_000),
            ..Kill::default()
        };
        k.victim.comm = Some(comm.into());
        k.victim.pid = Some(7);
        k
    }

    fn report(kills: Vec<Kill>) -> Report {
        Report {
            source: "x".into(),
            kills,
            records: 1,
            skipped: 0,
            notes: vec![],
        }
    }

    #[test]
    fn victim_kinds() {
        let pod = Identity {
            pod_uid: Some("u".into()),
            container_id: Some("c".into()),
            ..Identity::default()
        };
        let mut s = kill("pause", Some(pod.clone()), false);
        s.sandbox_killed = true;
        assert_eq!(victim_kind(&s), "sandbox");
        assert_eq!(victim_kind(&kill("app", Some(pod), true)), "container");
        assert_eq!(victim_kind(&kill("sshd", None, true)), "node");
        assert_eq!(victim_kind(&kill("cron", None, false)), "process");
    }

    #[test]
    fn prometheus_labels_are_escaped_and_counted() {
        let id = Identity {
            namespace: Some("ns".into()),
            pod_name: Some("we\"ird\\pod".into()),
            container_name: Some("app".into()),
            container_id: Some("c".into()),
            ..Identity::default()
        };
        let r = report(vec![
            kill("a", Some(id.clone()), false),
            kill("a", Some(id), false),
        ]);
        let m = render_prometheus(&r);
        assert!(
            m.contains("pod=\"we\\\"ird\\\\pod\",container=\"app\",victim_kind=\"container\",constraint=\"CONSTRAINT_MEMCG\"} 2"),
            "{m}"
        );
        assert!(
            m.contains("cgleak_oom_last_kill_timestamp_seconds 1796278303\n"),
            "{m}"
        );
        let empty = render_prometheus(&report(vec![]));
        assert!(!empty.contains("cgleak_oom_kills_total{"), "{empty}");
    }

    #[test]
    fn npd_lines_fit_and_stay_ascii() {
        let mut k = kill("ünïcode-name-that-is-long", None, false);
        k.time = Some("2026-12-03T06:11:43Z".into());
        let line = render_npd(&report(vec![k.clone(), k]));
        assert!(line.len() <= NPD_MAX_LINE + 1 && line.is_ascii(), "{line}");
        assert!(line.starts_with("OOM: 2 kills, last "), "{line}");
        assert_eq!(render_npd(&report(vec![])), "OK: no OOM kills\n");
        assert_eq!(fit(&"x".repeat(100), &[], 10), "xxxxxxx...");
    }
}
