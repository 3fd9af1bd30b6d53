//! Kernel log records, from this node's /dev/kmsg or from a log copied off a node, in the
//! forms operators have at hand; and the pr_cont merging that turns the pieces of one printed
//! line back into that line (docs/oom-log.md has the formats with their sources).
//!
//! Forms recognised, line by line (a file may mix them: two logs pasted together):
//! - /dev/kmsg records `prio,seq,usec,flags[,more];text` (Documentation/ABI/testing/dev-kmsg):
//!   unknown fields after the fourth are ignored, `caller=T123` (CONFIG_PRINTK_CALLER) is kept,
//!   bytes the kernel escaped as `\xNN` are unescaped, and an escaped newline (`\x0a`, one record
//!   printed with embedded newlines, as 5.x prints memory.stat) splits the record into lines that
//!   keep its time. Lines starting with a space after a record are its dictionary (`
//!   SUBSYSTEM=...`): not text.
//! - `dmesg` (`[  123.456789] text`, also `dmesg -r`'s `<4>` prefix and the `[  T123]` caller
//!   column), `dmesg -T` (`[Thu Dec  3 06:11:43 2026] text`, local time), `dmesg
//!   --time-format iso` (`2026-12-03T06:11:43,123456+00:00 text`).
//! - `journalctl -k` (`Dec 03 06:11:43 host kernel: text`, local time, the year not written:
//!   taken so that the time is not in the future) and `-o short-iso[-precise]`
//!   (`2026-12-03T06:11:43+0000 host kernel: text`). `-- Boot ... --` markers are not records.
//! - Bare lines: the text alone, no time.
//!
//! A line that starts like one of the forms and breaks off (a truncated copy), or that holds
//! binary bytes, is counted in [`Log::skipped`] and dropped; nothing here panics on input.

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

/// The form a record's line was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    Kmsg,
    Dmesg,
    DmesgCtime,
    DmesgIso,
    Journal,
    JournalIso,
    Bare,
}

impl Form {
    /// How an operator would name the form.
    pub fn describe(self) -> &'static str {
        match self {
            Form::Kmsg => "/dev/kmsg records",
            Form::Dmesg => "dmesg",
            Form::DmesgCtime => "dmesg -T",
            Form::DmesgIso => "dmesg --time-format iso",
            Form::Journal => "journalctl -k",
            Form::JournalIso => "journalctl -k -o short-iso",
            Form::Bare => "bare lines",
        }
    }
}

/// One line of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The kernel's sequence number (kmsg form only).
    pub seq: Option<u64>,
    /// Microseconds since boot (kmsg, dmesg): the kernel's local_clock at printk.
    pub since_boot_us: Option<u64>,
    /// Wall-clock time, microseconds since the epoch, when the line carries it or the boot
    /// time of this node is known.
    pub wall_us: Option<i64>,
    /// The kmsg flags field (`-`, `c` a fragment, `+` a later fragment on 3.10-4.8): hints
    /// only, the ABI document says they are not necessarily correct.
    pub flag: char,
    /// The printing task or CPU (`T123`, `C1`) where the log names it.
    pub caller: Option<String>,
    pub text: String,
    pub form: Form,
}

/// A kernel log read from a file or from /dev/kmsg.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub records: Vec<Record>,
    /// Garbled, truncated or binary lines, dropped.
    pub skipped: u64,
    /// Records the kernel overwrote while they were read (EPIPE from /dev/kmsg).
    pub overwritten: u64,
    /// Journal lines from something other than the kernel (journalctl without -k).
    pub not_kernel: u64,
    pub forms: BTreeSet<Form>,
}

/// What /dev/kmsg refuses non-root readers with (EPERM under dmesg_restrict, EACCES by mode).
pub const KMSG_NEEDS_ROOT: &str =
    "reading /dev/kmsg needs root (or CAP_SYSLOG): run as root, or `dmesg | cgleak oom --input -`";

/// The node's kernel log device.
pub const DEV_KMSG: &str = "/dev/kmsg";

