//! Running the parsed command line: each command calls the library and returns its exit code.
//! Errors go back to main, which prints them and maps them to exit codes.

use crate::cli::{Cli, Command, DiagnoseArgs, DiagnoseFormat, Format, Generate, Global, IdsUsed};
use crate::error::{Error, Result};
use crate::host::{self, Node};
use crate::model::kernel::KernelInfo;
use crate::repair::execute::{self, Confirm};
use crate::repair::plan::{Phase, PlanInput};
use crate::repair::{self, Outcome, RepairOptions};
use crate::repair::{journal, plan, report, verify};
use crate::{ids, scan};
use std::io::{IsTerminal, Write};
use std::path::Path;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("serializable") + "\n"
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed pipe (| head) is not an error worth a message.
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Ask a yes/no question on the terminal.
pub fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Refuse an unattended change without --yes.
fn require_consent(yes: bool, command: &str) -> Result<bool> {
    if yes {
        return Ok(false);
    }
    if !interactive() {
        return Err(Error::refused(
            format!("{command} changes the node and there is no terminal to ask on"),
            format!("run it on a terminal to be asked before each phase, or pass --yes for an unattended {command}"),
        ));
    }
    Ok(true)
}

fn open_fs(root: &Path) -> Result<Box<dyn Node>> {
    host::open(root)
}

