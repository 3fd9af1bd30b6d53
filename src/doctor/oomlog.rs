//! The OOM kills in a kernel log: the lines of each report grouped into one kill, for every
//! kernel era (docs/oom-log.md, "Per era"; OOM-FACTS T2): 3.10 and RHEL 7, 4.14, 4.19, 5.0/5.1,
//! 5.4+, 6.5+, cgroup v2 with memory.oom.group, global OOMs, and kills whose report the kernel
//! rate-limited (only the `Killed process` line is left).
//!
//! A report is `dump_header` (the `invoked oom-killer` line, the stack, the memcg's usage and
//! stats, the task table, from 5.0 the `oom-kill:` summary), then the kill lines. dump_header is
//! rate-limited (DEFAULT_RATELIMIT_BURST of 10 per 5 s) but the kill line never is, so a kill
//! is a kill even when nothing else of its report was printed: its other fields are null.
//! Lines that belong to no report are ignored; unknown fields of known lines too.

use super::identity::{self, Identity, Names};
use super::kmsg::{Log, Record};
use serde::Serialize;

/// The memcg's counters from `memory: usage %llukB, limit %llukB, failcnt %llu`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub usage_kib: Option<u64>,
    pub limit_kib: Option<u64>,
    pub failcnt: Option<u64>,
}

/// The task whose allocation ran into the limit (it need not be the victim).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Invoker {
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub oom_score_adj: Option<i32>,
}

/// A killed task, from its `Killed process` line (and the task table, for what the line of
/// its era does not carry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Victim {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The score the kernel printed (`Kill process N (comm) score S`, up to 5.0): its points
    /// scaled to 0..1000 of totalpages.
    pub score: Option<i64>,
    pub oom_score_adj: Option<i32>,
    pub anon_rss_kib: Option<u64>,
    pub file_rss_kib: Option<u64>,
    pub shmem_rss_kib: Option<u64>,
    pub total_vm_kib: Option<u64>,
    pub uid: Option<u32>,
}

/// Another task killed with the victim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    #[serde(flatten)]
    pub task: Victim,
    /// `memory.oom.group` (the whole cgroup goes) or `shares the victim's memory` (3.10-4.x
    /// `Kill process N (comm) sharing same memory`).
    pub because: &'static str,
}

/// One row of the task table, memory values in pages as the kernel prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskRow {
    pub pid: u32,
    pub uid: Option<u32>,
    pub tgid: Option<u32>,
    pub total_vm: Option<u64>,
    pub rss: Option<u64>,
    /// Page-table pages: `nr_ptes` (+ `nr_pmds` on 4.14), or `pgtables_bytes` / page size.
    pub pgtables: Option<u64>,
    pub swapents: Option<u64>,
    pub oom_score_adj: Option<i32>,
    pub name: String,
}

/// What the oom_reaper said about the victim's memory after the kill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reaper {
    pub reaped: bool,
    pub anon_rss_kib: Option<u64>,
    pub file_rss_kib: Option<u64>,
    pub shmem_rss_kib: Option<u64>,
}

/// One OOM kill.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kill {
    /// RFC 3339 UTC, null when the log has no wall time for it.
    pub time: Option<String>,
    pub since_boot_s: Option<f64>,
    /// CONSTRAINT_MEMCG, CONSTRAINT_NONE, ...: the kernel's word, or derived from the kill
    /// line's `Memory cgroup out of memory` (a memcg OOM); null when the log does not say.
    pub constraint: Option<String>,
    /// A node-wide OOM (no memcg limit was hit).
    pub global_oom: bool,
    /// The memcg whose limit was hit.
    pub oom_memcg: Option<String>,
    /// The victim's memcg.
    pub task_memcg: Option<String>,
    pub memory: Counter,
    /// cgroup v1 `memory+swap:` (the memsw counter).
    pub memory_swap: Option<Counter>,
    /// cgroup v2 `swap:`.
    pub swap: Option<Counter>,
    pub invoker: Invoker,
    pub victim: Victim,
    /// The kernel release from the report's `CPU: ... Comm: ...` line.
    pub kernel: Option<String>,
    /// Whose memcg the victim's is: from the path (pod uid, QoS, container id), names from
    /// the node's files; null when the victim's memcg is unknown or not a pod's.
    pub identity: Option<Identity>,
    /// The pod's sandbox (pause) was the victim: the whole pod goes with it.
    pub sandbox_killed: bool,
    pub why: Option<String>,
    pub tasks: Vec<TaskRow>,
    /// The memcg memory.oom.group named (`Tasks in <path> are going to be killed`).
    pub oom_group: Option<String>,
    pub group: Vec<Member>,
    pub reaper: Option<Reaper>,
    /// The wall time in microseconds, for --since and the metrics.
    #[serde(skip)]
    pub wall_us: Option<i64>,
    /// `oom-kill:` printed CONSTRAINT_NONE for a memcg OOM (5.0/5.1, fixed by 432b1de0de02).
    #[serde(skip)]
    pub constraint_none_quirk: bool,
    /// The report's lines the parser used, to tell the era by its formats.
    #[serde(skip)]
    pub era_hints: EraHints,
}

