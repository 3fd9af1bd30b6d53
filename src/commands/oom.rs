//! `cgleak oom`: read-only; the OOM kills of this node (its /dev/kmsg) or of a copied kernel
//! log, with the pod and container each victim belonged to. Exit codes as diagnose: 0 no kill
//! (in the --since window), 1 kills found, 2 could not tell (bad input, unreadable log).
//! --follow keeps reading /dev/kmsg and prints each kill once its report is complete, until
//! Ctrl-C or SIGTERM (exit 0).

use crate::cli::{DoctorFormat, Global, OomArgs};
use crate::doctor::identity::Names;
use crate::doctor::kmsg::{self, Kmsg, Log};
use crate::doctor::{oom_render, oomlog};
use crate::error::{Error, Result};
use crate::host::kernel::KernelHost;
use crate::host::Host;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) fn run(_g: &Global, a: &OomArgs) -> Result<u8> {
    if a.follow && !matches!(a.format, DoctorFormat::Text | DoctorFormat::Json) {
        return Err(Error::Usage(
            "--follow prints each kill as it happens: use it with --format text or json"
                .to_string(),
        ));
    }
    let since = a
        .since
        .as_deref()
        .map(|s| parse_since(s, now_us()).map_err(Error::Usage))
        .transpose()?;
    super::textfile_first(a.format, a.textfile.as_deref())?;
    let machine = matches!(a.format, DoctorFormat::Npd | DoctorFormat::Prometheus);
    let (report, kmsg) = match gather(a, since) {
        Ok(r) => r,
        Err(e) if machine => return Ok(super::could_not_tell(a.format, &e)),
        Err(e) => return Err(e),
    };
    let code = u8::from(!report.kills.is_empty());
    match emit(a, &report) {
        Ok(true) => {}
        Ok(false) => return Ok(code),
        // The textfile's readers take exit 1 for "kills found": a failed write is "could not
        // tell", as in diagnose.
        Err(e) if machine => {
            eprintln!("cgleak: {e}");
            return Ok(2);
        }
        Err(e) => return Err(e),
    }
    match kmsg {
        Some(k) if a.follow => follow(a, k),
        _ => Ok(code),
    }
}

/// Print the report in its format; false when standard output is gone (| head).
fn emit(a: &OomArgs, r: &oomlog::Report) -> Result<bool> {
    let since = a.since.as_deref();
    let text = match a.format {
        DoctorFormat::Text => oom_render::render_text(r, since),
        DoctorFormat::Json => oom_render::render_json(r),
        DoctorFormat::Npd => oom_render::render_npd(r),
        DoctorFormat::Prometheus => {
            let text = oom_render::render_prometheus(r);
            if let Some(p) = &a.textfile {
                crate::diagnose::export::write_textfile(p, text.as_bytes())?;
                log::info!("wrote {} ({} kills)", p.display(), r.kills.len());
                return Ok(true);
            }
            text
        }
    };
    Ok(write_out(&text))
}

/// Write to standard output; false once the reader has gone (EPIPE).
fn write_out(s: &str) -> bool {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes()).and_then(|()| o.flush()).is_ok()
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The report, and /dev/kmsg still open when it was the source (for --follow).
fn gather(a: &OomArgs, since: Option<i64>) -> Result<(oomlog::Report, Option<Kmsg>)> {
    let (source, log, notes, kmsg) = match &a.input {
        Some(p) => {
            let (source, log, notes) = read_copied(p)?;
            (source, log, notes, None)
        }
        None => {
            let (log, notes, k) = read_live()?;
            (kmsg::DEV_KMSG.to_string(), log, notes, Some(k))
        }
    };
    if log.records.is_empty() {
        return Err(Error::Usage(format!(
            "no kernel log records in {source} ({} lines skipped as garbled or binary): cannot \
             tell; give it what `dmesg`, `journalctl -k` or /dev/kmsg prints",
            log.skipped
        )));
    }
    let names = load_names(a);
    let report = oomlog::report(&source, log, &names, notes, since);
    Ok((report, kmsg))
}

