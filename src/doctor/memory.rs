//! `cgleak memory`: per container and pod, what the memcg holds as kubelet and the kernel see it
//! (docs/working-set.md): usage, the working set exactly as cAdvisor computes it (v1
//! `usage_in_bytes - total_inactive_file`, v2 `memory.current - inactive_file`, floored at 0),
//! rss, the page cache split into active and inactive file pages, shmem, mapped, dirty and
//! writeback pages, what reclaim could free (`inactive_file + active_file - dirty - writeback`:
//! clean file pages; shmem sits on the anon lists and needs swap), the distance to the memcg's
//! limit, and the node's distance to kubelet's hard eviction threshold (memory.available =
//! capacity - the pods cgroup's working set, as kubelet's allocatable signal and the Kubernetes
//! docs' memory-available script compute it).

use super::identity::{self, Identity, Names};
use crate::error::{Error, Result};
use crate::host::{knob, Hierarchy, Host};
use serde::Serialize;
use std::collections::BTreeMap;

/// memory.stat as numbers; lines that are not `key value` are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub values: BTreeMap<String, u64>,
    pub skipped: usize,
}

impl Stat {
    pub fn parse(s: &str) -> Stat {
        let mut st = Stat::default();
        for line in s.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace();
            match (
                it.next(),
                it.next().and_then(|v| v.parse::<u64>().ok()),
                it.next(),
            ) {
                (Some(k), Some(v), None) => {
                    st.values.insert(k.to_string(), v);
                }
                _ => st.skipped += 1,
            }
        }
        st
    }

    fn get(&self, key: &str) -> Option<u64> {
        self.values.get(key).copied()
    }
}

/// What one memcg holds, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// v1 memory.usage_in_bytes, v2 memory.current.
    pub usage_bytes: u64,
    /// usage - inactive_file, at least 0: what kubelet compares with limits and evicts on.
    pub working_set_bytes: u64,
    /// Anonymous memory (v1 total_rss, v2 anon).
    pub rss_bytes: u64,
    /// Page cache (v1 total_cache, v2 file); shmem is part of it.
    pub cache_bytes: u64,
    pub active_file_bytes: u64,
    pub inactive_file_bytes: u64,
    pub shmem_bytes: u64,
    pub mapped_file_bytes: u64,
    pub dirty_bytes: u64,
    pub writeback_bytes: u64,
    pub swap_bytes: Option<u64>,
    /// Clean file pages: inactive_file + active_file - dirty - writeback.
    pub reclaimable_bytes: u64,
    /// The memcg's own limit; None when unlimited.
    pub limit_bytes: Option<u64>,
    /// limit - usage (negative: over it, the kernel is reclaiming or about to OOM).
    pub to_limit_bytes: Option<i64>,
}

/// The figures from usage, memory.stat and the limit. `v2` picks the key names.
pub fn figures(usage: u64, stat: &Stat, limit: Option<u64>, v2: bool) -> Figures {
    let k = |v1: &str, v2k: &str| stat.get(if v2 { v2k } else { v1 }).unwrap_or(0);
    let inactive_file = k("total_inactive_file", "inactive_file");
    let active_file = k("total_active_file", "active_file");
    let dirty = k("total_dirty", "file_dirty");
    let writeback = k("total_writeback", "file_writeback");
    Figures {
        usage_bytes: usage,
        // cAdvisor's setMemoryStats: workingSet = usage - inactive_file, never below 0.
        working_set_bytes: usage.saturating_sub(inactive_file),
        rss_bytes: k("total_rss", "anon"),
        cache_bytes: k("total_cache", "file"),
        active_file_bytes: active_file,
        inactive_file_bytes: inactive_file,
        shmem_bytes: k("total_shmem", "shmem"),
        mapped_file_bytes: k("total_mapped_file", "file_mapped"),
        dirty_bytes: dirty,
        writeback_bytes: writeback,
        swap_bytes: stat.get(if v2 { "swap" } else { "total_swap" }),
        reclaimable_bytes: (inactive_file + active_file).saturating_sub(dirty + writeback),
        limit_bytes: limit,
        to_limit_bytes: limit.map(|l| l as i64 - usage as i64),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1_048_576.0)
}

/// Smallest gap between working set and rss worth a sentence: 1 MiB, or 5 % of the rss. Below
/// it the gap is the memcg's own kernel memory and usage's per-cpu batching ("fuzz"), nothing an
/// operator acts on.
fn worth_explaining(above: u64, rss: u64) -> bool {
    above >= (1 << 20).max(rss / 20)
}

