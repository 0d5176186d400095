//! The embedded backend: one SQLite file, `state_dir/deployhook.db`, in WAL mode with
//! `synchronous=FULL`.
//!
//! All writes go through one writer thread. Acceptances, delivery records and the
//! worker's claims, heartbeats and finishes that arrive together are committed in one
//! transaction (group commit): each is durable (fsync) before its caller hears back, yet
//! a burst costs one fsync, not one per write. Reads
//! run on connections of their own (WAL lets them), so an API call never waits behind
//! the writer.

mod checkpoint;
mod deliveries;
mod jobs;
mod outbox;
mod pauses;
mod schema;

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::types::{
    Acceptance, Attempt, CancelResult, Cursor, Delivery, DeliveryRecord, Finished, Heartbeat,
    InstanceId, Job, JobEvent, JobFilter, JobId, JobState, NewJob, NotQueued, Notification,
    OutboxDepth, OutboxId, Outgoing, Pause, Retention,
};
use super::wording::{Now, from_ms, from_secs, ms};
use super::{Answer, Backend, StoreError, lock};

/// The most acceptances one transaction commits.
const MAX_BATCH: usize = 512;

/// Read connections kept open between reads.
const IDLE_READERS: usize = 4;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Write(e.to_string())
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write waiting for the next group commit.
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
    /// Any other write that may share a group commit, run in a savepoint of its own: a
    /// slice of history (so a delivery waits at most one small slice's statements), and
    /// the worker's claims, heartbeats and finishes (in a busy hour one job's two or
    /// three commits each cost a delivery queued behind it a whole fsync).
    Joined(Box<dyn JoinedWrite>),
}

/// A write run inside a group commit's transaction, answered once that is durable.
trait JoinedWrite: Send {
    /// Does the write; false: it failed, and what it did is to be rolled back.
    fn run(&mut self, conn: &Connection, now: Now) -> bool;
    /// Answers the caller with the write's outcome, or `committed`'s error.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

/// A closure's [`JoinedWrite`]: `f` runs once, its outcome kept for [`JoinedWrite::answer`].
struct Pending<T, F> {
    f: Option<F>,
    out: Option<Result<T, StoreError>>,
    reply: Reply<T>,
}

impl<T, F> JoinedWrite for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection, Now) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection, now: Now) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let out = f(conn, now).map_err(StoreError::from);
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let Pending { out, reply, .. } = *self;
        let out = committed.and_then(|()| {
            out.unwrap_or_else(|| Err(StoreError::Write("the write never ran".to_owned())))
        });
        let _ = reply.send(out);
    }
}

/// What one batched write did, before its transaction commits.
enum Done {
    Accepted(Acceptance),
    Recorded,
    /// Its outcome is kept in the write itself: an error stays its own (its savepoint
    /// rolled back, the deliveries beside it commit).
    Joined,
}

/// One request to the writer thread.
enum Op {
    Batched(Batched),
    /// Anything else: done on its own, in arrival order.
    Alone(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// Creates `dir` (and its parents) if missing and gives it `mode`.
fn private(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Creates `state_dir` if missing and makes it private to the daemon (0750), whatever
/// the umask it was started with.
pub(super) fn make_state_dir(state_dir: &Path) -> Result<(), StoreError> {
    private(state_dir, 0o750).map_err(|e| StoreError::Open {
        path: state_dir.to_owned(),
        reason: e.to_string(),
    })
}

pub(super) struct Sqlite {
    tx: mpsc::Sender<Op>,
    readers: Arc<Readers>,
    /// Bumped after each commit, before its callers hear back.
    notify: Arc<watch::Sender<u64>>,
    path: PathBuf,
    /// Held, no WAL checkpoint runs (see `checkpoint::start`).
    #[cfg(test)]
    checkpoint_hold: Arc<Mutex<()>>,
}

impl Sqlite {
    /// Opens (creating if needed) `state_dir/deployhook.db` and makes it private to the
    /// daemon, whatever the umask it was started with: `state_dir` 0750, the database
    /// (and its WAL files) 0600.
    pub(super) fn open(state_dir: &Path) -> Result<Sqlite, StoreError> {
        let path = state_dir.join("deployhook.db");
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        make_state_dir(state_dir)?;
        let lock = lock::acquire(state_dir)?;
        let mut conn = Connection::open(&path).map_err(|e| open_err(e.to_string()))?;
        // Before the first write: SQLite gives the WAL and shared-memory files the
        // database file's mode when it creates them.
        for file in ["deployhook.db", "deployhook.db-wal", "deployhook.db-shm"] {
            let file = state_dir.join(file);
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(open_err(format!("{}: {e}", file.display())));
                }
                _ => {}
            }
        }
        schema::prepare(&mut conn).map_err(|e| open_err(e.to_string()))?;
        // This process holds the state directory alone (the lock), so no other process
        // can be running a job in this file: every lease left behind is void, and the
        // worker's first recovery finds those jobs at once instead of a lease later.
        jobs::void_leases(&conn).map_err(|e| open_err(e.to_string()))?;
        let checkpoint_hold = Arc::new(Mutex::new(()));
        let gate =
            checkpoint::start(&path, &mut conn, Arc::clone(&checkpoint_hold)).map_err(open_err)?;
        let (tx, rx) = mpsc::channel();
        let notify = Arc::new(watch::Sender::new(0));
        let announce = Arc::clone(&notify);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                // Held for as long as this store can write: see `lock`.
                let _held = lock;
                writer(conn, &rx, &announce, &gate);
            })
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Sqlite {
            tx,
            readers: Arc::new(Readers {
                path: path.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            notify,
            path,
            #[cfg(test)]
            checkpoint_hold,
        })
    }

