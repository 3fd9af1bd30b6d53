//! Reading a cgroup v1 node into [`Facts`]: read-only (a diagnosis must be safe on a node that is
//! already failing: it never writes a file and never creates a cgroup).
//!
//! It takes the two halves of the boundary it reads: the memory hierarchy (the pods tree, the
//! live memcgs) and the host (kernel release, command line, /proc/cgroups, kubelet). What cannot
//! be read becomes null and a line in `errors`, never a guess.

use super::facts::{Facts, HierarchyFacts, IdsSource, KernelFacts, KubeletFacts, KubepodsFacts};
use crate::error::{Error, Result};
use crate::host::{self, Hierarchy, Host};
use crate::model::kernel::KernelInfo;
use crate::model::kernel::{cmdline_nokmem, Era};
use crate::model::{is_unlimited, Kind, Snapshot};
use crate::repair::leftover;
use crate::repair::plan::{Blocker, Strategy};
use crate::repair::refusal::{self, Gate, NodeFacts, Refusal};
use crate::scan;

/// What to diagnose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnoseOptions {
    /// Name of the pods cgroup directly below `--root` (`kubepods`).
    pub kubepods: String,
    /// Memcg ids in use (live and dying), counted with the systemtap probe
    /// (scripts/memcg-ids.stp): on 3.10 the kernel shows no other way to count dying memcgs.
    pub ids_used: Option<u64>,
    /// Look for a running kubelet (a repair needs it stopped).
    pub check_kubelet: bool,
    /// Name of the staging cgroup a repair would use (`kubepods2`): a leftover of an
    /// interrupted repair there is reported.
    pub staging: String,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions {
            kubepods: "kubepods".to_string(),
            ids_used: None,
            check_kubelet: true,
            staging: crate::model::invocation::DEFAULT_STAGING.to_string(),
        }
    }
}

/// The ids part of the hierarchy facts (docs/kernel-facts.md, "Counting dying memcgs"): on
/// kernels that count dying memcgs in /proc/cgroups, ids used = num_cgroups and dying =
/// num_cgroups - live; on 3.10 num_cgroups is live only, so the count must come from
/// `--ids-used` (systemtap). Returns (dying, ids_used, ids_free, source, notes).
pub fn compute_ids(
    counts_dying: Option<bool>,
    id_limit: u64,
    live: Option<u64>,
    counted: Option<u64>,
    ids_used_opt: Option<u64>,
) -> (
    Option<u64>,
    Option<u64>,
    Option<u64>,
    IdsSource,
    Vec<String>,
) {
    let (c, notes) = crate::ids::compute_with(counts_dying, id_limit, live, counted, ids_used_opt);
    (c.dying, c.ids_used, c.ids_free, c.ids_source, notes)
}

/// The hierarchy facts of a v1 node from its counts (live, /proc/cgroups' count, `--ids-used`),
/// with the notes the id count makes. The id limit is the kernel's
/// ([`crate::model::kernel::KernelInfo::memcg_id_limit`]).
pub fn hierarchy_facts(
    mount: String,
    root: String,
    kernel: &KernelFacts,
    (live, counted, ids_used): (Option<u64>, Option<u64>, Option<u64>),
) -> (HierarchyFacts, Vec<String>) {
    let id_limit = kernel.info().memcg_id_limit();
    let (dying, ids_used, ids_free, ids_source, notes) =
        compute_ids(kernel.counts_dying, id_limit, live, counted, ids_used);
    let facts = HierarchyFacts {
        mount,
        root,
        live,
        counted,
        dying,
        id_limit,
        ids_used,
        ids_free,
        ids_source,
        nr_dying_descendants: None,
        dying_at_least: None,
        slab_count: None,
        slab_unavailable: None,
    };
    (facts, notes)
}

/// 3.10: kmem state per cgroup, as scan found it (slabinfo readable = active): (active under the
/// pods cgroup, cgroups with it active).
fn legacy_kmem(snap: &Snapshot) -> (Option<bool>, Option<u64>) {
    let known: Vec<bool> = snap.cgroups.iter().filter_map(|c| c.kmem_active).collect();
    let active = known.iter().filter(|&&a| a).count() as u64;
    let any_unknown = known.len() < snap.cgroups.len();
    let state = if active > 0 {
        Some(true)
    } else if !any_unknown && !known.is_empty() {
        Some(false)
    } else {
        None
    };
    (state, if known.is_empty() { None } else { Some(active) })
}

