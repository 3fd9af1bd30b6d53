//! Who a memory cgroup belongs to: the pod uid, QoS class and container id that kubelet's
//! cgroup naming puts in the path (cgroupfs and systemd drivers), and the names that only the
//! node's files know (namespace, pod and container names), read without any API server.
//!
//! The naming rules and the files are in docs/pod-identity.md:
//! kubelet's `cgroup_manager_linux.go` (cgroupfs `kubepods[/burstable|/besteffort]/pod<uid>/<id>`,
//! systemd `kubepods-burstable-pod<uid, - as _>.slice/<runtime>-<id>.scope`), its log layout
//! (`/var/log/pods/<ns>_<pod>_<uid>/<container>/`, and the `/var/log/containers/
//! <pod>_<ns>_<container>-<id>.log` links), containerd's per-task OCI `config.json` annotations
//! (`io.kubernetes.cri.*`) and dockershim's `config.v2.json` labels (`io.kubernetes.*`).

use crate::host::Host;
use serde::Serialize;
use std::collections::BTreeMap;

/// A pod's QoS class, from the cgroup level kubelet puts it under (Guaranteed pods sit directly
/// below kubepods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// What is known of a memcg's owner. The path gives the uid, QoS and container id; the node's
/// files, when present, the names and whether the container is the pod's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub pod_uid: Option<String>,
    pub qos: Option<Qos>,
    pub container_id: Option<String>,
    pub namespace: Option<String>,
    pub pod_name: Option<String>,
    pub container_name: Option<String>,
    /// The pod's sandbox (pause) container; None when no runtime record says either way.
    pub sandbox: Option<bool>,
}

impl Identity {
    /// "namespace/pod" when the names are known, else "pod <uid>".
    pub fn pod_label(&self) -> Option<String> {
        match (&self.namespace, &self.pod_name, &self.pod_uid) {
            (Some(ns), Some(name), _) => Some(format!("{ns}/{name}")),
            (_, _, Some(uid)) => Some(format!("pod {uid}")),
            _ => None,
        }
    }

    /// The container's name, "sandbox" for the pause container, or its short id.
    pub fn container_label(&self) -> Option<String> {
        if self.sandbox == Some(true) {
            return Some("sandbox (pause)".to_string());
        }
        match (&self.container_name, &self.container_id) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(id)) => Some(format!("container {}", short_id(id))),
            _ => None,
        }
    }
}

/// The first 12 characters of a container id, as runtimes print it.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The pod identity a cgroup path carries, or None when the path is not a pod's or below one.
/// Any prefix before the kubepods level is allowed (nested nodes, a test's sandbox).
pub fn from_cgroup_path(path: &str) -> Option<Identity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = parts
        .iter()
        .rposition(|p| *p == "kubepods" || *p == "kubepods.slice")?;
    let rest = &parts[at + 1..];
    if parts[at] == "kubepods" {
        from_cgroupfs(rest)
    } else {
        from_systemd(rest)
    }
}

/// `[burstable|besteffort/]pod<uid>[/<container id>]`.
fn from_cgroupfs(rest: &[&str]) -> Option<Identity> {
    let (qos, rest) = match rest.first() {
        Some(&"burstable") => (Qos::Burstable, &rest[1..]),
        Some(&"besteffort") => (Qos::BestEffort, &rest[1..]),
        _ => (Qos::Guaranteed, rest),
    };
    let uid = rest
        .first()?
        .strip_prefix("pod")
        .filter(|u| uid_shaped(u))?;
    Some(Identity {
        pod_uid: Some(uid.to_string()),
        qos: Some(qos),
        container_id: rest.get(1).map(|c| c.to_string()),
        ..Identity::default()
    })
}

/// `[kubepods-burstable.slice/]kubepods[-burstable]-pod<uid>.slice[/<prefix>-<id>.scope]`:
/// systemd escapes the uid's `-` as `_` (kubelet's `escapeSystemdCgroupName`).
fn from_systemd(rest: &[&str]) -> Option<Identity> {
    let (qos, rest) = match rest.first() {
        Some(&"kubepods-burstable.slice") => (Qos::Burstable, &rest[1..]),
        Some(&"kubepods-besteffort.slice") => (Qos::BestEffort, &rest[1..]),
        _ => (Qos::Guaranteed, rest),
    };
    let slice = rest.first()?.strip_suffix(".slice")?;
    let (_, uid) = slice.split_once("-pod")?;
    if !uid_shaped(uid) {
        return None;
    }
    let container_id = rest.get(1).map(|scope| {
        let name = scope.strip_suffix(".scope").unwrap_or(scope);
        // cri-containerd-<id>, crio-<id>, docker-<id>: the id is after the last '-'.
        name.rsplit_once('-').map_or(name, |(_, id)| id).to_string()
    });
    Some(Identity {
        pod_uid: Some(uid.replace('_', "-")),
        qos: Some(qos),
        container_id,
        ..Identity::default()
    })
}

