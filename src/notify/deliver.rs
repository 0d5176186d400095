//! One attempt at one outbox row: which configured target it is for, what to send
//! there (a commit status, a GitHub deployment and its status, a chat message, a signed
//! webhook), and the request itself. Blocking: the sender runs it off the async threads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::forge_api::{self, ApiKind, Phase};
use super::message::{self, Body, Notice};
use super::retry::{self, Verdict};
use crate::config::{Config, Hook, NotifyTarget, StatusReport, TargetKind};
use crate::http_client::{Answer, Client, Method};
use crate::store::{EventKind, Job, Outgoing};

/// The outbox's name for a hook's commit statuses.
pub const STATUS: &str = "status";
/// The outbox's name for a hook's GitHub deployment statuses.
pub const DEPLOYMENT: &str = "deployment";
/// The outbox's names for `[[notify]]` targets start so.
pub const NOTIFY: &str = "notify:";

/// A row's target, as configured now.
pub enum Target<'c> {
    Status(&'c Hook, &'c StatusReport),
    Deployment(&'c StatusReport),
    Notify(&'c NotifyTarget),
}

impl<'c> Target<'c> {
    /// The target named `name` for a job of hook `hook`, if it is still configured.
    pub fn find(config: &'c Config, hook: &str, name: &str) -> Option<Target<'c>> {
        if let Some(n) = name.strip_prefix(NOTIFY) {
            return config.notify_target(n).map(Target::Notify);
        }
        let h = config.hook(hook)?;
        let s = h.status.as_ref()?;
        match name {
            STATUS => Some(Target::Status(h, s)),
            DEPLOYMENT if s.deployment_environment.is_some() => Some(Target::Deployment(s)),
            _ => None,
        }
    }

    /// Its kind, for metrics: the forge API (`github`...) or the chat (`slack`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Status(_, s) | Target::Deployment(s) => api_name(s.api),
            Target::Notify(t) => t.kind.as_str(),
        }
    }

    pub fn sending(&self) -> &crate::config::Sending {
        match self {
            Target::Status(_, s) | Target::Deployment(s) => &s.sending,
            Target::Notify(t) => &t.sending,
        }
    }

    fn api(&self) -> Option<ApiKind> {
        match self {
            Target::Status(_, s) | Target::Deployment(s) => Some(s.api),
            Target::Notify(_) => None,
        }
    }
}

fn api_name(api: ApiKind) -> &'static str {
    match api {
        ApiKind::Github => "github",
        ApiKind::Gitlab => "gitlab",
        ApiKind::Gitea => "gitea",
        ApiKind::BitbucketCloud => "bitbucket",
        ApiKind::BitbucketDataCenter => "bitbucket-datacenter",
    }
}

/// How an attempt went, with what to keep for the job's next row to the target.
pub struct Outcome {
    pub verdict: Verdict,
    pub memo: Option<String>,
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            memo: None,
        }
    }
}

/// Sends `item` (an event of `job`) to `target`. `link` is the page that shows the job.
pub fn attempt(
    client: &Client,
    target: &Target<'_>,
    item: &Outgoing,
    job: &Job,
    link: Option<&str>,
) -> Outcome {
    let rule = job.rule_key.clone();
    let notice = Notice {
        hook: &job.hook,
        rule: &rule,
        repository: &job.repository,
        git_ref: job.git_ref.as_str(),
        sha: job.sha.as_str(),
        pusher: job.pusher.as_deref(),
        kind: item.event.kind,
        reason: &item.event.reason,
        summary: job.summary.as_deref(),
        duration: ran_for(job, item),
        link,
        job: job.id.0,
        attempt: job.attempt,
        at: item.event.at,
        test: false,
    };
    let id = format!("msg_{}_{}", job.id.0, item.id.0);
    match target {
        Target::Notify(t) => send_notice(client, t, &notice, &id).into(),
        Target::Status(hook, s) => {
            let context = context(s, hook, &rule);
            let description = description(&notice);
            let status = forge_api::Status {
                repository: &job.repository,
                sha: job.sha.as_str(),
                phase: phase(item.event.kind),
                context: &context,
                description: &description,
                target_url: link,
            };
            match forge_api::status_request(s.api, &s.api_url, &token(s), &status) {
                Ok(req) => post(client, target.api(), &req.url, &req.headers, &req.body).into(),
                Err(e) => Verdict::Failed {
                    error: e.to_string(),
                }
                .into(),
            }
        }
        Target::Deployment(s) => deployment(client, s, item, &notice, link),
    }
}

