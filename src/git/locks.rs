//! Stale git lock files: a daemon killed in the middle of a fetch or checkout leaves
//! `index.lock`, `packed-refs.lock` or `refs/...lock` behind, and libgit2 then refuses to
//! touch the repository ("the index is locked"). Only this daemon uses its state_dir, and
//! no job runs yet at startup, so any lock found then is stale.

use std::path::Path;

/// Removes `*.lock` files inside the git directories of the caches under `cache_root`
/// and of the work trees under `work_root`; returns how many were removed.
pub fn clear_stale(cache_root: &Path, work_root: &Path) -> usize {
    let mut removed = 0;
    for (root, git_dir) in [(cache_root, None), (work_root, Some(".git"))] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = match git_dir {
                Some(sub) => entry.path().join(sub),
                None => entry.path(),
            };
            removed += remove_locks(&dir, 0);
        }
    }
    removed
}

fn remove_locks(dir: &Path, depth: u32) -> usize {
    // refs/ nests a few levels; objects/ holds no locks worth a walk.
    if depth > 8 || dir.ends_with("objects") {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            removed += remove_locks(&path, depth + 1);
        } else if path.extension().is_some_and(|e| e == "lock")
            && std::fs::remove_file(&path).is_ok()
        {
            tracing::warn!(file = %path.display(), "removed a stale git lock left by an earlier process");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locks_inside_git_directories_go() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("git/app-1234.git");
        let work = root.path().join("work/site");
        std::fs::create_dir_all(cache.join("refs/heads/feature")).unwrap();
        std::fs::create_dir_all(work.join(".git")).unwrap();
        std::fs::write(cache.join("packed-refs.lock"), "").unwrap();
        std::fs::write(cache.join("refs/heads/feature/x.lock"), "").unwrap();
        std::fs::write(work.join(".git/index.lock"), "").unwrap();
        std::fs::write(work.join("Cargo.lock"), "a file of the deployed tree").unwrap();
        let n = clear_stale(&root.path().join("git"), &root.path().join("work"));
        assert_eq!(n, 3);
        assert!(!work.join(".git/index.lock").exists());
        assert!(work.join("Cargo.lock").exists());
    }
}
