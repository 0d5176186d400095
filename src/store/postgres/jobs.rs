//! The job queue's SQL on PostgreSQL: queueing with supersede, claiming under a lease,
//! heartbeats, fenced finishing, cancelling, recovering expired leases, pruning, and each
//! change's event row, written in the same transaction. The statements follow the SQLite
//! backend's (`sqlite/jobs.rs`); what differs is said where it does.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{DB_MS, Fail, Tx};
use crate::event::{DeliveryId, Forge, RefName, Sha};
use crate::store::types::{
    CancelResult, Cursor, Entered, EventKind, Finished, Heartbeat, InstanceId, Job, JobEvent,
    JobFilter, JobId, JobState, NewJob, Origin, Queue, Retention,
};
use crate::store::wording::{self, Now, from_ms, from_secs};

pub(super) fn parse<T, E>(
    r: &Row,
    col: usize,
    what: &'static str,
    f: impl Fn(&str) -> Result<T, E>,
) -> Result<T, Fail> {
    let s: String = r.try_get(col)?;
    f(&s).map_err(|_| Fail::Corrupt { what, value: s })
}

pub(super) fn parse_opt<T, E>(
    r: &Row,
    col: usize,
    what: &'static str,
    f: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, Fail> {
    let s: Option<String> = r.try_get(col)?;
    s.map(|s| f(&s).map_err(|_| Fail::Corrupt { what, value: s }))
        .transpose()
}

pub(super) fn forge(s: &str) -> Result<Forge, ()> {
    Forge::from_name(s).ok_or(())
}

pub(super) fn kind(r: &Row, col: usize) -> Result<EventKind, Fail> {
    parse(r, col, "event kind", |s| EventKind::parse(s).ok_or(()))
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "id, hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha, \
     pusher, delivery, attempt, manual, created_at, started_at, finished_at, detail, force, \
     owner, cancel_requested, summary, rule_key, changed_paths, lock";

fn job(r: &Row) -> Result<Job, Fail> {
    let (manual, force): (bool, bool) = (r.try_get(13)?, r.try_get(18)?);
    let paths: Option<String> = r.try_get(23)?;
    Ok(Job {
        id: JobId(r.try_get(0)?),
        hook: r.try_get(1)?,
        rule: usize::try_from(r.try_get::<_, i64>(2)?).unwrap_or(usize::MAX),
        state: parse(r, 3, "job state", |s| JobState::parse(s).ok_or(()))?,
        queue: parse(r, 4, "queue mode", |s| Queue::parse(s).ok_or(()))?,
        forge: parse(r, 5, "forge", forge)?,
        repository: r.try_get(6)?,
        git_ref: parse(r, 7, "ref", RefName::parse)?,
        before: parse(r, 8, "commit", Sha::parse)?,
        sha: parse(r, 9, "commit", Sha::parse)?,
        pusher: r.try_get(10)?,
        delivery: parse_opt(r, 11, "delivery id", DeliveryId::parse)?,
        attempt: u32::try_from(r.try_get::<_, i64>(12)?).unwrap_or(u32::MAX),
        origin: if manual {
            Origin::Manual { force }
        } else {
            Origin::Push
        },
        created_at: from_secs(r.try_get(14)?),
        started_at: r.try_get::<_, Option<i64>>(15)?.map(from_secs),
        finished_at: r.try_get::<_, Option<i64>>(16)?.map(from_secs),
        detail: r.try_get(17)?,
        owner: r
            .try_get::<_, Option<String>>(19)?
            .map(|o| InstanceId::from_recorded(&o)),
        cancel_requested: r.try_get(20)?,
        summary: r.try_get(21)?,
        rule_key: r.try_get(22)?,
        paths: wording::paths_from_column(paths.as_deref()).map_err(|()| Fail::Corrupt {
            what: "changed paths",
            value: paths.clone().unwrap_or_default(),
        })?,
        lock: r.try_get(24)?,
    })
}

/// Writes one event of `job` and the outbox rows it leaves.
pub(super) async fn event(
    tx: &Tx<'_>,
    job: JobId,
    hook: &str,
    kind: EventKind,
    now: Now,
    reason: &str,
) -> Result<(), Fail> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO job_events (job, hook, kind, at, reason) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .await?;
    let id: i64 = tx
        .query_one(&insert, &[&job.0, &hook, &kind.as_str(), &now.ms, &reason])
        .await?
        .try_get(0)?;
    super::outbox::fan_out(tx, job, id, kind, now).await
}

/// Inserts one queued job (and its `queued` event), superseding as its queue says, and
/// holds it if its hook is paused.
pub(super) async fn insert(
    tx: &Tx<'_>,
    hook: &str,
    job: &NewJob,
    delivery: Option<&str>,
    now: Now,
) -> Result<Entered, Fail> {
    let e = &job.event;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha,
                               after_sha, pusher, delivery, attempt, manual, created_at, force,
                               rule_key, lane, changed_paths, lock)
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13, $14,
                     $15, $16, $17)
             RETURNING id",
        )
        .await?;
    let id = JobId(
        tx.query_one(
            &stmt,
            &[
                &hook,
                &count(job.rule),
                &job.queue.as_str(),
                &e.forge.as_str(),
                &e.repository,
                &e.git_ref.as_str(),
                &e.before.as_str(),
                &e.after.as_str(),
                &e.pusher,
                &delivery,
                &matches!(job.origin, Origin::Manual { .. }),
                &now.secs,
                &matches!(job.origin, Origin::Manual { force: true }),
                &job.rule_key,
                &wording::lane(hook, job),
                &wording::paths_column(&e.paths),
                &job.lock,
            ],
        )
        .await?
        .try_get(0)?,
    );
    super::outbox::subscribe(tx, id, &job.notify).await?;
    event(tx, id, hook, EventKind::Queued, now, &wording::queued(job)).await?;
    if job.queue == Queue::Supersede {
        // An operator's deploy is never "older" than anything: it runs.
        let later = match job.origin {
            Origin::Push => later_push(tx, hook, job, id).await?,
            Origin::Manual { .. } => None,
        };
        match later {
            Some(later) => {
                let why = wording::superseded_by_later(later);
                let stmt = tx
                    .prepare_cached(
                        "UPDATE jobs SET state = 'superseded', finished_at = $2, detail = $3
                         WHERE id = $1",
                    )
                    .await?;
                tx.execute(&stmt, &[&id.0, &now.secs, &why]).await?;
                event(tx, id, hook, EventKind::Superseded, now, &why).await?;
                return Ok(Entered {
                    id,
                    state: JobState::Superseded,
                });
            }
            None => supersede_older(tx, hook, &job.rule_key, id, now).await?,
        }
    }
    let state = if super::pauses::hold_if_paused(tx, hook, id, now).await? {
        JobState::Held
    } else {
        JobState::Queued
    };
    Ok(Entered { id, state })
}

