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

mod errno_serde {
    use nix::errno::Errno;
    pub fn serialize<S: serde::Serializer>(e: &Errno, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(*e as i32)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        let v: i32 = serde::Deserialize::deserialize(d)?;
        Ok(Errno::from_raw(v))
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
