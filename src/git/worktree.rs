//! Makes a work tree hold exactly one commit's files, and nothing else.
//!
//! The work tree is where deploy commands run, so everything in it is the command's to
//! change: the daemon trusts nothing there (it reads files only to check them against
//! the tree it wrote). Its git directory therefore lives
//! apart, under the cache root (`git/trees/<name>.git`), where no command may write; it
//! is a bare repository used with the work tree as its work directory (never written to
//! its config), whose object database borrows the bare cache's (an alternate), so
//! nothing is copied.
//!
//! Each checkout starts from what `scrub` leaves of the last one (exactly its files,
//! each hashed or vouched for by the change time the last checkout recorded; everything
//! else removed without following a link), or from an empty work
//! tree ([`crate::wipe::empty_dir`]: any depth, any mode) when there is no last one or a
//! checkout failed, so nothing a previous job left, not a nested repository, a symlink in
//! place of a directory or a changed file mode, reaches the next one.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path};

use git2::build::CheckoutBuilder;
use git2::{CheckoutNotificationType, Oid, Repository, RepositoryInitOptions};

use super::{Abort, GitError};

/// Where HEAD points before a checkout: a branch that never exists, so HEAD is unborn.
const UNBORN: &str = "refs/heads/deployhook-unborn";

/// The mode of a work tree's top directory.
const WORKTREE_MODE: u32 = 0o755;

/// A work tree and the git directory that belongs to it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub work_dir: &'a Path,
    pub git_dir: &'a Path,
    /// How many directories `work_dir` is below the top work tree (0, or a submodule's).
    pub depth: u32,
    /// How many submodules it is nested in (0 for the top work tree).
    pub nesting: u32,
}

/// Checks out `commit` (already in the cache whose object directory is `cache_objects`)
/// into `target.work_dir` with a detached HEAD, and returns the repository. The work tree
/// then holds exactly the commit's files: see [`prepare`].
pub(super) fn checkout(
    target: Target<'_>,
    cache_objects: &Path,
    commit: Oid,
    abort: &Abort,
) -> Result<Repository, GitError> {
    let repo = prepare(target, cache_objects)?;
    let failed = |e: git2::Error| GitError::Checkout {
        sha: commit.to_string(),
        worktree: target.work_dir.to_owned(),
        reason: e.message().to_owned(),
    };
    let found = repo.find_commit(commit).map_err(failed)?;
    let mut options = CheckoutBuilder::new();
    // libgit2 announces each file before it writes any; a `false` stops the checkout.
    options
        .force()
        .remove_untracked(true)
        .remove_ignored(true)
        .notify_on(CheckoutNotificationType::UPDATED)
        .notify(|_, _, _, _, _| abort.go_on());
    let written = repo.checkout_tree(found.as_object(), Some(&mut options));
    abort.check()?;
    written.map_err(failed)?;
    repo.set_head_detached(commit).map_err(failed)?;
    drop(found);
    Ok(repo)
}

/// Refuses a work tree inside another one (a submodule's) whose path on the way down
/// from `top` is not made of real directories: the parent's checkout wrote them, but a
/// path with a symlink in it must never be written through.
pub(super) fn check_no_links(top: &Path, relative: &Path) -> Result<(), GitError> {
    let mut at = top.to_owned();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(GitError::Local {
                action: "check out a submodule at",
                path: relative.to_owned(),
                reason: "the path leaves the work tree".to_owned(),
            });
        };
        at.push(name);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(GitError::Local {
                    action: "check out a submodule at",
                    path: relative.to_owned(),
                    reason: format!("{} is a symbolic link", at.display()),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(local("read", &at)(e)),
        }
    }
    Ok(())
}

/// Makes `work_dir` an empty directory (creating its parents), whatever a command left
/// in it or put in its place: when there is no last checkout to update in place, and
/// after a checkout failed, so that nothing half-written or of the last job stays.
pub(super) fn empty(work_dir: &Path) -> Result<(), GitError> {
    if let Some(parent) = work_dir.parent() {
        fs::create_dir_all(parent).map_err(local("create", parent))?;
    }
    crate::wipe::empty_dir(work_dir, WORKTREE_MODE)
        .map(drop)
        .map_err(local("empty the work tree", work_dir))
}

