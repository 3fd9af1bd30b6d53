//! The runtimes' versions without running them: the package database (/var/lib/dpkg/status)
//! names the version of the package that installed the running executable's path. A daemon
//! run from elsewhere (a tarball in /usr/local) has no known version: `null`, and the text
//! says "version unknown" (docs/runtimes.md).

/// Where dpkg keeps what is installed (dpkg(1), "FILES").
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Packages that install each daemon: Debian's and Docker's own.
fn packages_of(daemon: &str) -> &'static [&'static str] {
    match daemon {
        "containerd" => &["containerd", "containerd.io"],
        "dockerd" => &["docker.io", "docker-ce"],
        _ => &[],
    }
}

/// Whether a package installs binaries at this path (Debian's and Docker's packages put them
/// in /usr/bin and /usr/sbin).
fn packaged_path(exe: &str) -> bool {
    exe.starts_with("/usr/bin/") || exe.starts_with("/usr/sbin/")
}

/// The upstream part of a Debian version: no epoch (`1:`), no `~ds1`, `+dfsg`, `-1` revision.
pub fn upstream(version: &str) -> String {
    let v = version.split_once(':').map_or(version, |(_, v)| v);
    let end = v.find(['~', '+', '-']).unwrap_or(v.len());
    v[..end].to_string()
}

/// The installed version of `package` in a dpkg status file.
pub fn dpkg_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
        (field("Package") == Some(package) && installed)
            .then(|| field("Version").map(str::to_string))
            .flatten()
    })
}

/// The version of `daemon` running from `exe`, from `status` (the dpkg status file's text).
pub fn daemon_version(daemon: &str, exe: Option<&str>, status: Option<&str>) -> Option<String> {
    let (exe, status) = (exe?, status?);
    if !packaged_path(exe) {
        return None;
    }
    packages_of(daemon)
        .iter()
        .find_map(|p| dpkg_version(status, p))
        .map(|v| upstream(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: runc\nStatus: install ok installed\nVersion: 1.1.5+ds1-1+deb12u1\n\nPackage: containerd\nStatus: install ok installed\nPriority: optional\nVersion: 1.6.20~ds1-1+b1\n\nPackage: docker.io\nStatus: deinstall ok config-files\nVersion: 20.10.24+dfsg1-1+b3\n";

    #[test]
    fn versions_from_dpkg() {
        assert_eq!(
            dpkg_version(STATUS, "containerd").as_deref(),
            Some("1.6.20~ds1-1+b1")
        );
        // Removed, config files left: not installed.
        assert_eq!(dpkg_version(STATUS, "docker.io"), None);
        assert_eq!(
            daemon_version("containerd", Some("/usr/bin/containerd"), Some(STATUS)).as_deref(),
            Some("1.6.20")
        );
        assert_eq!(
            daemon_version(
                "containerd",
                Some("/usr/local/bin/containerd"),
                Some(STATUS)
            ),
            None
        );
        assert_eq!(
            daemon_version("dockerd", Some("/usr/sbin/dockerd"), Some(STATUS)),
            None
        );
        assert_eq!(daemon_version("containerd", None, Some(STATUS)), None);
    }

    #[test]
    fn upstream_parts() {
        assert_eq!(upstream("1.6.20~ds1-1+b1"), "1.6.20");
        assert_eq!(upstream("20.10.24+dfsg1-1+b3"), "20.10.24");
        assert_eq!(upstream("1:1.4.13-1"), "1.4.13");
        assert_eq!(upstream("1.7.0"), "1.7.0");
    }
}
