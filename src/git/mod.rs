//! Fetches repositories with git2 into a cache and checks out the exact pushed commit.
//!
//! Each remote URL has one bare repository under the cache root (its name is a hash of
//! the URL), fetched incrementally; a commit the cache already has needs no network. A
//! work tree has a git directory of its own under `cache_root/trees/`, outside the work
//! tree (commands write there, the daemon must not trust it), that borrows the cache's
//! objects (an alternate), so checking out copies no objects; before each checkout,
//! whatever in the work tree is not exactly the last checkout's is removed.
//!
//! Everything here blocks (libgit2 does network and disk I/O on the calling thread): the
//! worker calls [`Git::checkout`] from `tokio::task::spawn_blocking`.
//!
//! **Invariant:** this is the only module that uses git2.

mod abort;
mod auth;
mod error;
mod fetch;
mod heap;
mod known_hosts;
mod limits;
mod locks;
mod scrub;
mod submodule;
mod timeouts;
mod url;
mod worktree;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use git2::{ErrorCode, Oid, Repository, RepositoryInitOptions};

pub use abort::Abort;
pub use error::GitError;
pub use limits::TreeLimits;
pub use locks::clear_stale as clear_stale_locks;
use worktree::Target;

/// The folder under the cache root that holds the work trees' git directories.
const TREES: &str = "trees";

/// Submodules nested deeper than this are refused: it is a cycle, or not worth deploying.
const MAX_SUBMODULE_DEPTH: u32 = 8;

/// How to reach a repository; built by the config module from a hook (never from a payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The hook's `clone_url`: `https://`, `http://`, `ssh://`, `git://`, `file://`,
    /// scp-like `user@host:path`, or an absolute local path.
    pub url: String,
    /// The credentials to offer when the server asks.
    pub auth: RemoteAuth,
    /// Fetch only the pushed commits, not their history (depth 1). The server must
    /// support shallow fetches (libgit2 refuses them over `file://` and local paths).
    pub shallow: bool,
    /// After checkout, check out the commit's submodules, recursively.
    pub submodules: bool,
    /// What the checkout may become, submodules included.
    pub limits: TreeLimits,
    /// Submodule URLs that may be fetched besides relative ones on this remote's server
    /// (the hook's `submodule_urls`; see the `submodule` module for the rules).
    pub submodule_urls: Vec<String>,
}

/// The credentials for a [`Remote`]. Holds file paths only: the files are read when a
/// fetch needs them, so a rotated token or key is used without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAuth {
    /// Anonymous. SSH URLs need [`RemoteAuth::SshKey`]: without its known_hosts file
    /// there is nothing to check the server's host key against.
    None,
    /// SSH private key; the server's host key must be in known_hosts (OpenSSH format,
    /// plain and hashed `|1|salt|hash` entries, `[host]:port` patterns).
    SshKey {
        /// The private key (unencrypted; passphrases are not supported). The user name
        /// is the URL's, else `git`.
        key_file: PathBuf,
        /// The only file host keys are checked against (not `~/.ssh/known_hosts`).
        known_hosts: PathBuf,
    },
    /// HTTPS token read from a file, sent as the password with `user`.
    Token {
        /// Holds the token; surrounding whitespace is ignored.
        token_file: PathBuf,
        /// The user name sent with it (forges accept anything non-empty for most tokens,
        /// e.g. `x-access-token` on GitHub, `oauth2` on GitLab).
        user: String,
    },
}

/// How often a failed fetch is tried, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, including the first; 0 counts as 1.
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further failure (up to
    /// five minutes).
    pub first_backoff: Duration,
}

impl Default for Retry {
    /// Three attempts, waiting 2 s then 4 s: enough to ride out a forge's brief hiccup.
    fn default() -> Self {
        Retry {
            attempts: 3,
            first_backoff: Duration::from_secs(2),
        }
    }
}

/// Whether the commit must be on the ref it is checked out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRef {
    /// The commit must be the ref's tip or an ancestor of it (every push, and manual
    /// deploys): a commit that only another ref has (a fork's pull request) is refused.
    Required,
    /// An operator's `--force`: any commit of the repository.
    Unchecked,
}

/// What a checkout took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutInfo {
    /// Fetches started, with retries and submodules; 0 when everything was cached.
    pub fetch_attempts: u32,
    /// False if every commit (submodules included) was already cached and no fetch was
    /// needed.
    pub fetched: bool,
    /// Wall time of the whole checkout, fetches included.
    pub duration: Duration,
}

