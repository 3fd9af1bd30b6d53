//! `cgleak memory` end to end. Against the real kernel (when the machine allows, tests/common):
//! a container memcg in a sandbox holds a process that wrote a file and read it twice (active
//! page cache) and one holding anonymous memory; the working set the command reports must be
//! usage - total_inactive_file of the same memcg read right after, and lowering the limit to
//! usage - reclaimable + a margin must succeed and free about the reclaimable amount. Without
//! root: the report's shape, targets and exit codes on an emulated node.

mod common;
#[path = "support/emulated_node.rs"]
mod emulated_node;

use common::Sandbox;
use serde_json::Value;
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const MIB: u64 = 1 << 20;
/// The file read twice, and the anonymous memory held.
const FILE_MIB: u64 = 64;
const ANON_MIB: u64 = 24;

const ANON_RS: &str = r#"
use std::io::{Read, Write};
fn main() {
    let mib: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let len = mib << 20;
    let mut v: Vec<u8> = Vec::with_capacity(len);
    let p = v.as_mut_ptr();
    for i in (0..len).step_by(4096) {
        unsafe { p.add(i).write_volatile(1) };
    }
    std::mem::forget(v);
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}
"#;

/// Compile the helper into `dir`.
fn build_anon(dir: &Path) -> PathBuf {
    common::build_helper(dir, "anon", ANON_RS)
}

