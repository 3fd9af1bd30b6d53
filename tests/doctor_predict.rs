//! `cgleak oom --predict` against the real kernel: pod-shaped memcgs below this process's own
//! memcg (`<sandbox>/kubepods/burstable/pod<uid>/<64-hex id>` for pause, app and side), a limit
//! on the pod, helper processes holding anonymous memory with positive oom_score_adj values;
//! the prediction is taken with the built binary, then one helper grows until the kernel kills
//! a task, and the killed pid must be the predicted victim. Runs when the machine allows (root,
//! a writable memcg v1 of its own) and says why when it cannot (tests/common).
//!
//! The helper is a tiny Rust program compiled here with the toolchain's rustc: it names itself
//! (/proc/self/comm), touches N MiB, says "ready", then on "grow N" touches N MiB more. It is
//! started pinned to one CPU with address-space randomisation off, and joins its memcg before
//! exec, so two helpers of the same size have exactly the same rss and page tables: equal
//! scores, which exercise the tie rule.
//!
//! The two tie cases prove the scan order the predictor assumes: the later-created container
//! memcg is scanned last whatever the names sort to and whichever process started first.

mod common;
#[path = "support/emulated_node.rs"]
mod emulated_node;

use common::Sandbox;
use serde_json::Value;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOG_RS: &str = r#"
use std::io::{BufRead, Write};
fn touch(mib: usize) {
    let len = mib << 20;
    let mut v: Vec<u8> = Vec::with_capacity(len);
    let p = v.as_mut_ptr();
    for i in (0..len).step_by(4096) {
        unsafe { p.add(i).write_volatile(1) };
    }
    std::mem::forget(v);
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    std::fs::write("/proc/self/comm", a[1].trim_end_matches('_')).unwrap();
    touch(a[2].parse().unwrap());
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("grow ") {
            touch(n.parse().unwrap());
            writeln!(out, "grown").unwrap();
            out.flush().unwrap();
        }
    }
}
"#;

/// The pod memcg's limit: 24576 pages, 24 points per oom_score_adj unit.
const LIMIT: u64 = 96 << 20;

/// Compile the helper into `dir`.
fn build_hog(dir: &Path) -> PathBuf {
    common::build_helper(dir, "hog", HOG_RS)
}

/// The lowest CPU this process may run on: the helpers are pinned there.
fn first_cpu() -> usize {
    // SAFETY: sched_getaffinity fills the zeroed set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap_or(0)
    }
}

/// open + one write + close with raw system calls (async-signal-safe, for pre_exec).
fn write_raw(path: &CString, value: &[u8]) -> std::io::Result<()> {
    // SAFETY: a NUL-terminated path and a valid buffer; the fd is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, value.as_ptr().cast(), value.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != value.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// One helper process.
struct Hog {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The helpers of one test, killed and reaped on drop (declared after the sandbox, so they are
/// gone before it removes its cgroups).
#[derive(Default)]
struct Hogs(Vec<Hog>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
    }
}

/// A pod-shaped memcg tree in a sandbox, with kubelet-like log and containerd-like state
/// directories that name it.
struct Pod {
    rel: String,
    uid: String,
    names: tempfile::TempDir,
    hog: PathBuf,
    cpu: usize,
}

fn unique_uid() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:08x}-7e57-4c0d-8e11-{:012x}",
        std::process::id(),
        n & 0xffff_ffff_ffff
    )
}

