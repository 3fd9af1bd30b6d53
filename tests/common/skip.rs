//! Whether a real-kernel test runs, skips or fails: the rule, apart from the probing (in
//! sandbox.rs) so it can be tested with every input.
//!
//! A real-kernel test that cannot run prints SKIP and passes, so a run on a laptop or in an
//! unprivileged container still tests the emulation. Under CI (`CI=true`) on a machine that
//! could run it (root, and this process's own memory cgroup is a writable cgroup v1 memory
//! cgroup), a skip would hide a broken sandbox behind a green run: there it is a failure.

/// Environment variable CI systems set (GitHub Actions, GitLab CI: `CI=true`).
pub const CI_ENV: &str = "CI";

/// What the machine offers real-kernel tests.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Effective uid 0 (making memory cgroups needs it).
    pub root: bool,
    /// This process's own memory cgroup is a writable cgroup v1 memory cgroup; why not, if not.
    pub memcg: Result<(), String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run,
    /// The machine cannot run real-kernel tests: pass, saying why.
    Skip(String),
    /// It could, under CI, but the sandbox could not be made: fail with the reason.
    Fail(String),
}

/// Whether the value of `CI` means a CI run (`true`, `1`, `yes`; not empty, `false` or `0`).
pub fn ci_value(v: Option<&str>) -> bool {
    matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("true" | "1" | "yes")
    )
}

/// Whether this is a CI run, from the environment.
pub fn ci() -> bool {
    ci_value(std::env::var(CI_ENV).ok().as_deref())
}

/// The rule: `setup` is how making the sandbox went (Ok when it was made or not tried).
pub fn decide(ci: bool, machine: &Machine, setup: Result<(), String>) -> Decision {
    if !machine.root {
        return Decision::Skip("not root: creating memory cgroups needs root".into());
    }
    if let Err(why) = &machine.memcg {
        return Decision::Skip(why.clone());
    }
    match setup {
        Ok(()) => Decision::Run,
        Err(why) if ci => Decision::Fail(format!(
            "{why} (under {CI_ENV}=true on a machine with root and a writable memory v1 cgroup, \
             a real-kernel test must run)"
        )),
        Err(why) => Decision::Skip(why),
    }
}
