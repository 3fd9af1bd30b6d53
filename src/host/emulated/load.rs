//! Building the in-memory index of a node from its files.

use super::*;

/// Build the index from disk: every cgroup directory, its hidden state and tasks, and the
/// thread groups of those tasks (from proc/<tid>/status).
pub(super) fn load_tree(base: &Path, mount: &Path, inner: &mut Inner) -> Result<()> {
    let proc_dir = base.join(PROC_DIR);
    let rd = std::fs::read_dir(&proc_dir).map_err(|e| Error::io("read_dir", &proc_dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read_dir", &proc_dir, e))?;
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            inner.proc_pids.insert(pid);
        }
    }
    let mut stack = vec![String::new()];
    let mut buf = Vec::with_capacity(8192);
    while let Some(full) = stack.pop() {
        let dir = if full.is_empty() {
            mount.to_path_buf()
        } else {
            mount.join(&full)
        };
        let mut node = Node::default();
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read_dir", &dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("read_dir", &dir, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("stat", entry.path(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                stack.push(join(&full, &name));
                node.kids.insert(name);
            } else {
                if name == KMEM_ACTIVE_FILE {
                    node.kmem = true;
                }
                node.files.insert(name, None);
            }
        }
        let counters = [
            (CACHE_FILE, &mut node.cache),
            (ANON_FILE, &mut node.anon),
            (SLAB_FILE, &mut node.slab),
            (KMEM_ID_FILE, &mut node.kmem_id),
        ];
        for (file, v) in counters {
            if node.files.contains_key(file) {
                let p = dir.join(file);
                let s = read_file(&p)?;
                *v = parse_counter(&p, s.clone())?;
                node.files.insert(file.to_string(), Some(s));
            }
        }
        let tp = dir.join(knob::TASKS);
        let tasks = read_file(&tp)?;
        for tid in crate::host::parse_pids(&tp, &tasks)? {
            let (tgid, anon) = load_task(&proc_dir, tid, &mut buf)?;
            inner.tasks.insert(
                tid,
                Task {
                    tgid,
                    cg: full.clone(),
                    anon,
                },
            );
            inner.groups.entry(tgid).or_default().insert(tid);
            node.tids.insert(tid);
        }
        node.files.insert(knob::TASKS.to_string(), Some(tasks));
        inner.nodes.insert(full, node);
    }
    Ok(())
}

/// Thread group and (leaders) anon bytes of task `tid`, from proc/<tid>.
fn load_task(proc_dir: &Path, tid: u32, buf: &mut Vec<u8>) -> Result<(u32, u64)> {
    let pd = proc_dir.join(tid.to_string());
    let sp = pd.join("status");
    let status = read_file(&sp)?;
    let tgid = status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::Parse {
            path: sp.clone(),
            what: "Tgid line".into(),
            content: status.clone(),
        })?;
    if tgid != tid {
        return Ok((tgid, 0));
    }
    let ap = pd.join(PROC_ANON_FILE);
    let anon = match read_at(None, &ap, buf) {
        Ok(()) => parse_counter(&ap, String::from_utf8_lossy(buf).into_owned())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::io("read", &ap, e)),
    };
    Ok((tgid, anon))
}