fn load_names(a: &OomArgs) -> Names {
    Names::load(
        &KernelHost,
        &a.pods_log_dir.to_string_lossy(),
        &a.containerd_state_dir.to_string_lossy(),
    )
}

/// This node's boot time, from /proc/uptime.
fn boot_wall_us() -> Option<i64> {
    let up = KernelHost.proc_file("uptime").ok()??;
    kmsg::boot_wall_us(&up, SystemTime::now())
}

/// Every record of this node's /dev/kmsg, with wall times from its boot time.
fn read_live() -> Result<(Log, Vec<String>, Kmsg)> {
    let mut k = Kmsg::open(Path::new(kmsg::DEV_KMSG))?;
    let mut log = Log::default();
    k.read_available(&mut log)?;
    let mut notes = Vec::new();
    match boot_wall_us() {
        Some(b) => kmsg::set_wall_times(&mut log.records, b),
        None => notes.push("/proc/uptime unreadable: wall times unknown".to_string()),
    }
    if let Some(first) = log.records.first() {
        if first.seq.is_some_and(|s| s > 0) {
            notes.push(format!(
                "the kernel log begins at record {} ({:.0} s after boot): older records, and \
                 the kills in them, were overwritten",
                first.seq.unwrap_or(0),
                first.since_boot_us.unwrap_or(0) as f64 / 1e6
            ));
        }
    }
    Ok((log, notes, k))
}

/// A copied log from a file or standard input (`-`). Times since boot become wall times only
/// when the log is of this boot of this node (its records are in /dev/kmsg now).
fn read_copied(p: &Path) -> Result<(String, Log, Vec<String>)> {
    let (source, bytes) = if p == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut b)
            .map_err(|e| Error::io("read", "standard input", e))?;
        ("standard input".to_string(), b)
    } else {
        let b = std::fs::read(p).map_err(|e| Error::io("read", p, e))?;
        (p.display().to_string(), b)
    };
    let mut log = kmsg::parse_text(&bytes);
    let mut notes = Vec::new();
    let untimed = log
        .records
        .iter()
        .any(|r| r.since_boot_us.is_some() && r.wall_us.is_none());
    if untimed {
        notes.push(place_in_this_boot(&mut log));
    }
    if log.forms.contains(&kmsg::Form::Journal) {
        notes.push(
            "journalctl's short format has no year: taken as the latest that is not in the future"
                .to_string(),
        );
    }
    Ok((source, log, notes))
}

/// Give a copied log's times since boot wall times when it is this boot's; the note says which.
fn place_in_this_boot(log: &mut Log) -> String {
    let mut live = Log::default();
    let read = Kmsg::open(Path::new(kmsg::DEV_KMSG)).and_then(|mut k| k.read_available(&mut live));
    let boot = boot_wall_us();
    match (read, boot) {
        (Ok(()), Some(b)) if kmsg::same_boot(&log.records, &live.records) => {
            kmsg::set_wall_times(&mut log.records, b);
            "the log is of this boot of this node (its records are in /dev/kmsg): wall times \
             from this node's boot time"
                .to_string()
        }
        (Ok(()), _) => "the log has times since boot only and is not this node's current boot: \
                        wall times are null (since_boot_s is kept)"
            .to_string(),
        (Err(_), _) => "the log has times since boot only, and /dev/kmsg could not be read to \
                        tell whether it is this boot's: wall times are null (since_boot_s is kept)"
            .to_string(),
    }
}

/// How long the log must stay quiet after a kill line before the kill counts as complete
/// (its oom.group members and reaper lines follow within milliseconds).
const QUIET: Duration = Duration::from_millis(800);

/// Keep reading /dev/kmsg; print each kill once the log has been quiet after it.
fn follow(a: &OomArgs, mut k: Kmsg) -> Result<u8> {
    crate::interrupt::install_handler();
    let boot = boot_wall_us();
    let mut pending = Log::default();
    let mut last_new = Instant::now();
    while !crate::interrupt::interrupted() {
        let before = pending.records.len();
        if k.wait(Duration::from_millis(250))? {
            k.read_available(&mut pending)?;
        }
        if let Some(b) = boot {
            kmsg::set_wall_times(&mut pending.records[before..], b);
        }
        if pending.records.len() > before {
            last_new = Instant::now();
            continue;
        }
        if last_new.elapsed() < QUIET || pending.records.is_empty() {
            continue;
        }
        if !print_complete(a, &mut pending)? {
            return Ok(0);
        }
    }
    Ok(0)
}

