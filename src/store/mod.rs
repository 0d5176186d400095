//! The durable state every part of the daemon reads: which deliveries were accepted (so a
//! replay never deploys twice, across restarts too), the job queue with every job's
//! history as events, who runs which job (leases), and a record of every verified
//! delivery. The only module that talks to a database.
//!
//! [`Backend`] is the seam a second backend implements (SQLite here, embedded and the
//! default; a shared PostgreSQL for several replicas next); [`Store`] is the cheap handle
//! the rest of the daemon holds. The values in and out are this module's own types
//! ([`types`]), never config's or the API's. The conformance suite (`conformance.rs`)
//! says what any backend must do, and runs against each.

#[cfg(test)]
mod conformance;
mod lock;
mod pg_target;
mod postgres;
mod sqlite;
pub mod types;
mod wording;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

pub use pg_target::PgTarget;
pub use postgres::{Connect as PgConnect, tls_config as pg_tls_config};
pub use types::{
    Acceptance, Attempt, CancelResult, CheckIn, Cursor, Delivery, DeliveryOutcome, DeliveryRecord,
    Entered, EventKind, Finished, Heartbeat, InstanceId, Job, JobEvent, JobFilter, JobId, JobState,
    NewJob, NotQueued, Notification, Origin, OutboxDepth, OutboxId, OutboxState, Outgoing, Pause,
    Prior, Queue, Retention, Subscription,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the state database {path}: {reason}; check that state_dir exists and is writable by the daemon's user"
    )]
    Open { path: PathBuf, reason: String },
    #[error(
        "cannot use the PostgreSQL database {target}: {reason}; check [store] url, password_file and ca_file, and that the server is up"
    )]
    OpenDatabase { target: String, reason: String },
    #[error("cannot write the state database: {0}")]
    Write(String),
    #[error("cannot read the state database: {0}")]
    Read(String),
    #[error("the state database writer has stopped")]
    Closed,
    /// Another daemon uses the same `state_dir`.
    #[error(
        "state_dir {} is in use by another deployhook ({holder}); stop that one, or give this one a state_dir of its own",
        dir.display()
    )]
    InUse { dir: PathBuf, holder: String },
}

