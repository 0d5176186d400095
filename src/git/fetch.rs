//! Brings a commit into a bare cache: nothing if it is there already, else the remote's
//! branches and tags (retried with backoff), then the pushed ref, then the commit by id.

use std::path::Path;
use std::time::{Duration, Instant};

use git2::{AutotagOption, ErrorCode, FetchOptions, Oid, Reference, Repository};

use super::auth::{self, Refusal};
use super::url::{self, Endpoint, Scheme};
use super::{Abort, GitError, Remote, RemoteAuth, Retry};

/// Mirrors the remote: branches and tags under their own names, force-updated.
const MIRROR: [&str; 2] = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];

/// A backoff never grows past this, whatever the policy's first step.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What bringing a commit into the cache took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InCache {
    /// The commit to check out: `oid` itself, or the commit an annotated tag `oid` names.
    pub commit: Oid,
    /// Fetches started, counting retries and the by-ref and by-id fetches.
    pub attempts: u32,
    /// Whether the network was used at all.
    pub fetched: bool,
}

/// The commit `oid` names (peeling an annotated tag), if the cache has it and its tree.
pub(super) fn cached_commit(repo: &Repository, oid: Oid) -> Option<Oid> {
    let commit = repo.find_object(oid, None).ok()?.peel_to_commit().ok()?;
    commit.tree().ok()?;
    Some(commit.id())
}

/// Makes sure `repo` (the bare cache for `remote`) has the commit `oid`.
pub(super) fn ensure_commit(
    repo: &Repository,
    remote: &Remote,
    git_ref: Option<&str>,
    oid: Oid,
    retry: &Retry,
    abort: &Abort,
) -> Result<InCache, GitError> {
    if let Some(commit) = cached_commit(repo, oid) {
        return Ok(InCache {
            commit,
            attempts: 0,
            fetched: false,
        });
    }
    if matches!(remote.auth, RemoteAuth::Token { .. })
        && Endpoint::parse(&remote.url).scheme == Scheme::Http
    {
        tracing::warn!(url = %url::redact(&remote.url), "sending a token over plain http; use https");
    }
    let started = Instant::now();
    let result = fetch_until_present(repo, remote, git_ref, oid, retry, abort);
    log_fetch(remote, started, result.as_ref().map(|f| f.attempts));
    result
}

fn fetch_until_present(
    repo: &Repository,
    remote: &Remote,
    git_ref: Option<&str>,
    oid: Oid,
    retry: &Retry,
    abort: &Abort,
) -> Result<InCache, GitError> {
    let mut attempts = fetch_with_retry(repo, remote, &MIRROR, retry, abort)?;
    let done = |commit, attempts| InCache {
        commit,
        attempts,
        fetched: true,
    };
    if let Some(commit) = cached_commit(repo, oid) {
        return Ok(done(commit, attempts));
    }
    // The mirror fetch already brought every branch and tag; only a ref outside them
    // can still bring the commit.
    let other_ref = outside_mirror(git_ref);
    if let Some(other_ref) = other_ref {
        attempts += 1;
        let refspec = format!("+{other_ref}:{other_ref}");
        if let Err(failure) = fetch_once(repo, remote, &[&refspec], remote.shallow, abort) {
            tracing::debug!(url = %url::redact(&remote.url), git_ref = other_ref, error = ?failure.reason, "fetching the pushed ref failed");
        }
        if let Some(commit) = cached_commit(repo, oid) {
            return Ok(done(commit, attempts));
        }
    }
    // Servers only hand out an unadvertised commit if configured to
    // (uploadpack.allowReachableSHA1InWant); worth one try before giving up.
    attempts += 1;
    let mut last_error = fetch_once(repo, remote, &[&oid.to_string()], remote.shallow, abort)
        .err()
        .map(|failure| failure.reason);
    if let Some(commit) = cached_commit(repo, oid) {
        return Ok(done(commit, attempts));
    }
    // A shallow cache has only the tips: a push that another push overtook before its
    // job ran is behind them now. Its history is the only way to it.
    if remote.shallow {
        tracing::info!(url = %url::redact(&remote.url), sha = %oid, "commit is behind the shallow tips; fetching full history");
        attempts += 1;
        if let Err(failure) = fetch_once_with(repo, remote, &MIRROR, Depth::Unshallow, abort) {
            last_error = Some(failure.reason);
        }
        if let Some(commit) = cached_commit(repo, oid) {
            return Ok(done(commit, attempts));
        }
    }
    if let Ok(object) = repo.find_object(oid, None) {
        return Err(GitError::NotACommit {
            sha: oid.to_string(),
            url: url::redact(&remote.url),
            kind: object.kind().map_or("object", |k| k.str()).to_owned(),
        });
    }
    Err(GitError::CommitMissing {
        sha: oid.to_string(),
        url: url::redact(&remote.url),
        detail: last_error,
    })
}