    fn batched<T>(&self, make: impl FnOnce(Reply<T>) -> Batched) -> Answer<'_, T>
    where
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Op::Batched(make(reply)));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    /// Runs `f` on the writer thread in the next group commit, in a savepoint of its own:
    /// it shares the fsync of the deliveries beside it, and its error undoes it alone.
    fn joined<T, F>(&self, f: F) -> Answer<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Now) -> rusqlite::Result<T> + Send + 'static,
    {
        self.batched(move |reply| {
            Batched::Joined(Box::new(Pending {
                f: Some(f),
                out: None,
                reply,
            }))
        })
    }

    /// Runs `f` on the writer thread, in a transaction of its own.
    fn write<T, F>(&self, f: F) -> Answer<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, Now) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let notify = Arc::clone(&self.notify);
        let op = Op::Alone(Box::new(move |conn: &mut Connection| {
            let result = (|| -> rusqlite::Result<T> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx, Now::system())?;
                tx.commit()?;
                Ok(out)
            })();
            if result.is_ok() {
                announce(&notify);
            }
            let _ = reply.send(result.map_err(StoreError::from));
        }));
        let sent = self.tx.send(op);
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
        .boxed()
    }

    /// Runs `f` on a read connection, off the async threads.
    fn read<T, F>(&self, f: F) -> Answer<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        async move {
            tokio::task::spawn_blocking(move || readers.with(f))
                .await
                .map_err(|e| StoreError::Read(e.to_string()))?
        }
        .boxed()
    }
}

/// Read-only connections, opened when needed and kept for the next read.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let read_err = |e: rusqlite::Error| StoreError::Read(e.to_string());
        let idle = self.idle.lock().expect("readers lock").pop();
        let conn = if let Some(c) = idle {
            c
        } else {
            let c = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(read_err)?;
            c.busy_timeout(Duration::from_secs(5)).map_err(read_err)?;
            schema::plan_once(&c).map_err(read_err)?;
            c
        };
        let out = f(&conn).map_err(read_err);
        let mut idle = self.idle.lock().expect("readers lock");
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

impl Backend for Sqlite {
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
            // Asked on a reader first (see `jobs::claimable`); a job that turns claimable
            // meanwhile comes with a wake-up of its own.
            let ask = skip_hooks.clone();
            if !self.read(move |c| jobs::claimable(c, &ask)).await? {
                return Ok(None);
            }
            self.joined(move |c, now| jobs::claim(c, &owner, ms(lease_until), &skip_hooks, now))
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
        self.joined(move |c, _| jobs::heartbeat(c, &owner, &running, ms(lease_until)))
    }

    fn finish(
        &self,
        owner: InstanceId,
        id: JobId,
        state: JobState,
        detail: String,
        summary: Option<String>,
    ) -> Answer<'_, Finished> {
        self.joined(move |c, now| {
            jobs::finish(c, &owner, id, state, &detail, summary.as_deref(), now)
        })
    }

    fn cancel(&self, id: JobId) -> Answer<'_, CancelResult> {
        self.write(move |tx, now| jobs::cancel(tx, id, now))
    }

    fn recover(&self, now: SystemTime) -> Answer<'_, Vec<Job>> {
        self.write(move |tx, at| jobs::recover(tx, ms(now), at))
    }

    fn requeue(&self, id: JobId) -> Answer<'_, JobId> {
        self.write(move |tx, now| jobs::requeue(tx, id, now))
    }

    fn get(&self, id: JobId) -> Answer<'_, Option<Job>> {
        self.read(move |c| jobs::get(c, id))
    }

    fn pause(&self, hook: String, reason: String) -> Answer<'_, Vec<JobId>> {
        self.write(move |tx, now| pauses::pause(tx, &hook, &reason, now))
    }

    fn resume(&self, hook: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.write(move |tx, now| pauses::resume(tx, &hook, now))
    }

    fn pauses(&self) -> Answer<'_, Vec<Pause>> {
        self.read(pauses::list)
    }

    fn lock_holder(&self, lock: String) -> Answer<'_, Option<JobId>> {
        self.read(move |c| jobs::lock_holder(c, &lock))
    }

    fn job_events(&self, id: JobId) -> Answer<'_, Vec<JobEvent>> {
        self.read(move |c| jobs::events_of(c, id))
    }

    fn list(&self, filter: JobFilter) -> Answer<'_, Vec<Job>> {
        self.read(move |c| jobs::list(c, &filter))
    }

    fn events(&self, after: Cursor, limit: usize) -> Answer<'_, Vec<JobEvent>> {
        self.read(move |c| jobs::events_after(c, after, limit))
    }

    fn deliveries(&self, hook: Option<String>, limit: usize) -> Answer<'_, Vec<DeliveryRecord>> {
        self.read(move |c| jobs::deliveries(c, hook.as_deref(), limit))
    }

    fn delivery_jobs(&self, hook: String, delivery: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.read(move |c| jobs::delivery_jobs(c, &hook, &delivery))
    }

    fn secret(&self, name: String) -> Answer<'_, Vec<u8>> {
        self.write(move |tx, _| jobs::secret(tx, &name))
    }

    fn count_by_state(&self) -> Answer<'_, Vec<(JobState, u64)>> {
        self.read(jobs::count_by_state)
    }

    fn prune(&self, retention: Retention) -> Answer<'_, Vec<JobId>> {
        self.joined(move |c, now| jobs::prune(c, retention, now))
    }

    fn outbox_due(
        &self,
        now: SystemTime,
        busy: Vec<String>,
        limit: usize,
    ) -> Answer<'_, Vec<Outgoing>> {
        self.read(move |c| outbox::due(c, now, &busy, limit))
    }

    fn outbox_attempt(&self, id: OutboxId, attempt: Attempt) -> Answer<'_, ()> {
        self.write(move |tx, now| outbox::attempt(tx, id, &attempt, now))
    }

    fn notifications(&self, job: JobId) -> Answer<'_, Vec<Notification>> {
        self.read(move |c| outbox::of_job(c, job))
    }

    fn outbox_depth(&self) -> Answer<'_, OutboxDepth> {
        self.read(outbox::depth)
    }

    fn ping(&self) -> Answer<'_, ()> {
        self.write(|tx, now| {
            tx.prepare_cached(
                "INSERT INTO secrets (name, value) VALUES ('ready-probe', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute([now.ms.to_le_bytes().to_vec()])?;
            Ok(())
        })
    }

    fn changed(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

/// Each transaction inside `gate`, which a checkpoint catching up holds for a moment.
fn writer(
    mut conn: Connection,
    rx: &mpsc::Receiver<Op>,
    notify: &watch::Sender<u64>,
    gate: &checkpoint::Gate,
) {
    while let Ok(first) = rx.recv() {
        // Gather the deliveries waiting right now into one transaction; any other
        // operation is done on its own, in arrival order.
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Batched(b) => {
                    batch.push(b);
                    if batch.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                Op::Alone(run) => {
                    commit_batch(&mut conn, std::mem::take(&mut batch), notify, gate);
                    let _turn = gate.enter();
                    run(&mut conn);
                    next = rx.try_recv().ok();
                }
            }
        }
        commit_batch(&mut conn, batch, notify, gate);
    }
}

