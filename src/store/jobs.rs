//! The job queue's SQL: accepting deliveries, claiming the next runnable job, finishing,
//! cancelling, recovering after a crash, listing and pruning. Called only from the store's
//! writer thread.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::JobId;
use crate::config::QueueMode;
use crate::intake::JobSpec;

/// Where a job is in its life. Only `Queued` and `Running` are not final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
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
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
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
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to insert: what intake decided, and where it came from.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub spec: JobSpec,
    pub origin: Origin,
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

/// One job as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRecord {
    pub id: i64,
    pub hook: String,
    pub rule: i64,
    pub state: String,
    pub queue: String,
    pub forge: String,
    pub repository: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub sha: String,
    pub pusher: Option<String>,
    pub delivery: Option<String>,
    pub attempt: i64,
    pub manual: bool,
    /// A manual deploy with `--force`: the commit was not checked against the ref.
    pub force: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why it ended: exit status, error, the job that superseded it.
    pub detail: Option<String>,
}

impl JobRecord {
    pub fn job_id(&self) -> JobId {
        JobId(self.id)
    }

    pub fn job_state(&self) -> JobState {
        JobState::parse(&self.state).unwrap_or(JobState::Failed)
    }
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
    /// It is running: the worker must stop it (and record it cancelled).
    Running,
    /// It had already ended in this state.
    AlreadyFinished(JobState),
    NotFound,
}

const COLUMNS: &str = "id, hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha, \
     pusher, delivery, attempt, manual, created_at, started_at, finished_at, detail, force";

fn record(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        hook: r.get(1)?,
        rule: r.get(2)?,
        state: r.get(3)?,
        queue: r.get(4)?,
        forge: r.get(5)?,
        repository: r.get(6)?,
        git_ref: r.get(7)?,
        before: r.get(8)?,
        sha: r.get(9)?,
        pusher: r.get(10)?,
        delivery: r.get(11)?,
        attempt: r.get(12)?,
        manual: r.get(13)?,
        created_at: r.get(14)?,
        started_at: r.get(15)?,
        finished_at: r.get(16)?,
        detail: r.get(17)?,
        force: r.get(18)?,
    })
}

pub(super) fn accept(
    tx: &Transaction<'_>,
    hook: &str,
    replay_keys: &[String],
    jobs: &[NewJob],
    now: i64,
) -> rusqlite::Result<super::Acceptance> {
    let mut seen =
        tx.prepare_cached("SELECT delivery, job FROM deliveries WHERE hook = ?1 AND key = ?2")?;
    for key in replay_keys {
        let prior = seen
            .query_row(params![hook, key], |r| {
                Ok(super::Prior {
                    same_id: key.starts_with("id:"),
                    delivery: r.get(0)?,
                    job: r.get::<_, Option<i64>>(1)?.map(JobId),
                })
            })
            .optional()?;
        if let Some(prior) = prior {
            return Ok(super::Acceptance::Duplicate(prior));
        }
    }
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        ids.push(insert(tx, hook, job, 1, now)?);
    }
    let delivery = jobs
        .first()
        .and_then(|j| j.spec.event.delivery.as_ref())
        .map(|d| d.as_str().to_owned());
    let mut remember = tx.prepare_cached(
        "INSERT INTO deliveries (hook, key, received_at, delivery, job) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for key in replay_keys {
        remember.execute(params![
            hook,
            key,
            now,
            delivery,
            ids.first().map(|id| id.0)
        ])?;
    }
    Ok(super::Acceptance::Queued(ids))
}

