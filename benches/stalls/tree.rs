//! The benchmark's node: a kubelet-shaped tree (`cgleak::demo::fixture`, the same as the
//! roundtrip benchmark's) below the bench's own memory cgroup, whose containers hold real
//! memory, and the bystander probes around it.
//!
//! Each app container runs one holder (see `roles.rs`) with `anon` MiB of touched anonymous
//! memory and a quarter of that in clean page cache, capped at half the container's limit so no
//! container is near its limit; a pause container holds only its process (as a real pause, a
//! megabyte or two). One BestEffort container also holds the big process (`big` MiB). The
//! kubepods limit is raised where the fixture's would not fit what the tree holds.
//!
//! Everything this starts is killed and reaped on drop, each only through its own unreaped
//! `Child` (no recycled pid is ever hit), before the sandbox removes the cgroups.

use crate::sandbox::Sandbox;
use crate::{common, roles};
use cgleak::demo::fixture::{self, FixtureCgroup, FixtureSpec};
use cgleak::host::kernel::KernelFs;
use cgleak::host::{knob, Hierarchy};
use cgleak::model::Snapshot;
use cgleak::scan;
use nix::libc;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

const MIB: u64 = 1 << 20;

/// What one tree holds.
#[derive(Clone, Copy)]
pub struct Size {
    pub pods: usize,
    /// Anonymous memory per app container (MiB); page cache is a quarter of it.
    pub anon_mib: u64,
    /// The big process (MiB of anonymous memory).
    pub big_mib: u64,
}

/// What a holder is given: anonymous bytes, and its range of the cache file.
#[derive(Clone, Copy, Default)]
struct Hold {
    anon: u64,
    offset: u64,
    cache: u64,
}

/// The page-cache file the holders read their ranges of: written once (and synced), so each
/// build only reads it back, at disk-cache speed.
pub struct CacheFile {
    pub path: PathBuf,
    pub len: u64,
    _dir: tempfile::TempDir,
}

impl CacheFile {
    pub fn new(len: u64) -> std::io::Result<CacheFile> {
        let dir = tempfile::Builder::new()
            .prefix("cgleak-stalls-")
            .tempdir_in("/var/tmp")?;
        let path = dir.path().join("cache");
        let mut f = std::fs::File::create(&path)?;
        let block = vec![0x5au8; MIB as usize];
        for _ in 0..len.div_ceil(MIB) {
            f.write_all(&block)?;
        }
        f.sync_all()?;
        Ok(CacheFile {
            path,
            len,
            _dir: dir,
        })
    }
}

/// The page cache a tree of `size` needs (the most it can, before caps by limits).
pub fn cache_needed(size: Size) -> u64 {
    let tree = fixture::kubelet_tree(&FixtureSpec::new("kubepods", size.pods));
    holds(&tree, size).values().map(|h| h.cache).sum()
}

/// Cgroups with processes whose parent differs from the previous such cgroup's: the first
/// container of each pod, which the fixture makes the pause container.
fn pause_containers(tree: &[FixtureCgroup]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut last_parent = None;
    for cg in tree.iter().filter(|c| c.processes > 0) {
        let parent = cg.path.rsplit_once('/').map(|(p, _)| p);
        if parent != last_parent {
            out.push(cg.path.as_str());
        }
        last_parent = parent;
    }
    out
}

/// What each app container's holder gets, cache ranges laid out one after another.
fn holds(tree: &[FixtureCgroup], size: Size) -> HashMap<String, Hold> {
    let pauses = pause_containers(tree);
    let mut out = HashMap::new();
    let mut offset = 0;
    for cg in tree.iter().filter(|c| c.processes > 0) {
        if pauses.contains(&cg.path.as_str()) {
            continue;
        }
        let limit = cg
            .settings
            .iter()
            .find(|(f, _)| *f == knob::LIMIT)
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let want = size.anon_mib * MIB;
        // anon + cache (= anon / 4) at most half the limit.
        let anon = limit.map_or(want, |l| want.min(l * 2 / 5)) & !4095;
        let cache = (anon / 4) & !4095;
        out.insert(
            cg.path.clone(),
            Hold {
                anon,
                offset,
                cache,
            },
        );
        offset += cache;
    }
    out
}

/// The container that gets the big process: the first BestEffort app container (no limit).
fn big_home(tree: &[FixtureCgroup]) -> Option<String> {
    let pauses = pause_containers(tree);
    tree.iter()
        .filter(|c| c.processes > 0 && c.path.contains("/besteffort/"))
        .find(|c| !pauses.contains(&c.path.as_str()))
        .map(|c| c.path.clone())
}

/// A started child: its stdin (closing it ends a holder) and stdout.
struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Every child started, killed and reaped on drop (also when a build fails half way).
struct Kids(Vec<Kid>);

impl Drop for Kids {
    fn drop(&mut self) {
        for kid in &mut self.0 {
            drop(kid.stdin.take());
            let _ = kid.child.kill();
        }
        for kid in &mut self.0 {
            let _ = kid.child.wait();
        }
    }
}

/// The tree with its holders and probes.
pub struct Node {
    pub fs: KernelFs,
    pub snap: Snapshot,
    /// The big process and its container (relative to the sandbox).
    pub big: (u32, String),
    /// Container cgroups, relative to the sandbox.
    pub containers: Vec<String>,
    pub holders: usize,
    kids: Kids,
    /// Probe name and index into `kids`.
    probes: Vec<(&'static str, usize)>,
}

/// Start the bench binary in `role`, moved into the cgroup directory `dir`, then told to go.
fn start(kids: &mut Kids, dir: &Path, role: &[String]) -> std::io::Result<u32> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--role")
        .args(role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    common::die_with_bench(&mut cmd);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take();
    kids.0.push(Kid { child, stdin });
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(knob::PROCS))?
        .write_all(pid.to_string().as_bytes())?;
    let kid = kids.0.last_mut().expect("just pushed");
    kid.stdin.as_mut().expect("piped").write_all(b"g")?;
    Ok(pid)
}