impl Pod {
    /// `containers`: (name, 64-hex id) in creation order.
    fn new(sb: &Sandbox, containers: &[(&str, &str)]) -> Pod {
        let uid = unique_uid();
        let rel = format!("kubepods/burstable/pod{uid}");
        let dir = sb.mkdir(&rel);
        for (_, id) in containers {
            sb.mkdir(&format!("{rel}/{id}"));
        }
        std::fs::write(dir.join("memory.limit_in_bytes"), LIMIT.to_string()).unwrap();
        // Without swap accounting (or swap) there is no memsw file; with it, no swap headroom.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            std::fs::write(&memsw, LIMIT.to_string()).unwrap();
        }
        let names = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(names.path().join(format!("pods/shop_web_{uid}/app"))).unwrap();
        for (name, id) in containers {
            let d = names.path().join(format!("ctd/k8s.io/{id}"));
            std::fs::create_dir_all(&d).unwrap();
            let kind = if *name == "pause" {
                "sandbox"
            } else {
                "container"
            };
            let cfg = serde_json::json!({"annotations": {
                "io.kubernetes.cri.container-type": kind,
                "io.kubernetes.cri.container-name": name,
                "io.kubernetes.cri.sandbox-name": "web",
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-uid": uid,
            }});
            std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
        }
        let hog = build_hog(names.path());
        Pod {
            rel,
            uid,
            names,
            hog,
            cpu: first_cpu(),
        }
    }

    /// Start a helper in container `id` holding `mib` MiB at oom_score_adj `adj`; it joins the
    /// memcg before exec, so everything it faults is charged there.
    fn start(
        &self,
        sb: &Sandbox,
        hogs: &mut Hogs,
        id: &str,
        name: &'static str,
        mib: u32,
        adj: i32,
    ) -> u32 {
        let procs = CString::new(
            sb.cg(&format!("{}/{id}/cgroup.procs", self.rel))
                .as_os_str()
                .as_bytes(),
        )
        .unwrap();
        let adj_path = CString::new("/proc/self/oom_score_adj").unwrap();
        let adj_val = adj.to_string();
        let cpu = self.cpu;
        let mut cmd = Command::new(&self.hog);
        // Same-length arguments: equal helpers lay out their stacks alike.
        cmd.arg(format!("{name:_<8}"))
            .arg(mib.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: the closure only makes system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
                write_raw(&procs, b"0")?;
                write_raw(&adj_path, adj_val.as_bytes())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let pid = child.id();
        let mut line = String::new();
        let ready = stdout.read_line(&mut line);
        hogs.0.push(Hog {
            name,
            child,
            stdin,
            stdout,
        });
        assert!(
            matches!(ready, Ok(n) if n > 0) && line.trim() == "ready",
            "{name} did not start: {line:?}"
        );
        pid
    }

    /// `cgleak oom --predict --format json` on the sandbox: (exit code, report).
    fn predict(&self, sb: &Sandbox) -> (i32, Value) {
        let out = assert_cmd::Command::cargo_bin("cgleak")
            .unwrap()
            .arg("--root")
            .arg(sb.path())
            .args(["oom", "--predict", "--format", "json", "--pods-log-dir"])
            .arg(self.names.path().join("pods"))
            .arg("--containerd-state-dir")
            .arg(self.names.path().join("ctd"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), v)
    }

    /// `cgleak oom` (this node's /dev/kmsg) lists the kill of `pid` with this pod's uid and
    /// names, and the container it was in (`pause`: the sandbox, and the pod recreated).
    fn assert_listed(&self, sb: &Sandbox, pid: u32, container: &str) {
        let out = assert_cmd::Command::cargo_bin("cgleak")
            .unwrap()
            .arg("--root")
            .arg(sb.path())
            .args([
                "oom",
                "--since",
                "10m",
                "--format",
                "json",
                "--pods-log-dir",
            ])
            .arg(self.names.path().join("pods"))
            .arg("--containerd-state-dir")
            .arg(self.names.path().join("ctd"))
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "kills found: {v:#}");
        let k = v["kills"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["victim"]["pid"] == pid)
            .unwrap_or_else(|| panic!("cgleak oom does not list the kill of {pid}: {v:#}"));
        let id = &k["identity"];
        assert_eq!(id["pod_uid"], self.uid.as_str(), "{k:#}");
        assert_eq!(
            (&id["namespace"], &id["pod_name"]),
            (&"shop".into(), &"web".into())
        );
        if container == "pause" {
            assert_eq!(id["sandbox"], true, "{k:#}");
            assert_eq!(k["sandbox_killed"], true, "{k:#}");
        } else {
            assert_eq!(id["container_name"], container, "{k:#}");
            assert_eq!(k["sandbox_killed"], false, "{k:#}");
        }
        assert!(
            k["task_memcg"].as_str().unwrap().contains(&self.rel),
            "{k:#}"
        );
    }

    /// The pod's entry of the report.
    fn entry<'a>(&self, v: &'a Value) -> &'a Value {
        v["memcgs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["path"] == self.rel.as_str())
            .unwrap_or_else(|| panic!("no prediction for {}: {v:#}", self.rel))
    }

    /// OOM kills in the pod: memory.oom_control's oom_kill (4.13 on) of the pod memcg and its
    /// containers. On v1 the kernel counts a kill in the victim's memcg only, not its parents
    /// (seen on 6.18: the pod's own counter stays 0), so the containers are summed.
    fn oom_kills(&self, sb: &Sandbox) -> u64 {
        let pod = sb.cg(&self.rel);
        let mut dirs = vec![pod.clone()];
        dirs.extend(
            std::fs::read_dir(&pod)
                .unwrap()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
        dirs.iter()
            .map(|d| {
                let s = std::fs::read_to_string(d.join("memory.oom_control")).unwrap();
                s.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .expect("oom_kill in memory.oom_control (kernel 4.13 or later)")
            })
            .sum()
    }
}