fn insert(
    conn: &Connection,
    hook: &str,
    job: &NewJob,
    attempt: i64,
    now: i64,
) -> rusqlite::Result<JobId> {
    let e = &job.spec.event;
    let rule = i64::try_from(job.spec.rule).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha,
                           pusher, delivery, attempt, manual, created_at, force)
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        hook,
        rule,
        job.spec.queue.as_str(),
        e.forge.as_str(),
        e.repository,
        e.git_ref.as_str(),
        e.before.as_str(),
        e.after.as_str(),
        e.pusher,
        e.delivery.as_ref().map(|d| d.as_str().to_owned()),
        attempt,
        matches!(job.origin, Origin::Manual { .. }),
        now,
        matches!(job.origin, Origin::Manual { force: true }),
    ])?;
    let id = JobId(conn.last_insert_rowid());
    if job.spec.queue == QueueMode::Supersede {
        // An operator's deploy is never "older" than anything: it runs.
        let later = match job.origin {
            Origin::Push => later_push(conn, hook, rule, job, id)?,
            Origin::Manual { .. } => None,
        };
        match later {
            Some(later) => {
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'superseded', finished_at = ?3,
                            detail = 'superseded by job ' || ?2 || ', a later push that arrived first'
                     WHERE id = ?1",
                )?
                .execute(params![id.0, later, now])?;
            }
            None => supersede_older(conn, hook, rule, id, now)?,
        }
    }
    Ok(id)
}

/// A job already here for a push that was made on top of this one's commit: deliveries
/// sent at once can arrive out of order, and the older push must not win. (A push that
/// only reverts the other, `after` and `before` swapped, is not "on top".) A push made on
/// top of the ref's current head (the last pushed commit) is not older whatever came
/// before: after A→B and B→C, a force-push C→A is a rollback and must run, though A→B was
/// built on A too.
fn later_push(
    conn: &Connection,
    hook: &str,
    rule: i64,
    job: &NewJob,
    id: JobId,
) -> rusqlite::Result<Option<i64>> {
    let e = &job.spec.event;
    let later: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM jobs
         WHERE hook = ?1 AND before_sha = ?2 AND rule = ?3 AND git_ref = ?4
           AND after_sha <> ?5 AND id < ?6
         LIMIT 1",
        )?
        .query_row(
            params![
                hook,
                e.after.as_str(),
                rule,
                e.git_ref.as_str(),
                e.before.as_str(),
                id.0
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(later) = later else {
        return Ok(None);
    };
    let head: Option<String> = conn
        .prepare_cached(
            "SELECT after_sha FROM jobs
             WHERE hook = ?1 AND git_ref = ?2 AND manual = 0 AND id < ?3
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![hook, e.git_ref.as_str(), id.0], |r| r.get(0))
        .optional()?;
    Ok((head.as_deref() != Some(e.before.as_str())).then_some(later))
}

/// A newer push replaces the pending ones of the same hook and rule.
fn supersede_older(
    conn: &Connection,
    hook: &str,
    rule: i64,
    newer: JobId,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'superseded', finished_at = ?4, detail = 'superseded by job ' || ?3
         WHERE hook = ?1 AND rule = ?2 AND state = 'queued' AND queue = 'supersede' AND id < ?3",
    )?
    .execute(params![hook, rule, newer.0, now])?;
    Ok(())
}

pub(super) fn claim(conn: &mut Connection, now: i64) -> rusqlite::Result<Option<JobRecord>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let next: Option<i64> = tx
        .query_row(
            "SELECT id FROM jobs
             WHERE state = 'queued'
               AND hook NOT IN (SELECT hook FROM jobs WHERE state = 'running')
             ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = next else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE jobs SET state = 'running', started_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    let job = get(&tx, JobId(id))?;
    tx.commit()?;
    Ok(job)
}

pub(super) fn finish(
    conn: &Connection,
    id: JobId,
    state: JobState,
    detail: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET state = ?2, finished_at = ?3, detail = ?4 WHERE id = ?1 AND state = 'running'",
        params![id.0, state.as_str(), now, detail],
    )?;
    Ok(())
}

pub(super) fn cancel(conn: &Connection, id: JobId, now: i64) -> rusqlite::Result<CancelResult> {
    let Some(job) = get(conn, id)? else {
        return Ok(CancelResult::NotFound);
    };
    Ok(match job.job_state() {
        JobState::Queued => {
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, detail = 'cancelled before it started'
                 WHERE id = ?1 AND state = 'queued'",
                params![id.0, now],
            )?;
            CancelResult::Cancelled
        }
        JobState::Running => CancelResult::Running,
        done => CancelResult::AlreadyFinished(done),
    })
}

