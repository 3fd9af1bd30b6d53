//! The syscall floor of the release binary: dist/cgleak (static glibc) must run on RHEL/CentOS
//! 7's kernel, 3.10. This test runs it under a seccomp filter that makes every x86-64 system call
//! added after 3.10 fail with ENOSYS, as 3.10 itself answers, and asserts the same results as
//! without the filter: `--help`, `--version`, `demo`, and `emulate` + `diagnose`, `plan`,
//! `repair --yes`, `verify` and `diagnose` again on an emulated 3.10 node (exit codes, output,
//! and the node's files after each step).
//!
//! Why a number cut-off: x86-64 system call numbers are handed out in order, and 3.10's
//! arch/x86/syscalls/syscall_64.tbl ends at 313 (finit_module, 3.8); 314 (sched_setattr) came in
//! 3.14, and every later one (renameat2 316 in 3.15, getrandom 318 and memfd_create 319 in
//! 3.17, bpf 321, execveat 322, userfaultfd 323, membarrier 324, mlock2 325, copy_file_range
//! 326, preadv2/pwritev2 327-328, pkey_* 329-331, statx 332 in 4.11, rseq 334, pidfd_* 424,
//! 434, 438, io_uring_* 425-427, clone3 435, close_range 436, openat2 437, faccessat2 439,
//! process_madvise 440, epoll_pwait2 441, mount_setattr 442, landlock_* 444-446, futex_waitv
//! 449, ...) has a higher number (syscalls(2), "Kernel" column; packaging/SYSCALL-FLOOR.md). So the
//! filter answers ENOSYS to every number >= 314, and to the x32 ABI (bit 30), which a 3.10 RHEL
//! kernel does not enable either. One flag is also older-kernel-faithful: O_TMPFILE (3.11) in
//! open/openat: 3.10 ignores the unknown bit and the directory open fails with EISDIR, so the
//! filter answers EISDIR. Other new flags of old calls are not emulated (see the docs page).
//!
//! The filter is installed in the child between fork and exec (pre_exec), with
//! PR_SET_NO_NEW_PRIVS (needed to install a filter without CAP_SYS_ADMIN, and harmless as root)
//! and PR_SET_SECCOMP; the child then checks it took effect (getrandom must fail with ENOSYS,
//! getpid must work) before exec, so a filter that did not load fails the spawn. The test
//! fails, never skips, when dist/ cannot be built or the filter cannot be installed.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Linux's `struct sock_filter` (linux/filter.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// Linux's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

// Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
/// BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// AUDIT_ARCH_X86_64 (linux/audit.h): EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// __X32_SYSCALL_BIT (asm/unistd.h).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The first x86-64 system call number 3.10 does not have (sched_setattr, 3.14).
const FIRST_AFTER_3_10: u32 = 314;
/// __O_TMPFILE (asm-generic/fcntl.h, 020000000), added in 3.11.
const O_TMPFILE_BIT: u32 = 0o20000000;
// Offsets in `struct seccomp_data`: nr, arch, instruction_pointer, args[6] (u64, little-endian:
// the low half of args[i] at 16 + 8 i).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The 3.10 floor as a seccomp program.
fn floor_program() -> Vec<SockFilter> {
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let eisdir = SECCOMP_RET_ERRNO | libc::EISDIR as u32;
    vec![
        /* 0 */ stmt(BPF_LD_W_ABS, ARCH),
        // A foreign ABI (i386 int 0x80) would bypass number checks made for x86-64: kill.
        /* 1 */
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        /* 2 */ stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        /* 3 */ stmt(BPF_LD_W_ABS, NR),
        /* 4 */ jump(BPF_JSET_K, X32_SYSCALL_BIT, 9, 0), // -> 14 ENOSYS
        /* 5 */ jump(BPF_JGE_K, FIRST_AFTER_3_10, 8, 0), // -> 14 ENOSYS
        /* 6 */ jump(BPF_JEQ_K, libc::SYS_openat as u32, 2, 0), // -> 9 flags in args[2]
        /* 7 */ jump(BPF_JEQ_K, libc::SYS_open as u32, 3, 0), // -> 11 flags in args[1]
        /* 8 */ stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        /* 9 */ stmt(BPF_LD_W_ABS, arg_low(2)),
        /* 10 */ jump(BPF_JSET_K, O_TMPFILE_BIT, 2, 4), // -> 13 EISDIR, else 15 allow
        /* 11 */ stmt(BPF_LD_W_ABS, arg_low(1)),
        /* 12 */ jump(BPF_JSET_K, O_TMPFILE_BIT, 0, 2), // -> 13 EISDIR, else 15 allow
        /* 13 */ stmt(BPF_RET_K, eisdir),
        /* 14 */ stmt(BPF_RET_K, enosys),
        /* 15 */ stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// In the forked child: install the filter, then prove it works. Only async-signal-safe calls.
fn install_floor(prog: &[SockFilter]) -> io::Result<()> {
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: prctl with integer arguments and a pointer to a live sock_fprog.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const SockFprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut b = [0u8; 1];
        let r = libc::syscall(libc::SYS_getrandom, b.as_mut_ptr(), 1usize, 0u32);
        if r != -1 || *libc::__errno_location() != libc::ENOSYS {
            return Err(io::Error::other(
                "seccomp floor: getrandom did not fail with ENOSYS",
            ));
        }
        if libc::syscall(libc::SYS_getpid) <= 0 {
            return Err(io::Error::other("seccomp floor: getpid blocked"));
        }
    }
    Ok(())
}

/// What differs between two runs of the same steps whatever the kernel: the run's temp dir
/// (`<DIR>`), demo's own temp dir in /dev/shm (`<SHM>`), the emulated node's random boot id, the
/// journal's wall-clock times, and measured times and estimates (every decimal number with a point, as `#`),
/// and which task move was the slowest (timing decides it).
fn normalize(text: &str, dir: &str) -> String {
    let t = text.replace(dir, "<DIR>");
    let t = mask_slowest_move(&t);
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/dev/shm/.tmp") {
            out.push_str("<SHM>");
            rest = r.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        } else if let Some(after) = rest.strip_prefix("_at\":") {
            // The journal's wall-clock times (started_at, taken_at: Unix seconds).
            out.push_str("_at\":<TIME>");
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        } else if let Some(after) = rest.strip_prefix("boot_id") {
            // "boot_id": "uuid" or "boot_id":"uuid": keep the key, drop the value.
            let end = after.find([',', '\n', '}']).unwrap_or(after.len());
            out.push_str("boot_id:<BOOT>");
            rest = &after[end..];
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..end];
            out.push_str(if num.contains('.') { "#" } else { num });
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The slowest task move is measured: its text line and its JSON object become `<SLOWEST>`.
fn mask_slowest_move(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(|l| match l.find("slowest task move") {
            Some(i) => format!("{}<SLOWEST>\n", &l[..i]),
            None => format!("{l}\n"),
        })
        .collect();
    if !text.ends_with('\n') {
        out.pop();
    }
    let key = "\"longest_move\":";
    let mut from = 0;
    while let Some(i) = out[from..].find(key).map(|i| from + i) {
        let value = i + key.len();
        let brace = value + out[value..].len() - out[value..].trim_start().len();
        from = value;
        if out[brace..].starts_with('{') {
            let end = out[brace..].find('}').map_or(out.len(), |e| brace + e + 1);
            out.replace_range(value..end, "<SLOWEST>");
        }
    }
    out
}

/// One run's observable result, normalized (see `normalize`).
#[derive(Debug, PartialEq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(bin: &Path, args: &[&str], dir: &Path, floor: bool) -> Outcome {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("TMPDIR", dir)
        .stdin(Stdio::null());
    if floor {
        let prog = floor_program();
        // SAFETY: the hook only calls prctl/syscall (async-signal-safe) on memory made before fork.
        unsafe { cmd.pre_exec(move || install_floor(&prog)) };
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot start {} {args:?} (floor {floor}): {e}",
            bin.display()
        )
    });
    let d = dir.display().to_string();
    let norm = |b: &[u8]| normalize(&String::from_utf8_lossy(b), &d);
    Outcome {
        code: out.status.code(),
        stdout: norm(&out.stdout),
        stderr: norm(&out.stderr),
    }
}

