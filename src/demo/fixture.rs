//! Kubelet-shaped pods trees for tests, the demo and benchmarks (docs/kernel-facts.md, "Layouts
//! kubelet creates"): `kubepods/pod<uid>/<ctr>` for Guaranteed pods and
//! `kubepods/{burstable,besteffort}/pod<uid>/<ctr>`, one pause container per pod, with the
//! settings kubelet and runc write (node-allocatable limit on kubepods, pod-level limits for
//! Guaranteed pods, per-container limit / memsw / soft limit / swappiness / oom_control).
//!
//! [`kubelet_tree`] is pure and deterministic (a tiny internal PRNG, seeded by the spec);
//! [`build`] creates a tree on any [`Node`].

use crate::error::Result;
use crate::host::{knob, Node};
use nix::errno::Errno;

/// Where pods go below the pods cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureLayout {
    /// `kubepods/pod<uid>/<ctr>` only (all pods Guaranteed, no QoS directories).
    Flat,
    /// `kubepods/{burstable,besteffort}/pod<uid>/<ctr>` only.
    Qos,
    /// About a third of the pods in each of: directly below kubepods, burstable, besteffort.
    Mixed,
}

/// What tree to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureSpec {
    /// Name (path relative to root) of the pods cgroup, e.g. `kubepods`.
    pub kubepods: String,
    pub pods: usize,
    pub layout: FixtureLayout,
    pub seed: u64,
    /// App containers per pod: 1..=max_containers, plus a pause container.
    pub max_containers: usize,
    /// Processes in each app container (the pause container has one).
    pub procs_per_container: usize,
}

impl FixtureSpec {
    /// Mixed layout, seed 1, up to 2 app containers per pod, 1 process each.
    pub fn new(kubepods: &str, pods: usize) -> FixtureSpec {
        FixtureSpec {
            kubepods: kubepods.to_string(),
            pods,
            layout: FixtureLayout::Mixed,
            seed: 1,
            max_containers: 2,
            procs_per_container: 1,
        }
    }
}

/// One cgroup of a fixture tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureCgroup {
    /// Path relative to root; the first one is the pods cgroup.
    pub path: String,
    /// (control file, value), in an order the kernel accepts on a fresh cgroup.
    pub settings: Vec<(&'static str, String)>,
    /// Processes to start in it.
    pub processes: usize,
}

/// splitmix64: small, good enough, and the same everywhere (the fixtures and the tests' seeded
/// runs).
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability 1/n.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }

    fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

const MIB: u64 = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A limit as kubelet computes it from a quantity: not always page-aligned (the kernel rounds).
fn limit(rng: &mut Rng, lo_mib: u64, hi_mib: u64) -> u64 {
    let v = rng.range(lo_mib, hi_mib) * MIB;
    if rng.one_in(3) {
        // e.g. "500M" = 500 * 10^6, or a request in odd bytes.
        v - rng.range(1, 4095)
    } else {
        v
    }
}

