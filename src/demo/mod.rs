//! `cgleak demo` and `cgleak emulate`: an emulated node in a directory.
//!
//! The demo builds a 3.10 node like the ones this tool exists for (kubelet 1.9-1.13 activated
//! kmem accounting under kubepods; tens of thousands of deleted container cgroups still hold
//! memcg ids), then shows diagnose, plan, repair and verify on it, and removes it.

pub mod fixture;
pub mod pidmap;
pub mod runtimes;

use crate::cli::{DemoArgs, EmulateArgs};
use crate::demo::fixture::FixtureSpec;
use crate::error::{Error, Result};
use crate::host::emulated::{EmulatedFs, KernelProfile};
use crate::host::{knob, Hierarchy, Host};
use crate::model::kernel::KernelInfo;
use crate::model::{Kind, Snapshot};
use crate::repair::plan::{self, Strategy};
use crate::repair::report;
use crate::repair::{self, RepairOptions};
use crate::scan;
use pidmap::PidMap;
use std::path::Path;

/// Ids the demo node leaves free: below diagnose's leaking threshold, yet enough for a
/// migrate-back repair of the demo tree.
const DEMO_IDS_FREE: u64 = 900;

/// Other cgroups of a node: what systemd and the runtime keep outside kubepods. The runtime's
/// processes come only with `--runtime` ([`runtimes::add_runtime`]): a node without one shows
/// none.
fn add_system_cgroups(emu: &EmulatedFs) -> Result<()> {
    for cg in [
        "system.slice",
        "system.slice/docker.service",
        "system.slice/sshd.service",
        "user.slice",
    ] {
        emu.mkdir(cg)?;
    }
    emu.spawn("system.slice/sshd.service", "sshd")?;
    Ok(())
}

/// Build a kubelet-shaped tree on `emu`; with `kmem`, activate kmem accounting on the pods
/// cgroup before its children exist, as kubelet 1.9-1.13 did (children inherit it on 3.10).
pub fn build_pods(emu: &EmulatedFs, spec: &FixtureSpec, kmem: bool) -> Result<()> {
    let tree = fixture::kubelet_tree(spec);
    let mut spawn = |cg: &str| emu.spawn(cg, "pause");
    fixture::build(emu, &tree[..1], &mut spawn)?;
    if kmem {
        // As runc did: a limited value activates kmem accounting on 3.10 (an unlimited one
        // does not, memcg_update_kmem_limit), then the limit is lifted again.
        emu.write(&spec.kubepods, knob::KMEM_LIMIT, "1")?;
        emu.write(&spec.kubepods, knob::KMEM_LIMIT, "-1")?;
    }
    fixture::build(emu, &tree[1..], &mut spawn)?;
    Ok(())
}

/// Demo output. A closed pipe (`cgleak demo | head -1`) is ignored rather than fatal: the demo
/// runs to its end and removes its temporary node (see src/main.rs on SIGPIPE).
macro_rules! say {
    ($($arg:tt)*) => {
        say_str(&format!($($arg)*))
    };
}

fn say_str(s: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
}

fn section(title: &str) {
    say!("\n==================== {title} ====================\n");
}

/// The demo's node: 3.10, kubelet 1.12's kmem accounting under kubepods, and enough dying
/// memcgs that only [`DEMO_IDS_FREE`] ids are left.
fn build_demo_node(base: &std::path::Path, pods: usize) -> Result<EmulatedFs> {
    let emu = EmulatedFs::create(base, KernelProfile::V3_10)?;
    emu.set_cmdline(
        "BOOT_IMAGE=/vmlinuz-3.10.0-1160.el7.x86_64 root=/dev/sda1 ro crashkernel=auto",
    )?;
    add_system_cgroups(&emu)?;
    let mut spec = FixtureSpec::new("kubepods", pods);
    spec.seed = 7;
    build_pods(&emu, &spec, true)?;
    // containerd with shim v2, as the lab runs it: the preflight says what the repair costs it.
    runtimes::add_runtime(&emu, crate::cli::EmulatedRuntime::ContainerdV2, "kubepods")?;
    // Deleted containers whose cgroups stay dying: kmem-pinned on 3.10.
    let dying = KernelInfo::from_release(&emu.kernel_release()?)
        .memcg_id_limit()
        .saturating_sub(emu.ids_used())
        .saturating_sub(DEMO_IDS_FREE);
    emu.add_dying(dying)?;
    Ok(emu)
}