/// Every file below `dir` (relative path -> contents, normalized).
fn files(dir: &Path) -> BTreeMap<String, String> {
    let d = dir.display().to_string();
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        // Lock files hold the writer's real pid (the emulator's intent log, the state lock).
        .filter(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().ends_with("lock"))
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            let body = std::fs::read(e.path()).unwrap();
            (rel, normalize(&String::from_utf8_lossy(&body), &d))
        })
        .collect()
}

/// The steps run on one emulated node, in order.
fn steps() -> Vec<Vec<&'static str>> {
    let root = "node/memory";
    let st = "state";
    vec![
        vec!["--help"],
        vec!["--version"],
        vec!["demo"],
        vec![
            "emulate",
            "node",
            "--profile",
            "3.10",
            "--pods",
            "6",
            "--kmem",
        ],
        vec!["--root", root, "diagnose", "--ids-used", "40000"],
        vec![
            "--root",
            root,
            "plan",
            "--state-dir",
            st,
            "--ids-used",
            "40000",
        ],
        vec![
            "--root",
            root,
            "repair",
            "--yes",
            "--state-dir",
            st,
            "--ids-used",
            "40000",
        ],
        vec!["--root", root, "verify", "--state-dir", st],
        vec!["--root", root, "diagnose", "--ids-used", "40000"],
    ]
}

/// Run every step in a fresh temp dir; the outcomes and the files after each step.
fn session(bin: &Path, floor: bool) -> Vec<(Outcome, BTreeMap<String, String>)> {
    let tmp = tempfile::tempdir().unwrap();
    steps()
        .iter()
        .map(|args| {
            let o = run(bin, args, tmp.path(), floor);
            (o, files(tmp.path()))
        })
        .collect()
}

fn build_release(repo: &Path) -> PathBuf {
    let out = Command::new(repo.join("scripts/release.sh"))
        .current_dir(repo)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start scripts/release.sh");
    assert!(
        out.status.success(),
        "scripts/release.sh FAILED: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    repo.join("dist/cgleak")
}

#[test]
fn the_floor_filter_loads_and_is_in_force() {
    // install_floor's own check (getrandom ENOSYS, getpid allowed) runs in the child: a filter
    // that does not load or does not bite fails the spawn here.
    let prog = floor_program();
    let mut cmd = Command::new("/bin/true");
    // SAFETY: as in `run`.
    unsafe { cmd.pre_exec(move || install_floor(&prog)) };
    let st = cmd
        .status()
        .expect("the floor filter could not be installed");
    assert!(st.success(), "/bin/true under the floor: {st}");
}

#[test]
fn release_binary_gives_the_same_results_on_the_3_10_syscall_floor() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = build_release(&repo);
    let plain = session(&bin, false);
    let floored = session(&bin, true);
    for (i, args) in steps().iter().enumerate() {
        let ((po, pf), (fo, ff)) = (&plain[i], &floored[i]);
        assert!(
            po.code.is_some(),
            "step {args:?} died on a signal without the filter: {po:?}"
        );
        assert_eq!(
            po, fo,
            "step {args:?}: different result under the 3.10 floor"
        );
        let differ: Vec<&String> = pf
            .keys()
            .chain(ff.keys())
            .filter(|k| pf.get(*k) != ff.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "step {args:?}: different files under the 3.10 floor: {differ:?}"
        );
    }
    // The node was really repaired (not two equal failures).
    let repair = &plain[6].0;
    assert_eq!(repair.code, Some(0), "repair --yes: {repair:?}");
    assert_eq!(plain[2].0.code, Some(0), "demo: {:?}", plain[2].0);
}
