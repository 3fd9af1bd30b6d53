//! Fleet detection: `diagnose --format npd` and `--format prometheus [--textfile]` on emulated
//! healthy and leaking nodes (3.10 and 6.1) and on this machine (read-only, as root and as
//! nobody), and the deploy/ files checked against the rules of the programs that read them:
//! node-problem-detector's custom plugin config (its Validate() rules, plus the ones that make
//! the plugin work) and a DaemonSet whose args parse with cgleak's real clap definition and whose
//! loop is run here.
//!
//! The Prometheus output is checked by a strict exposition-format checker written here
//! ([`prom::check`]): the crates.io parsers are lenient (they accept samples before TYPE and
//! duplicate series), and leniency is what this test must not have.

#[path = "support/emulated_node.rs"]
mod emulated_node;

use assert_cmd::Command;
use cgleak::cli::{Cli, Command as Cmd, DiagnoseFormat};
use cgleak::diagnose::export::NPD_MAX_LINE;
use clap::Parser;
use emulated_node::{cgleak, Node};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// One ASCII line of at most NPD_MAX_LINE bytes plus its newline (NPD's message).
fn assert_npd_line(out: &str) -> &str {
    let line = out
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no newline: {out:?}"));
    assert!(!line.contains('\n'), "more than one line: {out:?}");
    assert!(line.is_ascii(), "{out:?}");
    assert!(
        line.len() <= NPD_MAX_LINE && out.len() <= 80,
        "{} bytes: {line}",
        line.len()
    );
    line
}

/// One `diagnose --format npd` run: extra args, exit code, start of the line.
type NpdRun<'a> = (&'a [&'a str], i32, &'a str);

#[test]
fn npd_exit_codes_and_lines_on_emulated_nodes() {
    // the largest count --ids-used takes (65535 ids exist on 3.10)
    let ids_max = ["--ids-used", "65535"];
    let nodes: [(&str, u64, bool, Vec<NpdRun>); 4] = [
        (
            "3.10",
            0,
            false,
            vec![
                (
                    &["--ids-used", "150"],
                    0,
                    "HEALTHY: memcg ids free 65385, dying 73,",
                ),
                // Without the systemtap count and without kmem: cannot tell. The slab count
                // (issue 14) bounds the free ids from above only: 65,458 at most proves nothing.
                (
                    &[],
                    2,
                    "UNKNOWN: memcg ids free at most 65458, dying at least 0, kmem off",
                ),
            ],
        ),
        (
            "3.10",
            64_000,
            true,
            vec![
                // Without systemtap the slab count (issue 14) sees the 64,000 kmem-pinned dying
                // memcgs: at most 1,458 ids free, at-risk.
                (
                    &[],
                    1,
                    "AT-RISK: memcg ids free at most 1458, dying at least 64000, kmem active",
                ),
                // 1,035 free: short, not yet at the leaking bound; the trigger and 64,423 dying
                // do not make it leaking on their own.
                (
                    &["--ids-used", "64500"],
                    1,
                    "AT-RISK: memcg ids free 1035, dying 64423,",
                ),
                (
                    &["--ids-used", "64600"],
                    1,
                    "LEAKING: memcg ids free 935, dying 64523,",
                ),
                // Every id taken: the line stays within 80 bytes (longer numbers: export's
                // unit tests drop whole fields).
                (&ids_max, 1, "LEAKING: memcg ids free 0, dying 65458,"),
            ],
        ),
        (
            "6.1",
            0,
            false,
            vec![(&[], 0, "HEALTHY: memcg ids free 65")],
        ),
        (
            "6.1",
            64_000,
            false,
            vec![(
                &[],
                1,
                "AT-RISK: memcg ids free 1458, dying 64000, kmem active",
            )],
        ),
    ];
    for (profile, dying, kmem, runs) in nodes {
        let node = Node::new(profile, 20, dying, kmem);
        for (extra, want, start) in runs {
            let mut args = vec!["--format", "npd"];
            args.extend_from_slice(extra);
            let (code, out, err) = node.diagnose(&args);
            let line = assert_npd_line(&out);
            assert_eq!(code, want, "{profile} {dying} {extra:?}: {line} / {err}");
            assert!(line.starts_with(start), "{profile} {extra:?}: {line}");
        }
    }
}

