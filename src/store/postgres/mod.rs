//! The shared backend: one PostgreSQL database for several replicas (`[store] backend =
//! "postgres"`).
//!
//! Every transaction that writes a job's state takes one cluster-wide advisory lock
//! first ([`WRITE_LOCK`]), so writes are serialized across replicas as SQLite's writer
//! thread serializes them in one process: supersede, `max_queued`, pauses and the "one
//! running job per lane" rule hold whichever replica writes, and event ids (the cursor)
//! are handed out in commit order, so a reader that has seen id N never later finds an
//! event below N. Deliveries that arrive together at one replica are committed in one
//! transaction (group commit), and a 202 is sent only once PostgreSQL has committed it.
//! Reads take a pooled connection and no lock.
//!
//! Leases are kept on the database's clock (a replica's clock only says how long from
//! now), so replicas whose clocks disagree do not steal each other's jobs. A renewal or
//! a finish after the lease ran out is refused: the job is no longer this replica's.
//! Every write notifies the `deployhook` channel; each replica listens on it (its own
//! connection), so `changed` fires for other replicas' commits too.

mod deliveries;
mod jobs;
mod logs;
mod outbox;
mod pauses;
mod replicas;
mod schema;
mod tls;

pub use tls::client_config as tls_config;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, oneshot, watch};

use super::types::{
    Acceptance, Attempt, CancelResult, CheckIn, Cursor, Delivery, DeliveryRecord, Finished,
    Heartbeat, InstanceId, Job, JobEvent, JobFilter, JobId, JobState, NewJob, NotQueued,
    Notification, OutboxDepth, OutboxId, Outgoing, Pause, Retention,
};
use super::wording::{Now, ms};
use super::{Answer, Backend, LogBook, StoreError};

/// The advisory lock every job-writing transaction holds until it commits ("dphkwr").
const WRITE_LOCK: i64 = 0x6470_686b_7772;

/// The channel every write notifies.
const CHANNEL: &str = "deployhook";

/// The channel a cancel of a running job notifies (its owner may be another replica).
const CANCEL_CHANNEL: &str = "deployhook_cancel";

/// The most deliveries one transaction commits.
const MAX_BATCH: usize = 256;

/// Connections in the pool (reads, writes, the group commit); the listener has its own.
const POOL_SIZE: usize = 8;

/// How long a read or write waits for a connection before the store reports the
/// database unreachable (then deliveries get 503, and `/readyz` fails).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// How long an outbox row handed to this replica's sender is its own.
const OUTBOX_TAKE: Duration = Duration::from_secs(120);

/// Where the database is and how to reach it.
pub struct Connect {
    /// Host, port, user, database and password (from `password_file`).
    pub config: tokio_postgres::Config,
    /// TLS for TCP hosts; `None` for a unix socket.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// For the startup log line: never the password.
    pub shown: String,
}

impl Connect {
    /// `target` with its password (from `password_file`), over TLS when it is a TCP
    /// host: trusting `ca_pem`'s certificates (`ca_file`), or else the platform's roots.
    pub fn new(
        target: &super::PgTarget,
        password: Option<&[u8]>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Connect, String> {
        let mut config = target.config().clone();
        if let Some(p) = password {
            config.password(p);
        }
        let tls = if target.needs_tls() {
            Some(tls::client_config(ca_pem).map_err(|e| format!("ca_file {e}"))?)
        } else {
            None
        };
        Ok(Connect {
            config,
            tls,
            shown: target.describe(),
        })
    }
}

/// Why a statement failed, with PostgreSQL's own message.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fail {
    #[error("{}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("cannot reach PostgreSQL: {}", pool_error(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("unreadable {what} {value:?} in the database")]
    Corrupt { what: &'static str, value: String },
}

/// PostgreSQL's message, not just "db error".
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// A pool error with its cause (deadpool's own text leaves it out).
fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            "no connection within 5 s (the server is down, unreachable, or every connection is busy)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(write_err)")]
fn write_err(e: Fail) -> StoreError {
    StoreError::Write(e.to_string())
}

