//! Why a checkout failed, worded for the operator who has to fix it.

use std::path::PathBuf;

/// A failed [`super::Git::checkout`]. URLs in these messages have any embedded password
/// masked; no message ever contains a token or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The pushed commit id is not a full SHA-1 (40 hex digits).
    #[error(
        "`{sha}` is not a full commit id of 40 hex digits (SHA-256 repositories are not supported)"
    )]
    InvalidSha {
        /// The id as given.
        sha: String,
    },
    /// A local directory (the repository cache or a work tree) could not be created, read
    /// or written.
    #[error("cannot {action} {path}: {reason}")]
    Local {
        /// What was being done, e.g. "create the repository cache".
        action: &'static str,
        /// The directory or file concerned.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
    /// Every attempt to fetch the repository's branches and tags failed.
    #[error("cannot fetch {url}: failed after {attempts} attempt(s); last error: {reason}")]
    Fetch {
        /// The remote's URL.
        url: String,
        /// How many times the fetch was tried.
        attempts: u32,
        /// libgit2's (or our authentication check's) message for the last attempt.
        reason: String,
    },
    /// The repository was fetched, but does not have the pushed commit.
    #[error("commit {sha} is not in {url}: was it force-pushed away?{}", last_error(.detail.as_deref()))]
    CommitMissing {
        /// The commit id.
        sha: String,
        /// The remote's URL.
        url: String,
        /// Why fetching the commit by its id failed, when the server said.
        detail: Option<String>,
    },
    /// The ref asked for by [`super::Git::resolve`] is not on the remote (or is not a
    /// valid ref name, or does not point at a commit).
    #[error("{git_ref} is not a branch or tag of {url}: {reason}")]
    RefMissing {
        /// The full ref name.
        git_ref: String,
        /// The remote's URL.
        url: String,
        /// libgit2's message.
        reason: String,
    },
    /// The commit is in the repository but not on the ref it was pushed to or asked for
    /// (neither its tip nor an ancestor of it): a commit from another ref, such as a
    /// fork's pull request, must not deploy under this ref's rule.
    #[error(
        "commit {sha} is not on {git_ref} of {url} ({}); to deploy it anyway, use `deployhook deploy --sha {sha} --force`",
        tip.as_deref().map_or_else(|| "the ref does not exist there".to_owned(), |t| format!("its tip {t} does not contain it"))
    )]
    NotOnRef {
        /// The commit id.
        sha: String,
        /// The full ref name.
        git_ref: String,
        /// The remote's URL.
        url: String,
        /// Where the ref points now, if it exists.
        tip: Option<String>,
    },
    /// The pushed id names an object that is neither a commit nor a tag of one.
    #[error("{sha} in {url} is a {kind}, not a commit")]
    NotACommit {
        /// The object id.
        sha: String,
        /// The remote's URL.
        url: String,
        /// The object's kind (tree, blob).
        kind: String,
    },
    /// Writing the commit's files into the work tree failed.
    #[error("cannot check out {sha} into {worktree}: {reason}")]
    Checkout {
        /// The commit id.
        sha: String,
        /// The work tree.
        worktree: PathBuf,
        /// libgit2's message.
        reason: String,
    },
    /// The commit's tree is larger than the hook allows; nothing was written.
    #[error(
        "commit {sha} is larger than the hook allows: it passes {limit} = {allowed}; nothing was checked out (raise {limit} if the repository really is this large)"
    )]
    OverLimit {
        /// The commit id (of a submodule, inside [`GitError::Submodule`]).
        sha: String,
        /// The hook key: `max_checkout_size`, `max_checkout_files` or `max_tree_depth`.
        limit: &'static str,
        /// Its value.
        allowed: u64,
    },
    /// The job's time ran out while fetching or checking out.
    #[error("fetching and checking out took longer than the rule's timeout of {budget:?}")]
    TimedOut {
        /// The rule's `timeout`.
        budget: std::time::Duration,
    },
    /// The job was cancelled (or the daemon stopped) while fetching or checking out.
    #[error("cancelled while fetching or checking out")]
    Cancelled,
    /// A submodule of the checked-out commit could not be checked out.
    #[error("submodule `{path}`: {error}")]
    Submodule {
        /// The submodule's path in the superproject.
        path: String,
        /// What went wrong with it.
        error: Box<GitError>,
    },
}

fn last_error(detail: Option<&str>) -> String {
    detail
        .map(|d| format!(" (fetching it by id: {d})"))
        .unwrap_or_default()
}