/// Formats seen in a report that tell its kernel era.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraHints {
    /// `Kill process N (comm) score S or sacrifice child` (up to 5.0).
    pub sacrifice_line: bool,
    /// `Killed process` with `UID:N pgtables:` (5.4+).
    pub uid_pgtables: bool,
    /// `Killed process` with the `Memory cgroup out of memory:` prefix (5.1+).
    pub prefixed_killed: bool,
}

/// The kills of a log in its order (oldest first), and what could not be placed.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub kills: Vec<Kill>,
    /// Reports whose dump ended without a kill line (the victim was already exiting).
    pub dumps_without_kill: u64,
    /// oom_reaper lines about a pid no kill of the log has.
    pub unmatched_reaper: u64,
}

/// Group the records (pieces merged already) into kills.
pub fn parse(records: &[Record]) -> Parsed {
    let mut b = Builder::default();
    for r in records {
        b.line(r);
    }
    b.finish()
}

#[derive(Default)]
struct Builder {
    out: Parsed,
    /// The report being read: a header or a sacrifice line was seen, no kill line yet.
    cur: Option<Kill>,
    /// The task table's column names, after its header line.
    columns: Option<Vec<String>>,
    /// `Killed process` lines now belong to the last kill's memory.oom.group.
    group_open: bool,
}

impl Builder {
    fn line(&mut self, r: &Record) {
        let t = r.text.as_str();
        if let Some((comm, rest)) = t.split_once(" invoked oom-killer: ") {
            self.header(r, comm, rest);
        } else if t.contains("Kill process ") && t.ends_with("or sacrifice child") {
            self.sacrifice(r, t);
        } else if let Some(pid_comm) = shared_kill(t) {
            self.shared(pid_comm);
        } else if t.contains("Killed process ") {
            self.killed(r, t);
        } else if let Some(rest) = t.strip_prefix("oom_reaper: ") {
            self.reaper(rest);
        } else if let Some(rest) = t.strip_prefix("Tasks in ") {
            if let Some((path, _)) = rest.split_once(" are going to be killed") {
                if let Some(k) = self.out.kills.last_mut() {
                    k.oom_group = Some(path.trim().to_string());
                    self.group_open = true;
                }
            }
        } else if let Some(cur) = self.cur.as_mut() {
            report_line(cur, &mut self.columns, t);
        }
    }

    /// `%s invoked oom-killer: gfp_mask=..., order=%d, oom_score_adj=%hd`: a new report.
    fn header(&mut self, r: &Record, comm: &str, rest: &str) {
        self.close_dump();
        let mut k = Kill::default();
        k.invoker.comm = Some(comm.trim().to_string());
        k.invoker.oom_score_adj = int_after(rest, "oom_score_adj=").and_then(|v| v.try_into().ok());
        set_time(&mut k, r);
        self.cur = Some(k);
        self.columns = None;
        self.group_open = false;
    }

    /// A report whose dump never got its kill line.
    fn close_dump(&mut self) {
        if self.cur.take().is_some() {
            self.out.dumps_without_kill += 1;
        }
    }

    /// `<message>: Kill process %d (%s) score %u or sacrifice child` (3.10 to 5.0): the task
    /// chosen; a child of it may be killed instead. Printed even when the dump was
    /// rate-limited, so it may open the report.
    fn sacrifice(&mut self, r: &Record, t: &str) {
        self.group_open = false;
        let Some((prefix, rest)) = t.split_once("Kill process ") else {
            return;
        };
        let Some((pid, comm, tail)) = pid_and_comm(rest) else {
            return;
        };
        if self.cur.is_none() {
            let mut k = Kill::default();
            set_time(&mut k, r);
            self.cur = Some(k);
        }
        let Some(k) = self.cur.as_mut() else {
            return;
        };
        scope_from_prefix(k, prefix);
        k.era_hints.sacrifice_line = true;
        k.victim.pid = Some(pid);
        k.victim.comm = Some(comm);
        k.victim.score = int_after(tail, "score ");
    }

    /// `Kill process %d (%s) sharing same memory` (3.10-4.x): another process using the
    /// victim's mm, killed with it.
    fn shared(&mut self, (pid, comm): (u32, String)) {
        if let Some(k) = self.out.kills.last_mut() {
            let task = Victim {
                pid: Some(pid),
                comm: Some(comm),
                ..Victim::default()
            };
            k.group.push(Member {
                task,
                because: "shares the victim's memory",
            });
        }
    }

