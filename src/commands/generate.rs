//! The hidden `cgleak generate`: shell completions and man pages from the clap definition.

use super::out;
use crate::cli::{Cli, Generate};
use crate::error::{Error, Result};

/// The hidden `generate` command: completions and man pages from the clap definition, so
/// packaged files always match the binary that made them (scripts/release.sh).
pub(super) fn run(what: Generate) -> Result<u8> {
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
