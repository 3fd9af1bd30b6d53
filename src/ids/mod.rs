//! Counting memcg ids: live memcgs have a directory; the kernel's /proc/cgroups count includes
//! dying ones from 3.16 on, so dying = counted - live there. On 3.10 dying memcgs are invisible
//! from userspace: the count of ids in use must come from the systemtap probe
//! (scripts/memcg-ids.stp) as `--ids-used N`, or piped in with `--ids-used -`.

pub mod probe;
pub mod slab;

use crate::error::{Error, Result};
use crate::host::{parse_proc_cgroups_memory, Node};
use crate::model::kernel::KernelInfo;
use crate::model::kernel::MEM_CGROUP_ID_MAX as ID_LIMIT;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// How to feed `command` the count on 3.10, for messages.
pub fn stap_howto(command: &str) -> String {
    format!(
        "run as root: stap -g scripts/memcg-ids.stp | cgleak {command} --ids-used - \
         (systemtap, with the kernel-debuginfo and kernel-devel packages matching `uname -r`)"
    )
}

/// Parse a count of memcg ids in use (`--ids-used N`, or the systemtap script's output). Strict:
/// decimal digits only, surrounding whitespace allowed. At least 1, because the root memcg always
/// holds an id (the script counts it); at most the id space, [`ID_LIMIT`], because no kernel can
/// have more ids in use than it has ids: a larger number is a wrong count, not a full node.
pub fn parse_ids_used(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty: expected one number".into());
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{t:?} is not a number (expected one decimal count of memcg ids)"
        ));
    }
    match t.parse::<u64>() {
        Ok(0) => Err("0 ids in use cannot be: the root memcg always holds one".into()),
        Ok(n) if n <= ID_LIMIT => Ok(n),
        _ => Err(format!(
            "{t} is more than the {ID_LIMIT} memcg ids a kernel has (MEM_CGROUP_ID_MAX): \
             not a count of ids in use"
        )),
    }
}

/// Longest input read from `--ids-used -`: the script prints one short line; more is not its
/// output.
const STDIN_LIMIT: u64 = 4096;

/// Read `--ids-used -` from `input` (standard input): exactly the systemtap script's output, one
/// count on a line. `command` names the cgleak command, for the hint.
pub fn read_ids_used(input: impl Read, command: &str) -> Result<u64> {
    let howto = || stap_howto(command);
    let mut buf = Vec::new();
    input
        .take(STDIN_LIMIT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Usage(format!("--ids-used -: reading standard input: {e}")))?;
    if buf.len() as u64 > STDIN_LIMIT {
        return Err(Error::Usage(format!(
            "--ids-used -: standard input holds more than {STDIN_LIMIT} bytes, not the one \
             number scripts/memcg-ids.stp prints; {}",
            howto()
        )));
    }
    let text = String::from_utf8_lossy(&buf);
    if text.trim().is_empty() {
        return Err(Error::Usage(format!(
            "--ids-used -: standard input is empty (did stap fail? its errors are on its stderr); {}",
            howto()
        )));
    }
    parse_ids_used(&text).map_err(|why| {
        Error::Usage(format!(
            "--ids-used -: standard input is not the count scripts/memcg-ids.stp prints: {why}; {}",
            howto()
        ))
    })
}

/// Where the count of ids in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdsSource {
    /// /proc/cgroups num_cgroups on a kernel that counts dying memcgs.
    ProcCgroups,
    /// `--ids-used` (the systemtap count).
    Systemtap,
    Unknown,
}

/// The memcg id accounting of a hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCount {
    /// Directories in the whole memory hierarchy, its root included.
    pub live: u64,
    /// num_cgroups of the memory row of /proc/cgroups.
    pub counted: Option<u64>,
    pub dying: Option<u64>,
    pub id_limit: u64,
    pub ids_used: Option<u64>,
    pub ids_free: Option<u64>,
    pub ids_source: IdsSource,
}