    /// `[<message>: ]Killed process %d (%s) ...`: the kill itself.
    fn killed(&mut self, r: &Record, t: &str) {
        let Some((prefix, rest)) = t.split_once("Killed process ") else {
            return;
        };
        let Some(v) = parse_killed(rest) else {
            return;
        };
        if self.group_open && self.cur.is_none() {
            if let Some(k) = self.out.kills.last_mut() {
                if k.victim.pid != v.pid && !k.group.iter().any(|m| m.task.pid == v.pid) {
                    k.group.push(Member {
                        task: v,
                        because: "memory.oom.group",
                    });
                }
                return;
            }
        }
        let mut k = self.cur.take().unwrap_or_default();
        if k.victim.pid.is_some() && k.victim.pid != v.pid {
            // A child was sacrificed for the chosen task: the score was the parent's.
            k.victim.score = None;
        }
        let score = k.victim.score;
        k.victim = Victim { score, ..v };
        k.era_hints.uid_pgtables = rest.contains(" pgtables:");
        if !prefix.trim().is_empty() {
            k.era_hints.prefixed_killed = true;
            scope_from_prefix(&mut k, prefix);
        }
        set_time(&mut k, r);
        self.columns = None;
        self.group_open = false;
        self.out.kills.push(k);
    }

    /// `oom_reaper: reaped process %d (%s), now anon-rss:%lukB, file-rss:%lukB, shmem-rss:%lukB`
    /// or `oom_reaper: unable to reap pid:%d (%s)`: attached to the kill of that pid.
    fn reaper(&mut self, rest: &str) {
        let (pid, reaper) = if let Some(r) = rest.strip_prefix("reaped process ") {
            let Some((pid, _, tail)) = pid_and_comm(r) else {
                return;
            };
            let rss = sizes(tail);
            (
                pid,
                Reaper {
                    reaped: true,
                    anon_rss_kib: rss.get("anon-rss"),
                    file_rss_kib: rss.get("file-rss"),
                    shmem_rss_kib: rss.get("shmem-rss"),
                },
            )
        } else if let Some(r) = rest.strip_prefix("unable to reap pid:") {
            let Some((pid, _, _)) = pid_and_comm(r) else {
                return;
            };
            let reaper = Reaper {
                reaped: false,
                anon_rss_kib: None,
                file_rss_kib: None,
                shmem_rss_kib: None,
            };
            (pid, reaper)
        } else {
            return;
        };
        match self
            .out
            .kills
            .iter_mut()
            .rev()
            .find(|k| k.victim.pid == Some(pid))
        {
            Some(k) => k.reaper = Some(reaper),
            None => self.out.unmatched_reaper += 1,
        }
    }

    fn finish(mut self) -> Parsed {
        self.close_dump();
        for k in &mut self.out.kills {
            complete(k);
        }
        self.out
    }
}

/// The time of the kill: the kill line's record (or the first line of the report when that is
/// all there is).
fn set_time(k: &mut Kill, r: &Record) {
    if r.since_boot_us.is_some() || r.wall_us.is_some() {
        k.since_boot_s = r.since_boot_us.map(|us| us as f64 / 1e6);
        k.wall_us = r.wall_us;
        k.time = r.wall_us.map(super::kmsg::rfc3339);
    }
}

/// The message before the kill line says what kind of OOM it was: `Memory cgroup out of
/// memory` (mem_cgroup_out_of_memory) or `Out of memory` / `Out of memory
/// (oom_kill_allocating_task)` (the page allocator: node-wide, or a cpuset or mempolicy).
fn scope_from_prefix(k: &mut Kill, prefix: &str) {
    if prefix.contains("Memory cgroup out of memory") {
        k.global_oom = false;
        if k.constraint.is_none() {
            k.constraint = Some("CONSTRAINT_MEMCG".to_string());
        }
    } else if prefix.contains("Out of memory") && k.oom_memcg.is_none() {
        k.global_oom = true;
    }
}

/// A line inside a report's dump (between its header and its kill line).
fn report_line(k: &mut Kill, columns: &mut Option<Vec<String>>, t: &str) {
    if let Some(rest) = t.strip_prefix("CPU: ") {
        cpu_line(k, rest);
    } else if let Some(rest) = t.strip_prefix("Task in ") {
        if let Some((task, oom)) = rest.split_once(" killed as a result of limit of ") {
            k.task_memcg = Some(task.trim().to_string());
            k.oom_memcg = Some(oom.trim().to_string());
        }
    } else if let Some(rest) = t.strip_prefix("memory: ") {
        k.memory = counter(rest);
    } else if let Some(rest) = t.strip_prefix("memory+swap: ") {
        k.memory_swap = Some(counter(rest));
    } else if let Some(rest) = t.strip_prefix("swap: ") {
        k.swap = Some(counter(rest));
    } else if let Some(rest) = t.strip_prefix("oom-kill:") {
        oom_kill_line(k, rest);
    } else if let Some(rest) = t.trim_start().strip_prefix('[') {
        task_table_line(k, columns, rest);
    }
}

