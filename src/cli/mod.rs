//! The command line, as data (clap derive). No behaviour here: [`crate::commands`] runs it.

use crate::repair::plan::Strategy;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Find and repair the memory-cgroup leak that stops pods from starting
/// ("mkdir /sys/fs/cgroup/memory/kubepods/...: no space left on device"),
/// without rebooting the node and without restarting a pod.
#[derive(Debug, Parser)]
#[command(name = "cgleak", version = crate::VERSION, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 fine, 1 a problem was found (diagnose) or an operation did not complete, 2 bad input or a refusal (nothing changed)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

pub use crate::model::invocation::{DEFAULT_KUBEPODS, DEFAULT_STAGING};

/// Options every command takes, before or after the command name.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The memory cgroup v1 directory that holds the pods cgroup (any directory inside a
    /// memory hierarchy, or an emulated node made by `cgleak emulate`).
    #[arg(
        long,
        global = true,
        default_value = "/sys/fs/cgroup/memory",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Name of the pods cgroup below --root.
    #[arg(long, global = true, default_value = DEFAULT_KUBEPODS, value_name = "NAME", value_parser = cgroup_name)]
    pub kubepods: String,
    /// Name of the staging cgroup the repair moves the tree into (directly below --root, other
    /// than --kubepods).
    #[arg(long, global = true, default_value = DEFAULT_STAGING, value_name = "NAME", value_parser = cgroup_name)]
    pub staging: String,
    /// More log output (-v info, -vv debug); RUST_LOG works too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--kubepods` and `--staging`: one cgroup name directly below `--root`, by the rule the
/// repair's refusals use ([`crate::model::invocation::cgroup_name_problem`]).
fn cgroup_name(s: &str) -> Result<String, String> {
    match crate::model::invocation::cgroup_name_problem(s) {
        None => Ok(s.to_string()),
        Some(problem) => Err(format!(
            "{s:?} {problem}; give the name of one cgroup directly below --root"
        )),
    }
}

/// `--pace` [`DEFAULT_PACE`](crate::repair::execute::DEFAULT_PACE), as the command line writes it.
pub const DEFAULT_PACE_ARG: &str = "100us";

/// `--pace` of repair, resume and rollback.
#[derive(Debug, Clone, Args)]
pub struct PaceArg {
    /// Pause this long after each task move and each cgroup removal, so the node's forks and
    /// the kernel's cleanup get through between them (0: none; e.g. 100us, 1ms).
    #[arg(long, value_name = "PAUSE", default_value = DEFAULT_PACE_ARG, value_parser = parse_pace)]
    pub pace: std::time::Duration,
}

