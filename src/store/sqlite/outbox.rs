//! The outbox's SQL: who hears about a job (`job_targets`, fixed when it is queued), the
//! rows its events leave for them (written by [`fan_out`] in the event's transaction),
//! handing them out one lane at a time, and how each attempt went.

use rusqlite::{Connection, Row, params};

use super::jobs::parse;
use super::{Now, from_ms, ms};
use crate::store::types::{
    Attempt, Cursor, EventKind, JobEvent, JobId, Notification, OutboxDepth, OutboxId, OutboxState,
    Outgoing, Subscription,
};
use crate::store::wording;

/// Records who hears about job `job`'s events.
pub(super) fn subscribe(
    conn: &Connection,
    job: JobId,
    subs: &[Subscription],
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO job_targets (job, target, events, latest_only) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for s in subs {
        insert.execute(params![
            job.0,
            s.target,
            wording::kinds(&s.on),
            s.latest_only
        ])?;
    }
    Ok(())
}

/// A retry of job `from` is heard about by the same targets (with nothing kept from the
/// first one's sends: a new deployment, say).
pub(super) fn copy_targets(conn: &Connection, from: JobId, to: JobId) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_targets (job, target, events, latest_only)
         SELECT ?2, target, events, latest_only FROM job_targets WHERE job = ?1",
    )?
    .execute(params![from.0, to.0])?;
    Ok(())
}

/// Leaves an outbox row for each target of `job` that hears about `kind`, for the event
/// just written as `event`; for latest-only targets, a row not yet sent is replaced.
pub(super) fn fan_out(
    conn: &Connection,
    job: JobId,
    event: i64,
    kind: EventKind,
    now: Now,
) -> rusqlite::Result<()> {
    // Most jobs have no one to tell: one lookup instead of two statements per event.
    if !conn
        .prepare_cached("SELECT 1 FROM job_targets WHERE job = ?1")?
        .exists([job.0])?
    {
        return Ok(());
    }
    let pattern = wording::kind_pattern(kind);
    // Found, then replaced by id: an UPDATE of the `state` its partial index is defined
    // on collects its rows in a temporary b-tree first, per job event.
    let replaced = conn
        .prepare_cached(
            "SELECT o.id FROM outbox o JOIN job_targets t ON t.job = o.job AND t.target = o.target
             WHERE o.job = ?1 AND o.state = 'pending'
               AND t.latest_only = 1 AND instr(t.events, ?2) > 0",
        )?
        .query_map(params![job.0, pattern], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut replace =
        conn.prepare_cached("UPDATE outbox SET state = 'replaced', done_at = ?2 WHERE id = ?1")?;
    for id in replaced {
        replace.execute(params![id, now.ms])?;
    }
    conn.prepare_cached(
        "INSERT INTO outbox (job, target, lane, event, state, created_at, next_at)
         SELECT t.job, t.target, t.target || char(31) || j.repository, ?2, 'pending', ?4, ?4
         FROM job_targets t JOIN jobs j ON j.id = t.job
         WHERE t.job = ?1 AND instr(t.events, ?3) > 0
         ORDER BY t.target",
    )?
    .execute(params![job.0, event, pattern, now.ms])?;
    Ok(())
}

fn outgoing(r: &Row<'_>) -> rusqlite::Result<Outgoing> {
    Ok(Outgoing {
        id: OutboxId(r.get(0)?),
        job: JobId(r.get(1)?),
        target: r.get(2)?,
        lane: r.get(3)?,
        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        created_at: from_ms(r.get(5)?),
        event: JobEvent {
            cursor: Cursor(r.get(6)?),
            job: JobId(r.get(1)?),
            hook: r.get(7)?,
            kind: parse(r, 8, "event kind", |s| EventKind::parse(s).ok_or(()))?,
            at: from_ms(r.get(9)?),
            reason: r.get(10)?,
        },
        memo: r.get(11)?,
    })
}

/// The head of each lane, if it is due, oldest first; lanes in `busy` left out.
pub(super) fn due(
    conn: &Connection,
    now: std::time::SystemTime,
    busy: &[String],
    limit: usize,
) -> rusqlite::Result<Vec<Outgoing>> {
    let take = i64::try_from(limit.saturating_add(busy.len())).unwrap_or(i64::MAX);
    let heads = conn
        .prepare_cached(
            "SELECT o.id, o.job, o.target, o.lane, o.attempts, o.created_at,
                    e.id, e.hook, e.kind, e.at, e.reason, t.memo
             FROM outbox o
             JOIN job_events e ON e.id = o.event
             LEFT JOIN job_targets t ON t.job = o.job AND t.target = o.target
             WHERE o.state = 'pending' AND o.next_at <= ?1
               AND o.id = (SELECT min(p.id) FROM outbox p WHERE p.lane = o.lane AND p.state = 'pending')
             ORDER BY o.id LIMIT ?2",
        )?
        .query_map(params![ms(now), take], outgoing)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(heads
        .into_iter()
        .filter(|o| !busy.contains(&o.lane))
        .take(limit)
        .collect())
}

/// Records an attempt. A row replaced while it was being sent stays replaced unless it
/// was sent after all; a memo is kept either way (the next row needs it).
pub(super) fn attempt(
    conn: &Connection,
    id: OutboxId,
    attempt: &Attempt,
    now: Now,
) -> rusqlite::Result<()> {
    let memo = match attempt {
        Attempt::Sent { memo } | Attempt::Retry { memo, .. } => memo.as_deref(),
        Attempt::Failed { .. } => None,
    };
    if let Some(memo) = memo {
        conn.prepare_cached(
            "UPDATE job_targets SET memo = ?2
             WHERE (job, target) = (SELECT job, target FROM outbox WHERE id = ?1)",
        )?
        .execute(params![id.0, memo])?;
    }
    match attempt {
        Attempt::Sent { .. } => {
            conn.prepare_cached(
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?2, last_error = NULL
                 WHERE id = ?1 AND state IN ('pending', 'replaced')",
            )?
            .execute(params![id.0, now.ms])?;
        }
        Attempt::Retry { at, error, .. } => {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id.0, ms(*at), error])?;
        }
        Attempt::Failed { error } => {
            conn.prepare_cached(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, done_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id.0, now.ms, error])?;
        }
    }
    Ok(())
}

