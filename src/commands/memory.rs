//! `cgleak memory`: read-only; per container, usage, working set and what could be reclaimed,
//! as text (a table per pod), JSON, node-problem-detector's line or Prometheus. Exit 0: no
//! pressure; 1: the node is at its eviction threshold or a pod or container's working set is
//! at 90 % of its limit or more; 2: could not tell.

use super::predict::{prom_family, prom_labels};
use super::{open_node, out};
use crate::cli::{DoctorFormat, Global, MemoryArgs};
use crate::doctor::identity::Identity;
use crate::doctor::memory::{self, Figures, MemoryOptions, MemoryReport, NEAR_LIMIT};
use crate::error::{BadRoot, Error, Result};
use crate::host::kernel::{KernelFs, KernelHost};

pub(super) fn run(g: &Global, a: &MemoryArgs) -> Result<u8> {
    super::textfile_first(a.format, a.textfile.as_deref())?;
    let r = match build(g, a) {
        Ok(r) => r,
        Err(e) => return Ok(super::could_not_tell(a.format, &e)),
    };
    match a.format {
        DoctorFormat::Text => out(&render_text(&r)),
        DoctorFormat::Json => out(&super::json(&r)),
        DoctorFormat::Npd => out(&render_npd(&r)),
        DoctorFormat::Prometheus => {
            if let Err(e) = super::prometheus_out(&render_prometheus(&r), a.textfile.as_deref()) {
                eprintln!("cgleak: {e}");
                return Ok(2);
            }
        }
    }
    Ok(if r.pressure() { 1 } else { 0 })
}

fn build(g: &Global, a: &MemoryArgs) -> Result<MemoryReport> {
    let opts = |v2| MemoryOptions {
        kubepods: g.kubepods.clone(),
        target: a.target.clone(),
        pods_log_dir: a.pods_log_dir.to_string_lossy().into_owned(),
        containerd_dir: a.containerd_state_dir.to_string_lossy().into_owned(),
        eviction_hard: a.eviction_hard.clone(),
        v2,
    };
    let missing = |fs: &dyn crate::host::Hierarchy| {
        (!fs.exists(&g.kubepods)).then(|| {
            Error::Usage(format!(
                "no pods cgroup {:?} below {}: pass --kubepods (kubepods.slice with the systemd \
                 driver) or --root",
                g.kubepods,
                g.root.display()
            ))
        })
    };
    match open_node(&g.root) {
        Ok(fs) => match missing(fs.as_ref()) {
            Some(e) => Err(e),
            None => memory::report(fs.as_ref(), fs.as_ref(), &opts(false)),
        },
        Err(Error::BadRoot {
            reason: BadRoot::CgroupV2,
            ..
        }) => {
            let unified = KernelFs::open_unified(&g.root)?;
            match missing(&unified) {
                Some(e) => Err(e),
                None => memory::report(&unified, &KernelHost, &opts(true)),
            }
        }
        Err(e) => Err(e),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1_048_576.0)
}

fn mib_signed(b: i64) -> String {
    format!("{:.1}", b as f64 / 1_048_576.0)
}

fn pod_label(id: &Identity, path: &str) -> String {
    id.pod_label().unwrap_or_else(|| path.to_string())
}

fn row(name: &str, f: &Figures) -> String {
    let opt = |v: Option<u64>| v.map(mib).unwrap_or_else(|| "-".into());
    let to = f
        .to_limit_bytes
        .map(mib_signed)
        .unwrap_or_else(|| "-".into());
    format!(
        "  {:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}\n",
        truncate(name, 22),
        mib(f.usage_bytes),
        mib(f.working_set_bytes),
        mib(f.rss_bytes),
        mib(f.active_file_bytes),
        mib(f.inactive_file_bytes),
        mib(f.shmem_bytes),
        mib(f.mapped_file_bytes),
        mib(f.dirty_bytes),
        mib(f.writeback_bytes),
        mib(f.reclaimable_bytes),
        opt(f.limit_bytes),
        to
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n - 1).collect();
    t.push('~');
    t
}