/// Children of this test, killed and reaped on drop (declared after the sandbox).
#[derive(Default)]
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `cmd` inside the memcg `cg` (it joins before exec: everything it charges is there)
/// and wait for its "ready" line.
fn start_in(kids: &mut Kids, cg: &Path, cmd: &mut Command) {
    let procs = CString::new(cg.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: the closure makes system calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if n != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    kids.0.push(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "helper did not start");
}

fn stat_value(stat: &str, key: &str) -> u64 {
    stat.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} in memory.stat"))
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// `cgleak --root <sandbox> memory [ARGS] --format json`.
fn memory_json(sb: &Sandbox, args: &[&str]) -> (i32, Value) {
    let out = assert_cmd::Command::cargo_bin("cgleak")
        .unwrap()
        .arg("--root")
        .arg(sb.path())
        .arg("memory")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn real_memory_working_set_and_reclaim() {
    let Some(sb) = common::real_kernel("real_memory_working_set_and_reclaim") else {
        return;
    };
    let mut kids = Kids::default();
    let uid = format!("{:08x}-7e57-4c0d-8e11-00000000beef", std::process::id());
    let id = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4";
    let rel = format!("kubepods/burstable/pod{uid}/{id}");
    let cg = sb.mkdir(&rel);
    // A disk file (not tmpfs: that would be shmem), written from inside the memcg so its page
    // cache is charged there, flushed (clean) and read twice (the second access activates it).
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    let file = tmp.path().join("data");
    let script = format!(
        "dd if=/dev/urandom of='{f}' bs=1M count={FILE_MIB} conv=fsync 2>/dev/null && \
         cat '{f}' >/dev/null && cat '{f}' >/dev/null && echo ready && exec sleep 3600",
        f = file.display()
    );
    start_in(&mut kids, &cg, Command::new("sh").arg("-c").arg(script));
    let anon = build_anon(tmp.path());
    start_in(
        &mut kids,
        &cg,
        Command::new(&anon).arg(ANON_MIB.to_string()),
    );

    let (code, v) = memory_json(&sb, &[]);
    let usage = read_u64(&cg.join("memory.usage_in_bytes"));
    let stat = std::fs::read_to_string(cg.join("memory.stat")).unwrap();
    let inactive = stat_value(&stat, "total_inactive_file");
    assert_eq!(code, 0, "{v:#}");
    let c = &v["pods"][0]["containers"][0]["figures"];
    let ws = c["working_set_bytes"].as_u64().unwrap();
    let expect = usage.saturating_sub(inactive);
    let reclaimable = c["reclaimable_bytes"].as_u64().unwrap();
    eprintln!(
        "memory: usage {} wset {ws} (usage - total_inactive_file read after: {expect}) rss {} \
         active_file {} inactive_file {} dirty {} reclaimable {reclaimable}",
        c["usage_bytes"],
        c["rss_bytes"],
        c["active_file_bytes"],
        c["inactive_file_bytes"],
        c["dirty_bytes"]
    );
    assert!(
        ws.abs_diff(expect) <= 2 * MIB,
        "working set {ws} vs {expect}"
    );
    assert!(c["rss_bytes"].as_u64().unwrap() >= ANON_MIB * MIB, "{c:#}");
    assert!(
        c["active_file_bytes"].as_u64().unwrap() >= (FILE_MIB - 8) * MIB,
        "{c:#}"
    );
    assert!(reclaimable.abs_diff(FILE_MIB * MIB) <= 8 * MIB, "{c:#}");
    let why = v["pods"][0]["containers"][0]["why"].as_str().unwrap();
    assert!(
        why.contains("of it is active page cache, which the kernel can reclaim")
            && why.contains("but kubelet counts as used"),
        "{why}"
    );

    lower_the_limit(&sb, &cg, id, reclaimable);
}

/// Lower the container's limit to usage - reclaimable + a margin: the kernel must take it and
/// free about the reclaimable amount; the report then shows the limit.
fn lower_the_limit(sb: &Sandbox, cg: &Path, id: &str, reclaimable: u64) {
    // The kernel frees about the reclaimable amount when the limit asks for it.
    let margin = 8 * MIB;
    let before = read_u64(&cg.join("memory.usage_in_bytes"));
    let target = before - reclaimable + margin;
    std::fs::write(cg.join("memory.limit_in_bytes"), target.to_string())
        .unwrap_or_else(|e| panic!("lowering the limit to {target}: {e}"));
    let after = read_u64(&cg.join("memory.usage_in_bytes"));
    eprintln!(
        "memory: limit {target} (usage {before} - reclaimable {reclaimable} + {margin}): usage \
         {before} -> {after}, freed {}",
        before - after
    );
    assert!(
        after <= target,
        "usage {after} above the new limit {target}"
    );
    assert!(
        (before - after).abs_diff(reclaimable) <= margin + 2 * MIB,
        "freed {}",
        before - after
    );
    // Limited now: the report shows the limit and the distance to it.
    let (_, v) = memory_json(sb, &[id]);
    let c = &v["pods"][0]["containers"][0]["figures"];
    assert_eq!(c["limit_bytes"], target);
    assert!(c["to_limit_bytes"].as_i64().unwrap() >= 0, "{c:#}");
}

/// Without root: an emulated node's report, a target that matches nothing and a bad threshold
/// (exit 2), and the text and Prometheus forms.
#[test]
fn emulated_node_memory_report() {
    let node = emulated_node::Node::new("5.10", 2, 0, false);
    let (code, v) = node.json(&["memory", "--format", "json"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["cgroup"], "v1");
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{v:#}");
    assert!(!pods[0]["containers"].as_array().unwrap().is_empty());
    assert!(v["node"]["capacity_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["node"]["eviction_hard_bytes"], 100 * MIB);
    let uid = pods[0]["identity"]["pod_uid"].as_str().unwrap().to_string();
    let (code, v) = node.json(&["memory", &uid[..8], "--format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(v["pods"].as_array().unwrap().len(), 1);
    let (code, _, err) = node.run(&["memory", "no-such-pod"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("matches \"no-such-pod\""), "{err}");
    let (code, _, err) = node.run(&["memory", "--eviction-hard", "lots"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = node.run(&["memory", "--eviction-hard", "5%"]);
    assert_eq!(code, 0);
    assert!(out.contains("(pod total)"), "{out}");
    let (code, out, _) = node.run(&["memory", "--format", "prometheus"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("# TYPE cgleak_memory_working_set_bytes gauge"),
        "{out}"
    );
    assert!(
        out.contains("cgleak_node_eviction_distance_bytes "),
        "{out}"
    );
}
