//! The emulated series: `cgleak emulate` builds a 6.1 node of each size (in
//! `cgleak::host::emulated::tempdir()`: /dev/shm, or `$CGLEAK_EMUL_TMPDIR`), then `cgleak
//! repair` runs on it, timed with its peak RSS. The emulation needs no root and no cgroup, so it
//! reaches sizes past any real node; what it shows is how cgleak's own work grows with the tree
//! (the emulated cgroupfs costs a file operation or two per control file, not the kernel's).

use super::measured;
use super::{repair_json, stats};
use std::path::Path;

/// One size of the series: pods, the median repair seconds and peak RSS bytes.
struct Point {
    pods: usize,
    seconds: f64,
    max_rss: u64,
}

/// Build the emulated node of `pods` pods in `dir`: the seconds it took.
fn emulate(bin: &Path, dir: &Path, pods: usize) -> f64 {
    let args = [
        "emulate".into(),
        dir.into(),
        "--profile".into(),
        "6.1".into(),
    ];
    let m = measured::run(
        bin,
        &[&args[..], &["--pods".into(), pods.to_string().into()]].concat(),
    );
    assert!(m.success(), "cgleak emulate --pods {pods}: {}", m.stderr);
    m.wall
}

/// Time `runs` repairs of one emulated node of `pods` pods (each repair puts the tree back in
/// its shape, so the next one repairs the same tree).
fn measure(bin: &Path, pods: usize, runs: usize) -> Point {
    let base = cgleak::host::emulated::tempdir().expect("a directory for the emulated node");
    let node = base.path().join("node");
    let built = emulate(bin, &node, pods);
    let (mut secs, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (m, _) = repair_json(bin, &node.join("memory"), None, false);
        secs.push(m.wall);
        rss.push(m.max_rss as f64);
    }
    let (seconds, lo, hi) = stats(&secs).expect("at least one run");
    let max_rss = stats(&rss).expect("at least one run").0 as u64;
    println!(
        "  {pods:>5} pods: built in {built:.1} s; repair {:>8.0} ms [{:.0}-{:.0}] ({runs} runs), \
         {:.2} ms per pod, peak RSS {:.1} MB",
        seconds * 1e3,
        lo * 1e3,
        hi * 1e3,
        seconds * 1e3 / pods as f64,
        max_rss as f64 / 1e6
    );
    Point {
        pods,
        seconds,
        max_rss,
    }
}

/// The series at each size of `sizes`, `runs(pods)` repairs each, and how it grows from one
/// size to the next: the time ratio against the pods ratio (equal when it grows linearly).
pub fn series(bin: &Path, sizes: &[usize], runs: &dyn Fn(usize) -> usize) {
    println!(
        "\n== emulated node (cgleak emulate --profile 6.1; cgleak repair --yes, migrate-back)"
    );
    let points: Vec<Point> = sizes
        .iter()
        .map(|&pods| measure(bin, pods, runs(pods)))
        .collect();
    for w in points.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (time, pods) = (b.seconds / a.seconds, b.pods as f64 / a.pods as f64);
        println!(
            "  {} -> {} pods: time x{time:.2} for pods x{pods:.2} ({:.2} of linear), \
             peak RSS x{:.2}",
            a.pods,
            b.pods,
            time / pods,
            b.max_rss as f64 / a.max_rss as f64
        );
    }
}
