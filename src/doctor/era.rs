//! Which of the kernel's OOM-victim rules apply to a kernel release: how `oom_badness` counts
//! page tables, whether it floors a score at 1, whether root gets a bonus, which of two equal
//! scores wins, whether the scan walks threads or processes, whether the chosen task's child is
//! sacrificed for it, and in which order a memcg's tasks are met.
//!
//! The rules and their sources are in docs/oom-victim.md ("The rules by kernel"); the release
//! boundaries below are cited there, with what is derived rather than seen.

use crate::model::kernel::Version;
use serde::Serialize;

/// How `oom_badness` counts a task's page tables (docs/oom-victim.md, "Page tables").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgTables {
    /// `mm->nr_ptes`: PTE pages only (3.x).
    NrPtes,
    /// `nr_ptes + nr_pmds` (4.0 to 4.14; 4.14 adds `nr_puds`, a page or two).
    NrPtesPmds,
    /// `mm_pgtables_bytes(mm) / PAGE_SIZE`: every level (4.15 on).
    PgtablesBytes,
}

/// The CAP_SYS_ADMIN ("root") bonus (docs/oom-victim.md, "Root bonus").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootBonus {
    /// `adj -= 30` before the adj is scaled: 3 % of totalpages (upstream 3.10 to 3.18).
    AdjMinus30,
    /// `points -= points * 3 / 100` before the adj is added (3.19 to 4.16, RHEL 7).
    ThreePercentOfPoints,
    /// No bonus (d46078b28889, 4.17 on).
    None,
}

/// Which task wins when two scores are equal (docs/oom-victim.md, "Ties").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tie {
    /// A later task must score strictly more: the first found keeps it (before 5.3).
    FirstFound,
    /// An equal score re-selects: the last found wins (5.3 on).
    LastFound,
}

/// What the memcg scan iterates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scan {
    /// Every thread (`css_task_iter` without flags, 3.10's `cgroup_iter`); the threads of one
    /// process share its mm and its score, so the process is chosen when its first thread is.
    Threads,
    /// Thread-group leaders only (`CSS_TASK_ITER_PROCS`, 5.3 on).
    Processes,
}

/// The order of the tasks of one memcg in the scan: the css_set task list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOrder {
    /// Head-inserted at fork and move (`list_add`, `list_move`): the newest first (3.x).
    NewestFirst,
    /// Tail-inserted (`css_set_move_task`'s `list_add_tail`): in the order they joined (4.x on).
    JoinOrder,
}

/// The victim rules of one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Era {
    /// The release string the rules were chosen for.
    pub release: String,
    /// Short name of the rule set (`3.10`, `rhel7`, `4.14`, `5.3-5.8`, `5.9+`, ...).
    pub name: String,
    /// False when the release could not be parsed: the newest rules were assumed.
    pub known: bool,
    pub pgtables: PgTables,
    /// `return points > 0 ? points : 1`: every killable task scores at least 1, so tasks whose
    /// adj outweighs their size all tie at 1 (before 5.9, 9066e5cfb73c; 5.4.143 has the fix).
    pub floor: bool,
    pub root_bonus: RootBonus,
    pub tie: Tie,
    pub scan: Scan,
    pub task_order: TaskOrder,
    /// oom_kill_process kills the chosen task's highest-scoring child (other mm) instead when
    /// it scores more (before 5.1, bbbe48029720).
    pub sacrifice_child: bool,
    /// What is assumed rather than known for this release, in words.
    pub caveats: Vec<String>,
}