/// Why the working set is above the rss, in one sentence; None when it is not, or only by a
/// little ([`worth_explaining`]).
pub fn why(f: &Figures) -> Option<String> {
    let above = f.working_set_bytes.saturating_sub(f.rss_bytes);
    if !worth_explaining(above, f.rss_bytes) {
        return None;
    }
    let active = f.active_file_bytes.min(above);
    let shmem = f.shmem_bytes.min(above - active);
    let rest = above - active - shmem;
    let mut parts = vec![];
    if active >= 1 << 20 {
        let unwritten = f.dirty_bytes + f.writeback_bytes;
        let first = if unwritten >= 1 << 20 {
            format!(
                " once the {} not yet written back is written",
                mib(unwritten)
            )
        } else {
            String::new()
        };
        parts.push(format!(
            "{} of it is active page cache, which the kernel can reclaim{first} but kubelet counts as used",
            mib(active)
        ));
    }
    if shmem >= 1 << 20 {
        parts.push(format!(
            "{} is shmem/tmpfs, which only swap can free",
            mib(shmem)
        ));
    }
    if rest >= 1 << 20 || parts.is_empty() {
        parts.push(format!(
            "{} is other charged memory (kernel memory, unevictable pages)",
            mib(rest)
        ));
    }
    Some(format!(
        "The working set ({}) is {} above the rss: {}.",
        mib(f.working_set_bytes),
        mib(above),
        parts.join("; ")
    ))
}

/// One container memcg.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub path: String,
    pub identity: Identity,
    pub figures: Figures,
    pub why: Option<String>,
}

/// One pod memcg: its own (hierarchical) figures and its containers'.
#[derive(Debug, Clone, Serialize)]
pub struct Pod {
    pub path: String,
    pub identity: Identity,
    pub total: Figures,
    pub why: Option<String>,
    pub containers: Vec<Container>,
}

/// The node's side: kubelet's memory.available and the hard eviction threshold.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFigures {
    /// MemTotal.
    pub capacity_bytes: u64,
    pub kubepods_working_set_bytes: u64,
    /// capacity - the pods cgroup's working set.
    pub memory_available_bytes: i64,
    pub eviction_hard_bytes: u64,
    /// memory.available - threshold: at or below 0 kubelet evicts.
    pub to_eviction_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub cgroup: String,
    pub kubepods: String,
    pub node: Option<NodeFigures>,
    pub pods: Vec<Pod>,
    pub notes: Vec<String>,
}

/// A container at or above this share of its limit counts as "found" (exit 1).
pub const NEAR_LIMIT: f64 = 0.9;

impl MemoryReport {
    /// The node at or past its eviction threshold, or a container/pod whose working set is at
    /// or above [`NEAR_LIMIT`] of its limit.
    pub fn pressure(&self) -> bool {
        let near = |f: &Figures| {
            f.limit_bytes
                .is_some_and(|l| f.working_set_bytes as f64 >= l as f64 * NEAR_LIMIT)
        };
        self.node.as_ref().is_some_and(|n| n.to_eviction_bytes <= 0)
            || self
                .pods
                .iter()
                .any(|p| near(&p.total) || p.containers.iter().any(|c| near(&c.figures)))
    }
}

/// kubelet's `--eviction-hard` quantity for memory.available: `100Mi`, `1Gi`, `500M`, `5%`
/// (of capacity), bytes; a leading `memory.available<` is allowed.
pub fn parse_threshold(s: &str, capacity: u64) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "--eviction-hard {s:?}: give a quantity such as 100Mi, 1Gi, 500M or 5%"
        ))
    };
    let t = s.trim();
    let t = t.strip_prefix("memory.available<").unwrap_or(t);
    if let Some(p) = t.strip_suffix('%') {
        let pct: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(bad());
        }
        return Ok((capacity as f64 * pct / 100.0) as u64);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    Ok((n * mult as f64) as u64)
}

/// What the command asks for.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    pub kubepods: String,
    pub target: Option<String>,
    pub pods_log_dir: String,
    pub containerd_dir: String,
    pub eviction_hard: String,
    pub v2: bool,
}