/// A job already here for a push made on top of this one's commit (see the SQLite
/// backend's `later_push` for the rules).
async fn later_push(tx: &Tx<'_>, hook: &str, job: &NewJob, id: JobId) -> Result<Option<i64>, Fail> {
    let e = &job.event;
    // Planned for its values each time (not a cached statement): a generic plan goes
    // by the column's statistics, and once many jobs share one before_sha (a burst of
    // pushes of one commit) it walks every job of the hook's ref: 2.5 ms at 4,000 jobs.
    let Some(later) = tx
        .query_opt(
            "SELECT id FROM jobs
             WHERE hook = $1 AND before_sha = $2 AND rule_key = $3 AND git_ref = $4
               AND after_sha <> $5 AND id < $6
             LIMIT 1",
            &[
                &hook,
                &e.after.as_str(),
                &job.rule_key,
                &e.git_ref.as_str(),
                &e.before.as_str(),
                &id.0,
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let later: i64 = later.try_get(0)?;
    let stmt = tx
        .prepare_cached(
            "SELECT after_sha FROM jobs
             WHERE hook = $1 AND git_ref = $2 AND NOT manual AND id < $3
             ORDER BY id DESC LIMIT 1",
        )
        .await?;
    let head: Option<String> = tx
        .query_opt(&stmt, &[&hook, &e.git_ref.as_str(), &id.0])
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok((head.as_deref() != Some(e.before.as_str())).then_some(later))
}

/// A newer push replaces the pending ones of the same hook and rule.
async fn supersede_older(
    tx: &Tx<'_>,
    hook: &str,
    rule: &str,
    newer: JobId,
    now: Now,
) -> Result<(), Fail> {
    let why = wording::superseded_by(newer);
    let stmt = tx
        .prepare_cached(
            "UPDATE jobs SET state = 'superseded', finished_at = $4, detail = $5
             WHERE hook = $1 AND rule_key = $2 AND state IN ('queued', 'held')
               AND queue = 'supersede' AND id < $3
             RETURNING id",
        )
        .await?;
    let mut replaced: Vec<i64> = tx
        .query(&stmt, &[&hook, &rule, &newer.0, &now.secs, &why])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    replaced.sort_unstable();
    for id in replaced {
        event(tx, JobId(id), hook, EventKind::Superseded, now, &why).await?;
    }
    Ok(())
}

/// The oldest queued job of each lane with nothing running and whose lock is free,
/// oldest first, walking the lanes one index step each (as in the SQLite backend).
const NEXT_TO_CLAIM: &str = "WITH RECURSIVE waiting(lane) AS (
                 SELECT (SELECT lane FROM jobs WHERE state = 'queued' ORDER BY lane LIMIT 1)
                 UNION ALL
                 SELECT (SELECT lane FROM jobs WHERE state = 'queued' AND lane > waiting.lane
                         ORDER BY lane LIMIT 1)
                 FROM waiting WHERE waiting.lane IS NOT NULL)
             SELECT first FROM (
                 SELECT (SELECT id FROM jobs WHERE state = 'queued' AND lane = waiting.lane
                         ORDER BY id LIMIT 1) AS first
                 FROM waiting
                 WHERE lane IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM jobs WHERE state = 'running'
                                   AND lane = waiting.lane)) AS heads
             WHERE NOT EXISTS (SELECT 1 FROM jobs held, jobs wanted
                               WHERE wanted.id = first AND wanted.lock IS NOT NULL
                                 AND held.state = 'running' AND held.lock = wanted.lock)
               AND NOT ((SELECT hook FROM jobs WHERE id = first) = ANY($1))
             ORDER BY first LIMIT 1";