#[expect(clippy::needless_pass_by_value, reason = "used as map_err(read_err)")]
fn read_err(e: Fail) -> StoreError {
    StoreError::Read(e.to_string())
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A delivery waiting for the next group commit.
enum Batched {
    Accept {
        delivery: Delivery,
        replay_keys: Vec<String>,
        jobs: Vec<NewJob>,
        max_queued: usize,
        reply: Reply<Acceptance>,
    },
    Record {
        delivery: Delivery,
        outcome: NotQueued,
        reason: String,
        reply: Reply<()>,
    },
}

pub(super) type Tx<'a> = deadpool_postgres::Transaction<'a>;

pub(super) struct Postgres {
    pool: Pool,
    batch: mpsc::UnboundedSender<Batched>,
    notify: Arc<watch::Sender<u64>>,
    /// Bumped when any replica asks for a running job to be cancelled.
    cancels: Arc<watch::Sender<u64>>,
    /// Who takes outbox rows in this process.
    me: String,
    shown: String,
    /// This replica's `state_dir`, held while the store is open (see `store::lock`).
    held: Option<super::lock::StateLock>,
    logs: Arc<logs::PgLogs>,
}

impl Postgres {
    /// Connects, applies the migrations (refusing a newer schema), and starts the group
    /// commit and the listener.
    pub(super) async fn open(connect: Connect) -> Result<Postgres, StoreError> {
        let open_err = |reason: String| StoreError::OpenDatabase {
            target: connect.shown.clone(),
            reason,
        };
        let mut config = connect.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WAIT);
        }
        config.keepalives_idle(Duration::from_secs(30));
        let manager = |config: tokio_postgres::Config| {
            let recycling = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            match &connect.tls {
                Some(tls) => Manager::from_config(
                    config,
                    postgres_rustls::MakeTlsConnector::new(tokio_rustls_connector(tls)),
                    recycling,
                ),
                None => Manager::from_config(config, tokio_postgres::NoTls, recycling),
            }
        };
        let pool = Pool::builder(manager(config.clone()))
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| open_err(format!("cannot connect: {}", pool_error(&e))))?;
            schema::prepare(&mut client)
                .await
                .map_err(|e| open_err(e.to_string()))?;
        }
        let notify = Arc::new(watch::Sender::new(0));
        let cancels = Arc::new(watch::Sender::new(0));
        let (batch, waiting) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(pool.clone(), waiting, Arc::clone(&notify)));
        let heard = Heard {
            commits: Arc::downgrade(&notify),
            cancels: Arc::downgrade(&cancels),
        };
        tokio::spawn(listen(config, connect.tls.clone(), heard));
        Ok(Postgres {
            batch,
            notify,
            cancels,
            me: InstanceId::new().as_str().to_owned(),
            shown: connect.shown,
            held: None,
            logs: Arc::new(logs::PgLogs { pool: pool.clone() }),
            pool,
        })
    }

    /// Keeps `held` (this replica's state_dir) for as long as the store lives.
    pub(super) fn hold(&mut self, held: super::lock::StateLock) {
        self.held = Some(held);
    }

    fn batched<T>(&self, make: impl FnOnce(Reply<T>) -> Batched) -> Answer<'_, T>
    where
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sent = self.batch.send(make(reply));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    /// Runs `f` in a transaction of its own that holds the write lock (and notifies).
    fn write<T, F>(&self, f: F) -> Answer<'_, T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Tx<'t>, Now) -> futures_util::future::BoxFuture<'t, Result<T, Fail>>
            + Send
            + 'static,
    {
        async move {
            let out = async {
                let mut client = self.pool.get().await?;
                let tx = client.transaction().await?;
                lock_for_writing(&tx).await?;
                let out = f(&tx, Now::system()).await?;
                tx.commit().await?;
                Ok::<T, Fail>(out)
            }
            .await
            .map_err(write_err)?;
            announce(&self.notify);
            Ok(out)
        }
        .boxed()
    }

    /// Runs `f` on a pooled connection, outside any transaction of ours.
    fn read<T, F>(&self, f: F) -> Answer<'_, T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c deadpool_postgres::Client,
            ) -> futures_util::future::BoxFuture<'c, Result<T, Fail>>
            + Send
            + 'static,
    {
        async move {
            let client = self.pool.get().await.map_err(|e| read_err(e.into()))?;
            f(&client).await.map_err(read_err)
        }
        .boxed()
    }
}

