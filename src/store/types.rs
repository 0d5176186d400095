//! The store's own values: what goes in (a job to queue, a delivery to record) and what
//! comes out (jobs, their events, delivery records). Every backend speaks these; the
//! `/api` JSON is made of other types, in `server`.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::event::{ChangedPaths, DeliveryId, Forge, PushEvent, RefName, Sha};

/// A job's id, as shown in responses and the jobs API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life. Only `Queued`, `Held` and `Running` are not final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    /// Waiting for its hook to be resumed (an operator paused it).
    Held,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// A newer push to the same hook and rule replaced it before it ran.
    Superseded,
    /// The daemon stopped (or died) while it ran.
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Held,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::TimedOut,
        JobState::Cancelled,
        JobState::Superseded,
        JobState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Held => "held",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed_out",
            JobState::Cancelled => "cancelled",
            JobState::Superseded => "superseded",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Held | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a rule's jobs queue up (the rule's `queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// A newer push replaces the rule's pending jobs.
    Supersede,
    /// Every push runs, in order.
    Fifo,
}

impl Queue {
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Supersede => "supersede",
            Queue::Fifo => "fifo",
        }
    }

    pub fn parse(s: &str) -> Option<Queue> {
        [Queue::Supersede, Queue::Fifo]
            .into_iter()
            .find(|q| q.as_str() == s)
    }
}

/// Who asked for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A verified push webhook: its commit must be on the pushed ref.
    Push,
    /// An operator, through `POST /api/hooks/{id}/deploy`. With `force`, the commit
    /// need not be reachable from the ref (a commit from another branch, by hand).
    Manual { force: bool },
}

/// A job to queue: one push, deployed with one rule of the hook.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The rule's index in its hook (as shown; it may move in a reload).
    pub rule: usize,
    /// What the rule is known by (its name, or its index): the supersede lane is the
    /// hook and this.
    pub rule_key: String,
    /// Jobs of the hook's other rules may run at the same time as this one (`match =
    /// "all"`); else one job of the hook runs at a time.
    pub per_rule: bool,
    /// Jobs holding the same lock (of any hook) never run at the same time.
    pub lock: Option<String>,
    /// Why it was queued, for its `queued` event, when not a plain push or deploy ("a
    /// rollback of site from 1a2b3c4 to 9f8e7d6").
    pub reason: Option<String>,
    pub queue: Queue,
    pub event: PushEvent,
    pub origin: Origin,
    /// Who is told about the job's events (its outbox rows are written with them).
    pub notify: Vec<Subscription>,
}

/// One target told about a job's events: a commit status, a chat, a webhook. The store
/// writes an outbox row for each event in `on`, in the transaction of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The sender's name for it (`status`, `notify:team-chat`).
    pub target: String,
    pub on: Vec<EventKind>,
    /// Only the latest state matters (a commit status): a newer row replaces one of the
    /// same job and target not yet sent.
    pub latest_only: bool,
}

/// One job as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub hook: String,
    /// The rule's index when the job was queued.
    pub rule: usize,
    /// The rule's name, or its index: how the worker finds the rule (see `NewJob`).
    pub rule_key: String,
    /// The files the push changed, as the forge listed them.
    pub paths: ChangedPaths,
    /// The lock it holds while it runs.
    pub lock: Option<String>,
    pub state: JobState,
    pub queue: Queue,
    pub forge: Forge,
    pub repository: String,
    pub git_ref: RefName,
    pub before: Sha,
    pub sha: Sha,
    pub pusher: Option<String>,
    pub delivery: Option<DeliveryId>,
    /// 2 and up for a job queued again after an interruption.
    pub attempt: u32,
    pub origin: Origin,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Why it ended: exit status, error, the job that superseded it.
    pub detail: Option<String>,
    /// The one line its commands left in `$DEPLOYHOOK_SUMMARY`, if any.
    pub summary: Option<String>,
    /// The process running it, while it runs (and after, who ran it).
    pub owner: Option<InstanceId>,
    /// An operator asked to cancel it while it ran; its owner stops it.
    pub cancel_requested: bool,
}