/// Print the kills in `pending` and keep only what may still grow into one (a report begun
/// after the last kill line); false when standard output is gone.
fn print_complete(a: &OomArgs, pending: &mut Log) -> Result<bool> {
    let keep_from = pending_tail(&pending.records);
    let done = Log {
        records: pending.records.drain(..keep_from).collect(),
        ..Log::default()
    };
    if pending.records.len() > 4096 {
        pending.records.clear();
    }
    let report = oomlog::report(kmsg::DEV_KMSG, done, &load_names(a), Vec::new(), None);
    for kill in &report.kills {
        let s = match a.format {
            DoctorFormat::Json => oom_render::render_kill_json_line(kill),
            _ => oom_render::render_kill_text(kill) + "\n",
        };
        if !write_out(&s) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where the records that may still be part of an unfinished report begin: at the last
/// report header after the last kill line, else at the end.
fn pending_tail(records: &[kmsg::Record]) -> usize {
    let last_kill = records
        .iter()
        .rposition(|r| r.text.contains("Killed process "))
        .map_or(0, |i| i + 1);
    records[last_kill..]
        .iter()
        .position(|r| r.text.contains(" invoked oom-killer: "))
        .map_or(records.len(), |i| last_kill + i)
}

/// `--since`: a duration back from `now_us` (`90s`, `10m`, `2h`, `1d`, `1h30m`) or a time
/// (RFC 3339 `2026-12-02T10:00:00Z`, or `2026-12-02 10:00:00` in the node's time zone), as
/// microseconds since the epoch.
pub fn parse_since(s: &str, now_us: i64) -> std::result::Result<i64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "--since {s:?}: not a duration (90m, 2h, 3d) or a time (2026-12-02T10:00:00Z, \
             \"2026-12-02 10:00:00\")"
        )
    };
    if let Some(d) = parse_duration_s(t) {
        return Ok(now_us - d * 1_000_000);
    }
    let iso = if t.len() == 10 {
        format!("{t}T00:00:00")
    } else {
        t.replacen(' ', "T", 1)
    };
    kmsg::parse_iso(&iso).ok_or_else(bad)
}

/// `90s`, `10m`, `2h`, `3d`, `1w` and sums like `1h30m`, in seconds.
fn parse_duration_s(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: i64 = num.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        num.clear();
    }
    num.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_durations_and_times() {
        let now = 1_796_278_303_000_000;
        assert_eq!(parse_since("10m", now), Ok(now - 600_000_000));
        assert_eq!(parse_since("1h30m", now), Ok(now - 5_400_000_000));
        assert_eq!(parse_since("2d", now), Ok(now - 172_800_000_000));
        assert_eq!(
            parse_since("2026-12-03T06:11:43Z", now),
            Ok(1_796_278_303_000_000)
        );
        std::env::set_var("TZ", "UTC");
        assert_eq!(
            parse_since("2026-12-03 06:11:43", now),
            Ok(1_796_278_303_000_000)
        );
        assert_eq!(parse_since("2026-12-03", now), Ok(1_796_256_000_000_000));
        for bad in [
            "",
            "10",
            "10x",
            "m",
            "yesterday",
            "2026-13-03",
            "99999999999999999999d",
        ] {
            let e = parse_since(bad, now).unwrap_err();
            assert!(e.contains("--since"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_tail_kept_while_following_is_an_unfinished_report() {
        let log = kmsg::parse_text(
            b"a invoked oom-killer: x\nKilled process 1 (a) total-vm:1kB\nnoise\n\
              b invoked oom-killer: y\nmemory: usage 1kB, limit 1kB, failcnt 1\n",
        );
        assert_eq!(pending_tail(&log.records), 3);
        let done = kmsg::parse_text(b"a invoked oom-killer: x\nKilled process 1 (a) x\nz\n");
        assert_eq!(pending_tail(&done.records), 3);
    }
}
