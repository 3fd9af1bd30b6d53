//! Counting dying memcgs on 3.10 without systemtap, from the per-memcg slab caches in
//! `/sys/kernel/slab` (docs/kernel-facts.md, "Counting dying memcgs").
//!
//! With SLUB, every kmem-active memcg that allocates slab objects on 3.10 gets its own copies
//! of the caches, named `<cache>(<kmem id>:<cgroup name>)`. The copies outlive the cgroup while
//! their objects pin it, and kmem ids are never reused (seen on 3.10.0-1127). So a kmem id whose
//! cgroup name has no live directory is a dying memcg, and counting distinct such ids gives a
//! lower bound of the dying memcgs: a dying memcg without slab copies (pinned by swap only, or
//! kmem-active but never allocating) is not seen. At exhaustion on a real RHEL 7.8 kernel this
//! count was one id short of the truth (65,460 against 65,461).
//!
//! Names are basenames (the kernel's `cgroup_name()`), so a dying memcg may share its name with a
//! live one. Each live memcg has at most one kmem id, so of the `k` ids carrying a name that `l`
//! live directories have, at least `k - l` are dying: that keeps the count a lower bound when
//! names repeat (container ids and pod uids are unique; `burstable` or a reused name is not).

use crate::error::errno_of;
use crate::error::{Error, FsOp, Result, SysError};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Where the running kernel lists its slab caches (SLUB only).
pub const SYS_KERNEL_SLAB: &str = "/sys/kernel/slab";

/// The memcg part of a cache name: `dentry(12:a1b2c3)` is (12, "a1b2c3"). None for a root
/// cache (`dentry`), an alias (`:t-0000192`) or anything else.
pub fn parse_memcg_cache(name: &str) -> Option<(u64, &str)> {
    let inner = name.strip_suffix(')')?;
    let open = inner.find('(')?;
    let (id, cgroup) = inner[open + 1..].split_once(':')?;
    if open == 0 || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, cgroup))
}

/// The count, with what it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabCount {
    /// The directory read.
    pub source: String,
    /// Entries listed there.
    pub entries: u64,
    /// Distinct kmem ids among the per-memcg caches.
    pub kmem_ids: u64,
    /// Distinct kmem ids whose cgroup cannot be a live one: dying memcgs, at least this many.
    pub dying_at_least: u64,
}

/// Count the dying memcgs among `names` (the entries of the slab directory), given how many
/// live directories carry each basename.
pub fn count<'a>(
    source: &str,
    names: impl IntoIterator<Item = &'a str>,
    live: &HashMap<String, u64>,
) -> SlabCount {
    let mut entries = 0;
    let mut ids: HashSet<u64> = HashSet::new();
    let mut by_name: HashMap<&str, HashSet<u64>> = HashMap::new();
    for n in names {
        entries += 1;
        if let Some((id, cg)) = parse_memcg_cache(n) {
            if ids.insert(id) {
                by_name.entry(cg).or_default().insert(id);
            }
        }
    }
    let dying = by_name
        .iter()
        .map(|(cg, set)| (set.len() as u64).saturating_sub(live.get(*cg).copied().unwrap_or(0)))
        .sum();
    SlabCount {
        source: source.to_string(),
        entries,
        kmem_ids: ids.len() as u64,
        dying_at_least: dying,
    }
}

/// The entry names of a slab directory; None when it does not exist (the SLAB allocator has no
/// `/sys/kernel/slab`: the count is unavailable there).
pub fn read_names(dir: &Path) -> Result<Option<Vec<String>>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Sys(SysError::new(FsOp::List, dir, errno_of(&e)))),
    };
    // Names only: no stat per entry (65,000 entries at exhaustion).
    Ok(Some(
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    ))
}