/// A GitHub deployment's status; the deployment itself is made by the job's first row
/// and its id kept as the memo.
fn deployment(
    client: &Client,
    s: &StatusReport,
    item: &Outgoing,
    notice: &Notice<'_>,
    link: Option<&str>,
) -> Outcome {
    let environment = s.deployment_environment.as_deref().unwrap_or("production");
    let description = description(notice);
    let token = token(s);
    let failed = |e: forge_api::RequestError| {
        Outcome::from(Verdict::Failed {
            error: e.to_string(),
        })
    };
    let kept = item.memo.as_deref().and_then(|m| m.parse::<u64>().ok());
    let (id, made) = if let Some(id) = kept {
        (id, false)
    } else {
        let d = forge_api::Deployment {
            repository: notice.repository,
            sha: notice.sha,
            environment,
            description: &description,
        };
        let req = match forge_api::deployment_request(&s.api_url, &token, &d) {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        match client.post(&req.url, &req.headers, &req.body) {
            Ok(a) if a.status == 201 => match forge_api::deployment_id(&a.body) {
                Some(id) => (id, true),
                None => {
                    return Verdict::Failed {
                        error: "GitHub made the deployment but its answer has no id".into(),
                    }
                    .into();
                }
            },
            Ok(a) if (200..300).contains(&a.status) => {
                return Verdict::Failed {
                    error: format!(
                        "GitHub answered {} without making a deployment (it merged the default branch instead?)",
                        a.status
                    ),
                }
                .into();
            }
            Ok(a) => return retry::classify(Some(ApiKind::Github), &a, SystemTime::now()).into(),
            Err(e) => {
                return Verdict::Retry {
                    wait: None,
                    error: e.to_string(),
                }
                .into();
            }
        }
    };
    let st = forge_api::DeploymentStatus {
        repository: notice.repository,
        deployment_id: id,
        phase: phase(notice.kind),
        description: &description,
        log_url: link,
        environment,
    };
    let verdict = match forge_api::deployment_status_request(&s.api_url, &token, &st) {
        Ok(req) => post(
            client,
            Some(ApiKind::Github),
            &req.url,
            &req.headers,
            &req.body,
        ),
        Err(e) => return failed(e),
    };
    Outcome {
        verdict,
        memo: made.then(|| id.to_string()),
    }
}

/// Sends one message to a `[[notify]]` target; `id` is the message's stable id (the
/// webhook's `webhook-id`, Matrix's transaction id), the same on every retry.
pub fn send_notice(client: &Client, t: &NotifyTarget, n: &Notice<'_>, id: &str) -> Verdict {
    match raw_send(client, t, n, id) {
        Ok(a) => retry::classify(None, &a, SystemTime::now()),
        Err(e) => Verdict::Retry {
            wait: None,
            error: e.to_string(),
        },
    }
}

/// The request to a `[[notify]]` target and its answer, whatever it is.
pub fn raw_send(
    client: &Client,
    t: &NotifyTarget,
    n: &Notice<'_>,
    id: &str,
) -> Result<Answer, crate::http_client::ClientError> {
    let text = |s: &crate::secret::Secret| String::from_utf8_lossy(s.expose()).into_owned();
    let (method, url, body, mut headers) = match &t.kind {
        TargetKind::Slack { url } => (Method::Post, text(url), message::slack(n), Vec::new()),
        TargetKind::Discord { url } => (Method::Post, text(url), message::discord(n), Vec::new()),
        TargetKind::Teams { url } => (Method::Post, text(url), message::teams(n), Vec::new()),
        TargetKind::Ntfy { url, token } => (
            Method::Post,
            text(url),
            message::ntfy(n),
            token
                .iter()
                .map(|tk| ("Authorization".to_owned(), format!("Bearer {}", text(tk))))
                .collect(),
        ),
        TargetKind::Webhook { url, keys } => {
            let body = message::webhook(n, id);
            let keys: Vec<&[u8]> = keys.iter().map(crate::secret::Secret::expose).collect();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let signed = crate::sign::standard_webhooks_headers(&keys, id, now, &body.body);
            (Method::Post, text(url), body, signed)
        }
        TargetKind::Matrix {
            homeserver,
            room,
            token,
        } => (
            Method::Put,
            format!("{homeserver}{}", message::matrix_path(room, id)),
            message::matrix(n),
            vec![(
                "Authorization".to_owned(),
                format!("Bearer {}", text(token)),
            )],
        ),
    };
    let Body {
        content_type,
        headers: extra,
        body,
    } = body;
    headers.push(("Content-Type".to_owned(), content_type.to_owned()));
    headers.extend(extra);
    client.open(method, &url, &headers, Some(&body))?.read()
}

/// An HTTP client with a target's deadline and, if it names one, its own CA.
pub fn client_for(sending: &crate::config::Sending) -> Result<Client, String> {
    match &sending.ca_file {
        None => Ok(Client::new(sending.timeout)),
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            Client::with_ca(sending.timeout, &pem)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))
        }
    }
}