/// `CPU: 0 PID: 73 Comm: hog Not tainted 3.10.0-1127.el7.x86_64 #2` (6.x adds `UID: 0`,
/// tainted kernels print `Tainted: G   O`): the invoker's pid and the kernel release.
fn cpu_line(k: &mut Kill, rest: &str) {
    if k.invoker.pid.is_none() {
        k.invoker.pid = int_after(rest, "PID: ").and_then(|v| v.try_into().ok());
    }
    let lower = rest.to_ascii_lowercase();
    let Some(at) = lower.find("tainted") else {
        return;
    };
    let after = &rest[at..];
    let Some(hash) = after.rfind(" #") else {
        return;
    };
    if let Some(release) = after[..hash].split_whitespace().last() {
        if release.starts_with(|c: char| c.is_ascii_digit()) {
            k.kernel = Some(release.to_string());
        }
    }
}

/// `usage %llukB, limit %llukB, failcnt %llu`.
fn counter(rest: &str) -> Counter {
    Counter {
        usage_kib: uint_after(rest, "usage "),
        limit_kib: uint_after(rest, "limit "),
        failcnt: uint_after(rest, "failcnt "),
    }
}

/// The 5.0+ summary `constraint=...,nodemask=...,cpuset=...,mems_allowed=...,
/// oom_memcg=...|global_oom,task_memcg=...,task=...,pid=...,uid=...`. Node lists hold commas
/// (`mems_allowed=0-1,4`): a piece without `=` belongs to the value before it.
fn oom_kill_line(k: &mut Kill, rest: &str) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in rest.split(',') {
        match piece.split_once('=') {
            Some((key, v)) if !key.contains('/') => pairs.push((key.to_string(), v.to_string())),
            _ if piece == "global_oom" => pairs.push((piece.to_string(), String::new())),
            _ => {
                if let Some(last) = pairs.last_mut() {
                    last.1.push(',');
                    last.1.push_str(piece);
                }
            }
        }
    }
    for (key, v) in pairs {
        match key.as_str() {
            "constraint" => k.constraint = Some(v),
            "oom_memcg" => k.oom_memcg = Some(v),
            "global_oom" => k.global_oom = true,
            "task_memcg" => k.task_memcg = Some(v),
            "task" => k.victim.comm = Some(v),
            "pid" => k.victim.pid = v.parse().ok(),
            "uid" => k.victim.uid = v.parse().ok(),
            _ => {}
        }
    }
    if k.oom_memcg.is_some() && k.constraint.as_deref() == Some("CONSTRAINT_NONE") {
        // 5.0/5.1 printed the constraint before it was set for memcg OOMs (432b1de0de02).
        k.constraint = Some("CONSTRAINT_MEMCG".to_string());
        k.constraint_none_quirk = true;
    }
}

/// The task table: its header `[ pid ]   uid  tgid total_vm      rss nr_ptes ... name`
/// (columns by era, read from the header itself) and its rows `[   71]     0    71 ... hog`.
fn task_table_line(k: &mut Kill, columns: &mut Option<Vec<String>>, rest: &str) {
    let Some((first, tail)) = rest.split_once(']') else {
        return;
    };
    if first.trim() == "pid" {
        *columns = Some(tail.split_whitespace().map(str::to_string).collect());
        return;
    }
    let (Some(cols), Ok(pid)) = (columns.as_ref(), first.trim().parse::<u32>()) else {
        return;
    };
    if let Some(row) = task_row(pid, cols, tail) {
        k.tasks.push(row);
    }
}

/// One row by the header's columns; the last column (name) is the rest of the line, as a
/// command name may hold spaces.
fn task_row(pid: u32, cols: &[String], tail: &str) -> Option<TaskRow> {
    let n = cols.len().checked_sub(1)?;
    let mut rest = tail;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        values.push(&rest[..end]);
        rest = &rest[end..];
    }
    let name = rest.trim().to_string();
    let get = |c: &str| -> Option<i64> {
        let i = cols.iter().position(|x| x == c)?;
        values.get(i)?.parse().ok()
    };
    let page = |c: &str| get(c).and_then(|v| u64::try_from(v).ok());
    let pgtables = match (page("nr_ptes"), page("nr_pmds"), page("pgtables_bytes")) {
        (Some(p), pmds, _) => Some(p + pmds.unwrap_or(0)),
        (None, _, Some(bytes)) => Some(bytes / 4096),
        _ => None,
    };
    Some(TaskRow {
        pid,
        uid: get("uid").and_then(|v| v.try_into().ok()),
        tgid: get("tgid").and_then(|v| v.try_into().ok()),
        total_vm: page("total_vm"),
        rss: page("rss"),
        pgtables,
        swapents: page("swapents"),
        oom_score_adj: get("oom_score_adj").and_then(|v| v.try_into().ok()),
        name,
    })
}

