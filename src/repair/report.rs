//! Text renderings of plans, preflight checks and repair outcomes (JSON comes from serde).

use crate::model::invocation::Command;
use crate::model::path::base_name;
use crate::model::{is_unlimited, Kind, Snapshot};
use crate::repair::plan::{Plan, Step};
use crate::repair::{Check, CheckStatus, Ended, Outcome};
use crate::scan::tree_of;

/// The wall time one pause of the default pace (`DEFAULT_PACE`, 100us asked) took in the stall benchmark on
/// 6.18, timer slack and the kernel work it let through included (README, Performance).
const PAUSE_COST_DEFAULT: f64 = 0.25e-3;

/// Bytes for people: `512Mi`, `unlimited`.
pub fn bytes(v: u64) -> String {
    if is_unlimited(v) {
        return "unlimited".into();
    }
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (u, n) in UNITS {
        if v >= n {
            let x = v as f64 / n as f64;
            return if x.fract() == 0.0 {
                format!("{x:.0}{u}")
            } else {
                format!("{x:.1}{u}")
            };
        }
    }
    format!("{v}B")
}

/// The pods tree with per-cgroup settings and task counts, as a tree.
pub fn render_tree(snap: &Snapshot) -> String {
    let Some(tree) = tree_of(snap) else {
        return String::new();
    };
    tree.render(|id| {
        let c = &snap.cgroups[id];
        let kind = match c.kind {
            Kind::PodsRoot => "pods",
            Kind::Qos => "qos",
            Kind::Pod => "pod",
            Kind::Container => "ctr",
            Kind::Other => "other",
        };
        let name = if c.kind == Kind::PodsRoot {
            c.path.as_str()
        } else {
            base_name(&c.path)
        };
        let name = if name.len() > 24 && c.kind == Kind::Container {
            &name[..12]
        } else {
            name
        };
        let mut s = format!("{name} [{kind}]");
        if !is_unlimited(c.settings.limit_in_bytes) {
            s.push_str(&format!(" limit={}", bytes(c.settings.limit_in_bytes)));
        }
        if !c.tasks.is_empty() {
            s.push_str(&format!(" tasks={}", c.tasks.len()));
        }
        if c.kmem_active == Some(true) {
            s.push_str(" kmem");
        }
        s
    })
}

/// The plan: tree with counts, the id check, then every operation by phase.
pub fn render_plan(snap: &Snapshot, plan: &Plan, all_steps: bool) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Pods cgroup {} ({}): {} cgroups ({} qos, {} pods, {} containers, {} other), {} tasks\n\n",
        snap.kubepods,
        snap.layout,
        snap.cgroups.len(),
        snap.count_kind(Kind::Qos),
        snap.count_kind(Kind::Pod),
        snap.count_kind(Kind::Container),
        snap.count_kind(Kind::Other),
        snap.task_count()
    ));
    if all_steps {
        s.push_str(&render_tree(snap));
        s.push('\n');
    }
    let ids = &plan.ids;
    let free = ids
        .free
        .map(|f| f.to_string())
        .unwrap_or_else(|| "unknown".into());
    let verdict = match ids.ok {
        Some(true) => "OK",
        Some(false) => "NOT ENOUGH",
        None => "UNKNOWN (pass --ids-used)",
    };
    s.push_str(&format!(
        "Memcg ids: {free} free; the repair creates {} cgroups + {} margin: {verdict}\n",
        ids.needed, ids.margin
    ));
    s.push_str(&format!(
        "Strategy {}: {} steps, {} changing system calls, about {:.2} s and {} pauses of --pace ({}us each by default: {:.2} s more); move charges: {}\n",
        plan.strategy,
        plan.steps,
        plan.mutations,
        plan.estimate_seconds,
        plan.pauses,
        crate::repair::execute::DEFAULT_PACE.as_micros(),
        plan.pauses as f64 * PAUSE_COST_DEFAULT,
        if plan.move_charge {
            "yes (move_charge_at_immigrate=3)"
        } else {
            "no (kernel cannot)"
        }
    ));
    for (i, ph) in plan.phases.iter().enumerate() {
        let count = |f: fn(&Step) -> bool| ph.steps.iter().filter(|s| f(s)).count();
        s.push_str(&format!(
            "\nPhase {}/{} {}: {} ({} mkdir, {} writes, {} task moves, {} rmdir)\n",
            i + 1,
            plan.phases.len(),
            ph.name,
            ph.name.describe(),
            count(|s| matches!(s, Step::Mkdir { .. })),
            count(|s| matches!(
                s,
                Step::Write { .. } | Step::MoveCharge { .. } | Step::ForceEmpty { .. }
            )),
            ph.steps
                .iter()
                .map(|s| match s {
                    Step::MoveTasks { pids, .. } => pids.len(),
                    _ => 0,
                })
                .sum::<usize>(),
            count(|s| matches!(s, Step::Rmdir { .. })),
        ));
        if all_steps {
            for st in &ph.steps {
                s.push_str(&format!("  {st}\n"));
            }
        }
    }
    if !plan.blockers.is_empty() {
        s.push_str("\nThis plan cannot run:\n");
        for b in &plan.blockers {
            s.push_str(&format!("  - {}\n    what to do: {}\n", b.message, b.hint));
        }
    }
    s
}

