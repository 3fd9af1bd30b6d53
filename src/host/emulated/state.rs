//! The state file (what a real node has no file for) and the boot id.

use super::*;

/// The state file: only what a real node has no file for. Small on purpose (no per-process or
/// per-cgroup tables: those live in the cgroup and proc directories).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct State {
    pub(super) profile: KernelProfile,
    pub(super) kernel_release: String,
    pub(super) cmdline: String,
    pub(super) boot_id: String,
    pub(super) cgroup_mode: CgroupMode,
    /// Dying memcgs pinned by kmem (slab) charges: drop_caches never frees them.
    pub(super) dying_kmem: u64,
    /// Dying memcgs pinned by reclaimable charges: freed by drop_caches (page cache). From 4.8
    /// they hold no id (released at offline, 73f576c04b94); on 3.10 page cache is reparented
    /// at rmdir, so there are none.
    pub(super) dying_cache: u64,
    /// Swap areas. Profiles >= 4.8 start with one; each area holds the dying memcgs whose
    /// swapped-out pages it keeps (swap entries hold a reference on the memcg id).
    #[serde(default)]
    pub(super) swaps: Vec<SwapState>,
    /// /proc/meminfo's MemTotal and MemAvailable, in KiB.
    #[serde(default = "default_mem_total")]
    pub(super) mem_total_kib: u64,
    #[serde(default = "default_mem_available")]
    pub(super) mem_available_kib: u64,
    pub(super) next_pid: u32,
    /// The next kmem id of a memcg's slab cache copies (3.10; never reused).
    #[serde(default)]
    pub(super) next_kmem_id: u64,
    #[serde(default)]
    pub(super) faults: Vec<Fault>,
    /// One-shot rules: (pid, children forked into the cgroup it leaves when moved).
    #[serde(default)]
    pub(super) fork_on_move: Vec<(u32, u32)>,
    /// One-shot rules: the pid exits when someone moves it (the move fails ESRCH).
    #[serde(default)]
    pub(super) exit_on_move: Vec<u32>,
}

/// One swap area of the node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct SwapState {
    pub(super) path: String,
    pub(super) size_kib: u64,
    /// Swap in use by live workloads (what swapoff reads back besides the dying memcgs' pages).
    pub(super) used_kib: u64,
    pub(super) priority: i32,
    pub(super) active: bool,
    /// Dying memcgs kept (with their ids, >= 4.8) by swapped-out pages on this area: one page
    /// each.
    pub(super) dying: u64,
}

pub(super) fn default_mem_total() -> u64 {
    8 * 1024 * 1024
}

pub(super) fn default_mem_available() -> u64 {
    6 * 1024 * 1024
}

/// A random-looking uuid for the boot id (no rand crate: time, pid and a counter mixed).
pub(super) fn make_uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = next();
    let b = next();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

impl EmulatedFs {
    pub(super) fn persist(&self, inner: &mut Inner) -> Result<()> {
        let json = serde_json::to_vec_pretty(&inner.state).expect("state serializes");
        if json != inner.state_json {
            // In place (see write_file): a rename over it would start writeback each time.
            let old_len = inner.state_json.len();
            let content = String::from_utf8(json.clone()).expect("json is utf-8");
            let sp = self.base.join(STATE_FILE);
            self.queue_write(inner, &sp, content, txn::How::InPlace(Some(old_len)));
            inner.state_json = json;
        }
        Ok(())
    }
}
