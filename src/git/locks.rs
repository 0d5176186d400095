//! Stale git lock files: a daemon killed in the middle of a fetch or checkout leaves
//! `index.lock`, `packed-refs.lock` or `refs/...lock` behind, and libgit2 then refuses to
//! touch the repository ("the index is locked"). Only this daemon uses its state_dir, and
//! no job runs yet at startup, so any lock found then is stale.
//!
//! Only the git directories under the cache root are swept (the caches and the work
//! trees' git directories, which no command can write); work trees are not, since they
//! are emptied before every checkout and hold the deployed repository's own files, some
//! of which are called `*.lock`. Links are never followed.

use std::path::Path;

/// The lock files git and libgit2 take at the top of a git directory.
const TOP_LOCKS: [&str; 7] = [
    "index.lock",
    "HEAD.lock",
    "config.lock",
    "packed-refs.lock",
    "shallow.lock",
    "FETCH_HEAD.lock",
    "ORIG_HEAD.lock",
];

/// Deeper than any git directory under the cache root nests (submodules of submodules
/// included): a bound, not a limit that matters.
const MAX_DEPTH: u32 = 32;

/// Removes git's lock files inside the git directories under `cache_root`; returns how
/// many were removed.
pub fn clear_stale(cache_root: &Path) -> usize {
    remove_locks(cache_root, false, 0)
}

/// `in_refs`: `dir` is inside a `refs/` folder, where any `*.lock` is a ref's lock.
fn remove_locks(dir: &Path, in_refs: bool, depth: u32) -> usize {
    if depth > MAX_DEPTH {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // A DirEntry's type is the entry's own: a symlink is neither a dir nor a file.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            // objects/ holds no locks worth a walk.
            if name != "objects" {
                removed += remove_locks(&path, in_refs || name == "refs", depth + 1);
            }
            continue;
        }
        let is_lock = if in_refs {
            path.extension().is_some_and(|e| e == "lock")
        } else {
            TOP_LOCKS.iter().any(|l| name == *l)
        };
        if kind.is_file() && is_lock && std::fs::remove_file(&path).is_ok() {
            tracing::warn!(file = %path.display(), "removed a stale git lock left by an earlier process");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_git_locks_inside_the_cache_root_go() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("git/app-1234.git");
        let tree_git = root.path().join("git/trees/site-99.git");
        fs::create_dir_all(cache.join("refs/heads/feature")).unwrap();
        fs::create_dir_all(tree_git.join("modules/vendor/lib")).unwrap();
        fs::write(cache.join("packed-refs.lock"), "").unwrap();
        fs::write(cache.join("refs/heads/feature/x.lock"), "").unwrap();
        fs::write(tree_git.join("index.lock"), "").unwrap();
        fs::write(tree_git.join("modules/vendor/lib/index.lock"), "").unwrap();
        // Not git's: a name git does not use, outside refs/.
        fs::write(cache.join("Cargo.lock"), "").unwrap();
        let n = clear_stale(&root.path().join("git"));
        assert_eq!(n, 4);
        assert!(!tree_git.join("index.lock").exists());
        assert!(cache.join("Cargo.lock").exists());
    }

    /// The attack: a command replaced a directory the sweep walks with a symlink to a
    /// directory of lock files (a project's `Cargo.lock`, `yarn.lock`, a ref lock).
    #[test]
    fn a_symlink_is_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::create_dir_all(victim.join("refs")).unwrap();
        for f in ["Cargo.lock", "yarn.lock", "index.lock", "refs/main.lock"] {
            fs::write(victim.join(f), "keep").unwrap();
        }
        let cache_root = root.path().join("git");
        fs::create_dir_all(&cache_root).unwrap();
        std::os::unix::fs::symlink(&victim, cache_root.join("evil.git")).unwrap();
        std::os::unix::fs::symlink(victim.join("refs"), cache_root.join("refs")).unwrap();
        assert_eq!(clear_stale(&cache_root), 0);
        for f in ["Cargo.lock", "yarn.lock", "index.lock", "refs/main.lock"] {
            assert!(victim.join(f).exists(), "{f} was removed");
        }
    }
}