#[test]
fn npd_on_a_bad_root_is_unknown_with_the_reason() {
    let (code, out, err) = cgleak(&[
        "--root",
        "/nonexistent/memory",
        "diagnose",
        "--format",
        "npd",
    ]);
    assert_eq!(code, 2, "{err}");
    let line = assert_npd_line(&out);
    assert!(
        line.starts_with("UNKNOWN: --root /nonexistent/memory"),
        "{line}"
    );
    assert!(err.contains("does not exist"), "{err}");
}

/// A strict checker of the Prometheus text exposition format (0.0.4) as node_exporter's textfile
/// collector reads it, limited to what cgleak must write: gauges only, no timestamps.
mod prom {
    use std::collections::{BTreeMap, BTreeSet};

    fn metric_name_ok(s: &str) -> bool {
        let mut c = s.chars();
        matches!(c.next(), Some('a'..='z' | 'A'..='Z' | '_' | ':'))
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn label_name_ok(s: &str) -> bool {
        let mut c = s.chars();
        matches!(c.next(), Some('a'..='z' | 'A'..='Z' | '_'))
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with("__")
    }

    /// A float as Go's ParseFloat takes it in the format: digits with optional fraction and
    /// exponent, or +Inf, -Inf, NaN.
    pub fn value_ok(s: &str) -> bool {
        if matches!(s, "+Inf" | "-Inf" | "NaN") {
            return true;
        }
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        let (mant, exp) = match s.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e)),
            None => (s, None),
        };
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
        let mant_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
        let exp_ok = exp.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
        mant_ok && exp_ok && s.parse::<f64>().is_ok()
    }

    /// Parse `{a="x",b="y"}` (escapes \\ \" \n only) into sorted pairs; the rest of the line
    /// after the closing brace is returned.
    fn labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
        let mut out = BTreeMap::new();
        let mut rest = s.strip_prefix('{').ok_or("no {")?;
        loop {
            let eq = rest.find('=').ok_or(format!("no = in {rest:?}"))?;
            let name = &rest[..eq];
            if !label_name_ok(name) {
                return Err(format!("bad label name {name:?}"));
            }
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, '\n') => return Err("newline in label value".into()),
                    (_, c) => value.push(c),
                }
            };
            if out.insert(name.to_string(), value).is_some() {
                return Err(format!("label {name} twice"));
            }
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                return Ok((out, r));
            } else {
                return Err(format!("expected , or }} at {rest:?}"));
            }
        }
    }

    /// A parsed sample: metric name, labels, value.
    pub type Sample = (String, BTreeMap<String, String>, f64);

    /// The state of a strict read: the families seen, the open one, the samples.
    #[derive(Default)]
    struct Checker {
        samples: Vec<Sample>,
        seen_series: BTreeSet<String>,
        done_families: BTreeSet<String>,
        helped: BTreeSet<String>,
        current: Option<String>,
        typed: bool,
        count_in_family: usize,
    }

    impl Checker {
        /// The open family must have a sample before another opens or the text ends.
        fn close(&self) -> Result<(), String> {
            match &self.current {
                Some(c) if self.count_in_family == 0 => Err(format!("family {c} has no sample")),
                _ => Ok(()),
            }
        }

        fn help(&mut self, rest: &str) -> Result<(), String> {
            let (name, help) = rest.split_once(' ').ok_or("no help text")?;
            if !metric_name_ok(name) {
                return Err("bad metric name".into());
            }
            if help.trim().is_empty() {
                return Err("empty help".into());
            }
            let mut it = help.chars();
            while let Some(c) = it.next() {
                if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                    return Err("bad escape in help".into());
                }
            }
            // HELP opens a family: the previous one is finished for good.
            if self.current.as_deref() != Some(name) {
                self.close()?;
                if let Some(c) = self.current.take() {
                    self.done_families.insert(c);
                }
                if self.done_families.contains(name) {
                    return Err(format!("family {name} resumed"));
                }
                self.current = Some(name.to_string());
                self.typed = false;
                self.count_in_family = 0;
            }
            if !self.helped.insert(name.to_string()) {
                return Err("second HELP".into());
            }
            Ok(())
        }

        fn type_line(&mut self, rest: &str) -> Result<(), String> {
            let (name, kind) = rest.split_once(' ').ok_or("no type")?;
            if self.current.as_deref() != Some(name) {
                return Err("TYPE without HELP before it".into());
            }
            if self.typed || self.count_in_family > 0 {
                return Err("TYPE twice or after samples".into());
            }
            if kind != "gauge" {
                return Err(format!("type {kind}, want gauge"));
            }
            self.typed = true;
            Ok(())
        }

        fn sample(&mut self, line: &str) -> Result<(), String> {
            let name_end = line.find(['{', ' ']).ok_or("no value")?;
            let name = &line[..name_end];
            if self.current.as_deref() != Some(name) || !self.typed {
                return Err("sample without HELP and TYPE of its family".into());
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                labels(&line[name_end..])?
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
            // A timestamp would be a second field: the textfile collector refuses those.
            if !value_ok(value) {
                return Err(format!("bad value {value:?}"));
            }
            if !self.seen_series.insert(format!("{name}{labels:?}")) {
                return Err("duplicate series".into());
            }
            self.count_in_family += 1;
            let v = if value == "+Inf" {
                f64::INFINITY
            } else {
                value.parse().unwrap()
            };
            self.samples.push((name.to_string(), labels, v));
            Ok(())
        }
    }

    /// Check `text` strictly; the samples in order.
    pub fn check(text: &str) -> Result<Vec<Sample>, String> {
        if !text.ends_with('\n') {
            return Err("does not end with a newline".into());
        }
        let mut c = Checker::default();
        for (no, line) in text.lines().enumerate() {
            let r = if let Some(rest) = line.strip_prefix("# HELP ") {
                c.help(rest)
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                c.type_line(rest)
            } else if line.starts_with('#') {
                Err("comment line".into())
            } else if line.is_empty() {
                Err("empty line".into())
            } else {
                c.sample(line)
            };
            r.map_err(|e| format!("line {}: {e}: {line:?}", no + 1))?;
        }
        c.close()?;
        Ok(c.samples)
    }

    /// The value of the unlabelled sample `name`, if present.
    pub fn get(samples: &[Sample], name: &str) -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.is_empty())
            .map(|s| s.2)
    }
}