/// Facts about the pods cgroup from its snapshot. `kernel` decides what kmem_active means.
pub fn kubepods_facts(snap: &Snapshot, found: bool, kernel: &KernelFacts) -> KubepodsFacts {
    if !found {
        return KubepodsFacts::missing(&snap.kubepods);
    }
    let count = |k: Kind| Some(snap.count_kind(k) as u64);
    let kmem_limits_set = snap
        .cgroups
        .iter()
        .filter(|c| c.kmem_limit_in_bytes.is_some_and(|v| !is_unlimited(v)))
        .count() as u64;
    // docs/kernel-facts.md, "The 3.10 kmem trigger": only 3.10 answers per cgroup; from 3.16
    // every v1 memcg accounts kmem unless the boot parameter turned it off.
    let (kmem_active, kmem_active_cgroups) = match kernel.era {
        Some(Era::Legacy) => legacy_kmem(snap),
        Some(_) => (Some(!kernel.nokmem), None),
        None => (None, None),
    };
    KubepodsFacts {
        found: true,
        name: snap.kubepods.clone(),
        layout: Some(snap.layout),
        cgroups: Some(snap.cgroups.len() as u64),
        qos: count(Kind::Qos),
        pods: count(Kind::Pod),
        containers: count(Kind::Container),
        other: count(Kind::Other),
        tasks: Some(snap.task_count() as u64),
        kmem_active,
        kmem_active_cgroups,
        kmem_limits_set: Some(kmem_limits_set),
    }
}

/// A bad `--kubepods` name: a usage error (exit 2), nothing read.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "--kubepods {name:?}: give the name of a cgroup directly below --root"
        )));
    }
    Ok(())
}

/// The kernel release and command line, as the host tells them.
pub(crate) fn kernel_facts(host: &dyn Host, errors: &mut Vec<String>) -> KernelFacts {
    let release = host.kernel_release().unwrap_or_else(|e| {
        errors.push(format!("kernel release: {e}"));
        String::new()
    });
    let nokmem = match host.kernel_cmdline() {
        Ok(c) => cmdline_nokmem(&c),
        Err(e) => {
            errors.push(format!("kernel command line: {e}"));
            false
        }
    };
    KernelFacts::from_release(release.trim(), nokmem)
}

/// The kubelet's pids, when asked for and listable.
pub(crate) fn kubelet_facts(
    host: &dyn Host,
    check: bool,
    errors: &mut Vec<String>,
) -> KubeletFacts {
    if !check {
        return KubeletFacts::from_pids(None);
    }
    let pids = host
        .find_processes("kubelet")
        .map_err(|e| errors.push(format!("process list: {e}")))
        .ok();
    KubeletFacts::from_pids(pids)
}

/// num_cgroups of the memory row of /proc/cgroups.
fn counted(host: &dyn Host, errors: &mut Vec<String>) -> Option<u64> {
    match host.proc_cgroups() {
        Ok(s) => {
            let row = host::parse_proc_cgroups_memory(&s);
            if row.is_none() {
                errors.push("/proc/cgroups: no memory row".to_string());
            }
            row.map(|(_, n, _)| n)
        }
        Err(e) => {
            errors.push(format!("/proc/cgroups: {e}"));
            None
        }
    }
}

