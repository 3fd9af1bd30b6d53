//! `cgleak diagnose` for the monitoring a fleet already runs: one line for node-problem-detector
//! (NPD) and the Prometheus text format for node_exporter's textfile collector.
//!
//! Both render the same [`Facts`] as `diagnose --format json`, so the three never disagree.
//!
//! - [`render_npd`]: NPD's custom plugin protocol. The exit code carries the status (0 OK, 1
//!   problem, anything else unknown: [`crate::diagnose::Verdict::exit_code`] already maps
//!   healthy, at-risk and leaking, unknown to 0, 1, 1, 2) and stdout one line that NPD puts in the
//!   condition's message. NPD trims the output and cuts it at `max_output_length` bytes (80 by
//!   default), possibly inside a number; the line is kept to [`NPD_MAX_LINE`] ASCII bytes by
//!   dropping whole fields, least important first, so no reader ever sees a cut-off number.
//! - [`render_prometheus`]: gauges in base units named `cgleak_*`. A value cgleak does not know
//!   (the dying count on 3.10 without `--ids-used`, kmem on an unknown kernel, kubelet when
//!   processes cannot be listed) leaves its whole family out instead of exporting a guess: an
//!   absent series makes a `< 10000` alert stay silent, a fake 0 would fire it (or a fake
//!   65535 would hide a leak).
//! - [`write_textfile`]: node_exporter may read the directory at any moment, and it reads every
//!   `*.prom` file there; so the file is written under a temporary name that does not end in
//!   `.prom`, fsynced and renamed over the old one: a scrape sees the old file or the new one,
//!   never half of one.

use crate::diagnose::{Facts, Status};
use crate::error::{Error, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest NPD line in bytes, its newline not counted. NPD's default `max_output_length` is 80
/// and it trims whitespace before cutting; 79 keeps even the line with its newline within 80
/// bytes, for plugin runners that count the newline.
pub const NPD_MAX_LINE: usize = 79;

/// The suffix node_exporter's textfile collector reads; every other file in the directory is
/// ignored (which is why the temporary file must not end in it).
pub const PROM_SUFFIX: &str = ".prom";

/// ASCII printable only: NPD stores the line in a Kubernetes condition, and a non-ASCII byte cut
/// by NPD's byte-based truncation would leave invalid UTF-8 there.
pub(crate) fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c,
            '\n' | '\t' | '\r' => ' ',
            _ => '?',
        })
        .collect()
}

/// `head` followed by as many of `fields` (in order, ", "-separated) as fit in `max` bytes.
/// `head` alone longer than `max` is cut and ends in "...".
pub(crate) fn fit(head: &str, fields: &[String], max: usize) -> String {
    let mut line = ascii(head);
    if line.len() > max {
        // ASCII: every byte index is a char boundary.
        line.truncate(max.saturating_sub(3));
        line.push_str("...");
        return line;
    }
    let mut first = true;
    for f in fields {
        let f = ascii(f);
        let sep = if first { " " } else { ", " };
        if line.len() + sep.len() + f.len() <= max {
            line.push_str(sep);
            line.push_str(&f);
            first = false;
        }
    }
    line
}

fn num(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "?".to_string())
}

/// The NPD custom plugin line (with its newline): the status, then the numbers that say how
/// close the node is to "no space left on device", most important first (free ids, dying
/// memcgs, whether kmem accounting pins deleted cgroups), then the live count and the kernel.
/// Unknown numbers are `?`.
pub fn render_npd(f: &Facts) -> String {
    let h = &f.hierarchy;
    // The verdict's own words, as `diagnose` prints them ("VERDICT: AT-RISK").
    let status = f.verdict.status.as_str().to_uppercase();
    let mut fields = Vec::new();
    if f.cgroup_mode == Some(crate::host::CgroupMode::V2) {
        fields.push("cgroup v2".to_string());
        fields.push(format!("dying cgroups {}", num(h.nr_dying_descendants)));
        fields.push(format!("live {}", num(h.live)));
    } else {
        match (h.ids_free, h.dying, h.dying_at_least, h.ids_free_at_most()) {
            (None, None, Some(d), Some(n)) => {
                fields.push(format!("memcg ids free at most {n}"));
                fields.push(format!("dying at least {d}"));
            }
            _ => {
                fields.push(format!("memcg ids free {}", num(h.ids_free)));
                fields.push(format!("dying {}", num(h.dying)));
            }
        }
        let kmem = match f.kubepods.kmem_active {
            Some(true) => "active",
            Some(false) => "off",
            None => "?",
        };
        fields.push(format!("kmem {kmem}"));
        fields.push(format!("live {}", num(h.live)));
    }
    if let Some(v) = &f.kernel.version {
        fields.push(format!("kernel {v}"));
    }
    fit(&format!("{status}:"), &fields, NPD_MAX_LINE) + "\n"
}