#[test]
fn the_checker_is_strict() {
    let ok = "# HELP a_b x\n# TYPE a_b gauge\na_b{s=\"q\\\"\"} 1\na_b{s=\"r\"} 2.5e3\n";
    assert_eq!(prom::check(ok).unwrap().len(), 2);
    for (bad, why) in [
        ("a 1\n", "sample before HELP"),
        ("# HELP a x\na 1\n", "no TYPE"),
        ("# HELP a x\n# TYPE a counter\na 1\n", "not a gauge"),
        ("# HELP a x\n# TYPE a gauge\na 1\na 2\n", "duplicate"),
        ("# HELP a x\n# TYPE a gauge\na 1 1700000000\n", "timestamp"),
        ("# HELP a x\n# TYPE a gauge\na{1x=\"v\"} 1\n", "label name"),
        ("# HELP a x\n# TYPE a gauge\na{s=\"v} 1\n", "unterminated"),
        ("# HELP a x\n# TYPE a gauge\na one\n", "value"),
        ("# HELP a x\n# TYPE a gauge\na inf\n", "rust-only float"),
        ("# HELP 1a x\n# TYPE 1a gauge\n1a 1\n", "metric name"),
        ("# HELP a x\n# TYPE a gauge\n", "empty family"),
        ("# HELP a x\n# TYPE a gauge\na 1", "no final newline"),
        (
            "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\n# HELP a x\n",
            "resumed",
        ),
    ] {
        assert!(prom::check(bad).is_err(), "accepted ({why}): {bad:?}");
    }
    assert!(prom::value_ok("-0.5") && prom::value_ok("+Inf") && !prom::value_ok("."));
}

/// The families every run writes, whatever it knows.
const ALWAYS: [&str; 7] = [
    "cgleak_memcg_id_limit",
    "cgleak_nokmem",
    "cgleak_verdict",
    "cgleak_diagnose_errors",
    "cgleak_kernel_info",
    "cgleak_build_info",
    "cgleak_last_run_timestamp_seconds",
];

