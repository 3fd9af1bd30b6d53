//! Identity from every path shape kubelet makes, and names from fake node files.

use super::*;
use crate::diagnose::fakes::FakeHost;

const UID: &str = "6a7b3c1e-0d2f-4c55-9e11-2b3c4d5e6f70";
const ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn cgroupfs_paths_of_every_qos() {
    let b = from_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{ID}")).unwrap();
    assert_eq!(b.pod_uid.as_deref(), Some(UID));
    assert_eq!(b.qos, Some(Qos::Burstable));
    assert_eq!(b.container_id.as_deref(), Some(ID));
    let e = from_cgroup_path(&format!("/kubepods/besteffort/pod{UID}")).unwrap();
    assert_eq!((e.qos, e.container_id), (Some(Qos::BestEffort), None));
    let g = from_cgroup_path(&format!("/kubepods/pod{UID}/{ID}")).unwrap();
    assert_eq!(g.qos, Some(Qos::Guaranteed));
}

#[test]
fn a_static_pods_config_hash_is_a_uid() {
    let id = from_cgroup_path("/kubepods/burstable/pod8f1e2d3c4b5a69788796a5b4c3d2e1f0/x");
    assert_eq!(
        id.unwrap().pod_uid.as_deref(),
        Some("8f1e2d3c4b5a69788796a5b4c3d2e1f0")
    );
}

#[test]
fn a_prefix_before_kubepods_is_allowed() {
    let id = from_cgroup_path(&format!(
        "/lxc.payload.n1/x/kubepods/burstable/pod{UID}/{ID}"
    ));
    assert_eq!(id.unwrap().pod_uid.as_deref(), Some(UID));
}

#[test]
fn levels_above_a_pod_and_other_paths_are_not_pods() {
    for p in [
        "/kubepods",
        "/kubepods/burstable",
        "/system.slice/x",
        "/",
        "/kubepods/pod",
    ] {
        assert_eq!(from_cgroup_path(p), None, "{p}");
    }
}

#[test]
fn systemd_paths_unescape_the_uid_and_strip_the_runtime_prefix() {
    let esc = UID.replace('-', "_");
    for (prefix, qos_dir, qos) in [
        (
            "cri-containerd",
            "kubepods-burstable.slice/kubepods-burstable-",
            Qos::Burstable,
        ),
        (
            "crio",
            "kubepods-besteffort.slice/kubepods-besteffort-",
            Qos::BestEffort,
        ),
        ("docker", "kubepods-", Qos::Guaranteed),
    ] {
        let p = format!("/kubepods.slice/{qos_dir}pod{esc}.slice/{prefix}-{ID}.scope");
        let id = from_cgroup_path(&p).unwrap();
        assert_eq!(id.pod_uid.as_deref(), Some(UID), "{p}");
        assert_eq!(id.qos, Some(qos), "{p}");
        assert_eq!(id.container_id.as_deref(), Some(ID), "{p}");
    }
}

fn node() -> FakeHost {
    let mut h = FakeHost::new("6.1.0");
    h.file(&format!("/var/log/pods/shop_cart-7d9_{UID}/app/0.log"), "");
    h.file(
        &format!("/var/log/containers/cart-7d9_shop_app-{ID}.log"),
        "",
    );
    h
}

#[test]
fn names_come_from_pod_logs_and_container_links() {
    let n = Names::load(&node(), "/var/log/pods", "/run/containerd/x");
    let mut id = from_cgroup_path(&format!("/kubepods/burstable/pod{UID}/{ID}")).unwrap();
    n.fill(&mut id);
    assert_eq!(id.namespace.as_deref(), Some("shop"));
    assert_eq!(id.pod_name.as_deref(), Some("cart-7d9"));
    assert_eq!(id.container_name.as_deref(), Some("app"));
    assert_eq!(id.sandbox, Some(false));
    assert_eq!(n.missing(&id), None);
    assert_eq!(id.pod_label().as_deref(), Some("shop/cart-7d9"));
}

#[test]
fn containerd_annotations_name_the_sandbox() {
    let mut h = node();
    let sb = "aa".repeat(32);
    let ann = format!(
        r#"{{"annotations":{{"io.kubernetes.cri.container-type":"sandbox",
        "io.kubernetes.cri.sandbox-name":"cart-7d9","io.kubernetes.cri.sandbox-namespace":"shop",
        "io.kubernetes.cri.sandbox-uid":"{UID}"}}}}"#
    );
    h.file(&format!("/run/c/k8s.io/{sb}/config.json"), &ann);
    let n = Names::load(&h, "/var/log/pods", "/run/c");
    let mut id = from_cgroup_path(&format!("/kubepods/pod{UID}/{sb}")).unwrap();
    n.fill(&mut id);
    assert_eq!(id.sandbox, Some(true));
    assert_eq!(id.container_label().as_deref(), Some("sandbox (pause)"));
    assert_eq!(n.counts(), (1, 2));
}

#[test]
fn dockershim_labels_name_containers() {
    let mut h = FakeHost::new("4.19.0");
    let cfg = format!(
        r#"{{"Config":{{"Labels":{{"io.kubernetes.docker.type":"container",
        "io.kubernetes.container.name":"web","io.kubernetes.pod.name":"front",
        "io.kubernetes.pod.namespace":"edge","io.kubernetes.pod.uid":"{UID}"}}}}}}"#
    );
    h.file(
        &format!("/var/lib/docker/containers/{ID}/config.v2.json"),
        &cfg,
    );
    let n = Names::load(&h, "/nowhere/pods", "/nowhere/c");
    let mut id = Identity {
        container_id: Some(ID.into()),
        ..Identity::default()
    };
    n.fill(&mut id);
    assert_eq!(id.pod_uid.as_deref(), Some(UID));
    assert_eq!(id.pod_label().as_deref(), Some("edge/front"));
    assert_eq!(id.container_name.as_deref(), Some("web"));
    assert!(n.notes()[0].contains("/nowhere/pods does not exist"));
}

#[test]
fn a_pod_with_no_log_directory_is_named_in_a_note() {
    let n = Names::load(&node(), "/var/log/pods", "/run/c");
    let mut id = from_cgroup_path("/kubepods/podffff0000/abc").unwrap();
    n.fill(&mut id);
    assert_eq!(id.pod_name, None);
    assert!(n.missing(&id).unwrap().contains("pod ffff0000"));
    assert_eq!(id.pod_label().as_deref(), Some("pod ffff0000"));
    assert_eq!(id.container_label().as_deref(), Some("container abc"));
}

#[test]
fn malformed_entries_are_skipped() {
    assert_eq!(parse_pod_log_dir("olduid-only"), None);
    assert_eq!(parse_pod_log_dir("a__b"), None);
    assert_eq!(parse_container_link("p_n_c-nothex.log"), None);
    assert_eq!(parse_containerd_config("{not json"), None);
    assert_eq!(parse_docker_config(r#"{"Config":{}}"#), None);
}