/// One daemon process, as the owner of the jobs it runs. Unique per process start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    /// `host:pid:start-time`: readable in `deployhook jobs`, and never the same for two
    /// processes (a restarted daemon has a new one).
    pub fn new() -> InstanceId {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let started = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        InstanceId(format!(
            "{host}:{}:{:x}",
            std::process::id(),
            started.as_micros()
        ))
    }

    /// `node:pid:start-time`, for a replica named `node` (`[store] node_name`).
    pub fn on_node(node: &str) -> InstanceId {
        let mut id = InstanceId::new();
        if let Some((_host, rest)) = id.0.split_once(':') {
            id.0 = format!("{node}:{rest}");
        }
        id
    }

    /// An id as the store recorded it (or a test names one).
    pub fn from_recorded(s: &str) -> InstanceId {
        InstanceId(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        InstanceId::new()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What checking in as a replica found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckIn {
    Alive,
    /// Another live process uses this node name (its instance id).
    NameTaken(String),
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub hook: Option<String>,
    pub state: Option<JobState>,
    pub limit: Option<usize>,
}

/// What cancelling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running: the request is recorded, and its owner stops it (at once if it is
    /// this process and is told, else at its next heartbeat).
    Requested,
    /// It had already ended in this state.
    AlreadyFinished(JobState),
    NotFound,
}

/// What a heartbeat learned about the jobs an owner runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Still ours, and an operator asked to cancel them.
    pub cancel: Vec<JobId>,
    /// No longer ours (the lease expired and the job was recovered): stop them, and do
    /// not record how they ended.
    pub lost: Vec<JobId>,
}

/// What `finish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Recorded,
    /// The job is not running under this owner (any more): nothing was written.
    NotOwner,
}

/// The store's answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded; these jobs were queued, each left as its `state` says.
    Queued(Vec<Entered>),
    /// One of the delivery's replay keys was accepted for this hook before.
    Duplicate(Prior),
    /// `max_queued` jobs already wait for this hook: nothing was queued (and the
    /// delivery may come again).
    Full { waiting: usize },
}

/// A job just queued, and the state its own transaction left it in: `Queued` (it may run),
/// `Held` (its hook is paused) or `Superseded` (a push made on top of it was already
/// here). Only a `Queued` one is worth waking the worker for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    pub id: JobId,
    pub state: JobState,
}

impl Entered {
    /// The ids of `jobs`, in order.
    pub fn ids(jobs: &[Entered]) -> Vec<JobId> {
        jobs.iter().map(|j| j.id).collect()
    }
}

/// What a duplicate's replay key was first accepted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prior {
    /// The same delivery id (`true`), or the same signed body under another id.
    pub same_id: bool,
    /// The delivery id it first came with, if it had one (and was recorded: deliveries
    /// accepted before this was kept have none).
    pub delivery: Option<String>,
    /// The first job it queued.
    pub job: Option<JobId>,
}

