//! Makes a work tree hold exactly one commit's files. The work tree is a non-bare
//! repository of its own whose object database borrows the bare cache's (an alternate):
//! nothing is copied, and its own index lets a forced checkout remove what the commit
//! does not have.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{ErrorCode, Oid, Repository};

use super::GitError;

/// Where HEAD points after a reset: a branch that never exists, so HEAD is unborn.
const UNBORN: &str = "refs/heads/deployhook-unborn";

/// Checks out `commit` (already in the cache whose object directory is `cache_objects`)
/// into `worktree` with a detached HEAD, and returns the work tree's repository.
pub(super) fn checkout(
    worktree: &Path,
    cache_objects: &Path,
    commit: Oid,
) -> Result<Repository, GitError> {
    let repo = prepare(worktree, cache_objects)?;
    let failed = |e: git2::Error| GitError::Checkout {
        sha: commit.to_string(),
        worktree: worktree.to_owned(),
        reason: e.message().to_owned(),
    };
    let target = repo.find_commit(commit).map_err(failed)?;
    let mut options = CheckoutBuilder::new();
    // Ignored files go too: a deploy runs in exactly the pushed tree, not on leftovers
    // of the previous build.
    options.force().remove_untracked(true).remove_ignored(true);
    repo.checkout_tree(target.as_object(), Some(&mut options))
        .map_err(failed)?;
    repo.set_head_detached(commit).map_err(failed)?;
    drop(target);
    Ok(repo)
}

/// Creates or reopens the work tree's repository and points it at the cache's objects.
fn prepare(worktree: &Path, cache_objects: &Path) -> Result<Repository, GitError> {
    fs::create_dir_all(worktree).map_err(local("create the work tree", worktree))?;
    let git_dir = worktree.join(".git");
    match fs::symlink_metadata(&git_dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(GitError::Local {
                action: "use the work tree",
                path: git_dir,
                reason: "`.git` is not a directory; deployhook keeps its own repository there, so remove it".to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Repository::init(worktree).map_err(git_local("create a repository in", worktree))?;
        }
        Err(e) => return Err(local("read the work tree", &git_dir)(e)),
    }

    let alternates = git_dir.join("objects").join("info").join("alternates");
    let mut wanted = cache_objects.as_os_str().as_bytes().to_vec();
    wanted.push(b'\n');
    if fs::read(&alternates).ok().as_deref() != Some(wanted.as_slice()) {
        if let Some(info) = alternates.parent() {
            fs::create_dir_all(info).map_err(local("create", info))?;
        }
        fs::write(&alternates, &wanted).map_err(local("write", &alternates))?;
    }

    let open = || Repository::open(worktree).map_err(git_local("open the repository in", worktree));
    let repo = open()?;
    if head_is_readable(&repo) {
        return Ok(repo);
    }
    // HEAD names a commit the cache no longer has (the cache was recreated, or the hook's
    // URL changed): the checkout would refuse to start from it. An unborn HEAD and no
    // index make every present file untracked, which the forced checkout then replaces.
    tracing::info!(worktree = %worktree.display(), "work tree's HEAD is not in the cache; resetting it");
    repo.set_head(UNBORN)
        .map_err(git_local("reset HEAD in", worktree))?;
    drop(repo);
    let index = git_dir.join("index");
    match fs::remove_file(&index) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(local("remove", &index)(e)),
    }
    open()
}

fn head_is_readable(repo: &Repository) -> bool {
    match repo.head() {
        Ok(head) => head.peel_to_tree().is_ok(),
        Err(e) => e.code() == ErrorCode::UnbornBranch,
    }
}

fn local<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> GitError + 'a {
    move |e| GitError::Local {
        action,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn git_local<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(git2::Error) -> GitError + 'a {
    move |e| GitError::Local {
        action,
        path: path.to_owned(),
        reason: e.message().to_owned(),
    }
}