/// `--pace`: a pause of 0 to 1 s, written `0`, `250us`, `1ms` or `0.5s`. More than a second
/// a step would stretch a 1000-pod repair past two hours, so it is refused as a typo.
pub fn parse_pace(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?}: give a pause like 100us, 1ms or 0 (none)");
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" if num.parse::<f64>() == Ok(0.0) => 0.0,
        _ => return Err(bad()),
    };
    let secs = num
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * scale)
        .ok_or_else(bad)?;
    if secs > 1.0 {
        return Err(format!(
            "{s:?} is more than 1s a step: the repair would take hours; give e.g. 100us or 1ms"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

impl Cli {
    /// Parse the command line, then check what one option cannot check alone: the pods and
    /// staging cgroups of a plan or repair must differ. Exits 2 with clap's usage error.
    pub fn parse_checked() -> Cli {
        let cli = Cli::parse();
        let uses_staging = matches!(cli.command, Command::Plan(_) | Command::Repair(_));
        if uses_staging && cli.global.kubepods == cli.global.staging {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--staging {0:?} is the pods cgroup (--kubepods {0:?}): the repair moves the pods tree into the staging cgroup, so give it another name",
                        cli.global.staging
                    ),
                )
                .exit();
        }
        cli
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Output formats of `diagnose`: the two of every command plus the two a fleet's monitoring reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagnoseFormat {
    Text,
    Json,
    /// node-problem-detector custom plugin: one line of at most 80 bytes; exit 0 healthy,
    /// 1 at-risk or leaking, 2 unknown.
    Npd,
    /// Prometheus text format (node_exporter textfile collector); see --textfile.
    Prometheus,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read-only health check: kernel, memcg ids, dying memcgs, kmem accounting, verdict and advice.
    Diagnose(DiagnoseArgs),
    /// Dry run: the pods tree, the id check and every operation a repair would do, in order.
    Plan(PlanArgs),
    /// Write the scan of the pods tree (every cgroup's settings and tasks) as JSON.
    Snapshot(SnapshotArgs),
    /// Migrate the pods tree through the staging cgroup and back (maintenance window, kubelet stopped).
    Repair(RepairArgs),
    /// Finish a repair that was interrupted (error, Ctrl-C, kill -9).
    Resume(ResumeArgs),
    /// Undo a repair from wherever it stopped: the original tree, settings and tasks.
    Rollback(ResumeArgs),
    /// Compare the live tree with the repair's snapshot (or a snapshot file).
    Verify(VerifyArgs),
    /// Read-only: which running containers a repair recorded still lack their runtime's OOM
    /// watcher (exit 0 none, 1 some), to plan and check a rolling restart.
    Watchers(WatchersArgs),
    /// Read-only: the OOM kills on this node (from /dev/kmsg or a copied log) with their pod and
    /// container; with --predict, the task the kernel would kill next in each pod and container.
    Oom(OomArgs),
    /// Read-only: per container, usage, the working set kubelet computes, page cache, what the
    /// kernel could reclaim, and why the working set is above the rss.
    Memory(MemoryArgs),
    /// Free dying memcgs: drop clean page cache; with --swap-cycle read swap back (kernels >= 3.16).
    Reclaim(ReclaimArgs),
    /// Show diagnose, plan, repair and verify on an emulated 3.10 node in a temp dir (no root needed).
    Demo(DemoArgs),
    /// Make an emulated node in a directory, to rehearse a repair (optionally from a snapshot).
    Emulate(EmulateArgs),
    /// Prove N memcg ids are free: make N empty memcgs below --root and remove them at once.
    ProbeHeadroom(ProbeArgs),
    /// Shell completions and man pages from this binary's own arguments (for packaging).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// `--ids-used N|-`: a count, or `-` for the count on standard input (the output of
/// scripts/memcg-ids.stp). [`crate::commands`] reads standard input; parsing stays here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdsUsed {
    Count(u64),
    Stdin,
}

impl std::str::FromStr for IdsUsed {
    type Err = String;

    fn from_str(s: &str) -> Result<IdsUsed, String> {
        if s == "-" {
            return Ok(IdsUsed::Stdin);
        }
        crate::ids::parse_ids_used(s).map(IdsUsed::Count)
    }
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Memcg ids to prove free (at least 1); at most what a repair of the pods tree needs plus
    /// its margin.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Generate {
    /// Completions for SHELL on standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page on standard output, or with DIR one page per command in DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiagnoseFormat,
    /// Memcg ids in use (live and dying), e.g. from scripts/memcg-ids.stp on 3.10 kernels;
    /// `-` reads it from standard input: `stap -g scripts/memcg-ids.stp | cgleak ... --ids-used -`.
    #[arg(long, value_name = "N|-")]
    pub ids_used: Option<IdsUsed>,
    /// With --format prometheus: replace PATH (a *.prom file in node_exporter's textfile
    /// directory) atomically instead of writing to standard output.
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[arg(long, value_enum, default_value = "migrate-back")]
    pub strategy: Strategy,
    /// Memcg ids in use (live and dying), e.g. from scripts/memcg-ids.stp on 3.10 kernels;
    /// `-` reads it from standard input: `stap -g scripts/memcg-ids.stp | cgleak ... --ids-used -`.
    #[arg(long, value_name = "N|-")]
    pub ids_used: Option<IdsUsed>,
    /// Only the summary per phase, not every operation.
    #[arg(long)]
    pub summary: bool,
    /// The state directory the repair would use: its lock and an unfinished journal there
    /// refuse the plan as they would the repair.
    #[arg(long, default_value = crate::model::invocation::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Plan before kubelet is stopped (the rolling procedure): a running kubelet does not make
    /// the plan exit 2; it is named, to be stopped before the repair.
    #[arg(long)]
    pub assume_kubelet_stopped: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Write to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Do not ask before each phase (unattended run).
    #[arg(long)]
    pub yes: bool,
    #[arg(long, value_enum, default_value = "migrate-back")]
    pub strategy: Strategy,
    /// Where the journal lives (a tmpfs: it survives a crash of cgleak, not a reboot).
    #[arg(long, default_value = crate::model::invocation::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Memcg ids in use (live and dying), e.g. from scripts/memcg-ids.stp on 3.10 kernels;
    /// `-` reads it from standard input, so only with --yes (the guided repair asks its
    /// questions there): give the number for a guided repair.
    #[arg(long, value_name = "N|-")]
    pub ids_used: Option<IdsUsed>,
    #[command(flatten)]
    pub pacing: PaceArg,
    /// For tests only: go on although a kubelet process runs.
    #[arg(long, hide = true)]
    pub allow_kubelet_running: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Do not ask before each phase.
    #[arg(long)]
    pub yes: bool,
    #[arg(long, default_value = crate::model::invocation::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The journal is lost or corrupt: rebuild it first from the pods tree and the leftover
    /// staging tree (--kubepods, --staging), then go on from it.
    #[arg(long)]
    pub rebuild_journal: bool,
    #[command(flatten)]
    pub pacing: PaceArg,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The repair's state directory (its journal holds the snapshot).
    #[arg(long, value_name = "DIR", conflicts_with = "snapshot")]
    pub state_dir: Option<PathBuf>,
    /// A snapshot written by `cgleak snapshot`.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct WatchersArgs {
    /// The repair's state directory (it holds runtime-affected.json).
    #[arg(long, default_value = crate::model::invocation::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Output formats of the memory doctor's commands (`oom`, `memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Text,
    Json,
    /// node-problem-detector custom plugin: one line; exit 0 nothing found, 1 found.
    Npd,
    /// Prometheus text format (node_exporter textfile collector); see --textfile.
    Prometheus,
}

#[derive(Debug, Args)]
pub struct OomArgs {
    /// Read a kernel log copied off a node (`dmesg`, `dmesg -T`, `journalctl -k` or /dev/kmsg
    /// records) from FILE, or `-` for standard input, instead of this node's /dev/kmsg.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["follow", "predict"])]
    pub input: Option<PathBuf>,
    /// Only kills at or after this time: a duration back from now (`90m`, `2h`, `3d`, `1w`,
    /// `1h30m`), an RFC 3339 time (`2026-12-02T10:00:00Z`), `YYYY-MM-DD HH:MM:SS` or a date (UTC).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Keep reading /dev/kmsg and print each kill as it happens (Ctrl-C ends).
    #[arg(long, conflicts_with = "predict")]
    pub follow: bool,
    /// Instead of past kills: for every memcg of the pods tree with a limit, the task the
    /// kernel would kill if that memcg hit its limit now, by this kernel's own rules.
    #[arg(long)]
    pub predict: bool,
    /// Where kubelet keeps the pods' logs (`<namespace>_<pod>_<uid>/<container>/`), for names.
    #[arg(long, default_value = "/var/log/pods", value_name = "DIR")]
    pub pods_log_dir: PathBuf,
    /// Where containerd keeps its running tasks' bundles (config.json annotations), for names.
    #[arg(
        long,
        default_value = "/run/containerd/io.containerd.runtime.v2.task",
        value_name = "DIR"
    )]
    pub containerd_state_dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DoctorFormat,
    /// With --format prometheus: write the metrics atomically to this file (a node_exporter
    /// textfile directory) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Only this pod (name, namespace/name or uid) or container (name or id prefix).
    #[arg(value_name = "POD|CONTAINER")]
    pub target: Option<String>,
    /// Where kubelet keeps the pods' logs (`<namespace>_<pod>_<uid>/<container>/`), for names.
    #[arg(long, default_value = "/var/log/pods", value_name = "DIR")]
    pub pods_log_dir: PathBuf,
    /// Where containerd keeps its running tasks' bundles (config.json annotations), for names.
    #[arg(
        long,
        default_value = "/run/containerd/io.containerd.runtime.v2.task",
        value_name = "DIR"
    )]
    pub containerd_state_dir: PathBuf,
    /// kubelet's hard eviction threshold for memory.available (`100Mi`, `5%`), to tell the
    /// distance to eviction.
    #[arg(long, default_value = "100Mi", value_name = "QUANTITY")]
    pub eviction_hard: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DoctorFormat,
    /// With --format prometheus: write the metrics atomically to this file.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReclaimArgs {
    /// Only report the dying memcgs, the swap in use and what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before dropping caches (or cycling the swap).
    #[arg(long)]
    pub yes: bool,
    /// After the drop, swapoff and swapon each swap area in turn: from kernel 4.8 the only way
    /// to free the ids that swapped-out pages of dying memcgs hold, short of a reboot.
    /// Refused unless MemAvailable covers the swap in use plus a margin.
    #[arg(long)]
    pub swap_cycle: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pods on the emulated node.
    #[arg(long, default_value_t = 36)]
    pub pods: usize,
    /// Keep the emulated node in DIR instead of a temp dir that is removed.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Make an emulated memory cgroup v1 node in DIR: its files hold the state (DIR/memory is the