/// What happened to a job, in the order it was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Queued,
    Superseded,
    Started,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Interrupted,
    /// An interrupted job was queued again (as a new job, named in the reason).
    Requeued,
    /// Its hook is paused: it waits until the hook is resumed.
    Held,
    /// Its hook was resumed: it is queued again.
    Released,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Queued,
        EventKind::Superseded,
        EventKind::Started,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::TimedOut,
        EventKind::Cancelled,
        EventKind::Interrupted,
        EventKind::Requeued,
        EventKind::Held,
        EventKind::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Superseded => "superseded",
            EventKind::Started => "started",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::TimedOut => "timed_out",
            EventKind::Cancelled => "cancelled",
            EventKind::Interrupted => "interrupted",
            EventKind::Requeued => "requeued",
            EventKind::Held => "held",
            EventKind::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The event that records a job ending in `state` (`None` for the two live states).
    pub fn ended(state: JobState) -> Option<EventKind> {
        Some(match state {
            JobState::Queued | JobState::Held | JobState::Running => return None,
            JobState::Succeeded => EventKind::Succeeded,
            JobState::Failed => EventKind::Failed,
            JobState::TimedOut => EventKind::TimedOut,
            JobState::Cancelled => EventKind::Cancelled,
            JobState::Superseded => EventKind::Superseded,
            JobState::Interrupted => EventKind::Interrupted,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in the event stream: events after it come later in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor(pub i64);

/// One change of one job, written in the transaction that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub cursor: Cursor,
    pub job: JobId,
    pub hook: String,
    pub kind: EventKind,
    pub at: SystemTime,
    /// Why, for people: "superseded by job 12", "command 2 failed: exit status 1".
    pub reason: String,
}

/// A verified delivery to a configured hook, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub hook: String,
    pub delivery: Option<DeliveryId>,
    pub forge: Forge,
    /// The forge's event name (`push`, `ping`, `issues`), when it could be read.
    pub event: Option<String>,
    pub git_ref: Option<RefName>,
    pub after: Option<Sha>,
    /// For one that queues jobs: why the hook's other rules did not deploy it, kept in
    /// its record's reason (records read back carry it there, not here).
    pub note: Option<String>,
}

/// What became of a delivery that did not queue jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    Ignored,
    Pong,
    /// Authentic, but the payload could not be read.
    BadPayload,
    /// Refused: too many jobs already waited for the hook.
    QueueFull,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Queued(Vec<JobId>),
    /// Accepted before; the first job it queued, if any.
    Duplicate(Option<JobId>),
    Not(NotQueued),
}

impl DeliveryOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryOutcome::Queued(_) => "queued",
            DeliveryOutcome::Duplicate(_) => "duplicate",
            DeliveryOutcome::Not(NotQueued::Ignored) => "ignored",
            DeliveryOutcome::Not(NotQueued::Pong) => "pong",
            DeliveryOutcome::Not(NotQueued::BadPayload) => "bad_payload",
            DeliveryOutcome::Not(NotQueued::QueueFull) => "queue_full",
        }
    }
}

/// A delivery as recorded, newest first in listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub received_at: SystemTime,
    pub delivery: Delivery,
    pub outcome: DeliveryOutcome,
    pub reason: String,
}

/// How long history is kept: finished jobs (with their events and logs) and delivery
/// records beyond `keep_jobs` per hook, or older than `keep_for`, are removed, at most
/// `at_most` jobs (and as many delivery records) per prune, since a prune holds the writer.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub keep_jobs: usize,
    pub keep_for: Duration,
    pub at_most: usize,
}

/// An outbox row's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxId(pub i64);

/// Something to send: one event of one job, for one target. Rows of one lane (target
/// and repository) are handed out one at a time, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: OutboxId,
    pub job: JobId,
    pub target: String,
    /// The target and the job's repository: the unit of ordering.
    pub lane: String,
    pub event: JobEvent,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: SystemTime,
    /// What the sender kept from an earlier send for this job and target (the id of a
    /// GitHub deployment).
    pub memo: Option<String>,
}

/// How an attempt to send an outbox row went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Done; `memo` (if any) is kept for the job's next row to this target.
    Sent { memo: Option<String> },
    /// Try again at `at`; `memo` as for `Sent` (a deployment made before the attempt
    /// failed is not made again).
    Retry {
        at: SystemTime,
        error: String,
        memo: Option<String>,
    },
    /// Given up on.
    Failed { error: String },
}

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
    /// A newer state of the same job for the same target was queued before it was sent.
    Replaced,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Replaced => "replaced",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        [
            OutboxState::Pending,
            OutboxState::Sent,
            OutboxState::Failed,
            OutboxState::Replaced,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One outbox row of a job, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub target: String,
    pub kind: EventKind,
    pub state: OutboxState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: SystemTime,
    /// When it was sent, given up on or replaced.
    pub done_at: Option<SystemTime>,
    /// When it is tried next, while pending.
    pub next_at: SystemTime,
}

/// How much waits in the outbox (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxDepth {
    pub pending: u64,
    pub oldest: Option<SystemTime>,
}

/// A paused hook: its new and queued jobs are held until it is resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub hook: String,
    pub reason: String,
    pub since: SystemTime,
}