/// Run the command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Diagnose(a) => diagnose(g, &a),
        Command::Plan(a) => {
            let fs = open_fs(&g.root)?;
            let snap = scan::scan(fs.as_ref(), &g.kubepods)?;
            let kernel = KernelInfo::from_release(&fs.kernel_release()?);
            let idc = ids::count(fs.as_ref(), &kernel, resolve_ids_used(a.ids_used, "plan")?)?;
            let p = plan::plan(
                &snap,
                &PlanInput {
                    staging: g.staging.clone(),
                    strategy: a.strategy,
                    move_charge: kernel.move_charge_supported(),
                    ids_free: idc.ids_free,
                    staging_exists: fs.exists(&g.staging),
                },
            );
            match a.format {
                Format::Json => out(&json(&serde_json::json!({ "snapshot": snap, "plan": p }))),
                Format::Text => out(&report::render_plan(&snap, &p, !a.summary)),
            }
            if p.runnable() {
                Ok(0)
            } else {
                if a.format == Format::Json {
                    eprintln!(
                        "cgleak: this plan cannot run:\n  - {}",
                        p.blockers.join("\n  - ")
                    );
                }
                Ok(2)
            }
        }
        Command::Snapshot(a) => {
            let fs = open_fs(&g.root)?;
            let snap = scan::scan(fs.as_ref(), &g.kubepods)?;
            let text = json(&snap);
            match a.output {
                Some(p) => crate::atomic::write_file_atomic(&p, text.as_bytes(), ".tmp", 0o600)?,
                None => out(&text),
            }
            Ok(0)
        }
        Command::Repair(a) => {
            let fs = open_fs(&g.root)?;
            let guided = require_consent(a.yes, "repair")?;
            let mut opts = RepairOptions::new(&g.kubepods, &g.staging, a.strategy, &a.state_dir);
            opts.ids_used = resolve_ids_used(a.ids_used, "repair")?;
            opts.allow_kubelet_running = a.allow_kubelet_running;
            opts.crash_after = a.crash_after;
            opts.progress = a.format == Format::Text && std::io::stderr().is_terminal();
            let prepared = repair::prepare(fs.as_ref(), &opts)?;
            if a.format == Format::Text {
                eprint!("{}", report::render_checks(&prepared.checks));
            }
            if let Some(e) = repair::refusal(&prepared) {
                return Err(e);
            }
            if a.format == Format::Text {
                eprintln!();
                eprint!(
                    "{}",
                    report::render_plan(&prepared.snapshot, &prepared.plan, false)
                );
                eprintln!();
            }
            if guided && !ask("Start the repair?") {
                eprintln!("Nothing was changed.");
                return Ok(2);
            }
            execute::install_interrupt_handler();
            let mut asker = phase_asker();
            let confirm: Option<&mut Confirm> = if guided { Some(&mut asker) } else { None };
            let outcome = repair::execute(fs.as_ref(), &opts, prepared, confirm)?;
            finish(&outcome, a.format)
        }
        Command::Resume(a) => {
            let fs = open_fs(&g.root)?;
            let guided = require_consent(a.yes, "resume")?;
            execute::install_interrupt_handler();
            let mut asker = phase_asker();
            let confirm: Option<&mut Confirm> = if guided { Some(&mut asker) } else { None };
            let progress = a.format == Format::Text && std::io::stderr().is_terminal();
            let outcome =
                repair::resume(fs.as_ref(), &a.state_dir, a.crash_after, progress, confirm)?;
            finish(&outcome, a.format)
        }
        Command::Rollback(a) => {
            let fs = open_fs(&g.root)?;
            let guided = require_consent(a.yes, "rollback")?;
            execute::install_interrupt_handler();
            let mut asker = phase_asker();
            let confirm: Option<&mut Confirm> = if guided { Some(&mut asker) } else { None };
            let progress = a.format == Format::Text && std::io::stderr().is_terminal();
            let outcome =
                repair::rollback(fs.as_ref(), &a.state_dir, a.crash_after, progress, confirm)?;
            finish(&outcome, a.format)
        }
        Command::Verify(a) => {
            let fs = open_fs(&g.root)?;
            let (snap, staging, check_kmem) = match (&a.state_dir, &a.snapshot) {
                (_, Some(file)) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| Error::Usage(format!("--snapshot {}: {e}", file.display())))?;
                    let snap: crate::model::Snapshot =
                        serde_json::from_str(&text).map_err(|e| {
                            Error::Usage(format!(
                                "--snapshot {}: not a cgleak snapshot ({e})",
                                file.display()
                            ))
                        })?;
                    (snap, g.staging.clone(), true)
                }
                (dir, None) => {
                    let dir = dir
                        .clone()
                        .unwrap_or_else(|| journal::DEFAULT_STATE_DIR.into());
                    let (h, p) = journal::load(&dir)?.ok_or_else(|| Error::Usage(format!(
                        "--state-dir {}: no repair journal there; pass the repair's --state-dir or --snapshot FILE", dir.display())))?;
                    (h.snapshot, h.staging, !p.rolled_back)
                }
            };
            let r = verify::verify(fs.as_ref(), &snap, &staging, check_kmem)?;
            match a.format {
                Format::Json => out(&json(&r)),
                Format::Text => out(&r.render_text()),
            }
            Ok(if r.ok { 0 } else { 1 })
        }
        Command::Reclaim(a) => {
            let fs = open_fs(&g.root)?;
            let opts = crate::reclaim::ReclaimOptions {
                dry_run: a.dry_run,
                swap_cycle: a.swap_cycle,
            };
            if !a.dry_run {
                eprintln!(
                    "reclaim drops the clean page cache of the whole node (/proc/sys/vm/drop_caches): every \
                     workload starts with cold caches and reads from disk rise until they refill."
                );
                if a.swap_cycle {
                    eprintln!(
                        "--swap-cycle then turns each swap area off and on again (swapoff, swapon): every \
                         swapped-out page is read back into memory, with disk IO for as long as that takes; \
                         the workloads keep running."
                    );
                }
                let q = if a.swap_cycle {
                    "Drop the page cache and cycle the swap now?"
                } else {
                    "Drop the page cache now?"
                };
                if require_consent(a.yes, "reclaim")? && !ask(q) {
                    eprintln!("Nothing was changed.");
                    return Ok(2);
                }
                if a.swap_cycle {
                    // Ctrl-C must not kill cgleak between a swapoff and its swapon.
                    crate::repair::execute::install_interrupt_handler();
                }
            }
            let r =
                crate::reclaim::reclaim(fs.as_ref(), &opts, std::time::Duration::from_secs(60))?;
            match a.format {
                Format::Json => out(&json(&r)),
                Format::Text => out(&r.render_text()),
            }
            for p in r.swap.left_off() {
                eprintln!(
                    "cgleak: swap area {} is OFF: run `swapon {}`",
                    p.display(),
                    p.display()
                );
            }
            Ok(if r.ok() { 0 } else { 1 })
        }
        Command::Demo(a) => crate::demo::run(&a),
        Command::Emulate(a) => crate::demo::emulate(&a),
        Command::ProbeHeadroom(a) => {
            let fs = open_fs(&g.root)?;
            // Ctrl-C stops the probe between two mkdirs; the probe cgroups are removed either way.
            execute::install_interrupt_handler();
            let interrupted = || execute::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst);
            let r = crate::ids::probe::probe(fs.as_ref(), a.count, &g.kubepods, &interrupted)?;
            out(&r.render_text());
            Ok(r.exit_code())
        }
        Command::Generate(a) => generate(a.what),
    }
}

/// `cgleak diagnose` in every format. The machine formats (npd, prometheus) turn any error into
/// exit 2 ("could not tell"): their readers take exit 1 for "problem found", which some errors
/// (a failed system call) would otherwise give.
fn diagnose(g: &Global, a: &DiagnoseArgs) -> Result<u8> {
    if a.textfile.is_some() && a.format != DiagnoseFormat::Prometheus {
        return Err(Error::Usage(
            "--textfile goes with --format prometheus".to_string(),
        ));
    }
    if let Some(p) = &a.textfile {
        // Refuse before diagnosing: nothing would ever read the result.
        crate::diagnose::export::check_textfile(p)?;
    }
    let machine = matches!(a.format, DiagnoseFormat::Npd | DiagnoseFormat::Prometheus);
    let facts = match diagnose_facts(g, a) {
        Ok(f) => f,
        Err(e) if machine => {
            eprintln!("cgleak: {e}");
            if a.format == DiagnoseFormat::Npd {
                out(&crate::diagnose::export::render_npd_error(&e));
            }
            return Ok(2);
        }
        Err(e) => return Err(e),
    };
    match a.format {
        DiagnoseFormat::Text => out(&crate::diagnose::render_text(&facts)),
        DiagnoseFormat::Json => out(&crate::diagnose::render_json(&facts)),
        DiagnoseFormat::Npd => out(&crate::diagnose::export::render_npd(&facts)),
        DiagnoseFormat::Prometheus => {
            let text =
                crate::diagnose::export::render_prometheus(&facts, std::time::SystemTime::now());
            match &a.textfile {
                // node_exporter reads only the file: stdout stays empty, -v logs the write.
                Some(p) => {
                    if let Err(e) = crate::diagnose::export::write_textfile(p, text.as_bytes()) {
                        eprintln!("cgleak: {e}");
                        return Ok(2);
                    }
                    log::info!("wrote {} ({})", p.display(), facts.verdict.status);
                }
                None => out(&text),
            }
        }
    }
    Ok(facts.verdict.exit_code())
}