/// Whether a job could be claimed now (without the write lock), leaving out `skip`'s hooks.
pub(super) async fn claimable(c: &impl GenericClient, skip: &[String]) -> Result<bool, Fail> {
    let stmt = c.prepare_cached(NEXT_TO_CLAIM).await?;
    Ok(c.query_opt(&stmt, &[&skip]).await?.is_some())
}

/// Claims the next job for `owner`, its lease `lease_ms` from the database's now.
pub(super) async fn claim(
    tx: &Tx<'_>,
    owner: &InstanceId,
    lease_ms: i64,
    skip: &[String],
    now: Now,
) -> Result<Option<Job>, Fail> {
    let stmt = tx.prepare_cached(NEXT_TO_CLAIM).await?;
    let Some(next) = tx.query_opt(&stmt, &[&skip]).await? else {
        return Ok(None);
    };
    let id = JobId(next.try_get(0)?);
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE jobs SET state = 'running', started_at = $2, owner = $3,
                             lease_until = {DB_MS} + $4
             WHERE id = $1 RETURNING hook"
        ))
        .await?;
    let hook: String = tx
        .query_one(&stmt, &[&id.0, &now.secs, &owner.as_str(), &lease_ms])
        .await?
        .try_get(0)?;
    event(
        tx,
        id,
        &hook,
        EventKind::Started,
        now,
        &wording::started_by(owner),
    )
    .await?;
    get(tx, id).await
}