type Answer<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// What a store backend does. Each method is one transaction: a job's state change and
/// its event are committed together, and a delivery's jobs and its record too.
pub trait Backend: Send + Sync {
    /// Queues a delivery's jobs and records it, unless one of its replay keys was
    /// accepted for this hook before (then records it as a duplicate). A queued
    /// `supersede` job supersedes the pending jobs of its hook and rule, unless it is a
    /// push older than one already here. Returns once on disk.
    /// Refused whole (`Full`) when `max_queued` jobs already wait for the hook.
    fn accept(
        &self,
        delivery: Delivery,
        replay_keys: Vec<String>,
        jobs: Vec<NewJob>,
        max_queued: usize,
    ) -> Answer<'_, Acceptance>;
    /// Records a verified delivery that queued nothing.
    fn record(&self, delivery: Delivery, outcome: NotQueued, reason: String) -> Answer<'_, ()>;
    /// Marks the oldest queued job whose lane has no running job (and whose lock is free)
    /// as running under `owner` until `lease_until`, and returns it. Jobs of the hooks in
    /// `skip_hooks` are left to other replicas (their `run_on` does not name this one).
    fn claim_skipping(
        &self,
        owner: InstanceId,
        lease_until: SystemTime,
        skip_hooks: Vec<String>,
    ) -> Answer<'_, Option<Job>>;
    /// [`Backend::claim_skipping`] with no hook left out.
    fn claim(&self, owner: InstanceId, lease_until: SystemTime) -> Answer<'_, Option<Job>> {
        self.claim_skipping(owner, lease_until, Vec::new())
    }
    /// Extends the leases of `owner`'s `running` jobs to `lease_until`; says which of them
    /// are to be cancelled and which are no longer `owner`'s.
    fn heartbeat(
        &self,
        owner: InstanceId,
        running: Vec<JobId>,
        lease_until: SystemTime,
    ) -> Answer<'_, Heartbeat>;
    /// Records how a running job ended, if `owner` still runs it, with the one-line
    /// summary its commands left (`$DEPLOYHOOK_SUMMARY`).
    fn finish(
        &self,
        owner: InstanceId,
        id: JobId,
        state: JobState,
        detail: String,
        summary: Option<String>,
    ) -> Answer<'_, Finished>;
    /// Cancels a queued job at once; for a running one, records the request.
    fn cancel(&self, id: JobId) -> Answer<'_, CancelResult>;
    /// Marks as interrupted the running jobs whose lease ran out before `now` (as
    /// cancelled those an operator asked to cancel), and returns them. A live owner's
    /// job is never touched.
    fn recover(&self, now: SystemTime) -> Answer<'_, Vec<Job>>;
    /// Queues a copy of an interrupted job (attempt + 1).
    fn requeue(&self, id: JobId) -> Answer<'_, JobId>;
    fn get(&self, id: JobId) -> Answer<'_, Option<Job>>;
    /// Pauses `hook`: its queued jobs, and every job queued until it is resumed, are held.
    /// Pausing a paused hook replaces the reason. Returns the jobs it held.
    fn pause(&self, hook: String, reason: String) -> Answer<'_, Vec<JobId>>;
    /// Resumes `hook`: its held jobs are queued again (`None`: it was not paused).
    fn resume(&self, hook: String) -> Answer<'_, Option<Vec<JobId>>>;
    /// The paused hooks.
    fn pauses(&self) -> Answer<'_, Vec<Pause>>;
    /// The running job that holds `lock` (a rule's `lock`), if one does.
    fn lock_holder(&self, lock: String) -> Answer<'_, Option<JobId>>;
    /// A job's events, oldest first.
    fn job_events(&self, id: JobId) -> Answer<'_, Vec<JobEvent>>;
    fn list(&self, filter: JobFilter) -> Answer<'_, Vec<Job>>;
    /// Up to `limit` events after `after`, in commit order.
    fn events(&self, after: Cursor, limit: usize) -> Answer<'_, Vec<JobEvent>>;
    /// The newest delivery records, of one hook or all.
    fn deliveries(&self, hook: Option<String>, limit: usize) -> Answer<'_, Vec<DeliveryRecord>>;
    /// The jobs a delivery queued (its first `queued` record), if it is still recorded.
    fn delivery_jobs(&self, hook: String, delivery: String) -> Answer<'_, Option<Vec<JobId>>>;
    /// A random 32-byte key named `name`, made on first use and kept: the same for every
    /// process on this store.
    fn secret(&self, name: String) -> Answer<'_, Vec<u8>>;
    /// How many jobs are in each state (for metrics).
    fn count_by_state(&self) -> Answer<'_, Vec<(JobState, u64)>>;
    /// Removes history older than `retention` allows (a slice at a time); returns the
    /// ids of the jobs removed, whose logs go too.
    fn prune(&self, retention: Retention) -> Answer<'_, Vec<JobId>>;
    /// The oldest pending outbox row of each lane that is due by `now` (up to `limit`
    /// lanes), leaving out `busy` lanes (being sent now).
    fn outbox_due(
        &self,
        now: SystemTime,
        busy: Vec<String>,
        limit: usize,
    ) -> Answer<'_, Vec<Outgoing>>;
    /// Records how sending an outbox row went (nothing, if it was replaced meanwhile).
    fn outbox_attempt(&self, id: OutboxId, attempt: Attempt) -> Answer<'_, ()>;
    /// A job's outbox rows, oldest first.
    fn notifications(&self, job: JobId) -> Answer<'_, Vec<Notification>>;
    /// How many rows are pending, and since when the oldest.
    fn outbox_depth(&self) -> Answer<'_, OutboxDepth>;
    /// Writes something and waits for it to be durable: the store can write (`/readyz`).
    fn ping(&self) -> Answer<'_, ()>;
    /// Changes whenever this store commits something; a hint to read events again
    /// (changes by other processes are seen by reading, not through this).
    fn changed(&self) -> watch::Receiver<u64>;
    /// Says this replica (`node`, running as `instance`) is alive, now; refused while
    /// another instance of the same node name was alive within `alive_for` (two replicas
    /// must not share a name: `run_on` and the owners in the job history go by it). A
    /// store only one process uses has nothing to check.
    fn check_in(
        &self,
        node: String,
        instance: InstanceId,
        alive_for: std::time::Duration,
    ) -> Answer<'_, CheckIn> {
        let _ = (node, instance, alive_for);
        Box::pin(std::future::ready(Ok(CheckIn::Alive)))
    }
    /// How many replicas checked in within `alive_for` (metrics): 1 for a store only one
    /// process uses.
    fn replicas_alive(&self, alive_for: std::time::Duration) -> Answer<'_, u64> {
        let _ = alive_for;
        Box::pin(std::future::ready(Ok(1)))
    }
    /// Changes when an operator asked another process to cancel a job: a hint to renew
    /// the leases now (the heartbeat reports the cancel) rather than at the next beat.
    /// A store only one process uses never changes it (that process's worker hears of
    /// its own cancels directly).
    fn cancels(&self) -> watch::Receiver<u64> {
        static NEVER: std::sync::OnceLock<watch::Sender<u64>> = std::sync::OnceLock::new();
        NEVER.get_or_init(|| watch::Sender::new(0)).subscribe()
    }
    /// The job logs this store keeps, when it keeps them: a store several replicas
    /// share does, so that any replica serves any job's log. `None`: logs are files in
    /// this process's `state_dir` (see `joblog`).
    fn log_book(&self) -> Option<std::sync::Arc<dyn LogBook>> {
        None
    }
    /// Where the data lives, for the startup log line.
    fn describe(&self) -> String;
}

/// Job logs kept in the store, as bytes at offsets (the log's format is `joblog`'s).
/// Pruning a job removes its log with it.
pub trait LogBook: Send + Sync {
    /// Appends `bytes` at the end of job `job`'s log; returns once durable.
    fn append(&self, job: JobId, bytes: Vec<u8>) -> Answer<'_, ()>;
    /// Up to `max` bytes of job `job`'s log from byte `from` (empty past its end).
    fn read(&self, job: JobId, from: u64, max: u64) -> Answer<'_, Vec<u8>>;
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store(std::sync::Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// The embedded SQLite store in `state_dir/deployhook.db`, which this process then
    /// holds alone (see `lock`).
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store(std::sync::Arc::new(sqlite::Sqlite::open(state_dir)?)))
    }

    /// The shared PostgreSQL store (`[store] backend = "postgres"`): connects, applies
    /// the migrations, and starts listening for other replicas' commits. `state_dir`
    /// (git caches, work trees, logs: this replica's own) is held alone, as with SQLite.
    pub async fn open_postgres(
        state_dir: &Path,
        connect: postgres::Connect,
    ) -> Result<Store, StoreError> {
        sqlite::make_state_dir(state_dir)?;
        let held = lock::acquire(state_dir)?;
        let mut pg = postgres::Postgres::open(connect).await?;
        pg.hold(held);
        Ok(Store(std::sync::Arc::new(pg)))
    }

    pub fn from_backend(backend: std::sync::Arc<dyn Backend>) -> Store {
        Store(backend)
    }
}