/// hierarchy to pass as --root, DIR/proc the processes, DIR/cgleak-emulated.json what a real node
/// has no file for, faults included: see below).
#[derive(Debug, Args)]
#[command(after_long_help = crate::host::emulated::FAULTS_HELP)]
pub struct EmulateArgs {
    /// Directory to create the node in (must not exist or be empty).
    pub dir: PathBuf,
    /// Kernel profile: 3.10, 5.10, 6.1 or 6.13.
    #[arg(long, default_value = "3.10")]
    pub profile: String,
    /// Kubelet-shaped pods to create (ignored with --from-snapshot).
    #[arg(long, default_value_t = 30)]
    pub pods: usize,
    /// Dying memcgs holding ids.
    #[arg(long, default_value_t = 0)]
    pub dying: u64,
    /// Activate kmem accounting under the pods cgroup (what kubelet 1.9-1.13 did on 3.10).
    #[arg(long)]
    pub kmem: bool,
    /// Recreate the tree of a snapshot (from `cgleak snapshot` on a real node).
    #[arg(long, value_name = "FILE")]
    pub from_snapshot: Option<PathBuf>,
    /// Container runtime on the node: its daemons, shims (exe, cmdline), the containers'
    /// processes as their children and the shims' OOM watchers on the containers' memcgs.
    #[arg(long, value_enum, default_value = "none")]
    pub runtime: EmulatedRuntime,
}

