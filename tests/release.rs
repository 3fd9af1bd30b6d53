//! The release build: runs scripts/release.sh (a static release build in target/, incremental
//! after the first run) and then the static binary it put in dist/: --version, emulate,
//! diagnose with `--ids-used -`, probe-headroom; the man pages, completions and SHA256SUMS.
//! A build that cannot run fails this test: it never skips.

use cgleak::host::emulated::EmulatedFs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Run `cmd`, feeding `stdin`; panic naming the command if it cannot start.
fn run(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Whether an ELF64 little-endian file has a PT_INTERP program header (asks for a dynamic
/// loader). Read here from the ELF header fields (e_phoff at 0x20, e_phentsize at 0x36, e_phnum
/// at 0x38), independently of the readelf check in release.sh.
fn has_pt_interp(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    assert_eq!(elf[5], 1, "not little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0, "no program headers");
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == PT_INTERP
    })
}

/// Run scripts/release.sh; returns dist/.
fn build_release(repo: &Path) -> PathBuf {
    let out = run(
        Command::new(repo.join("scripts/release.sh")).current_dir(repo),
        "",
    );
    assert!(
        out.status.success(),
        "scripts/release.sh FAILED ({}): the release could not be built\n--- stderr\n{}\n--- stdout\n{}",
        out.status,
        text(&out.stderr),
        text(&out.stdout)
    );
    repo.join("dist")
}

/// Static, it runs, and --version names the version and the commit.
fn check_static_and_version(bin: &Path, repo: &Path) {
    let elf = std::fs::read(bin).unwrap();
    assert!(
        !has_pt_interp(&elf),
        "{} has a PT_INTERP header: not static",
        bin.display()
    );
    let out = run(&mut Command::new(bin), "");
    assert_eq!(
        out.status.code(),
        Some(2),
        "cgleak without a command: usage"
    );
    let out = run(Command::new(bin).arg("--version"), "");
    let version = text(&out.stdout);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap();
    let head = text(&head.stdout).trim().to_string();
    assert!(out.status.success(), "{version}{}", text(&out.stderr));
    assert!(
        version.starts_with(&format!("cgleak {} (", env!("CARGO_PKG_VERSION")))
            && version.contains(&head),
        "--version {version:?} does not name version and commit {head}"
    );
}

/// An emulated leaking 3.10 node, made and diagnosed by the static binary, and probed.
fn check_emulated_node(bin: &Path) {
    let tmp = cgleak::host::emulated::tempdir().unwrap();
    let node = tmp.path().join("node");
    let out = run(
        Command::new(bin).arg("emulate").arg(&node).args([
            "--profile",
            "3.10",
            "--pods",
            "4",
            "--kmem",
            // Few enough ids left to be leaking (kmem and many dying alone make it at-risk).
            "--dying",
            "64900",
        ]),
        "",
    );
    assert!(out.status.success(), "emulate: {}", text(&out.stderr));
    let root = node.join("memory");
    let ids = EmulatedFs::open(&node).unwrap().ids_used();
    let out = run(
        Command::new(bin)
            .arg("--root")
            .arg(&root)
            .args(["diagnose", "--ids-used", "-"]),
        &format!("{ids}\n"),
    );
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}{}", text(&out.stderr));
    assert!(report.contains("VERDICT: LEAKING"), "{report}");
    let out = run(
        Command::new(bin).arg("--root").arg(&root).arg("diagnose"),
        "",
    );
    // Without the count it sees the kmem-pinned dying memcgs in /sys/kernel/slab (issue 14):
    // a lower bound, enough to tell the leak.
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("LEAKING") && report.contains("dying             at least"),
        "{report}"
    );
    let out = run(
        Command::new(bin)
            .arg("--root")
            .arg(&root)
            .args(["probe-headroom", "--count", "20"]),
        "",
    );
    assert!(
        out.status.success() && text(&out.stdout).contains("20 of 20"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Man pages and completions name the real commands, and not the hidden `generate`.
fn check_man_pages_and_completions(dist: &Path) {
    let commands = [
        "diagnose",
        "plan",
        "snapshot",
        "repair",
        "resume",
        "rollback",
        "verify",
        "reclaim",
        "demo",
        "emulate",
        "probe-headroom",
    ];
    let read = |p: &Path| {
        let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!s.trim().is_empty(), "{} is empty", p.display());
        assert!(
            !s.contains("generate"),
            "{} shows the hidden generate command",
            p.display()
        );
        s
    };
    let man = read(&dist.join("man/cgleak.1"));
    for c in commands {
        // roff escapes '-' as '\-'.
        let page = format!("cgleak-{c}");
        assert!(
            man.contains(&page.replace('-', "\\-")),
            "cgleak.1 does not list {c}"
        );
        let sub = read(&dist.join(format!("man/{page}.1")));
        assert!(
            sub.contains(".SH OPTIONS"),
            "{page}.1 has no options section"
        );
    }
    for f in ["cgleak.bash", "_cgleak", "cgleak.fish"] {
        let s = read(&dist.join("completions").join(f));
        for c in commands {
            assert!(s.contains(c), "completions/{f} does not offer {c}");
        }
    }
}

/// SHA256SUMS covers every file and matches.
fn check_sums(dist: &Path) {
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let mut listed: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    listed.sort();
    let mut files: Vec<String> = walkdir::WalkDir::new(dist)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != "SHA256SUMS")
        .map(|e| e.path().strip_prefix(dist).unwrap().display().to_string())
        .collect();
    files.sort();
    assert_eq!(listed, files);
    let out = run(
        Command::new("sha256sum")
            .args(["-c", "--quiet", "SHA256SUMS"])
            .current_dir(dist),
        "",
    );
    assert!(
        out.status.success(),
        "sha256sum -c: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn release_script_builds_a_static_binary_with_man_pages_and_completions() {
    let repo = repo();
    let dist = build_release(&repo);
    let bin = dist.join("cgleak");
    check_static_and_version(&bin, &repo);
    check_emulated_node(&bin);
    check_man_pages_and_completions(&dist);
    check_sums(&dist);
}
