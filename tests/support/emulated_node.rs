//! Shared by the diagnose CLI tests (tests/fleet.rs, tests/diagnose_cli.rs): run the cgleak
//! binary, and an emulated node made by `cgleak emulate` (what an operator rehearses on), in
//! /dev/shm, removed on drop.
#![allow(dead_code)]

use assert_cmd::Command;
use cgleak::host::emulated::EmulatedFs;
use serde_json::Value;
use std::path::PathBuf;

/// Run this build's cgleak: (exit code, stdout, stderr).
pub fn cgleak(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("cgleak")
        .unwrap()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// An emulated node.
pub struct Node {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    /// Its `--root` (the memory hierarchy).
    pub root: String,
}

impl Node {
    /// `cgleak emulate DIR --profile P --pods N --dying D [--kmem]`.
    pub fn new(profile: &str, pods: u32, dying: u64, kmem: bool) -> Node {
        let dir = cgleak::host::emulated::tempdir().unwrap();
        let base = dir.path().join("node");
        let (pods, dying) = (pods.to_string(), dying.to_string());
        let mut args = vec!["emulate", base.to_str().unwrap(), "--profile", profile];
        args.extend(["--pods", &pods, "--dying", &dying]);
        if kmem {
            args.push("--kmem");
        }
        let (code, _, err) = cgleak(&args);
        assert_eq!(code, 0, "{err}");
        Node {
            root: base.join("memory").display().to_string(),
            base,
            _dir: dir,
        }
    }

    /// The node opened as the library sees it.
    pub fn emu(&self) -> EmulatedFs {
        EmulatedFs::open(&self.base).unwrap()
    }

    /// `cgleak --root <node> ARGS`.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--root", self.root.as_str()];
        all.extend_from_slice(args);
        cgleak(&all)
    }

    /// `cgleak --root <node> diagnose EXTRA`.
    pub fn diagnose(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["diagnose"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// [`Node::run`] whose stdout is JSON: (exit code, the value).
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let (code, out, err) = self.run(args);
        let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        (code, v)
    }
}