fn post(
    client: &Client,
    api: Option<ApiKind>,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Verdict {
    match client.post(url, headers, body) {
        Ok(a) => retry::classify(api, &a, SystemTime::now()),
        Err(e) => Verdict::Retry {
            wait: None,
            error: e.to_string(),
        },
    }
}

fn token(s: &StatusReport) -> String {
    String::from_utf8_lossy(s.token.expose()).into_owned()
}

/// `context` with `{hook}` and `{rule}` filled in.
fn context(s: &StatusReport, hook: &Hook, rule: &str) -> String {
    s.context
        .replace("{hook}", &hook.id)
        .replace("{rule}", rule)
}

/// How a job event shows on a forge.
pub fn phase(kind: EventKind) -> Phase {
    match kind {
        EventKind::Queued | EventKind::Requeued | EventKind::Held | EventKind::Released => {
            Phase::Queued
        }
        EventKind::Started => Phase::Running,
        EventKind::Succeeded => Phase::Succeeded,
        EventKind::Failed | EventKind::TimedOut => Phase::Failed,
        EventKind::Interrupted => Phase::Error,
        EventKind::Cancelled | EventKind::Superseded => Phase::Cancelled,
    }
}

/// A status's description: the commands' own summary when the job has ended with one,
/// else what happened in a few words.
fn description(n: &Notice<'_>) -> String {
    if n.kind != EventKind::Started
        && n.kind != EventKind::Queued
        && let Some(s) = n.summary
    {
        return s.to_owned();
    }
    let took = n
        .duration
        .map(|d| format!(" in {}", human(d)))
        .unwrap_or_default();
    match n.kind {
        EventKind::Queued | EventKind::Requeued | EventKind::Released => {
            format!("Queued as job {}", n.job)
        }
        EventKind::Held => format!("Held: {}", n.reason),
        EventKind::Started => format!("Deploying (job {})", n.job),
        EventKind::Succeeded => format!("Deployed{took}"),
        EventKind::Failed => format!("Deploy failed{took}: {}", n.reason),
        EventKind::TimedOut => format!("Deploy timed out: {}", n.reason),
        EventKind::Cancelled => format!("Deploy cancelled: {}", n.reason),
        EventKind::Superseded => format!("Not deployed: {}", n.reason),
        EventKind::Interrupted => format!("Deploy interrupted: {}", n.reason),
    }
}

/// `12.3s`, `4m05s`, `24h00m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// How long the job ran, for the event that ended it.
fn ran_for(job: &Job, item: &Outgoing) -> Option<Duration> {
    if matches!(item.event.kind, EventKind::Queued | EventKind::Started) {
        return None;
    }
    item.event.at.duration_since(job.started_at?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: EventKind) -> Notice<'static> {
        Notice {
            hook: "site",
            rule: "0",
            repository: "a/b",
            git_ref: "refs/heads/main",
            sha: "0123456789012345678901234567890123456789",
            pusher: None,
            kind,
            reason: "command 2 failed: exit status 1",
            summary: None,
            duration: Some(Duration::from_secs(75)),
            link: None,
            job: 7,
            attempt: 1,
            at: SystemTime::now(),
            test: false,
        }
    }

    #[test]
    fn every_event_has_a_phase_and_a_description() {
        for kind in EventKind::ALL {
            assert!(!description(&notice(kind)).is_empty());
        }
        let mut n = notice(EventKind::Failed);
        assert_eq!(
            description(&n),
            "Deploy failed in 1m15s: command 2 failed: exit status 1"
        );
        n.summary = Some("3 of 4 hosts updated");
        assert_eq!(description(&n), "3 of 4 hosts updated");
        n.kind = EventKind::Started;
        assert_eq!(
            description(&n),
            "Deploying (job 7)",
            "a summary is for the end"
        );
        assert_eq!(phase(EventKind::TimedOut), Phase::Failed);
        assert_eq!(phase(EventKind::Superseded), Phase::Cancelled);
    }
}
