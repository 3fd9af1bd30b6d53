//! The diagnosis for people (text, lines under 100 characters) and for scripts (JSON, the key
//! contract of [`Facts`]).

use super::advice::repair_ids;
use super::facts::{Facts, IdsSource};
use super::numbers::{join_pids, sep};
use std::fmt::Write as _;

fn opt_n(v: Option<u64>) -> String {
    v.map(sep).unwrap_or_else(|| "unknown".to_string())
}

fn opt_b(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

/// Wrap `text` to lines shorter than 100 characters; the first line starts with `first`, the
/// rest with `rest` (same width).
pub(crate) fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    const WIDTH: usize = 96;
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

fn row(out: &mut String, label: &str, value: &str) {
    wrap(out, &format!("  {label:<18}"), &" ".repeat(20), value);
}

/// The report for a terminal.
pub fn render_text(f: &Facts) -> String {
    let mut o = String::new();
    kernel_section(&mut o, f);
    ids_section(&mut o, f);
    if !f.is_v2() {
        pods_section(&mut o, f);
    }
    o.push_str("\nkubelet\n");
    let kl = match f.kubelet.running {
        Some(true) => format!("yes (pid {})", join_pids(&f.kubelet.pids)),
        Some(false) => "no".to_string(),
        None => "not checked".to_string(),
    };
    row(&mut o, "running", &kl);
    if let Some(r) = &f.runtimes {
        runtimes_section(&mut o, r);
    }
    // A note the verdict already gives as a reason is not said twice.
    let notes: Vec<&String> = f
        .errors
        .iter()
        .filter(|e| !f.verdict.reasons.contains(e))
        .collect();
    if !notes.is_empty() {
        o.push_str("\nNotes\n");
        for e in notes {
            wrap(&mut o, "  - ", "    ", e);
        }
    }
    verdict_section(&mut o, f);
    o
}

fn kernel_section(o: &mut String, f: &Facts) {
    let k = &f.kernel;
    o.push_str("Kernel\n");
    let release = if k.release.is_empty() {
        "unknown"
    } else {
        &k.release
    };
    row(o, "release", release);
    row(o, "era", k.info().era_name());
    let mode = f.cgroup_mode.map(|m| m.to_string());
    row(o, "cgroup mode", mode.as_deref().unwrap_or("unknown"));
    let nokmem = if f.nokmem {
        "yes (cgroup.memory=nokmem)"
    } else {
        "no"
    };
    row(o, "nokmem", nokmem);
    let mc = match (k.move_charge_supported, k.move_charge_deprecated) {
        (Some(false), _) => "not supported (>= 6.13)",
        (Some(true), Some(true)) => "supported, deprecated",
        (Some(true), _) => "supported",
        (None, _) => "unknown",
    };
    row(o, "charge moving", mc);
}

fn ids_section(o: &mut String, f: &Facts) {
    let h = &f.hierarchy;
    o.push_str("\nMemory cgroup ids\n");
    row(o, "mount", &h.mount);
    if h.root != h.mount {
        row(o, "root", &h.root);
    }
    row(o, "live", &opt_n(h.live));
    if !f.is_v2() {
        row(o, "counted", &opt_n(h.counted));
        let dying = match (h.dying, h.dying_at_least) {
            (None, Some(d)) => format!(
                "at least {} (from {})",
                sep(d),
                crate::ids::slab::SYS_KERNEL_SLAB
            ),
            (d, _) => opt_n(d),
        };
        row(o, "dying", &dying);
        let src = match h.ids_source {
            IdsSource::ProcCgroups => "from /proc/cgroups",
            IdsSource::Systemtap => "from --ids-used",
            IdsSource::Unknown => "not countable here",
        };
        let used = match (h.ids_used, h.dying_at_least, h.live) {
            (Some(u), _, _) => format!("{} of {} ({src})", sep(u), sep(h.id_limit)),
            (None, Some(d), Some(l)) => format!(
                "at least {} of {} (live and the dying seen)",
                sep(l + d),
                sep(h.id_limit)
            ),
            (None, _, _) => format!("unknown ({src})"),
        };
        row(o, "ids used", &used);
        let free = match (h.ids_free, h.ids_free_at_most()) {
            (None, Some(n)) => format!("at most {}", sep(n)),
            (n, _) => opt_n(n),
        };
        row(o, "ids free", &free);
    }
    if h.nr_dying_descendants.is_some() || f.is_v2() {
        row(o, "dying (v2)", &opt_n(h.nr_dying_descendants));
    }
}

fn pods_section(o: &mut String, f: &Facts) {
    let p = &f.kubepods;
    let _ = writeln!(o, "\nPods cgroup ({})", p.name);
    if !p.found {
        row(o, "found", "no");
        return;
    }
    let layout = p.layout.map(|l| l.to_string());
    row(o, "layout", layout.as_deref().unwrap_or("unknown"));
    let cgroups = format!(
        "{} (qos {}, pods {}, containers {}, other {})",
        opt_n(p.cgroups),
        opt_n(p.qos),
        opt_n(p.pods),
        opt_n(p.containers),
        opt_n(p.other)
    );
    row(o, "cgroups", &cgroups);
    row(o, "tasks", &opt_n(p.tasks));
    let kmem = match (p.kmem_active, p.kmem_active_cgroups) {
        (Some(a), Some(n)) => format!("{} ({} cgroups)", opt_b(Some(a)), sep(n)),
        (a, _) => opt_b(a).to_string(),
    };
    row(o, "kmem active", &kmem);
    row(o, "kmem limits set", &opt_n(p.kmem_limits_set));
    // Only 3.10 is repaired by a migration (docs/kernel-facts.md, "Kernel differences").
    if let (Some(n), true) = (p.cgroups, f.is_legacy()) {
        row(o, "repair needs", &repair_ids(n));
    }
}

fn verdict_section(o: &mut String, f: &Facts) {
    let v = &f.verdict;
    let _ = writeln!(o, "\nVERDICT: {}", v.status.as_str().to_uppercase());
    for r in &v.reasons {
        wrap(o, "  - ", "    ", r);
    }
    if !f.repair_refusals.is_empty() {
        o.push_str("\nA repair (cgleak repair) would refuse now\n");
        for b in &f.repair_refusals {
            wrap(o, "  - ", "    ", &format!("{}; {}", b.message, b.hint));
        }
    }
    if !v.advice.is_empty() {
        o.push_str("\nAdvice\n");
        for (i, a) in v.advice.iter().enumerate() {
            wrap(o, &format!("  {}. ", i + 1), "     ", a);
        }
    }
}

/// The report as pretty JSON (the key contract of [`Facts`]).
pub fn render_json(f: &Facts) -> String {
    // A trailing newline: scripts read the output line by line (the kernel lab's guests glued
    // their next line onto the closing brace without it).
    serde_json::to_string_pretty(f).expect("Facts always serializes") + "\n"
}

/// The runtimes found, and what a repair costs them (one line when none was found).
fn runtimes_section(o: &mut String, r: &crate::runtime::Runtimes) {
    o.push_str("\ncontainer runtimes\n");
    wrap(o, "  ", "    ", &crate::runtime::render_line(r));
    if let Some(line) = crate::runtime::cost::preflight_line(r) {
        wrap(o, "  a repair: ", "    ", &line);
    }
}