/// Renews `owner`'s leases that have not run out yet; a job whose lease ran out is lost
/// to it (another replica may be recovering it), whoever records that.
pub(super) async fn heartbeat(
    c: &impl GenericClient,
    owner: &InstanceId,
    running: &[JobId],
    lease_ms: i64,
) -> Result<Heartbeat, Fail> {
    let mut beat = Heartbeat::default();
    let renew = c
        .prepare_cached(&format!(
            "UPDATE jobs SET lease_until = {DB_MS} + $3
             WHERE id = $1 AND owner = $2 AND state = 'running' AND lease_until >= {DB_MS}
             RETURNING cancel_requested"
        ))
        .await?;
    for id in running {
        let cancel: Option<bool> = c
            .query_opt(&renew, &[&id.0, &owner.as_str(), &lease_ms])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match cancel {
            None => beat.lost.push(*id),
            Some(true) => beat.cancel.push(*id),
            Some(false) => {}
        }
    }
    Ok(beat)
}

/// Records how a job ended, if `owner` still runs it under a lease that has not run out
/// (fencing: a replica that lost the database for longer than its lease has stopped the
/// job, and its late word is refused).
pub(super) async fn finish(
    tx: &Tx<'_>,
    owner: &InstanceId,
    id: JobId,
    state: JobState,
    detail: &str,
    summary: Option<&str>,
    now: Now,
) -> Result<Finished, Fail> {
    let Some(kind) = EventKind::ended(state) else {
        return Ok(Finished::NotOwner);
    };
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE jobs SET state = $2, finished_at = $3, detail = $4, summary = $6
             WHERE id = $1 AND state = 'running' AND owner = $5 AND lease_until >= {DB_MS}
             RETURNING hook"
        ))
        .await?;
    let Some(row) = tx
        .query_opt(
            &stmt,
            &[
                &id.0,
                &state.as_str(),
                &now.secs,
                &detail,
                &owner.as_str(),
                &summary,
            ],
        )
        .await?
    else {
        return Ok(Finished::NotOwner);
    };
    let hook: String = row.try_get(0)?;
    event(tx, id, &hook, kind, now, detail).await?;
    Ok(Finished::Recorded)
}

pub(super) async fn cancel(tx: &Tx<'_>, id: JobId, now: Now) -> Result<CancelResult, Fail> {
    let Some(job) = get(tx, id).await? else {
        return Ok(CancelResult::NotFound);
    };
    Ok(match job.state {
        JobState::Queued | JobState::Held => {
            let why = wording::CANCELLED_BEFORE_START;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = $2, detail = $3 WHERE id = $1",
                &[&id.0, &now.secs, &why],
            )
            .await?;
            event(tx, id, &job.hook, EventKind::Cancelled, now, why).await?;
            CancelResult::Cancelled
        }
        JobState::Running => {
            tx.execute(
                "UPDATE jobs SET cancel_requested = true WHERE id = $1",
                &[&id.0],
            )
            .await?;
            // Heard by the replica running it when this commits.
            tx.execute("SELECT pg_notify($1, '')", &[&super::CANCEL_CHANNEL])
                .await?;
            CancelResult::Requested
        }
        done => CancelResult::AlreadyFinished(done),
    })
}

/// Ends the running jobs whose lease ran out before the database's now plus `ahead_ms`.
pub(super) async fn recover(tx: &Tx<'_>, ahead_ms: i64, now: Now) -> Result<Vec<Job>, Fail> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs
             WHERE state = 'running' AND (lease_until IS NULL OR lease_until < {DB_MS} + $1)
             ORDER BY id"
        ))
        .await?;
    let lapsed = tx
        .query(&stmt, &[&ahead_ms])
        .await?
        .iter()
        .map(job)
        .collect::<Result<Vec<_>, _>>()?;
    let mut ended = Vec::with_capacity(lapsed.len());
    for mut j in lapsed {
        let (state, kind, why) = wording::lapsed(&j);
        tx.execute(
            "UPDATE jobs SET state = $4, finished_at = $2, detail = $3 WHERE id = $1",
            &[&j.id.0, &now.secs, &why, &state.as_str()],
        )
        .await?;
        event(tx, j.id, &j.hook, kind, now, &why).await?;
        j.state = state;
        j.detail = Some(why);
        ended.push(j);
    }
    Ok(ended)
}