fn check_prometheus(text: &str, want_status: &str) -> Vec<prom::Sample> {
    let samples = prom::check(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (name, _, _) in &samples {
        assert!(name.starts_with("cgleak_"), "{name}");
    }
    for name in ALWAYS {
        assert!(
            samples.iter().any(|s| s.0 == name),
            "{name} missing:\n{text}"
        );
    }
    let verdict: Vec<_> = samples.iter().filter(|s| s.0 == "cgleak_verdict").collect();
    assert_eq!(verdict.len(), 4, "{text}");
    let current: Vec<_> = verdict.iter().filter(|s| s.2 == 1.0).collect();
    assert_eq!(current.len(), 1, "{text}");
    assert_eq!(current[0].1["status"], want_status, "{text}");
    assert!(verdict.iter().all(|s| s.2 == 0.0 || s.2 == 1.0));
    let ts = prom::get(&samples, "cgleak_last_run_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 120.0, "timestamp {ts}, now {now}");
    samples
}

#[test]
fn prometheus_on_emulated_nodes() {
    // 3.10 leaking, dying count unknown: at-risk, and no ids/dying series rather than fake ones.
    let n = Node::new("3.10", 20, 64_000, true);
    let (code, out, err) = n.diagnose(&["--format", "prometheus"]);
    assert_eq!(code, 1, "{err}");
    let s = check_prometheus(&out, "at-risk");
    for absent in [
        "cgleak_memcg_ids_free",
        "cgleak_memcg_ids_used",
        "cgleak_memcg_dying",
    ] {
        assert_eq!(prom::get(&s, absent), None, "{absent}:\n{out}");
    }
    assert_eq!(prom::get(&s, "cgleak_kmem_accounting_active"), Some(1.0));
    assert_eq!(prom::get(&s, "cgleak_memcg_live"), Some(77.0));
    assert_eq!(prom::get(&s, "cgleak_kubepods_pods"), Some(20.0));
    assert_eq!(prom::get(&s, "cgleak_move_charge_supported"), Some(1.0));
    // With the systemtap count the numbers are there: 1,035 free is at-risk, 935 leaking.
    let (code, out, _) = n.diagnose(&["--format", "prometheus", "--ids-used", "64500"]);
    assert_eq!(code, 1);
    let s = check_prometheus(&out, "at-risk");
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_free"), Some(1035.0));
    assert_eq!(prom::get(&s, "cgleak_memcg_dying"), Some(64_423.0));
    let (code, out, _) = n.diagnose(&["--format", "prometheus", "--ids-used", "64600"]);
    assert_eq!(code, 1);
    let s = check_prometheus(&out, "leaking");
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_free"), Some(935.0));
    // Every id taken.
    let (_, out, _) = n.diagnose(&["--format", "prometheus", "--ids-used", "65535"]);
    let s = check_prometheus(&out, "leaking");
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_used"), Some(65535.0));
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_free"), Some(0.0));

    // 6.1: the kernel counts dying memcgs itself.
    let n = Node::new("6.1", 20, 0, false);
    let (code, out, _) = n.diagnose(&["--format", "prometheus"]);
    assert_eq!(code, 0);
    let s = check_prometheus(&out, "healthy");
    assert_eq!(prom::get(&s, "cgleak_memcg_dying"), Some(0.0));
    assert_eq!(prom::get(&s, "cgleak_kmem_accounting_active"), Some(1.0));
    let n = Node::new("6.1", 20, 64_000, false);
    let (code, out, _) = n.diagnose(&["--format", "prometheus"]);
    assert_eq!(code, 1);
    let s = check_prometheus(&out, "at-risk");
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_free"), Some(1458.0));
    assert_eq!(prom::get(&s, "cgleak_memcg_id_limit"), Some(65_535.0));
}

/// What happened in a directory while a command ran (inotify), as (event, name) pairs.
fn watch_dir<F: FnOnce()>(dir: &Path, f: F) -> Vec<(&'static str, String)> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    let kinds = [
        (AddWatchFlags::IN_CREATE, "create"),
        (AddWatchFlags::IN_MODIFY, "modify"),
        (AddWatchFlags::IN_MOVED_FROM, "moved_from"),
        (AddWatchFlags::IN_MOVED_TO, "moved_to"),
        (AddWatchFlags::IN_DELETE, "delete"),
    ];
    let mask = kinds.iter().fold(AddWatchFlags::empty(), |m, k| m | k.0);
    ino.add_watch(dir, mask).unwrap();
    f();
    let mut out = Vec::new();
    while let Ok(events) = ino.read_events() {
        for e in events {
            let name = e
                .name
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            for (flag, kind) in kinds {
                if e.mask.contains(flag) {
                    out.push((kind, name.clone()));
                }
            }
        }
    }
    out
}

#[test]
fn textfile_is_written_through_a_temp_file_and_a_rename() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let n = Node::new("3.10", 20, 64_000, true);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cgleak.prom");
    std::fs::write(&file, "old\n").unwrap();
    let old_inode = std::fs::metadata(&file).unwrap().ino();
    let f = file.display().to_string();
    let mut result = (0, String::new(), String::new());
    let events = watch_dir(dir.path(), || {
        result = n.diagnose(&[
            "--format",
            "prometheus",
            "--textfile",
            &f,
            "--ids-used",
            "64600",
        ]);
    });
    let (code, out, err) = result;
    // The same exit code as on stdout; nothing on stdout (node_exporter reads only the file).
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    let text = std::fs::read_to_string(&file).unwrap();
    let s = check_prometheus(&text, "leaking");
    assert_eq!(prom::get(&s, "cgleak_memcg_ids_free"), Some(935.0));
    let meta = std::fs::metadata(&file).unwrap();
    assert_ne!(meta.ino(), old_inode, "the old file was rewritten in place");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    // created under a temp name that node_exporter ignores, written, renamed over the old file
    let tmp = match events.first() {
        Some(("create", name)) => name.clone(),
        other => panic!("first event {other:?} of {events:?}"),
    };
    assert!(
        tmp.starts_with(".cgleak-") && tmp.ends_with(".prom.tmp"),
        "{tmp}"
    );
    assert!(events.contains(&("moved_from", tmp.clone())), "{events:?}");
    assert_eq!(
        events.last(),
        Some(&("moved_to", "cgleak.prom".to_string()))
    );
    assert!(
        events
            .iter()
            .all(|(_, name)| name == &tmp || name == "cgleak.prom"),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|(k, name)| name == "cgleak.prom" && *k != "moved_to"),
        "cgleak.prom touched other than by the rename: {events:?}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["cgleak.prom"], "temp file left behind");
    // -v confirms the write on stderr (RUST_LOG would override -v); stdout stays empty.
    let out = Command::cargo_bin("cgleak")
        .unwrap()
        .args([
            "-v",
            "--root",
            &n.root,
            "diagnose",
            "--format",
            "prometheus",
            "--textfile",
            &f,
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("wrote {f}")), "{err}");
}