/// A pod uid as kubelet writes it into a cgroup name: an API pod's UUID, or a static pod's
/// 32-hex config hash; in systemd slices with `_` for `-`. Anything else below kubepods (a lab's
/// `pod-guaranteed`) is not a pod.
fn uid_shaped(u: &str) -> bool {
    u.len() >= 8
        && u.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
}

/// Where the names are looked up.
#[derive(Debug, Clone)]
pub struct Sources {
    /// kubelet's pod log directory (`/var/log/pods`); its sibling `containers` holds the
    /// per-container links that name a container id.
    pub pods_log_dir: String,
    /// containerd's shim v2 task state (`/run/containerd/io.containerd.runtime.v2.task`).
    pub containerd_dir: String,
    /// dockerd's container store (`/var/lib/docker/containers`).
    pub docker_dir: String,
}

/// A pod's names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodNames {
    namespace: String,
    name: String,
}

/// A container's names, from a runtime record or a log link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ContainerNames {
    name: Option<String>,
    sandbox: Option<bool>,
    pod_uid: Option<String>,
    pod: Option<PodNames>,
}

/// The names the node's files give, loaded once per command.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pods: BTreeMap<String, PodNames>,
    containers: BTreeMap<String, ContainerNames>,
    notes: Vec<String>,
}

impl Names {
    /// Load from kubelet's logs and containerd's state (dockerd's store at its default path).
    pub fn load(host: &dyn Host, pods_log_dir: &str, containerd_dir: &str) -> Names {
        Names::load_from(
            host,
            &Sources {
                pods_log_dir: pods_log_dir.to_string(),
                containerd_dir: containerd_dir.to_string(),
                docker_dir: "/var/lib/docker/containers".to_string(),
            },
        )
    }

    /// Load from every source; a source that is missing or unreadable leaves a note.
    pub fn load_from(host: &dyn Host, src: &Sources) -> Names {
        let mut n = Names::default();
        n.load_pod_logs(host, &src.pods_log_dir);
        n.load_container_links(host, &src.pods_log_dir);
        n.load_containerd(host, &src.containerd_dir);
        n.load_docker(host, &src.docker_dir);
        n
    }

    /// Fill in the names this node has for `id` (by pod uid and container id).
    pub fn fill(&self, id: &mut Identity) {
        if let Some(c) = id
            .container_id
            .as_ref()
            .and_then(|c| self.containers.get(c))
        {
            id.container_name = id.container_name.take().or_else(|| c.name.clone());
            id.sandbox = id.sandbox.or(c.sandbox);
            if id.pod_uid.is_none() {
                id.pod_uid = c.pod_uid.clone();
            }
            if let (None, Some(p)) = (&id.pod_name, &c.pod) {
                id.namespace = Some(p.namespace.clone());
                id.pod_name = Some(p.name.clone());
            }
        }
        if let Some(p) = id.pod_uid.as_ref().and_then(|u| self.pods.get(u)) {
            id.namespace = Some(p.namespace.clone());
            id.pod_name = Some(p.name.clone());
        }
    }

    /// Why a pod's names are unknown, for the report's notes (None when they are known).
    pub fn missing(&self, id: &Identity) -> Option<String> {
        let uid = id.pod_uid.as_ref()?;
        if id.pod_name.is_some() {
            return None;
        }
        Some(format!(
            "pod {uid}: no log directory or runtime record names it (the pod is gone, or the \
             logs live elsewhere: --pods-log-dir)"
        ))
    }

    /// What could not be read, one line each.
    pub fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// How many pods and containers have names.
    pub fn counts(&self) -> (usize, usize) {
        (self.pods.len(), self.containers.len())
    }

    fn note_err(&mut self, what: &str, e: &crate::error::Error) {
        self.notes.push(format!("{what}: {e}"));
    }

    /// `<ns>_<pod>_<uid>/`: kubelet's pod log directories. The old layout (`<uid>/` alone)
    /// names no pod and is skipped.
    fn load_pod_logs(&mut self, host: &dyn Host, dir: &str) {
        match host.host_dir(dir) {
            Ok(Some(entries)) => {
                for e in entries {
                    if let Some((uid, p)) = parse_pod_log_dir(&e) {
                        self.pods.insert(uid, p);
                    }
                }
            }
            Ok(None) => self.notes.push(format!(
                "{dir} does not exist: pod names are known only from runtime records"
            )),
            Err(e) => self.note_err(dir, &e),
        }
    }

    /// `<pod>_<ns>_<container>-<id>.log` in the `containers` directory beside the pod logs.
    fn load_container_links(&mut self, host: &dyn Host, pods_log_dir: &str) {
        let Some(dir) = sibling(pods_log_dir, "containers") else {
            return;
        };
        if let Ok(Some(entries)) = host.host_dir(&dir) {
            for e in entries {
                if let Some((id, c)) = parse_container_link(&e) {
                    self.containers.entry(id).or_insert(c);
                }
            }
        }
    }