/// Make `grower` allocate 1 MiB at a time until the pod's first OOM kill; returns the pid the
/// kernel killed (checked to have died of SIGKILL, and to be the only one).
fn drive(pod: &Pod, sb: &Sandbox, hogs: &mut Hogs, grower: &str) -> u32 {
    let g = hogs.0.iter().position(|h| h.name == grower).unwrap();
    let before = pod.oom_kills(sb);
    for _ in 0..(LIMIT >> 20) * 2 {
        let h = &mut hogs.0[g];
        if writeln!(h.stdin, "grow 1")
            .and_then(|()| h.stdin.flush())
            .is_err()
        {
            break; // the grower itself was killed
        }
        let mut line = String::new();
        let _ = h.stdout.read_line(&mut line);
        if pod.oom_kills(sb) > before || line.is_empty() {
            break;
        }
    }
    assert_eq!(pod.oom_kills(sb), before + 1, "exactly one OOM kill");
    let t = Instant::now();
    loop {
        let dead: Vec<(u32, Option<i32>)> = hogs
            .0
            .iter_mut()
            .filter_map(|h| {
                let pid = h.child.id();
                h.child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|st| (pid, st.signal()))
            })
            .collect();
        if !dead.is_empty() {
            assert_eq!(dead.len(), 1, "one task killed: {dead:?}");
            assert_eq!(
                dead[0].1,
                Some(libc::SIGKILL),
                "killed by SIGKILL: {dead:?}"
            );
            return dead[0].0;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the OOM victim never exited"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Print the figures of the prediction (the report quotes them).
fn show(case: &str, e: &Value) {
    let c = |k: &str| {
        let x = &e[k];
        format!(
            "{} pid {} points {} (rss {} swap {} pt {} adj {})",
            x["comm"],
            x["pid"],
            x["points"],
            x["rss_pages"],
            x["swap_pages"],
            x["pgtables_pages"],
            x["oom_score_adj"]
        )
    };
    eprintln!(
        "{case}: totalpages {} victim {} runner-up {} margin {} tie {} warning {}",
        e["totalpages"],
        c("victim"),
        c("runner_up"),
        e["margin_points"],
        e["tie"],
        e["warning"]["kind"]
    );
}

const ID_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const ID_B: &str = "5555555555555555555555555555555555555555555555555555555555555555";
const ID_C: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// All at 999: the largest (the app) is predicted and killed as it grows. No warning.
#[test]
fn real_predict_all_999_kills_the_largest() {
    let Some(sb) = common::real_kernel("real_predict_all_999_kills_the_largest") else {
        return;
    };
    let mut hogs = Hogs::default();
    let pod = Pod::new(&sb, &[("pause", ID_A), ("app", ID_B), ("side", ID_C)]);
    pod.start(&sb, &mut hogs, ID_A, "pause", 1, 999);
    let app = pod.start(&sb, &mut hogs, ID_B, "app", 40, 999);
    pod.start(&sb, &mut hogs, ID_C, "side", 10, 999);
    let (code, v) = pod.predict(&sb);
    let e = pod.entry(&v);
    show("all 999", e);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(e["victim"]["pid"], app);
    assert_eq!(e["totalpages"], LIMIT / 4096);
    assert!(e["warning"].is_null());
    assert_eq!(e["identity"]["pod_uid"], pod.uid.as_str());
    let killed = drive(&pod, &sb, &mut hogs, "app");
    assert_eq!(killed, app);
    pod.assert_listed(&sb, killed, "app");
}

/// pause 999 / app 2 / side 999: the adj term outweighs the app's size and the side is
/// predicted (a sidecar warning, exit 1) and killed while the app grows.
#[test]
fn real_predict_adj_2_app_loses_to_the_sidecar() {
    let Some(sb) = common::real_kernel("real_predict_adj_2_app_loses_to_the_sidecar") else {
        return;
    };
    let mut hogs = Hogs::default();
    let pod = Pod::new(&sb, &[("pause", ID_A), ("app", ID_B), ("side", ID_C)]);
    pod.start(&sb, &mut hogs, ID_A, "pause", 1, 999);
    let app = pod.start(&sb, &mut hogs, ID_B, "app", 40, 2);
    let side = pod.start(&sb, &mut hogs, ID_C, "side", 10, 999);
    let (code, v) = pod.predict(&sb);
    let e = pod.entry(&v);
    show("pause 999 / app 2 / side 999", e);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(e["victim"]["pid"], side);
    assert_eq!(e["warning"]["kind"], "sidecar");
    assert_eq!(e["warning"]["main"]["pid"], app);
    assert_eq!(e["victim"]["identity"]["container_name"], "side");
    let killed = drive(&pod, &sb, &mut hogs, "app");
    assert_eq!(killed, side);
    pod.assert_listed(&sb, killed, "side");
}

/// Equal pause and app; pause's container made last, but named to sort first and its process
/// started first: on 6.18 the last found wins, so pause dies (a sandbox warning, exit 1).
#[test]
fn real_predict_tie_pause_scanned_last_dies() {
    let Some(sb) = common::real_kernel("real_predict_tie_pause_scanned_last_dies") else {
        return;
    };
    let mut hogs = Hogs::default();
    let pod = Pod::new(&sb, &[("app", ID_C), ("pause", ID_A), ("side", ID_B)]);
    let pause = pod.start(&sb, &mut hogs, ID_A, "pause", 8, 999);
    pod.start(&sb, &mut hogs, ID_C, "app", 8, 999);
    pod.start(&sb, &mut hogs, ID_B, "side", 4, 0);
    let (code, v) = pod.predict(&sb);
    let e = pod.entry(&v);
    show("tie, pause last in scan order", e);
    assert_eq!(e["victim"]["pid"], pause, "{e:#}");
    assert_eq!(e["tie"], true, "{e:#}");
    assert_eq!(e["margin_points"], 0);
    assert_eq!(e["warning"]["kind"], "sandbox");
    assert_eq!(code, 1);
    let killed = drive(&pod, &sb, &mut hogs, "side");
    assert_eq!(killed, pause);
    pod.assert_listed(&sb, killed, "pause");
}

/// The mirror case: pause's container made first (named to sort last), the app's process
/// started first: the app is the last found and dies; no warning.
#[test]
fn real_predict_tie_pause_scanned_first_survives() {
    let Some(sb) = common::real_kernel("real_predict_tie_pause_scanned_first_survives") else {
        return;
    };
    let mut hogs = Hogs::default();
    let pod = Pod::new(&sb, &[("pause", ID_C), ("app", ID_A), ("side", ID_B)]);
    let app = pod.start(&sb, &mut hogs, ID_A, "app", 8, 999);
    pod.start(&sb, &mut hogs, ID_C, "pause", 8, 999);
    pod.start(&sb, &mut hogs, ID_B, "side", 4, 0);
    let (code, v) = pod.predict(&sb);
    let e = pod.entry(&v);
    show("tie, pause first in scan order", e);
    assert_eq!(e["victim"]["pid"], app, "{e:#}");
    assert_eq!(e["tie"], true, "{e:#}");
    assert!(e["warning"].is_null());
    assert_eq!(code, 0);
    let killed = drive(&pod, &sb, &mut hogs, "side");
    assert_eq!(killed, app);
    pod.assert_listed(&sb, killed, "app");
}

/// On an emulated node (no /proc of its own: every listed task has "exited") the report still
/// has its shape, its kernel's rules and notes, and exits 0; nothing there is a warning.
#[test]
fn emulated_node_report_shape_and_exit_codes() {
    let node = emulated_node::Node::new("3.10", 3, 0, false);
    let (code, v) = node.json(&["oom", "--predict", "--format", "json"]);
    assert_eq!(code, 0, "{v:#}");
    assert!(v["kernel"].as_str().unwrap().starts_with("3.10"), "{v:#}");
    assert_eq!(v["era"]["floor"], true);
    assert_eq!(v["era"]["tie"], "first_found");
    assert!(v["rules"].as_array().unwrap().len() >= 5);
    assert_eq!(v["cgroup"], "v1");
    for m in v["memcgs"].as_array().unwrap() {
        assert!(m["victim"].is_null(), "{m:#}");
        assert!(m["totalpages"].as_u64().unwrap() > 0);
    }
    let (code, out, _) = node.run(&["oom", "--predict", "--format", "prometheus"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("# TYPE cgleak_oom_predict_last_run_timestamp_seconds gauge"),
        "{out}"
    );
    let (code, out, _) = node.run(&["oom", "--predict", "--format", "npd"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("OK: ") && out.len() <= 81, "{out}");
    let (code, out, _) = node.run(&["oom", "--predict"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("OOM victim prediction: kernel 3.10"),
        "{out}"
    );
}

/// Could not tell: no pods cgroup there (exit 2 in every format); bad arguments exit 2 too.
#[test]
fn missing_tree_and_bad_arguments_exit_2() {
    let node = emulated_node::Node::new("5.10", 1, 0, false);
    for fmt in ["text", "json", "npd", "prometheus"] {
        let (code, out, err) =
            node.run(&["--kubepods", "nope", "oom", "--predict", "--format", fmt]);
        assert_eq!(code, 2, "{fmt}: {out}{err}");
        assert!(err.contains("no pods cgroup \"nope\""), "{err}");
        if fmt == "npd" {
            assert!(out.starts_with("UNKNOWN: "), "{out}");
        }
    }
    let (code, _, err) = node.run(&["oom", "--predict", "--textfile", "/tmp/x.prom"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = node.run(&["oom", "--predict", "--since", "1h"]);
    assert_eq!(code, 2, "{err}");
}
