//! The RPM and DEB that scripts/release.sh puts in dist/, read with Debian's tools (dpkg-deb,
//! and rpm from Debian's `rpm` package, installed with apt-get when missing): name, version,
//! license, architecture, no dependencies but rpm's own format features (all known to EL7's rpm
//! 4.11), the payload compressor (xz: EL7's rpm reads no zstd), the v4 format (lead and header
//! magic, no RPMFORMAT 6), the file list with modes and owners, and the packaged binary being
//! dist/cgleak byte for byte. The packages are never installed here. A tool that is missing and
//! cannot be installed fails the test: it never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// (mode, owner:group) of every packaged file, by path: the same for both packages.
fn expected_files() -> BTreeMap<String, (String, String)> {
    let dist = repo().join("dist");
    let mut m = BTreeMap::new();
    m.insert("/usr/bin/cgleak".to_string(), ("-rwxr-xr-x", "root:root"));
    for e in std::fs::read_dir(dist.join("man")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        m.insert(
            format!("/usr/share/man/man1/{name}"),
            ("-rw-r--r--", "root:root"),
        );
    }
    for f in [
        "/usr/share/bash-completion/completions/cgleak",
        "/usr/share/zsh/site-functions/_cgleak",
        "/usr/share/fish/vendor_completions.d/cgleak.fish",
        "/usr/share/cgleak/memcg-ids.stp",
        "/usr/share/cgleak/node-problem-detector/cgleak-monitor.json",
        "/usr/share/doc/cgleak/README.md",
    ] {
        m.insert(f.to_string(), ("-rw-r--r--", "root:root"));
    }
    m.into_iter()
        .map(|(p, (mode, owner))| (p, (mode.to_string(), owner.to_string())))
        .collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run a tool; stdout, panicking with its stderr when it fails.
fn tool(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Debian's rpm, installed when missing (as scripts/vm-test.sh does for qemu).
fn ensure_rpm() {
    if Command::new("rpm").arg("--version").output().is_ok() {
        return;
    }
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let st = Command::new("apt-get")
        .args(["install", "-y", "-qq", "rpm"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("cannot start apt-get to install rpm");
    assert!(st.success(), "apt-get install rpm failed: {st}");
}

fn build_release() -> PathBuf {
    let r = repo();
    tool(Command::new(r.join("scripts/release.sh")).current_dir(&r));
    r.join("dist")
}

fn sha256(path: &Path) -> String {
    let out = tool(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_string()
}

fn check_deb(dist: &Path) {
    let deb = dist.join(format!("cgleak_{VERSION}_amd64.deb"));
    let field = |f: &str| tool(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    assert_eq!(field("Package").trim(), "cgleak");
    assert_eq!(field("Version").trim(), VERSION);
    assert_eq!(field("Architecture").trim(), "amd64");
    assert!(!field("Maintainer").trim().is_empty());
    assert!(field("Description").contains("memory-cgroup id leak"));
    let info = tool(Command::new("dpkg-deb").arg("-I").arg(&deb));
    // cargo-deb writes `depends = ""` as an empty Depends field: no package needed.
    assert!(
        field("Depends").trim().is_empty() && !info.contains("Pre-Depends:"),
        "the static binary needs no package: {info}"
    );
    // dpkg-deb -c: "-rwxr-xr-x root/root 123 2026-12-02 19:00 ./usr/bin/cgleak".
    let listing = tool(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let files: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let path = w[5].trim_start_matches('.').to_string();
            // cargo-deb writes numeric owners: 0/0 is root:root.
            let owner = w[1].replace("0/0", "root/root").replace('/', ":");
            (path, (w[0].to_string(), owner))
        })
        .collect();
    // cargo-deb gzips man pages (Debian policy 12.1) and adds the copyright file (12.5).
    let mut want = BTreeMap::new();
    for (p, v) in expected_files() {
        let p = if p.starts_with("/usr/share/man/") {
            format!("{p}.gz")
        } else {
            p
        };
        want.insert(p, v);
    }
    let doc = ("-rw-r--r--".to_string(), "root:root".to_string());
    want.insert("/usr/share/doc/cgleak/copyright".to_string(), doc);
    assert_eq!(files, want, "DEB file list, modes, owners");
    let tmp = tempfile::tempdir().unwrap();
    tool(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(tmp.path()));
    assert_eq!(
        std::fs::read(tmp.path().join("usr/bin/cgleak")).unwrap(),
        std::fs::read(dist.join("cgleak")).unwrap(),
        "the DEB's binary is not dist/cgleak"
    );
}

/// Lead magic and major version 3 (what rpm v4 packages carry), then the signature header magic.
fn check_rpm_format(rpm: &Path) {
    let b = std::fs::read(rpm).unwrap();
    assert_eq!(&b[..4], b"\xed\xab\xee\xdb", "no RPM lead");
    assert_eq!(b[4], 3, "RPM lead major version");
    assert_eq!(
        &b[96..99],
        b"\x8e\xad\xe8",
        "no signature header after the lead"
    );
}

fn check_rpm(dist: &Path) {
    ensure_rpm();
    let rpm = dist.join(format!("cgleak-{VERSION}-1.x86_64.rpm"));
    check_rpm_format(&rpm);
    let q = |qf: &str| tool(Command::new("rpm").args(["-qp", "--qf", qf]).arg(&rpm));
    assert_eq!(
        q("%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}"),
        format!("cgleak {VERSION} 1 x86_64 Apache-2.0")
    );
    // EL7's rpm 4.11 reads gzip and xz payloads; zstd came with rpm 4.14 (EL8).
    assert_eq!(q("%{PAYLOADCOMPRESSOR}"), "xz");
    assert!(q("%{SUMMARY}").contains("memory-cgroup id leak"));
    let info = tool(Command::new("rpm").arg("-qip").arg(&rpm));
    assert!(info.contains("Name        : cgleak"), "{info}");
    // Only rpm's own format features, each known to rpm 4.11: no PayloadIsZstd (4.14),
    // RichDependencies or LargeFiles (4.12), no /bin/sh, no shared library.
    let mut reqs: Vec<String> = tool(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm))
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    reqs.sort();
    assert_eq!(
        reqs,
        [
            "rpmlib(CompressedFileNames)",
            "rpmlib(FileDigests)",
            "rpmlib(PayloadFilesHavePrefix)"
        ]
    );
    // rpm 4.11 checks the header's SHA1 digest (it knows no SHA256 header digest).
    let k = tool(Command::new("rpm").args(["-Kv", "--nosignature"]).arg(&rpm));
    assert!(k.contains("Header SHA1 digest: OK"), "{k}");
    let listing = q("[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]");
    let files: BTreeMap<String, (String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[2].to_string(), (w[0].to_string(), w[1].to_string()))
        })
        .collect();
    assert_eq!(files, expected_files(), "RPM file list, modes, owners");
    // The binary's recorded digest (algorithm 8: SHA-256) and size are dist/cgleak's.
    assert_eq!(q("%{FILEDIGESTALGO}"), "8");
    let digests = q("[%{FILENAMES} %{FILEDIGESTS} %{FILESIZES}\n]");
    let line = digests
        .lines()
        .find(|l| l.starts_with("/usr/bin/cgleak "))
        .unwrap();
    let bin = dist.join("cgleak");
    let size = std::fs::metadata(&bin).unwrap().len();
    assert_eq!(
        line,
        format!("/usr/bin/cgleak {} {size}", sha256(&bin)),
        "the RPM's binary is not dist/cgleak"
    );
}

#[test]
fn release_script_builds_an_rpm_and_a_deb_with_the_same_files() {
    let dist = build_release();
    check_deb(&dist);
    check_rpm(&dist);
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    for p in [
        format!("cgleak-{VERSION}-1.x86_64.rpm"),
        format!("cgleak_{VERSION}_amd64.deb"),
    ] {
        assert!(
            sums.lines().any(|l| l.ends_with(&format!("  {p}"))),
            "{p} not in SHA256SUMS"
        );
    }
}