/// Parse a whole copied log.
pub fn parse_text(bytes: &[u8]) -> Log {
    let mut log = Log::default();
    let mut after_kmsg = false;
    for raw in bytes.split(|b| *b == b'\n') {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let Some(line) = clean_line(raw) else {
            log.skipped += 1;
            after_kmsg = false;
            continue;
        };
        // A kmsg record's dictionary: " KEY=value" lines right after it.
        if after_kmsg && line.starts_with(' ') && line.contains('=') {
            continue;
        }
        after_kmsg = false;
        match parse_line(line) {
            Parsed::Records(mut rs) => {
                continued_line(log.records.last(), &mut rs);
                after_kmsg = rs.first().map(|r| r.form) == Some(Form::Kmsg);
                if let Some(r) = rs.first() {
                    log.forms.insert(r.form);
                }
                log.records.extend(rs);
            }
            Parsed::Ignore => {}
            Parsed::NotKernel => log.not_kernel += 1,
            Parsed::Garbled => log.skipped += 1,
        }
    }
    log
}

/// dmesg and journalctl print the later lines of a record with embedded newlines (5.x's
/// memory.stat, the Mem-Info block) indented and without a time: such a line keeps the time
/// and form of the line before it.
fn continued_line(prev: Option<&Record>, rs: &mut [Record]) {
    let (Some(prev), [r]) = (prev, rs) else {
        return;
    };
    let timed_text = !matches!(prev.form, Form::Kmsg | Form::Bare);
    if r.form == Form::Bare && timed_text && r.text.starts_with([' ', '\t']) {
        r.text = r.text.trim_start().to_string();
        r.since_boot_us = prev.since_boot_us;
        r.wall_us = prev.wall_us;
        r.seq = prev.seq;
        r.caller = prev.caller.clone();
        r.form = prev.form;
    }
}

/// The line as text, or None when it holds bytes no kernel log line has (NUL, control
/// characters other than tab, invalid UTF-8): binary junk.
fn clean_line(raw: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.chars()
        .any(|c| (c.is_control() && c != '\t') || c == '\u{fffd}')
    {
        return None;
    }
    Some(s)
}

enum Parsed {
    Records(Vec<Record>),
    Ignore,
    NotKernel,
    Garbled,
}

/// One line of a copied log, in whichever form it is.
fn parse_line(line: &str) -> Parsed {
    if looks_like_kmsg(line) {
        return match parse_kmsg(line) {
            Some(rs) => Parsed::Records(rs),
            None => Parsed::Garbled,
        };
    }
    let line = strip_prio(line);
    if let Some(rest) = line.strip_prefix('[') {
        if let Some(p) = parse_dmesg(rest) {
            return p;
        }
    }
    if let Some(p) = parse_iso_line(line) {
        return p;
    }
    if let Some(p) = parse_journal_short(line) {
        return p;
    }
    if line.starts_with("-- ") {
        // journalctl's "-- Boot 0f3c... --", "-- Logs begin at ...", "-- No entries --".
        return Parsed::Ignore;
    }
    Parsed::Records(vec![bare(line, Form::Bare)])
}

fn bare(text: &str, form: Form) -> Record {
    Record {
        seq: None,
        since_boot_us: None,
        wall_us: None,
        flag: '-',
        caller: None,
        text: text.to_string(),
        form,
    }
}

/// `dmesg -r` writes the priority as `<N>` before the time.
fn strip_prio(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('<') {
        if let Some((n, tail)) = rest.split_once('>') {
            if !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()) {
                return tail;
            }
        }
    }
    line
}

/// A line that starts as `N,N,N` is a kmsg record, whole or broken off (a truncated copy).
fn looks_like_kmsg(line: &str) -> bool {
    let mut parts = line.splitn(4, ',');
    let numeric =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let starts_numeric =
        |s: Option<&str>| s.is_some_and(|s| s.starts_with(|c: char| c.is_ascii_digit()));
    numeric(parts.next()) && numeric(parts.next()) && starts_numeric(parts.next())
}