pub(super) fn recover(conn: &Connection, now: i64) -> rusqlite::Result<Vec<JobRecord>> {
    let interrupted = {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state = 'running' ORDER BY id"
        ))?;
        stmt.query_map([], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    conn.execute(
        "UPDATE jobs SET state = 'interrupted', finished_at = ?1,
                detail = 'the daemon stopped while this job ran'
         WHERE state = 'running'",
        params![now],
    )?;
    Ok(interrupted)
}

pub(super) fn requeue(conn: &Connection, id: JobId, now: i64) -> rusqlite::Result<JobId> {
    conn.execute(
        "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha,
                               pusher, delivery, attempt, manual, created_at, detail, force)
             SELECT hook, rule, 'queued', queue, forge, repository, git_ref, before_sha, after_sha,
                    pusher, delivery, attempt + 1, manual, ?2, 'retry of interrupted job ' || id, force
             FROM jobs WHERE id = ?1",
        params![id.0, now],
    )?;
    Ok(JobId(conn.last_insert_rowid()))
}

pub(super) fn get(conn: &Connection, id: JobId) -> rusqlite::Result<Option<JobRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id.0], record)
        .optional()
}

pub(super) fn list(conn: &Connection, filter: &JobFilter) -> rusqlite::Result<Vec<JobRecord>> {
    let limit = i64::try_from(filter.limit.unwrap_or(100)).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs
         WHERE (?1 IS NULL OR hook = ?1) AND (?2 IS NULL OR state = ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?;
    stmt.query_map(
        params![filter.hook, filter.state.map(JobState::as_str), limit],
        record,
    )?
    .collect()
}

pub(super) fn count_by_state(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    conn.prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// The most jobs one prune removes: a prune holds the only writer, so a backlog (after a
/// flood of superseded pushes) is worked off a slice per worker tick, not all at once.
const PRUNE_BATCH: i64 = 2_000;

pub(super) fn prune(
    conn: &mut Connection,
    keep_jobs: usize,
    cutoff: i64,
) -> rusqlite::Result<Vec<JobId>> {
    let keep = i64::try_from(keep_jobs).unwrap_or(i64::MAX);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM (
                 SELECT id, created_at,
                        ROW_NUMBER() OVER (PARTITION BY hook ORDER BY id DESC) AS newer
                 FROM jobs WHERE state NOT IN ('queued', 'running'))
             WHERE newer > ?1 OR created_at < ?2
             ORDER BY id LIMIT ?3",
        )?
        .query_map(params![keep, cutoff, PRUNE_BATCH], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    {
        let mut delete = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
        for id in &ids {
            delete.execute(params![id])?;
        }
    }
    // Replay records outlive jobs: a year, so that an old push cannot come back soon.
    tx.execute(
        "DELETE FROM deliveries WHERE received_at < ?1",
        params![cutoff.min(super::unix_now() - 365 * 86_400)],
    )?;
    tx.commit()?;
    Ok(ids.into_iter().map(JobId).collect())
}

#[cfg(test)]
mod tests {
    use super::super::{Acceptance, Prior, Store};
    use super::*;
    use crate::event::{ChangedPaths, Forge, PushEvent, RefName, Sha};

    fn job(rule: usize, queue: QueueMode, sha: char) -> NewJob {
        NewJob {
            spec: JobSpec {
                rule,
                queue,
                event: PushEvent {
                    forge: Forge::Generic,
                    repository: "a/b".into(),
                    git_ref: RefName::parse("refs/heads/main").unwrap(),
                    before: Sha::parse(&"1".repeat(40)).unwrap(),
                    after: Sha::parse(&sha.to_string().repeat(40)).unwrap(),
                    forced: false,
                    paths: ChangedPaths::Unknown,
                    pusher: Some("me".into()),
                    delivery: None,
                },
            },
            origin: Origin::Push,
        }
    }

    fn ids(a: &Acceptance) -> Vec<JobId> {
        match a {
            Acceptance::Queued(ids) => ids.clone(),
            Acceptance::Duplicate(_) => panic!("duplicate"),
        }
    }

    #[tokio::test]
    async fn replays_are_refused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys = vec!["id:1".to_owned(), "body:x".to_owned()];
        let j = || vec![job(0, QueueMode::Fifo, '2')];
        let first = ids(&store.accept("h", keys.clone(), j()).await.unwrap());
        assert_eq!(first.len(), 1);
        // Same body under a fresh delivery id: still a replay, and it says of which job.
        let again = store
            .accept("h", vec!["id:2".into(), "body:x".into()], j())
            .await
            .unwrap();
        assert_eq!(
            again,
            Acceptance::Duplicate(Prior {
                same_id: false,
                delivery: None,
                job: Some(first[0]),
            })
        );
        // Another hook has its own record.
        assert!(matches!(
            store.accept("g", keys.clone(), j()).await.unwrap(),
            Acceptance::Queued(_)
        ));
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert!(matches!(
            reopened.accept("h", keys, j()).await.unwrap(),
            Acceptance::Duplicate(Prior { same_id: true, .. })
        ));
        let queued = reopened
            .list(JobFilter {
                state: Some(JobState::Queued),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(queued.len(), 2);
    }

    #[tokio::test]
    async fn concurrent_duplicates_are_accepted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.accept(
                        "h",
                        vec!["id:same".into()],
                        vec![job(0, QueueMode::Fifo, '2')],
                    )
                    .await
                })
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

    #[tokio::test]
    async fn supersede_keeps_only_the_newest_pending_job_per_rule() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = ids(&s
            .accept("h", vec![], vec![job(0, QueueMode::Supersede, 'a')])
            .await
            .unwrap())[0];
        let other_rule = ids(&s
            .accept("h", vec![], vec![job(1, QueueMode::Supersede, 'c')])
            .await
            .unwrap())[0];
        let b = ids(&s
            .accept("h", vec![], vec![job(0, QueueMode::Supersede, 'b')])
            .await
            .unwrap())[0];
        let got = s.get(a).await.unwrap().unwrap();
        assert_eq!(got.state, "superseded");
        assert_eq!(
            got.detail.as_deref(),
            Some(format!("superseded by job {}", b.0).as_str())
        );
        assert_eq!(s.get(b).await.unwrap().unwrap().state, "queued");
        assert_eq!(s.get(other_rule).await.unwrap().unwrap().state, "queued");
    }

    fn push(before: char, after: char) -> NewJob {
        let mut j = job(0, QueueMode::Supersede, after);
        j.spec.event.before = Sha::parse(&before.to_string().repeat(40)).unwrap();
        j
    }

    #[tokio::test]
    async fn a_push_arriving_after_the_one_built_on_it_does_not_win() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // Pushes a→b and b→c, delivered c first.
        let c = ids(&s.accept("h", vec![], vec![push('b', 'c')]).await.unwrap())[0];
        let b = ids(&s.accept("h", vec![], vec![push('a', 'b')]).await.unwrap())[0];
        assert_eq!(s.get(c).await.unwrap().unwrap().state, "queued");
        let late = s.get(b).await.unwrap().unwrap();
        assert_eq!(late.state, "superseded");
        assert_eq!(
            late.detail.as_deref(),
            Some(format!("superseded by job {}, a later push that arrived first", c.0).as_str())
        );
        // A revert (c→b after b→c) is newer, not older: it supersedes as usual.
        let revert = ids(&s.accept("h", vec![], vec![push('c', 'b')]).await.unwrap())[0];
        assert_eq!(s.get(revert).await.unwrap().unwrap().state, "queued");
        assert_eq!(s.get(c).await.unwrap().unwrap().state, "superseded");
    }

    /// The rollback bug: after a→b and b→c, a force-push back to a (c→a) was marked
    /// "superseded by a later push that arrived first" (a→b was built on a) and never ran,
    /// and so was a manual deploy of a. A push on top of the current head, and every
    /// manual deploy, runs.
    #[tokio::test]
    async fn a_rollback_by_force_push_or_by_hand_runs() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        ids(&s.accept("h", vec![], vec![push('a', 'b')]).await.unwrap());
        ids(&s.accept("h", vec![], vec![push('b', 'c')]).await.unwrap());
        let back = ids(&s.accept("h", vec![], vec![push('c', 'a')]).await.unwrap())[0];
        let job = s.get(back).await.unwrap().unwrap();
        assert_eq!(job.state, "queued", "{:?}", job.detail);
        let mut by_hand = push('0', 'a');
        by_hand.origin = Origin::Manual { force: false };
        let manual = ids(&s.accept("h", vec![], vec![by_hand]).await.unwrap())[0];
        let job = s.get(manual).await.unwrap().unwrap();
        assert_eq!(job.state, "queued", "{:?}", job.detail);
    }

    #[tokio::test]
    async fn one_running_job_per_hook_and_recovery_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (hook, sha) in [("h", 'a'), ("h", 'b'), ("g", 'c')] {
            s.accept(hook, vec![], vec![job(0, QueueMode::Fifo, sha)])
                .await
                .unwrap();
        }
        let first = s.claim().await.unwrap().unwrap();
        assert_eq!(
            (first.hook.as_str(), first.state.as_str()),
            ("h", "running")
        );
        // h is busy: the next runnable job is g's, then nothing.
        assert_eq!(s.claim().await.unwrap().unwrap().hook, "g");
        assert_eq!(s.claim().await.unwrap(), None);
        s.finish(first.job_id(), JobState::Succeeded, "exit 0".into())
            .await
            .unwrap();
        let second_h = s.claim().await.unwrap().unwrap();
        assert_eq!(
            (second_h.hook.as_str(), second_h.sha.as_str()),
            ("h", "b".repeat(40).as_str())
        );
        drop(s);

        // A new process finds h's and g's jobs still running: interrupted, and can retry.
        let s = Store::open(dir.path()).unwrap();
        let interrupted = s.recover().await.unwrap();
        assert_eq!(interrupted.len(), 2);
        assert_eq!(
            s.get(second_h.job_id()).await.unwrap().unwrap().state,
            "interrupted"
        );
        let retry = s.requeue(second_h.job_id()).await.unwrap();
        let r = s.get(retry).await.unwrap().unwrap();
        assert_eq!(
            (r.state.as_str(), r.attempt, r.sha.as_str()),
            ("queued", 2, second_h.sha.as_str())
        );
    }

    #[tokio::test]
    async fn cancel_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for sha in ['a', 'b', 'c', 'd'] {
            all.extend(ids(&s
                .accept("h", vec![], vec![job(0, QueueMode::Fifo, sha)])
                .await
                .unwrap()));
        }
        let running = s.claim().await.unwrap().unwrap();
        assert_eq!(
            s.cancel(running.job_id()).await.unwrap(),
            CancelResult::Running
        );
        assert_eq!(s.cancel(all[1]).await.unwrap(), CancelResult::Cancelled);
        assert_eq!(
            s.cancel(all[1]).await.unwrap(),
            CancelResult::AlreadyFinished(JobState::Cancelled)
        );
        assert_eq!(s.cancel(JobId(999)).await.unwrap(), CancelResult::NotFound);
        s.finish(running.job_id(), JobState::Failed, "exit 1".into())
            .await
            .unwrap();
        std::fs::write(s.log_path(running.job_id()), "log").unwrap();
        // Keep one finished job: the older of the two finished ones goes, with its log.
        let removed = s
            .prune(1, std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(removed, vec![all[0]]);
        assert!(!s.log_path(all[0]).exists());
        assert_eq!(s.list(JobFilter::default()).await.unwrap().len(), 3);
    }
}
