//! Telling people how a deploy went: commit statuses on the hook's forge (and GitHub
//! deployments), chat messages and signed outgoing webhooks.
//!
//! Nothing is sent from the deploy path. When a job is queued, [`subscriptions`] says
//! which targets hear about which of its events; the store then writes an outbox row in
//! the transaction of each such event, and [`Notifier`] sends the rows on its own task:
//! at least once, in order per target and repository, retried with backoff, a commit
//! status not yet sent replaced by a newer one of the same job.
//!
//! - `forge_api`: the commit-status requests of each forge (pure).
//! - `message`: the chat and webhook bodies (pure), escaped per target.
//! - `retry`: what an answer means, and the backoff schedule.
//! - `deliver`: one attempt at one row, through `http_client`.
//! - `sender`: the task that empties the outbox.

mod deliver;
pub mod forge_api;
pub mod message;
mod retry;
mod sender;

use std::time::SystemTime;

pub use sender::Notifier;

use crate::config::{Config, Hook, Rule};
use crate::store::Subscription;

/// Who hears about the events of a job of `rule` of `hook`: the hook's commit status
/// (and GitHub deployment), and the `[[notify]]` targets the hook and the rule name.
pub fn subscriptions(config: &Config, hook: &Hook, rule: &Rule) -> Vec<Subscription> {
    let mut subs = Vec::new();
    if let Some(s) = &hook.status {
        subs.push(Subscription {
            target: deliver::STATUS.to_owned(),
            on: s.on.clone(),
            latest_only: true,
        });
        if s.deployment_environment.is_some() {
            subs.push(Subscription {
                target: deliver::DEPLOYMENT.to_owned(),
                on: s.on.clone(),
                latest_only: true,
            });
        }
    }
    for name in hook.notify.iter().chain(&rule.notify) {
        let target = format!("{}{name}", deliver::NOTIFY);
        if let Some(t) = config.notify_target(name)
            && !subs.iter().any(|s| s.target == target)
        {
            subs.push(Subscription {
                target,
                on: t.on.clone(),
                latest_only: false,
            });
        }
    }
    subs
}

/// What `deployhook notify test` saw.
#[derive(Debug)]
pub struct TestAnswer {
    pub status: u16,
    pub body: String,
    /// Whether the daemon would count it as delivered.
    pub delivered: bool,
}

/// Sends a test message to the `[[notify]]` target `name` now and returns its answer.
pub fn send_test(config: &Config, name: &str) -> Result<TestAnswer, String> {
    let t = config.notify_target(name).ok_or_else(|| {
        let names: Vec<&str> = config.notify.iter().map(|t| t.name.as_str()).collect();
        if names.is_empty() {
            format!("no [[notify]] target is named {name:?}: the config has none")
        } else {
            format!(
                "no [[notify]] target is named {name:?}; the config has {}",
                names.join(", ")
            )
        }
    })?;
    let client = deliver::client_for(&t.sending)?;
    let at = SystemTime::now();
    let stamp = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let notice = message::Notice {
        hook: "test",
        rule: "0",
        repository: "deployhook/test",
        git_ref: "refs/heads/main",
        sha: "0000000000000000000000000000000000000000",
        pusher: Some("deployhook notify test"),
        kind: crate::store::EventKind::Succeeded,
        reason: "a test message: no deploy ran",
        summary: None,
        duration: None,
        link: config.server.public_url.as_deref(),
        job: 0,
        attempt: 1,
        at,
        test: true,
    };
    let answer = deliver::raw_send(&client, t, &notice, &format!("msg_test_{stamp}"))
        .map_err(|e| format!("{name}: no answer: {e}"))?;
    Ok(TestAnswer {
        status: answer.status,
        delivered: matches!(retry::classify(None, &answer, at), retry::Verdict::Sent),
        body: answer.body,
    })
}