/// One memcg's figures from its files.
fn read_figures(fs: &dyn Hierarchy, cg: &str, v2: bool) -> Result<(Figures, usize)> {
    let usage_file = if v2 { "memory.current" } else { knob::USAGE };
    let usage = crate::host::read_u64(fs, cg, usage_file)?;
    let stat = Stat::parse(&fs.read(cg, knob::STAT)?);
    let limit_file = if v2 { "memory.max" } else { knob::LIMIT };
    let raw = fs.read(cg, limit_file)?;
    let limit = match raw.trim() {
        "max" => None,
        t => t
            .parse::<u64>()
            .ok()
            .filter(|&l| l < super::predict::V1_UNLIMITED_MIN),
    };
    Ok((figures(usage, &stat, limit, v2), stat.skipped))
}

/// Whether `target` names this pod (name, namespace/name, uid or uid prefix).
fn pod_matches(id: &Identity, target: &str) -> bool {
    let full = match (&id.namespace, &id.pod_name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        _ => None,
    };
    id.pod_name.as_deref() == Some(target)
        || full.as_deref() == Some(target)
        || id
            .pod_uid
            .as_deref()
            .is_some_and(|u| !target.is_empty() && u.starts_with(target))
}

/// Whether `target` names this container (name or id prefix).
fn container_matches(id: &Identity, target: &str) -> bool {
    id.container_name.as_deref() == Some(target)
        || id
            .container_id
            .as_deref()
            .is_some_and(|c| target.len() >= 3 && c.starts_with(target))
}

/// The report for the pods tree, filtered by `opts.target`.
pub fn report(fs: &dyn Hierarchy, host: &dyn Host, opts: &MemoryOptions) -> Result<MemoryReport> {
    let names = Names::load(host, &opts.pods_log_dir, &opts.containerd_dir);
    let mut notes = names.notes();
    let mut skipped = 0usize;
    let mut pods = Vec::new();
    for (path, id) in pod_memcgs(fs, &opts.kubepods, &names)? {
        match pod_of(fs, &names, &path, id, opts, &mut skipped) {
            Ok(Some(p)) => pods.push(p),
            Ok(None) => {}
            // A pod removed while reading: not there any more.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => {}
            Err(e) => notes.push(format!("{path}: unreadable, left out: {e}")),
        }
    }
    if let Some(t) = &opts.target {
        if pods.is_empty() {
            return Err(Error::Usage(format!(
                "no pod (name, namespace/name, uid) or container (name, id prefix) matches {t:?}"
            )));
        }
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} memory.stat line(s) not understood: skipped"
        ));
    }
    let node = node_figures(fs, host, opts, &mut notes)?;
    Ok(MemoryReport {
        cgroup: if opts.v2 { "v2" } else { "v1" }.into(),
        kubepods: opts.kubepods.clone(),
        node,
        pods,
        notes,
    })
}

