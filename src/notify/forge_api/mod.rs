//! The requests that report a deploy's state on its forge: a commit status on every forge
//! and, on GitHub, a deployment with its statuses. Pure: a status goes in, a URL, headers
//! and a JSON body come out, and the forge's answers are read back; sending, retrying and
//! configuration are the caller's.
//!
//! Each builder follows one published document, named on it. A value that reaches a URL
//! path is checked and percent-encoded as a single segment, so no repository name can
//! address another endpoint. Free text is put on one line and cut to the forge's
//! documented limit: past it the forge answers 4xx and the whole status would be lost for
//! the sake of a long description.

use std::fmt;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::verify::to_hex;

#[cfg(test)]
mod schema_check;
#[cfg(test)]
mod tests;

/// GitHub's limit on a commit status's and a deployment status's `description`, in
/// characters: past it GitHub answers 422 "description is too long (maximum is 140
/// characters)" (REST "Create a deployment status" documents it).
pub const GITHUB_DESCRIPTION_MAX: usize = 140;
/// GitHub's limit on a commit status's `context`, in characters (422 past it).
pub const GITHUB_CONTEXT_MAX: usize = 255;
/// GitLab's limit on a status's `description` ("Must be 255 characters or fewer").
pub const GITLAB_DESCRIPTION_MAX: usize = 255;
/// GitLab's limit on a status's `target_url` ("Must be 255 characters or fewer"). A longer
/// link is left out rather than cut: a cut URL is a wrong link.
pub const GITLAB_TARGET_URL_MAX: usize = 255;
/// Bitbucket Cloud's limit on a build status's `key`, in characters (400 "key: Ensure this
/// value has at most 40 characters").
pub const BITBUCKET_CLOUD_KEY_MAX: usize = 40;
/// Bitbucket Data Center's limit on every build status field but `url`, counted as Java
/// counts a string's length (UTF-16 code units).
pub const BITBUCKET_DC_FIELD_MAX: usize = 255;
/// Bitbucket Data Center's limit on a build status's `url`, likewise.
pub const BITBUCKET_DC_URL_MAX: usize = 450;
/// The most characters `error_message` returns.
pub const ERROR_MESSAGE_MAX: usize = 300;

/// The REST API version every GitHub request asks for (sent as `X-GitHub-Api-Version`).
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// Where Bitbucket Cloud's web pages are (its API is elsewhere: `default_api_url`).
const BITBUCKET_CLOUD_WEB: &str = "https://bitbucket.org";

/// Hex digits of SHA-256 that stand for the cut part of an over-long identifier.
const SHORT_HASH_HEX: usize = 16;

/// Which commit-status API a hook reports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// GitHub and GitHub Enterprise Server.
    Github,
    Gitlab,
    /// Gitea and Forgejo (the same API).
    Gitea,
    BitbucketCloud,
    BitbucketDataCenter,
}

/// The forge-neutral state of a deploy, as a status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The deploy could not be run (a checkout failed, the daemon stopped): not the
    /// commit's fault.
    Error,
    Cancelled,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Queued,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Error,
        Phase::Cancelled,
    ];
}

/// A commit status to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    /// `owner/name`; GitLab: the project's path with its namespace (`group/sub/project`) or
    /// its numeric id; Bitbucket Data Center: `PROJECTKEY/repo-slug`.
    pub repository: &'a str,
    /// The commit: 40 hex digits (64 in a SHA-256 repository).
    pub sha: &'a str,
    pub phase: Phase,
    /// What tells this status from others on the commit, e.g. `deployhook/website/0`.
    pub context: &'a str,
    /// Free text, possibly written by a deploy command: untrusted, any length.
    pub description: &'a str,
    /// The page that shows the deploy, when there is one.
    pub target_url: Option<&'a str>,
}

/// A GitHub deployment to create for a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment<'a> {
    /// `owner/name`.
    pub repository: &'a str,
    pub sha: &'a str,
    pub environment: &'a str,
    pub description: &'a str,
}

/// A status to add to a GitHub deployment (the `id` of `deployment_request`'s answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentStatus<'a> {
    /// `owner/name`.
    pub repository: &'a str,
    pub deployment_id: u64,
    pub phase: Phase,
    pub description: &'a str,
    /// The deploy's log, when there is a page for it.
    pub log_url: Option<&'a str>,
    pub environment: &'a str,
}

