//! The emulated cgroupfs. PLACEHOLDER: replaced by the real implementation before landing.
#![allow(unused_variables, dead_code)]
use crate::error::{FsOp, Result};
use crate::fs::{CgroupMode, Cgroupfs};
use nix::errno::Errno;
use std::path::{Path, PathBuf};

/// Name of the state file at the base of an emulated node; its presence marks the directory.
pub const STATE_FILE: &str = "cgleak-emulated.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KernelProfile {
    #[serde(rename = "3.10")]
    V3_10,
    #[serde(rename = "5.10")]
    V5_10,
    #[serde(rename = "6.1")]
    V6_1,
    #[serde(rename = "6.13")]
    V6_13,
}

impl KernelProfile {
    pub const ALL: [KernelProfile; 4] = [
        KernelProfile::V3_10,
        KernelProfile::V5_10,
        KernelProfile::V6_1,
        KernelProfile::V6_13,
    ];
    pub fn parse(s: &str) -> Option<KernelProfile> {
        unimplemented!()
    }
    pub fn name(&self) -> &'static str {
        unimplemented!()
    }
    pub fn release(&self) -> &'static str {
        unimplemented!()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FaultWhen {
    Nth(u64),
    Match {
        op: FsOp,
        path_contains: String,
        times: u32,
    },
}

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

pub struct EmulatedFs {
    root: PathBuf,
}

pub fn find_base(_root: &Path) -> Option<PathBuf> {
    None
}

impl EmulatedFs {
    pub fn create(base: &Path, profile: KernelProfile) -> Result<EmulatedFs> {
        unimplemented!()
    }
    pub fn open_at(base: &Path, root: &Path) -> Result<EmulatedFs> {
        unimplemented!()
    }
    pub fn base(&self) -> &Path {
        unimplemented!()
    }
    pub fn profile(&self) -> KernelProfile {
        unimplemented!()
    }
    pub fn spawn(&self, cg: &str, comm: &str) -> Result<u32> {
        unimplemented!()
    }
    pub fn spawn_thread(&self, tgid: u32, cg: &str) -> Result<u32> {
        unimplemented!()
    }
    pub fn exit(&self, pid: u32) {
        unimplemented!()
    }
    pub fn cgroup_of(&self, pid: u32) -> Option<String> {
        unimplemented!()
    }
    pub fn add_dying(&self, n: u64) -> Result<()> {
        unimplemented!()
    }
    pub fn dying(&self) -> u64 {
        unimplemented!()
    }
    pub fn ids_used(&self) -> u64 {
        unimplemented!()
    }
    pub fn charge_cache(&self, cg: &str, bytes: u64) -> Result<()> {
        unimplemented!()
    }
    pub fn kmem_active(&self, cg: &str) -> bool {
        unimplemented!()
    }
    pub fn set_cmdline(&self, cmdline: &str) -> Result<()> {
        unimplemented!()
    }
    pub fn set_boot_id(&self, id: &str) -> Result<()> {
        unimplemented!()
    }
    pub fn inject(&self, fault: Fault) -> Result<()> {
        unimplemented!()
    }
    pub fn clear_faults(&self) -> Result<()> {
        unimplemented!()
    }
    pub fn mutations(&self) -> u64 {
        unimplemented!()
    }
    pub fn fork_on_move(&self, pid: u32, children: u32) -> Result<()> {
        unimplemented!()
    }
    pub fn exit_on_move(&self, pid: u32) -> Result<()> {
        unimplemented!()
    }
}

impl Cgroupfs for EmulatedFs {
    fn root(&self) -> &Path {
        &self.root
    }
    fn describe(&self) -> String {
        unimplemented!()
    }
    fn is_emulated(&self) -> bool {
        true
    }
    fn exists(&self, cg: &str) -> bool {
        unimplemented!()
    }
    fn children(&self, cg: &str) -> Result<Vec<String>> {
        unimplemented!()
    }
    fn has_file(&self, cg: &str, file: &str) -> bool {
        unimplemented!()
    }
    fn read(&self, cg: &str, file: &str) -> Result<String> {
        unimplemented!()
    }
    fn write(&self, cg: &str, file: &str, value: &str) -> Result<()> {
        unimplemented!()
    }
    fn mkdir(&self, cg: &str) -> Result<()> {
        unimplemented!()
    }
    fn rmdir(&self, cg: &str) -> Result<()> {
        unimplemented!()
    }
    fn rename(&self, from: &str, to: &str) -> Result<()> {
        unimplemented!()
    }
    fn kernel_release(&self) -> Result<String> {
        unimplemented!()
    }
    fn proc_cgroups(&self) -> Result<String> {
        unimplemented!()
    }
    fn kernel_cmdline(&self) -> Result<String> {
        unimplemented!()
    }
    fn boot_id(&self) -> Result<String> {
        unimplemented!()
    }
    fn hierarchy_mount(&self) -> PathBuf {
        unimplemented!()
    }
    fn hierarchy_live(&self) -> Result<u64> {
        unimplemented!()
    }
    fn cgroup_mode(&self) -> Result<CgroupMode> {
        unimplemented!()
    }
    fn find_processes(&self, comm: &str) -> Result<Vec<u32>> {
        unimplemented!()
    }
    fn pid_alive(&self, pid: u32) -> bool {
        unimplemented!()
    }
    fn drop_caches(&self, what: u8) -> Result<()> {
        unimplemented!()
    }
    fn may_write(&self) -> bool {
        true
    }
}
