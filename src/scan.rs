//! Scanning the pods cgroup into a [`Snapshot`]: every cgroup's settings and tasks in
//! pre-order (parents first, siblings in name order), from which [`tree_of`] makes the
//! left-child-right-sibling tree of the original repair. On the kernel's cgroupfs a few threads
//! list and read the cgroups: a scan is a dozen system calls per cgroup, and a repair scans the
//! tree before it starts and again to verify (issue 5, README "Performance").

use crate::error::{Error, Result};
use crate::host::{self, knob, share, Hierarchy, Node};
use crate::model::kernel::KernelInfo;
use crate::model::tree::Tree;
use crate::model::{classify, CgroupRecord, Kind, Layout, Settings, Snapshot, SNAPSHOT_FORMAT};
use nix::errno::Errno;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The cgroup the systemd cgroup driver makes for pods; systemd owns it.
pub const SYSTEMD_PODS: &str = "kubepods.slice";

/// The files of a cgroup that [`read_record`] reads, in this order: the settings a repair carries
/// over ([`SETTINGS_FILES`]), then the tasks and the reported figures. One
/// [`Node::read_many`] for all of them.
const RECORD_FILES: [&str; 10] = [
    knob::MEMSW_LIMIT,
    knob::OOM_CONTROL,
    knob::MOVE_CHARGE,
    knob::LIMIT,
    knob::SOFT_LIMIT,
    knob::SWAPPINESS,
    knob::USE_HIERARCHY,
    knob::PROCS,
    knob::KMEM_LIMIT,
    knob::USAGE,
];

/// The settings files, the first part of [`RECORD_FILES`].
const SETTINGS_FILES: usize = 7;

/// The settings files a repair carries over, in the order the scan reads them.
pub const SETTINGS: &[&str] = RECORD_FILES.split_at(SETTINGS_FILES).0;