/// `cgleak diagnose` on the demo node, as printed by the command.
/// `cgleak diagnose`, with the systemtap count or (`None`) with what the node shows by itself:
/// on 3.10 the dying memcgs seen in /sys/kernel/slab.
fn show_diagnose(emu: &EmulatedFs, ids_used: Option<u64>) -> Result<crate::diagnose::Facts> {
    let root = emu.root().display().to_string();
    let arg = ids_used.map_or(String::new(), |n| format!(" --ids-used {n}"));
    section(&format!("cgleak --root {root} diagnose{arg}"));
    let facts = crate::diagnose::gather(
        emu,
        emu,
        &crate::diagnose::DiagnoseOptions {
            kubepods: "kubepods".into(),
            ids_used,
            check_kubelet: true,
            ..Default::default()
        },
    )?;
    say!("{}", crate::diagnose::render_text(&facts));
    Ok(facts)
}

/// `cgleak plan` then `cgleak repair --yes` on the demo node; returns the snapshot taken before
/// the repair and its outcome.
fn show_plan_and_repair(
    emu: &EmulatedFs,
    state_dir: &std::path::Path,
) -> Result<(Snapshot, repair::Outcome)> {
    let root = emu.root().display().to_string();
    let ids_used = emu.ids_used();
    section(&format!(
        "cgleak --root {root} plan --ids-used {ids_used} --summary"
    ));
    let mut opts = RepairOptions::new("kubepods", "kubepods2", Strategy::MigrateBack, state_dir);
    opts.ids_used = Some(ids_used);
    let prepared = repair::prepare(emu, &opts)?;
    say!(
        "{}",
        report::render_plan(&prepared.snapshot, &prepared.plan, false)
    );
    say!("First operations of phase 1:\n");
    for s in prepared.plan.phases[0].steps.iter().take(8) {
        say!("  {s}\n");
    }
    section(&format!(
        "cgleak --root {root} repair --yes --ids-used {ids_used} --state-dir {}",
        state_dir.display()
    ));
    say!("{}", report::render_checks(&prepared.checks));
    let before: Snapshot = prepared.snapshot.clone();
    let outcome = repair::execute(emu, &opts, prepared, None)?;
    say!("{}", report::render_outcome(&outcome));
    Ok((before, outcome))
}

fn kmem_active_count(snap: &Snapshot) -> usize {
    snap.cgroups
        .iter()
        .filter(|c| c.kmem_active == Some(true))
        .count()
}