/// runc's setMemoryAndSwap on a fresh cgroup (both unlimited): limit first, then memsw (>=).
fn container_settings(rng: &mut Rng, qos: Qos, pause: bool) -> (Vec<(&'static str, String)>, u64) {
    let mut s = Vec::new();
    let mut lim = 0;
    let limited = match qos {
        Qos::Guaranteed => !pause,
        Qos::Burstable => !pause && !rng.one_in(3),
        Qos::BestEffort => false,
    };
    if limited {
        lim = limit(rng, 32, 2048);
        s.push((knob::LIMIT, lim.to_string()));
        // Kubernetes gives no swap: memsw = limit; some runtimes allow a little more.
        let memsw = if rng.one_in(4) {
            lim + rng.range(1, 256) * MIB
        } else {
            lim
        };
        s.push((knob::MEMSW_LIMIT, memsw.to_string()));
    }
    if qos != Qos::BestEffort && !pause {
        // The memory request becomes the soft limit (reservation).
        let req = if lim > 0 {
            lim / rng.range(1, 4)
        } else {
            rng.range(16, 512) * MIB
        };
        s.push((knob::SOFT_LIMIT, req.to_string()));
    }
    match rng.next() % 6 {
        0 => s.push((knob::SWAPPINESS, "0".into())),
        1 => s.push((knob::SWAPPINESS, "30".into())),
        _ => {}
    }
    if !pause && rng.one_in(12) {
        s.push((knob::OOM_CONTROL, "1".into()));
    }
    (s, lim)
}

fn pod(rng: &mut Rng, spec: &FixtureSpec, parent: &str, qos: Qos, out: &mut Vec<FixtureCgroup>) {
    let path = format!("{parent}/pod{}", rng.uuid());
    let apps = rng.range(1, spec.max_containers.max(1) as u64) as usize;
    let mut ctrs = Vec::new();
    let mut total = 0;
    for i in 0..=apps {
        let pause = i == 0;
        let (settings, lim) = container_settings(rng, qos, pause);
        total += lim;
        ctrs.push(FixtureCgroup {
            path: format!("{path}/{}", rng.hex(64)),
            settings,
            processes: if pause { 1 } else { spec.procs_per_container },
        });
    }
    // kubelet sets a pod-level limit for Guaranteed pods (and Burstable pods whose containers
    // all have limits; left out here, as most do not).
    let mut settings = Vec::new();
    if qos == Qos::Guaranteed {
        let pod_limit = total + rng.range(0, 64) * MIB;
        settings.push((knob::LIMIT, pod_limit.to_string()));
        settings.push((knob::MEMSW_LIMIT, pod_limit.to_string()));
    }
    out.push(FixtureCgroup {
        path,
        settings,
        processes: 0,
    });
    out.extend(ctrs);
}

/// The cgroups of a kubelet-shaped tree in pre-order (parents first, each subtree contiguous),
/// the pods cgroup first. Same spec, same tree.
pub fn kubelet_tree(spec: &FixtureSpec) -> Vec<FixtureCgroup> {
    let mut rng = Rng(spec.seed ^ 0x6367_6c65_616b);
    let kp = spec.kubepods.trim_matches('/').to_string();
    let mut out = vec![FixtureCgroup {
        path: kp.clone(),
        // kubelet's node-allocatable limit (capacity minus reserved; often not page-aligned).
        settings: vec![(knob::LIMIT, limit(&mut rng, 4096, 65536).to_string())],
        processes: 0,
    }];
    let classes: Vec<Qos> = (0..spec.pods)
        .map(|i| match spec.layout {
            FixtureLayout::Flat => Qos::Guaranteed,
            FixtureLayout::Qos => [Qos::Burstable, Qos::BestEffort][i % 2],
            FixtureLayout::Mixed => [Qos::Guaranteed, Qos::Burstable, Qos::BestEffort][i % 3],
        })
        .collect();
    for _ in classes.iter().filter(|q| **q == Qos::Guaranteed) {
        pod(&mut rng, spec, &kp, Qos::Guaranteed, &mut out);
    }
    if spec.layout != FixtureLayout::Flat {
        for (qos, name) in [
            (Qos::Burstable, "burstable"),
            (Qos::BestEffort, "besteffort"),
        ] {
            let dir = format!("{kp}/{name}");
            out.push(FixtureCgroup {
                path: dir.clone(),
                settings: Vec::new(),
                processes: 0,
            });
            for _ in classes.iter().filter(|q| **q == qos) {
                pod(&mut rng, spec, &dir, qos, &mut out);
            }
        }
    }
    out
}

/// Create `tree` on `fs`: mkdir each cgroup in order, write its settings, then call `spawn`
/// with its path once per process. Returns the pids `spawn` gave.
///
/// A swappiness or oom_control write the kernel refuses with EINVAL is skipped (the value
/// stays inherited): 3.10 refuses both below a parent with use_hierarchy=1
/// (mem_cgroup_swappiness_write, mem_cgroup_oom_control_write), which runc tolerates too.
pub fn build(
    fs: &dyn Node,
    tree: &[FixtureCgroup],
    spawn: &mut dyn FnMut(&str) -> Result<u32>,
) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for cg in tree {
        fs.mkdir(&cg.path)?;
        for (file, value) in &cg.settings {
            match fs.write(&cg.path, file, value) {
                Ok(()) => {}
                Err(e)
                    if (*file == knob::SWAPPINESS || *file == knob::OOM_CONTROL)
                        && e.errno() == Some(Errno::EINVAL) =>
                {
                    log::debug!(
                        "fixture: {} {file}={value} refused, inherited: {e}",
                        cg.path
                    );
                }
                Err(e) => return Err(e),
            }
        }
        for _ in 0..cg.processes {
            pids.push(spawn(&cg.path)?);
        }
    }
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::normalize_limit;

    #[test]
    fn deterministic() {
        let spec = FixtureSpec::new("kubepods", 20);
        assert_eq!(kubelet_tree(&spec), kubelet_tree(&spec));
        let mut other = spec.clone();
        other.seed = 2;
        assert_ne!(kubelet_tree(&spec), kubelet_tree(&other));
    }

    #[test]
    fn mixed_has_both_layouts() {
        let t = kubelet_tree(&FixtureSpec::new("kubepods", 9));
        let direct = t
            .iter()
            .filter(|c| c.path.starts_with("kubepods/pod") && c.path.matches('/').count() == 1)
            .count();
        let burst = t
            .iter()
            .filter(|c| {
                c.path.starts_with("kubepods/burstable/pod") && c.path.matches('/').count() == 2
            })
            .count();
        let be = t
            .iter()
            .filter(|c| {
                c.path.starts_with("kubepods/besteffort/pod") && c.path.matches('/').count() == 2
            })
            .count();
        assert_eq!((direct, burst, be), (3, 3, 3));
        assert_eq!(t[0].path, "kubepods");
        assert!(t[0].settings.iter().any(|(k, _)| *k == knob::LIMIT));
    }

    #[test]
    fn flat_and_qos_layouts() {
        let mut spec = FixtureSpec::new("kubepods", 6);
        spec.layout = FixtureLayout::Flat;
        let t = kubelet_tree(&spec);
        assert!(t
            .iter()
            .all(|c| !c.path.contains("burstable") && !c.path.contains("besteffort")));
        spec.layout = FixtureLayout::Qos;
        let t = kubelet_tree(&spec);
        let pods: Vec<_> = t
            .iter()
            .filter(|c| crate::model::path::base_name(&c.path).starts_with("pod"))
            .collect();
        assert_eq!(pods.len(), 6);
        assert!(pods.iter().all(|c| c.path.matches('/').count() == 2));
    }

    #[test]
    fn names_are_kubelet_shaped() {
        let mut spec = FixtureSpec::new("kubepods", 4);
        spec.max_containers = 3;
        spec.procs_per_container = 2;
        let t = kubelet_tree(&spec);
        for c in &t {
            let name = crate::model::path::base_name(&c.path);
            if let Some(uid) = name.strip_prefix("pod") {
                assert_eq!(uid.len(), 36, "{name}");
                assert_eq!(uid.matches('-').count(), 4);
                assert_eq!(c.processes, 0);
            } else if name.len() == 64 {
                assert!(name.chars().all(|ch| ch.is_ascii_hexdigit()));
                assert!(c.processes == 1 || c.processes == 2);
            }
        }
        // 1..=3 apps + pause per pod.
        let ctrs = t
            .iter()
            .filter(|c| crate::model::path::base_name(&c.path).len() == 64)
            .count();
        assert!((8..=16).contains(&ctrs), "{ctrs}");
    }

    #[test]
    fn memsw_never_below_limit_and_written_after_it() {
        for seed in 0..20 {
            let mut spec = FixtureSpec::new("kubepods", 12);
            spec.seed = seed;
            for c in kubelet_tree(&spec) {
                let pos = |k| c.settings.iter().position(|(f, _)| *f == k);
                if let Some(m) = pos(knob::MEMSW_LIMIT) {
                    let l = pos(knob::LIMIT).expect("memsw only with a limit");
                    assert!(l < m, "{}", c.path);
                    let lim: u64 = c.settings[l].1.parse().unwrap();
                    let memsw: u64 = c.settings[m].1.parse().unwrap();
                    assert!(normalize_limit(memsw) >= normalize_limit(lim), "{}", c.path);
                }
            }
        }
    }

    #[test]
    fn some_limits_unaligned_and_some_knobs_varied() {
        let mut spec = FixtureSpec::new("kubepods", 60);
        spec.max_containers = 3;
        let t = kubelet_tree(&spec);
        let all: Vec<_> = t.iter().flat_map(|c| c.settings.iter()).collect();
        assert!(all
            .iter()
            .any(|(k, v)| *k == knob::LIMIT && v.parse::<u64>().unwrap() % 4096 != 0));
        assert!(all.iter().any(|(k, v)| *k == knob::SWAPPINESS && v == "0"));
        assert!(all.iter().any(|(k, v)| *k == knob::SWAPPINESS && v == "30"));
        assert!(all.iter().any(|(k, v)| *k == knob::OOM_CONTROL && v == "1"));
        // BestEffort containers are unlimited.
        assert!(t
            .iter()
            .filter(|c| c.path.contains("/besteffort/pod") && c.path.matches('/').count() == 3)
            .all(|c| c.settings.iter().all(|(k, _)| *k != knob::LIMIT)));
    }

    #[test]
    fn pre_order() {
        let t = kubelet_tree(&FixtureSpec::new("kubepods", 15));
        for (i, c) in t.iter().enumerate().skip(1) {
            let par = crate::model::path::parent(&c.path);
            let pi = t.iter().position(|x| x.path == par).expect("parent listed");
            assert!(pi < i, "{} before its parent", c.path);
            // Subtrees are contiguous: everything between the parent and c is below the parent.
            assert!(t[pi + 1..i]
                .iter()
                .all(|x| x.path.starts_with(&format!("{par}/"))));
        }
    }
}