/// How many live directories of the memory hierarchy below `mount` carry each basename (the
/// mount itself, the root memcg, has no name in slab caches).
pub fn live_names(mount: &Path) -> Result<HashMap<String, u64>> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for e in walkdir::WalkDir::new(mount)
        .min_depth(1)
        .follow_links(false)
    {
        let e = e.map_err(|e| {
            let path = e.path().unwrap_or(mount).to_path_buf();
            let errno = e.io_error().map_or(Errno::EIO, errno_of);
            Error::Sys(SysError::new(FsOp::List, &path, errno))
        })?;
        if e.file_type().is_dir() {
            *out.entry(e.file_name().to_string_lossy().into_owned())
                .or_default() += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(names: &[(&str, u64)]) -> HashMap<String, u64> {
        names.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn cache_names_as_3_10_prints_them() {
        assert_eq!(parse_memcg_cache("dentry(12:a1b2)"), Some((12, "a1b2")));
        assert_eq!(
            parse_memcg_cache("kmalloc-64(65461:pod0f3e-9a)"),
            Some((65461, "pod0f3e-9a"))
        );
        // A cgroup name may itself hold parentheses or colons: the id is up to the first ':'.
        assert_eq!(parse_memcg_cache("dentry(7:a:b(c))"), Some((7, "a:b(c)")));
        assert_eq!(parse_memcg_cache("dentry"), None);
        assert_eq!(parse_memcg_cache(":t-0000192"), None);
        assert_eq!(parse_memcg_cache("dentry(x:a)"), None);
        assert_eq!(parse_memcg_cache("(3:a)"), None);
        assert_eq!(parse_memcg_cache("dentry(:a)"), None);
    }

    #[test]
    fn distinct_ids_without_a_live_directory() {
        let names = [
            "dentry",
            "kmalloc-64",
            "dentry(3:burstable)",
            "kmalloc-64(3:burstable)",
            "dentry(10:c0ffee)",
            "kmalloc-64(10:c0ffee)",
            "inode_cache(10:c0ffee)",
            "dentry(11:deadbeef)",
            "dentry(12:live1)",
        ];
        let c = count(
            "/sys/kernel/slab",
            names,
            &live(&[("burstable", 1), ("live1", 1)]),
        );
        assert_eq!(c.entries, 9);
        assert_eq!(c.kmem_ids, 4);
        assert_eq!(c.dying_at_least, 2, "{c:?}");
    }

    #[test]
    fn a_repeated_name_counts_the_ids_beyond_its_live_directories() {
        // Two live "app" cgroups (in different pods) and three kmem ids named "app": at least
        // one of them is dying, whichever it is.
        let names = [
            "dentry(1:app)",
            "dentry(2:app)",
            "dentry(3:app)",
            "dentry(4:gone)",
        ];
        let c = count("x", names, &live(&[("app", 2)]));
        assert_eq!(c.dying_at_least, 2);
        // A live cgroup that never allocated slab has no ids: never below zero.
        let c = count("x", ["dentry(1:app)"], &live(&[("app", 5)]));
        assert_eq!(c.dying_at_least, 0);
    }

    #[test]
    fn no_slab_directory_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read_names(&d.path().join("slab")).unwrap(), None);
        std::fs::create_dir(d.path().join("slab")).unwrap();
        std::fs::create_dir(d.path().join("slab/dentry(4:x)")).unwrap();
        std::os::unix::fs::symlink(":t-0000192", d.path().join("slab/dentry(5:y)")).unwrap();
        let mut n = read_names(&d.path().join("slab")).unwrap().unwrap();
        n.sort();
        assert_eq!(n, vec!["dentry(4:x)", "dentry(5:y)"]);
    }

    #[test]
    fn live_names_counts_directories_by_basename() {
        let d = tempfile::tempdir().unwrap();
        for p in ["kubepods/pod1/app", "kubepods/pod2/app", "system.slice"] {
            std::fs::create_dir_all(d.path().join(p)).unwrap();
        }
        std::fs::write(d.path().join("kubepods/memory.stat"), "").unwrap();
        let l = live_names(d.path()).unwrap();
        assert_eq!(l.get("app"), Some(&2));
        assert_eq!(l.get("kubepods"), Some(&1));
        assert_eq!(l.get("memory.stat"), None);
        assert_eq!(l.values().sum::<u64>(), 6);
    }
}
