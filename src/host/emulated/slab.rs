//! The emulated `/sys/kernel/slab` (SLUB): the root caches, and on 3.10 the copies each
//! kmem-active memcg gets once its tasks allocate slab objects, named
//! `<cache>(<kmem id>:<cgroup name>)` (docs/kernel-facts.md, "Counting dying memcgs"; seen on
//! 3.10.0-1127). The copies of a removed memcg stay while they pin it, and kmem ids are never
//! reused, as on that kernel.

use super::*;

/// Directory of the emulated /sys/kernel/slab below the base.
pub const SLAB_DIR: &str = "sys/kernel/slab";

/// Hidden per-cgroup file: the kmem id the cgroup's slab cache copies carry (3.10; absent = it
/// has none: no task of it allocated with kmem accounting active).
pub const KMEM_ID_FILE: &str = "emulated.kmem_id";

/// Root caches every SLUB kernel lists (a few of the real ones; their names carry no memcg).
const ROOT_CACHES: [&str; 4] = ["dentry", "inode_cache", "kmalloc-64", "task_struct"];

/// The caches a memcg's first tasks make copies of: more than one, as on the real kernel, so
/// that counting ids (not entries) matters.
const TASK_CACHES: [&str; 2] = ["dentry", "kmalloc-64"];

/// The caches of the dying memcgs [`EmulatedFs::add_dying`] makes in bulk: one each, to keep
/// a 65,000-memcg leak cheap to build.
const BULK_CACHES: [&str; 1] = ["dentry"];

/// Make the slab directory of a new node with its root caches.
pub(super) fn create_slab_dir(base: &Path) -> Result<()> {
    let dir = base.join(SLAB_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
    for c in ROOT_CACHES {
        let d = dir.join(c);
        std::fs::create_dir(&d).map_err(|e| Error::io("mkdir", &d, e))?;
    }
    Ok(())
}

/// A container-id-like name for a memcg made by a bulk leak: 64 hex digits, distinct per id.
fn bulk_name(id: u64) -> String {
    let h = u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    format!("{h:032x}{:032x}", h.rotate_left(64) ^ u128::from(id))
}

impl EmulatedFs {
    /// A task is now in cgroup `full`: on 3.10, a kmem-active memcg whose tasks allocate slab
    /// objects gets its kmem id and its cache copies (memcg_create_kmem_cache, at the first
    /// accounted allocation).
    pub(super) fn note_slab_user(&self, inner: &mut Inner, full: &str) -> Result<()> {
        if !self.profile.is_3_10() {
            return Ok(());
        }
        let Some(n) = inner.nodes.get(full) else {
            return Ok(());
        };
        if !n.kmem || n.kmem_id != 0 || n.tids.is_empty() {
            return Ok(());
        }
        let id = self.next_kmem_id(inner);
        self.persist(inner)?;
        self.set_file(inner, full, KMEM_ID_FILE, format!("{id}\n"))?;
        inner.nodes.get_mut(full).expect("checked").kmem_id = id;
        let name = crate::model::path::base_name(full).to_string();
        self.queue_slab_entries(inner, id, &name)
    }

    /// `n` dying memcgs of a bulk leak on 3.10, each with its kmem id and one cache copy. Made
    /// in place, one mkdir each, not through the commit: a bulk leak is the setup of a test or
    /// the demo (no kernel operation makes 65,000 memcgs at once), and 65,000 temporary
    /// directories and renames would triple its cost.
    pub(super) fn slab_bulk_leak(&self, inner: &mut Inner, n: u64) -> Result<()> {
        let dir = self.base.join(SLAB_DIR);
        for _ in 0..n {
            let id = self.next_kmem_id(inner);
            for c in BULK_CACHES {
                let d = dir.join(format!("{c}({id}:{})", bulk_name(id)));
                std::fs::create_dir(&d).map_err(|e| Error::io("mkdir", &d, e))?;
            }
        }
        Ok(())
    }

    /// The next kmem id: never reused (3.10).
    fn next_kmem_id(&self, inner: &mut Inner) -> u64 {
        inner.state.next_kmem_id = inner.state.next_kmem_id.max(1);
        let id = inner.state.next_kmem_id;
        inner.state.next_kmem_id += 1;
        id
    }

    /// The task caches' copies for kmem id `id` of memcg `name`: built aside and renamed into place at
    /// commit, like every emulated change.
    fn queue_slab_entries(&self, inner: &mut Inner, id: u64, name: &str) -> Result<()> {
        let dir = self.base.join(SLAB_DIR);
        for c in TASK_CACHES {
            let tmp = self.tmp_path(inner)?;
            std::fs::create_dir(&tmp).map_err(|e| Error::io("mkdir", &tmp, e))?;
            self.queue_rename(inner, &tmp, &dir.join(format!("{c}({id}:{name})")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_names_look_like_container_ids_and_differ() {
        let (a, b) = (bulk_name(1), bulk_name(2));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