/// `%d (%s)` and what follows. A command name may hold spaces and parentheses (it is at most
/// 15 bytes, TASK_COMM_LEN 16), so its end is the `)` followed by what the kernel prints after
/// it (` total-vm:`, `, UID`, ` score `, ...), else the last `)` followed by a space, a comma
/// or nothing.
fn pid_and_comm(s: &str) -> Option<(u32, String, &str)> {
    const AFTER: [&str; 6] = [
        " total-vm:",
        ", UID",
        " score ",
        " sharing same memory",
        ", now ",
        ", total-vm:",
    ];
    let (pid, rest) = s.trim_start().split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let inner = rest.strip_prefix('(')?;
    let ends: Vec<usize> = inner
        .match_indices(')')
        .map(|(i, _)| i)
        .filter(|&i| {
            let tail = &inner[i + 1..];
            tail.is_empty() || tail.starts_with(' ') || tail.starts_with(',')
        })
        .collect();
    let end = ends
        .iter()
        .copied()
        .find(|&i| AFTER.iter().any(|a| inner[i + 1..].starts_with(a)))
        .or_else(|| ends.last().copied())?;
    Some((pid, inner[..end].to_string(), &inner[end + 1..]))
}

/// `Kill process %d (%s) sharing same memory`.
fn shared_kill(t: &str) -> Option<(u32, String)> {
    let rest = t.split_once("Kill process ")?.1;
    let (pid, comm, tail) = pid_and_comm(rest)?;
    (tail.trim() == "sharing same memory").then_some((pid, comm))
}

/// The fields after `Killed process `: `%d (%s)` then `total-vm:%lukB, anon-rss:%lukB,
/// file-rss:%lukB[, shmem-rss:%lukB][, UID:%u pgtables:%lukB oom_score_adj:%hd]`, or RHEL 7's
/// `%d (%s), UID %u, total-vm:...`.
fn parse_killed(rest: &str) -> Option<Victim> {
    let (pid, comm, tail) = pid_and_comm(rest)?;
    let f = sizes(tail);
    let uid = f
        .get("UID")
        .or_else(|| uint_after(tail, "UID "))
        .and_then(|v| u32::try_from(v).ok());
    Some(Victim {
        pid: Some(pid),
        comm: Some(comm),
        score: None,
        oom_score_adj: int_after(tail, "oom_score_adj:").and_then(|v| v.try_into().ok()),
        anon_rss_kib: f.get("anon-rss"),
        file_rss_kib: f.get("file-rss"),
        shmem_rss_kib: f.get("shmem-rss"),
        total_vm_kib: f.get("total-vm"),
        uid,
    })
}

/// `key:NkB` and `key:N` fields, separated by commas or spaces.
struct Sizes(Vec<(String, u64)>);

impl Sizes {
    fn get(&self, key: &str) -> Option<u64> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

fn sizes(s: &str) -> Sizes {
    let mut v = Vec::new();
    for tok in s.split([',', ' ']).filter(|t| !t.is_empty()) {
        if let Some((key, val)) = tok.split_once(':') {
            let val = val.trim_end_matches("kB").trim_end_matches("KB");
            if let Ok(n) = val.parse::<u64>() {
                v.push((key.to_string(), n));
            }
        }
    }
    Sizes(v)
}

/// The integer (maybe negative) right after `key` in `s`.
fn int_after(s: &str, key: &str) -> Option<i64> {
    let at = s.find(key)? + key.len();
    let rest = &s[at..];
    let len = rest
        .char_indices()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
        .count();
    rest[..len].parse().ok()
}

fn uint_after(s: &str, key: &str) -> Option<u64> {
    int_after(s, key).and_then(|v| u64::try_from(v).ok())
}

/// Fill what one line of a report leaves to another: the victim's adj and uid from its task
/// table row when its kill line does not carry them.
fn complete(k: &mut Kill) {
    let Some(pid) = k.victim.pid else {
        return;
    };
    if let Some(row) = k.tasks.iter().find(|t| t.pid == pid) {
        k.victim.oom_score_adj = k.victim.oom_score_adj.or(row.oom_score_adj);
        k.victim.uid = k.victim.uid.or(row.uid);
    }
}

/// Whether the kernel of this report floors a task's points at 1 (before 5.9 and 5.4.143:
/// 9066e5cfb73c): by [`super::era`]'s rules for the release in the report, else from its
/// formats; None when unknown.
pub fn floors_at_one(k: &Kill) -> Option<bool> {
    if let Some(rel) = k.kernel.as_deref() {
        let era = super::era::era_for(rel, None);
        if era.known {
            return Some(era.floor);
        }
    }
    let h = k.era_hints;
    // Up to 5.3 (the sacrifice line up to 5.0, the UID-less prefixed kill line 5.1-5.3).
    if h.sacrifice_line || (h.prefixed_killed && !h.uid_pgtables) {
        return Some(true);
    }
    None
}

/// The page size in KiB this report's task table counts in: the victim's total_vm in kB
/// (kill line) over its total_vm in pages (its row); 4 when they cannot be compared.
pub fn page_kib(k: &Kill) -> u64 {
    let row = k.tasks.iter().find(|t| Some(t.pid) == k.victim.pid);
    match (k.victim.total_vm_kib, row.and_then(|r| r.total_vm)) {
        (Some(kib), Some(pages)) if pages > 0 && kib % pages == 0 => {
            let ratio = kib / pages;
            if ratio.is_power_of_two() {
                ratio
            } else {
                4
            }
        }
        _ => 4,
    }
}

/// `cgleak oom`'s answer: the kills, how many records were read and dropped, and what the
/// reader should know about them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `/dev/kmsg`, the input file, or `standard input`.
    pub source: String,
    /// Oldest first.
    pub kills: Vec<Kill>,
    pub records: u64,
    pub skipped: u64,
    pub notes: Vec<String>,
}

