//! How cgleak is invoked on a node: the default names, the rule a cgroup name follows, the
//! commands that work from a journal, and the command lines that reach a node again (the "ways
//! on" cgleak prints, which must work when copied). Plain data and strings, no system calls.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The default `--kubepods`: the cgroupfs driver's pods cgroup.
pub const DEFAULT_KUBEPODS: &str = "kubepods";
/// The default `--staging`.
pub const DEFAULT_STAGING: &str = "kubepods2";
/// The default `--state-dir`: a tmpfs, so a journal survives a crash of cgleak but not a reboot.
pub const DEFAULT_STATE_DIR: &str = "/run/cgleak";

/// Whether `name` can be the pods or staging cgroup: one directory name directly below the
/// root. The command line applies the same rule ([`crate::cli`]).
pub fn cgroup_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("names no cgroup of its own")
    } else if name.contains('/') {
        Some("has a '/'")
    } else if name.starts_with('-') {
        Some("starts with '-'")
    } else {
        None
    }
}

/// The journaled commands. In JSON, their lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Repair,
    Resume,
    Rollback,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Repair => "repair",
            Command::Resume => "resume",
            Command::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a command line that goes on with a repair must carry to reach its node: `--root`, the
/// pods and staging names when not the defaults, and the state directory. A journal's is built
/// from the journal, not from the arguments, so the line is right even when typed with others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaysOn {
    pub root: String,
    pub kubepods: String,
    pub staging: String,
    pub state_dir: PathBuf,
}

impl WaysOn {
    /// `cgleak <cmd> --root R [--kubepods K] [--staging S] --state-dir D`, ready to copy.
    pub fn command(&self, cmd: Command) -> String {
        let mut s = format!("cgleak {cmd} --root {}", shell_word(&self.root));
        if self.kubepods != DEFAULT_KUBEPODS {
            s.push_str(&format!(" --kubepods {}", shell_word(&self.kubepods)));
        }
        if self.staging != DEFAULT_STAGING {
            s.push_str(&format!(" --staging {}", shell_word(&self.staging)));
        }
        let dir = self.state_dir.display().to_string();
        s.push_str(&format!(" --state-dir {}", shell_word(&dir)));
        s
    }

    /// [`WaysOn::command`] followed by more words (`--rebuild-journal --yes`).
    pub fn command_with(&self, cmd: Command, more: &str) -> String {
        format!("{} {more}", self.command(cmd))
    }
}

/// `w` as one shell word: as it is when it has nothing a shell would split or expand.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ways_on(dir: &Path) -> WaysOn {
        WaysOn {
            root: "/sys/fs/cgroup/memory".into(),
            kubepods: DEFAULT_KUBEPODS.into(),
            staging: DEFAULT_STAGING.into(),
            state_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn ways_on_carry_the_root_and_every_name_not_default() {
        let mut w = ways_on(Path::new("/run/cgleak"));
        assert_eq!(
            w.command(Command::Resume),
            "cgleak resume --root /sys/fs/cgroup/memory --state-dir /run/cgleak"
        );
        w.kubepods = "pods".into();
        w.staging = "pods.new".into();
        w.state_dir = PathBuf::from("/tmp/my state");
        assert_eq!(
            w.command(Command::Rollback),
            "cgleak rollback --root /sys/fs/cgroup/memory --kubepods pods --staging pods.new --state-dir '/tmp/my state'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn commands_serialize_lowercase() {
        assert_eq!(
            serde_json::to_string(&Command::Rollback).unwrap(),
            "\"rollback\""
        );
        assert_eq!(Command::Resume.to_string(), "resume");
    }
}