/// The rules as one line each, for the report's `rules` list.
impl Era {
    pub fn rules(&self) -> Vec<String> {
        let mut r = vec![match self.pgtables {
            PgTables::NrPtes => "points = rss + swap entries + nr_ptes (pages)".to_string(),
            PgTables::NrPtesPmds => {
                "points = rss + swap entries + nr_ptes + nr_pmds (pages)".to_string()
            }
            PgTables::PgtablesBytes => {
                "points = rss + swap entries + pgtables_bytes / PAGE_SIZE".to_string()
            }
        }];
        r.push("plus oom_score_adj * (totalpages / 1000), totalpages = the memcg's limit with its swap headroom".into());
        r.push(match self.root_bonus {
            RootBonus::AdjMinus30 => "CAP_SYS_ADMIN tasks: adj - 30 (3 % of totalpages)".into(),
            RootBonus::ThreePercentOfPoints => "CAP_SYS_ADMIN tasks: points - 3 %".into(),
            RootBonus::None => "no CAP_SYS_ADMIN bonus".into(),
        });
        r.push(if self.floor {
            "a killable task scores at least 1 (floor): tasks whose adj outweighs their size tie at 1".into()
        } else {
            "no floor: scores may be negative, the highest wins".into()
        });
        r.push(match (self.tie, self.scan) {
            (Tie::FirstFound, Scan::Threads) => {
                "scan by threads; on equal points the first found wins".into()
            }
            (Tie::FirstFound, Scan::Processes) => {
                "scan by processes; on equal points the first found wins".into()
            }
            (Tie::LastFound, Scan::Threads) => {
                "scan by threads; on equal points the last found wins".into()
            }
            (Tie::LastFound, Scan::Processes) => {
                "scan by processes; on equal points the last found wins".into()
            }
        });
        r.push(match self.task_order {
            TaskOrder::NewestFirst => "scan order: the memcg first, then its children in creation order (pre-order); within a memcg the newest task first".into(),
            TaskOrder::JoinOrder => "scan order: the memcg first, then its children in creation order (pre-order); within a memcg in the order tasks joined".into(),
        });
        if self.sacrifice_child {
            r.push("the chosen task's child with a higher score (own mm) dies in its place".into());
        }
        r.push("unkillable: oom_score_adj -1000, kernel threads; exiting tasks are skipped".into());
        r
    }
}

/// The upstream sublevel Ubuntu kernels name in /proc/version_signature
/// (`Ubuntu 5.4.0-150.167-generic 5.4.233`): its last field.
pub fn upstream_from_signature(signature: &str) -> Option<Version> {
    let last = signature.split_whitespace().last()?;
    let v = Version::parse(last)?;
    // The field is a full X.Y.Z; a bare "5.4" would say nothing the release does not.
    (last.matches('.').count() >= 2).then_some(v)
}

/// The rules for `release` (`uname -r`). `signature` is /proc/version_signature where the
/// distribution has one (Ubuntu): its upstream X.Y.Z replaces the release's, whose sublevel is
/// the distribution's ABI number, not the stable release.
pub fn era_for(release: &str, signature: Option<&str>) -> Era {
    let release = release.trim();
    let rhel7 = release.contains(".el7");
    let mut caveats = Vec::new();
    let parsed = Version::parse(release);
    let mut v = parsed.unwrap_or(Version::new(u32::MAX, 0, 0));
    if let Some(up) = signature.and_then(upstream_from_signature) {
        if parsed.is_some_and(|p| (p.major, p.minor) == (up.major, up.minor)) {
            v = up;
        }
    } else if is_distro_abi(release, v) && needs_sublevel(v) {
        caveats.push(format!(
            "{release}: the stable sublevel is not in the release string (a distribution ABI \
             number follows); the floor was assumed present (before 5.4.143)"
        ));
    }
    if release.contains(".el8") {
        caveats.push(
            "RHEL 8 backports to the OOM killer are not known to cgleak: upstream 4.18 rules assumed"
                .into(),
        );
    }
    let at_least = |maj: u32, min: u32| (v.major, v.minor) >= (maj, min);
    let floor_fixed = at_least(5, 9) || ((v.major, v.minor) == (5, 4) && v.patch >= 143);
    let pgtables = if at_least(4, 15) {
        PgTables::PgtablesBytes
    } else if at_least(4, 0) {
        PgTables::NrPtesPmds
    } else {
        PgTables::NrPtes
    };
    let root_bonus = if at_least(4, 17) {
        RootBonus::None
    } else if at_least(3, 19) || rhel7 {
        RootBonus::ThreePercentOfPoints
    } else {
        RootBonus::AdjMinus30
    };
    let modern_scan = at_least(5, 3);
    if parsed.is_none() {
        caveats.push(format!(
            "kernel release {release:?} not understood: the newest rules were assumed"
        ));
    }
    Era {
        release: release.to_string(),
        name: era_name(v, rhel7, floor_fixed),
        known: parsed.is_some(),
        pgtables,
        floor: !floor_fixed,
        root_bonus,
        tie: if modern_scan {
            Tie::LastFound
        } else {
            Tie::FirstFound
        },
        scan: if modern_scan {
            Scan::Processes
        } else {
            Scan::Threads
        },
        task_order: if at_least(4, 0) {
            TaskOrder::JoinOrder
        } else {
            TaskOrder::NewestFirst
        },
        sacrifice_child: !at_least(5, 1),
        caveats,
    }
}