/// Everything diagnose found: from the v1 memory hierarchy at --root, or, when --root is on the
/// unified hierarchy, the cgroup v2 report.
fn diagnose_facts(g: &Global, a: &DiagnoseArgs) -> Result<crate::diagnose::Facts> {
    let fs = match open_fs(&g.root) {
        Ok(fs) => fs,
        Err(Error::BadRoot {
            reason: crate::error::BadRoot::CgroupV2,
            ..
        }) => return Ok(diagnose_v2(&g.root)),
        Err(e) => return Err(e),
    };
    crate::diagnose::gather(
        fs.as_ref(),
        &crate::diagnose::DiagnoseOptions {
            kubepods: g.kubepods.clone(),
            ids_used: resolve_ids_used(a.ids_used, "diagnose")?,
            check_kubelet: true,
        },
    )
}

/// `--ids-used N|-`: the count, read from standard input for `-` (scripts/memcg-ids.stp piped
/// in). A terminal on stdin means nothing was piped: refuse rather than wait for typing.
fn resolve_ids_used(arg: Option<IdsUsed>, command: &str) -> Result<Option<u64>> {
    match arg {
        None => Ok(None),
        Some(IdsUsed::Count(n)) => Ok(Some(n)),
        Some(IdsUsed::Stdin) if std::io::stdin().is_terminal() => Err(Error::Usage(format!(
            "--ids-used -: standard input is a terminal, not the output of scripts/memcg-ids.stp; {}",
            ids::stap_howto(command)
        ))),
        Some(IdsUsed::Stdin) => ids::read_ids_used(std::io::stdin().lock(), command).map(Some),
    }
}

/// The hidden `generate` command: completions and man pages from the clap definition, so
/// packaged files always match the binary that made them (scripts/release.sh).
fn generate(what: Generate) -> Result<u8> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut buf = Vec::new();
    match what {
        Generate::Completions { shell } => {
            // clap_complete offers hidden commands too: complete a copy without them.
            let mut visible = clap::Command::new("cgleak")
                .version(crate::VERSION)
                .args(cmd.get_arguments().cloned())
                .subcommands(cmd.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
            clap_complete::generate(shell, &mut visible, "cgleak", &mut buf)
        }
        Generate::Man { dir: None } => clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| Error::io("render", "the man page", e))?,
        Generate::Man { dir: Some(dir) } => clap_mangen::generate_to(cmd, &dir)
            .map_err(|e| Error::io("write man pages to", &dir, e))?,
    }
    out(&String::from_utf8_lossy(&buf));
    Ok(0)
}

/// diagnose on a cgroup v2 host: there is no v1 memory hierarchy; report the unified
/// hierarchy's dying descendants (cgroup.stat nr_dying_descendants).
fn diagnose_v2(root: &Path) -> crate::diagnose::Facts {
    use crate::host::kernel;
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let kubelets = kernel::find_processes_in_proc("kubelet");
    let inputs = crate::diagnose::V2Inputs {
        root: root.to_path_buf(),
        release: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().to_string())
            .unwrap_or_default(),
        cmdline: read("/proc/cmdline"),
        live: kernel::count_cgroup_dirs(root).ok(),
        nr_dying_descendants: kernel::v2_dying_descendants(root).ok().flatten(),
        kubelet_pids: kubelets.ok(),
    };
    crate::diagnose::gather_v2(&inputs)
}

fn phase_asker() -> impl FnMut(usize, &Phase, usize) -> bool {
    |i: usize, ph: &Phase, n: usize| {
        ask(&format!(
            "Phase {}/{} {}: {} ({} steps). Go on?",
            i + 1,
            n,
            ph.name,
            ph.name.describe(),
            ph.steps.len()
        ))
    }
}

fn finish(o: &Outcome, format: Format) -> Result<u8> {
    match format {
        Format::Json => out(&json(o)),
        Format::Text => out(&report::render_outcome(o)),
    }
    Ok(if o.verify.ok { 0 } else { 1 })
}