/// A `prio,seq,usec,flags[,more];text` record, split at escaped newlines; None when broken.
pub fn parse_kmsg(line: &str) -> Option<Vec<Record>> {
    let (prefix, text) = line.split_once(';')?;
    let mut fields = prefix.split(',');
    let _prio: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let usec: u64 = fields.next()?.parse().ok()?;
    let flag = fields.next()?.chars().next().unwrap_or('-');
    let caller = fields
        .find_map(|f| f.strip_prefix("caller="))
        .map(str::to_string);
    let text = unescape(text);
    Some(
        text.split('\n')
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, l)| Record {
                seq: Some(seq),
                since_boot_us: Some(usec),
                wall_us: None,
                flag: if i == 0 { flag } else { '-' },
                caller: caller.clone(),
                text: l.to_string(),
                form: Form::Kmsg,
            })
            .collect(),
    )
}

/// Undo the kernel's `\xNN` escaping of kmsg text (non-printable bytes and `\` itself).
pub fn unescape(s: &str) -> String {
    if !s.contains("\\x") {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] == b'x' {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After the `[` of a dmesg line: `  123.456789] text`, `Thu Dec  3 06:11:43 2026] text`;
/// None when the bracket is not a dmesg time (a task table row, a stack address).
fn parse_dmesg(rest: &str) -> Option<Parsed> {
    let trimmed = rest.trim_start();
    let digits = trimmed.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && trimmed.as_bytes().get(digits) == Some(&b'.') {
        let Some((stamp, text)) = trimmed.split_once(']') else {
            return Some(Parsed::Garbled);
        };
        let Some(us) = parse_seconds(stamp) else {
            return Some(Parsed::Garbled);
        };
        let (caller, text) = split_caller(text.strip_prefix(' ').unwrap_or(text));
        let mut r = bare(text, Form::Dmesg);
        r.since_boot_us = Some(us);
        r.caller = caller;
        return Some(Parsed::Records(vec![r]));
    }
    let (stamp, text) = rest.split_once(']')?;
    let wall = parse_ctime(stamp)?;
    let mut r = bare(text.strip_prefix(' ').unwrap_or(text), Form::DmesgCtime);
    r.wall_us = Some(wall);
    Some(Parsed::Records(vec![r]))
}

/// `123.456789` as microseconds.
fn parse_seconds(s: &str) -> Option<u64> {
    let (secs, frac) = s.trim().split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros: u64 = frac.parse().ok()?;
    let len = frac.len() as u32;
    if len < 6 {
        micros *= 10u64.pow(6 - len);
    } else {
        micros /= 10u64.pow(len - 6);
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// The `[  T123]` / `[    C1]` caller column dmesg prints with CONFIG_PRINTK_CALLER.
fn split_caller(text: &str) -> (Option<String>, &str) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((id, tail)) = rest.split_once(']') {
            let id = id.trim();
            let ok = id.len() >= 2
                && (id.starts_with('T') || id.starts_with('C'))
                && id[1..].bytes().all(|b| b.is_ascii_digit());
            if ok {
                return (Some(id.to_string()), tail.strip_prefix(' ').unwrap_or(tail));
            }
        }
    }
    (None, text)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn month(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

/// `HH:MM:SS` as (h, m, s).
fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = it.next()?.parse().ok()?;
    let m = it.next()?.parse().ok()?;
    let sec = it.next()?.parse().ok()?;
    (it.next().is_none() && h < 24 && m < 60 && sec < 61).then_some((h, m, sec))
}

/// `Thu Dec  3 06:11:43 2026` (ctime, local time) as microseconds since the epoch.
fn parse_ctime(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 5 || f[0].len() != 3 {
        return None;
    }
    let (mon, day) = (month(f[1])?, f[2].parse::<u32>().ok()?);
    let (h, m, sec) = parse_hms(f[3])?;
    let year: i32 = f[4].parse().ok()?;
    local_to_epoch(year, mon, day, h, m, sec).map(|t| t * 1_000_000)
}

/// `journalctl -k`'s default `Dec 03 06:11:43 host kernel: text` (the day may be space
/// padded).
fn parse_journal_short(line: &str) -> Option<Parsed> {
    let w: Vec<&str> = line.split_whitespace().take(4).collect();
    if w.len() < 4 {
        return None;
    }
    let mon = month(w[0])?;
    let day: u32 = w[1].parse().ok()?;
    let (h, m, s) = parse_hms(w[2])?;
    let wall = journal_year_guess(mon, day, h, m, s)?;
    Some(journal_record(skip_words(line, 4)?, wall, Form::Journal))
}

/// The text after the `n`th whitespace-separated word of `line`.
fn skip_words(line: &str, n: usize) -> Option<&str> {
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// The rest of a journal line after its time: `host kernel: text`, where the identifier must
/// be `kernel:` (other programs' lines are counted, not used).
fn journal_record(ident_and_text: &str, wall_us: i64, form: Form) -> Parsed {
    let Some(text) = ident_and_text.strip_prefix("kernel:") else {
        return Parsed::NotKernel;
    };
    let text = text.strip_prefix(' ').unwrap_or(text);
    let mut r = bare(text, form);
    r.wall_us = Some(wall_us);
    Parsed::Records(vec![r])
}

/// The journal's short format has no year: the latest year that does not put the line more
/// than a day in the future.
fn journal_year_guess(mon: u32, day: u32, h: u32, m: u32, s: u32) -> Option<i64> {
    let now = now_epoch_s();
    let year = civil_from_days(now.div_euclid(86_400)).0;
    let t = local_to_epoch(year, mon, day, h, m, s)?;
    if t > now + 86_400 {
        return local_to_epoch(year - 1, mon, day, h, m, s).map(|t| t * 1_000_000);
    }
    Some(t * 1_000_000)
}

/// An ISO-timestamped line: `journalctl -o short-iso[-precise]` (`... host kernel: text`) or
/// `dmesg --time-format iso` (`2026-12-03T06:11:43,123456+00:00 text`).
fn parse_iso_line(line: &str) -> Option<Parsed> {
    let (stamp, rest) = line.split_once(' ')?;
    let wall = parse_iso(stamp)?;
    if stamp.contains(',') {
        let mut r = bare(rest, Form::DmesgIso);
        r.wall_us = Some(wall);
        return Some(Parsed::Records(vec![r]));
    }
    let (_host, ident_text) = rest.split_once(' ')?;
    Some(journal_record(ident_text, wall, Form::JournalIso))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac|,frac](Z|+HHMM|+HH:MM)` as microseconds since the epoch; also
/// the `YYYY-MM-DD HH:MM:SS` form when given as one string with a `T`.
pub fn parse_iso(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let mon: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || date.len() != 10 || !valid_date(year, mon, day) {
        return None;
    }
    let zone_at = time.find(['Z', 'z', '+', '-']);
    let (clock, zone) = match zone_at {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    let (hms, frac) = match clock.split_once(['.', ',']) {
        Some((a, b)) => (a, Some(b)),
        None => (clock, None),
    };
    let (h, m, sec) = parse_hms(hms)?;
    let micros = match frac {
        Some(f) => parse_seconds(&format!("0.{f}"))? as i64,
        None => 0,
    };
    let base = match zone {
        Some(z) => {
            let off = parse_offset(z)?;
            utc_epoch(year, mon, day, h, m, sec) - off
        }
        None => local_to_epoch(year, mon, day, h, m, sec)?,
    };
    Some(base * 1_000_000 + micros)
}

/// `Z`, `+HHMM`, `+HH:MM`, `-HH` as seconds east of UTC.
fn parse_offset(z: &str) -> Option<i64> {
    if z.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    Some(sign * (h * 3600 + m * 60))
}

/// Whether the day exists in that month (Gregorian leap years).
fn valid_date(y: i32, m: u32, d: u32) -> bool {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (y, m, d) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((yoe + era * 400 + i64::from(m <= 2)) as i32, m, d)
}

fn utc_epoch(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)
}

/// A local wall-clock time (the node's TZ, as dmesg -T and journalctl print it) as seconds
/// since the epoch, by mktime(3), which knows the zone's rules (daylight saving included).
pub fn local_to_epoch(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // SAFETY: tm is a plain C struct; zeroed is a valid value and mktime only reads and
    // normalises it.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = y - 1900;
    tm.tm_mon = mo as i32 - 1;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = s as i32;
    tm.tm_isdst = -1;
    // SAFETY: a valid, exclusively borrowed tm.
    let t = unsafe { nix::libc::mktime(&mut tm) };
    (t != -1).then_some(t)
}

fn now_epoch_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC (`2026-12-03T06:11:43Z`) of microseconds since the epoch.
pub fn rfc3339(wall_us: i64) -> String {
    let secs = wall_us.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// The wall time of boot in microseconds since the epoch: `now` less /proc/uptime's first
/// number. kmsg times are the kernel's local_clock, which stops during suspend while uptime
/// does not, so on a node that suspended the result is early by the time asleep (as dmesg -T).
pub fn boot_wall_us(uptime: &str, now: std::time::SystemTime) -> Option<i64> {
    let up = parse_seconds(uptime.split_whitespace().next()?)?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros() as i64;
    Some(now - up as i64)
}

/// Give the records with a time since boot their wall time, from the boot time.
pub fn set_wall_times(records: &mut [Record], boot_wall_us: i64) {
    for r in records {
        if let (None, Some(us)) = (r.wall_us, r.since_boot_us) {
            r.wall_us = Some(boot_wall_us + us as i64);
        }
    }
}

/// Whether a copied log is of this boot of this node: one of its last timed records is found,
/// time and text alike, in this node's own kernel log. Only then may its times since boot be
/// turned into wall times with this node's boot time.
pub fn same_boot(copied: &[Record], live: &[Record]) -> bool {
    let live: BTreeSet<(u64, &str)> = live
        .iter()
        .filter_map(|r| Some((r.since_boot_us?, r.text.as_str())))
        .collect();
    copied
        .iter()
        .rev()
        .filter(|r| r.since_boot_us.is_some() && r.text.len() > 8)
        .take(16)
        .any(|r| live.contains(&(r.since_boot_us.unwrap_or(0), r.text.as_str())))
}

/// This node's /dev/kmsg, open for reading from its first record on.
pub struct Kmsg {
    file: std::fs::File,
}

/// The buffer of one read(2): /dev/kmsg returns one record per read and fails with EINVAL
/// when the record does not fit (records are at most 8 KiB with their dictionary).
const KMSG_BUF: usize = 16 * 1024;

/// The error of opening or reading /dev/kmsg: a permission error says how to do without root.
pub fn kmsg_error(path: &Path, op: &'static str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(code) if code == nix::libc::EACCES || code == nix::libc::EPERM => {
            Error::Usage(KMSG_NEEDS_ROOT.to_string())
        }
        _ => Error::io(op, path, e),
    }
}

impl Kmsg {
    /// Open non-blocking: a read with nothing left fails with EAGAIN instead of waiting.
    pub fn open(path: &Path) -> Result<Kmsg> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| kmsg_error(path, "open", e))?;
        Ok(Kmsg { file })
    }

    /// Read every record available now into `log` (until EAGAIN). EPIPE means the kernel
    /// overwrote records since the last read: counted, and reading goes on from the oldest
    /// one left.
    pub fn read_available(&mut self, log: &mut Log) -> Result<()> {
        let mut buf = vec![0u8; KMSG_BUF];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let rec = &buf[..n];
                    let first = rec.split(|b| *b == b'\n').next().unwrap_or_default();
                    match std::str::from_utf8(first).ok().and_then(parse_kmsg) {
                        Some(rs) => {
                            log.forms.insert(Form::Kmsg);
                            log.records.extend(rs);
                        }
                        None => log.skipped += 1,
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if crate::interrupt::interrupted() {
                        return Ok(());
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => log.overwritten += 1,
                Err(e) => return Err(kmsg_error(Path::new(DEV_KMSG), "read", e)),
            }
        }
    }

    /// Wait at most `timeout` for a new record; false on timeout or a signal.
    pub fn wait(&self, timeout: std::time::Duration) -> Result<bool> {
        use std::os::fd::AsRawFd;
        let mut pfd = nix::libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: nix::libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { nix::libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(kmsg_error(Path::new(DEV_KMSG), "poll", e));
        }
        Ok(n > 0 && pfd.revents & (nix::libc::POLLIN | nix::libc::POLLERR) != 0)
    }
}

/// The OOM report lines the kernel prints in pieces, one pr_info and then pr_cont calls
/// (mm/oom_kill.c dump_header and dump_oom_summary, mm/memcontrol.c
/// mem_cgroup_print_oom_info / _context / _group). On another CPU's printk in between, each
/// piece becomes a record of its own: `dmesg` shows it on a line of its own, kmsg flags it `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pieces {
    /// 4.14: `... invoked oom-killer: gfp_mask=%#x(%pGg), nodemask=` + `(null)` or the list +
    /// `,  order=%d, oom_score_adj=%hd`.
    Header,
    /// 3.10: `Task in %s killed` + ` as a result of limit of %s`; 4.x: `Task in ` + path +
    /// ` killed as a result of limit of ` + path.
    TaskIn,
    /// 5.0+: `oom-kill:constraint=...,nodemask=...` + `,cpuset=...,mems_allowed=...` +
    /// `,oom_memcg=` + path (or `,global_oom`) + `,task_memcg=` + path + `,task=...,pid=...,uid=...`.
    OomKill,
    /// 4.19+: `Tasks in ` + path + ` are going to be killed due to memory.oom.group set`.
    Group,
}

/// How many lines an unfinished line waits for its next piece among other CPUs' output.
const PIECE_LOOKAHEAD: usize = 16;

/// The kind of an unfinished piece-built line, None when the line is complete or not one.
fn unfinished(text: &str) -> Option<Pieces> {
    if text.contains(" invoked oom-killer: ") {
        return (!text.contains("oom_score_adj=")).then_some(Pieces::Header);
    }
    if text.starts_with("Task in ") {
        let done = text
            .split_once(" as a result of limit of ")
            .is_some_and(|(_, p)| p.starts_with('/'));
        return (!done).then_some(Pieces::TaskIn);
    }
    if text.starts_with("oom-kill:") {
        let done = text
            .rsplit_once(",uid=")
            .is_some_and(|(_, u)| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()));
        return (!done).then_some(Pieces::OomKill);
    }
    if text.starts_with("Tasks in ") && !text.contains(" are going to be killed") {
        return Some(Pieces::Group);
    }
    None
}

/// Whether `piece` can be the next piece of the unfinished line `cur` of kind `kind`.
fn takes(kind: Pieces, cur: &str, piece: &str) -> bool {
    let cur = cur.trim_end();
    let p = piece.trim_start();
    match kind {
        Pieces::Header if cur.ends_with("nodemask=") => {
            p.starts_with("(null)") || p.starts_with(|c: char| c.is_ascii_digit())
        }
        Pieces::Header => p.starts_with(','),
        Pieces::TaskIn if cur.ends_with("Task in") || cur.ends_with("limit of") => {
            p.starts_with('/')
        }
        Pieces::TaskIn if cur.ends_with(" killed") => p.starts_with("as a result of limit of"),
        Pieces::TaskIn => p.starts_with("killed"),
        Pieces::OomKill if cur.ends_with('=') => p.starts_with('/'),
        Pieces::OomKill => p.starts_with(','),
        Pieces::Group if cur.ends_with("Tasks in") => p.starts_with('/'),
        Pieces::Group => p.starts_with("are going to be killed"),
    }
}

/// Append a piece: a space goes before a word or a path (a copy may have lost the piece's
/// leading or the line's trailing space), none after `=` and none before `,` or `(`.
fn join(cur: &mut String, piece: &str) {
    cur.truncate(cur.trim_end().len());
    let p = piece.trim_start();
    if !cur.ends_with('=') && p.starts_with(|c: char| c == '/' || c.is_ascii_alphabetic()) {
        cur.push(' ');
    }
    cur.push_str(p);
}

/// Merge the pieces of lines the kernel printed with pr_cont back into whole lines.
///
/// The rule (docs/oom-log.md, "Pieces"): a line that is an unfinished form of one of the
/// [`Pieces`] lines takes the next line that can continue it, by its text and, when the log
/// names callers, only from the same caller. Lines in between that cannot (another CPU's
/// output) stay where they are; an unfinished line waits [`PIECE_LOOKAHEAD`] lines, then stays
/// as it is. kmsg's `c` flag is not needed: the ABI calls it a hint, and copied text has none.
pub fn merge_pieces(records: Vec<Record>) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    // (index in out, kind, lines seen since)
    let mut open: Vec<(usize, Pieces, usize)> = Vec::new();
    for r in records {
        let at = open.iter().rposition(|(i, k, _)| {
            let cur = &out[*i];
            let same_caller = match (&cur.caller, &r.caller) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            same_caller && takes(*k, &cur.text, &r.text)
        });
        if let Some(p) = at {
            let i = open[p].0;
            join(&mut out[i].text, &r.text);
            match unfinished(&out[i].text) {
                Some(k) => open[p].1 = k,
                None => {
                    open.remove(p);
                }
            }
            continue;
        }
        for o in open.iter_mut() {
            o.2 += 1;
        }
        open.retain(|o| o.2 <= PIECE_LOOKAHEAD);
        if let Some(k) = unfinished(&r.text) {
            open.push((out.len(), k, 0));
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(log: &Log) -> Vec<&str> {
        log.records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn kmsg_record_fields_escapes_and_dictionary() {
        let log = parse_text(
            b"6,389,5758394,-,caller=T73;Task in /a killed\\x0amore text \\x5c done\n \
              SUBSYSTEM=acpi\n 4,1,2,c;x\n",
        );
        assert_eq!(
            texts(&log),
            ["Task in /a killed", "more text \\ done", " 4,1,2,c;x"]
        );
        let r = &log.records[0];
        assert_eq!((r.seq, r.since_boot_us), (Some(389), Some(5_758_394)));
        assert_eq!(r.caller.as_deref(), Some("T73"));
        // The split line keeps the record's time.
        assert_eq!(log.records[1].since_boot_us, Some(5_758_394));
        assert_eq!(log.skipped, 0);
    }

    #[test]
    fn dmesg_forms() {
        let log = parse_text(
            b"[    5.756363] hog invoked oom-killer\n<4>[   13.8] x\n\
              [   22.101625]  [<ffffffffb2fd3d6c>] show_stack+0x4e/0x52\n\
              [    1.000000] [  T123] with caller\n[   71]     0    71 hog\n",
        );
        assert_eq!(
            texts(&log),
            [
                "hog invoked oom-killer",
                "x",
                " [<ffffffffb2fd3d6c>] show_stack+0x4e/0x52",
                "with caller",
                "[   71]     0    71 hog"
            ]
        );
        assert_eq!(log.records[1].since_boot_us, Some(13_800_000));
        assert_eq!(log.records[3].caller.as_deref(), Some("T123"));
        assert_eq!(log.records[4].form, Form::Bare);
    }

    #[test]
    fn wall_clock_forms() {
        std::env::set_var("TZ", "UTC");
        let log = parse_text(
            b"[Thu Dec  3 06:11:43 2026] a\n2026-12-03T06:11:43+0000 node1 kernel: b\n\
              2026-12-03T07:11:43.5+01:00 node1 kernel: c\n2026-12-03T06:11:43,250000+00:00 d\n\
              2026-12-03T06:11:43+0000 node1 systemd[1]: not kernel\n-- Boot 0f3c --\n",
        );
        assert_eq!(texts(&log), ["a", "b", "c", "d"]);
        let t = 1_796_278_303i64 * 1_000_000;
        let walls: Vec<_> = log.records.iter().map(|r| r.wall_us).collect();
        assert_eq!(
            walls,
            [Some(t), Some(t), Some(t + 500_000), Some(t + 250_000)]
        );
        assert_eq!(rfc3339(t), "2026-12-03T06:11:43Z");
        assert_eq!(log.not_kernel, 1);
    }

    #[test]
    fn journal_short_guesses_the_year() {
        std::env::set_var("TZ", "UTC");
        let log = parse_text(b"Jan 05 06:11:43 node1 kernel: Killed process 1 (x)\n");
        let r = &log.records[0];
        assert_eq!(r.text, "Killed process 1 (x)");
        let now = now_epoch_s() * 1_000_000;
        let w = r.wall_us.unwrap();
        assert!(
            w <= now + 86_400_000_000 && w > now - 367 * 86_400_000_000,
            "{w}"
        );
    }

    #[test]
    fn garbled_truncated_and_binary_lines_are_skipped() {
        let mut input = b"4,369,5756\n[    5.75\n\x00\x01\xff\xfe junk\n".to_vec();
        input.extend_from_slice(b"ok line\n\n   \n");
        let log = parse_text(&input);
        assert_eq!(log.skipped, 3);
        assert_eq!(texts(&log), ["ok line"]);
        assert!(parse_text(b"").records.is_empty());
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1, 0, 59, 365, 11_016, 20_790, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(parse_iso("2026-02-30T00:00:00Z"), None);
        assert!(parse_iso("2024-02-29T00:00:00Z").is_some());
        assert_eq!(parse_iso("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso("garbage"), None);
    }

    fn rec(text: &str, caller: Option<&str>) -> Record {
        let mut r = bare(text, Form::Kmsg);
        r.caller = caller.map(str::to_string);
        r
    }

    fn merged(pieces: &[(&str, Option<&str>)]) -> Vec<String> {
        let rs = pieces.iter().map(|(t, c)| rec(t, *c)).collect();
        merge_pieces(rs).into_iter().map(|r| r.text).collect()
    }

    #[test]
    fn pieces_of_task_in_and_header_merge() {
        assert_eq!(
            merged(&[
                ("Task in ", None),
                ("/kubepods/pod1/abc", None),
                (" killed as a result of limit of ", None),
                ("/kubepods/pod1", None),
            ]),
            ["Task in /kubepods/pod1/abc killed as a result of limit of /kubepods/pod1"]
        );
        assert_eq!(
            merged(&[
                ("Task in /a killed", None),
                ("as a result of limit of /b", None)
            ]),
            ["Task in /a killed as a result of limit of /b"]
        );
        assert_eq!(
            merged(&[
                ("x invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=", None),
                ("(null)", None),
                (",  order=0, oom_score_adj=0", None),
            ]),
            ["x invoked oom-killer: gfp_mask=0x14000c0(GFP_KERNEL), nodemask=(null),  order=0, oom_score_adj=0"]
        );
    }

    #[test]
    fn interleaved_pieces_of_two_cpus_merge_by_caller() {
        let out = merged(&[
            (
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null)",
                Some("T10"),
            ),
            ("e1000: link up", Some("C1")),
            (",cpuset=/,mems_allowed=0", Some("T10")),
            ("Task in ", Some("T20")),
            (",oom_memcg=/kubepods/pod1", Some("T10")),
            ("/x", Some("T20")),
            (
                ",task_memcg=/kubepods/pod1/c1,task=app,pid=7,uid=0",
                Some("T10"),
            ),
            (" killed as a result of limit of /x", Some("T20")),
        ]);
        assert_eq!(
            out,
            [
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1,task_memcg=/kubepods/pod1/c1,task=app,pid=7,uid=0",
                "e1000: link up",
                "Task in /x killed as a result of limit of /x",
            ]
        );
    }

    #[test]
    fn an_unfinished_line_gives_up_after_the_lookahead() {
        let mut p: Vec<(&str, Option<&str>)> = vec![("Task in ", None)];
        let other = vec![("unrelated", None); PIECE_LOOKAHEAD + 1];
        p.extend(other);
        p.push(("/late", None));
        let out = merged(&p);
        assert_eq!(out[0], "Task in ");
        assert_eq!(out.last().map(String::as_str), Some("/late"));
    }

    #[test]
    fn boot_time_and_same_boot() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        assert_eq!(boot_wall_us("187.66 195.38\n", now), Some(812_340_000));
        assert_eq!(boot_wall_us("x", now), None);
        let live = parse_text(b"[    5.756363] hog invoked oom-killer: x\n");
        let copy = parse_text(b"[    5.756363] hog invoked oom-killer: x\n");
        let other = parse_text(b"[    5.756364] hog invoked oom-killer: x\n");
        assert!(same_boot(&copy.records, &live.records));
        assert!(!same_boot(&other.records, &live.records));
    }

    #[test]
    fn permission_errors_say_how_to_do_without_root() {
        for code in [nix::libc::EACCES, nix::libc::EPERM] {
            let e = kmsg_error(
                Path::new(DEV_KMSG),
                "open",
                std::io::Error::from_raw_os_error(code),
            );
            assert_eq!(e.exit_code(), 2);
            assert!(
                e.to_string().contains("dmesg | cgleak oom --input -"),
                "{e}"
            );
        }
        let e = kmsg_error(
            Path::new(DEV_KMSG),
            "open",
            std::io::Error::from_raw_os_error(nix::libc::ENOENT),
        );
        assert!(e.to_string().contains("/dev/kmsg"), "{e}");
    }
}