/// A release like `5.4.0-150-generic`: X.Y.0 then a distribution ABI number, so the stable
/// sublevel is unknown.
fn is_distro_abi(release: &str, v: Version) -> bool {
    v.patch == 0
        && release
            .split_once('-')
            .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether the stable sublevel changes the rules for this X.Y (only 5.4: 5.4.143 dropped the
/// floor).
fn needs_sublevel(v: Version) -> bool {
    (v.major, v.minor) == (5, 4)
}

fn era_name(v: Version, rhel7: bool, floor_fixed: bool) -> String {
    let mm = (v.major, v.minor);
    if v.major == u32::MAX {
        return "unknown (newest rules)".into();
    }
    if rhel7 {
        return "rhel7".into();
    }
    let name = if mm < (3, 19) {
        "3.x (before 3.19)"
    } else if mm < (4, 0) {
        "3.19"
    } else if mm < (4, 15) {
        "4.0-4.14"
    } else if mm < (4, 17) {
        "4.15-4.16"
    } else if mm < (5, 1) {
        "4.17-5.0"
    } else if mm < (5, 3) {
        "5.1-5.2"
    } else if !floor_fixed {
        "5.3-5.8"
    } else if mm == (5, 4) {
        "5.4.143+"
    } else {
        "5.9+"
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhel7_floors_scans_threads_first_found_and_takes_three_percent() {
        let e = era_for("3.10.0-1127.el7.x86_64", None);
        assert_eq!(e.name, "rhel7");
        assert!(e.known && e.floor && e.sacrifice_child);
        assert_eq!(e.pgtables, PgTables::NrPtes);
        assert_eq!(e.root_bonus, RootBonus::ThreePercentOfPoints);
        assert_eq!((e.tie, e.scan), (Tie::FirstFound, Scan::Threads));
        assert_eq!(e.task_order, TaskOrder::NewestFirst);
    }

    #[test]
    fn upstream_310_takes_the_bonus_from_adj() {
        let e = era_for("3.10.108", None);
        assert_eq!(e.root_bonus, RootBonus::AdjMinus30);
        assert_eq!(era_for("3.18.140", None).root_bonus, RootBonus::AdjMinus30);
        assert_eq!(
            era_for("3.19.0", None).root_bonus,
            RootBonus::ThreePercentOfPoints
        );
    }

    #[test]
    fn page_table_boundaries() {
        assert_eq!(era_for("3.19.8", None).pgtables, PgTables::NrPtes);
        assert_eq!(era_for("4.0.1", None).pgtables, PgTables::NrPtesPmds);
        assert_eq!(era_for("4.14.x", None).pgtables, PgTables::NrPtesPmds);
        assert_eq!(era_for("4.15.0", None).pgtables, PgTables::PgtablesBytes);
        assert_eq!(era_for("4.19", None).pgtables, PgTables::PgtablesBytes);
    }

    #[test]
    fn root_bonus_ends_at_417() {
        assert_eq!(
            era_for("4.16.18", None).root_bonus,
            RootBonus::ThreePercentOfPoints
        );
        assert_eq!(era_for("4.17.0", None).root_bonus, RootBonus::None);
        assert_eq!(era_for("4.19", None).root_bonus, RootBonus::None);
    }

    #[test]
    fn sacrifice_child_ends_at_51() {
        assert!(era_for("5.0.21", None).sacrifice_child);
        assert!(!era_for("5.1.0", None).sacrifice_child);
    }

    #[test]
    fn scan_and_tie_change_at_53() {
        let e = era_for("5.2.21", None);
        assert_eq!((e.tie, e.scan), (Tie::FirstFound, Scan::Threads));
        let e = era_for("5.3.0", None);
        assert_eq!((e.tie, e.scan), (Tie::LastFound, Scan::Processes));
        assert!(e.floor);
        assert_eq!(e.name, "5.3-5.8");
    }

    #[test]
    fn floor_gone_at_59_and_at_54143() {
        assert!(era_for("5.8.18", None).floor);
        assert!(!era_for("5.9.0", None).floor);
        assert!(era_for("5.4.142", None).floor);
        let e = era_for("5.4.143", None);
        assert!(!e.floor);
        assert_eq!(e.name, "5.4.143+");
        assert!(!era_for("5.10.0-30-amd64", None).floor);
        assert!(era_for("4.19.316", None).floor);
    }

    #[test]
    fn this_machine_6_18() {
        let e = era_for("6.18.44-fc-v1147", None);
        assert_eq!(e.name, "5.9+");
        assert!(!e.floor && !e.sacrifice_child && e.caveats.is_empty());
        assert_eq!((e.tie, e.scan), (Tie::LastFound, Scan::Processes));
        assert_eq!(e.task_order, TaskOrder::JoinOrder);
        assert_eq!(e.root_bonus, RootBonus::None);
    }

    #[test]
    fn ubuntu_sublevel_from_the_signature() {
        // 5.4.0-N: the ABI number says nothing of the stable sublevel.
        let e = era_for("5.4.0-150-generic", None);
        assert!(e.floor);
        assert!(e.caveats[0].contains("sublevel"), "{:?}", e.caveats);
        let e = era_for(
            "5.4.0-150-generic",
            Some("Ubuntu 5.4.0-150.167-generic 5.4.233\n"),
        );
        assert!(!e.floor && e.caveats.is_empty());
        let e = era_for(
            "5.4.0-80-generic",
            Some("Ubuntu 5.4.0-80.90-generic 5.4.124"),
        );
        assert!(e.floor);
        // A signature of another X.Y is not this kernel's: ignored.
        assert!(era_for("5.4.0-80-generic", Some("Ubuntu 5.15.0-1.1-generic 5.15.3")).floor);
        // Not a 5.4: no caveat, the sublevel does not matter.
        assert!(era_for("5.15.0-91-generic", None).caveats.is_empty());
    }

    #[test]
    fn unknown_release_assumes_the_newest_rules() {
        let e = era_for("garbage", None);
        assert!(!e.known && !e.floor);
        assert_eq!(e.tie, Tie::LastFound);
        assert!(e.caveats[0].contains("not understood"));
    }

    #[test]
    fn rules_are_listed() {
        let r = era_for("3.10.0-1127.el7.x86_64", None).rules();
        assert!(r.iter().any(|l| l.contains("floor")), "{r:?}");
        assert!(r.iter().any(|l| l.contains("first found")), "{r:?}");
        assert!(r.iter().any(|l| l.contains("in its place")), "{r:?}");
        let r = era_for("6.18.44", None).rules();
        assert!(r.iter().any(|l| l.contains("last found")), "{r:?}");
        assert!(!r.iter().any(|l| l.contains("in its place")), "{r:?}");
    }
}