/// Read everything a diagnosis of a v1 node needs. Read-only. Unreadable facts become null and
/// a line in `errors`; only a bad `--kubepods` name is an error.
pub fn gather(h: &dyn Hierarchy, host: &dyn Host, opts: &DiagnoseOptions) -> Result<Facts> {
    let name = opts.kubepods.as_str();
    check_name(name)?;
    let mut errors = Vec::new();
    let kernel = kernel_facts(host, &mut errors);
    let cgroup_mode = host
        .cgroup_mode()
        .map_err(|e| errors.push(format!("cgroup mode: {e}")))
        .ok();
    let live = h
        .hierarchy_live()
        .map_err(|e| errors.push(format!("live cgroups of the hierarchy: {e}")))
        .ok();
    let counted = counted(host, &mut errors);
    let pods = scan::locate(h, name).0;
    let found = h.exists(&pods);
    let scanned = host
        .kernel_release()
        .and_then(|release| scan::scan_tree(h, &release, name, true));
    let (kubepods, snap) = match scanned {
        Ok(snap) => (kubepods_facts(&snap, found, &kernel), Some(snap)),
        Err(e) => {
            errors.push(format!("scan of the pods cgroup: {e}"));
            (KubepodsFacts::unreadable(&pods, found), None)
        }
    };
    let kubelet = kubelet_facts(host, opts.check_kubelet, &mut errors);
    let (hierarchy, notes) = hierarchy_facts(
        h.hierarchy_mount().display().to_string(),
        h.root().display().to_string(),
        &kernel,
        (live, counted, opts.ids_used),
    );
    errors.extend(notes);
    let mut hierarchy = hierarchy;
    if kernel.counts_dying == Some(false) {
        slab_facts(h, host, &mut hierarchy, &mut errors);
    }
    let mut f = Facts::judged(kernel, cgroup_mode, hierarchy, kubepods, kubelet, errors);
    let served = snap
        .as_ref()
        .map(crate::runtime::cgroups_of)
        .unwrap_or_default();
    match crate::runtime::detect(host, &served) {
        Ok(r) => f.runtimes = Some(r),
        Err(e) => f
            .errors
            .push(format!("container runtimes (the process table): {e}")),
    }
    if let Some(snap) = snap {
        match repair_refusals(h, &f, &snap, opts) {
            Ok(list) => f.repair_refusals = list,
            Err(e) => f
                .errors
                .push(format!("staging cgroup {}: {e}", opts.staging)),
        }
        // The advice names a leftover of an interrupted repair first.
        let t = f.thresholds;
        f.judge(&t);
    }
    Ok(f)
}

/// 3.10: the dying memcgs seen in /sys/kernel/slab ([`crate::ids::slab`]), a lower bound.
fn slab_facts(
    h: &dyn Hierarchy,
    host: &dyn Host,
    hf: &mut HierarchyFacts,
    errors: &mut Vec<String>,
) {
    let names = match host.slab_caches() {
        Ok(Some(n)) => n,
        Ok(None) => {
            hf.slab_unavailable = Some(format!(
                "{} does not exist: this kernel uses the SLAB allocator, not SLUB, and has no \
                 per-memcg cache copies to count dying memcgs from",
                crate::ids::slab::SYS_KERNEL_SLAB
            ));
            return;
        }
        Err(e) => {
            hf.slab_unavailable = Some(format!("slab caches unreadable: {e}"));
            errors.push(format!("slab caches: {e}"));
            return;
        }
    };
    let live = match crate::ids::slab::live_names(&h.hierarchy_mount()) {
        Ok(l) => l,
        Err(e) => {
            hf.slab_unavailable = Some(format!("live cgroup names unreadable: {e}"));
            errors.push(format!("live cgroup names: {e}"));
            return;
        }
    };
    let c = crate::ids::slab::count(
        crate::ids::slab::SYS_KERNEL_SLAB,
        names.iter().map(String::as_str),
        &live,
    );
    hf.dying_at_least = Some(c.dying_at_least);
    hf.slab_count = Some(c);
}

/// What would stop a repair (migrate-back, the default) of the node as it stands: the same
/// refusals plan and repair give ([`refusal::for_node`]), those diagnose can see.
fn repair_refusals(
    h: &dyn Hierarchy,
    f: &Facts,
    snap: &Snapshot,
    opts: &DiagnoseOptions,
) -> Result<Vec<Blocker>> {
    let kernel = KernelInfo::from_release(&f.kernel.release);
    let staging_state = leftover::staging_state(
        h,
        &kernel.release,
        snap,
        &opts.staging,
        kernel.move_charge_supported(),
    )?;
    let node = NodeFacts {
        root: h.root().display().to_string(),
        kubepods: opts.kubepods.clone(),
        layout: snap.layout,
        staging: opts.staging.clone(),
        staging_state,
        strategy: Strategy::MigrateBack,
        cgroups: snap.cgroups.len(),
        ids_free: f.hierarchy.ids_free,
        release: f.kernel.release.clone(),
    };
    let list = refusal::applying(&refusal::for_node(&node), Gate::Diagnose);
    Ok(list.iter().map(Refusal::blocker).collect())
}