/// The repository caches under one root, and the checkouts from them. Share one `Git`
/// (in an `Arc`) between all jobs: it serializes the fetches into each cache.
#[derive(Debug)]
pub struct Git {
    cache_root: PathBuf,
    retry: Retry,
    /// One lock per cache directory. Two fetches into one bare repository at once would
    /// race on its refs; different repositories fetch in parallel.
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl Git {
    /// Caches live under `cache_root` (created on first use); failed fetches follow `retry`.
    pub fn new(cache_root: PathBuf, retry: Retry) -> Git {
        Git {
            cache_root,
            retry,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The bare cache directory for `url`: `cache_root/<name>-<hash of url>.git`.
    pub fn cache_path(&self, url: &str) -> PathBuf {
        self.cache_root.join(url::cache_name(url))
    }

    /// The git directory of the work tree `worktree`:
    /// `cache_root/trees/<name>-<hash of its path>.git`, out of every command's reach.
    pub fn git_dir_of(&self, worktree: &Path) -> PathBuf {
        let shown = worktree.to_string_lossy();
        self.cache_root.join(TREES).join(url::cache_name(&shown))
    }

    /// Blocking. Fetch `remote` incrementally into the bare cache (one per URL under
    /// cache_root, named from a hash of the URL), retrying with backoff; then check out
    /// exactly `sha` into `worktree` (created if missing), after removing from it all that
    /// is not exactly the last checkout's (see `scrub`); it then holds the commit's files
    /// and nothing else, and no `.git`
    /// (its git directory is [`Git::git_dir_of`]). `git_ref` is the pushed ref (e.g.
    /// refs/heads/main), useful to fetch when the sha is not on any fetched branch/tag.
    ///
    /// `sha` may also name an annotated tag; its commit is checked out. Two checkouts
    /// into the same work tree at once are the caller's to prevent.
    pub fn checkout(
        &self,
        remote: &Remote,
        git_ref: &str,
        sha: &str,
        on_ref: OnRef,
        abort: &Abort,
        worktree: &Path,
    ) -> Result<CheckoutInfo, GitError> {
        timeouts::ensure();
        let started = Instant::now();
        let oid = parse_sha(sha)?;
        // One checkout into a work tree at a time: one the worker stopped waiting for (it
        // ran past its deadline) may still be finishing in its thread.
        let tree_lock = self.lock_for(worktree);
        let _one_at_a_time = lock_unless_aborted(&tree_lock, abort)?;
        let mut totals = Totals::default();
        let git_dir = self.git_dir_of(worktree);
        let target = Target {
            work_dir: worktree,
            git_dir: &git_dir,
            depth: 0,
            nesting: 0,
        };
        let pushed = Pushed { git_ref, on_ref };
        let result = self.checkout_commit(remote, Some(pushed), oid, target, abort, &mut totals);
        heap::trim();
        if result.is_err() {
            // Nothing half-written, and nothing of the last job, stays for anyone to run.
            if let Err(e) = worktree::empty(worktree) {
                tracing::warn!(worktree = %worktree.display(), error = ?e.to_string(), "cannot empty the work tree after a failed checkout");
            }
        }
        result?;
        Ok(CheckoutInfo {
            fetch_attempts: totals.attempts,
            fetched: totals.fetched,
            duration: started.elapsed(),
        })
    }

    /// Blocking. Fetches `remote` into its cache now (with the same retries as
    /// [`Git::checkout`]) and returns the commit `git_ref` (e.g. `refs/heads/main`) points
    /// at, as 40 hex digits. For redeploying a branch's current head.
    pub fn resolve(
        &self,
        remote: &Remote,
        git_ref: &str,
        abort: &Abort,
    ) -> Result<String, GitError> {
        timeouts::ensure();
        let cache = self.cache_path(&remote.url);
        let lock = self.lock_for(&cache);
        let _serialized = lock_unless_aborted(&lock, abort)?;
        let repo = open_cache(&cache)?;
        fetch::fetch_ref(&repo, remote, git_ref, &self.retry, abort)?;
        repo.find_reference(git_ref)
            .and_then(|r| r.peel_to_commit())
            .map(|c| c.id().to_string())
            .map_err(|e| GitError::RefMissing {
                git_ref: git_ref.to_owned(),
                url: url::redact(&remote.url),
                reason: e.message().to_owned(),
            })
    }

    /// `pushed` is `None` for a submodule: its commit is the one the parent records.
    fn checkout_commit(
        &self,
        remote: &Remote,
        pushed: Option<Pushed<'_>>,
        oid: Oid,
        target: Target<'_>,
        abort: &Abort,
        totals: &mut Totals,
    ) -> Result<(), GitError> {
        let cache = self.cache_path(&remote.url);
        let (commit, objects) = {
            let lock = self.lock_for(&cache);
            let _serialized = lock_unless_aborted(&lock, abort)?;
            let repo = open_cache(&cache)?;
            let git_ref = pushed.map(|p| p.git_ref);
            let fetched = fetch::ensure_commit(&repo, remote, git_ref, oid, &self.retry, abort)?;
            totals.attempts += fetched.attempts;
            totals.fetched |= fetched.fetched;
            if let Some(Pushed {
                git_ref,
                on_ref: OnRef::Required,
            }) = pushed
            {
                let more = fetch::ensure_on_ref(
                    &repo,
                    remote,
                    git_ref,
                    fetched.commit,
                    &self.retry,
                    abort,
                )?;
                totals.attempts += more;
                totals.fetched |= more > 0;
            }
            limits::check(
                &repo,
                fetched.commit,
                target.depth,
                &remote.limits,
                &mut totals.tally,
                abort,
            )?;
            (fetched.commit, repo.path().join("objects"))
        };
        let repo = worktree::checkout(target, &objects, commit, abort)?;
        if remote.submodules {
            self.checkout_submodules(remote, &repo, target, abort, totals)?;
        }
        Ok(())
    }

    /// Checks out each submodule the commit records, at the commit it records, through
    /// its own cache: a submodule gets the same fetch, retry and host-key checks.
    fn checkout_submodules(
        &self,
        parent: &Remote,
        repo: &Repository,
        target: Target<'_>,
        abort: &Abort,
        totals: &mut Totals,
    ) -> Result<(), GitError> {
        let worktree = target.work_dir;
        let submodules = repo.submodules().map_err(|e| GitError::Checkout {
            sha: repo
                .head()
                .ok()
                .and_then(|h| h.target())
                .map(|o| o.to_string())
                .unwrap_or_default(),
            worktree: worktree.to_owned(),
            reason: format!("cannot read .gitmodules: {}", e.message()),
        })?;
        for submodule in submodules {
            let path = submodule.path().to_owned();
            let shown = path.display().to_string();
            let in_submodule = |error: GitError| GitError::Submodule {
                path: shown.clone(),
                error: Box::new(error),
            };
            // Listed in .gitmodules but not recorded in the commit: git skips it too.
            let Some(oid) = submodule.index_id() else {
                continue;
            };
            worktree::check_no_links(worktree, &path).map_err(in_submodule)?;
            if target.nesting + 1 > MAX_SUBMODULE_DEPTH {
                return Err(in_submodule(GitError::Local {
                    action: "check out a submodule at",
                    path,
                    reason: format!("submodules nest more than {MAX_SUBMODULE_DEPTH} levels deep"),
                }));
            }
            let Some(raw_url) = submodule.url().ok().flatten() else {
                return Err(in_submodule(GitError::Local {
                    action: "check out a submodule at",
                    path,
                    reason: "it has no url in .gitmodules".to_owned(),
                }));
            };
            let sub = submodule::remote(parent, raw_url).map_err(|reason| {
                in_submodule(GitError::Local {
                    action: "fetch a submodule for",
                    path: path.clone(),
                    reason,
                })
            })?;
            let sub_target = Target {
                work_dir: &worktree.join(&path),
                git_dir: &target.git_dir.join("modules").join(&path),
                depth: target.depth + u32::try_from(path.components().count()).unwrap_or(u32::MAX),
                nesting: target.nesting + 1,
            };
            worktree::empty(sub_target.work_dir).map_err(in_submodule)?;
            self.checkout_commit(&sub, None, oid, sub_target, abort, totals)
                .map_err(in_submodule)?;
        }
        Ok(())
    }

    fn lock_for(&self, cache: &Path) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(cache.to_owned()).or_default())
    }
}

/// The ref a top-level checkout is for, and whether its commit must be on it.
#[derive(Debug, Clone, Copy)]
struct Pushed<'a> {
    git_ref: &'a str,
    on_ref: OnRef,
}

