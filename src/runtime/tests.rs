//! Detection on process tables shaped like the lab's (containerd 1.6 with shim v2, docker
//! 20.10, runtime v1) and on a table without any runtime.

use super::classify::ShimKind;
use super::cost::{preflight_line, remedy, Remedy};
use super::*;

/// A process of a test table.
pub(crate) fn p(pid: u32, ppid: u32, comm: &str, exe: Option<&str>, args: &[&str]) -> ProcInfo {
    ProcInfo {
        pid,
        ppid,
        comm: comm.into(),
        exe: exe.map(str::to_string),
        cmdline: args.iter().map(|s| s.to_string()).collect(),
        start_time: 100 + u64::from(pid),
    }
}

const STATUS: &str = "Package: containerd\nStatus: install ok installed\nVersion: 1.6.20~ds1-1+b1\n\nPackage: docker.io\nStatus: install ok installed\nVersion: 20.10.24+dfsg1-1+b3\n";

/// containerd, two shim v2 in k8s.io; the first serves a pause and an app container (a shell
/// with a child), the second one container; one cgroup holds a process of no shim.
fn k8s_table() -> Vec<ProcInfo> {
    let shim = |pid| {
        p(
            pid,
            1,
            "containerd-shim",
            Some("/usr/bin/containerd-shim-runc-v2"),
            &[
                "/usr/bin/containerd-shim-runc-v2",
                "-namespace",
                "k8s.io",
                "-id",
                "x",
                "-address",
                "/run/containerd/containerd.sock",
            ],
        )
    };
    vec![
        p(
            1,
            0,
            "systemd",
            Some("/usr/lib/systemd/systemd"),
            &["/sbin/init"],
        ),
        p(
            540,
            1,
            "containerd",
            Some("/usr/bin/containerd"),
            &["/usr/bin/containerd"],
        ),
        shim(900),
        shim(950),
        p(901, 900, "pause", None, &["/pause"]),
        p(
            902,
            900,
            "sh",
            Some("/bin/busybox"),
            &["sh", "-c", "sleep 1d"],
        ),
        p(903, 902, "sleep", Some("/bin/busybox"), &["sleep", "1d"]),
        p(
            951,
            950,
            "nginx",
            Some("/usr/sbin/nginx"),
            &["nginx: master process"],
        ),
        p(700, 1, "stray", None, &["stray"]),
    ]
}

fn k8s_cgroups() -> Vec<(String, Vec<u32>)> {
    vec![
        ("kubepods/burstable/poda/p".into(), vec![901]),
        ("kubepods/burstable/poda/c".into(), vec![903]),
        ("kubepods/podb/n".into(), vec![951]),
        ("kubepods/podc/s".into(), vec![700]),
    ]
}

#[test]
fn containerd_with_shim_v2() {
    let r = detect_from(&k8s_table(), Some(STATUS), &k8s_cgroups());
    assert!(!r.none_found);
    assert_eq!(
        r.daemons,
        vec![Daemon {
            name: "containerd".into(),
            pid: 540,
            version: Some("1.6.20".into())
        }]
    );
    assert_eq!(r.shims.len(), 2);
    assert_eq!(
        (r.shims[0].pid, r.shims[0].kind, r.shims[0].containers),
        (900, ShimKind::V2, 2)
    );
    assert_eq!(r.shims[0].namespace.as_deref(), Some("k8s.io"));
    assert_eq!(r.shims[1].containers, 1);
    // The grandchild (903) is found through its parent; the stray process serves nothing.
    assert_eq!(r.containers_served, 3);
    assert_eq!(
        r.served[1].tasks,
        vec![TaskId {
            pid: 903,
            start_time: 1003
        }]
    );
    assert_eq!(
        preflight_line(&r).unwrap(),
        "containerd 1.6, shim v2: 3 running containers will report a later OOM kill as Error, not OOMKilled, and have no runtime stats, until each restarts"
    );
    assert_eq!(remedy(&r), Remedy::RollingRestart);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["shims"][0]["kind"], "v2");
    assert_eq!(json["daemons"][0]["version"], "1.6.20");
    assert!(json.get("served").is_none());
}

#[test]
fn docker_and_runtime_v1() {
    let table = vec![
        p(1, 0, "systemd", None, &[]),
        p(
            600,
            1,
            "dockerd",
            Some("/usr/sbin/dockerd"),
            &["/usr/sbin/dockerd", "-H", "fd://"],
        ),
        p(
            540,
            1,
            "containerd",
            Some("/usr/local/bin/containerd"),
            &["containerd"],
        ),
        p(
            800,
            540,
            "containerd-shim",
            Some("/usr/bin/containerd-shim"),
            &[
                "containerd-shim",
                "-namespace",
                "moby",
                "-workdir",
                "/var/lib/containerd/io.containerd.runtime.v1.linux/moby/abc",
            ],
        ),
        p(801, 800, "app", None, &["app"]),
    ];
    let r = detect_from(
        &table,
        Some(STATUS),
        &[("kubepods/poda/abc".into(), vec![801])],
    );
    assert_eq!(r.daemons.len(), 2);
    // containerd from /usr/local: not the package's, version unknown.
    assert_eq!(
        r.daemons
            .iter()
            .find(|d| d.name == "containerd")
            .unwrap()
            .version,
        None
    );
    assert_eq!(r.shims[0].kind, ShimKind::V1);
    assert_eq!(
        preflight_line(&r).unwrap(),
        "docker 20.10, runtime v1: 1 running containers will report a later OOM kill as Error, not OOMKilled, and have no runtime stats, until containerd restarts"
    );
    assert_eq!(remedy(&r), Remedy::RestartContainerd);
    assert!(render_line(&r).contains("containerd, version unknown (pid 540)"));
}

#[test]
fn no_runtime() {
    let table = vec![
        p(1, 0, "systemd", None, &[]),
        p(5, 1, "sshd", None, &["sshd"]),
    ];
    let r = detect_from(&table, None, &[("kubepods/poda/x".into(), vec![5])]);
    assert!(r.none_found);
    assert_eq!(r.containers_served, 0);
    assert_eq!(preflight_line(&r), None);
    assert_eq!(remedy(&r), Remedy::None);
    assert_eq!(
        render_line(&r),
        "no container runtime found (no containerd, dockerd or containerd-shim process)"
    );
}

#[test]
fn parent_loops_end() {
    // A table read while processes come and go may show a cycle: the walk ends.
    let table = vec![p(10, 11, "a", None, &[]), p(11, 10, "b", None, &[])];
    let r = detect_from(&table, None, &[("kubepods/x".into(), vec![10])]);
    assert_eq!(r.containers_served, 0);
}

#[test]
fn this_host_has_no_runtime_or_says_which() {
    // The machine running the tests has no container runtime (the lab's guests do).
    let r = detect(&crate::host::kernel::KernelHost, &[]).unwrap();
    let me = std::process::id();
    assert!(r.shims.iter().all(|s| s.pid != me));
    assert_eq!(r.none_found, r.daemons.is_empty() && r.shims.is_empty());
}