pub(super) fn of_job(conn: &Connection, job: JobId) -> rusqlite::Result<Vec<Notification>> {
    conn.prepare_cached(
        "SELECT o.target, e.kind, o.state, o.attempts, o.last_error, o.created_at, o.done_at, o.next_at
         FROM outbox o JOIN job_events e ON e.id = o.event
         WHERE o.job = ?1 ORDER BY o.id",
    )?
    .query_map(params![job.0], |r| {
        Ok(Notification {
            target: r.get(0)?,
            kind: parse(r, 1, "event kind", |s| EventKind::parse(s).ok_or(()))?,
            state: parse(r, 2, "outbox state", |s| OutboxState::parse(s).ok_or(()))?,
            attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
            last_error: r.get(4)?,
            created_at: from_ms(r.get(5)?),
            done_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
            next_at: from_ms(r.get(7)?),
        })
    })?
    .collect()
}

pub(super) fn depth(conn: &Connection) -> rusqlite::Result<OutboxDepth> {
    conn.prepare_cached("SELECT count(*), min(created_at) FROM outbox WHERE state = 'pending'")?
        .query_row([], |r| {
            Ok(OutboxDepth {
                pending: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                oldest: r.get::<_, Option<i64>>(1)?.map(from_ms),
            })
        })
}

/// Removes what a pruned job left (its jobs are pruned only once nothing is pending).
pub(super) fn forget(conn: &Connection, job: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM outbox WHERE job = ?1")?
        .execute(params![job])?;
    conn.prepare_cached("DELETE FROM job_targets WHERE job = ?1")?
        .execute(params![job])?;
    Ok(())
}
