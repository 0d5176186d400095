//! The embedded state in `state_dir`: which deliveries were accepted (so a replay never
//! deploys twice, across restarts too), the job queue with every job's history, and the
//! job logs' location. The only module that writes the database.
//!
//! All database work goes through one writer thread. Acceptances that arrive together are
//! committed in one transaction (group commit): each is durable (WAL, fsync) before its
//! caller hears back, yet a burst costs one fsync, not one per delivery. The operations a
//! second backend (a shared PostgreSQL for several replicas) would have to provide are the
//! public methods of [`Store`].

mod jobs;
mod lock;
mod schema;

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

pub use jobs::{CancelResult, JobFilter, JobRecord, JobState, NewJob, Origin};

/// The most acceptances one transaction commits.
const MAX_BATCH: usize = 512;

/// A job's id, as shown in responses and the jobs API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

/// The store's answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded; these jobs are queued.
    Queued(Vec<JobId>),
    /// One of the delivery's replay keys was accepted for this hook before.
    Duplicate(Prior),
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the state database {path}: {reason}; check that state_dir exists and is writable by the daemon's user"
    )]
    Open { path: PathBuf, reason: String },
    #[error("cannot write the state database: {0}")]
    Write(String),
    #[error("the state database writer has stopped")]
    Closed,
    /// Another daemon uses the same `state_dir`.
    #[error(
        "state_dir {} is in use by another deployhook ({holder}); stop that one, or give this one a state_dir of its own",
        dir.display()
    )]
    InUse { dir: PathBuf, holder: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Write(e.to_string())
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One request to the writer thread.
enum Op {
    Accept {
        hook: String,
        replay_keys: Vec<String>,
        jobs: Vec<NewJob>,
        reply: Reply<Acceptance>,
    },
    Claim {
        reply: Reply<Option<JobRecord>>,
    },
    Finish {
        id: JobId,
        state: JobState,
        detail: String,
        reply: Reply<()>,
    },
    Cancel {
        id: JobId,
        reply: Reply<CancelResult>,
    },
    Recover {
        reply: Reply<Vec<JobRecord>>,
    },
    Requeue {
        id: JobId,
        reply: Reply<JobId>,
    },
    Get {
        id: JobId,
        reply: Reply<Option<JobRecord>>,
    },
    List {
        filter: JobFilter,
        reply: Reply<Vec<JobRecord>>,
    },
    CountByState {
        reply: Reply<Vec<(String, i64)>>,
    },
    Prune {
        keep_jobs: usize,
        keep_for: Duration,
        reply: Reply<Vec<JobId>>,
    },
}

/// Creates `dir` (and its parents) if missing and gives it `mode`.
fn private(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Handle to the store; cheap to clone. The writer thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Op>,
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `state_dir/deployhook.db` and `state_dir/logs/`, and
    /// makes them private to the daemon, whatever the umask it was started with:
    /// `state_dir` and `logs/` 0750, the database (and its WAL files) 0600.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("deployhook.db");
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        for dir in [state_dir.to_path_buf(), state_dir.join("logs")] {
            private(&dir, 0o750).map_err(|e| open_err(format!("{}: {e}", dir.display())))?;
        }
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
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                // Held for as long as this store can write: see `lock`.
                let _held = lock;
                writer(conn, &rx);
            })
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store {
            tx,
            dir: state_dir.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("deployhook.db")
    }

    /// Where a job's log lives.
    pub fn log_path(&self, id: JobId) -> PathBuf {
        self.dir.join("logs").join(format!("{}.log", id.0))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Records a delivery and queues its jobs in one transaction, unless one of its
    /// replay keys was seen for this hook before. A queued `supersede` job marks the
    /// pending jobs of the same hook and rule as superseded. Returns once on disk.
    pub async fn accept(
        &self,
        hook: &str,
        replay_keys: Vec<String>,
        jobs: Vec<NewJob>,
    ) -> Result<Acceptance, StoreError> {
        let hook = hook.to_owned();
        self.call(|reply| Op::Accept {
            hook,
            replay_keys,
            jobs,
            reply,
        })
        .await
    }

    /// Marks the oldest queued job whose hook has no running job as running, and returns it.
    pub async fn claim(&self) -> Result<Option<JobRecord>, StoreError> {
        self.call(|reply| Op::Claim { reply }).await
    }

    /// Records how a running job ended.
    pub async fn finish(
        &self,
        id: JobId,
        state: JobState,
        detail: String,
    ) -> Result<(), StoreError> {
        self.call(|reply| Op::Finish {
            id,
            state,
            detail,
            reply,
        })
        .await
    }

    /// Cancels a queued job at once; for a running one, says so (the worker kills it).
    pub async fn cancel(&self, id: JobId) -> Result<CancelResult, StoreError> {
        self.call(|reply| Op::Cancel { id, reply }).await
    }

    /// At startup: marks jobs left `running` by a previous process as interrupted and
    /// returns them.
    pub async fn recover(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.call(|reply| Op::Recover { reply }).await
    }

    /// Queues a copy of an interrupted job (attempt + 1).
    pub async fn requeue(&self, id: JobId) -> Result<JobId, StoreError> {
        self.call(|reply| Op::Requeue { id, reply }).await
    }

    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.call(|reply| Op::Get { id, reply }).await
    }

    pub async fn list(&self, filter: JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        self.call(|reply| Op::List { filter, reply }).await
    }

    /// How many jobs are in each state (for metrics).
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(|reply| Op::CountByState { reply }).await
    }

    /// Deletes finished jobs beyond `keep_jobs` per hook or older than `keep_for`, and
    /// their logs; returns the ids removed.
    pub async fn prune(
        &self,
        keep_jobs: usize,
        keep_for: Duration,
    ) -> Result<Vec<JobId>, StoreError> {
        let removed = self
            .call(|reply| Op::Prune {
                keep_jobs,
                keep_for,
                reply,
            })
            .await?;
        let logs: Vec<PathBuf> = removed.iter().map(|id| self.log_path(*id)).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for log in logs {
                let _ = std::fs::remove_file(log);
            }
        })
        .await;
        Ok(removed)
    }
}

