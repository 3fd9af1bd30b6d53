//! Cgroup paths relative to the `--root` directory, with `/` separators; `""` is the root
//! itself. Pure string work: the boundary ([`crate::host`]) takes these paths, the model and the
//! planner compute them.

/// Join a cgroup path relative to the root with a child name.
pub fn join(cg: &str, name: &str) -> String {
    if cg.is_empty() {
        name.to_string()
    } else {
        format!("{cg}/{name}")
    }
}

/// The parent of a relative cgroup path (`""` for a top-level cgroup).
pub fn parent(cg: &str) -> &str {
    match cg.rfind('/') {
        Some(i) => &cg[..i],
        None => "",
    }
}

/// The last component of a relative cgroup path.
pub fn base_name(cg: &str) -> &str {
    match cg.rfind('/') {
        Some(i) => &cg[i + 1..],
        None => cg,
    }
}

/// Replace the leading component `from` of `cg` with `to` (`kubepods/a/b` -> `kubepods2/a/b`).
pub fn rebase(cg: &str, from: &str, to: &str) -> String {
    if cg == from {
        return to.to_string();
    }
    match cg.strip_prefix(from).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => format!("{to}/{rest}"),
        None => cg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_helpers() {
        assert_eq!(join("", "kubepods"), "kubepods");
        assert_eq!(join("kubepods", "pod1"), "kubepods/pod1");
        assert_eq!(parent("kubepods/pod1/c"), "kubepods/pod1");
        assert_eq!(parent("kubepods"), "");
        assert_eq!(base_name("kubepods/pod1/c"), "c");
        assert_eq!(
            rebase("kubepods/pod1/c", "kubepods", "kubepods2"),
            "kubepods2/pod1/c"
        );
        assert_eq!(rebase("kubepods", "kubepods", "kubepods2"), "kubepods2");
        assert_eq!(
            rebase("kubepodsx/a", "kubepods", "kubepods2"),
            "kubepodsx/a"
        );
    }
}
