//! What a checkout may become: its total size, its number of files and how deep its
//! directories nest, read off the commit's trees and the objects' headers before
//! anything is written. A small repository can describe a huge tree (the same blob
//! under many names compresses to nothing), and the work tree shares its disk with the
//! database.

use git2::{ObjectType, Oid, Repository};

use super::{Abort, GitError};

/// A hook's limits on one checkout, submodules included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Total bytes of the files written (`max_checkout_size`).
    pub max_bytes: u64,
    /// Files and symlinks written (`max_checkout_files`).
    pub max_files: u64,
    /// Directories nested inside each other (`max_tree_depth`).
    pub max_depth: u32,
}

impl Default for TreeLimits {
    /// 2 GiB, 200,000 files, 64 levels: far beyond a real project's checkout (the Linux
    /// kernel is about 1.5 GiB in 90,000 files, nesting 13 deep), far below a full disk.
    fn default() -> Self {
        TreeLimits {
            max_bytes: 2 << 30,
            max_files: 200_000,
            max_depth: 64,
        }
    }
}

/// What the trees checked so far in one checkout hold.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    bytes: u64,
    files: u64,
}

/// Adds the tree of `commit` (its root `depth` directories below the top work tree, for
/// a submodule) to `tally`, and fails as soon as the total passes a limit.
pub(super) fn check(
    repo: &Repository,
    commit: Oid,
    depth: u32,
    limits: &TreeLimits,
    tally: &mut Tally,
    abort: &Abort,
) -> Result<(), GitError> {
    let sha = commit.to_string();
    let broken = |e: git2::Error| GitError::Checkout {
        sha: sha.clone(),
        worktree: repo.path().to_owned(),
        reason: format!("cannot read the commit's tree: {}", e.message()),
    };
    let root = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(broken)?;
    let odb = repo.odb().map_err(broken)?;
    let over = |limit: &'static str, allowed: u64| GitError::OverLimit {
        sha: sha.clone(),
        limit,
        allowed,
    };
    let mut pending: Vec<(Oid, u32)> = vec![(root.id(), depth)];
    let mut seen: u64 = 0;
    while let Some((id, level)) = pending.pop() {
        let tree = repo.find_tree(id).map_err(broken)?;
        for entry in &tree {
            seen += 1;
            if seen.is_multiple_of(1024) {
                abort.check()?;
            }
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    if level + 1 > limits.max_depth {
                        return Err(over("max_tree_depth", u64::from(limits.max_depth)));
                    }
                    pending.push((entry.id(), level + 1));
                }
                Some(ObjectType::Blob) => {
                    let (size, _) = odb.read_header(entry.id()).map_err(broken)?;
                    tally.files += 1;
                    tally.bytes = tally.bytes.saturating_add(size as u64);
                    if tally.files > limits.max_files {
                        return Err(over("max_checkout_files", limits.max_files));
                    }
                    if tally.bytes > limits.max_bytes {
                        return Err(over("max_checkout_size", limits.max_bytes));
                    }
                }
                // A submodule's commit: checked when its own tree is.
                _ => {}
            }
        }
    }
    Ok(())
}
