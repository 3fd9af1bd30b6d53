//! Scanning the pods cgroup into a [`Snapshot`]: every cgroup's settings and tasks in
//! pre-order, walked as a left-child-right-sibling tree like the original repair.

use crate::error::{Error, Result};
use crate::fs::{self, knob, Cgroupfs};
use crate::kernel::KernelInfo;
use crate::model::{classify, CgroupRecord, Kind, Layout, Settings, Snapshot, SNAPSHOT_FORMAT};
use crate::tree::Tree;
use nix::errno::Errno;
use std::time::{SystemTime, UNIX_EPOCH};

/// The cgroup the systemd cgroup driver makes for pods; systemd owns it.
pub const SYSTEMD_PODS: &str = "kubepods.slice";

/// Read the settings of one cgroup that a repair carries over.
pub fn read_settings(fs: &dyn Cgroupfs, cg: &str) -> Result<Settings> {
    let memsw = if fs.has_file(cg, knob::MEMSW_LIMIT) {
        Some(fs::read_u64(fs, cg, knob::MEMSW_LIMIT)?)
    } else {
        None
    };
    let oom = fs.read(cg, knob::OOM_CONTROL)?;
    let move_charge = if fs.has_file(cg, knob::MOVE_CHARGE) {
        Some(fs::read_u64(fs, cg, knob::MOVE_CHARGE)?)
    } else {
        None
    };
    Ok(Settings {
        limit_in_bytes: fs::read_u64(fs, cg, knob::LIMIT)?,
        memsw_limit_in_bytes: memsw,
        soft_limit_in_bytes: fs::read_u64(fs, cg, knob::SOFT_LIMIT)?,
        swappiness: fs::read_u64(fs, cg, knob::SWAPPINESS)?,
        oom_kill_disable: fs::parse_oom_kill_disable(
            &fs.root().join(cg).join(knob::OOM_CONTROL),
            &oom,
        )?,
        use_hierarchy: fs::read_u64(fs, cg, knob::USE_HIERARCHY)? == 1,
        move_charge_at_immigrate: move_charge,
    })
}

/// Whether kmem accounting is active in `cg`, where the kernel shows it per cgroup: on 3.10
/// memory.kmem.slabinfo reads with EIO unless kmem accounting was activated in that cgroup
/// (KERNEL-FACTS.md). Newer kernels account kmem for every memcg, so there is no per-cgroup
/// answer (None).
pub fn kmem_active(fs: &dyn Cgroupfs, kernel: &KernelInfo, cg: &str) -> Option<bool> {
    if kernel.kmem_per_cgroup() != Some(true) || !fs.has_file(cg, knob::KMEM_SLABINFO) {
        return None;
    }
    match fs.read(cg, knob::KMEM_SLABINFO) {
        Ok(_) => Some(true),
        Err(e) if e.errno() == Some(Errno::EIO) => Some(false),
        Err(_) => None,
    }
}

fn read_optional_u64(fs: &dyn Cgroupfs, cg: &str, file: &str) -> Option<u64> {
    if !fs.has_file(cg, file) {
        return None;
    }
    fs::read_u64(fs, cg, file).ok()
}

/// Read one cgroup of the pods tree.
pub fn read_record(
    fs: &dyn Cgroupfs,
    kernel: &KernelInfo,
    cg: &str,
    kind: Kind,
) -> Result<CgroupRecord> {
    Ok(CgroupRecord {
        path: cg.to_string(),
        kind,
        settings: read_settings(fs, cg)?,
        tasks: fs::read_procs(fs, cg)?,
        kmem_limit_in_bytes: read_optional_u64(fs, cg, knob::KMEM_LIMIT),
        kmem_active: kmem_active(fs, kernel, cg),
        usage_in_bytes: read_optional_u64(fs, cg, knob::USAGE),
    })
}

/// Which cgroup holds the pods: `kubepods` itself, or the systemd driver's `kubepods.slice`
/// when only that exists.
pub fn locate(fs: &dyn Cgroupfs, kubepods: &str) -> (String, bool) {
    if fs.exists(kubepods) {
        (kubepods.to_string(), false)
    } else if kubepods == "kubepods" && fs.exists(SYSTEMD_PODS) {
        (SYSTEMD_PODS.to_string(), true)
    } else {
        (kubepods.to_string(), false)
    }
}

