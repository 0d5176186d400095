//! The `/api` JSON: one type per thing the API shows, made from the store's values. The
//! field names here are a public interface (the CLI, scripts and the dashboard read
//! them); the store's types can change without changing these.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::store::{DeliveryOutcome, DeliveryRecord, Job, JobEvent, Notification, Origin};

/// Unix seconds.
pub(super) fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds with milliseconds.
#[expect(
    clippy::cast_precision_loss,
    reason = "milliseconds since 1970 fit f64's 52-bit mantissa for the next 140,000 years"
)]
fn secs_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

/// A job in `/api/jobs` and `/api/jobs/{id}`.
#[derive(Debug, Serialize)]
pub struct JobView<'a> {
    pub id: i64,
    pub hook: &'a str,
    /// The rule's index when the job was queued.
    pub rule: usize,
    /// The rule's name, or its index: what the job runs with.
    pub rule_key: &'a str,
    pub state: &'static str,
    pub queue: &'static str,
    pub forge: &'static str,
    pub repository: &'a str,
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    pub before: &'a str,
    pub sha: &'a str,
    pub pusher: Option<&'a str>,
    pub delivery: Option<&'a str>,
    pub attempt: u32,
    /// Queued by an operator (`deployhook deploy`), not by a push.
    pub manual: bool,
    /// A manual deploy with `--force`: the commit was not checked against the ref.
    pub force: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why it ended: exit status, error, the job that superseded it.
    pub detail: Option<&'a str>,
    /// The daemon process that runs (or ran) it.
    pub owner: Option<&'a str>,
    pub cancel_requested: bool,
    /// The line its commands left in `$DEPLOYHOOK_SUMMARY`.
    pub summary: Option<&'a str>,
    /// The rule's `lock`, which it holds while it runs.
    pub lock: Option<&'a str>,
    /// Queued behind a lock: "lock prod-web, held by job 12" (in `/api/jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Its history, oldest first (in `/api/jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView<'a>>>,
    /// Its commit statuses and notifications, oldest first (in `/api/jobs/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Vec<NotificationView<'a>>>,
}

impl<'a> JobView<'a> {
    pub fn new(j: &'a Job) -> JobView<'a> {
        JobView {
            id: j.id.0,
            hook: &j.hook,
            rule: j.rule,
            rule_key: &j.rule_key,
            state: j.state.as_str(),
            queue: j.queue.as_str(),
            forge: j.forge.as_str(),
            repository: &j.repository,
            git_ref: j.git_ref.as_str(),
            before: j.before.as_str(),
            sha: j.sha.as_str(),
            pusher: j.pusher.as_deref(),
            delivery: j.delivery.as_ref().map(crate::event::DeliveryId::as_str),
            attempt: j.attempt,
            manual: matches!(j.origin, Origin::Manual { .. }),
            force: matches!(j.origin, Origin::Manual { force: true }),
            created_at: secs(j.created_at),
            started_at: j.started_at.map(secs),
            finished_at: j.finished_at.map(secs),
            detail: j.detail.as_deref(),
            owner: j.owner.as_ref().map(crate::store::InstanceId::as_str),
            cancel_requested: j.cancel_requested,
            summary: j.summary.as_deref(),
            lock: j.lock.as_deref(),
            waiting_for: None,
            events: None,
            notifications: None,
        }
    }

    pub fn with_notifications(mut self, rows: &'a [Notification]) -> JobView<'a> {
        self.notifications = Some(rows.iter().map(NotificationView::new).collect());
        self
    }

    pub fn with_events(mut self, events: &'a [JobEvent]) -> JobView<'a> {
        self.events = Some(events.iter().map(EventView::new).collect());
        self
    }
}

/// One job event in `/api/events` (and as an SSE `data:` line) and in a job's history.
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    /// Where this event is in the stream: pass it as `after` (or `Last-Event-ID`).
    pub cursor: i64,
    pub job: i64,
    pub hook: &'a str,
    /// queued, superseded, started, succeeded, failed, timed_out, cancelled,
    /// interrupted or requeued.
    pub kind: &'static str,
    /// Unix seconds, with milliseconds.
    pub at: f64,
    pub reason: &'a str,
}

impl<'a> EventView<'a> {
    pub fn new(e: &'a JobEvent) -> EventView<'a> {
        EventView {
            cursor: e.cursor.0,
            job: e.job.0,
            hook: &e.hook,
            kind: e.kind.as_str(),
            at: secs_ms(e.at),
            reason: &e.reason,
        }
    }
}

/// One commit status or notification of a job, and how sending it went. Never the
/// target's URL or token: only its name.
#[derive(Debug, Serialize)]
pub struct NotificationView<'a> {
    /// `status`, `deployment`, or `notify:<name>`.
    pub target: &'a str,
    /// The job event it tells of.
    pub event: &'static str,
    /// pending, sent, failed, or replaced (a newer state went instead).
    pub state: &'static str,
    pub attempts: u32,
    pub last_error: Option<&'a str>,
    /// Unix seconds, with milliseconds.
    pub created_at: f64,
    pub done_at: Option<f64>,
    /// While pending: when it is tried next.
    pub next_at: Option<f64>,
}

impl<'a> NotificationView<'a> {
    pub fn new(n: &'a Notification) -> NotificationView<'a> {
        NotificationView {
            target: &n.target,
            event: n.kind.as_str(),
            state: n.state.as_str(),
            attempts: n.attempts,
            last_error: n.last_error.as_deref(),
            created_at: secs_ms(n.created_at),
            done_at: n.done_at.map(secs_ms),
            next_at: (n.state == crate::store::OutboxState::Pending).then(|| secs_ms(n.next_at)),
        }
    }
}

/// One delivery in `/api/deliveries`.
#[derive(Debug, Serialize)]
pub struct DeliveryView<'a> {
    pub seq: i64,
    pub hook: &'a str,
    pub delivery: Option<&'a str>,
    pub forge: &'static str,
    pub event: Option<&'a str>,
    #[serde(rename = "ref")]
    pub git_ref: Option<&'a str>,
    pub sha: Option<&'a str>,
    /// Unix seconds, with milliseconds.
    pub received_at: f64,
    /// queued, duplicate, ignored, pong or bad_payload.
    pub outcome: &'static str,
    /// The jobs it queued (queued), or the first job of the delivery it repeats.
    pub jobs: Vec<i64>,
    pub reason: &'a str,
}

impl<'a> DeliveryView<'a> {
    pub fn new(r: &'a DeliveryRecord) -> DeliveryView<'a> {
        let d = &r.delivery;
        DeliveryView {
            seq: r.seq,
            hook: &d.hook,
            delivery: d.delivery.as_ref().map(crate::event::DeliveryId::as_str),
            forge: d.forge.as_str(),
            event: d.event.as_deref(),
            git_ref: d.git_ref.as_ref().map(crate::event::RefName::as_str),
            sha: d.after.as_ref().map(crate::event::Sha::as_str),
            received_at: secs_ms(r.received_at),
            outcome: r.outcome.as_str(),
            jobs: match &r.outcome {
                DeliveryOutcome::Queued(ids) => ids.iter().map(|j| j.0).collect(),
                DeliveryOutcome::Duplicate(first) => first.iter().map(|j| j.0).collect(),
                DeliveryOutcome::Not(_) => Vec::new(),
            },
            reason: &r.reason,
        }
    }
}