fn tokio_rustls_connector(tls: &Arc<rustls::ClientConfig>) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(Arc::clone(tls))
}

/// Takes the write lock (held until the transaction ends) and queues the notification
/// other replicas hear when it commits.
async fn lock_for_writing(tx: &Tx<'_>) -> Result<(), Fail> {
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1), pg_notify($2, '')")
        .await?;
    tx.execute(&lock, &[&WRITE_LOCK, &CHANNEL]).await?;
    Ok(())
}

fn announce(notify: &watch::Sender<u64>) {
    notify.send_modify(|n| *n = n.wrapping_add(1));
}

/// The database's clock plus `offset_ms`, in unix ms, as SQL.
pub(super) const DB_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// How far `t` is from this replica's now, in ms (negative: in the past); leases are
/// kept as the database's now plus this.
fn from_now(t: SystemTime) -> i64 {
    ms(t) - ms(SystemTime::now())
}

/// Commits the deliveries waiting right now in one transaction, again and again.
async fn group_commit(
    pool: Pool,
    mut waiting: mpsc::UnboundedReceiver<Batched>,
    notify: Arc<watch::Sender<u64>>,
) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(b) => batch.push(b),
                Err(_) => break,
            }
        }
        let result = commit_batch(&pool, &batch).await;
        let outcomes: Vec<Result<Option<Acceptance>, StoreError>> = match result {
            Ok(outcomes) => {
                announce(&notify);
                outcomes.into_iter().map(Ok).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot commit deliveries to PostgreSQL; they are refused until it works again");
                let e = write_err(e);
                vec![Err(e); batch.len()]
            }
        };
        for (b, outcome) in batch.into_iter().zip(outcomes) {
            match b {
                Batched::Accept { reply, .. } => {
                    let _ = reply.send(outcome.map(|o| o.expect("an acceptance has an outcome")));
                }
                Batched::Record { reply, .. } => {
                    let _ = reply.send(outcome.map(|_| ()));
                }
            }
        }
    }
}

async fn commit_batch(pool: &Pool, batch: &[Batched]) -> Result<Vec<Option<Acceptance>>, Fail> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    lock_for_writing(&tx).await?;
    let now = Now::system();
    let mut outcomes = Vec::with_capacity(batch.len());
    for b in batch {
        outcomes.push(match b {
            Batched::Accept {
                delivery,
                replay_keys,
                jobs,
                max_queued,
                ..
            } => {
                Some(deliveries::accept(&tx, delivery, replay_keys, jobs, *max_queued, now).await?)
            }
            Batched::Record {
                delivery,
                outcome,
                reason,
                ..
            } => {
                deliveries::record(&tx, delivery, *outcome, reason, now).await?;
                None
            }
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// What the listener bumps: the store's `changed` and `cancels` (weak: the listener ends
/// when the store is dropped).
struct Heard {
    commits: std::sync::Weak<watch::Sender<u64>>,
    cancels: std::sync::Weak<watch::Sender<u64>>,
}

impl Heard {
    /// Bumps what `channel` stands for; `false` once the store is gone.
    fn bump(&self, channel: &str) -> bool {
        let which = if channel == CANCEL_CHANNEL {
            &self.cancels
        } else {
            &self.commits
        };
        which.upgrade().map(|n| announce(&n)).is_some()
    }
}

/// Listens on [`CHANNEL`] and [`CANCEL_CHANNEL`] on a connection of its own, and bumps
/// what each stands for at every notification; after a reconnect, both once (what was
/// missed meanwhile is read then). Ends when the store is dropped.
async fn listen(
    config: tokio_postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
    heard: Heard,
) {
    loop {
        match listen_once(&config, tls.as_ref(), &heard).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "PostgreSQL listener lost; reconnecting"),
        }
        if !heard.bump(CHANNEL) || !heard.bump(CANCEL_CHANNEL) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One listening connection, until it fails (`Err`) or the store is gone (`Ok`).
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: Option<&Arc<rustls::ClientConfig>>,
    heard: &Heard,
) -> Result<(), Fail> {
    use futures_util::StreamExt as _;
    let (client, mut messages) = if let Some(tls) = tls {
        let connector = postgres_rustls::MakeTlsConnector::new(tokio_rustls_connector(tls));
        let (client, mut conn) = config.connect(connector).await?;
        let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx)).boxed();
        (client, stream)
    } else {
        let (client, mut conn) = config.connect(tokio_postgres::NoTls).await?;
        let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx)).boxed();
        (client, stream)
    };
    // The connection's messages must be read for the LISTEN below to be answered.
    let statement = format!("LISTEN {CHANNEL}; LISTEN {CANCEL_CHANNEL}");
    let listening = client.batch_execute(&statement);
    tokio::pin!(listening);
    let mut listened = false;
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done?;
                listened = true;
            }
            message = messages.next() => match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if !heard.bump(n.channel()) {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Fail::Corrupt { what: "listener", value: "connection closed".into() }),
            },
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                if heard.commits.strong_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
}