/// A request to send: always `POST`, with a JSON body (the headers say so).
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// `Debug` prints the credential headers' names but not their values, so a request can be
/// logged whole.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = name.eq_ignore_ascii_case("authorization")
                    || name.eq_ignore_ascii_case("private-token");
                (name.as_str(), if secret { "<redacted>" } else { value })
            })
            .collect();
        f.debug_struct("Request")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

/// A value that cannot be put in a request's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not `owner/name` (GitLab: a project path or id), or with a segment that is empty,
    /// `.` or `..`. Those are refused rather than encoded: `%2E%2E` is still `..` to a URL
    /// parser that follows the WHATWG URL standard, anywhere between here and the forge.
    #[error(
        "repository {0:?} cannot be named in a request: it must be owner/name (GitLab: the project's path), with no empty, `.` or `..` part"
    )]
    Repository(String),
    /// Not 40 or 64 hex digits.
    #[error("{0:?} is not a commit id (40 or 64 hex digits)")]
    Sha(String),
}

/// The API of the forge's public service, for a hook that names none; `None` for forges
/// that are only self-hosted.
pub fn default_api_url(kind: ApiKind) -> Option<&'static str> {
    match kind {
        ApiKind::Github => Some("https://api.github.com"),
        ApiKind::Gitlab => Some("https://gitlab.com/api/v4"),
        ApiKind::BitbucketCloud => Some("https://api.bitbucket.org/2.0"),
        ApiKind::Gitea | ApiKind::BitbucketDataCenter => None,
    }
}

/// The request that sets commit status `s` on the forge whose API is at `api_url` (a
/// trailing `/` or not; GitLab's ends in `/api/v4`, Gitea's in `/api/v1`, Bitbucket Data
/// Center's is the server's base URL).
pub fn status_request(
    kind: ApiKind,
    api_url: &str,
    token: &str,
    s: &Status,
) -> Result<Request, RequestError> {
    let api = api_url.trim_end_matches('/');
    let sha = commit(s.sha)?;
    let (url, body) = match kind {
        ApiKind::Github => github_status(api, s, sha)?,
        ApiKind::Gitlab => gitlab_status(api, s, sha)?,
        ApiKind::Gitea => gitea_status(api, s, sha)?,
        ApiKind::BitbucketCloud => bitbucket_cloud_status(api, s, sha)?,
        ApiKind::BitbucketDataCenter => bitbucket_dc_status(api, s, sha)?,
    };
    Ok(request(kind, token, url, &body))
}

/// GitHub REST API "Create a commit status" (`POST /repos/{owner}/{repo}/statuses/{sha}`,
/// API version 2022-11-28); its body is checked against GitHub's OpenAPI description in
/// the tests. GitHub has four states: a deploy that is queued or running is `pending`, and
/// one that could not run or was cancelled is `error` (not `failure`: the commit did not
/// fail).
fn github_status(api: &str, s: &Status, sha: &str) -> Result<(String, Value), RequestError> {
    repos_status(
        api,
        s,
        sha,
        &cut(&one_line(s.description), GITHUB_DESCRIPTION_MAX, chars),
        // The context is the status's identity (a later status with the same context
        // replaces it): kept unique when cut.
        &cut_unique(s.context, GITHUB_CONTEXT_MAX, chars),
    )
}

/// `POST {api}/repos/{owner}/{repo}/statuses/{sha}` with `{state, description, context,
/// target_url?}`, which GitHub and Gitea (whose API follows GitHub's) share, state names
/// included: a deploy queued or running is `pending`, one that could not run or was
/// cancelled `error` (not `failure`: the commit did not fail).
fn repos_status(
    api: &str,
    s: &Status,
    sha: &str,
    description: &str,
    context: &str,
) -> Result<(String, Value), RequestError> {
    let (owner, name) = owner_name(s.repository)?;
    let state = match s.phase {
        Phase::Queued | Phase::Running => "pending",
        Phase::Succeeded => "success",
        Phase::Failed => "failure",
        Phase::Error | Phase::Cancelled => "error",
    };
    let mut body = json!({
        "state": state,
        "description": description,
        "context": context,
    });
    if let Some(url) = s.target_url {
        body["target_url"] = json!(url);
    }
    let url = format!(
        "{api}/repos/{}/{}/statuses/{}",
        segment(owner),
        segment(name),
        segment(sha)
    );
    Ok((url, body))
}