fn writer(mut conn: Connection, rx: &mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        // Gather the acceptances waiting right now into one transaction; any other
        // operation is done on its own, in arrival order.
        let mut accepts = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Accept {
                    hook,
                    replay_keys,
                    jobs,
                    reply,
                } => {
                    accepts.push((hook, replay_keys, jobs, reply));
                    if accepts.len() < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                other => {
                    commit_accepts(&mut conn, std::mem::take(&mut accepts));
                    run_one(&mut conn, other);
                    next = rx.try_recv().ok();
                }
            }
        }
        commit_accepts(&mut conn, accepts);
    }
}

type PendingAccept = (String, Vec<String>, Vec<NewJob>, Reply<Acceptance>);

fn commit_accepts(conn: &mut Connection, batch: Vec<PendingAccept>) {
    if batch.is_empty() {
        return;
    }
    let result = (|| -> rusqlite::Result<Vec<Acceptance>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcomes = batch
            .iter()
            .map(|(hook, keys, jobs, _)| jobs::accept(&tx, hook, keys, jobs, unix_now()))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            for ((.., reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "state database write failed; deliveries are refused until it works again");
            for (.., reply) in batch {
                let _ = reply.send(Err(StoreError::Write(e.to_string())));
            }
        }
    }
}

fn run_one(conn: &mut Connection, op: Op) {
    let now = unix_now();
    match op {
        Op::Accept { .. } => unreachable!("acceptances are batched"),
        Op::Claim { reply } => send(reply, jobs::claim(conn, now)),
        Op::Finish {
            id,
            state,
            detail,
            reply,
        } => send(reply, jobs::finish(conn, id, state, &detail, now)),
        Op::Cancel { id, reply } => send(reply, jobs::cancel(conn, id, now)),
        Op::Recover { reply } => send(reply, jobs::recover(conn, now)),
        Op::Requeue { id, reply } => send(reply, jobs::requeue(conn, id, now)),
        Op::Get { id, reply } => send(reply, jobs::get(conn, id)),
        Op::List { filter, reply } => send(reply, jobs::list(conn, &filter)),
        Op::CountByState { reply } => send(reply, jobs::count_by_state(conn)),
        Op::Prune {
            keep_jobs,
            keep_for,
            reply,
        } => {
            let cutoff = now - i64::try_from(keep_for.as_secs()).unwrap_or(i64::MAX / 2);
            send(reply, jobs::prune(conn, keep_jobs, cutoff));
        }
    }
}

fn send<T>(reply: Reply<T>, result: rusqlite::Result<T>) {
    let _ = reply.send(result.map_err(StoreError::from));
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