/// The NPD line when diagnose could not run at all (bad --root, unreadable hierarchy): the
/// condition's message then says why instead of staying empty.
pub fn render_npd_error(e: &Error) -> String {
    let first = e.to_string();
    let first = first.lines().next().unwrap_or_default();
    fit(&format!("UNKNOWN: {first}"), &[], NPD_MAX_LINE) + "\n"
}

/// One metric family: every sample of it shares the HELP and TYPE lines.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

/// The families of one run, in output order.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    /// A family with one unlabelled sample, or none when the value is unknown.
    fn gauge(&mut self, name: &'static str, help: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.labelled(name, help, vec![(String::new(), v.to_string())]);
        }
    }

    fn flag(&mut self, name: &'static str, help: &'static str, v: Option<bool>) {
        self.gauge(name, help, v.map(u64::from));
    }

    fn labelled(&mut self, name: &'static str, help: &'static str, samples: Vec<(String, String)>) {
        self.0.push(Family {
            name,
            help,
            samples,
        });
    }

    fn render(&self) -> String {
        let mut o = String::new();
        for fam in &self.0 {
            let _ = writeln!(o, "# HELP {} {}", fam.name, escape_help(fam.help));
            let _ = writeln!(o, "# TYPE {} gauge", fam.name);
            for (labels, value) in &fam.samples {
                let _ = writeln!(o, "{}{labels} {value}", fam.name);
            }
        }
        o
    }
}

/// HELP text escaping of the text format: backslash and newline.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label set `{k="v",...}` with values escaped as the text format wants (backslash, double
/// quote, newline): a kernel release is whatever the vendor put in uname.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// One label value escaped as the text format wants (backslash, double quote, newline).
pub(crate) fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every status, in the order the verdict family lists them.
const STATUSES: [Status; 4] = [
    Status::Healthy,
    Status::AtRisk,
    Status::Leaking,
    Status::Unknown,
];

/// The Prometheus text exposition (format 0.0.4) of a diagnosis taken at `now`. Every family is
/// a gauge; families whose value is unknown are left out (see the module doc).
pub fn render_prometheus(f: &Facts, now: SystemTime) -> String {
    let mut m = Families::default();
    ids_families(&mut m, f);
    pods_families(&mut m, f);
    node_families(&mut m, f);
    info_families(&mut m, f, now);
    m.render()
}