/// GitLab REST API, Commits API "Set the pipeline status of a commit"
/// (`POST /projects/:id/statuses/:sha`), the project named by its URL-encoded path
/// (REST API "Namespaced paths": `group%2Fsub%2Fproject`). States: `pending`, `running`,
/// `success`, `failed`, `canceled`; a deploy that could not run is `failed`, GitLab having
/// no separate error state. The context goes in `name` (GitLab's older alias `context`
/// means the same).
fn gitlab_status(api: &str, s: &Status, sha: &str) -> Result<(String, Value), RequestError> {
    let project = gitlab_project(s.repository)?;
    let state = match s.phase {
        Phase::Queued => "pending",
        Phase::Running => "running",
        Phase::Succeeded => "success",
        Phase::Failed | Phase::Error => "failed",
        Phase::Cancelled => "canceled",
    };
    let mut body = json!({
        "state": state,
        "name": s.context,
        "description": cut(&one_line(s.description), GITLAB_DESCRIPTION_MAX, chars),
    });
    if let Some(url) = s
        .target_url
        .filter(|u| chars_in(u) <= GITLAB_TARGET_URL_MAX)
    {
        body["target_url"] = json!(url);
    }
    let url = format!("{api}/projects/{project}/statuses/{}", segment(sha));
    Ok((url, body))
}

/// Gitea's API (swagger operation `repoCreateStatus`, `POST /repos/{owner}/{repo}/statuses/{sha}`,
/// body `CreateStatusOption`), which Forgejo keeps. `CommitStatusState` has `pending`,
/// `success`, `error`, `failure` and `warning`: as on GitHub, whose API Gitea's follows, a
/// cancelled deploy is `error`, since `failure` would blame the commit. Gitea documents no
/// length limits (its columns are `TEXT`).
fn gitea_status(api: &str, s: &Status, sha: &str) -> Result<(String, Value), RequestError> {
    repos_status(api, s, sha, &one_line(s.description), s.context)
}

/// Bitbucket Cloud REST API, Commit statuses "Create a build status for a commit"
/// (`POST /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`): a
/// status with the same `key` is overwritten. States: `INPROGRESS`, `SUCCESSFUL`,
/// `FAILED`, `STOPPED`. Bitbucket validates `url` (400 "Enter a valid URL") and every
/// example has one, so a status without a page of its own links to the commit's page on
/// bitbucket.org. The key holds at most 40 characters: a longer context becomes its
/// beginning and a hash of the whole, and `name` shows it in full.
fn bitbucket_cloud_status(
    api: &str,
    s: &Status,
    sha: &str,
) -> Result<(String, Value), RequestError> {
    let (workspace, slug) = owner_name(s.repository)?;
    let state = match s.phase {
        Phase::Queued | Phase::Running => "INPROGRESS",
        Phase::Succeeded => "SUCCESSFUL",
        Phase::Failed | Phase::Error => "FAILED",
        Phase::Cancelled => "STOPPED",
    };
    let (workspace, slug, sha) = (segment(workspace), segment(slug), segment(sha));
    let link = match s.target_url {
        Some(url) => url.to_owned(),
        None => format!("{BITBUCKET_CLOUD_WEB}/{workspace}/{slug}/commits/{sha}"),
    };
    let body = json!({
        "key": cut_unique(s.context, BITBUCKET_CLOUD_KEY_MAX, chars),
        "state": state,
        "name": s.context,
        "url": link,
        "description": one_line(s.description),
    });
    let url = format!("{api}/repositories/{workspace}/{slug}/commit/{sha}/statuses/build");
    Ok((url, body))
}

