//! `cgleak demo` and `cgleak emulate`: the emulated node (see [`crate::demo`]).

use crate::cli::{DemoArgs, EmulateArgs};
use crate::error::Result;

pub(super) fn run(a: &DemoArgs) -> Result<u8> {
    crate::demo::run(a)
}

pub(super) fn emulate(a: &EmulateArgs) -> Result<u8> {
    crate::demo::emulate(a)
}
