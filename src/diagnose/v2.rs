//! `cgleak diagnose` on the unified hierarchy (cgroup v2): there is no v1 memory hierarchy to
//! open and no memcg id count, so the report works from `nr_dying_descendants` of the root's
//! cgroup.stat and the live cgroups (each live or dying cgroup holds at most one memcg id).
//!
//! Those numbers say something about memcgs only where the memory controller is enabled: a v2
//! directory whose cgroup.controllers does not list `memory` (a hybrid host's
//! /sys/fs/cgroup/unified, or a subtree without it) holds no memcg, and its dying cgroups hold no
//! memcg id. There the verdict is unknown, with the reason and what to pass, never healthy.

use super::facts::{Facts, HierarchyFacts, IdsSource, KernelFacts, KubeletFacts, KubepodsFacts};
use crate::error::Result;
use crate::host::kernel::parse_nr_dying_descendants;
use crate::host::{CgroupMode, Hierarchy, Host};
use crate::model::path::join;
use std::path::PathBuf;

/// What was read on a cgroup v2 host.
#[derive(Debug, Clone, PartialEq)]
pub struct V2Inputs {
    /// The `--root` directory of the unified hierarchy, usually /sys/fs/cgroup.
    pub root: PathBuf,
    /// The kernel (release, nokmem).
    pub kernel: KernelFacts,
    /// Live cgroups (directories) below and including the root, when counted.
    pub live: Option<u64>,
    /// `nr_dying_descendants` from the root's cgroup.stat.
    pub nr_dying_descendants: Option<u64>,
    /// The kubelet, when looked for.
    pub kubelet: KubeletFacts,
    /// What could not be read or does not hold memcgs, one sentence each.
    pub errors: Vec<String>,
}

/// The report for a cgroup v2 host from what was read. Memcg ids are not counted there: a dying
/// cgroup may or may not hold a memcg, so ids stay null and the verdict works from
/// `nr_dying_descendants` and the live count.
pub fn facts_v2(inp: &V2Inputs) -> Facts {
    let kernel = inp.kernel.clone();
    let root = inp.root.display().to_string();
    let hierarchy = HierarchyFacts {
        mount: root.clone(),
        root,
        live: inp.live,
        counted: None,
        dying: None,
        // cgroup v2 memcgs take their ids from the same allocator.
        id_limit: kernel.info().memcg_id_limit(),
        ids_used: None,
        ids_free: None,
        ids_source: IdsSource::Unknown,
        nr_dying_descendants: inp.nr_dying_descendants,
        dying_at_least: None,
        slab_count: None,
        slab_unavailable: None,
    };
    // The v1 pods tree is not looked at on v2: its facts are unknown, not zero.
    Facts::judged(
        kernel,
        Some(CgroupMode::V2),
        hierarchy,
        KubepodsFacts::unreadable("kubepods", false),
        inp.kubelet.clone(),
        inp.errors.clone(),
    )
}

/// Whether the memory controller is enabled for the root of `h` and below: Err with the
/// sentence that says it is not (which file, what it lists, what to pass instead).
pub fn memory_controller(h: &dyn Hierarchy) -> std::result::Result<(), String> {
    let pass = "pass --root the memory cgroup v1 directory (usually /sys/fs/cgroup/memory) \
                where memory is mounted as v1, or a cgroup v2 directory whose \
                cgroup.controllers lists memory";
    for file in ["cgroup.controllers", "cgroup.subtree_control"] {
        // subtree_control is absent only where nothing can be enabled below (never on a real
        // v2 directory); controllers is what tells whether memory is there at all.
        if file == "cgroup.subtree_control" && !h.has_file("", file) {
            continue;
        }
        let text = h.read("", file).map_err(|e| {
            format!("{e}: cannot tell whether the memory controller is enabled there; {pass}")
        })?;
        if !text.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the memory controller is not enabled in {}: {file} lists {:?}, without \
                 memory, so no memory cgroup lives there and its dying cgroups hold no memcg \
                 id; {pass}",
                h.root().display(),
                text.trim()
            ));
        }
    }
    Ok(())
}

/// The cgroups below and including the root of `h` (each holds at most one memcg id).
fn live_below_root(h: &dyn Hierarchy) -> Result<u64> {
    let mut n = 0;
    let mut stack = vec![String::new()];
    while let Some(cg) = stack.pop() {
        n += 1;
        stack.extend(h.children(&cg)?.iter().map(|c| join(&cg, c)));
    }
    Ok(n)
}

/// `nr_dying_descendants` of the root's cgroup.stat.
fn dying_descendants(h: &dyn Hierarchy) -> Result<Option<u64>> {
    Ok(parse_nr_dying_descendants(&h.read("", "cgroup.stat")?))
}

/// Read a cgroup v2 host (read-only) and judge it: the cgroup files through `h` (a unified
/// hierarchy opened at `--root`), the kernel release, command line and kubelet through `host`.
pub fn gather_v2(h: &dyn Hierarchy, host: &dyn Host, check_kubelet: bool) -> Facts {
    let mut errors = Vec::new();
    let kernel = super::gather::kernel_facts(host, &mut errors);
    let kubelet = super::gather::kubelet_facts(host, check_kubelet, &mut errors);
    let (live, nr_dying_descendants) = match memory_controller(h) {
        Ok(()) => (
            live_below_root(h)
                .map_err(|e| errors.push(format!("live cgroups: {e}")))
                .ok(),
            dying_descendants(h)
                .map_err(|e| errors.push(format!("cgroup.stat: {e}")))
                .ok()
                .flatten(),
        ),
        // Neither number says anything about memcgs there.
        Err(why) => {
            errors.push(why);
            (None, None)
        }
    };
    facts_v2(&V2Inputs {
        root: h.root().to_path_buf(),
        kernel,
        live,
        nr_dying_descendants,
        kubelet,
        errors,
    })
}