/// The content of a file that may not exist (memsw files exist only with swap accounting):
/// ENOENT is None. A missing file is known from the failed read itself, not from a stat first.
fn optional(r: Result<String>) -> Result<Option<String>> {
    match r {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Settings from the results of reading [`RECORD_FILES`]`[..SETTINGS_FILES]` of `cg`. A
/// missing memsw or move_charge file is None; of the other failures the first is returned, in
/// the order memsw, oom_control, move_charge, limit, soft limit, swappiness, use_hierarchy.
fn settings_from(fs: &dyn Hierarchy, cg: &str, r: &mut [Result<String>]) -> Result<Settings> {
    let mut take = |i: usize| std::mem::replace(&mut r[i], Ok(String::new()));
    let number = |file: &str, s: String| host::parse_u64(&fs.root().join(cg).join(file), file, &s);
    let memsw = optional(take(0))?;
    let memsw = memsw.map(|s| number(knob::MEMSW_LIMIT, s)).transpose()?;
    let oom = take(1)?;
    let move_charge = optional(take(2))?;
    let move_charge = move_charge
        .map(|s| number(knob::MOVE_CHARGE, s))
        .transpose()?;
    Ok(Settings {
        limit_in_bytes: number(knob::LIMIT, take(3)?)?,
        memsw_limit_in_bytes: memsw,
        soft_limit_in_bytes: number(knob::SOFT_LIMIT, take(4)?)?,
        swappiness: number(knob::SWAPPINESS, take(5)?)?,
        oom_kill_disable: host::parse_oom_kill_disable(
            &fs.root().join(cg).join(knob::OOM_CONTROL),
            &oom,
        )?,
        use_hierarchy: number(knob::USE_HIERARCHY, take(6)?)? == 1,
        move_charge_at_immigrate: move_charge,
    })
}

/// Read the settings of one cgroup that a repair carries over.
pub fn read_settings(fs: &dyn Hierarchy, cg: &str) -> Result<Settings> {
    let mut r = fs.read_many(cg, &RECORD_FILES[..SETTINGS_FILES]);
    settings_from(fs, cg, &mut r)
}

/// Whether kmem accounting is active in `cg`, where the kernel shows it per cgroup: on 3.10
/// memory.kmem.slabinfo reads with EIO unless kmem accounting was activated in that cgroup
/// (docs/kernel-facts.md, "Counting dying memcgs"). Newer kernels account kmem for every memcg, so there is no per-cgroup
/// answer (None); so is a cgroup without the file.
pub fn kmem_active(fs: &dyn Hierarchy, kernel: &KernelInfo, cg: &str) -> Option<bool> {
    if kernel.kmem_per_cgroup() != Some(true) {
        return None;
    }
    match fs.read(cg, knob::KMEM_SLABINFO) {
        Ok(_) => Some(true),
        Err(e) if e.errno() == Some(Errno::EIO) => Some(false),
        Err(_) => None,
    }
}

/// Read one cgroup of the pods tree.
pub fn read_record(
    fs: &dyn Hierarchy,
    kernel: &KernelInfo,
    cg: &str,
    kind: Kind,
) -> Result<CgroupRecord> {
    read_record_with(fs, kernel, cg, kind, true)
}

/// [`read_record`]; without `figures` the reported figures (kmem limit, usage) are not read
/// and are None: verify compares settings and tasks only.
fn read_record_with(
    fs: &dyn Hierarchy,
    kernel: &KernelInfo,
    cg: &str,
    kind: Kind,
    figures: bool,
) -> Result<CgroupRecord> {
    let files = if figures {
        &RECORD_FILES[..]
    } else {
        &RECORD_FILES[..SETTINGS_FILES + 1]
    };
    let mut r = fs.read_many(cg, files);
    let settings = settings_from(fs, cg, &mut r[..SETTINGS_FILES])?;
    let mut rest = r.drain(SETTINGS_FILES..);
    let procs = rest.next().expect("one result per file")?;
    let tasks = host::parse_pids(&fs.root().join(cg).join(knob::PROCS), &procs)?;
    // Reported figures: absent or unreadable is unknown.
    let mut figure = |file: &str| {
        rest.next()?
            .ok()
            .and_then(|s| host::parse_u64(&fs.root().join(cg).join(file), file, &s).ok())
    };
    let kmem_limit_in_bytes = figure(knob::KMEM_LIMIT);
    let usage_in_bytes = figure(knob::USAGE);
    Ok(CgroupRecord {
        path: cg.to_string(),
        kind,
        settings,
        tasks,
        kmem_limit_in_bytes,
        kmem_active: kmem_active(fs, kernel, cg),
        usage_in_bytes,
    })
}

/// Threads reading cgroups in a scan at most: the reads are system calls that scale with cores,
/// and a few threads already take a big node's scan down to a fraction.
const MAX_SCAN_THREADS: usize = 4;

/// Below this many cgroups (in one step of a scan) the calling thread does the work alone.
const PARALLEL_MIN: usize = 64;

/// Items a scan thread takes at a time: small enough to keep the threads evenly busy.
const PARALLEL_BLOCK: usize = 16;

/// `f` of every item, in order. On the kernel's cgroupfs the items are shared out between
/// threads in small blocks (the calling thread works too): a scan is a dozen system calls per
/// cgroup, and a repair scans the whole tree before it starts and again to verify. The emulated
/// cgroupfs serializes every call on one lock and counts injected faults in call order: there,
/// the calling thread does it all, in order.
fn par_map<T: Sync, R: Send>(
    fs: &dyn Hierarchy,
    items: &[T],
    f: &(dyn Fn(&T) -> R + Sync),
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_SCAN_THREADS);
    // Each item ends with a tick: a scan runs on every core without sleeping (host/share.rs).
    let f = &|item: &T| {
        let r = f(item);
        share::tick();
        r
    };
    if fs.is_emulated() || threads < 2 || items.len() < PARALLEL_MIN {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let start = next.fetch_add(PARALLEL_BLOCK, Ordering::Relaxed);
            if start >= items.len() {
                return done;
            }
            let end = (start + PARALLEL_BLOCK).min(items.len());
            done.extend((start..end).map(|i| (i, f(&items[i]))));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mine = work();
        let theirs = helpers
            .into_iter()
            .flat_map(|h| h.join().expect("a scan thread panicked"));
        for (i, r) in mine.into_iter().chain(theirs) {
            slots[i] = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every item done"))
        .collect()
}

/// A cgroup found by [`walk`]: path, depth below the pods cgroup, kind.
type Walked = (String, usize, Kind);

/// The cgroups of the tree at `top` in pre-order (parents first, siblings in name order), and
/// the first listing error in that order, where the walk stops. A cgroup removed while we walk
/// (a container exited) is simply not there. The tree is listed level by level, each level's
/// directories in parallel ([`par_map`]), then put in pre-order.
fn walk(fs: &dyn Hierarchy, top: &str) -> (Vec<Walked>, Option<Error>) {
    let mut nodes: Vec<Walked> = vec![(
        top.to_string(),
        0,
        classify(crate::model::path::base_name(top), 0, None),
    )];
    // Per node, the indices of its children once listed.
    let mut listed: Vec<Option<Result<Vec<usize>>>> = vec![None];
    let mut level = vec![0usize];
    while !level.is_empty() {
        let lists = par_map(fs, &level, &|&i: &usize| fs.children(&nodes[i].0));
        let mut next = Vec::new();
        for (&i, names) in level.iter().zip(lists) {
            let children = names.map(|names| {
                let (parent, depth, kind) = nodes[i].clone();
                names
                    .iter()
                    .map(|name| {
                        let child = classify(name, depth + 1, Some(kind));
                        nodes.push((crate::model::path::join(&parent, name), depth + 1, child));
                        listed.push(None);
                        nodes.len() - 1
                    })
                    .collect::<Vec<_>>()
            });
            if let Ok(c) = &children {
                next.extend_from_slice(c);
            }
            listed[i] = Some(children);
        }
        level = next;
    }
    let mut walked = Vec::with_capacity(nodes.len());
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        match listed[i].take().expect("every node listed") {
            Ok(children) => stack.extend(children.iter().rev()),
            Err(e) if e.errno() == Some(Errno::ENOENT) && nodes[i].1 > 0 => continue,
            Err(e) => return (walked, Some(e)),
        }
        walked.push(std::mem::replace(
            &mut nodes[i],
            (String::new(), 0, Kind::Other),
        ));
    }
    (walked, None)
}

/// Which cgroup holds the pods: `kubepods` itself, or the systemd driver's `kubepods.slice`
/// when only that exists.
pub fn locate(fs: &dyn Hierarchy, kubepods: &str) -> (String, bool) {
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
        .filter(|c| crate::model::path::parent(&c.path) == top.as_str())
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
pub fn scan(fs: &dyn Node, kubepods: &str) -> Result<Snapshot> {
    scan_tree(fs, &fs.kernel_release()?, kubepods, true)
}

/// [`scan`] for a comparison with a snapshot: every record's settings, tasks and kmem
/// activity, without the reported figures (kmem limit, usage: None), two reads less per cgroup.
pub fn scan_live(fs: &dyn Node, kubepods: &str) -> Result<Snapshot> {
    scan_tree(fs, &fs.kernel_release()?, kubepods, false)
}

/// [`scan`] of a hierarchy whose kernel `release` the caller read (the release decides how
/// kmem activity is read); `figures` as in [`scan_live`].
pub fn scan_tree(
    fs: &dyn Hierarchy,
    release: &str,
    kubepods: &str,
    figures: bool,
) -> Result<Snapshot> {
    if kubepods.is_empty() || kubepods.contains('/') || kubepods == "." || kubepods == ".." {
        return Err(Error::Usage(format!(
            "--kubepods {kubepods:?}: give the name of a cgroup directly below --root"
        )));
    }
    let kernel = KernelInfo::from_release(release);
    let root_settings = read_settings(fs, "")?;
    let (top, systemd) = locate(fs, kubepods);
    let mut cgroups = Vec::new();
    if fs.exists(&top) {
        // First the tree, then every cgroup's files, then the records in pre-order, as if each
        // cgroup had been read as it was listed: the first error in pre-order wins, and a
        // cgroup removed meanwhile is left out with everything below it.
        let (walked, list_error) = walk(fs, &top);
        let read = |(cg, _, kind): &Walked| read_record_with(fs, &kernel, cg, *kind, figures);
        let records = par_map(fs, &walked, &read);
        let mut removed_at: Option<usize> = None;
        for ((_, depth, _), r) in walked.iter().zip(records) {
            match removed_at {
                Some(d) if *depth > d => continue,
                _ => removed_at = None,
            }
            match r {
                Ok(r) => cgroups.push(r),
                Err(e) if e.errno() == Some(Errno::ENOENT) && *depth > 0 => {
                    removed_at = Some(*depth)
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = list_error {
            return Err(e);
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

    fn emulated_node(pods: usize) -> (tempfile::TempDir, crate::host::emulated::EmulatedFs) {
        use crate::demo::fixture::{build, kubelet_tree, FixtureSpec};
        let dir = crate::host::emulated::tempdir().unwrap();
        let emu = crate::host::emulated::EmulatedFs::create(
            &dir.path().join("node"),
            crate::host::emulated::KernelProfile::V6_1,
        )
        .unwrap();
        let tree = kubelet_tree(&FixtureSpec::new("kubepods", pods));
        build(&emu, &tree, &mut |cg| emu.spawn(cg, "pause")).unwrap();
        (dir, emu)
    }

    fn fault(
        emu: &crate::host::emulated::EmulatedFs,
        op: crate::error::FsOp,
        path: &str,
        e: Errno,
    ) {
        use crate::host::emulated::{Fault, FaultWhen};
        let when = FaultWhen::Match {
            op,
            path_contains: path.to_string(),
            times: 1,
        };
        emu.inject(Fault { when, errno: e }).unwrap();
    }

    /// The original walk: list a cgroup, read it, then its children in name order.
    fn depth_first(fs: &dyn Node, top: &str) -> Vec<CgroupRecord> {
        let kernel = KernelInfo::from_release(&fs.kernel_release().unwrap());
        let mut out = Vec::new();
        let mut stack = vec![(top.to_string(), 0, None)];
        while let Some((cg, depth, parent_kind)) = stack.pop() {
            let kind = classify(crate::model::path::base_name(&cg), depth, parent_kind);
            let children = fs.children(&cg).unwrap();
            out.push(read_record(fs, &kernel, &cg, kind).unwrap());
            for name in children.iter().rev() {
                stack.push((crate::model::path::join(&cg, name), depth + 1, Some(kind)));
            }
        }
        out
    }

    #[test]
    fn scan_gives_the_depth_first_records_in_pre_order() {
        let (_d, emu) = emulated_node(12);
        let snap = scan(&emu, "kubepods").unwrap();
        assert_eq!(snap.cgroups, depth_first(&emu, "kubepods"));
        assert!(snap.cgroups.len() > 36, "{}", snap.cgroups.len());
        assert!(tree_of(&snap).is_some());
        // The live scan for verify: the same but the reported figures.
        let live = scan_live(&emu, "kubepods").unwrap();
        let strip = |c: &CgroupRecord| CgroupRecord {
            kmem_limit_in_bytes: None,
            usage_in_bytes: None,
            ..c.clone()
        };
        let want: Vec<CgroupRecord> = snap.cgroups.iter().map(strip).collect();
        assert_eq!(live.cgroups, want);
        assert!(snap.cgroups.iter().any(|c| c.usage_in_bytes.is_some()));
    }

    #[test]
    fn a_cgroup_removed_during_the_scan_is_left_out_with_what_is_below() {
        use crate::error::FsOp;
        let (_d, emu) = emulated_node(12);
        let all = scan(&emu, "kubepods").unwrap().cgroups;
        let pods: Vec<&str> = all
            .iter()
            .filter(|c| c.kind == Kind::Pod)
            .map(|c| c.path.as_str())
            .collect();
        let below = |p: &str| {
            all.iter()
                .filter(|c| c.path != p && !c.path.starts_with(&format!("{p}/")))
                .cloned()
                .collect::<Vec<_>>()
        };
        // Gone between its parent's listing and its own (ENOENT listing it).
        fault(&emu, FsOp::List, pods[1], Errno::ENOENT);
        assert_eq!(scan(&emu, "kubepods").unwrap().cgroups, below(pods[1]));
        // Gone between its listing and the read of its files.
        let oom = format!("{}/{}", pods[4], knob::OOM_CONTROL);
        fault(&emu, FsOp::Read, &oom, Errno::ENOENT);
        assert_eq!(scan(&emu, "kubepods").unwrap().cgroups, below(pods[4]));
        // The pods cgroup itself is no such case: the error is returned.
        fault(&emu, FsOp::List, "kubepods", Errno::ENOENT);
        let e = scan(&emu, "kubepods").unwrap_err();
        assert_eq!(e.errno(), Some(Errno::ENOENT));
    }

    #[test]
    fn the_first_error_in_pre_order_is_returned() {
        use crate::error::FsOp;
        // Pre-order: kubepods, besteffort and its pods, burstable and its pods, then the
        // Guaranteed pods (children in name order).
        let oom = |qos: &str| format!("kubepods/{qos}/{}", knob::OOM_CONTROL);
        let (_d, emu) = emulated_node(6);
        fault(&emu, FsOp::Read, &oom("besteffort"), Errno::EACCES);
        fault(&emu, FsOp::List, "kubepods/burstable", Errno::EIO);
        let e = scan(&emu, "kubepods").unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EACCES), "{e}");
        let (_d, emu) = emulated_node(6);
        fault(&emu, FsOp::List, "kubepods/besteffort", Errno::EIO);
        fault(&emu, FsOp::Read, &oom("burstable"), Errno::EACCES);
        let e = scan(&emu, "kubepods").unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EIO), "{e}");
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
