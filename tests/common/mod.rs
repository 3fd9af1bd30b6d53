//! Support for tests that run against the real kernel's memory cgroup v1 hierarchy.
//!
//! Use [`real_kernel`] at the start of such a test: it gives a [`Sandbox`] (a throw-away cgroup
//! below this process's own memory cgroup, removed on drop) or `None` when the machine cannot
//! run the test (not root, no memory v1 hierarchy, own cgroup not writable). Every call is
//! recorded as `RAN <name>` or `SKIP <name>: <reason>` in the file named by `CGLEAK_REAL_LOG`,
//! so a CI run can tell how many real-kernel tests actually ran. Under `CI=true` on a machine
//! that could run them, a test that cannot make its sandbox fails instead (see skip.rs).
#![allow(dead_code)]

mod sandbox;
mod skip;

pub use sandbox::Sandbox;
use skip::{decide, Decision, Machine};

use std::io::Write;

/// Environment variable naming the file real-kernel tests record RAN/SKIP lines in.
pub const REAL_LOG_ENV: &str = "CGLEAK_REAL_LOG";

fn log_line(line: &str) {
    let Some(path) = std::env::var_os(REAL_LOG_ENV) else {
        return;
    };
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    match f {
        // One write(2) per line so parallel tests do not interleave within a line.
        Ok(mut f) => {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        Err(e) => eprintln!("{REAL_LOG_ENV}={}: {e}", path.to_string_lossy()),
    }
}

/// A sandbox for the real-kernel test `test_name`, or None (with the reason printed and logged)
/// when real-kernel tests cannot run here. Panics under CI where they could (see skip.rs).
pub fn real_kernel(test_name: &str) -> Option<Sandbox> {
    let (root, memcg) = sandbox::machine();
    let made = match &memcg {
        Ok(own) if root => Some(Sandbox::create_in(own, test_name)),
        _ => None,
    };
    let machine = Machine {
        root,
        memcg: memcg.map(|_| ()),
    };
    let setup = match &made {
        Some(Err(why)) => Err(why.clone()),
        _ => Ok(()),
    };
    match decide(skip::ci(), &machine, setup) {
        Decision::Run => {
            log_line(&format!("RAN {test_name}"));
            made.and_then(Result::ok)
        }
        Decision::Skip(reason) => {
            eprintln!("SKIP real-kernel test {test_name}: {reason}");
            log_line(&format!("SKIP {test_name}: {reason}"));
            None
        }
        Decision::Fail(reason) => {
            log_line(&format!("SKIP {test_name}: {reason}"));
            panic!("real-kernel test {test_name} could not run: {reason}");
        }
    }
}

/// Compile a one-file Rust helper program (`src`, written to `dir/<name>.rs`) into
/// `dir/<name>` with the rustc next to the cargo running the tests (or PATH's).
pub fn build_helper(dir: &std::path::Path, name: &str, src: &str) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.rs"));
    std::fs::write(&file, src).unwrap();
    let rustc = std::env::var_os("CARGO")
        .map(|c| std::path::Path::new(&c).with_file_name("rustc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from("rustc"));
    let out = dir.join(name);
    let st = std::process::Command::new(&rustc)
        .args(["-O", "-o"])
        .arg(&out)
        .arg(&file)
        .status()
        .unwrap_or_else(|e| panic!("run {}: {e}", rustc.display()));
    assert!(st.success(), "compiling the helper {name} failed");
    out
}
