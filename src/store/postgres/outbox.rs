//! The outbox's SQL on PostgreSQL: who hears about a job, the rows its events leave, and
//! handing them out. Unlike one process's sender, several replicas' senders share the
//! rows: the head of a lane is *taken* by one replica (`taken_by`, until `taken_until`)
//! in the statement that hands it out, so a lane's rows are sent by one replica at a time
//! and in order; a replica that dies holding one loses it when the take runs out.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::jobs::{kind, parse};
use super::{DB_MS, Fail, Tx};
use crate::store::types::{
    Attempt, Cursor, EventKind, JobEvent, JobId, Notification, OutboxDepth, OutboxId, OutboxState,
    Outgoing, Subscription,
};
use crate::store::wording::{self, Now, from_ms, ms};

/// Records who hears about job `job`'s events.
pub(super) async fn subscribe(tx: &Tx<'_>, job: JobId, subs: &[Subscription]) -> Result<(), Fail> {
    if subs.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO job_targets (job, target, events, latest_only) VALUES ($1, $2, $3, $4)
             ON CONFLICT (job, target)
             DO UPDATE SET events = excluded.events, latest_only = excluded.latest_only",
        )
        .await?;
    for s in subs {
        tx.execute(
            &insert,
            &[&job.0, &s.target, &wording::kinds(&s.on), &s.latest_only],
        )
        .await?;
    }
    Ok(())
}

/// A retry of job `from` is heard about by the same targets.
pub(super) async fn copy_targets(tx: &Tx<'_>, from: JobId, to: JobId) -> Result<(), Fail> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO job_targets (job, target, events, latest_only)
             SELECT $2, target, events, latest_only FROM job_targets WHERE job = $1",
        )
        .await?;
    tx.execute(&stmt, &[&from.0, &to.0]).await?;
    Ok(())
}

/// Leaves an outbox row for each target of `job` that hears about `kind`; for
/// latest-only targets, a row not yet sent is replaced.
pub(super) async fn fan_out(
    tx: &Tx<'_>,
    job: JobId,
    event: i64,
    kind: EventKind,
    now: Now,
) -> Result<(), Fail> {
    let pattern = wording::kind_pattern(kind);
    let replace = tx
        .prepare_cached(
            "UPDATE outbox SET state = 'replaced', done_at = $3
             WHERE job = $1 AND state = 'pending'
               AND target IN (SELECT target FROM job_targets
                              WHERE job = $1 AND latest_only AND strpos(events, $2) > 0)",
        )
        .await?;
    tx.execute(&replace, &[&job.0, &pattern, &now.ms]).await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO outbox (job, target, lane, event, state, created_at, next_at)
             SELECT t.job, t.target, t.target || chr(31) || j.repository, $2, 'pending', $4, $4
             FROM job_targets t JOIN jobs j ON j.id = t.job
             WHERE t.job = $1 AND strpos(t.events, $3) > 0
             ORDER BY t.target",
        )
        .await?;
    tx.execute(&insert, &[&job.0, &event, &pattern, &now.ms])
        .await?;
    Ok(())
}

fn outgoing(r: &Row) -> Result<Outgoing, Fail> {
    Ok(Outgoing {
        id: OutboxId(r.try_get(0)?),
        job: JobId(r.try_get(1)?),
        target: r.try_get(2)?,
        lane: r.try_get(3)?,
        attempts: u32::try_from(r.try_get::<_, i64>(4)?).unwrap_or(u32::MAX),
        created_at: from_ms(r.try_get(5)?),
        event: JobEvent {
            cursor: Cursor(r.try_get(6)?),
            job: JobId(r.try_get(1)?),
            hook: r.try_get(7)?,
            kind: kind(r, 8)?,
            at: from_ms(r.try_get(9)?),
            reason: r.try_get(10)?,
        },
        memo: r.try_get(11)?,
    })
}