pub(super) async fn requeue(tx: &Tx<'_>, id: JobId, now: Now) -> Result<JobId, Fail> {
    let hook: String = tx
        .query_one("SELECT hook FROM jobs WHERE id = $1", &[&id.0])
        .await?
        .try_get(0)?;
    let retry = JobId(
        tx.query_one(
            "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha,
                               after_sha, pusher, delivery, attempt, manual, created_at, detail,
                               force, rule_key, lane, changed_paths, lock)
             SELECT hook, rule, 'queued', queue, forge, repository, git_ref, before_sha, after_sha,
                    pusher, delivery, attempt + 1, manual, $2, 'retry of interrupted job ' || id,
                    force, rule_key, lane, changed_paths, lock
             FROM jobs WHERE id = $1
             RETURNING id",
            &[&id.0, &now.secs],
        )
        .await?
        .try_get(0)?,
    );
    super::outbox::copy_targets(tx, id, retry).await?;
    event(
        tx,
        id,
        &hook,
        EventKind::Requeued,
        now,
        &wording::requeued_as(retry),
    )
    .await?;
    event(
        tx,
        retry,
        &hook,
        EventKind::Queued,
        now,
        &wording::retry_detail(id),
    )
    .await?;
    Ok(retry)
}

pub(super) async fn lock_holder(c: &impl GenericClient, lock: &str) -> Result<Option<JobId>, Fail> {
    let stmt = c
        .prepare_cached("SELECT id FROM jobs WHERE state = 'running' AND lock = $1 LIMIT 1")
        .await?;
    Ok(c.query_opt(&stmt, &[&lock])
        .await?
        .map(|r| r.try_get(0).map(JobId))
        .transpose()?)
}

pub(super) async fn get(c: &impl GenericClient, id: JobId) -> Result<Option<Job>, Fail> {
    let stmt = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    c.query_opt(&stmt, &[&id.0])
        .await?
        .as_ref()
        .map(job)
        .transpose()
}

pub(super) async fn list(c: &impl GenericClient, filter: &JobFilter) -> Result<Vec<Job>, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs
             WHERE ($1::text IS NULL OR hook = $1) AND ($2::text IS NULL OR state = $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .await?;
    c.query(
        &stmt,
        &[
            &filter.hook,
            &filter.state.map(JobState::as_str),
            &count(filter.limit.unwrap_or(100)),
        ],
    )
    .await?
    .iter()
    .map(job)
    .collect()
}

fn job_event(r: &Row) -> Result<JobEvent, Fail> {
    Ok(JobEvent {
        cursor: Cursor(r.try_get(0)?),
        job: JobId(r.try_get(1)?),
        hook: r.try_get(2)?,
        kind: kind(r, 3)?,
        at: from_ms(r.try_get(4)?),
        reason: r.try_get(5)?,
    })
}

pub(super) async fn events_of(c: &impl GenericClient, id: JobId) -> Result<Vec<JobEvent>, Fail> {
    let stmt = c
        .prepare_cached(
            "SELECT id, job, hook, kind, at, reason FROM job_events WHERE job = $1 ORDER BY id",
        )
        .await?;
    c.query(&stmt, &[&id.0])
        .await?
        .iter()
        .map(job_event)
        .collect()
}

pub(super) async fn events_after(
    c: &impl GenericClient,
    after: Cursor,
    limit: usize,
) -> Result<Vec<JobEvent>, Fail> {
    let stmt = c
        .prepare_cached(
            "SELECT id, job, hook, kind, at, reason FROM job_events WHERE id > $1
             ORDER BY id LIMIT $2",
        )
        .await?;
    c.query(&stmt, &[&after.0, &count(limit)])
        .await?
        .iter()
        .map(job_event)
        .collect()
}