/// The layout kubelet used, from the kinds of the pods cgroup's children.
pub fn layout_of(cgroups: &[CgroupRecord], systemd: bool) -> Layout {
    if systemd {
        return Layout::Systemd;
    }
    if cgroups.is_empty() {
        return Layout::Missing;
    }
    let top = &cgroups[0].path;
    let children: Vec<&CgroupRecord> = cgroups
        .iter()
        .filter(|c| fs::parent(&c.path) == top.as_str())
        .collect();
    if children.is_empty() {
        return Layout::Empty;
    }
    let qos = children.iter().any(|c| c.kind == Kind::Qos);
    let pods = children.iter().any(|c| c.kind == Kind::Pod);
    match (qos, pods) {
        (true, true) => Layout::Mixed,
        (true, false) => Layout::Qos,
        (false, true) => Layout::Flat,
        (false, false) => Layout::Unknown,
    }
}

/// Scan the pods cgroup `kubepods` below the root. A missing pods cgroup gives an empty
/// snapshot with layout `Missing`; a systemd-driver node gives layout `Systemd`.
pub fn scan(fs: &dyn Cgroupfs, kubepods: &str) -> Result<Snapshot> {
    if kubepods.is_empty() || kubepods.contains('/') || kubepods == "." || kubepods == ".." {
        return Err(Error::Usage(format!(
            "--kubepods {kubepods:?}: give the name of a cgroup directly below --root"
        )));
    }
    let release = fs.kernel_release()?;
    let kernel = KernelInfo::from_release(&release);
    let root_settings = read_settings(fs, "")?;
    let (top, systemd) = locate(fs, kubepods);
    let mut cgroups = Vec::new();
    if fs.exists(&top) {
        // Depth-first with an explicit stack, children pushed in reverse so they pop in name
        // order: the records come out in pre-order, parents before children.
        let mut stack: Vec<(String, usize, Option<Kind>)> = vec![(top.clone(), 0, None)];
        while let Some((cg, depth, parent_kind)) = stack.pop() {
            let kind = classify(fs::base_name(&cg), depth, parent_kind);
            let children = match fs.children(&cg) {
                Ok(c) => c,
                // A cgroup removed while we walk (a container exited) is simply not there.
                Err(e) if e.errno() == Some(Errno::ENOENT) && depth > 0 => continue,
                Err(e) => return Err(e),
            };
            match read_record(fs, &kernel, &cg, kind) {
                Ok(r) => cgroups.push(r),
                Err(e) if e.errno() == Some(Errno::ENOENT) && depth > 0 => continue,
                Err(e) => return Err(e),
            }
            for name in children.iter().rev() {
                stack.push((fs::join(&cg, name), depth + 1, Some(kind)));
            }
        }
    }
    let layout = layout_of(&cgroups, systemd);
    Ok(Snapshot {
        format: SNAPSHOT_FORMAT,
        taken_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        root: fs.root().display().to_string(),
        kubepods: top,
        kernel_release: release.trim().to_string(),
        layout,
        root_settings,
        cgroups,
    })
}

/// The left-child-right-sibling tree of a snapshot (node i is `snapshot.cgroups[i]`).
pub fn tree_of(snapshot: &Snapshot) -> Option<Tree> {
    Tree::from_preorder_paths(snapshot.cgroups.iter().map(|c| c.path.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, kind: Kind) -> CgroupRecord {
        CgroupRecord {
            path: path.into(),
            kind,
            settings: Settings {
                limit_in_bytes: 1,
                memsw_limit_in_bytes: None,
                soft_limit_in_bytes: 1,
                swappiness: 60,
                oom_kill_disable: false,
                use_hierarchy: true,
                move_charge_at_immigrate: Some(0),
            },
            tasks: vec![],
            kmem_limit_in_bytes: None,
            kmem_active: None,
            usage_in_bytes: None,
        }
    }

    #[test]
    fn layouts() {
        let k = rec("kubepods", Kind::PodsRoot);
        assert_eq!(layout_of(&[], false), Layout::Missing);
        assert_eq!(layout_of(std::slice::from_ref(&k), false), Layout::Empty);
        assert_eq!(layout_of(std::slice::from_ref(&k), true), Layout::Systemd);
        let flat = [k.clone(), rec("kubepods/poda", Kind::Pod)];
        assert_eq!(layout_of(&flat, false), Layout::Flat);
        let qos = [k.clone(), rec("kubepods/burstable", Kind::Qos)];
        assert_eq!(layout_of(&qos, false), Layout::Qos);
        let mixed = [
            k.clone(),
            rec("kubepods/burstable", Kind::Qos),
            rec("kubepods/burstable/podx", Kind::Pod),
            rec("kubepods/poda", Kind::Pod),
        ];
        assert_eq!(layout_of(&mixed, false), Layout::Mixed);
        let other = [k, rec("kubepods/weird", Kind::Other)];
        assert_eq!(layout_of(&other, false), Layout::Unknown);
    }
}
