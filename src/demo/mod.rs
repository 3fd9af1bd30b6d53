//! `cgleak demo` and `cgleak emulate`: an emulated node in a directory.
//!
//! The demo builds a 3.10 node like the ones this tool exists for (kubelet 1.9-1.13 activated
//! kmem accounting under kubepods; tens of thousands of deleted container cgroups still hold
//! memcg ids), then shows diagnose, plan, repair and verify on it, and removes it.

pub mod fixture;

use crate::cli::{DemoArgs, EmulateArgs};
use crate::demo::fixture::FixtureSpec;
use crate::error::{Error, Result};
use crate::host::emulated::{EmulatedFs, KernelProfile};
use crate::host::{knob, Hierarchy, Host};
use crate::model::{Kind, Snapshot};
use crate::repair::plan::{self, Strategy};
use crate::repair::report;
use crate::repair::{self, RepairOptions};
use crate::scan;

/// Ids the demo node leaves free: below diagnose's leaking threshold, yet enough for a
/// migrate-back repair of the demo tree.
const DEMO_IDS_FREE: u64 = 900;

/// Other cgroups of a node: what systemd and the runtime keep outside kubepods.
fn add_system_cgroups(emu: &EmulatedFs) -> Result<()> {
    for cg in [
        "system.slice",
        "system.slice/docker.service",
        "system.slice/sshd.service",
        "user.slice",
    ] {
        emu.mkdir(cg)?;
    }
    emu.spawn("system.slice/docker.service", "dockerd")?;
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

fn section(title: &str) {
    println!("\n==================== {title} ====================");
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
    let emu = EmulatedFs::create(&base, KernelProfile::V3_10)?;
    emu.set_cmdline(
        "BOOT_IMAGE=/vmlinuz-3.10.0-1160.el7.x86_64 root=/dev/sda1 ro crashkernel=auto",
    )?;
    add_system_cgroups(&emu)?;
    let mut spec = FixtureSpec::new("kubepods", a.pods);
    spec.seed = 7;
    build_pods(&emu, &spec, true)?;
    // Deleted containers whose cgroups stay dying: kmem-pinned on 3.10.
    let dying = plan::ID_LIMIT
        .saturating_sub(emu.ids_used())
        .saturating_sub(DEMO_IDS_FREE);
    emu.add_dying(dying)?;
    let ids_used = emu.ids_used();
    let root = emu.root().display().to_string();
    println!(
        "An emulated CentOS 7 node (kernel {}) in {}",
        emu.kernel_release()?,
        base.display()
    );
    println!("kubelet 1.12 activated kmem accounting under kubepods; {dying} deleted container cgroups still hold memcg ids.");
    println!(
        "On 3.10 the kernel hides them: scripts/memcg-ids.stp would report {ids_used} ids in use."
    );

    section(&format!(
        "cgleak --root {root} diagnose --ids-used {ids_used}"
    ));
    let facts = crate::diagnose::gather(
        &emu,
        &emu,
        &crate::diagnose::DiagnoseOptions {
            kubepods: "kubepods".into(),
            ids_used: Some(ids_used),
            check_kubelet: true,
        },
    )?;
    print!("{}", crate::diagnose::render_text(&facts));
    println!("(exit code {})", facts.verdict.exit_code());

    section(&format!(
        "cgleak --root {root} plan --ids-used {ids_used} --summary"
    ));
    let state_dir = base.with_file_name("state");
    let mut opts = RepairOptions::new("kubepods", "kubepods2", Strategy::MigrateBack, &state_dir);
    opts.ids_used = Some(ids_used);
    let prepared = repair::prepare(&emu, &opts)?;
    print!(
        "{}",
        report::render_plan(&prepared.snapshot, &prepared.plan, false)
    );
    println!("First operations of phase 1:");
    for s in prepared.plan.phases[0].steps.iter().take(8) {
        println!("  {s}");
    }

    section(&format!(
        "cgleak --root {root} repair --yes --ids-used {ids_used} --state-dir {}",
        state_dir.display()
    ));
    print!("{}", report::render_checks(&prepared.checks));
    let before: Snapshot = prepared.snapshot.clone();
    let outcome = repair::execute(&emu, &opts, prepared, None)?;
    print!("{}", report::render_outcome(&outcome));

    section(&format!(
        "cgleak --root {root} diagnose --ids-used {}",
        emu.ids_used()
    ));
    let after = crate::diagnose::gather(
        &emu,
        &emu,
        &crate::diagnose::DiagnoseOptions {
            kubepods: "kubepods".into(),
            ids_used: Some(emu.ids_used()),
            check_kubelet: true,
        },
    )?;
    print!("{}", crate::diagnose::render_text(&after));
    let snap = scan::scan(&emu, "kubepods")?;
    let kmem_before = before
        .cgroups
        .iter()
        .filter(|c| c.kmem_active == Some(true))
        .count();
    let kmem_after = snap
        .cgroups
        .iter()
        .filter(|c| c.kmem_active == Some(true))
        .count();
    println!(
        "\nkmem accounting active in {kmem_before} of {} pods cgroups before, {kmem_after} after: containers deleted from now on free their ids.",
        before.cgroups.len()
    );
    println!("Ids leaked before the repair come back as the kernel frees those dying memcgs, or at the next reboot.");
    if a.keep.is_some() {
        println!(
            "The emulated node stays in {} (try: cgleak --root {root} plan).",
            base.display()
        );
    }
    Ok(if outcome.verify.ok && kmem_after == 0 {
        0
    } else {
        1
    })
}

/// `cgleak emulate DIR`: a node to rehearse on.
pub fn emulate(a: &EmulateArgs) -> Result<u8> {
    let profile = KernelProfile::parse(&a.profile).ok_or_else(|| {
        Error::Usage(format!(
            "--profile {}: use one of 3.10, 5.10, 6.1, 6.13",
            a.profile
        ))
    })?;
    if a.dir.exists()
        && std::fs::read_dir(&a.dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Error::Usage(format!(
            "{}: exists and is not empty; give a new directory",
            a.dir.display()
        )));
    }
    let emu = EmulatedFs::create(&a.dir, profile)?;
    add_system_cgroups(&emu)?;
    match &a.from_snapshot {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::Usage(format!("--from-snapshot {}: {e}", file.display())))?;
            let snap: Snapshot = serde_json::from_str(&text).map_err(|e| {
                Error::Usage(format!(
                    "--from-snapshot {}: not a cgleak snapshot ({e})",
                    file.display()
                ))
            })?;
            from_snapshot(&emu, &snap)?;
        }
        None => build_pods(&emu, &FixtureSpec::new("kubepods", a.pods), a.kmem)?,
    }
    if a.dying > 0 {
        emu.add_dying(a.dying)?;
    }
    println!(
        "emulated {} node in {}: {} ids in use",
        profile.name(),
        a.dir.display(),
        emu.ids_used()
    );
    println!(
        "use it with: cgleak --root {} diagnose",
        emu.root().display()
    );
    Ok(0)
}

/// Recreate a snapshot's tree (settings, one emulated process per task, kmem where active).
pub fn from_snapshot(emu: &EmulatedFs, snap: &Snapshot) -> Result<()> {
    for rec in &snap.cgroups {
        emu.mkdir(&rec.path)?;
        let parent = if rec.kind == Kind::PodsRoot {
            &snap.root_settings
        } else {
            &snap
                .find(crate::host::parent(&rec.path))
                .expect("pre-order")
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
        for _ in &rec.tasks {
            emu.spawn(&rec.path, "task")?;
        }
    }
    Ok(())
}
