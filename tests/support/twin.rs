//! A stopped node twice, for the interruption sweeps (tests/repair_emulated.rs,
//! tests/crash_sweep.rs): one copy is resumed, the other rolled back. The journal names its
//! node's `--root`, so the twin is moved to the stopped node's place before its turn.
#![allow(dead_code)]

use cgleak::host::emulated::clone_node;
use std::path::Path;

/// Make `(twin, twin_state)` a copy of the stopped node `base` and its state directory. The
/// node is cloned (no instance writes it while it is stopped); the journal is copied.
pub fn make(base: &Path, state: &Path, twin: &Path, twin_state: &Path) {
    for d in [twin, twin_state] {
        let _ = std::fs::remove_dir_all(d);
    }
    clone_node(base, twin).unwrap();
    copy_dir(state, twin_state);
}

/// Put the twin where the stopped node and its state directory were.
pub fn move_into_place(twin: &Path, twin_state: &Path, base: &Path, state: &Path) {
    for (from, to) in [(twin, base), (twin_state, state)] {
        let _ = std::fs::remove_dir_all(to);
        if from.exists() {
            std::fs::rename(from, to).unwrap();
        }
    }
}

/// Copy directory `src` (a state directory: journal and lock files) to `dst`, if it exists.
pub fn copy_dir(src: &Path, dst: &Path) {
    let Ok(rd) = std::fs::read_dir(src) else {
        return;
    };
    std::fs::create_dir_all(dst).unwrap();
    for e in rd {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}