/// Takes for `me`, for `hold`, the head of each lane that is due by the database's now
/// plus `ahead_ms`, oldest first: lanes in `busy` (being sent by `me`) and heads taken by
/// another replica whose take has not run out are left out.
pub(super) async fn take_due(
    client: &mut deadpool_postgres::Client,
    me: &str,
    ahead_ms: i64,
    busy: &[String],
    limit: usize,
    hold: Duration,
) -> Result<Vec<Outgoing>, Fail> {
    let tx = client.transaction().await?;
    // Heads are found and taken under a lock of their own, so two replicas never take
    // the same one (the job-writing lock is not needed: this changes no job).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_LOCK])
        .await?;
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE outbox o SET taken_by = $1, taken_until = {DB_MS} + $5
             WHERE o.id IN (
                 SELECT h.id FROM outbox h
                 WHERE h.state = 'pending' AND h.next_at <= {DB_MS} + $2
                   AND h.id = (SELECT min(p.id) FROM outbox p
                               WHERE p.lane = h.lane AND p.state = 'pending')
                   AND NOT (h.lane = ANY($3))
                   AND (h.taken_by IS NULL OR h.taken_by = $1 OR h.taken_until < {DB_MS})
                 ORDER BY h.id LIMIT $4)
             RETURNING o.id"
        ))
        .await?;
    let hold_ms = i64::try_from(hold.as_millis()).unwrap_or(i64::MAX);
    let taken: Vec<i64> = tx
        .query(
            &stmt,
            &[
                &me,
                &ahead_ms,
                &busy,
                &i64::try_from(limit).unwrap_or(i64::MAX),
                &hold_ms,
            ],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let stmt = tx
        .prepare_cached(
            "SELECT o.id, o.job, o.target, o.lane, o.attempts, o.created_at,
                    e.id, e.hook, e.kind, e.at, e.reason, t.memo
             FROM outbox o
             JOIN job_events e ON e.id = o.event
             LEFT JOIN job_targets t ON t.job = o.job AND t.target = o.target
             WHERE o.id = ANY($1)
             ORDER BY o.id",
        )
        .await?;
    let rows = tx
        .query(&stmt, &[&taken])
        .await?
        .iter()
        .map(outgoing)
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(rows)
}

/// Serializes the outbox's hand-outs across replicas ("dphkob").
const OUTBOX_LOCK: i64 = 0x6470_686b_6f62;

/// Records an attempt (and gives the row back: it is no longer taken).
pub(super) async fn attempt(
    tx: &Tx<'_>,
    id: OutboxId,
    attempt: &Attempt,
    now: Now,
) -> Result<(), Fail> {
    let memo = match attempt {
        Attempt::Sent { memo } | Attempt::Retry { memo, .. } => memo.as_deref(),
        Attempt::Failed { .. } => None,
    };
    if let Some(memo) = memo {
        let stmt = tx
            .prepare_cached(
                "UPDATE job_targets SET memo = $2
                 WHERE (job, target) = (SELECT job, target FROM outbox WHERE id = $1)",
            )
            .await?;
        tx.execute(&stmt, &[&id.0, &memo]).await?;
    }
    match attempt {
        Attempt::Sent { .. } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = $2,
                                       last_error = NULL, taken_by = NULL
                     WHERE id = $1 AND state IN ('pending', 'replaced')",
                )
                .await?;
            tx.execute(&stmt, &[&id.0, &now.ms]).await?;
        }
        Attempt::Retry { at, error, .. } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = $2, last_error = $3,
                                       taken_by = NULL
                     WHERE id = $1 AND state = 'pending'",
                )
                .await?;
            tx.execute(&stmt, &[&id.0, &ms(*at), error]).await?;
        }
        Attempt::Failed { error } => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'failed', attempts = attempts + 1, done_at = $2,
                                       last_error = $3, taken_by = NULL
                     WHERE id = $1 AND state = 'pending'",
                )
                .await?;
            tx.execute(&stmt, &[&id.0, &now.ms, error]).await?;
        }
    }
    Ok(())
}

pub(super) async fn of_job(c: &impl GenericClient, job: JobId) -> Result<Vec<Notification>, Fail> {
    let stmt = c
        .prepare_cached(
            "SELECT o.target, e.kind, o.state, o.attempts, o.last_error, o.created_at, o.done_at,
                    o.next_at
             FROM outbox o JOIN job_events e ON e.id = o.event
             WHERE o.job = $1 ORDER BY o.id",
        )
        .await?;
    c.query(&stmt, &[&job.0])
        .await?
        .iter()
        .map(|r| {
            Ok(Notification {
                target: r.try_get(0)?,
                kind: kind(r, 1)?,
                state: parse(r, 2, "outbox state", |s| OutboxState::parse(s).ok_or(()))?,
                attempts: u32::try_from(r.try_get::<_, i64>(3)?).unwrap_or(u32::MAX),
                last_error: r.try_get(4)?,
                created_at: from_ms(r.try_get(5)?),
                done_at: r.try_get::<_, Option<i64>>(6)?.map(from_ms),
                next_at: from_ms(r.try_get(7)?),
            })
        })
        .collect()
}

pub(super) async fn depth(c: &impl GenericClient) -> Result<OutboxDepth, Fail> {
    let stmt = c
        .prepare_cached("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'")
        .await?;
    let r = c.query_one(&stmt, &[]).await?;
    Ok(OutboxDepth {
        pending: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
        oldest: r.try_get::<_, Option<i64>>(1)?.map(from_ms),
    })
}

/// Removes what pruned jobs left.
pub(super) async fn forget(tx: &Tx<'_>, jobs: &[i64]) -> Result<(), Fail> {
    tx.execute("DELETE FROM outbox WHERE job = ANY($1)", &[&jobs])
        .await?;
    tx.execute("DELETE FROM job_targets WHERE job = ANY($1)", &[&jobs])
        .await?;
    Ok(())
}
