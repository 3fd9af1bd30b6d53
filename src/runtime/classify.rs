//! What a process is, for the runtime detection: a runtime daemon, a shim, or neither, from its
//! executable and command line (never from comm alone: the kernel keeps 15 bytes of it, so
//! `containerd-shim` (runtime v1) and `containerd-shim-runc-v2` (shim v2) both read
//! "containerd-shim" there; docs/runtimes.md).

use crate::host::procs::ProcInfo;
use serde::{Deserialize, Serialize};

/// The containerd shim API a shim speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShimKind {
    /// `containerd-shim` (io.containerd.runtime.v1.linux): the OOM watchers live in the
    /// containerd daemon.
    V1,
    /// `containerd-shim-runc-v1`/`-v2` (io.containerd.runc.v1/v2): each shim watches its own
    /// containers' memcgs.
    V2,
}

impl std::fmt::Display for ShimKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShimKind::V1 => "runtime v1",
            ShimKind::V2 => "shim v2",
        })
    }
}

/// What a process of the table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// containerd or dockerd.
    Daemon(&'static str),
    Shim {
        kind: ShimKind,
        namespace: Option<String>,
    },
    Other,
}

/// The program's name: the executable's file name, else argv[0]'s, else comm.
pub fn program_name(p: &ProcInfo) -> String {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    if let Some(e) = p.exe.as_deref().filter(|e| !e.is_empty()) {
        return base(e);
    }
    match p.cmdline.first().filter(|a| !a.is_empty()) {
        // argv[0] may carry arguments when the process rewrote its argument area.
        Some(a0) => base(a0.split(' ').next().unwrap_or(a0)),
        None => p.comm.clone(),
    }
}

/// The value after `-namespace` (or `--namespace`, `-namespace=x`) in the arguments.
pub fn namespace_arg(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let flag = a.trim_start_matches('-');
        if a.starts_with('-') && flag == "namespace" {
            return it.next().cloned();
        }
        if let Some(v) = flag
            .strip_prefix("namespace=")
            .filter(|_| a.starts_with('-'))
        {
            return Some(v.to_string());
        }
    }
    None
}

/// Classify one process.
pub fn role(p: &ProcInfo) -> Role {
    let name = program_name(p);
    match name.as_str() {
        "containerd" => Role::Daemon("containerd"),
        "dockerd" => Role::Daemon("dockerd"),
        "containerd-shim" => Role::Shim {
            kind: ShimKind::V1,
            namespace: namespace_arg(&p.cmdline),
        },
        n if n.starts_with("containerd-shim-") => Role::Shim {
            kind: ShimKind::V2,
            namespace: namespace_arg(&p.cmdline),
        },
        _ => Role::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(comm: &str, exe: Option<&str>, args: &[&str]) -> ProcInfo {
        crate::runtime::tests::p(10, 1, comm, exe, args)
    }

    #[test]
    fn truncated_comm_is_told_apart_by_exe_and_cmdline() {
        let v2 = proc(
            "containerd-shim",
            Some("/usr/bin/containerd-shim-runc-v2"),
            &[
                "/usr/bin/containerd-shim-runc-v2",
                "-namespace",
                "k8s.io",
                "-id",
                "abc",
            ],
        );
        assert_eq!(
            role(&v2),
            Role::Shim {
                kind: ShimKind::V2,
                namespace: Some("k8s.io".into())
            }
        );
        let v1 = proc(
            "containerd-shim",
            None,
            &[
                "containerd-shim",
                "-namespace",
                "moby",
                "-workdir",
                "/var/lib/containerd/x",
            ],
        );
        assert_eq!(
            role(&v1),
            Role::Shim {
                kind: ShimKind::V1,
                namespace: Some("moby".into())
            }
        );
        let v1_by_exe = proc("containerd-shim", Some("/usr/bin/containerd-shim"), &[]);
        assert_eq!(
            role(&v1_by_exe),
            Role::Shim {
                kind: ShimKind::V1,
                namespace: None
            }
        );
    }

    #[test]
    fn daemons_and_others() {
        assert_eq!(
            role(&proc("containerd", Some("/usr/bin/containerd"), &[])),
            Role::Daemon("containerd")
        );
        assert_eq!(
            role(&proc(
                "dockerd",
                None,
                &["/usr/sbin/dockerd", "-H", "fd://"]
            )),
            Role::Daemon("dockerd")
        );
        // A process merely named like one in comm is not taken for it when its exe says otherwise.
        assert_eq!(
            role(&proc("containerd", Some("/usr/bin/sleep"), &["containerd"])),
            Role::Other
        );
        assert_eq!(role(&proc("kworker/0:1", None, &[])), Role::Other);
    }

    #[test]
    fn namespace_forms() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            namespace_arg(&a(&["x", "--namespace", "k8s.io"])),
            Some("k8s.io".into())
        );
        assert_eq!(
            namespace_arg(&a(&["x", "-namespace=moby"])),
            Some("moby".into())
        );
        assert_eq!(namespace_arg(&a(&["x", "namespace", "y"])), None);
        assert_eq!(namespace_arg(&a(&["x", "-namespace"])), None);
    }
}