#[derive(Debug, Default)]
struct Totals {
    attempts: u32,
    fetched: bool,
    tally: limits::Tally,
}

/// Takes `lock`, giving up when `abort` says so (a checkout that ran past its deadline
/// may still hold it).
fn lock_unless_aborted<'a>(
    lock: &'a Mutex<()>,
    abort: &Abort,
) -> Result<std::sync::MutexGuard<'a, ()>, GitError> {
    loop {
        match lock.try_lock() {
            Ok(guard) => return Ok(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => abort.sleep(Duration::from_millis(20))?,
        }
    }
}

/// A full SHA-1 only: git2 would read a short id as a prefix padded with zeros.
fn parse_sha(sha: &str) -> Result<Oid, GitError> {
    let invalid = || GitError::InvalidSha {
        sha: sha.chars().take(80).collect(),
    };
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    Oid::from_str(sha).map_err(|_| invalid())
}

/// Opens the bare cache at `dir`, creating it if missing. A directory that is not a
/// repository (a crash while it was being created) is ours to rebuild: it is only a
/// cache. Any other failure (permissions, a corrupt config) is left for the operator.
fn open_cache(dir: &Path) -> Result<Repository, GitError> {
    let local = |action, reason: String| GitError::Local {
        action,
        path: dir.to_owned(),
        reason,
    };
    match Repository::open_bare(dir) {
        Ok(repo) => return Ok(repo),
        Err(e) if e.code() == ErrorCode::NotFound && dir.exists() => {
            tracing::warn!(cache = %dir.display(), error = ?e.message(), "repository cache is incomplete; recreating it");
            fs::remove_dir_all(dir)
                .map_err(|e| local("remove the incomplete repository cache", e.to_string()))?;
        }
        Err(e) if e.code() == ErrorCode::NotFound => {}
        Err(e) => {
            return Err(local(
                "open the repository cache",
                format!(
                    "{}; it is only a cache: removing it makes the next job fetch afresh",
                    e.message()
                ),
            ));
        }
    }
    Repository::init_opts(dir, RepositoryInitOptions::new().bare(true).mkpath(true))
        .map_err(|e| local("create the repository cache", e.message().to_owned()))
}