/// Opens (or creates) the git directory of the work tree and points it at the cache's
/// objects, then readies the work tree: on top of the last checkout, scrubbed
/// ([`super::scrub`]) and with an index of that checkout's tree and the stat data the
/// scrub read, so that libgit2 rewrites only what differs; or, with no usable last
/// checkout, emptied, with HEAD unborn and no index.
fn prepare(target: Target<'_>, cache_objects: &Path) -> Result<Repository, GitError> {
    let Target {
        git_dir, work_dir, ..
    } = target;
    drop(open_git_dir(git_dir)?);
    let alternates = git_dir.join("objects").join("info").join("alternates");
    let mut wanted = cache_objects.as_os_str().as_bytes().to_vec();
    wanted.push(b'\n');
    if fs::read(&alternates).ok().as_deref() != Some(wanted.as_slice()) {
        if let Some(info) = alternates.parent() {
            fs::create_dir_all(info).map_err(local("create", info))?;
        }
        fs::write(&alternates, &wanted).map_err(local("write", &alternates))?;
    }
    // A missing work tree, or a link or file in its place, is made an empty directory.
    let was_there = fs::symlink_metadata(work_dir).is_ok_and(|m| m.is_dir());
    if !was_there {
        empty(work_dir)?;
    }
    // Opened again so that the object database is read with the alternate in place.
    let repo = Repository::open_bare(git_dir).map_err(git_local("open", git_dir))?;
    // In memory only (`false`): the git directory's config never names a work tree.
    repo.set_workdir(work_dir, false)
        .map_err(git_local("use the work tree", work_dir))?;
    let last = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map(|t| t.id())
        .ok()
        .filter(|_| was_there);
    if let Some(tree) = last {
        match on_top_of(&repo, work_dir, tree) {
            Ok(removed) => {
                if removed > 0 {
                    tracing::debug!(worktree = %work_dir.display(), removed, "removed what the last job left in the work tree");
                }
                return Ok(repo);
            }
            Err(e) => {
                tracing::warn!(worktree = %work_dir.display(), error = %e, "cannot update the work tree in place; checking out afresh");
            }
        }
    }
    empty(work_dir)?;
    repo.set_head(UNBORN)
        .map_err(git_local("reset HEAD in", git_dir))?;
    let index = git_dir.join("index");
    match fs::remove_file(&index) {
        Ok(()) => Ok(repo),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(repo),
        Err(e) => Err(local("remove", &index)(e)),
    }
}

/// Scrubs `work_dir` against `tree`, reading the last checkout's record from the git
/// directory's index, then writes an index of `tree` with the stat data of every file
/// the scrub kept (so libgit2 compares those by stat and hashes none of them again).
fn on_top_of(repo: &Repository, work_dir: &Path, tree: Oid) -> Result<usize, String> {
    let message = |e: git2::Error| e.message().to_owned();
    let mut index = repo.index().map_err(message)?;
    let scrubbed = super::scrub::scrub(repo, work_dir, tree, &super::scrub::Record::of(&index))
        .map_err(|e| e.to_string())?;
    let tree = repo.find_tree(tree).map_err(message)?;
    index.read_tree(&tree).map_err(message)?;
    for entry in &scrubbed.kept {
        index.add(entry).map_err(message)?;
    }
    index.write().map_err(message)?;
    tracing::debug!(worktree = %work_dir.display(), kept = scrubbed.kept.len(), hashed = scrubbed.hashed, "scrubbed the work tree");
    Ok(scrubbed.removed)
}

/// Opens the work tree's git directory, creating it if missing. It holds nothing but
/// HEAD, an index and the alternate, so one that cannot be opened is made anew.
fn open_git_dir(git_dir: &Path) -> Result<Repository, GitError> {
    if let Ok(repo) = Repository::open_bare(git_dir) {
        return Ok(repo);
    }
    if fs::symlink_metadata(git_dir).is_ok() {
        tracing::warn!(git_dir = %git_dir.display(), "a work tree's git directory cannot be opened; recreating it");
        fs::remove_dir_all(git_dir).map_err(local("remove the broken git directory", git_dir))?;
    }
    Repository::init_opts(
        git_dir,
        RepositoryInitOptions::new().bare(true).mkpath(true),
    )
    .map_err(git_local("create the git directory", git_dir))
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