/// Who each victim was and whether its pod's sandbox died.
pub fn annotate(kills: &mut [Kill], names: &Names) {
    for k in kills {
        k.identity = k.task_memcg.as_deref().and_then(identity::from_cgroup_path);
        if let Some(id) = k.identity.as_mut() {
            names.fill(id);
        }
        k.sandbox_killed = sandbox_killed(k);
        if k.sandbox_killed {
            k.why = Some(sandbox_why(k));
        }
    }
}

/// The victim was the pod's sandbox: the runtime's record says so, or, where no record names
/// the container, the victim is `pause` in a container cgroup of a pod.
fn sandbox_killed(k: &Kill) -> bool {
    let Some(id) = &k.identity else {
        return false;
    };
    match id.sandbox {
        Some(s) => s,
        None => {
            id.container_name.is_none()
                && id.container_id.is_some()
                && k.victim.comm.as_deref() == Some("pause")
        }
    }
}

/// The kernel's points for one row, roughly as oom_badness counts them (mm/oom_kill.c):
/// rss + page tables + swap, plus adj per mille of totalpages (here the memcg's limit; the
/// kernel adds the swap headroom when swappiness allows swap).
fn points(row: &TaskRow, totalpages: u64) -> Option<i64> {
    let base = row.rss? + row.pgtables.unwrap_or(0) + row.swapents.unwrap_or(0);
    let adj = i64::from(row.oom_score_adj?);
    Some(base as i64 + adj * totalpages as i64 / 1000)
}

/// The sentence that says what a sandbox kill does and why the kernel chose the pause.
fn sandbox_why(k: &Kill) -> String {
    let mut s = String::from(
        "the pod's sandbox (pause) was killed: the whole pod is recreated, every container \
         restarts",
    );
    let pause = k.tasks.iter().find(|t| Some(t.pid) == k.victim.pid);
    let app = k
        .tasks
        .iter()
        .filter(|t| Some(t.pid) != k.victim.pid)
        .max_by_key(|t| t.rss.unwrap_or(0));
    let total = k.memory.limit_kib.map(|l| l / page_kib(k));
    let (Some(pause), Some(app), Some(total)) = (pause, app, total) else {
        s.push_str(
            ". The report has no task table or limit (rate-limited), so the scores are unknown",
        );
        return s;
    };
    let (Some(pp), Some(ap)) = (points(pause, total), points(app, total)) else {
        return s;
    };
    s.push_str(&format!(
        ". The kernel saw pause score {pp} and app score {ap} ({} pid {}, rss {} pages, \
         oom_score_adj {})",
        app.name,
        app.pid,
        app.rss.unwrap_or(0),
        app.oom_score_adj.unwrap_or(0)
    ));
    match floors_at_one(k) {
        Some(true) if pp <= 0 && ap <= 0 => s.push_str(
            ": both floored to 1 (kernels before 5.9 and 5.4.143 floor points at 1, \
             9066e5cfb73c), and on a tie the first task scanned, the pause, wins",
        ),
        Some(true) if pp <= 0 => s.push_str(": the pause's points were floored to 1"),
        _ => {}
    }
    s
}

