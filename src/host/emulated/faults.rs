//! Fault injection: failures planned in the state file ([`Fault`]), fired by the operation they
//! name. Documented for users in `cgleak emulate --help` and README.md, "Fault injection".

use super::*;

/// When an injected fault fires.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FaultWhen {
    /// The n-th (0-based) mutating operation (write, mkdir, rmdir, rename) of the instance
    /// fails. One-shot.
    Nth(u64),
    /// The next `times` operations `op` whose absolute path (the control file's for read and
    /// write, the directory's for mkdir/rmdir, the source's for rename) contains the string.
    Match {
        op: FsOp,
        path_contains: String,
        times: u32,
    },
}

/// An injected failure: the operation fails with `errno` and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    pub when: FaultWhen,
    #[serde(with = "errno_serde")]
    pub errno: Errno,
}

/// What `cgleak emulate --help` says about fault injection (README.md, "Fault injection").
pub const FAULTS_HELP: &str = "\
Fault injection: an emulated node can be told to fail an operation, to rehearse how cgleak stops,
resumes and rolls back. A fault is an entry of the \"faults\" list in DIR/cgleak-emulated.json;
add it with an editor (or jq) while no cgleak runs on the node, e.g.

  \"faults\": [{\"when\": {\"Match\": {\"op\": \"mkdir\", \"path_contains\": \"/kubepods2/\",
               \"times\": 1}}, \"errno\": \"ENOSPC\"}]

  Match   the next `times` operations `op` whose absolute path contains `path_contains` fail.
          op: read or write (the control file's path), mkdir or rmdir (the directory's),
          rename (the source's), list (a directory listed), swapoff or swapon (the swap area).
          drop_caches is a write of DIR/proc/sys/vm/drop_caches, /proc/cgroups and /proc/swaps
          reads of DIR/proc/cgroups and DIR/proc/swaps.
  Nth     {\"Nth\": n}: the n-th (from 0) write, mkdir, rmdir or rename of one cgleak run (each
          run counts from 0 when it opens the node) fails, once.

errno: a name (ENOSPC, EBUSY, EIO, EINVAL, ENOMEM, EACCES, ESRCH, ...) or its number. The failed
operation changes nothing, like the kernel's. A spent fault is removed from the file, so a resume
after the failure runs clean.";

mod errno_serde {
    use nix::errno::Errno;
    pub fn serialize<S: serde::Serializer>(e: &Errno, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*e as i32)
    }

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum NumOrName {
        Num(i32),
        Name(String),
    }

    /// A number, or a name as errno(3) spells it ("ENOSPC").
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        match serde::Deserialize::deserialize(d)? {
            NumOrName::Num(v) => Ok(Errno::from_raw(v)),
            NumOrName::Name(n) => (1..4096)
                .map(Errno::from_raw)
                .find(|e| format!("{e:?}") == n.trim())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown errno name {n:?}: use one like ENOSPC, or its number"
                    ))
                }),
        }
    }
}

impl EmulatedFs {
    /// Count a mutating operation and fire a fault planned for it.
    pub(super) fn mutation(&self, inner: &mut Inner, op: FsOp, path: &Path) -> FResult<()> {
        let n = inner.mutations;
        inner.mutations += 1;
        if let Some(i) = inner
            .state
            .faults
            .iter()
            .position(|f| f.when == FaultWhen::Nth(n))
        {
            let f = inner.state.faults.remove(i);
            self.persist(inner)?;
            return Err(f.errno.into());
        }
        self.match_fault(inner, op, path)
    }

    /// Fire a `Match` fault for this operation and path, if one is planned.
    pub(super) fn match_fault(&self, inner: &mut Inner, op: FsOp, path: &Path) -> FResult<()> {
        if inner.state.faults.is_empty() {
            return Ok(());
        }
        let p = path.to_string_lossy();
        let hit = inner.state.faults.iter().position(|f| {
            matches!(&f.when, FaultWhen::Match { op: o, path_contains, times }
                if *o == op && *times > 0 && p.contains(path_contains.as_str()))
        });
        let Some(i) = hit else { return Ok(()) };
        let errno = inner.state.faults[i].errno;
        if let FaultWhen::Match { times, .. } = &mut inner.state.faults[i].when {
            *times -= 1;
            if *times == 0 {
                inner.state.faults.remove(i);
            }
        }
        self.persist(inner)?;
        Err(errno.into())
    }

    /// Plan a failure (persisted: another instance opening the node sees it).
    pub fn inject(&self, fault: Fault) -> Result<()> {
        self.mutate(|inner| {
            inner.state.faults.push(fault);
            self.persist(inner)
        })
    }

    pub fn clear_faults(&self) -> Result<()> {
        self.mutate(|inner| {
            inner.state.faults.clear();
            self.persist(inner)
        })
    }

    /// Faults still planned.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().state.faults.clone()
    }

    /// Mutating operations (write, mkdir, rmdir, rename) tried through this instance since
    /// open, failed ones included.
    pub fn mutations(&self) -> u64 {
        self.lock().mutations
    }
}