fn render_text(r: &MemoryReport) -> String {
    let mut o = format!(
        "Memory of the pods tree {} (cgroup {}), MiB\n",
        r.kubepods, r.cgroup
    );
    if let Some(n) = &r.node {
        o.push_str(&format!(
            "node: capacity {}, pods working set {}, memory.available {}, eviction-hard {}: {} {}\n",
            mib(n.capacity_bytes),
            mib(n.kubepods_working_set_bytes),
            mib_signed(n.memory_available_bytes),
            mib(n.eviction_hard_bytes),
            mib_signed(n.to_eviction_bytes.abs()),
            if n.to_eviction_bytes > 0 { "above it" } else { "at or below it: kubelet evicts" }
        ));
    }
    if r.pods.is_empty() {
        o.push_str("\nNo pod memcg below the pods tree.\n");
    }
    for p in &r.pods {
        o.push_str(&format!(
            "\n{} ({})\n",
            pod_label(&p.identity, &p.path),
            p.path
        ));
        o.push_str(&format!(
            "  {:<22} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8}\n",
            "container",
            "usage",
            "wset",
            "rss",
            "active",
            "inactive",
            "shmem",
            "mapped",
            "dirty",
            "wback",
            "reclaim",
            "limit",
            "to-limit"
        ));
        for c in &p.containers {
            let name = c
                .identity
                .container_label()
                .unwrap_or_else(|| c.path.clone());
            o.push_str(&row(&name, &c.figures));
        }
        o.push_str(&row("(pod total)", &p.total));
        for c in &p.containers {
            if let Some(w) = &c.why {
                let name = c
                    .identity
                    .container_label()
                    .unwrap_or_else(|| c.path.clone());
                o.push_str(&format!("  {name}: {w}\n"));
            }
        }
        if let Some(w) = &p.why {
            o.push_str(&format!("  pod: {w}\n"));
        }
    }
    if !r.notes.is_empty() {
        o.push_str("\nNotes:\n");
        for n in &r.notes {
            o.push_str(&format!("  - {n}\n"));
        }
    }
    o
}

fn render_npd(r: &MemoryReport) -> String {
    let near = |f: &Figures| {
        f.limit_bytes
            .is_some_and(|l| f.working_set_bytes as f64 >= l as f64 * NEAR_LIMIT)
    };
    let mut found: Vec<String> = Vec::new();
    if let Some(n) = &r.node {
        if n.to_eviction_bytes <= 0 {
            found.push("node at its eviction threshold".into());
        }
    }
    for p in &r.pods {
        if near(&p.total) || p.containers.iter().any(|c| near(&c.figures)) {
            found.push(format!(
                "{} near its limit",
                pod_label(&p.identity, &p.path)
            ));
        }
    }
    let line = if found.is_empty() {
        format!("OK: no working set near its limit ({} pods)", r.pods.len())
    } else {
        format!("PRESSURE: {}", found.join(", "))
    };
    let line: String = line
        .chars()
        .filter(|c| c.is_ascii() && !c.is_control())
        .collect();
    truncate(&line, 80) + "\n"
}

fn render_prometheus(r: &MemoryReport) -> String {
    type Get = fn(&Figures) -> Option<u64>;
    let families: [(&str, &str, Get); 7] = [
        (
            "cgleak_memory_usage_bytes",
            "memory.usage_in_bytes (v1) or memory.current (v2) of the memcg.",
            |f| Some(f.usage_bytes),
        ),
        (
            "cgleak_memory_working_set_bytes",
            "usage minus inactive_file, as cAdvisor and kubelet compute it.",
            |f| Some(f.working_set_bytes),
        ),
        (
            "cgleak_memory_rss_bytes",
            "Anonymous memory (total_rss on v1, anon on v2).",
            |f| Some(f.rss_bytes),
        ),
        (
            "cgleak_memory_active_file_bytes",
            "Active page cache: reclaimable, but counted in the working set.",
            |f| Some(f.active_file_bytes),
        ),
        (
            "cgleak_memory_inactive_file_bytes",
            "Inactive page cache: left out of the working set.",
            |f| Some(f.inactive_file_bytes),
        ),
        (
            "cgleak_memory_reclaimable_bytes",
            "Clean file pages: inactive_file + active_file - dirty - writeback.",
            |f| Some(f.reclaimable_bytes),
        ),
        (
            "cgleak_memory_limit_bytes",
            "The memcg's own limit (absent when unlimited).",
            |f| f.limit_bytes,
        ),
    ];
    let mut o = String::new();
    for (name, help, get) in families {
        let mut samples = Vec::new();
        for p in &r.pods {
            let ns = p.identity.namespace.clone().unwrap_or_default();
            let pod = p.identity.pod_name.clone().unwrap_or_default();
            let uid = p.identity.pod_uid.clone().unwrap_or_default();
            let mut push = |container: &str, f: &Figures| {
                if let Some(v) = get(f) {
                    let l = prom_labels(&[
                        ("namespace", &ns),
                        ("pod", &pod),
                        ("pod_uid", &uid),
                        ("container", container),
                    ]);
                    samples.push((l, v.to_string()));
                }
            };
            push("", &p.total);
            for c in &p.containers {
                let name = c.identity.container_name.clone().unwrap_or_else(|| {
                    if c.identity.sandbox == Some(true) {
                        "POD".into()
                    } else {
                        c.identity.container_id.clone().unwrap_or_default()
                    }
                });
                push(&name, &c.figures);
            }
        }
        prom_family(&mut o, name, help, &samples);
    }
    if let Some(n) = &r.node {
        prom_family(&mut o, "cgleak_node_memory_available_bytes",
            "Capacity (MemTotal) minus the pods cgroup's working set: kubelet's memory.available against allocatable.",
            &[(String::new(), n.memory_available_bytes.to_string())]);
        prom_family(&mut o, "cgleak_node_eviction_distance_bytes",
            "memory.available minus the hard eviction threshold (--eviction-hard): at or below 0 kubelet evicts.",
            &[(String::new(), n.to_eviction_bytes.to_string())]);
    }
    o
}
