//! The embedded state in `state_dir`: which deliveries were accepted (so that a replay
//! never deploys twice, across restarts too) and the jobs they queued. The only module
//! that writes `state_dir`.
//!
//! All writes go through one writer thread that commits whatever requests are waiting in
//! one transaction (group commit): each request is durable (fsync'd, WAL) before its
//! caller hears back, yet a burst costs one fsync, not one per delivery.

mod schema;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::intake::JobSpec;

/// The most requests one transaction commits.
const MAX_BATCH: usize = 512;

/// A job's id, as shown in responses and (later) the jobs API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

/// The store's answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded; these jobs are queued.
    Queued(Vec<JobId>),
    /// One of the delivery's replay keys was accepted for this hook before.
    Duplicate,
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
}

struct Accept {
    hook: String,
    replay_keys: Vec<String>,
    jobs: Vec<JobSpec>,
    reply: oneshot::Sender<Result<Acceptance, StoreError>>,
}

/// Handle to the store; cheap to clone. The writer thread ends when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Accept>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `state_dir/deployhook.db`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join("deployhook.db");
        let open_err = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| open_err(e.to_string()))?;
        let mut conn = Connection::open(&path).map_err(|e| open_err(e.to_string()))?;
        schema::prepare(&mut conn).map_err(|e| open_err(e.to_string()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer(conn, &rx))
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Store { tx, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a delivery and queues its jobs in one transaction, unless one of its
    /// replay keys was seen for this hook before. Returns once the record is on disk.
    pub async fn accept(
        &self,
        hook: &str,
        replay_keys: Vec<String>,
        jobs: Vec<JobSpec>,
    ) -> Result<Acceptance, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Accept {
                hook: hook.to_owned(),
                replay_keys,
                jobs,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn writer(mut conn: Connection, rx: &mpsc::Receiver<Accept>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        match commit_batch(&mut conn, &batch) {
            Ok(outcomes) => {
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = req.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "state database write failed; deliveries are refused until it works again");
                for req in batch {
                    let _ = req.reply.send(Err(StoreError::Write(e.to_string())));
                }
            }
        }
    }
}

fn commit_batch(conn: &mut Connection, batch: &[Accept]) -> rusqlite::Result<Vec<Acceptance>> {
    let now = unix_now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut seen =
            tx.prepare_cached("SELECT 1 FROM deliveries WHERE hook = ?1 AND key = ?2")?;
        let mut remember = tx.prepare_cached(
            "INSERT INTO deliveries (hook, key, received_at) VALUES (?1, ?2, ?3)",
        )?;
        let mut insert_job = tx.prepare_cached(
            "INSERT INTO jobs (hook, rule, state, forge, repository, git_ref, before_sha, after_sha, pusher, delivery, created_at)
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for req in batch {
            let mut duplicate = false;
            for key in &req.replay_keys {
                duplicate |= seen
                    .query_row(params![req.hook, key], |_| Ok(()))
                    .optional()?
                    .is_some();
            }
            if duplicate {
                outcomes.push(Acceptance::Duplicate);
                continue;
            }
            for key in &req.replay_keys {
                remember.execute(params![req.hook, key, now])?;
            }
            let mut ids = Vec::with_capacity(req.jobs.len());
            for job in &req.jobs {
                let e = &job.event;
                insert_job.execute(params![
                    req.hook,
                    i64::try_from(job.rule).unwrap_or(i64::MAX),
                    e.forge.as_str(),
                    e.repository,
                    e.git_ref.as_str(),
                    e.before.as_str(),
                    e.after.as_str(),
                    e.pusher,
                    e.delivery.as_ref().map(|d| d.as_str().to_owned()),
                    now,
                ])?;
                ids.push(JobId(tx.last_insert_rowid()));
            }
            outcomes.push(Acceptance::Queued(ids));
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangedPaths, Forge, PushEvent, RefName, Sha};

    fn job() -> JobSpec {
        JobSpec {
            rule: 0,
            event: PushEvent {
                forge: Forge::Generic,
                repository: "a/b".into(),
                git_ref: RefName::parse("refs/heads/main").unwrap(),
                before: Sha::parse(&"1".repeat(40)).unwrap(),
                after: Sha::parse(&"2".repeat(40)).unwrap(),
                forced: false,
                paths: ChangedPaths::Unknown,
                pusher: Some("me".into()),
                delivery: None,
            },
        }
    }

    #[tokio::test]
    async fn replays_are_refused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = vec!["id:1".to_owned(), "body:x".to_owned()];
        let first = store.accept("h", keys.clone(), vec![job()]).await.unwrap();
        assert!(matches!(first, Acceptance::Queued(ref ids) if ids.len() == 1));
        // Same body under a fresh delivery id: still a replay.
        let again = store
            .accept("h", vec!["id:2".into(), "body:x".into()], vec![job()])
            .await
            .unwrap();
        assert_eq!(again, Acceptance::Duplicate);
        // Another hook has its own record.
        let other = store.accept("g", keys.clone(), vec![job()]).await.unwrap();
        assert!(matches!(other, Acceptance::Queued(_)));
        drop(store);

        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(
            reopened.accept("h", keys, vec![job()]).await.unwrap(),
            Acceptance::Duplicate
        );
        let conn = Connection::open(dir.path().join("deployhook.db")).unwrap();
        let queued: i64 = conn
            .query_row(
                "SELECT count(*) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(queued, 2);
    }

    #[tokio::test]
    async fn concurrent_duplicates_are_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(
                    async move { s.accept("h", vec!["id:same".into()], vec![job()]).await },
                )
            })
            .collect();
        let mut queued = 0;
        for t in tasks {
            if matches!(t.await.unwrap().unwrap(), Acceptance::Queued(_)) {
                queued += 1;
            }
        }
        assert_eq!(queued, 1);
    }
}