/// Bitbucket Data Center REST API, Builds and Deployments "Store a build status"
/// (`POST /rest/api/latest/projects/{projectKey}/repos/{repositorySlug}/commits/{commitId}/builds`,
/// Bitbucket 7.14 and later), as the how-to "Updating build status for commits" describes
/// it: `key`, `state` and `url` are required, every field holds at most 255 characters and
/// `url` 450. States: `INPROGRESS`, `SUCCESSFUL`, `FAILED`, `CANCELLED` (and `UNKNOWN`,
/// unused). Without a page of its own (or with one whose URL is too long) a status links
/// to the commit's page on the same server.
fn bitbucket_dc_status(api: &str, s: &Status, sha: &str) -> Result<(String, Value), RequestError> {
    let (project, slug) = owner_name(s.repository)?;
    let state = match s.phase {
        Phase::Queued | Phase::Running => "INPROGRESS",
        Phase::Succeeded => "SUCCESSFUL",
        Phase::Failed | Phase::Error => "FAILED",
        Phase::Cancelled => "CANCELLED",
    };
    let (project, slug, sha) = (segment(project), segment(slug), segment(sha));
    let link = match s.target_url {
        Some(url) if utf16_in(url) <= BITBUCKET_DC_URL_MAX => url.to_owned(),
        _ => format!("{api}/projects/{project}/repos/{slug}/commits/{sha}"),
    };
    let body = json!({
        "key": cut_unique(s.context, BITBUCKET_DC_FIELD_MAX, utf16),
        "state": state,
        "url": link,
        "name": cut(s.context, BITBUCKET_DC_FIELD_MAX, utf16),
        "description": cut(&one_line(s.description), BITBUCKET_DC_FIELD_MAX, utf16),
    });
    let url = format!("{api}/rest/api/latest/projects/{project}/repos/{slug}/commits/{sha}/builds");
    Ok((url, body))
}

/// GitHub REST API "Create a deployment" (`POST /repos/{owner}/{repo}/deployments`) for
/// exactly `d.sha`. `required_contexts` is empty because GitHub would otherwise refuse
/// (409) while any status on the commit is not `success`, deployhook's own pending one
/// included; `auto_merge` is off because GitHub would otherwise merge the default branch
/// into the ref first. The deployment's `id` is in the answer: `deployment_id`.
pub fn deployment_request(
    api_url: &str,
    token: &str,
    d: &Deployment,
) -> Result<Request, RequestError> {
    let api = api_url.trim_end_matches('/');
    let (owner, name) = owner_name(d.repository)?;
    let sha = commit(d.sha)?;
    let body = json!({
        "ref": sha,
        "task": "deploy",
        "auto_merge": false,
        "required_contexts": [],
        "environment": d.environment,
        // GitHub documents no limit here; its statuses' limit keeps this one safe.
        "description": cut(&one_line(d.description), GITHUB_DESCRIPTION_MAX, chars),
    });
    let url = format!(
        "{api}/repos/{}/{}/deployments",
        segment(owner),
        segment(name)
    );
    Ok(request(ApiKind::Github, token, url, &body))
}

/// GitHub REST API "Create a deployment status"
/// (`POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses`). States: `queued`,
/// `in_progress`, `success`, `failure`, `error`; a cancelled deploy is `error`, not
/// `inactive`: GitHub sets `inactive` on deployments that succeeded and were since
/// replaced (`auto_inactive`), and shows a transient one as "destroyed", neither of which a
/// deploy that never finished is. `log_url` rather than the older `target_url`, which
/// GitHub sets to the same value.
pub fn deployment_status_request(
    api_url: &str,
    token: &str,
    d: &DeploymentStatus,
) -> Result<Request, RequestError> {
    let api = api_url.trim_end_matches('/');
    let (owner, name) = owner_name(d.repository)?;
    let state = match d.phase {
        Phase::Queued => "queued",
        Phase::Running => "in_progress",
        Phase::Succeeded => "success",
        Phase::Failed => "failure",
        Phase::Error | Phase::Cancelled => "error",
    };
    let mut body = json!({
        "state": state,
        "description": cut(&one_line(d.description), GITHUB_DESCRIPTION_MAX, chars),
        "environment": d.environment,
    });
    if let Some(url) = d.log_url {
        body["log_url"] = json!(url);
    }
    let url = format!(
        "{api}/repos/{}/{}/deployments/{}/statuses",
        segment(owner),
        segment(name),
        d.deployment_id
    );
    Ok(request(ApiKind::Github, token, url, &body))
}

