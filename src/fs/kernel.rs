//! The kernel's cgroupfs. PLACEHOLDER: replaced by the real implementation before landing.
#![allow(unused_variables, dead_code)]
use crate::error::Result;
use crate::fs::{CgroupMode, Cgroupfs};
use std::path::{Path, PathBuf};

pub struct KernelFs {
    root: PathBuf,
}

impl KernelFs {
    pub fn open(root: &Path) -> Result<KernelFs> {
        unimplemented!()
    }
}

impl Cgroupfs for KernelFs {
    fn root(&self) -> &Path {
        &self.root
    }
    fn describe(&self) -> String {
        unimplemented!()
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
        unimplemented!()
    }
}