/// Makes sure `commit` is on `git_ref` in the cache: the ref's tip or an ancestor of it.
/// Asks the network only when the cached ref does not contain it (the ref moved since
/// the last fetch), and, in a shallow cache, for the history in between if needed.
/// Returns the fetches started.
pub(super) fn ensure_on_ref(
    repo: &Repository,
    remote: &Remote,
    git_ref: &str,
    commit: Oid,
    retry: &Retry,
    abort: &Abort,
) -> Result<u32, GitError> {
    if ref_contains(repo, git_ref, commit) {
        return Ok(0);
    }
    let mut attempts = fetch_ref(repo, remote, git_ref, retry, abort)?;
    if ref_contains(repo, git_ref, commit) {
        return Ok(attempts);
    }
    if remote.shallow {
        attempts += 1;
        let refspecs = ref_refspecs(git_ref);
        let refspecs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
        if let Err(failure) = fetch_once_with(repo, remote, &refspecs, Depth::Unshallow, abort) {
            tracing::debug!(url = %url::redact(&remote.url), error = ?failure.reason, "fetching full history failed");
        }
        if ref_contains(repo, git_ref, commit) {
            return Ok(attempts);
        }
    }
    Err(GitError::NotOnRef {
        sha: commit.to_string(),
        git_ref: git_ref.to_owned(),
        url: url::redact(&remote.url),
        tip: repo
            .find_reference(git_ref)
            .and_then(|r| r.peel_to_commit())
            .ok()
            .map(|c| c.id().to_string()),
    })
}

/// Whether the cached `git_ref` points at `commit` or at a descendant of it.
fn ref_contains(repo: &Repository, git_ref: &str, commit: Oid) -> bool {
    let Ok(tip) = repo
        .find_reference(git_ref)
        .and_then(|r| r.peel_to_commit())
        .map(|c| c.id())
    else {
        return false;
    };
    tip == commit || repo.graph_descendant_of(tip, commit).unwrap_or(false)
}

/// The mirror refspecs, and one for `git_ref` if the mirror does not cover it.
fn ref_refspecs(git_ref: &str) -> Vec<String> {
    let mut refspecs: Vec<String> = MIRROR.iter().map(|r| (*r).to_owned()).collect();
    refspecs.extend(outside_mirror(Some(git_ref)).map(|r| format!("+{r}:{r}")));
    refspecs
}

/// Fetches the remote's branches and tags, and `git_ref` if it is neither, whether or not
/// the cache is up to date: the caller wants where the ref is now.
pub(super) fn fetch_ref(
    repo: &Repository,
    remote: &Remote,
    git_ref: &str,
    retry: &Retry,
    abort: &Abort,
) -> Result<u32, GitError> {
    let refspecs = ref_refspecs(git_ref);
    let refspecs: Vec<&str> = refspecs.iter().map(String::as_str).collect();
    let started = Instant::now();
    let result = fetch_with_retry(repo, remote, &refspecs, retry, abort);
    log_fetch(remote, started, result.as_ref().map(|attempts| *attempts));
    result
}

/// `git_ref` if it is a valid ref the mirror refspecs do not already fetch (say
/// refs/pull/1/head).
fn outside_mirror(git_ref: Option<&str>) -> Option<&str> {
    git_ref.filter(|r| {
        r.starts_with("refs/")
            && !r.starts_with("refs/heads/")
            && !r.starts_with("refs/tags/")
            && Reference::is_valid_name(r)
    })
}