/// The memcg id and dying counts.
fn ids_families(m: &mut Families, f: &Facts) {
    let h = &f.hierarchy;
    m.gauge(
        "cgleak_memcg_ids_free",
        "Memory cgroup ids free (cgleak_memcg_id_limit minus live and dying memcgs); mkdir fails with ENOSPC at 0. \
         From kernel 4.8 on a lower bound. Absent when unknown (3.10 without --ids-used).",
        h.ids_free,
    );
    m.gauge(
        "cgleak_memcg_ids_used",
        "Memory cgroup ids in use, live and dying (/proc/cgroups, or --ids-used on 3.10). Absent when unknown.",
        h.ids_used,
    );
    m.gauge(
        "cgleak_memcg_id_limit",
        "Memory cgroup ids that can exist at once on this kernel (MEM_CGROUP_ID_MAX, less one on some kernels: docs/kernel-facts.md).",
        Some(h.id_limit),
    );
    m.gauge(
        "cgleak_memcg_live",
        "Live memory cgroups: directories of the whole memory hierarchy, its root included.",
        h.live,
    );
    m.gauge(
        "cgleak_memcg_counted",
        "num_cgroups of the memory row of /proc/cgroups (live plus dying from 3.16 on, live only on 3.10).",
        h.counted,
    );
    m.gauge(
        "cgleak_memcg_dying",
        "Deleted memory cgroups still holding an id (still charged). Absent when unknown: \
         3.10 does not show them, pass --ids-used.",
        h.dying,
    );
    m.gauge(
        "cgleak_memcg_dying_at_least",
        "3.10 only: dying memory cgroups counted from /sys/kernel/slab (distinct kmem ids of \
         per-memcg slab caches whose cgroup has no live directory): a lower bound. Absent \
         where not counted (other kernels, SLAB instead of SLUB).",
        h.dying_at_least,
    );
    m.gauge(
        "cgleak_cgroup2_dying_descendants",
        "cgroup v2 only: nr_dying_descendants of the root cgroup.",
        h.nr_dying_descendants,
    );
}

/// kmem accounting and the pods tree.
fn pods_families(m: &mut Families, f: &Facts) {
    let k = &f.kubepods;
    m.flag(
        "cgleak_kmem_accounting_active",
        "1 when kernel-memory accounting is active under the pods cgroup (on 3.10 it makes every \
         deleted container cgroup keep its id). Absent when unknown.",
        k.kmem_active,
    );
    m.gauge(
        "cgleak_kmem_active_cgroups",
        "3.10 only: cgroups of the pods tree with kmem accounting active.",
        k.kmem_active_cgroups,
    );
    m.flag(
        "cgleak_kubepods_found",
        "1 when the pods cgroup (--kubepods) exists below --root.",
        // On v2 the v1 pods tree is not looked at: unknown, not absent.
        (f.cgroup_mode != Some(crate::host::CgroupMode::V2)).then_some(k.found),
    );
    m.gauge(
        "cgleak_kubepods_cgroups",
        "Cgroups of the pods tree, the pods cgroup itself included (a repair needs one free id for each).",
        k.cgroups,
    );
    m.gauge(
        "cgleak_kubepods_pods",
        "Pod cgroups in the pods tree.",
        k.pods,
    );
    m.gauge(
        "cgleak_kubepods_containers",
        "Container cgroups in the pods tree.",
        k.containers,
    );
    m.gauge(
        "cgleak_kubepods_tasks",
        "Processes (cgroup.procs entries) in the pods tree.",
        k.tasks,
    );
}

/// What the kernel and the node run.
fn node_families(m: &mut Families, f: &Facts) {
    m.flag(
        "cgleak_move_charge_supported",
        "1 when the kernel can move charges between memory cgroups (memory.move_charge_at_immigrate; gone in 6.13).",
        f.kernel.move_charge_supported,
    );
    m.flag(
        "cgleak_nokmem",
        "1 when the kernel was booted with cgroup.memory=nokmem.",
        Some(f.nokmem),
    );
    m.flag(
        "cgleak_kubelet_running",
        "1 when a kubelet process runs on the node (a repair needs it stopped). Absent when processes could not be listed.",
        f.kubelet.running,
    );
}