pub fn run(a: &DemoArgs) -> Result<u8> {
    let tmp;
    let base = match &a.keep {
        Some(d) => d.clone(),
        None => {
            tmp = crate::host::emulated::tempdir()
                .map_err(|e| Error::io("create temp dir", "/tmp", e))?;
            tmp.path().join("node")
        }
    };
    let emu = build_demo_node(&base, a.pods)?;
    let ids_used = emu.ids_used();
    let dying = emu.dying();
    let root = emu.root().display().to_string();
    say!(
        "An emulated CentOS 7 node (kernel {}) in {}\n",
        emu.kernel_release()?,
        base.display()
    );
    say!("kubelet 1.12 activated kmem accounting under kubepods; {dying} deleted container cgroups still hold memcg ids.\n");
    say!("On 3.10 /proc/cgroups hides them; their slab cache copies in /sys/kernel/slab do not.\n");
    let facts = show_diagnose(&emu, None)?;
    say!("(exit code {})\n", facts.verdict.exit_code());
    say!(
        "That count is a lower bound; the repair's id gate needs an upper one: scripts/memcg-ids.stp would report {ids_used} ids in use (or cgleak probe-headroom proves the room).\n"
    );
    let (before, outcome) = show_plan_and_repair(&emu, &base.with_file_name("state"))?;
    show_diagnose(&emu, Some(emu.ids_used()))?;
    let kmem_after = kmem_active_count(&scan::scan(&emu, "kubepods")?);
    say!(
        "\nkmem accounting active in {} of {} pods cgroups before, {kmem_after} after: containers deleted from now on free their ids.\n",
        kmem_active_count(&before),
        before.cgroups.len()
    );
    say!("Ids leaked before the repair come back as the kernel frees those dying memcgs, or at the next reboot.\n");
    if a.keep.is_some() {
        say!(
            "The emulated node stays in {} (try: cgleak --root {root} plan).\n",
            base.display()
        );
    }
    Ok(if outcome.verify.ok && kmem_after == 0 {
        0
    } else {
        1
    })
}

/// `cgleak emulate DIR`: a node to rehearse on. Every input is checked before DIR is touched;
/// if building the node fails half-way, DIR goes back to how it was (removed if cgleak created
/// it, emptied if it was an empty directory), so a failed emulate leaves nothing to clean up.
pub fn emulate(a: &EmulateArgs) -> Result<u8> {
    let profile = KernelProfile::parse(&a.profile).ok_or_else(|| {
        Error::Usage(format!(
            "--profile {}: use one of 3.10, 5.10, 6.1, 6.13",
            a.profile
        ))
    })?;
    let snap = match &a.from_snapshot {
        Some(file) => Some(read_snapshot(file)?),
        None => None,
    };
    let existed = check_target(&a.dir)?;
    // EmulatedFs::create makes missing parents too: a failure removes the topmost one made.
    let made = (!existed).then(|| topmost_missing(&a.dir));
    let emu = match populate(a, profile, snap.as_ref()) {
        Ok(emu) => emu,
        Err(e) => return Err(undo_failed_emulate(&a.dir, made.as_deref(), e)),
    };
    say!(
        "emulated {} node in {}: {} ids in use\n",
        profile.name(),
        a.dir.display(),
        emu.ids_used()
    );
    say!(
        "use it with: cgleak --root {} diagnose\n",
        emu.root().display()
    );
    Ok(0)
}

/// Build the node of `cgleak emulate` in `a.dir` (checked by [`check_target`]).
fn populate(
    a: &EmulateArgs,
    profile: KernelProfile,
    snap: Option<&Snapshot>,
) -> Result<EmulatedFs> {
    let emu = EmulatedFs::create(&a.dir, profile)?;
    add_system_cgroups(&emu)?;
    match snap {
        Some(snap) => {
            let map = from_snapshot(&emu, snap)?;
            map.save(emu.base())?;
        }
        None => build_pods(&emu, &FixtureSpec::new("kubepods", a.pods), a.kmem)?,
    }
    if a.dying > 0 {
        emu.add_dying(a.dying)?;
    }
    runtimes::add_runtime(&emu, a.runtime, "kubepods")?;
    Ok(emu)
}