fn log_fetch(remote: &Remote, started: Instant, result: Result<u32, &GitError>) {
    let shown = url::redact(&remote.url);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(attempts) => tracing::info!(
            url = %shown,
            attempts,
            duration_ms,
            shallow = remote.shallow,
            "fetched"
        ),
        Err(error) => tracing::warn!(
            url = %shown,
            duration_ms,
            error = ?error.to_string(),
            "fetch failed"
        ),
    }
}

/// Fetches `refspecs`, trying up to `retry.attempts` times; returns the attempts taken.
fn fetch_with_retry(
    repo: &Repository,
    remote: &Remote,
    refspecs: &[&str],
    retry: &Retry,
    abort: &Abort,
) -> Result<u32, GitError> {
    let attempts = retry.attempts.max(1);
    let mut backoff = retry.first_backoff;
    let mut attempt = 1;
    loop {
        let failure = match fetch_once(repo, remote, refspecs, remote.shallow, abort) {
            Ok(()) => return Ok(attempt),
            Err(failure) => failure,
        };
        // A fetch that our callbacks stopped failed because of the abort, not the remote.
        abort.check()?;
        if attempt >= attempts || !failure.retryable {
            return Err(GitError::Fetch {
                url: url::redact(&remote.url),
                attempts: attempt,
                reason: failure.reason,
            });
        }
        tracing::debug!(
            url = %url::redact(&remote.url),
            attempt,
            backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            error = ?failure.reason,
            "fetch failed; retrying"
        );
        abort.sleep(backoff)?;
        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        attempt += 1;
    }
}

/// One failed fetch.
struct Failure {
    reason: String,
    /// Refused credentials and host keys will not get better by asking again.
    retryable: bool,
}

/// How much history a fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Everything reachable (a shallow cache stays shallow).
    Full,
    /// Only the commits the refs point at.
    Tips,
    /// Everything, including what earlier shallow fetches left out.
    Unshallow,
}

fn fetch_once(
    repo: &Repository,
    remote: &Remote,
    refspecs: &[&str],
    shallow: bool,
    abort: &Abort,
) -> Result<(), Failure> {
    let depth = if shallow { Depth::Tips } else { Depth::Full };
    fetch_once_with(repo, remote, refspecs, depth, abort)
}

fn fetch_once_with(
    repo: &Repository,
    remote: &Remote,
    refspecs: &[&str],
    depth: Depth,
    abort: &Abort,
) -> Result<(), Failure> {
    if let Err(stop) = abort.check() {
        return Err(Failure {
            reason: stop.to_string(),
            retryable: false,
        });
    }
    let endpoint = Endpoint::parse(&remote.url);
    if let Scheme::Other(scheme) = &endpoint.scheme {
        return Err(Failure {
            reason: format!(
                "unsupported URL scheme `{scheme}://`; use https, http, ssh, git or file"
            ),
            retryable: false,
        });
    }
    let refusal = Refusal::default();
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(auth::callbacks(remote, &refusal, abort))
        .download_tags(AutotagOption::None)
        .update_fetchhead(false);
    match depth {
        Depth::Full => {}
        Depth::Tips => {
            options.depth(1);
        }
        Depth::Unshallow => {
            // libgit2's GIT_FETCH_DEPTH_UNSHALLOW, git's "infinite" depth.
            options.depth(i32::MAX);
        }
    }
    let result = repo
        .remote_anonymous(&remote.url)
        .and_then(|mut r| r.fetch(refspecs, Some(&mut options), None));
    result.map_err(|e| {
        // libgit2 takes a local path that does not exist for a URL it cannot parse.
        if endpoint.scheme == Scheme::Local && !Path::new(&remote.url).exists() {
            return Failure {
                reason: "no such directory".to_owned(),
                retryable: true,
            };
        }
        let refused = refusal.take();
        let retryable =
            refused.is_none() && !matches!(e.code(), ErrorCode::Auth | ErrorCode::Certificate);
        Failure {
            reason: url::scrub(
                &refused.unwrap_or_else(|| e.message().to_owned()),
                &remote.url,
            ),
            retryable,
        }
    })
}
