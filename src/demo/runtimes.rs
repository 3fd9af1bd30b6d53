//! Container runtimes on an emulated node (`cgleak emulate --runtime`, the demo, the tests):
//! the daemons and shims the lab runs (Debian bookworm's containerd 1.6.20, docker.io 20.10.24,
//! runc 1.1.5), with their executables and command lines as /proc shows them, each
//! container's processes as children of their shim, and the OOM watchers on the containers'
//! memcgs registered by whoever holds them (the shim v2; containerd for runtime v1).

use crate::cli::EmulatedRuntime;
use crate::error::Result;
use crate::host::emulated::EmulatedFs;
use crate::host::Hierarchy;
use crate::model::Kind;
use std::collections::BTreeMap;

/// /var/lib/dpkg/status of the lab's guests, the runtimes' stanzas.
const DPKG_STATUS: &str = "Package: containerd\nStatus: install ok installed\nVersion: 1.6.20~ds1-1+b1\n\nPackage: runc\nStatus: install ok installed\nVersion: 1.1.5+ds1-1+deb12u1\n\nPackage: docker.io\nStatus: install ok installed\nVersion: 20.10.24+dfsg1-1+b3\n";

const SOCKET: &str = "/run/containerd/containerd.sock";

/// What was put on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeSetup {
    pub containerd: u32,
    pub dockerd: Option<u32>,
    /// Shim pid by the container cgroups it serves.
    pub shims: BTreeMap<u32, Vec<String>>,
}

/// A daemon of the runtime in its systemd unit's cgroup.
fn daemon(emu: &EmulatedFs, unit: &str, exe: &str, args: &[&str]) -> Result<u32> {
    let cg = format!("system.slice/{unit}");
    if !emu.exists(&cg) {
        emu.mkdir(&cg)?;
    }
    let name = exe.rsplit('/').next().unwrap_or(exe);
    let mut argv = vec![exe];
    argv.extend_from_slice(args);
    emu.spawn_process(&cg, 1, name, Some(exe), &argv)
}

/// A shim in containerd's cgroup (where containerd starts them), child of `parent`.
fn shim(emu: &EmulatedFs, parent: u32, v2: bool, namespace: &str, id: &str) -> Result<u32> {
    let cg = "system.slice/containerd.service";
    if v2 {
        let exe = "/usr/bin/containerd-shim-runc-v2";
        let args = [exe, "-namespace", namespace, "-id", id, "-address", SOCKET];
        emu.spawn_process(cg, parent, "containerd-shim-runc-v2", Some(exe), &args)
    } else {
        let exe = "/usr/bin/containerd-shim";
        let workdir =
            format!("/var/lib/containerd/io.containerd.runtime.v1.linux/{namespace}/{id}");
        let args = [
            "containerd-shim",
            "-namespace",
            namespace,
            "-workdir",
            &workdir,
            "-address",
            SOCKET,
            "-containerd-binary",
            "/usr/bin/containerd",
            "-runtime-root",
            "/run/containerd/runc",
        ];
        emu.spawn_process(cg, parent, "containerd-shim", Some(exe), &args)
    }
}

/// Container cgroups (path, pids) by pod cgroup.
type ByPod = BTreeMap<String, Vec<(String, Vec<u32>)>>;

/// The container cgroups of the pods tree (with processes), grouped by pod.
fn containers_by_pod(emu: &EmulatedFs, kubepods: &str) -> Result<ByPod> {
    let snap = crate::scan::scan(emu, kubepods)?;
    let mut pods = ByPod::new();
    for c in snap
        .cgroups
        .iter()
        .filter(|c| c.kind == Kind::Container && !c.tasks.is_empty())
    {
        let pod = crate::model::path::parent(&c.path).to_string();
        pods.entry(pod)
            .or_default()
            .push((c.path.clone(), c.tasks.clone()));
    }
    Ok(pods)
}

/// Put `kind` on the node for the pods tree `kubepods`; None for [`EmulatedRuntime::None`].
pub fn add_runtime(
    emu: &EmulatedFs,
    kind: EmulatedRuntime,
    kubepods: &str,
) -> Result<Option<RuntimeSetup>> {
    if kind == EmulatedRuntime::None {
        return Ok(None);
    }
    emu.set_host_file(crate::runtime::version::DPKG_STATUS, DPKG_STATUS)?;
    let containerd = daemon(emu, "containerd.service", "/usr/bin/containerd", &[])?;
    let dockerd = match kind {
        EmulatedRuntime::Docker => Some(daemon(
            emu,
            "docker.service",
            "/usr/sbin/dockerd",
            &[
                "-H",
                "fd://",
                "--containerd=/run/containerd/containerd.sock",
            ],
        )?),
        _ => None,
    };
    let mut setup = RuntimeSetup {
        containerd,
        dockerd,
        shims: BTreeMap::new(),
    };
    for (pod, containers) in containers_by_pod(emu, kubepods)? {
        let pod_id = crate::model::path::base_name(&pod).to_string();
        let mut pod_shim = None;
        for (cg, pids) in containers {
            let id = crate::model::path::base_name(&cg).to_string();
            let s = match kind {
                // CRI: one shim v2 per pod sandbox serves all its containers.
                EmulatedRuntime::ContainerdV2 => match pod_shim {
                    Some(s) => s,
                    None => *pod_shim.insert(shim(emu, 1, true, "k8s.io", &pod_id)?),
                },
                EmulatedRuntime::ContainerdV1 => shim(emu, containerd, false, "k8s.io", &id)?,
                _ => shim(emu, 1, true, "moby", &id)?,
            };
            for p in pids {
                emu.set_parent(p, s)?;
            }
            // Runtime v1: containerd itself holds the eventfds (its monitor).
            let owner = if kind == EmulatedRuntime::ContainerdV1 {
                containerd
            } else {
                s
            };
            emu.register_watcher(owner, &cg)?;
            setup.shims.entry(s).or_default().push(cg);
        }
    }
    Ok(Some(setup))
}