/// Build the report of a log: pieces merged, kills grouped and annotated, notes gathered.
/// `notes` are the reader's own (how the times were found).
/// `since_us` keeps only the kills at or after it ([`retain_since`]).
pub fn report(
    source: &str,
    log: Log,
    names: &Names,
    mut notes: Vec<String>,
    since_us: Option<i64>,
) -> Report {
    let records = log.records.len() as u64;
    let forms: Vec<&str> = log.forms.iter().map(|f| f.describe()).collect();
    if forms.len() > 1 {
        notes.push(format!("the input mixes forms: {}", forms.join(", ")));
    }
    if log.overwritten > 0 {
        notes.push(format!(
            "the kernel overwrote records {} times while they were read (EPIPE): kills in them are lost",
            log.overwritten
        ));
    }
    if log.not_kernel > 0 {
        notes.push(format!(
            "{} journal lines not from the kernel were ignored",
            log.not_kernel
        ));
    }
    let merged = super::kmsg::merge_pieces(log.records);
    let parsed = parse(&merged);
    let counts = (parsed.dumps_without_kill, parsed.unmatched_reaper);
    let mut kills = parsed.kills;
    annotate(&mut kills, names);
    notes.extend(parse_notes(counts, &kills));
    let mut r = Report {
        source: source.to_string(),
        kills,
        records,
        skipped: log.skipped,
        notes,
    };
    if let Some(s) = since_us {
        retain_since(&mut r, s);
    }
    r.notes.extend(name_notes(&r.kills, names));
    r
}

/// What the grouping could not place, and the kills whose report the kernel cut short.
fn parse_notes((dumps, reapers): (u64, u64), kills: &[Kill]) -> Vec<String> {
    let mut notes = Vec::new();
    if dumps > 0 {
        notes.push(format!(
            "{dumps} OOM reports ended without a kill line (the chosen task was already exiting)"
        ));
    }
    if reapers > 0 {
        notes.push(format!(
            "{reapers} oom_reaper lines name a pid no kill in the log has (its report is older than the log)"
        ));
    }
    let bare = kills
        .iter()
        .filter(|k| k.tasks.is_empty() && k.task_memcg.is_none())
        .count();
    if bare > 0 {
        notes.push(format!(
            "{bare} kills have only their kill line: the kernel rate-limits the rest of the report \
             (dump_header, 10 per 5 s), so their memcg, limit and task table are unknown"
        ));
    }
    if kills.iter().any(|k| k.constraint_none_quirk) {
        notes.push(
            "oom-kill: said CONSTRAINT_NONE for a memcg OOM (kernels 5.0 and 5.1 printed the \
             constraint before setting it, fixed by 432b1de0de02): reported as CONSTRAINT_MEMCG"
                .to_string(),
        );
    }
    notes
}

/// Why pods' names are unknown (one note for all such pods), and what could not be read for
/// names (only when some victim was a pod's).
fn name_notes(kills: &[Kill], names: &Names) -> Vec<String> {
    let ids: Vec<&Identity> = kills.iter().filter_map(|k| k.identity.as_ref()).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut nameless: Vec<&Identity> = Vec::new();
    for id in ids {
        if names.missing(id).is_some() && !nameless.iter().any(|n| n.pod_uid == id.pod_uid) {
            nameless.push(id);
        }
    }
    let mut notes = Vec::new();
    match nameless.as_slice() {
        [] => {}
        [one] => notes.extend(names.missing(one)),
        many => {
            let uids: Vec<&str> = many.iter().filter_map(|i| i.pod_uid.as_deref()).collect();
            let shown = uids.iter().take(3).copied().collect::<Vec<_>>().join(", ");
            let more = if uids.len() > 3 {
                format!(" and {} more", uids.len() - 3)
            } else {
                String::new()
            };
            notes.push(format!(
                "{} pods have no names ({shown}{more}): no log directory or runtime record names \
                 them (the pods are gone, or the logs live elsewhere: --pods-log-dir)",
                uids.len()
            ));
        }
    }
    notes.extend(names.notes());
    notes
}