impl Backend for Postgres {
    fn accept(
        &self,
        delivery: Delivery,
        replay_keys: Vec<String>,
        jobs: Vec<NewJob>,
        max_queued: usize,
    ) -> Answer<'_, Acceptance> {
        self.batched(|reply| Batched::Accept {
            delivery,
            replay_keys,
            jobs,
            max_queued,
            reply,
        })
    }

    fn record(&self, delivery: Delivery, outcome: NotQueued, reason: String) -> Answer<'_, ()> {
        self.batched(|reply| Batched::Record {
            delivery,
            outcome,
            reason,
            reply,
        })
    }

    fn claim_skipping(
        &self,
        owner: InstanceId,
        lease_until: SystemTime,
        skip_hooks: Vec<String>,
    ) -> Answer<'_, Option<Job>> {
        async move {
            // Asked without the lock first: most wake-ups find nothing to claim.
            let skip = skip_hooks.clone();
            if !self
                .read(move |c| async move { jobs::claimable(c, &skip).await }.boxed())
                .await?
            {
                return Ok(None);
            }
            let lease = from_now(lease_until);
            self.write(move |tx, now| {
                async move { jobs::claim(tx, &owner, lease, &skip_hooks, now).await }.boxed()
            })
            .await
        }
        .boxed()
    }

    fn heartbeat(
        &self,
        owner: InstanceId,
        running: Vec<JobId>,
        lease_until: SystemTime,
    ) -> Answer<'_, Heartbeat> {
        let lease = from_now(lease_until);
        // Renewals write no state change: no write lock, so a busy ingest never delays one.
        async move {
            let client = self.pool.get().await.map_err(|e| write_err(e.into()))?;
            jobs::heartbeat(&client, &owner, &running, lease)
                .await
                .map_err(write_err)
        }
        .boxed()
    }

    fn finish(
        &self,
        owner: InstanceId,
        id: JobId,
        state: JobState,
        detail: String,
        summary: Option<String>,
    ) -> Answer<'_, Finished> {
        self.write(move |tx, now| {
            async move { jobs::finish(tx, &owner, id, state, &detail, summary.as_deref(), now).await }
                .boxed()
        })
    }

    fn cancel(&self, id: JobId) -> Answer<'_, CancelResult> {
        self.write(move |tx, now| async move { jobs::cancel(tx, id, now).await }.boxed())
    }

    fn recover(&self, now: SystemTime) -> Answer<'_, Vec<Job>> {
        let ahead = from_now(now);
        self.write(move |tx, at| async move { jobs::recover(tx, ahead, at).await }.boxed())
    }

    fn requeue(&self, id: JobId) -> Answer<'_, JobId> {
        self.write(move |tx, now| async move { jobs::requeue(tx, id, now).await }.boxed())
    }

    fn get(&self, id: JobId) -> Answer<'_, Option<Job>> {
        self.read(move |c| async move { jobs::get(c, id).await }.boxed())
    }

    fn pause(&self, hook: String, reason: String) -> Answer<'_, Vec<JobId>> {
        self.write(move |tx, now| {
            async move { pauses::pause(tx, &hook, &reason, now).await }.boxed()
        })
    }

    fn resume(&self, hook: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.write(move |tx, now| async move { pauses::resume(tx, &hook, now).await }.boxed())
    }

    fn pauses(&self) -> Answer<'_, Vec<Pause>> {
        self.read(|c| pauses::list(c).boxed())
    }

    fn lock_holder(&self, lock: String) -> Answer<'_, Option<JobId>> {
        self.read(move |c| async move { jobs::lock_holder(c, &lock).await }.boxed())
    }

    fn job_events(&self, id: JobId) -> Answer<'_, Vec<JobEvent>> {
        self.read(move |c| async move { jobs::events_of(c, id).await }.boxed())
    }

    fn list(&self, filter: JobFilter) -> Answer<'_, Vec<Job>> {
        self.read(move |c| async move { jobs::list(c, &filter).await }.boxed())
    }

    fn events(&self, after: Cursor, limit: usize) -> Answer<'_, Vec<JobEvent>> {
        self.read(move |c| async move { jobs::events_after(c, after, limit).await }.boxed())
    }

    fn deliveries(&self, hook: Option<String>, limit: usize) -> Answer<'_, Vec<DeliveryRecord>> {
        self.read(move |c| {
            async move { deliveries::deliveries(c, hook.as_deref(), limit).await }.boxed()
        })
    }

    fn delivery_jobs(&self, hook: String, delivery: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.read(move |c| {
            async move { deliveries::delivery_jobs(c, &hook, &delivery).await }.boxed()
        })
    }

    fn secret(&self, name: String) -> Answer<'_, Vec<u8>> {
        async move {
            let client = self.pool.get().await.map_err(|e| write_err(e.into()))?;
            deliveries::secret(&client, &name).await.map_err(write_err)
        }
        .boxed()
    }

    fn count_by_state(&self) -> Answer<'_, Vec<(JobState, u64)>> {
        self.read(|c| jobs::count_by_state(c).boxed())
    }

    fn prune(&self, retention: Retention) -> Answer<'_, Vec<JobId>> {
        self.write(move |tx, now| async move { jobs::prune(tx, retention, now).await }.boxed())
    }

    fn outbox_due(
        &self,
        now: SystemTime,
        busy: Vec<String>,
        limit: usize,
    ) -> Answer<'_, Vec<Outgoing>> {
        let me = self.me.clone();
        let ahead = from_now(now);
        async move {
            let mut client = self.pool.get().await.map_err(|e| read_err(e.into()))?;
            outbox::take_due(&mut client, &me, ahead, &busy, limit, OUTBOX_TAKE)
                .await
                .map_err(read_err)
        }
        .boxed()
    }

    fn outbox_attempt(&self, id: OutboxId, attempt: Attempt) -> Answer<'_, ()> {
        self.write(move |tx, now| {
            async move { outbox::attempt(tx, id, &attempt, now).await }.boxed()
        })
    }

    fn notifications(&self, job: JobId) -> Answer<'_, Vec<Notification>> {
        self.read(move |c| async move { outbox::of_job(c, job).await }.boxed())
    }

    fn outbox_depth(&self) -> Answer<'_, OutboxDepth> {
        self.read(|c| outbox::depth(c).boxed())
    }

    fn ping(&self) -> Answer<'_, ()> {
        async move {
            let client = self.pool.get().await.map_err(|e| write_err(e.into()))?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO secrets (name, value) VALUES ('ready-probe', int8send($1))
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .await
                .map_err(|e| write_err(e.into()))?;
            client
                .execute(&stmt, &[&Now::system().ms])
                .await
                .map_err(|e| write_err(e.into()))?;
            Ok(())
        }
        .boxed()
    }

    fn check_in(
        &self,
        node: String,
        instance: InstanceId,
        alive_for: Duration,
    ) -> Answer<'_, CheckIn> {
        async move {
            let client = self.pool.get().await.map_err(|e| write_err(e.into()))?;
            replicas::check_in(&client, &node, &instance, alive_for)
                .await
                .map_err(write_err)
        }
        .boxed()
    }

    fn replicas_alive(&self, alive_for: Duration) -> Answer<'_, u64> {
        self.read(move |c| async move { replicas::alive(c, alive_for).await }.boxed())
    }

    fn changed(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    fn cancels(&self) -> watch::Receiver<u64> {
        self.cancels.subscribe()
    }

    fn log_book(&self) -> Option<Arc<dyn LogBook>> {
        Some(Arc::clone(&self.logs) as Arc<dyn LogBook>)
    }

    fn describe(&self) -> String {
        format!("postgres {} (schema {})", self.shown, schema::known())
    }
}

#[cfg(test)]
mod tests;