/// Compute the id accounting from what the kernel shows and an optional systemtap count.
/// `counts_dying` is [`KernelInfo::counts_dying`], `id_limit` [`KernelInfo::memcg_id_limit`];
/// `live` may be unknown (unreadable hierarchy).
/// On kernels that count dying memcgs the kernel's count wins over `--ids-used`; a difference is
/// noted in `notes`.
pub fn compute_with(
    counts_dying: Option<bool>,
    id_limit: u64,
    live: Option<u64>,
    counted: Option<u64>,
    ids_used_arg: Option<u64>,
) -> (IdCount, Vec<String>) {
    let mut notes = Vec::new();
    let (ids_used, source) = match (counts_dying, counted, ids_used_arg) {
        (Some(true), Some(c), given) => {
            if let Some(g) = given.filter(|&g| g != c) {
                notes.push(format!(
                    "--ids-used {g} differs from the kernel's count of {c} memcgs in /proc/cgroups; using the kernel's count"
                ));
            }
            (Some(c), IdsSource::ProcCgroups)
        }
        (_, _, Some(u)) => (Some(u), IdsSource::Systemtap),
        _ => (None, IdsSource::Unknown),
    };
    // counted can be below live for an instant (a cgroup made between the two reads).
    let dying = match (ids_used, live) {
        (Some(u), Some(l)) => Some(u.saturating_sub(l)),
        _ => None,
    };
    let count = IdCount {
        live: live.unwrap_or(0),
        counted,
        dying,
        id_limit,
        ids_used,
        ids_free: ids_used.map(|u| id_limit.saturating_sub(u)),
        ids_source: source,
    };
    (count, notes)
}

/// [`compute_with`] for a known kernel and live count.
pub fn compute(
    kernel: &KernelInfo,
    live: u64,
    counted: Option<u64>,
    ids_used_arg: Option<u64>,
) -> IdCount {
    compute_with(
        kernel.counts_dying(),
        kernel.memcg_id_limit(),
        Some(live),
        counted,
        ids_used_arg,
    )
    .0
}

/// Read the id accounting of `fs`'s hierarchy.
pub fn count(fs: &dyn Node, kernel: &KernelInfo, ids_used_arg: Option<u64>) -> Result<IdCount> {
    let live = fs.hierarchy_live()?;
    count_with_live(fs, kernel, live, ids_used_arg)
}

/// The id accounting given the live count: the kernel's count comes from /proc/cgroups.
fn count_with_live(
    fs: &dyn Node,
    kernel: &KernelInfo,
    live: u64,
    ids_used_arg: Option<u64>,
) -> Result<IdCount> {
    let counted = parse_proc_cgroups_memory(&fs.proc_cgroups()?).map(|(_, n, _)| n);
    Ok(compute(kernel, live, counted, ids_used_arg))
}