/// `dir` must be absent or an empty directory; returns whether it existed.
fn check_target(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(true),
        Ok(false) => Err(Error::Usage(format!(
            "{}: exists and is not empty; give a new directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.symlink_metadata().is_ok() => {
            Err(Error::Usage(format!(
                "{}: is a symlink to nothing; give a new directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => Err(Error::Usage(format!(
            "{}: exists and is not a directory; give a new directory",
            dir.display()
        ))),
        Err(e) => Err(Error::Usage(format!(
            "{}: cannot be read ({e}); give a new directory you can write",
            dir.display()
        ))),
    }
}

/// The topmost ancestor of `dir` (itself included) that does not exist (not even as a
/// dangling symlink, which is the user's and must not be removed).
fn topmost_missing(dir: &Path) -> std::path::PathBuf {
    let mut top = dir;
    while let Some(parent) = top.parent() {
        if parent.as_os_str().is_empty() || parent.symlink_metadata().is_ok() {
            break;
        }
        top = parent;
    }
    top.to_path_buf()
}

/// Put `dir` back as it was before a failed emulate, and say so with the cause: remove `made`
/// (the directory emulate made for it), or empty `dir` if it existed.
fn undo_failed_emulate(dir: &Path, made: Option<&Path>, cause: Error) -> Error {
    let existed = made.is_none();
    let undone = if let Some(made) = made {
        std::fs::remove_dir_all(made)
    } else {
        std::fs::read_dir(dir).and_then(|entries| {
            entries.into_iter().try_for_each(|e| {
                let p = e?.path();
                if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
            })
        })
    };
    let (d, how) = (dir.display(), if existed { "emptied" } else { "removed" });
    match undone {
        Ok(()) => Error::Usage(format!(
            "{d}: the emulated node could not be built ({cause}); {d} was {how}, nothing is left; fix the cause and run cgleak emulate again"
        )),
        Err(e) => Error::Usage(format!(
            "{d}: the emulated node could not be built ({cause}), and cleaning up failed ({e}); remove {d} by hand"
        )),
    }
}

/// A snapshot file written by `cgleak snapshot`, given as `flag FILE`.
pub fn read_snapshot_file(flag: &str, file: &Path) -> Result<Snapshot> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("{flag} {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{flag} {}: not a cgleak snapshot ({e})",
            file.display()
        ))
    })
}

/// The snapshot of `--from-snapshot`, checked so that its tree can be rebuilt: every cgroup
/// after the pods cgroup is below one listed before it.
fn read_snapshot(file: &Path) -> Result<Snapshot> {
    let snap = read_snapshot_file("--from-snapshot", file)?;
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in snap.cgroups.iter().enumerate() {
        let first = i == 0 && rec.kind == Kind::PodsRoot && rec.path == snap.kubepods;
        let path_ok = rec
            .path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
        if !path_ok || !(first || seen.contains(crate::model::path::parent(&rec.path))) {
            return Err(Error::Usage(format!(
                "--from-snapshot {}: cgroup {:?} is not below a cgroup listed before it; pass a file written by cgleak snapshot",
                file.display(),
                rec.path
            )));
        }
        seen.insert(rec.path.as_str());
    }
    Ok(snap)
}

/// Recreate a snapshot's tree (settings, one emulated process per task, kmem where active);
/// returns which emulated process stands for which task of the snapshot. The snapshot must
/// have passed [`read_snapshot`]'s check (parents first).
pub fn from_snapshot(emu: &EmulatedFs, snap: &Snapshot) -> Result<PidMap> {
    let mut map = PidMap::new(&snap.kubepods);
    for rec in &snap.cgroups {
        emu.mkdir(&rec.path)?;
        let parent = if rec.kind == Kind::PodsRoot {
            &snap.root_settings
        } else {
            &snap
                .find(crate::model::path::parent(&rec.path))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "snapshot: cgroup {} comes before its parent",
                        rec.path
                    ))
                })?
                .settings
        };
        for step in plan::settings_steps(&rec.path, parent, &rec.settings) {
            if let plan::Step::Write { cg, file, value } = step {
                emu.write(&cg, &file, &value)?;
            }
        }
        if rec.kmem_active == Some(true) && !emu.kmem_active(&rec.path) {
            emu.write(&rec.path, knob::KMEM_LIMIT, "1")?;
            let limit = rec
                .kmem_limit_in_bytes
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-1".into());
            emu.write(&rec.path, knob::KMEM_LIMIT, &limit)?;
        }
        for &pid in &rec.tasks {
            map.add(&rec.path, pid, emu.spawn(&rec.path, "task")?);
        }
    }
    Ok(map)
}