/// `cgleak emulate --runtime`: the runtimes the lab runs (docs/runtimes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmulatedRuntime {
    /// containerd 1.6 (CRI, namespace k8s.io) with shim v2 (containerd-shim-runc-v2), one per pod.
    ContainerdV2,
    /// containerd with runtime v1 (containerd-shim per container; the watchers in containerd).
    ContainerdV1,
    /// docker 20.10 on containerd 1.6: shim v2 per container, namespace moby.
    Docker,
    /// No runtime processes.
    None,
}

#[cfg(test)]
mod tests {
    use super::parse_pace;
    use std::time::Duration;

    /// The command line's default is the library's.
    #[test]
    fn default_pace_arg_is_the_default_pace() {
        assert_eq!(
            parse_pace(super::DEFAULT_PACE_ARG),
            Ok(crate::repair::execute::DEFAULT_PACE)
        );
    }

    #[test]
    fn pace_takes_units_and_refuses_typos() {
        assert_eq!(parse_pace("0"), Ok(Duration::ZERO));
        assert_eq!(parse_pace("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_pace(" 1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_pace("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_pace("0ms"), Ok(Duration::ZERO));
        for bad in ["100", "1m", "-1ms", "ms", "fast", "NaNus"] {
            assert!(parse_pace(bad).is_err(), "{bad}");
        }
        let e = parse_pace("2s").unwrap_err();
        assert!(e.contains("more than 1s"), "{e}");
    }
}