    /// containerd's `<namespace>/<id>/config.json`: the CRI plugin's annotations.
    fn load_containerd(&mut self, host: &dyn Host, dir: &str) {
        let Ok(Some(namespaces)) = host.host_dir(dir) else {
            return;
        };
        for ns in namespaces {
            let Ok(Some(ids)) = host.host_dir(&format!("{dir}/{ns}")) else {
                continue;
            };
            for id in ids {
                match host.host_file(&format!("{dir}/{ns}/{id}/config.json")) {
                    Ok(Some(text)) => {
                        if let Some(c) = parse_containerd_config(&text) {
                            self.containers.insert(id, c);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => self.note_err(&format!("{dir}/{ns}/{id}/config.json"), &e),
                }
            }
        }
    }

    /// dockerd's `<id>/config.v2.json`: dockershim's labels.
    fn load_docker(&mut self, host: &dyn Host, dir: &str) {
        let Ok(Some(ids)) = host.host_dir(dir) else {
            return;
        };
        for id in ids {
            if let Ok(Some(text)) = host.host_file(&format!("{dir}/{id}/config.v2.json")) {
                if let Some(c) = parse_docker_config(&text) {
                    self.containers.entry(id).or_insert(c);
                }
            }
        }
    }
}

/// `dir`'s sibling `name` (`/var/log/pods` -> `/var/log/containers`).
fn sibling(dir: &str, name: &str) -> Option<String> {
    let parent = std::path::Path::new(dir.trim_end_matches('/')).parent()?;
    Some(parent.join(name).to_string_lossy().into_owned())
}

/// `<ns>_<pod>_<uid>`: namespaces and pod names are DNS names, which never hold `_`.
fn parse_pod_log_dir(entry: &str) -> Option<(String, PodNames)> {
    let mut it = entry.splitn(3, '_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    if ns.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((
        uid.to_string(),
        PodNames {
            namespace: ns.to_string(),
            name: pod.to_string(),
        },
    ))
}

/// `<pod>_<ns>_<container>-<id>.log`: container names are DNS labels (no `_`); the id is the
/// part after the last `-`.
fn parse_container_link(entry: &str) -> Option<(String, ContainerNames)> {
    let stem = entry.strip_suffix(".log")?;
    let mut it = stem.splitn(3, '_');
    let (pod, ns, rest) = (it.next()?, it.next()?, it.next()?);
    let (container, id) = rest.rsplit_once('-')?;
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        id.to_string(),
        ContainerNames {
            name: Some(container.to_string()),
            sandbox: Some(false),
            pod_uid: None,
            pod: Some(PodNames {
                namespace: ns.to_string(),
                name: pod.to_string(),
            }),
        },
    ))
}

/// A string field of a JSON object.
fn field(map: &serde_json::Value, key: &str) -> Option<String> {
    map.get(key)?.as_str().map(str::to_string)
}

/// Where a runtime record keeps the CRI names: the keys of one string map.
struct Keys {
    kind: &'static str,
    sandbox_kind: &'static str,
    container: &'static str,
    namespace: &'static str,
    pod: &'static str,
    uid: &'static str,
}

/// The names in a runtime record's string map `m`; None when it does not say its kind.
fn names_in(m: &serde_json::Value, k: &Keys) -> Option<ContainerNames> {
    let sandbox = field(m, k.kind)? == k.sandbox_kind;
    let pod = match (field(m, k.namespace), field(m, k.pod)) {
        (Some(namespace), Some(name)) => Some(PodNames { namespace, name }),
        _ => None,
    };
    Some(ContainerNames {
        name: if sandbox { None } else { field(m, k.container) },
        sandbox: Some(sandbox),
        pod_uid: field(m, k.uid),
        pod,
    })
}

/// The CRI plugin's annotations in a task's OCI spec.
fn parse_containerd_config(text: &str) -> Option<ContainerNames> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let keys = Keys {
        kind: "io.kubernetes.cri.container-type",
        sandbox_kind: "sandbox",
        container: "io.kubernetes.cri.container-name",
        namespace: "io.kubernetes.cri.sandbox-namespace",
        pod: "io.kubernetes.cri.sandbox-name",
        uid: "io.kubernetes.cri.sandbox-uid",
    };
    names_in(v.get("annotations")?, &keys)
}

/// dockershim's labels in a container's `config.v2.json` (`Config.Labels`).
fn parse_docker_config(text: &str) -> Option<ContainerNames> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let keys = Keys {
        kind: "io.kubernetes.docker.type",
        sandbox_kind: "podsandbox",
        container: "io.kubernetes.container.name",
        namespace: "io.kubernetes.pod.namespace",
        pod: "io.kubernetes.pod.name",
        uid: "io.kubernetes.pod.uid",
    };
    names_in(v.get("Config")?.get("Labels")?, &keys)
}

#[cfg(test)]
mod tests;