/// [`count`] right after a scan counted `scanned` cgroups in the subtree `cg` (its top
/// included): the hierarchy walk skips that subtree instead of listing it again.
pub fn count_after_scan(
    fs: &dyn Node,
    kernel: &KernelInfo,
    ids_used_arg: Option<u64>,
    cg: &str,
    scanned: u64,
) -> Result<IdCount> {
    let live = fs.hierarchy_live_except(cg)? + scanned;
    count_with_live(fs, kernel, live, ids_used_arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_kernel_counts_dying() {
        let k = KernelInfo::from_release("6.1.0");
        let c = compute(&k, 7, Some(45), None);
        assert_eq!(c.dying, Some(38));
        assert_eq!(c.ids_free, Some(65535 - 45));
        assert_eq!(c.ids_source, IdsSource::ProcCgroups);
    }

    #[test]
    fn kernels_4_4_to_5_18_hand_out_one_id_fewer() {
        // The lab: 5.10 ran out at 65534 memcgs, 6.1 at 65535; 3.10's css ids go to 65535.
        for (release, limit) in [
            ("5.10.0-32-cloud-amd64", 65534),
            ("4.19.0-27-amd64", 65534),
            ("4.4.0-210-generic", 65534),
            ("5.18.0", 65534),
            ("5.19.0", 65535),
            ("6.1.0-50-cloud-amd64", 65535),
            ("3.10.0-1160.el7.x86_64", 65535),
            ("not a release", 65534),
        ] {
            let k = KernelInfo::from_release(release);
            assert_eq!(k.memcg_id_limit(), limit, "{release}");
            let c = compute(&k, 7, Some(45), Some(45));
            assert_eq!(c.id_limit, limit, "{release}");
            assert_eq!(c.ids_free, Some(limit - 45), "{release}");
        }
    }

    #[test]
    fn legacy_kernel_needs_systemtap() {
        let k = KernelInfo::from_release("3.10.0-1160.el7.x86_64");
        let c = compute(&k, 100, Some(100), None);
        assert_eq!(c.dying, None);
        assert_eq!(c.ids_free, None);
        let c = compute(&k, 100, Some(100), Some(65000));
        assert_eq!(c.dying, Some(64900));
        assert_eq!(c.ids_free, Some(535));
        assert_eq!(c.ids_source, IdsSource::Systemtap);
    }

    #[test]
    fn ids_used_parse_is_strict() {
        assert_eq!(parse_ids_used("65000"), Ok(65000));
        assert_eq!(parse_ids_used(" 12\n"), Ok(12));
        assert_eq!(parse_ids_used("65535"), Ok(65535));
        for bad in [
            "",
            "0",
            "65536",
            "-1",
            "+5",
            "1 2",
            "12abc",
            "99999999999999999999999",
        ] {
            assert!(parse_ids_used(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_used_from_stdin() {
        assert_eq!(
            read_ids_used("3012\n".as_bytes(), "diagnose").unwrap(),
            3012
        );
        assert_eq!(read_ids_used("\n  7 \n\n".as_bytes(), "plan").unwrap(), 7);
        let e = read_ids_used("".as_bytes(), "plan")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("standard input is empty") && e.contains("cgleak plan --ids-used -"),
            "{e}"
        );
        let e = read_ids_used("semantic error: no match\n".as_bytes(), "diagnose")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("standard input") && e.contains("kernel-debuginfo"),
            "{e}"
        );
        let big = "1\n".repeat(3000);
        let e = read_ids_used(big.as_bytes(), "diagnose").unwrap_err();
        assert!(e.to_string().contains("more than 4096 bytes"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn count_after_scan_equals_count() {
        use crate::demo::fixture::{build, kubelet_tree, FixtureSpec};
        use crate::host::emulated::{self, EmulatedFs, KernelProfile};
        use crate::host::{Hierarchy, Host};
        let dir = emulated::tempdir().unwrap();
        let emu = EmulatedFs::create(&dir.path().join("node"), KernelProfile::V6_1).unwrap();
        let tree = kubelet_tree(&FixtureSpec::new("kubepods", 5));
        build(&emu, &tree, &mut |cg| emu.spawn(cg, "pause")).unwrap();
        emu.mkdir("system.slice").unwrap();
        emu.add_dying(7).unwrap();
        let k = KernelInfo::from_release(&emu.kernel_release().unwrap());
        let n = tree.len() as u64;
        let full = count(&emu, &k, None).unwrap();
        assert_eq!(
            count_after_scan(&emu, &k, None, "kubepods", n).unwrap(),
            full
        );
        assert_eq!(
            emu.hierarchy_live_except("kubepods").unwrap(),
            full.live - n
        );
        // A pods cgroup that does not exist: nothing is left out.
        assert_eq!(
            count_after_scan(&emu, &k, None, "nothere", 0).unwrap(),
            full
        );
    }

    #[test]
    fn counted_below_live_saturates() {
        let k = KernelInfo::from_release("6.1.0");
        assert_eq!(compute(&k, 10, Some(9), None).dying, Some(0));
    }
}