/// Every pod memcg below the tree (any depth: QoS levels, systemd slices), with its identity.
fn pod_memcgs(
    fs: &dyn Hierarchy,
    kubepods: &str,
    names: &Names,
) -> Result<Vec<(String, Identity)>> {
    let mut out = Vec::new();
    let mut stack = vec![kubepods.to_string()];
    while let Some(cg) = stack.pop() {
        let kids = match fs.children(&cg) {
            Ok(k) => k,
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) && cg != kubepods => continue,
            Err(e) => return Err(e),
        };
        for k in kids {
            let p = crate::model::path::join(&cg, &k);
            match identity::from_cgroup_path(&p) {
                Some(mut id) if id.container_id.is_none() => {
                    names.fill(&mut id);
                    out.push((p, id));
                }
                Some(_) => {}
                None => stack.push(p),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// One pod and its containers, or None when the target leaves it out.
fn pod_of(
    fs: &dyn Hierarchy,
    names: &Names,
    path: &str,
    id: Identity,
    opts: &MemoryOptions,
    skipped: &mut usize,
) -> Result<Option<Pod>> {
    let whole_pod = opts.target.as_deref().is_none_or(|t| pod_matches(&id, t));
    let mut containers = Vec::new();
    for c in fs.children(path)? {
        let cpath = crate::model::path::join(path, &c);
        let Some(mut cid) = identity::from_cgroup_path(&cpath) else {
            continue;
        };
        names.fill(&mut cid);
        if !whole_pod
            && !opts
                .target
                .as_deref()
                .is_some_and(|t| container_matches(&cid, t))
        {
            continue;
        }
        let (figures, s) = match read_figures(fs, &cpath, opts.v2) {
            Ok(x) => x,
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        *skipped += s;
        containers.push(Container {
            path: cpath,
            identity: cid,
            why: why(&figures),
            figures,
        });
    }
    if !whole_pod && containers.is_empty() {
        return Ok(None);
    }
    let (total, s) = read_figures(fs, path, opts.v2)?;
    *skipped += s;
    Ok(Some(Pod {
        path: path.to_string(),
        identity: id,
        why: why(&total),
        total,
        containers,
    }))
}

/// memory.available for the pods cgroup: MemTotal - its working set, and the threshold.
fn node_figures(
    fs: &dyn Hierarchy,
    host: &dyn Host,
    opts: &MemoryOptions,
    notes: &mut Vec<String>,
) -> Result<Option<NodeFigures>> {
    let capacity = host.meminfo().ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let Some(capacity) = capacity else {
        notes.push("MemTotal not in /proc/meminfo: node memory.available unknown".into());
        return Ok(None);
    };
    let threshold = parse_threshold(&opts.eviction_hard, capacity)?;
    let ws = match read_figures(fs, &opts.kubepods, opts.v2) {
        Ok((f, _)) => f.working_set_bytes,
        Err(e) => {
            notes.push(format!("{}: working set unreadable: {e}", opts.kubepods));
            return Ok(None);
        }
    };
    let available = capacity as i64 - ws as i64;
    Ok(Some(NodeFigures {
        capacity_bytes: capacity,
        kubepods_working_set_bytes: ws,
        memory_available_bytes: available,
        eviction_hard_bytes: threshold,
        to_eviction_bytes: available - threshold as i64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fakes::{FakeHost, MemHierarchy};

    const V1_STAT: &str = "cache 0\nrss 0\ntotal_cache 73400320\ntotal_rss 31457280\n\
        total_shmem 1048576\ntotal_mapped_file 2097152\ntotal_dirty 4194304\ntotal_writeback 0\n\
        total_swap 0\ntotal_inactive_file 20971520\ntotal_active_file 51380224\n\
        hierarchical_memory_limit 9223372036854771712\n";

    #[test]
    fn v1_working_set_and_reclaimable() {
        let st = Stat::parse(V1_STAT);
        assert_eq!(st.skipped, 0);
        let usage = 110 << 20;
        let f = figures(usage, &st, Some(128 << 20), false);
        assert_eq!(f.working_set_bytes, usage - 20_971_520);
        assert_eq!(f.reclaimable_bytes, 20_971_520 + 51_380_224 - 4_194_304);
        assert_eq!(f.to_limit_bytes, Some(18 << 20));
        assert_eq!(
            (f.rss_bytes, f.shmem_bytes, f.swap_bytes),
            (30 << 20, 1 << 20, Some(0))
        );
        let w = why(&f).unwrap();
        assert!(w.contains("49.0 MiB of it is active page cache, which the kernel can reclaim once the 4.0 MiB not yet written back is written but kubelet counts as used"), "{w}");
        assert!(w.contains("1.0 MiB is shmem/tmpfs"), "{w}");
    }

    #[test]
    fn v2_keys_and_the_floor_at_zero() {
        let st = Stat::parse(
            "anon 4096\nfile 8192\ninactive_file 9000\nactive_file 0\nfile_dirty 0\nnot a line\n",
        );
        assert_eq!(st.skipped, 1);
        let f = figures(8192, &st, None, true);
        // usage below inactive_file (a racy read): 0, never negative.
        assert_eq!(f.working_set_bytes, 0);
        assert_eq!((f.limit_bytes, f.to_limit_bytes), (None, None));
        assert_eq!(why(&f), None);
    }

    #[test]
    fn a_small_gap_is_not_explained_a_kernel_memory_gap_is() {
        let st = Stat::parse("total_rss 62914560\ntotal_active_file 0\ntotal_inactive_file 0\n");
        // 0.4 MiB above a 60 MiB rss: per-cpu batching and the memcg's own slab, no sentence.
        assert_eq!(why(&figures(63_334_400, &st, None, false)), None);
        // 8 MiB above with no page cache: said to be other charged memory.
        let w = why(&figures(71_303_168, &st, None, false)).unwrap();
        assert!(w.contains("8.0 MiB is other charged memory"), "{w}");
        assert!(!w.contains("page cache"), "{w}");
    }

    #[test]
    fn thresholds() {
        let cap = 16u64 << 30;
        assert_eq!(parse_threshold("100Mi", cap).unwrap(), 100 << 20);
        assert_eq!(
            parse_threshold("memory.available<1Gi", cap).unwrap(),
            1 << 30
        );
        assert_eq!(parse_threshold("500M", cap).unwrap(), 500_000_000);
        assert_eq!(
            parse_threshold("5%", cap).unwrap(),
            (cap as f64 * 0.05) as u64
        );
        assert_eq!(parse_threshold("1048576", cap).unwrap(), 1 << 20);
        for bad in ["", "10Xi", "abc", "150%", "-1Mi"] {
            assert!(parse_threshold(bad, cap).is_err(), "{bad}");
        }
    }

    const UID: &str = "0f1e2d3c-aaaa-bbbb-cccc-000000000001";
    const C1: &str = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
    const C2: &str = "b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3";

    fn node() -> (MemHierarchy, FakeHost) {
        let mut h = MemHierarchy::new();
        let pod = format!("kubepods/burstable/pod{UID}");
        for cg in ["kubepods", "kubepods/burstable", pod.as_str()] {
            h.add(cg, &[], false);
            h.set(cg, knob::STAT, V1_STAT);
            h.set(cg, knob::USAGE, &(110u64 << 20).to_string());
        }
        h.set(&pod, knob::LIMIT, &(128u64 << 20).to_string());
        for c in [C1, C2] {
            let cg = format!("{pod}/{c}");
            h.add(&cg, &[], false);
            h.set(&cg, knob::STAT, V1_STAT);
            h.set(&cg, knob::USAGE, &(55u64 << 20).to_string());
        }
        let mut host = FakeHost::new("6.18.44");
        host.file(&format!("/var/log/pods/shop_web_{UID}/app/0.log"), "");
        let cfg = format!(
            r#"{{"annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"app","io.kubernetes.cri.sandbox-uid":"{UID}"}}}}"#
        );
        host.file(&format!("/run/ctd/k8s.io/{C1}/config.json"), &cfg);
        (h, host)
    }

    fn opts(target: Option<&str>) -> MemoryOptions {
        MemoryOptions {
            kubepods: "kubepods".into(),
            target: target.map(str::to_string),
            pods_log_dir: "/var/log/pods".into(),
            containerd_dir: "/run/ctd".into(),
            eviction_hard: "100Mi".into(),
            v2: false,
        }
    }

    #[test]
    fn pods_containers_and_the_node() {
        let (h, host) = node();
        let r = report(&h, &host, &opts(None)).unwrap();
        assert_eq!(r.pods.len(), 1);
        let p = &r.pods[0];
        assert_eq!(p.identity.pod_name.as_deref(), Some("web"));
        assert_eq!(p.total.limit_bytes, Some(128 << 20));
        assert_eq!(p.containers.len(), 2);
        assert_eq!(
            p.containers[0].identity.container_name.as_deref(),
            Some("app")
        );
        let n = r.node.as_ref().unwrap();
        // FakeHost: MemTotal 4000000 kB; the pods cgroup's working set 110 MiB - 20 MiB.
        assert_eq!(n.capacity_bytes, 4_000_000 * 1024);
        assert_eq!(n.kubepods_working_set_bytes, 90 << 20);
        assert_eq!(n.memory_available_bytes, 4_096_000_000 - (90 << 20));
        assert_eq!(n.to_eviction_bytes, n.memory_available_bytes - (100 << 20));
        // The pod's working set (90 MiB) is below 90 % of 128 MiB.
        assert!(!r.pressure());
    }

    #[test]
    fn targets() {
        let (h, host) = node();
        for t in ["web", "shop/web", "0f1e2d3c", UID] {
            let r = report(&h, &host, &opts(Some(t))).unwrap();
            assert_eq!(r.pods[0].containers.len(), 2, "{t}");
        }
        for t in ["app", "a2a2a2"] {
            let r = report(&h, &host, &opts(Some(t))).unwrap();
            assert_eq!(r.pods[0].containers.len(), 1, "{t}");
            assert_eq!(
                r.pods[0].containers[0].identity.container_id.as_deref(),
                Some(C1)
            );
        }
        let e = report(&h, &host, &opts(Some("nginx"))).unwrap_err();
        assert!(e.to_string().contains("matches \"nginx\""), "{e}");
    }

    #[test]
    fn near_the_limit_is_pressure() {
        let (mut h, host) = node();
        let pod = format!("kubepods/burstable/pod{UID}");
        h.set(&pod, knob::USAGE, &(140u64 << 20).to_string());
        let r = report(&h, &host, &opts(None)).unwrap();
        // 140 - 20 = 120 MiB of 128 MiB.
        assert!(r.pressure());
        assert_eq!(r.pods[0].total.to_limit_bytes, Some(-(12 << 20)));
    }
}