impl Node {
    /// Build the tree of `size` in `sb`, wait until every holder holds its memory, start the
    /// probes and scan.
    pub fn build(sb: &Sandbox, size: Size, cache: &CacheFile) -> Result<Node, String> {
        let fs = KernelFs::open(sb.path()).map_err(|e| e.to_string())?;
        let mut tree = fixture::kubelet_tree(&FixtureSpec::new("kubepods", size.pods));
        let holds = holds(&tree, size);
        let big_cg = big_home(&tree).ok_or("the tree has no BestEffort app container")?;
        let total: u64 = holds.values().map(|h| h.anon + h.cache).sum::<u64>() + size.big_mib * MIB;
        // Room for everything twice over under kubepods, whatever limit the fixture drew.
        tree[0].settings = vec![(knob::LIMIT, (2 * total + 1024 * MIB).to_string())];
        if let Some(c) = tree.iter_mut().find(|c| c.path == big_cg) {
            c.processes += 1;
        }
        let mut kids = Kids(Vec::new());
        let mut started: HashMap<String, usize> = HashMap::new();
        let mut big_pid = 0;
        let file = cache.path.display().to_string();
        let mut spawn = |cg: &str| {
            let n = started.entry(cg.to_string()).or_insert(0);
            *n += 1;
            let h = match holds.get(cg) {
                Some(_) if cg == big_cg && *n == 2 => Hold {
                    anon: size.big_mib * MIB,
                    ..Hold::default()
                },
                Some(h) => *h,
                None => Hold::default(),
            };
            let role: Vec<String> = vec![
                "hold".into(),
                h.anon.to_string(),
                file.clone(),
                h.offset.to_string(),
                h.cache.min(cache.len.saturating_sub(h.offset)).to_string(),
            ];
            let pid = start(&mut kids, &sb.cg(cg), &role)
                .map_err(|e| cgleak::error::Error::io("start a holder in", sb.cg(cg), e))?;
            if cg == big_cg && *n == 2 {
                big_pid = pid;
            }
            Ok(pid)
        };
        let pids = fixture::build(&fs, &tree, &mut spawn).map_err(|e| e.to_string())?;
        wait_ready(&mut kids)?;
        let probes = start_probes(&mut kids, sb, &big_cg)?;
        let snap = scan::scan(&fs, "kubepods").map_err(|e| e.to_string())?;
        Ok(Node {
            fs,
            snap,
            big: (big_pid, big_cg.clone()),
            containers: tree
                .iter()
                .filter(|c| c.processes > 0)
                .map(|c| c.path.clone())
                .collect(),
            holders: pids.len(),
            kids,
            probes,
        })
    }
}

/// Every holder says `ready` once its memory is charged.
fn wait_ready(kids: &mut Kids) -> Result<(), String> {
    for kid in &mut kids.0 {
        let out = kid.child.stdout.as_mut().expect("piped");
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            return Err(format!(
                "holder {} did not get ready (it said {line:?})",
                kid.child.id()
            ));
        }
    }
    Ok(())
}

/// The fork and fault probes in `bystanders` (outside the pods tree), and a fault probe in
/// the big process's container, which the repair moves. Returns their names and indices.
fn start_probes(
    kids: &mut Kids,
    sb: &Sandbox,
    big_cg: &str,
) -> Result<Vec<(&'static str, usize)>, String> {
    let outside = sb.mkdir("bystanders");
    let mut probes = Vec::new();
    for (name, dir, role) in [
        (FORK, outside.clone(), "fork"),
        (FAULT_OUT, outside, "fault"),
        (FAULT_IN, sb.cg(big_cg), "fault"),
    ] {
        start(kids, &dir, &[role.to_string()])
            .map_err(|e| format!("start the {name} probe: {e}"))?;
        probes.push((name, kids.0.len() - 1));
    }
    Ok(probes)
}

/// The probes' names.
pub const FORK: &str = "fork+exit+wait, outside the pods";
pub const FAULT_OUT: &str = "page fault, outside the pods";
pub const FAULT_IN: &str = "page fault, in a moved container";

impl Node {
    /// Stop the probes (SIGUSR1) and collect what each recorded.
    pub fn stop_probes(&mut self) -> Result<Vec<(&'static str, super::hist::Timeline)>, String> {
        for &(_, i) in &self.probes {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(self.kids.0[i].child.id() as i32, libc::SIGUSR1) };
        }
        let mut out = Vec::new();
        for &(name, i) in &self.probes {
            let mut text = String::new();
            let kid = &mut self.kids.0[i];
            kid.child
                .stdout
                .as_mut()
                .expect("piped")
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            let status = kid.child.wait().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("probe {name}: {status}"));
            }
            out.push((name, super::hist::Timeline::from_text(&text)?));
        }
        self.probes.clear();
        Ok(out)
    }

    /// memory.usage_in_bytes of a cgroup relative to the sandbox (0 where it cannot be read).
    pub fn usage(&self, cg: &str) -> u64 {
        std::fs::read_to_string(self.fs.root().join(cg).join(knob::USAGE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The charge of every container, summed.
    pub fn containers_usage(&self) -> u64 {
        self.containers.iter().map(|c| self.usage(c)).sum()
    }
}

/// The start of a role child: the bench's main calls this first.
pub fn role_main() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == "--role")?;
    Some(roles::run(&args[i + 1..]))
}