fn announce(notify: &watch::Sender<u64>) {
    notify.send_modify(|n| *n = n.wrapping_add(1));
}

fn commit_batch(
    conn: &mut Connection,
    mut batch: Vec<Batched>,
    notify: &watch::Sender<u64>,
    gate: &checkpoint::Gate,
) {
    if batch.is_empty() {
        return;
    }
    let turn = gate.enter();
    let result = (|| -> rusqlite::Result<Vec<Done>> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = Now::system();
        let mut done = Vec::with_capacity(batch.len());
        for b in &mut batch {
            done.push(match b {
                Batched::Accept {
                    delivery,
                    replay_keys,
                    jobs,
                    max_queued,
                    ..
                } => Done::Accepted(jobs::accept(
                    &tx,
                    delivery,
                    replay_keys,
                    jobs,
                    *max_queued,
                    now,
                )?),
                Batched::Record {
                    delivery,
                    outcome,
                    reason,
                    ..
                } => {
                    jobs::record(&tx, delivery, *outcome, reason, now)?;
                    Done::Recorded
                }
                Batched::Joined(write) => {
                    join_within(&mut tx, write.as_mut(), now)?;
                    Done::Joined
                }
            });
        }
        tx.commit()?;
        Ok(done)
    })();
    drop(turn);
    let done: Vec<Result<Done, StoreError>> = match result {
        Ok(done) => {
            announce(notify);
            done.into_iter().map(Ok).collect()
        }
        Err(e) => {
            tracing::error!(error = %e, "state database write failed; deliveries are refused until it works again");
            let e = e.to_string();
            (0..batch.len())
                .map(|_| Err(StoreError::Write(e.clone())))
                .collect()
        }
    };
    // Only now, the transaction durable (or failed), does anyone hear back: a pruned job's
    // log is removed only once its row is gone for good.
    for (b, done) in batch.into_iter().zip(done) {
        match (b, done) {
            (Batched::Accept { reply, .. }, Ok(Done::Accepted(a))) => {
                let _ = reply.send(Ok(a));
            }
            (Batched::Record { reply, .. }, Ok(Done::Recorded)) => {
                let _ = reply.send(Ok(()));
            }
            (Batched::Accept { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Batched::Record { reply, .. }, Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Batched::Joined(write), Ok(Done::Joined)) => write.answer(Ok(())),
            (Batched::Joined(write), Err(e)) => write.answer(Err(e)),
            (_, Ok(_)) => unreachable!("each batched write is answered with its own outcome"),
        }
    }
}