/// The preflight table.
pub fn render_checks(checks: &[Check]) -> String {
    let mut s = String::from("Preflight:\n");
    for c in checks {
        let tag = match c.status {
            CheckStatus::Pass => " ok ",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        s.push_str(&format!("  [{tag}] {:<16} {}\n", c.name, c.detail));
    }
    s
}

/// What a finished repair, resume or rollback did, and what the operator does next.
pub fn render_outcome(o: &Outcome) -> String {
    let journal = o.state_dir.display();
    let mut s = match (o.command, o.ended) {
        (Command::Rollback, Some(Ended::Completed)) => format!(
            "rollback: nothing to undo: the repair completed (journal in {journal}); the tree is the repaired one and was left as it is\n"
        ),
        (Command::Rollback, Some(Ended::RolledBack)) => format!(
            "rollback: nothing to undo: the rollback already finished (journal in {journal})\n"
        ),
        (Command::Resume, Some(Ended::Completed)) => format!(
            "resume: nothing to resume: the repair completed (journal in {journal})\n"
        ),
        _ if o.already_done => format!(
            "{}: nothing left to do (journal in {journal})\n",
            o.command
        ),
        _ => render_stats(o),
    };
    s.push_str(&o.verify.render_text());
    // After a rollback the tree is the original one, unless the repair had completed.
    let original = o.command == Command::Rollback && o.ended != Some(Ended::Completed);
    if o.verify.ok && original {
        s.push_str("The tree is back as it was; start kubelet again when ready.\n");
        let runtime = crate::runtime::outcome::next_steps(&o.runtime, 1);
        if !runtime.is_empty() {
            s.push_str(&format!("Next, for the container runtime:\n{runtime}"));
        }
    } else if o.verify.ok {
        s.push_str(
            "Next:\n  1. start kubelet (systemctl start kubelet), with kmem accounting disabled (kubelet built with nokmem, runc >= 1.0.0-rc94)\n  2. restart cAdvisor if it runs outside kubelet (its inotify watches point at removed cgroups)\n  3. when new containers run, check them: cgleak diagnose (kmem accounting must stay inactive)\n",
        );
        s.push_str(&crate::runtime::outcome::next_steps(&o.runtime, 4));
    }
    s
}

/// What a run that did something did: counts, seconds per phase, notes.
fn render_stats(o: &Outcome) -> String {
    let mut s = format!(
        "{} done in {:.2} s ({}): {} cgroups created, {} removed, {} settings written, {} tasks moved ({} threads), {} exited meanwhile, {} system calls that changed something\n",
        o.command, o.stats.seconds, o.strategy, o.stats.cgroups_created, o.stats.cgroups_removed,
        o.stats.settings_written, o.stats.tasks_moved, o.stats.threads_moved, o.stats.tasks_exited, o.stats.mutations
    );
    for (name, secs) in &o.stats.phase_seconds {
        s.push_str(&format!("  {name:<16} {secs:.3} s\n"));
    }
    if let Some(m) = &o.stats.longest_move {
        s.push_str(&format!(
            "  slowest task move {:.2} ms (pid {} into {}): the node's forks and exits wait that long at most\n",
            m.seconds * 1e3,
            m.pid,
            m.to
        ));
    }
    if o.stats.pauses > 0 {
        s.push_str(&format!(
            "  paused {} times, {:.0} ms in all (--pace): the node's forks and the kernel's memcg cleanup got through between the moves and removals\n",
            o.stats.pauses,
            o.stats.pause_seconds * 1e3
        ));
    }
    if o.stats.force_empty_skipped > 0 {
        s.push_str(&format!(
            "  force_empty left out on {} cgroups without page cache (nothing to reclaim; the kernel would retry on their kernel memory)\n",
            o.stats.force_empty_skipped
        ));
    }
    if o.stats.force_empty_pinned > 0 {
        s.push_str(&format!(
            "  force_empty left out on {} cgroups that keep their tasks' memory (this kernel does not move charges): they stay until it is freed, and reclaiming their page cache would only cost the workloads their cache\n",
            o.stats.force_empty_pinned
        ));
    }
    if o.stats.force_empty_cut > 0 {
        s.push_str(&format!(
            "  force_empty cut short after {} ms on {} cgroups (the kernel was retrying on memory it cannot reclaim; rmdir does not need it)\n",
            crate::repair::execute::FORCE_EMPTY_BUDGET.as_millis(),
            o.stats.force_empty_cut
        ));
    }
    if o.stats.move_charge_unsupported {
        s.push_str("  note: this kernel cannot move charges; memory charged before the move stays with the old cgroups until freed, so usage of the new cgroups starts low\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_for_people() {
        assert_eq!(bytes(512 << 20), "512Mi");
        assert_eq!(bytes(1536 << 20), "1.5Gi");
        assert_eq!(bytes(9223372036854771712), "unlimited");
        assert_eq!(bytes(100), "100B");
    }
}