/// The `id` of the deployment GitHub created (its 201 answer to `deployment_request`);
/// `None` for any other answer (a 202 says GitHub merged instead, and has no `id`).
pub fn deployment_id(answer_body: &str) -> Option<u64> {
    serde_json::from_str::<Value>(answer_body)
        .ok()?
        .get("id")?
        .as_u64()
}

/// Whether a 4xx answer means the status is already there, so the report is done rather
/// than failed. Only GitLab answers so: its statuses are state machines, and posting the
/// state a pending or running status already has is refused with 400 "Cannot transition
/// status via :run from :running (Reason(s): ...)". Also done: `pending` posted after the
/// status went on to `running` (a retried Queued report overtaken by the Running one).
/// Any other refused transition is a real error.
pub fn already_done(kind: ApiKind, http_status: u16, body: &str) -> bool {
    if kind != ApiKind::Gitlab || http_status != 400 {
        return false;
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let Some(rest) = message
        .find("Cannot transition status via :")
        .map(|at| &message[at + "Cannot transition status via :".len()..])
    else {
        return false;
    };
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let event = word(rest);
    let Some(from) = rest[event.len()..].strip_prefix(" from :").map(word) else {
        return false;
    };
    // GitLab's commit status events and the state each one leads to.
    let target = match event.as_str() {
        "enqueue" => "pending",
        "run" => "running",
        "success" | "succeed" => "success",
        "drop" => "failed",
        "cancel" => "canceled",
        "skip" => "skipped",
        _ => return false,
    };
    from == target || (target == "pending" && from == "running")
}

/// A short, single-line message from a forge's error answer: GitHub's `message` with its
/// `errors`, GitLab's `message` (a text, or field errors) or `error`, Gitea's `message`,
/// Bitbucket Cloud's `error.message` and Data Center's `errors[].message`; the body itself
/// when it holds none of those. Control characters become spaces, runs of white space
/// one, and the result is cut to `ERROR_MESSAGE_MAX` characters.
pub fn error_message(kind: ApiKind, body: &str) -> String {
    let found = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| match kind {
            ApiKind::Github => github_error(&v),
            ApiKind::Gitlab => text_of(&v["message"]).or_else(|| text_of(&v["error"])),
            ApiKind::Gitea => text_of(&v["message"]),
            ApiKind::BitbucketCloud | ApiKind::BitbucketDataCenter => bitbucket_error(&v),
        })
        .filter(|m| !m.trim().is_empty());
    let text = found.as_deref().unwrap_or(body);
    let line = one_line(text);
    let words: Vec<&str> = line.split_whitespace().collect();
    cut(&words.join(" "), ERROR_MESSAGE_MAX, chars)
}

/// `{"message": "Validation Failed", "errors": [{"field": ..., "code": ..., "message": ...}]}`:
/// the message, then each error's message (or its field and code).
fn github_error(v: &Value) -> Option<String> {
    let message = v["message"].as_str();
    let errors: Vec<String> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| match e {
            Value::String(s) => Some(s.clone()),
            Value::Object(_) => e["message"].as_str().map(str::to_owned).or_else(|| {
                let code = e["code"].as_str()?;
                Some(match e["field"].as_str() {
                    Some(field) => format!("{field}: {code}"),
                    None => code.to_owned(),
                })
            }),
            _ => None,
        })
        .collect();
    match (message, errors.is_empty()) {
        (Some(m), true) => Some(m.to_owned()),
        (Some(m), false) => Some(format!("{m}: {}", errors.join("; "))),
        (None, false) => Some(errors.join("; ")),
        (None, true) => None,
    }
}