/// Runs a joined write inside a savepoint of the group commit's transaction: a failed
/// write undoes itself alone; only a failure to set up or end the savepoint (the
/// transaction itself is broken) fails the batch.
fn join_within(
    tx: &mut rusqlite::Transaction<'_>,
    write: &mut dyn JoinedWrite,
    now: Now,
) -> rusqlite::Result<()> {
    let mut sp = tx.savepoint()?;
    if write.run(&sp, now) {
        sp.commit()
    } else {
        sp.rollback()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Store, conformance};

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dirs = std::sync::Mutex::new(Vec::new());
        conformance::run(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            dirs.lock().unwrap().push(dir);
            std::future::ready(store)
        })
        .await;
    }

    /// A current-thread runtime and a fresh store in a temp dir, for tests that reach
    /// into the writer.
    fn writer_under_test() -> (tokio::runtime::Runtime, tempfile::TempDir, super::Sqlite) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = super::Sqlite::open(dir.path()).unwrap();
        (rt, dir, store)
    }

    /// Delivery `n` of hook `h`: one supersede job for commit `n`, replay key `id:<n>`.
    fn accept_nth(
        store: &super::Sqlite,
        n: u32,
    ) -> super::Answer<'_, super::super::types::Acceptance> {
        use super::super::Backend as _;
        let mut job = conformance::job(0, super::super::types::Queue::Supersede, 'a');
        job.event.after = crate::event::Sha::parse(&format!("{n:040x}")).unwrap();
        store.accept(
            conformance::delivery("h"),
            vec![format!("id:{n}")],
            vec![job],
            1_000,
        )
    }

    /// The writer never copies the log into the database itself: with checkpoints held,
    /// three checkpoints' worth of deliveries commit and the database file is untouched
    /// (SQLite's automatic checkpoint, run by the committing connection, would have
    /// copied the log at the first thousand pages); let go, the checkpoint thread does.
    #[test]
    fn a_checkpoint_never_runs_on_the_writer_thread() {
        let (rt, dir, store) = writer_under_test();
        let (db, wal) = (
            dir.path().join("deployhook.db"),
            dir.path().join("deployhook.db-wal"),
        );
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let page: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let page = u64::try_from(page).unwrap();
        let accept = |n: u32| {
            rt.block_on(accept_nth(&store, n)).unwrap();
        };
        let checkpoints = std::sync::Arc::clone(&store.checkpoint_hold);
        let held = checkpoints.lock().unwrap();
        let before = size(&db);
        let enough = 3 * u64::try_from(super::checkpoint::PAGES).unwrap() * page;
        let mut n = 0;
        while size(&wal) < enough {
            assert!(
                n < 5_000,
                "the log stayed at {} bytes over {n} deliveries: something checkpoints it on the writer's connection",
                size(&wal)
            );
            accept(n);
            n += 1;
        }
        assert_eq!(
            size(&db),
            before,
            "the database file changed while checkpoints were held: the writer copied the log itself"
        );
        drop(held);
        // The next commit finds the log over the threshold and wakes the checkpoint thread.
        accept(n);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while size(&db) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint 30 s after they were let go"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The log starts over even while commits never stop: eight senders commit back to
    /// back, so every checkpoint pass is overtaken by the commits landing while it copies,
    /// and the writer never pauses long enough for a pass to finish between two of them.
    /// A pass left behind is followed by one that holds the writer back, so the log
    /// starts over (its header's salt changes) again and again. Without that second
    /// pass it never starts over here, and grows for as long as the deliveries come.
    #[test]
    fn the_log_starts_over_while_deliveries_keep_coming() {
        let (rt, dir, store) = writer_under_test();
        let wal = dir.path().join("deployhook.db-wal");
        let header = |p: &std::path::Path| -> Option<(u64, [u8; 8])> {
            use std::io::Read as _;
            let mut f = std::fs::File::open(p).ok()?;
            let mut h = [0u8; 32];
            f.read_exact(&mut h).ok()?;
            let page = u64::from(u32::from_be_bytes(h[8..12].try_into().unwrap()));
            Some((page, h[16..24].try_into().unwrap()))
        };
        let next = std::sync::atomic::AtomicU32::new(0);
        let restarts = std::sync::Mutex::new((None, 0_u32));
        let sender = || async {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= 6_000 {
                    break;
                }
                accept_nth(&store, n).await.unwrap();
                let salt = header(&wal).map(|(_, salt)| salt);
                let mut seen = restarts.lock().unwrap();
                if seen.0.is_some() && seen.0 != salt {
                    seen.1 += 1;
                }
                seen.0 = salt;
            }
        };
        rt.block_on(futures_util::future::join_all((0..8).map(|_| sender())));
        let (page, _) = header(&wal).unwrap();
        let frames = (std::fs::metadata(&wal).unwrap().len() - 32) / (page + 24);
        let restarts = restarts.lock().unwrap().1;
        // About twenty here; none without the pass that holds the writer back.
        assert!(
            restarts >= 5,
            "the log started over {restarts} times in 6,000 deliveries and is {frames} frames long: checkpoints did not catch up with the writer"
        );
    }

    /// The pages of the `jobs` table and its indexes that each commit in the log after
    /// byte `from` changed, summed over those commits.
    fn jobs_pages_in_log(
        db: &std::path::Path,
        from: usize,
    ) -> std::collections::BTreeMap<String, usize> {
        let wal = std::fs::read(db.with_extension("db-wal")).unwrap();
        let page = usize::try_from(u32::from_be_bytes(wal[8..12].try_into().unwrap())).unwrap();
        let frame = 24 + page;
        let mut at = 32 + from.saturating_sub(32) / frame * frame;
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut owner = std::collections::HashMap::new();
        let mut rows = conn
            .prepare(
                "SELECT d.pageno, d.name FROM dbstat d JOIN sqlite_schema s ON s.name = d.name
                 WHERE s.tbl_name = 'jobs'",
            )
            .unwrap();
        for row in rows
            .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
        {
            let (pageno, name) = row.unwrap();
            owner.insert(pageno, name);
        }
        let (mut pages, mut commit) = (
            std::collections::BTreeMap::new(),
            std::collections::HashSet::new(),
        );
        while at + frame <= wal.len() {
            let pageno = u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
            commit.insert(pageno);
            if wal[at + 4..at + 8] != [0; 4] {
                for p in commit.drain() {
                    if let Some(name) = owner.get(&p) {
                        *pages.entry(name.clone()).or_insert(0) += 1;
                    }
                }
            }
            at += frame;
        }
        pages
    }

    /// A delivery changes no index of jobs that grows with the history, but where it
    /// appends: with 5,000 ended jobs, a delivery that supersedes the job before it
    /// changes about six pages of `jobs` and its indexes (the row's leaf, one of the
    /// commits-built-on index, one each of the small pending and active jobs' indexes,
    /// the end of the ended jobs' range). With an index of every job's state there were
    /// two more pages per such index: the pending job's and the superseded one's.
    #[test]
    fn a_delivery_changes_few_pages_of_the_jobs_whatever_the_history() {
        let (rt, dir, store) = writer_under_test();
        let db = dir.path().join("deployhook.db");
        {
            let mut seed = rusqlite::Connection::open(&db).unwrap();
            let tx = seed.transaction().unwrap();
            for i in 0..5_000 {
                let state = ["succeeded", "superseded"][i % 2];
                tx.execute(
                    "INSERT INTO jobs (hook, rule, state, forge, repository, git_ref, before_sha,
                                       after_sha, created_at, finished_at, rule_key, lane)
                     VALUES ('h', 0, ?1, 'generic', 'a/b', 'refs/heads/main', ?2, ?2, 1, 1, '0', 'h')",
                    rusqlite::params![state, format!("{:040x}", 1_000_000 + i)],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let held = std::sync::Arc::clone(&store.checkpoint_hold);
        let _held = held.lock().unwrap();
        rt.block_on(accept_nth(&store, 0)).unwrap();
        let from = usize::try_from(
            std::fs::metadata(db.with_extension("db-wal"))
                .unwrap()
                .len(),
        )
        .unwrap();
        let deliveries = 40;
        for n in 1..=deliveries {
            rt.block_on(accept_nth(&store, n)).unwrap();
        }
        let pages = jobs_pages_in_log(&db, from);
        let total: usize = pages.values().sum();
        let per_delivery = f64::from(u32::try_from(total).unwrap()) / f64::from(deliveries);
        assert!(
            per_delivery <= 7.0,
            "{per_delivery:.2} pages of jobs per delivery: {pages:?}"
        );
    }

    /// The counts by state, read off the three partial indexes, are the table's own.
    #[test]
    fn jobs_are_counted_by_state_off_the_partial_indexes() {
        use super::super::types::JobState;
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::schema::prepare(&mut conn).unwrap();
        for (i, state) in JobState::ALL.iter().cycle().take(50).enumerate() {
            conn.execute(
                "INSERT INTO jobs (hook, rule, state, forge, repository, git_ref, before_sha,
                                   after_sha, created_at, rule_key, lane)
                 VALUES (?1, 0, ?2, 'generic', 'a/b', 'refs/heads/main', 'b', 'a', 1, '0', ?1)",
                rusqlite::params![["h", "g", "f"][i % 3], state.as_str()],
            )
            .unwrap();
        }
        let naive: Vec<(String, u64)> = conn
            .prepare("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap()))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let counted: Vec<(String, u64)> = super::jobs::count_by_state(&conn)
            .unwrap()
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect();
        assert_eq!(naive.len(), JobState::ALL.len());
        assert_eq!(counted, naive);
    }

    /// Runs `f` on `store`'s writer connection, between group commits; `f` may hold it.
    fn on_writer(store: &super::Sqlite, f: Box<dyn FnOnce(&mut rusqlite::Connection) + Send>) {
        store.tx.send(super::Op::Alone(f)).unwrap();
    }

    /// Holds `store`'s writer until the returned sender sends, after running `sql` on its
    /// connection (a temporary trigger, say) and counting its commits from then on.
    fn hold_writer(
        store: &super::Sqlite,
        sql: &'static str,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::mpsc::Sender<()>,
    ) {
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&commits);
        let (release, held) = std::sync::mpsc::channel::<()>();
        on_writer(
            store,
            Box::new(move |conn| {
                conn.execute_batch(sql).unwrap();
                conn.commit_hook(Some(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    false
                }))
                .unwrap();
                held.recv().unwrap();
            }),
        );
        (commits, release)
    }

    /// A prune rides the group commit of the deliveries waiting beside it (one commit,
    /// one fsync, not one of its own), and a prune that fails undoes only itself: the
    /// deliveries in the same transaction are still accepted, the old job is still there,
    /// and the next prune removes it.
    #[test]
    fn a_prune_commits_with_the_deliveries_beside_it() {
        use super::super::Backend as _;
        use super::super::types::{Acceptance, Retention};
        use std::sync::atomic::Ordering;
        let (rt, _dir, store) = writer_under_test();
        let accept = |n: u32| accept_nth(&store, n);
        let Acceptance::Queued(entered) = rt.block_on(accept(0)).unwrap() else {
            panic!("not queued")
        };
        let old = entered[0].id;
        rt.block_on(store.cancel(old)).unwrap();
        let keep = Retention {
            keep_jobs: 0,
            keep_for: std::time::Duration::from_secs(3600),
            at_most: 10,
        };
        let (commits, release) = hold_writer(
            &store,
            "CREATE TEMP TRIGGER no_prune BEFORE DELETE ON main.jobs
             BEGIN SELECT RAISE(ABORT, 'held by the test'); END",
        );
        // Queued while the writer is held, so they wait for the same group commit.
        let (first, prune, second) = (accept(1), store.prune(keep), accept(2));
        release.send(()).unwrap();
        let (first, prune, second) = rt.block_on(async { tokio::join!(first, prune, second) });
        assert!(matches!(first, Ok(Acceptance::Queued(_))), "{first:?}");
        assert!(matches!(second, Ok(Acceptance::Queued(_))), "{second:?}");
        let err = prune.expect_err("the trigger refuses the prune's delete");
        assert!(err.to_string().contains("held by the test"), "{err}");
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "two deliveries and a prune, one commit"
        );
        assert!(rt.block_on(store.get(old)).unwrap().is_some());
        on_writer(
            &store,
            Box::new(|conn| {
                conn.execute_batch("DROP TRIGGER temp.no_prune").unwrap();
            }),
        );
        // The first of the two deliveries' jobs, superseded by the second, goes too.
        let pruned = rt.block_on(store.prune(keep)).unwrap();
        assert!(pruned.contains(&old), "{pruned:?}");
        assert!(rt.block_on(store.get(old)).unwrap().is_none());
    }

    /// The worker's heartbeats and finishes ride the group commit of the deliveries
    /// beside them (one commit for all), and a finish that fails undoes only itself: the
    /// deliveries and the heartbeat in the same transaction stand, the job is still
    /// running, and finishing it again works.
    #[test]
    fn a_job_s_heartbeat_and_finish_commit_with_the_deliveries_beside_them() {
        use super::super::Backend as _;
        use super::super::types::{Acceptance, Finished, InstanceId, JobState};
        use std::sync::atomic::Ordering;
        let (rt, _dir, store) = writer_under_test();
        let accept = |n: u32| accept_nth(&store, n);
        let me = InstanceId::new();
        let lease = |s| std::time::SystemTime::now() + std::time::Duration::from_secs(s);
        rt.block_on(accept(0)).unwrap();
        let job = rt
            .block_on(store.claim(me.clone(), lease(60)))
            .unwrap()
            .expect("the delivery's job is claimable");
        let (commits, release) = hold_writer(
            &store,
            "CREATE TEMP TRIGGER no_finish BEFORE UPDATE OF state ON main.jobs
             WHEN NEW.state = 'succeeded'
             BEGIN SELECT RAISE(ABORT, 'held by the test'); END",
        );
        // Queued while the writer is held, so they wait for the same group commit.
        let until = lease(3600);
        let first = accept(1);
        let beat = store.heartbeat(me.clone(), vec![job.id], until);
        let finish = store.finish(me.clone(), job.id, JobState::Succeeded, "done".into(), None);
        let second = accept(2);
        release.send(()).unwrap();
        let (first, beat, finish, second) =
            rt.block_on(async { tokio::join!(first, beat, finish, second) });
        assert!(matches!(first, Ok(Acceptance::Queued(_))), "{first:?}");
        assert!(matches!(second, Ok(Acceptance::Queued(_))), "{second:?}");
        let beat = beat.expect("the heartbeat commits");
        assert!(beat.lost.is_empty(), "{beat:?}");
        let err = finish.expect_err("the trigger refuses the finish's update");
        assert!(err.to_string().contains("held by the test"), "{err}");
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "two deliveries, a heartbeat and a finish: one commit"
        );
        let still = rt.block_on(store.get(job.id)).unwrap().unwrap();
        assert_eq!(still.state, JobState::Running);
        let renewed: i64 = {
            let (tx, rx) = std::sync::mpsc::channel();
            let id = job.id.0;
            on_writer(
                &store,
                Box::new(move |conn| {
                    conn.execute_batch("DROP TRIGGER temp.no_finish").unwrap();
                    let until: i64 = conn
                        .query_row("SELECT lease_until FROM jobs WHERE id = ?1", [id], |r| {
                            r.get(0)
                        })
                        .unwrap();
                    tx.send(until).unwrap();
                }),
            );
            rx.recv().unwrap()
        };
        assert_eq!(
            renewed,
            super::ms(until),
            "the heartbeat beside the failed finish was kept"
        );
        let again = rt.block_on(store.finish(me, job.id, JobState::Succeeded, "done".into(), None));
        assert!(matches!(again, Ok(Finished::Recorded)), "{again:?}");
        let done = rt.block_on(store.get(job.id)).unwrap().unwrap();
        assert_eq!(done.state, JobState::Succeeded);
    }

    /// What SQLite counted for one statement, as of its last run.
    #[derive(Debug, Clone, Copy, Default)]
    struct Counted {
        /// Times the trace saw it run to its end.
        calls: i32,
        /// Runs since it was prepared (one prepare for every call: `runs == calls`).
        runs: i32,
        replanned: i32,
        full_scan_steps: i32,
        vm_steps: i32,
    }

    type Counts = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Counted>>>;

    /// A writer's connection on a fresh database in `dir`, with every statement's
    /// counters recorded (by its SQL) each time it runs.
    fn traced(dir: &std::path::Path) -> (rusqlite::Connection, Counts) {
        use rusqlite::StatementStatus;
        use rusqlite::trace::{TraceEvent, TraceEventCodes};
        let mut conn = rusqlite::Connection::open(dir.join("deployhook.db")).unwrap();
        super::schema::prepare(&mut conn).unwrap();
        let counts = Counts::default();
        let seen = std::sync::Arc::clone(&counts);
        conn.trace_v2(
            TraceEventCodes::SQLITE_TRACE_PROFILE,
            Some(move |e: TraceEvent<'_>| {
                if let TraceEvent::Profile(stmt, _) = e {
                    let mut seen = seen.lock().unwrap();
                    let n = seen.entry(stmt.sql().into_owned()).or_default();
                    *n = Counted {
                        calls: n.calls + 1,
                        runs: stmt.get_status(StatementStatus::Run),
                        replanned: stmt.get_status(StatementStatus::RePrepare),
                        full_scan_steps: stmt.get_status(StatementStatus::FullscanStep),
                        vm_steps: stmt.get_status(StatementStatus::VmStep),
                    };
                }
            }),
        )
        .unwrap();
        (conn, counts)
    }

    /// Runs one prune (keep 100 per hook, at most 50) on a fresh database holding
    /// `history` finished jobs, delivery records and year-old replay keys of two hooks;
    /// the ids removed, the statements that scanned a table or index in full, and the
    /// VM steps the prune's statements took.
    fn prune_of(history: i64) -> (Vec<i64>, Vec<String>, i64) {
        use super::super::types::Retention;
        let dir = tempfile::tempdir().unwrap();
        let (conn, counts) = traced(dir.path());
        let now = super::Now::system();
        let sha = "a".repeat(40);
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..history {
            let hook = if i % 2 == 0 { "h" } else { "g" };
            let state = ["succeeded", "failed", "superseded"][usize::try_from(i % 3).unwrap()];
            conn.execute(
                "INSERT INTO jobs (hook, rule, state, forge, repository, git_ref, before_sha,
                                   after_sha, created_at, rule_key, lane)
                 VALUES (?1, 0, ?2, 'github', 'a/b', 'refs/heads/main', ?3, ?3, ?4, '0', ?1)",
                rusqlite::params![hook, state, sha, now.secs],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO delivery_log (hook, forge, received_at, outcome, reason)
                 VALUES (?1, 'github', ?2, 'ignored', 'a tag')",
                rusqlite::params![hook, now.ms],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO deliveries (hook, key, received_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![hook, format!("id:{i}"), now.secs - 400 * 86_400],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        counts.lock().unwrap().clear();
        let keep = Retention {
            keep_jobs: 100,
            keep_for: std::time::Duration::from_secs(86_400),
            at_most: 50,
        };
        let removed = super::jobs::prune(&conn, keep, now).unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM delivery_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, history - 50, "delivery records removed");
        let counts = counts.lock().unwrap();
        let scans = counts
            .iter()
            .filter(|(_, c)| c.full_scan_steps > 0)
            .map(|(sql, _)| sql.clone())
            .collect();
        let steps = counts.values().map(|c| i64::from(c.vm_steps)).sum();
        (removed.into_iter().map(|id| id.0).collect(), scans, steps)
    }

    /// A prune walks index ranges from where it starts to where it has enough: it never
    /// scans a whole table or index, and four times the history costs it no more (it used
    /// to rank every finished job with a window function: 364 ms on the writer, which
    /// every delivery waits for, with 100,000 old jobs).
    #[test]
    fn a_prune_costs_what_it_removes_not_the_history() {
        let (removed, scans, small) = prune_of(2_000);
        assert_eq!(removed.len(), 50);
        // The oldest go first, and none of either hook's 100 newest.
        assert!(removed.iter().all(|id| *id <= 2_000 - 200), "{removed:?}");
        assert!(scans.is_empty(), "full scans: {scans:#?}");
        let (removed, scans, large) = prune_of(8_000);
        assert_eq!(removed.len(), 50);
        assert!(scans.is_empty(), "full scans: {scans:#?}");
        assert!(
            large * 10 < small * 12,
            "{large} VM steps with 8,000 jobs against {small} with 2,000"
        );
    }

    /// Runs the delivery and job paths forty times on a traced writer's connection, as
    /// the writer thread does (accept, record, claim, finish, prune), and returns what
    /// the trace counted for each statement.
    fn exercise_write_paths() -> (
        tempfile::TempDir,
        rusqlite::Connection,
        std::collections::BTreeMap<String, Counted>,
    ) {
        use super::super::types::{
            EventKind, InstanceId, JobState, Queue, Retention, Subscription,
        };
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, counts) = traced(dir.path());
        let owner = InstanceId::from_recorded("w");
        let far = super::ms(std::time::SystemTime::now()) + 3_600_000;
        let every = vec![EventKind::Queued, EventKind::Started, EventKind::Succeeded];
        for n in 0..40_u32 {
            let tx = conn.transaction().unwrap();
            let now = super::Now::system();
            let hook = if n % 2 == 0 { "h" } else { "paused" };
            if n == 1 {
                super::pauses::pause(&tx, "paused", "test", now).unwrap();
            }
            let mut job = conformance::job(0, Queue::Supersede, 'a');
            job.event.after = crate::event::Sha::parse(&format!("{n:040x}")).unwrap();
            job.event.before = crate::event::Sha::parse(&format!("{:040x}", n + 1000)).unwrap();
            job.notify = vec![Subscription {
                target: "status".into(),
                on: every.clone(),
                latest_only: n % 4 == 0,
            }];
            let keys = vec![format!("id:{n}"), format!("body:{n}")];
            super::deliveries::accept(&tx, &conformance::delivery(hook), &keys, &[job], 1_000, now)
                .unwrap();
            super::deliveries::record(
                &tx,
                &conformance::delivery(hook),
                super::NotQueued::Ignored,
                "a tag",
                now,
            )
            .unwrap();
            if let Some(job) = super::jobs::claim(&tx, &owner, far, &[], now).unwrap() {
                let beat = super::jobs::heartbeat(&tx, &owner, &[job.id], far).unwrap();
                assert!(beat.lost.is_empty() && beat.cancel.is_empty(), "{beat:?}");
                super::jobs::finish(
                    &tx,
                    &owner,
                    job.id,
                    JobState::Succeeded,
                    "exit 0",
                    None,
                    now,
                )
                .unwrap();
            }
            let keep = Retention {
                keep_jobs: 3,
                keep_for: std::time::Duration::ZERO,
                at_most: 10,
            };
            super::jobs::prune(&tx, keep, now).unwrap();
            assert!(super::jobs::recover(&tx, 0, now).unwrap().is_empty());
            tx.commit().unwrap();
        }
        let seen = counts.lock().unwrap().clone();
        assert!(seen.len() > 10, "the trace saw {} statements", seen.len());
        (dir, conn, seen)
    }

    /// SQLite re-plans a cached statement when a value bound to it could change the plan
    /// (a parameter compared with a partial index's condition, a LIKE pattern, a LIMIT,
    /// stat4 samples): a whole parse and plan per call, on the writer thread that every
    /// delivery waits for. Check that no statement of the write paths was prepared again.
    #[test]
    fn no_statement_on_the_write_paths_is_planned_again_per_call() {
        let (_dir, _conn, seen) = exercise_write_paths();
        let again: Vec<_> = seen.iter().filter(|(_, n)| n.replanned > 0).collect();
        assert!(again.is_empty(), "planned again per call: {again:#?}");
    }

    /// Every statement of the write paths is prepared once and kept: one prepared
    /// statement runs as often as it is called. (rusqlite's cache held 16, fewer than
    /// the writer uses, and a claim or a prune pushed the delivery path's statements
    /// out: a parse and plan each, per delivery.) Transaction control is rusqlite's,
    /// prepared per transaction, not per delivery.
    #[test]
    fn every_statement_on_the_write_paths_is_prepared_once() {
        let (_dir, _conn, seen) = exercise_write_paths();
        let control = ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"];
        let prepared_again: Vec<_> = seen
            .iter()
            .filter(|(sql, _)| !control.iter().any(|c| sql.starts_with(c)))
            .filter(|(_, n)| n.runs < n.calls)
            .collect();
        assert!(
            prepared_again.is_empty(),
            "prepared more than once: {prepared_again:#?}"
        );
    }

    /// No statement of the write paths builds a temporary b-tree (an `IN (...)` list or
    /// subquery, an UPDATE that must collect its rows before changing an index it walks,
    /// RETURNING, a sort): each is a b-tree opened, filled and closed per call, on the
    /// writer thread, and they were a quarter of its instructions per delivery.
    #[test]
    fn no_statement_on_the_write_paths_builds_a_temporary_btree() {
        let (_dir, conn, seen) = exercise_write_paths();
        let temporary = ["OpenEphemeral", "OpenAutoindex", "SorterOpen"];
        let mut building = Vec::new();
        for sql in seen.keys() {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            // Parameters left unbound: EXPLAIN only prepares the statement.
            let mut rows = explain.raw_query();
            let mut found = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                let op: String = row.get(1).unwrap();
                if temporary.contains(&op.as_str()) {
                    found.push(op);
                }
            }
            if !found.is_empty() {
                building.push(format!("{found:?}: {sql}"));
            }
        }
        assert!(building.is_empty(), "temporary b-trees: {building:#?}");
    }

    #[tokio::test]
    async fn a_claim_that_finds_nothing_never_waits_for_the_writer() {
        use super::super::Backend;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = super::Sqlite::open(dir.path()).unwrap();
        // Hold the writer until told: were the claim to go to it, it could not answer.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocked = sqlite.write(move |_, _| {
            let _ = held.recv();
            Ok(())
        });
        let owner = super::InstanceId::from_recorded("w");
        let lease = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        let claimed = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            sqlite.claim(owner, lease),
        )
        .await
        .expect("the claim waited for the writer");
        assert_eq!(claimed.unwrap(), None);
        release.send(()).unwrap();
        blocked.await.unwrap();
    }

    #[tokio::test]
    async fn replays_are_refused_and_leases_voided_across_reopen() {
        use super::super::types::*;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = vec!["id:1".to_owned()];
        let job = conformance::job(0, Queue::Fifo, 'a');
        let delivery = conformance::delivery("h");
        assert!(matches!(
            store
                .accept(
                    delivery.clone(),
                    keys.clone(),
                    vec![job.clone()],
                    conformance::ROOM
                )
                .await
                .unwrap(),
            Acceptance::Queued(_)
        ));
        let far = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let me = InstanceId::from_recorded("old");
        let running = store.claim(me, far).await.unwrap().unwrap();
        drop(store);
        // The lock is this process's now: the old process's lease is void, although it
        // had an hour left.
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store
                .accept(delivery, keys, vec![job], conformance::ROOM)
                .await
                .unwrap(),
            Acceptance::Duplicate(Prior { same_id: true, .. })
        ));
        let recovered = store.recover(std::time::SystemTime::now()).await.unwrap();
        assert_eq!(
            recovered.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![running.id]
        );
    }
}