#[test]
fn textfile_refusals_exit_2_and_write_nothing() {
    let n = Node::new("6.1", 20, 0, false);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/cgleak.prom");
    let m = missing.display().to_string();
    let (code, out, err) = n.diagnose(&["--format", "prometheus", "--textfile", &m]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
    assert!(err.contains(&m) && err.contains("does not exist"), "{err}");
    assert!(!dir.path().join("no").exists());

    let txt = dir.path().join("cgleak.txt").display().to_string();
    let (code, _, err) = n.diagnose(&["--format", "prometheus", "--textfile", &txt]);
    assert_eq!(code, 2);
    assert!(err.contains("*.prom"), "{err}");

    let ok = dir.path().join("cgleak.prom").display().to_string();
    for format in ["text", "json", "npd"] {
        let (code, out, err) = n.diagnose(&["--format", format, "--textfile", &ok]);
        assert_eq!(code, 2, "{format}: {err}");
        assert!(
            out.is_empty() && err.contains("--format prometheus"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// This machine's kernel, read-only: whatever it finds (v1, v2, no hierarchy), one NPD line
/// and a valid exposition with the documented exit codes, as root and as an unprivileged user.
#[test]
fn real_machine_read_only() {
    let bin = assert_cmd::cargo::cargo_bin("cgleak");
    let mut users = vec![None];
    if nix::unistd::geteuid().is_root() {
        users.push(Some(65534u32));
    } else {
        eprintln!("SKIP real_machine_read_only as uid 65534: not root, cannot change uid");
    }
    for uid in users {
        let run = |format: &str| {
            let mut c = std::process::Command::new(&bin);
            c.args(["diagnose", "--format", format])
                .env("RUST_LOG", "warn");
            if let Some(uid) = uid {
                use std::os::unix::process::CommandExt;
                c.uid(uid).gid(uid);
            }
            let o = c.output().unwrap();
            (
                o.status.code().unwrap(),
                String::from_utf8(o.stdout).unwrap(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        };
        let (code, out, err) = run("npd");
        assert!((0..=2).contains(&code), "uid {uid:?}: {code} {err}");
        let line = assert_npd_line(&out);
        let status = line.split(':').next().unwrap();
        let want = match status {
            "HEALTHY" => 0,
            "AT-RISK" | "LEAKING" => 1,
            _ => 2,
        };
        assert_eq!(code, want, "uid {uid:?}: {line}");
        eprintln!("uid {uid:?}: exit {code}: {line}");
        let (pcode, text, err) = run("prometheus");
        if code == 2 && text.is_empty() {
            // No memory hierarchy at all here: nothing to export, said on stderr.
            assert!(err.contains("cgleak:"), "{err}");
            assert_eq!(pcode, 2, "uid {uid:?}");
            eprintln!("SKIP the exposition check as uid {uid:?}: nothing to export ({err})");
            continue;
        }
        let status = status.to_ascii_lowercase();
        check_prometheus(&text, &status);
        assert_eq!(pcode, code, "uid {uid:?}");
    }
}

/// A Go duration as NPD's config parses it (time.ParseDuration), for the units it uses.
fn go_duration(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = s;
    assert!(!s.is_empty(), "empty duration");
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        assert!(digits > 0, "bad duration {s:?}");
        let n: u64 = rest[..digits].parse().unwrap();
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            u => panic!("unit {u:?} in {s:?}"),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    total
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    k.sort();
    k
}

/// Every key must be one NPD knows: Go's encoding/json ignores unknown keys, so a misspelt
/// "invoke_intervall" would silently fall back to the default.
fn only_keys(v: &Value, allowed: &[&str], what: &str) {
    for k in keys(v) {
        assert!(allowed.contains(&k), "{what}: unknown key {k:?}");
    }
}

#[test]
fn npd_config_passes_npd_validation() {
    let path = repo("deploy/node-problem-detector/cgleak-monitor.json");
    let c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    only_keys(
        &c,
        &[
            "plugin",
            "pluginConfig",
            "source",
            "metricsReporting",
            "conditions",
            "rules",
        ],
        "top level",
    );
    // CustomPluginConfig.Validate(): only the "custom" plugin exists.
    assert_eq!(c["plugin"], "custom");
    assert!(!c["source"].as_str().unwrap().is_empty());
    assert!(c["metricsReporting"].is_boolean());
    let pc = &c["pluginConfig"];
    only_keys(
        pc,
        &[
            "invoke_interval",
            "timeout",
            "max_output_length",
            "concurrency",
            "enable_message_change_based_condition_update",
            "skip_initial_status",
        ],
        "pluginConfig",
    );
    let interval = go_duration(pc["invoke_interval"].as_str().unwrap());
    let global_timeout = go_duration(pc["timeout"].as_str().unwrap());
    // Not NPD's rule but the plugin's: a run must end before the next one is due.
    assert!(
        global_timeout < interval,
        "timeout {global_timeout:?} >= interval {interval:?}"
    );
    // NPD cuts the message at max_output_length bytes: cgleak's line must fit whole.
    let max_out = pc["max_output_length"].as_u64().unwrap() as usize;
    assert!(max_out > NPD_MAX_LINE, "max_output_length {max_out}");
    assert!(pc["concurrency"].as_u64().unwrap() >= 1);
    // The numbers in the message change every run: message-based updates would write the node
    // condition to the API server every minute on every node of the fleet.
    assert_eq!(pc["enable_message_change_based_condition_update"], false);

    let conditions = c["conditions"].as_array().unwrap();
    for cond in conditions {
        only_keys(cond, &["type", "reason", "message"], "condition");
        for k in ["type", "reason", "message"] {
            assert!(!cond[k].as_str().unwrap().is_empty(), "condition {k}");
        }
    }
    let rules = c["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for rule in rules {
        check_rule(rule, conditions, global_timeout);
    }
}

/// One rule of the NPD config: Validate()'s rules, and cgleak's real flags asking for npd.
fn check_rule(rule: &Value, conditions: &[Value], global_timeout: Duration) {
    only_keys(
        rule,
        &[
            "type",
            "condition",
            "reason",
            "path",
            "args",
            "timeout",
            "invoke_interval",
        ],
        "rule",
    );
    // Validate(): rule timeout <= global timeout.
    let t = go_duration(rule["timeout"].as_str().unwrap());
    assert!(
        t <= global_timeout,
        "rule timeout {t:?} > global {global_timeout:?}"
    );
    // Validate(): a permanent rule's condition has a default in "conditions".
    assert_eq!(rule["type"], "permanent");
    let cond = rule["condition"].as_str().unwrap();
    assert!(
        conditions.iter().any(|c| c["type"] == cond),
        "condition {cond} not declared"
    );
    // The reason while the problem lasts must differ from the default one, or the node
    // condition would read the same healthy or not.
    let default = conditions.iter().find(|c| c["type"] == cond).unwrap();
    assert_ne!(rule["reason"], default["reason"]);
    // Validate() stats the path on the node; here: an absolute path to the cgleak binary.
    let p = Path::new(rule["path"].as_str().unwrap());
    assert!(
        p.is_absolute() && p.file_name().unwrap() == "cgleak",
        "{p:?}"
    );
    // The args are cgleak's real flags (a renamed flag breaks this) and ask for npd.
    let args: Vec<&str> = rule["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("cgleak").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match cli.command {
        Cmd::Diagnose(d) => {
            assert_eq!(d.format, DiagnoseFormat::Npd);
            assert!(d.textfile.is_none());
        }
        other => panic!("rule runs {other:?}"),
    }
}

fn yaml_doc(rel: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(repo(rel)).unwrap();
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    assert_eq!(docs.len(), 1, "{rel}: one document");
    docs.remove(0)
}

fn strs(y: &yaml_rust2::Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn daemonset_is_read_only_and_runs_cgleak_with_real_flags() {
    let d = yaml_doc("deploy/daemonset.yaml");
    assert_eq!(d["apiVersion"].as_str(), Some("apps/v1"));
    assert_eq!(d["kind"].as_str(), Some("DaemonSet"));
    let spec = &d["spec"]["template"]["spec"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    for (k, v) in d["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(
            &labels[k.as_str().unwrap()],
            v,
            "selector does not match the pods"
        );
    }
    // kubelet detection reads the host's /proc/<pid>/comm.
    assert_eq!(spec["hostPID"].as_bool(), Some(true));
    assert_eq!(spec["hostNetwork"].as_bool(), None);
    let containers = spec["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_badvalue(),
        "capabilities added"
    );

    // Volumes: hostPath only, the memory hierarchy read-only, the textfile dir writable.
    let mounts = mounts_of(spec, c);

    // The args, through cgleak's real clap definition.
    let args = strs(&c["args"]);
    let cli = Cli::try_parse_from(std::iter::once("cgleak".to_string()).chain(args.clone()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let root = cli.global.root.display().to_string();
    let textfile = match cli.command {
        Cmd::Diagnose(a) => {
            assert_eq!(a.format, DiagnoseFormat::Prometheus);
            a.textfile.expect("--textfile")
        }
        other => panic!("runs {other:?}"),
    };
    assert_eq!(
        mounts.get(&root),
        Some(&("/sys/fs/cgroup/memory".to_string(), true)),
        "--root {root} must be the host's memory hierarchy, read-only: {mounts:?}"
    );
    let tdir = textfile.parent().unwrap().display().to_string();
    assert!(
        matches!(mounts.get(&tdir), Some((h, false)) if *h == tdir),
        "--textfile's directory {tdir} must be the host's, writable: {mounts:?}"
    );
    assert!(textfile.to_str().unwrap().ends_with(".prom"));
    for (path, (_, ro)) in &mounts {
        assert!(*ro || *path == tdir, "{path} writable");
    }

    run_the_loop(&strs(&c["command"]), &args, &root, &textfile);
}

/// The DaemonSet's mounts: mount path -> (host path, read-only).
fn mounts_of(
    spec: &yaml_rust2::Yaml,
    c: &yaml_rust2::Yaml,
) -> std::collections::BTreeMap<String, (String, bool)> {
    let host_path = |name: &str| -> String {
        spec["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("volume {name}"))["hostPath"]["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut mounts = std::collections::BTreeMap::new();
    for m in c["volumeMounts"].as_vec().unwrap() {
        let host = host_path(m["name"].as_str().unwrap());
        let ro = m["readOnly"].as_bool().unwrap_or(false);
        mounts.insert(m["mountPath"].as_str().unwrap().to_string(), (host, ro));
    }

    mounts
}

/// Run the container's loop here (PATH finds this build's cgleak) on an emulated node, with
/// the paths swapped and a 1 s interval: it writes the file, goes on, and ends on SIGTERM.
fn run_the_loop(command: &[String], args: &[String], root: &str, textfile: &Path) {
    let node = Node::new("3.10", 20, 64_000, true);
    let out = tempfile::tempdir().unwrap();
    let prom = out.path().join("cgleak.prom");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a == root {
                node.root.clone()
            } else if Path::new(a) == textfile {
                prom.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let bin_dir = assert_cmd::cargo::cargo_bin("cgleak")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .args(&args)
        .env("PATH", path)
        .env("CGLEAK_INTERVAL", "1")
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut writes = 0;
    let mut last = None;
    while writes < 2 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(m) = std::fs::metadata(&prom) {
            let t = m.modified().unwrap();
            if last != Some(t) {
                writes += 1;
                last = Some(t);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(writes >= 2, "the loop wrote {writes} times in 20 s");
    check_prometheus(&std::fs::read_to_string(&prom).unwrap(), "at-risk");
    // Only the child this test started, by its pid.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    // The loop stopped on the signal through its trap (exit 0), not killed by it (a shell
    // without the trap dies of SIGTERM: no exit code).
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), None, "{status:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// Issue 15: the DaemonSet's image can be built from the repository as it stands:
/// deploy/Dockerfile puts what the DaemonSet's command runs (/bin/sh, sleep, cgleak on PATH)
/// on an empty base, and README and the Dockerfile name the image the DaemonSet pulls. The image
/// is not built here: no container runtime may run on the test machines.
#[test]
fn dockerfile_gives_the_daemonset_what_it_runs() {
    let df = std::fs::read_to_string(repo("deploy/Dockerfile")).unwrap();
    let lines: Vec<&str> = df
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let final_stage = &lines[last_from..];
    assert_eq!(final_stage[0], "FROM scratch", "an empty base");
    let copied: Vec<&str> = final_stage
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for needed in ["/bin/sh", "/bin/sleep", "/usr/local/bin/cgleak"] {
        assert!(
            copied.contains(&needed),
            "{needed} not in the image: {copied:?}"
        );
    }
    assert!(final_stage.contains(&"COPY dist/cgleak /usr/local/bin/cgleak"));
    let path = final_stage
        .iter()
        .find_map(|l| l.strip_prefix("ENV PATH="))
        .expect("PATH set: an empty base has none");
    assert!(path.split(':').any(|d| d == "/usr/local/bin"), "{path}");
    assert!(std::fs::read_to_string(repo("scripts/release.sh"))
        .unwrap()
        .contains("dist/cgleak"));

    let d = yaml_doc("deploy/daemonset.yaml");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let command = strs(&c["command"]);
    assert_eq!(command[0], "/bin/sh");
    assert!(command[2].contains("cgleak \"$@\"") && command[2].contains("sleep"));
    let image = c["image"].as_str().unwrap();
    let tag = format!("cgleak:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(image, tag, "the DaemonSet pulls this version");
    assert!(df.contains(&tag), "the Dockerfile's build line names {tag}");
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(
        readme.contains("docker build -f deploy/Dockerfile"),
        "README says how to build the image"
    );
}