/// Cloud: `{"type": "error", "error": {"message": ..., "detail": ...}}`; Data Center:
/// `{"errors": [{"message": ...}]}`.
fn bitbucket_error(v: &Value) -> Option<String> {
    if let Some(message) = v["error"]["message"].as_str() {
        return Some(match v["error"]["detail"].as_str() {
            Some(detail) if !detail.is_empty() => format!("{message}: {detail}"),
            _ => message.to_owned(),
        });
    }
    let messages: Vec<&str> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// A text, or field errors as GitLab gives them (`{"name": ["is too long"]}`) as
/// `name is too long`.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(field, problems)| {
                    let problems: Vec<&str> = match problems {
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        Value::String(s) => vec![s.as_str()],
                        _ => Vec::new(),
                    };
                    format!("{field} {}", problems.join(", "))
                        .trim_end()
                        .to_owned()
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

fn request(kind: ApiKind, token: &str, url: String, body: &Value) -> Request {
    let mut headers: Vec<(&str, String)> = match kind {
        ApiKind::Github => vec![
            ("Authorization", format!("Bearer {token}")),
            ("Accept", "application/vnd.github+json".to_owned()),
            ("X-GitHub-Api-Version", GITHUB_API_VERSION.to_owned()),
        ],
        ApiKind::Gitlab => vec![
            ("PRIVATE-TOKEN", token.to_owned()),
            ("Accept", "application/json".to_owned()),
        ],
        ApiKind::Gitea => vec![
            ("Authorization", format!("token {token}")),
            ("Accept", "application/json".to_owned()),
        ],
        ApiKind::BitbucketCloud | ApiKind::BitbucketDataCenter => vec![
            ("Authorization", format!("Bearer {token}")),
            ("Accept", "application/json".to_owned()),
        ],
    };
    headers.push(("Content-Type", "application/json".to_owned()));
    Request {
        url,
        headers: headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        body: body.to_string().into_bytes(),
    }
}

/// `s` as one path segment: RFC 3986's unreserved characters stay, every other byte
/// becomes `%XX`, so no `/`, `?`, `#` or `%` in it can change the URL's shape.
fn segment(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes()
        .fold(String::with_capacity(s.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
}

/// Whether `s` can be a path segment of its own: not empty, and not a dot segment.
fn plain(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".."
}

/// `owner/name` (Bitbucket Data Center: `PROJECTKEY/slug`) as its two parts.
fn owner_name(repository: &str) -> Result<(&str, &str), RequestError> {
    match repository.split_once('/') {
        Some((owner, name)) if plain(owner) && plain(name) && !name.contains('/') => {
            Ok((owner, name))
        }
        _ => Err(RequestError::Repository(repository.to_owned())),
    }
}

/// A GitLab project's path with namespace (or its id), encoded as the single segment
/// GitLab takes (`/` as `%2F`).
fn gitlab_project(repository: &str) -> Result<String, RequestError> {
    if repository.split('/').all(plain) {
        Ok(segment(repository))
    } else {
        Err(RequestError::Repository(repository.to_owned()))
    }
}

fn commit(sha: &str) -> Result<&str, RequestError> {
    if matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(RequestError::Sha(sha.to_owned()))
    }
}

/// `s` with every control character (newlines and tabs included) made a space.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A length measure: how many units a character counts for.
type Units = fn(char) -> usize;

/// Characters (Unicode scalar values), as Ruby and Python count a string's length.
fn chars(_: char) -> usize {
    1
}

/// UTF-16 code units, as Java counts a string's length.
fn utf16(c: char) -> usize {
    c.len_utf16()
}

fn chars_in(s: &str) -> usize {
    s.chars().count()
}

fn utf16_in(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The longest beginning of `s` that counts at most `max` units.
fn prefix(s: &str, max: usize, units: Units) -> &str {
    let mut used = 0;
    for (at, c) in s.char_indices() {
        used += units(c);
        if used > max {
            return &s[..at];
        }
    }
    s
}

/// `s`, or when it counts more than `max` units its beginning and "…", together at most
/// `max` units.
fn cut(s: &str, max: usize, units: Units) -> String {
    let ellipsis = '…';
    if s.chars().map(units).sum::<usize>() <= max {
        s.to_owned()
    } else if max < units(ellipsis) {
        String::new()
    } else {
        format!("{}{ellipsis}", prefix(s, max - units(ellipsis), units))
    }
}

/// `s`, or when it counts more than `max` units its beginning, `~` and a hash of the whole,
/// together at most `max` units: for identifiers, which must stay distinct when cut.
fn cut_unique(s: &str, max: usize, units: Units) -> String {
    if s.chars().map(units).sum::<usize>() <= max {
        return s.to_owned();
    }
    let mut hash = to_hex(&Sha256::digest(s.as_bytes()));
    hash.truncate(SHORT_HASH_HEX);
    let room = max.saturating_sub(SHORT_HASH_HEX + 1);
    format!("{}~{hash}", prefix(s, room, units))
}