/// The verdict, errors, kernel and build, and the time of the run.
fn info_families(m: &mut Families, f: &Facts, now: SystemTime) {
    m.labelled(
        "cgleak_verdict",
        "The verdict of cgleak diagnose: 1 for the current status, 0 for the others.",
        STATUSES
            .iter()
            .map(|s| {
                let v = u8::from(*s == f.verdict.status);
                (labels(&[("status", s.as_str())]), v.to_string())
            })
            .collect(),
    );
    m.gauge(
        "cgleak_diagnose_errors",
        "Facts this run could not read (cgleak diagnose lists them under Notes).",
        Some(f.errors.len() as u64),
    );
    let era = f
        .kernel
        .era
        .and_then(|e| serde_json::to_value(e).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    m.labelled(
        "cgleak_kernel_info",
        "The running kernel: release (uname -r) and era (legacy = 3.10, modern = 3.16-6.12, no_move_charge = 6.13+). Always 1.",
        vec![(
            labels(&[("release", &f.kernel.release), ("era", &era)]),
            "1".to_string(),
        )],
    );
    m.labelled(
        "cgleak_build_info",
        "The cgleak that wrote this: version and git commit. Always 1.",
        vec![(
            labels(&[
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", env!("CGLEAK_GIT_COMMIT")),
            ]),
            "1".to_string(),
        )],
    );
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    m.labelled(
        "cgleak_last_run_timestamp_seconds",
        "When this diagnosis ran, in seconds since the epoch: alert when it gets old (the loop stopped).",
        vec![(String::new(), format!("{secs:.3}"))],
    );
}

/// Check `--textfile PATH` before diagnosing: its directory must exist (cgleak does not create
/// node_exporter's directory: a typo would otherwise write metrics nobody reads) and its name
/// must end in `.prom`, the only files the collector reads.
pub fn check_textfile(path: &Path) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.ends_with(PROM_SUFFIX) || name.starts_with('.') {
        return Err(Error::Usage(format!(
            "--textfile {}: node_exporter's textfile collector reads only files named *{PROM_SUFFIX} \
             (not hidden); give a name such as cgleak{PROM_SUFFIX}",
            path.display()
        )));
    }
    let dir = textfile_dir(path);
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--textfile {}: the directory {} does not exist; create it or point --textfile into \
             node_exporter's --collector.textfile.directory",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn textfile_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Replace `path` with `data` atomically: a temp file `.cgleak-XXXXXX.prom.tmp` in the same
/// directory (not ending in `.prom`, so the collector never reads it half-written), mode 0644
/// (node_exporter usually runs as nobody).
pub fn write_textfile(path: &Path, data: &[u8]) -> Result<()> {
    check_textfile(path)?;
    crate::atomic::write_file_atomic(path, data, ".prom.tmp", 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{facts_v2, KernelFacts, KubeletFacts, V2Inputs};
    use std::time::Duration;

    /// Facts of a cgroup v2 host (built without a filesystem), turned into a v1-looking report
    /// by the tests that need one.
    fn facts() -> Facts {
        facts_v2(&V2Inputs {
            root: "/sys/fs/cgroup".into(),
            kernel: KernelFacts::from_release("5.10.0-30-cloud-amd64", false),
            live: Some(120),
            nr_dying_descendants: Some(40),
            kubelet: KubeletFacts::from_pids(Some(vec![])),
            errors: vec![],
        })
    }

    fn v1(mut f: Facts, free: Option<u64>, dying: Option<u64>, kmem: Option<bool>) -> Facts {
        f.cgroup_mode = Some(crate::host::CgroupMode::V1);
        f.hierarchy.nr_dying_descendants = None;
        f.hierarchy.ids_free = free;
        f.hierarchy.ids_used = free.map(|x| f.hierarchy.id_limit.saturating_sub(x));
        f.hierarchy.dying = dying;
        f.kubepods.kmem_active = kmem;
        let t = f.thresholds;
        f.judge(&t);
        f
    }

    #[test]
    fn npd_line_names_status_and_numbers() {
        let f = v1(facts(), Some(536), Some(64_000), Some(true));
        assert_eq!(f.verdict.status, Status::Leaking);
        assert_eq!(
            render_npd(&f),
            "LEAKING: memcg ids free 536, dying 64000, kmem active, live 120, kernel 5.10.0\n"
        );
        let f = v1(facts(), None, None, None);
        let line = render_npd(&f);
        assert!(
            line.starts_with("UNKNOWN: memcg ids free ?, dying ?, kmem ?"),
            "{line}"
        );
    }

    #[test]
    fn npd_line_on_v2() {
        let line = render_npd(&facts());
        assert_eq!(
            line,
            "HEALTHY: cgroup v2, dying cgroups 40, live 120, kernel 5.10.0\n"
        );
    }

    #[test]
    fn npd_line_stays_within_bound_with_huge_numbers() {
        let mut f = v1(facts(), Some(u64::MAX), Some(u64::MAX), Some(true));
        f.hierarchy.live = Some(u64::MAX);
        f.kernel.version = Some("99999999999.99999999999.99999999999".into());
        let line = render_npd(&f);
        let body = line.strip_suffix('\n').unwrap();
        assert!(body.len() <= NPD_MAX_LINE, "{} bytes: {body}", body.len());
        assert!(body.is_ascii() && !body.contains('\n'));
        // Whole fields only: the most important ones survive, in full.
        assert!(
            body.contains(&format!("memcg ids free {}", u64::MAX)),
            "{body}"
        );
        assert!(body.contains(&format!("dying {}", u64::MAX)), "{body}");
        assert!(!body.contains("kernel"), "{body}");
    }

    #[test]
    fn fit_cuts_only_an_overlong_head() {
        let long = "x".repeat(200);
        let s = fit(&long, &["a".into()], 20);
        assert_eq!(s.len(), 20);
        assert!(s.ends_with("..."));
        assert_eq!(fit("é\u{1}", &["ü".into()], 20), "?? ?");
    }

    #[test]
    fn npd_error_line_is_one_short_ascii_line() {
        let e = Error::Usage(format!(
            "--root /{}: does not exist\nsecond line",
            "ä".repeat(100)
        ));
        let line = render_npd_error(&e);
        assert!(line.starts_with("UNKNOWN: --root /"), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.len() <= NPD_MAX_LINE + 1 && line.is_ascii(), "{line}");
    }

    #[test]
    fn prometheus_leaves_unknown_values_out() {
        let f = v1(facts(), None, None, None);
        let text = render_prometheus(&f, UNIX_EPOCH + Duration::from_millis(1_500));
        for absent in [
            "cgleak_memcg_ids_free",
            "cgleak_memcg_dying ",
            "cgleak_kmem_accounting_active",
            "cgleak_kubepods_cgroups",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
        // The facts are of a 5.10 kernel: 65534 ids.
        assert!(text.contains("\ncgleak_memcg_id_limit 65534\n"), "{text}");
        assert!(text.contains("\ncgleak_last_run_timestamp_seconds 1.500\n"));
        assert!(text.contains("\ncgleak_verdict{status=\"unknown\"} 1\n"));
        assert!(text.contains("\ncgleak_verdict{status=\"healthy\"} 0\n"));
        assert!(text.contains("\ncgleak_kubelet_running 0\n"));
    }

    #[test]
    fn prometheus_known_values_and_escaped_labels() {
        let mut f = v1(facts(), Some(536), Some(64_000), Some(true));
        f.kernel.release = "3.10.0 \"odd\"\\build\n".into();
        let text = render_prometheus(&f, UNIX_EPOCH);
        assert!(text.contains("\ncgleak_memcg_ids_free 536\n"), "{text}");
        assert!(text.contains("\ncgleak_memcg_dying 64000\n"));
        assert!(text.contains("\ncgleak_kmem_accounting_active 1\n"));
        assert!(
            text.contains("release=\"3.10.0 \\\"odd\\\"\\\\build\\n\""),
            "{text}"
        );
        // HELP and TYPE once per family, before its samples.
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(helps, types);
        assert!(text.starts_with("# HELP cgleak_memcg_ids_free "));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn textfile_is_replaced_atomically_and_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cgleak.prom");
        std::fs::write(&p, "old\n").unwrap();
        write_textfile(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cgleak.prom")]);
    }

    #[test]
    fn textfile_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/cgleak.prom");
        let e = check_textfile(&missing).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("nope"), "{e}");
        for bad in ["cgleak.txt", ".cgleak.prom", "cgleak.prom.tmp"] {
            let e = check_textfile(&dir.path().join(bad)).unwrap_err();
            assert!(e.to_string().contains("*.prom"), "{bad}: {e}");
        }
        assert!(!missing.parent().unwrap().exists());
    }
}