pub(super) async fn count_by_state(c: &impl GenericClient) -> Result<Vec<(JobState, u64)>, Fail> {
    let stmt = c
        .prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok((
                parse(r, 0, "job state", |s| JobState::parse(s).ok_or(()))?,
                u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
            ))
        })
        .collect()
}

/// The first column of every row of `sql`, which takes no parameters.
pub(super) async fn strings(tx: &Tx<'_>, sql: &str) -> Result<Vec<String>, Fail> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Each hook with jobs, by a loose index scan (one index probe per hook).
pub(super) const HOOKS_WITH_JOBS: &str = "WITH RECURSIVE hooks(hook) AS (
         (SELECT hook FROM jobs ORDER BY hook LIMIT 1)
         UNION ALL
         SELECT (SELECT hook FROM jobs WHERE hook > hooks.hook ORDER BY hook LIMIT 1)
         FROM hooks WHERE hooks.hook IS NOT NULL)
     SELECT hook FROM hooks WHERE hook IS NOT NULL";

/// Finished jobs that no pending notification needs, of one hook in one state: the
/// newest (which bound what is kept), and the oldest past retention.
pub(super) const NEWEST_DONE: &str = "SELECT id FROM jobs
     WHERE hook = $1 AND state = $2
       AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.job = jobs.id AND outbox.state = 'pending')
     ORDER BY id DESC LIMIT $3";
pub(super) const OLDEST_PAST: &str = "SELECT id FROM jobs
     WHERE hook = $1 AND state = $2 AND (id < $3 OR created_at < $4)
       AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.job = jobs.id AND outbox.state = 'pending')
     ORDER BY id LIMIT $5";

/// Removes up to `keep.at_most` finished jobs past retention (see the SQLite store's
/// `prune`, which this follows): per hook and state, index ranges from where they start
/// to where they have enough, so the cost grows with the hooks, `keep_jobs` and the
/// slice, never with the history (it ranked every finished job with a window function).
pub(super) async fn prune(tx: &Tx<'_>, keep: Retention, now: Now) -> Result<Vec<JobId>, Fail> {
    let keep_jobs = count(keep.keep_jobs);
    let keep_for = i64::try_from(keep.keep_for.as_secs()).unwrap_or(i64::MAX / 2);
    let cutoff = now.secs.saturating_sub(keep_for);
    let finished: Vec<&str> = JobState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let hooks = strings(tx, HOOKS_WITH_JOBS).await?;
    let newest = tx.prepare_cached(NEWEST_DONE).await?;
    let oldest = tx.prepare_cached(OLDEST_PAST).await?;
    let mut ids: Vec<i64> = Vec::new();
    for hook in &hooks {
        // The hook's keep_jobs newest finished jobs stay: the smallest of them bounds
        // the rest.
        let mut kept: Vec<i64> = Vec::new();
        for state in &finished {
            for r in tx.query(&newest, &[hook, state, &keep_jobs]).await? {
                kept.push(r.try_get(0)?);
            }
        }
        let below = wording::jobs_kept_above(kept, keep_jobs);
        for state in &finished {
            let room = count(keep.at_most.saturating_sub(ids.len()));
            if room == 0 {
                break;
            }
            for r in tx
                .query(&oldest, &[hook, state, &below, &cutoff, &room])
                .await?
            {
                ids.push(r.try_get(0)?);
            }
        }
    }
    ids.sort_unstable();
    tx.execute("DELETE FROM jobs WHERE id = ANY($1)", &[&ids])
        .await?;
    tx.execute("DELETE FROM job_events WHERE job = ANY($1)", &[&ids])
        .await?;
    super::outbox::forget(tx, &ids).await?;
    super::logs::forget(tx, &ids).await?;
    super::deliveries::prune(tx, keep_jobs, cutoff, keep.at_most, now).await?;
    Ok(ids.into_iter().map(JobId).collect())
}