/// Keep the kills at or after `since_us` (microseconds since the epoch). Kills without a wall
/// time cannot be placed: they are dropped, and a note says how many.
fn retain_since(r: &mut Report, since_us: i64) {
    let before = r.kills.len();
    let untimed = r.kills.iter().filter(|k| k.wall_us.is_none()).count();
    r.kills.retain(|k| k.wall_us.is_some_and(|w| w >= since_us));
    if untimed > 0 {
        r.notes.push(format!(
            "{untimed} kills have no wall time and were left out by --since (run without --since to see them)"
        ));
    }
    let older = before - untimed - r.kills.len();
    if older > 0 {
        r.notes
            .push(format!("{older} older kills left out by --since"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::kmsg::{merge_pieces, parse_text};

    fn kills(log: &str) -> Parsed {
        parse(&merge_pieces(parse_text(log.as_bytes()).records))
    }

    #[test]
    fn comm_with_spaces_and_parentheses() {
        assert_eq!(
            pid_and_comm("12 (my (odd) app) total-vm:4kB"),
            Some((12, "my (odd) app".to_string(), " total-vm:4kB"))
        );
        assert_eq!(
            pid_and_comm("12 (a), UID 0, total-vm:4kB"),
            Some((12, "a".to_string(), ", UID 0, total-vm:4kB"))
        );
        assert_eq!(pid_and_comm("x (a)"), None);
        assert_eq!(pid_and_comm("12 a"), None);
    }

    #[test]
    fn task_rows_by_the_header_columns() {
        let p = kills(
            "x invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0\n\
             [ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name\n\
             [   71]     0    71      499      262       5       2        7          -998 Web Content\n\
             [   72]     0    garbage\n\
             Killed process 71 (Web Content) total-vm:1996kB, anon-rss:852kB, file-rss:4kB\n",
        );
        let k = &p.kills[0];
        assert_eq!(k.tasks.len(), 1);
        let t = &k.tasks[0];
        assert_eq!(
            (t.pgtables, t.swapents, t.name.as_str()),
            (Some(7), Some(7), "Web Content")
        );
        // The adj comes from the row when the kill line has none.
        assert_eq!(k.victim.oom_score_adj, Some(-998));
        assert_eq!(page_kib(k), 4);
    }

    #[test]
    fn oom_kill_summary_with_node_lists() {
        let mut k = Kill::default();
        oom_kill_line(
            &mut k,
            "constraint=CONSTRAINT_NONE,nodemask=0-1,3,cpuset=/,mems_allowed=0-1,3,\
             oom_memcg=/a,task_memcg=/a/b,task=x,pid=5,uid=7,future_field=1",
        );
        assert_eq!(k.oom_memcg.as_deref(), Some("/a"));
        assert_eq!(k.task_memcg.as_deref(), Some("/a/b"));
        assert_eq!((k.victim.pid, k.victim.uid), (Some(5), Some(7)));
        assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
        assert!(k.constraint_none_quirk);
        let mut g = Kill::default();
        oom_kill_line(&mut g, "constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=5,uid=0");
        assert!(g.global_oom && !g.constraint_none_quirk);
    }

    #[test]
    fn a_sacrificed_child_drops_the_parents_score() {
        let p = kills(
            "Memory cgroup out of memory: Kill process 10 (sh) score 900 or sacrifice child\n\
             Killed process 11 (worker) total-vm:8kB, anon-rss:4kB, file-rss:0kB\n",
        );
        let v = &p.kills[0].victim;
        assert_eq!(
            (v.pid, v.comm.as_deref(), v.score),
            (Some(11), Some("worker"), None)
        );
    }

    #[test]
    fn a_dump_without_its_kill_line_is_counted_not_a_kill() {
        let p = kills(
            "a invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0\n\
             b invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0\n\
             Killed process 3 (b) total-vm:8kB, anon-rss:4kB, file-rss:0kB\n\
             oom_reaper: reaped process 9 (z), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB\n\
             oom_reaper: unable to reap pid:3 (b)\n",
        );
        assert_eq!(p.kills.len(), 1);
        assert_eq!(p.dumps_without_kill, 1);
        assert_eq!(p.unmatched_reaper, 1);
        assert_eq!(p.kills[0].reaper.as_ref().map(|r| r.reaped), Some(false));
        assert_eq!(p.kills[0].invoker.comm.as_deref(), Some("b"));
    }

    #[test]
    fn floors_by_release_and_by_format() {
        let at = |rel: &str| {
            let k = Kill {
                kernel: Some(rel.to_string()),
                ..Kill::default()
            };
            floors_at_one(&k)
        };
        assert_eq!(at("3.10.0-1127.el7.x86_64"), Some(true));
        assert_eq!(at("5.4.142"), Some(true));
        assert_eq!(at("5.4.143-1"), Some(false));
        assert_eq!(at("5.8.0"), Some(true));
        assert_eq!(at("5.10.0-28-cloud-amd64"), Some(false));
        let mut k = Kill::default();
        assert_eq!(floors_at_one(&k), None);
        k.era_hints.sacrifice_line = true;
        assert_eq!(floors_at_one(&k), Some(true));
        let garbled = Kill {
            kernel: Some("garbage".into()),
            ..Kill::default()
        };
        assert_eq!(floors_at_one(&garbled), None);
    }

    #[test]
    fn the_sandbox_rule_without_names() {
        let mut k = Kill {
            task_memcg: Some(format!(
                "/kubepods/burstable/pod12345678/{}",
                "a".repeat(64)
            )),
            ..Kill::default()
        };
        k.victim.comm = Some("pause".to_string());
        annotate(std::slice::from_mut(&mut k), &Names::default());
        assert!(k.sandbox_killed);
        assert!(
            k.why.as_deref().unwrap().contains("scores are unknown"),
            "{:?}",
            k.why
        );
        // The pod cgroup itself (no container level) is not a sandbox.
        let mut p = Kill {
            task_memcg: Some("/kubepods/burstable/pod1234".to_string()),
            ..Kill::default()
        };
        p.victim.comm = Some("pause".to_string());
        annotate(std::slice::from_mut(&mut p), &Names::default());
        assert!(!p.sandbox_killed);
    }
}
