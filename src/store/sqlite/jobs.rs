//! The job queue's SQL: queueing with supersede, claiming under a lease, heartbeats,
//! fenced finishing, cancelling, recovering expired leases, and each change's event row,
//! written in the same transaction. Called only from the writer thread (writes) and the
//! read connections (`get`, `list`, events).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Now, from_ms, from_secs};
use crate::event::{DeliveryId, Forge, RefName, Sha};
use crate::store::types::{
    CancelResult, Cursor, Entered, EventKind, Finished, Heartbeat, InstanceId, Job, JobEvent,
    JobFilter, JobId, JobState, NewJob, Origin, Queue, Retention,
};
use crate::store::wording;

pub(super) use super::deliveries::{accept, deliveries, delivery_jobs, record, secret};

/// A value in the database that the store did not write (or no longer understands).
#[derive(Debug, thiserror::Error)]
#[error("unreadable {what} {value:?} in the state database")]
pub(super) struct Corrupt {
    pub(super) what: &'static str,
    pub(super) value: String,
}

pub(super) fn corrupt(col: usize, what: &'static str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        Box::new(Corrupt {
            what,
            value: value.to_owned(),
        }),
    )
}

pub(super) fn parse<T, E>(
    r: &Row<'_>,
    col: usize,
    what: &'static str,
    f: impl Fn(&str) -> Result<T, E>,
) -> rusqlite::Result<T> {
    let s: String = r.get(col)?;
    f(&s).map_err(|_| corrupt(col, what, &s))
}

pub(super) fn parse_opt<T, E>(
    r: &Row<'_>,
    col: usize,
    what: &'static str,
    f: impl Fn(&str) -> Result<T, E>,
) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = r.get(col)?;
    s.map(|s| f(&s).map_err(|_| corrupt(col, what, &s)))
        .transpose()
}

pub(super) fn forge(s: &str) -> Result<Forge, ()> {
    Forge::from_name(s).ok_or(())
}

const COLUMNS: &str = "id, hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha, \
     pusher, delivery, attempt, manual, created_at, started_at, finished_at, detail, force, \
     owner, cancel_requested, summary, rule_key, changed_paths, lock";

fn job(r: &Row<'_>) -> rusqlite::Result<Job> {
    let (manual, force): (bool, bool) = (r.get(13)?, r.get(18)?);
    Ok(Job {
        id: JobId(r.get(0)?),
        hook: r.get(1)?,
        rule: usize::try_from(r.get::<_, i64>(2)?).unwrap_or(usize::MAX),
        state: parse(r, 3, "job state", |s| JobState::parse(s).ok_or(()))?,
        queue: parse(r, 4, "queue mode", |s| Queue::parse(s).ok_or(()))?,
        forge: parse(r, 5, "forge", forge)?,
        repository: r.get(6)?,
        git_ref: parse(r, 7, "ref", RefName::parse)?,
        before: parse(r, 8, "commit", Sha::parse)?,
        sha: parse(r, 9, "commit", Sha::parse)?,
        pusher: r.get(10)?,
        delivery: parse_opt(r, 11, "delivery id", DeliveryId::parse)?,
        attempt: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(u32::MAX),
        origin: if manual {
            Origin::Manual { force }
        } else {
            Origin::Push
        },
        created_at: from_secs(r.get(14)?),
        started_at: r.get::<_, Option<i64>>(15)?.map(from_secs),
        finished_at: r.get::<_, Option<i64>>(16)?.map(from_secs),
        detail: r.get(17)?,
        owner: r
            .get::<_, Option<String>>(19)?
            .map(|o| InstanceId::from_recorded(&o)),
        cancel_requested: r.get(20)?,
        summary: r.get(21)?,
        rule_key: r.get(22)?,
        paths: {
            let list: Option<String> = r.get(23)?;
            wording::paths_from_column(list.as_deref())
                .map_err(|()| corrupt(23, "changed paths", list.as_deref().unwrap_or("")))?
        },
        lock: r.get(24)?,
    })
}

pub(super) fn event(
    conn: &Connection,
    job: JobId,
    hook: &str,
    kind: EventKind,
    now: Now,
    reason: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_events (job, hook, kind, at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![job.0, hook, kind.as_str(), now.ms, reason])?;
    super::outbox::fan_out(conn, job, conn.last_insert_rowid(), kind, now)
}

/// At open, while this process holds the state directory alone: no lease can be live.
pub(super) fn void_leases(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET lease_until = 0 WHERE state IN ('queued', 'running') AND state = 'running'",
        [],
    )?;
    Ok(())
}

/// Inserts one job (and its `queued` event), superseding as its queue says, and held
/// (with a `held` event) if its hook is paused.
pub(super) fn insert(
    conn: &Connection,
    hook: &str,
    job: &NewJob,
    delivery: Option<&str>,
    now: Now,
) -> rusqlite::Result<Entered> {
    let e = &job.event;
    let rule = i64::try_from(job.rule).unwrap_or(i64::MAX);
    let lane = wording::lane(hook, job);
    // Written held at once rather than queued and then held: a queued row would enter
    // the running and queued jobs' index only to leave it in the same transaction.
    let paused = super::pauses::paused(conn, hook)?;
    let mut state = match paused {
        Some(_) => JobState::Held,
        None => JobState::Queued,
    };
    conn.prepare_cached(
        "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha,
                           pusher, delivery, attempt, manual, created_at, force, rule_key, lane,
                           changed_paths, lock)
         VALUES (?1, ?2, ?18, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17)",
    )?
    .execute(params![
        hook,
        rule,
        job.queue.as_str(),
        e.forge.as_str(),
        e.repository,
        e.git_ref.as_str(),
        e.before.as_str(),
        e.after.as_str(),
        e.pusher,
        delivery,
        matches!(job.origin, Origin::Manual { .. }),
        now.secs,
        matches!(job.origin, Origin::Manual { force: true }),
        job.rule_key,
        lane,
        wording::paths_column(&e.paths),
        job.lock,
        state.as_str(),
    ])?;
    let id = JobId(conn.last_insert_rowid());
    super::outbox::subscribe(conn, id, &job.notify)?;
    let why = wording::queued(job);
    event(conn, id, hook, EventKind::Queued, now, &why)?;
    if job.queue == Queue::Supersede {
        // An operator's deploy is never "older" than anything: it runs.
        let later = match job.origin {
            Origin::Push => later_push(conn, hook, &job.rule_key, job, id)?,
            Origin::Manual { .. } => None,
        };
        match later {
            Some(later) => {
                let why = wording::superseded_by_later(later);
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'superseded', finished_at = ?2, detail = ?3 WHERE id = ?1",
                )?
                .execute(params![id.0, now.secs, why])?;
                event(conn, id, hook, EventKind::Superseded, now, &why)?;
                state = JobState::Superseded;
            }
            None => supersede_older(conn, hook, &job.rule_key, id, now)?,
        }
    }
    if let (JobState::Held, Some(reason)) = (state, paused) {
        event(
            conn,
            id,
            hook,
            EventKind::Held,
            now,
            &wording::held(&reason),
        )?;
    }
    Ok(Entered { id, state })
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
    rule: &str,
    job: &NewJob,
    id: JobId,
) -> rusqlite::Result<Option<i64>> {
    let e = &job.event;
    let later: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM jobs
         WHERE hook = ?1 AND before_sha = ?2 AND rule_key = ?3 AND git_ref = ?4
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
    rule: &str,
    newer: JobId,
    now: Now,
) -> rusqlite::Result<()> {
    let why = wording::superseded_by(newer);
    // Found first, then changed by id: an UPDATE that walks an index whose `state` it
    // changes collects its rows in a temporary b-tree first, and `IN` makes another.
    let mut pending = conn.prepare_cached(
        "SELECT id FROM jobs
         WHERE hook = ?1 AND rule_key = ?2 AND state IN ('queued', 'held') AND state = ?3
           AND queue = 'supersede' AND id < ?4",
    )?;
    let mut replaced = Vec::new();
    for state in [JobState::Queued, JobState::Held] {
        let ids = pending.query_map(params![hook, rule, state.as_str(), newer.0], |r| r.get(0))?;
        replaced.extend(ids.collect::<rusqlite::Result<Vec<i64>>>()?);
    }
    replaced.sort_unstable();
    let mut supersede = conn.prepare_cached(
        "UPDATE jobs SET state = 'superseded', finished_at = ?2, detail = ?3 WHERE id = ?1",
    )?;
    for id in replaced {
        supersede.execute(params![id, now.secs, why])?;
        event(conn, JobId(id), hook, EventKind::Superseded, now, &why)?;
    }
    Ok(())
}

/// The distinct values of an indexed text column, one index step each (a loose index
/// scan): `next` selects the smallest value above `?1`, so the cost grows with the number
/// of values, not of rows. The values are never empty (hook ids and lanes), so `''` is
/// below the first. A loop here rather than a recursive CTE, which keeps its queue in a
/// temporary b-tree.
pub(super) fn distinct(conn: &Connection, next: &str) -> rusqlite::Result<Vec<String>> {
    let mut step = conn.prepare_cached(next)?;
    let mut values: Vec<String> = Vec::new();
    loop {
        let after = values.last().map_or("", String::as_str);
        match step.query_row([after], |r| r.get(0)).optional()? {
            Some(value) => values.push(value),
            None => return Ok(values),
        }
    }
}

/// A job running in lane `?1`, and the running job holding lock `?1`: by the active jobs'
/// partial index, whose condition SQLite wants spelled out (see the schema).
const RUNNING_IN_LANE: &str = "SELECT 1 FROM jobs
     WHERE state IN ('queued', 'running') AND state = 'running' AND lane = ?1 LIMIT 1";
const LOCK_HOLDER: &str = "SELECT id FROM jobs
     WHERE state IN ('queued', 'running') AND state = 'running' AND lock = ?1 LIMIT 1";

/// The oldest queued job of each lane (a hook, or a hook's rule) with nothing running and
/// whose lock (if any) is free, oldest first, leaving out the hooks in `skip`: the lanes
/// with queued jobs are walked one index step each (see [`distinct`]), so the cost grows
/// with the number of lanes, not of queued jobs. Its id and hook.
fn next_to_claim(conn: &Connection, skip: &[String]) -> rusqlite::Result<Option<(i64, String)>> {
    let lanes = distinct(
        conn,
        "SELECT lane FROM jobs WHERE state IN ('queued', 'running') AND state = 'queued' AND lane > ?1
         ORDER BY lane LIMIT 1",
    )?;
    let mut busy = conn.prepare_cached(RUNNING_IN_LANE)?;
    let mut oldest = conn.prepare_cached(
        "SELECT id, hook, lock FROM jobs
         WHERE state IN ('queued', 'running') AND state = 'queued' AND lane = ?1
         ORDER BY id LIMIT 1",
    )?;
    let mut locked = conn.prepare_cached(LOCK_HOLDER)?;
    let mut first: Option<(i64, String)> = None;
    for lane in &lanes {
        if busy.exists([lane])? {
            continue;
        }
        let Some((id, hook, lock)) = oldest
            .query_row([lane], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        if first.as_ref().is_some_and(|(best, _)| *best < id) || skip.contains(&hook) {
            continue;
        }
        if let Some(lock) = lock
            && locked.exists([lock])?
        {
            continue;
        }
        first = Some((id, hook));
    }
    Ok(first)
}

/// Whether a job could be claimed now, leaving out the hooks in `skip`. On a read
/// connection: most wake-ups of the worker (a delivery for a paused hook, a busy lane)
/// find nothing, and the writer, which every delivery waits for, is then not taken for
/// nothing.
pub(super) fn claimable(conn: &Connection, skip: &[String]) -> rusqlite::Result<bool> {
    Ok(next_to_claim(conn, skip)?.is_some())
}

pub(super) fn claim(
    conn: &Connection,
    owner: &InstanceId,
    lease_until: i64,
    skip: &[String],
    now: Now,
) -> rusqlite::Result<Option<Job>> {
    let Some((id, hook)) = next_to_claim(conn, skip)? else {
        return Ok(None);
    };
    conn.prepare_cached(
        "UPDATE jobs SET state = 'running', started_at = ?2, owner = ?3, lease_until = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, now.secs, owner.as_str(), lease_until])?;
    event(
        conn,
        JobId(id),
        &hook,
        EventKind::Started,
        now,
        &wording::started_by(owner),
    )?;
    get(conn, JobId(id))
}

pub(super) fn heartbeat(
    conn: &Connection,
    owner: &InstanceId,
    running: &[JobId],
    lease_until: i64,
) -> rusqlite::Result<Heartbeat> {
    let mut beat = Heartbeat::default();
    // Read, then written by id: RETURNING collects its rows in a temporary b-tree.
    let mut held = conn.prepare_cached(
        "SELECT cancel_requested FROM jobs WHERE id = ?1 AND owner = ?2 AND state = 'running'",
    )?;
    let mut renew = conn.prepare_cached("UPDATE jobs SET lease_until = ?2 WHERE id = ?1")?;
    for id in running {
        let cancel: Option<bool> = held
            .query_row(params![id.0, owner.as_str()], |r| r.get(0))
            .optional()?;
        if cancel.is_some() {
            renew.execute(params![id.0, lease_until])?;
        }
        match cancel {
            None => beat.lost.push(*id),
            Some(true) => beat.cancel.push(*id),
            Some(false) => {}
        }
    }
    Ok(beat)
}

pub(super) fn finish(
    conn: &Connection,
    owner: &InstanceId,
    id: JobId,
    state: JobState,
    detail: &str,
    summary: Option<&str>,
    now: Now,
) -> rusqlite::Result<Finished> {
    let Some(kind) = EventKind::ended(state) else {
        return Ok(Finished::NotOwner);
    };
    // Read, then written by id: RETURNING collects its rows in a temporary b-tree.
    let hook: Option<String> = conn
        .prepare_cached("SELECT hook FROM jobs WHERE id = ?1 AND state = 'running' AND owner = ?2")?
        .query_row(params![id.0, owner.as_str()], |r| r.get(0))
        .optional()?;
    let Some(hook) = hook else {
        return Ok(Finished::NotOwner);
    };
    conn.prepare_cached(
        "UPDATE jobs SET state = ?2, finished_at = ?3, detail = ?4, summary = ?5 WHERE id = ?1",
    )?
    .execute(params![id.0, state.as_str(), now.secs, detail, summary])?;
    event(conn, id, &hook, kind, now, detail)?;
    Ok(Finished::Recorded)
}

pub(super) fn cancel(conn: &Connection, id: JobId, now: Now) -> rusqlite::Result<CancelResult> {
    let Some(job) = get(conn, id)? else {
        return Ok(CancelResult::NotFound);
    };
    Ok(match job.state {
        JobState::Queued | JobState::Held => {
            let why = wording::CANCELLED_BEFORE_START;
            conn.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, detail = ?3 WHERE id = ?1",
                params![id.0, now.secs, why],
            )?;
            event(conn, id, &job.hook, EventKind::Cancelled, now, why)?;
            CancelResult::Cancelled
        }
        JobState::Running => {
            conn.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
                params![id.0],
            )?;
            CancelResult::Requested
        }
        done => CancelResult::AlreadyFinished(done),
    })
}

pub(super) fn recover(
    conn: &Connection,
    expired_before: i64,
    now: Now,
) -> rusqlite::Result<Vec<Job>> {
    let mut lapsed: Vec<Job> = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs
             WHERE state IN ('queued', 'running') AND state = 'running'
               AND (lease_until IS NULL OR lease_until < ?1)"
        ))?
        .query_map(params![expired_before], job)?
        .collect::<rusqlite::Result<_>>()?;
    // Oldest first, sorted here: the index of running jobs is by lane.
    lapsed.sort_by_key(|j| j.id);
    let mut interrupted = Vec::with_capacity(lapsed.len());
    for mut j in lapsed {
        let (state, kind, why) = wording::lapsed(&j);
        conn.execute(
            "UPDATE jobs SET state = ?4, finished_at = ?2, detail = ?3 WHERE id = ?1",
            params![j.id.0, now.secs, why, state.as_str()],
        )?;
        event(conn, j.id, &j.hook, kind, now, &why)?;
        j.state = state;
        j.detail = Some(why);
        interrupted.push(j);
    }
    Ok(interrupted)
}

pub(super) fn requeue(conn: &Connection, id: JobId, now: Now) -> rusqlite::Result<JobId> {
    let hook: String =
        conn.query_row("SELECT hook FROM jobs WHERE id = ?1", [id.0], |r| r.get(0))?;
    conn.execute(
        "INSERT INTO jobs (hook, rule, state, queue, forge, repository, git_ref, before_sha, after_sha,
                               pusher, delivery, attempt, manual, created_at, detail, force,
                               rule_key, lane, changed_paths, lock)
             SELECT hook, rule, 'queued', queue, forge, repository, git_ref, before_sha, after_sha,
                    pusher, delivery, attempt + 1, manual, ?2, 'retry of interrupted job ' || id, force,
                    rule_key, lane, changed_paths, lock
             FROM jobs WHERE id = ?1",
        params![id.0, now.secs],
    )?;
    let retry = JobId(conn.last_insert_rowid());
    super::outbox::copy_targets(conn, id, retry)?;
    event(
        conn,
        id,
        &hook,
        EventKind::Requeued,
        now,
        &wording::requeued_as(retry),
    )?;
    event(
        conn,
        retry,
        &hook,
        EventKind::Queued,
        now,
        &wording::retry_detail(id),
    )?;
    Ok(retry)
}

/// The running job that holds `lock`, if one does.
pub(super) fn lock_holder(conn: &Connection, lock: &str) -> rusqlite::Result<Option<JobId>> {
    conn.prepare_cached(LOCK_HOLDER)?
        .query_row([lock], |r| r.get(0).map(JobId))
        .optional()
}

pub(super) fn get(conn: &Connection, id: JobId) -> rusqlite::Result<Option<Job>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id.0], job)
        .optional()
}

pub(super) fn list(conn: &Connection, filter: &JobFilter) -> rusqlite::Result<Vec<Job>> {
    let limit = i64::try_from(filter.limit.unwrap_or(100)).unwrap_or(i64::MAX);
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs
         WHERE (?1 IS NULL OR hook = ?1) AND (?2 IS NULL OR state = ?2)
         ORDER BY id DESC LIMIT ?3"
    ))?
    .query_map(
        params![filter.hook, filter.state.map(JobState::as_str), limit],
        job,
    )?
    .collect()
}

fn job_event(r: &Row<'_>) -> rusqlite::Result<JobEvent> {
    Ok(JobEvent {
        cursor: Cursor(r.get(0)?),
        job: JobId(r.get(1)?),
        hook: r.get(2)?,
        kind: parse(r, 3, "event kind", |s| EventKind::parse(s).ok_or(()))?,
        at: from_ms(r.get(4)?),
        reason: r.get(5)?,
    })
}

pub(super) fn events_of(conn: &Connection, id: JobId) -> rusqlite::Result<Vec<JobEvent>> {
    conn.prepare_cached(
        "SELECT id, job, hook, kind, at, reason FROM job_events WHERE job = ?1 ORDER BY id",
    )?
    .query_map(params![id.0], job_event)?
    .collect()
}

pub(super) fn events_after(
    conn: &Connection,
    after: Cursor,
    limit: usize,
) -> rusqlite::Result<Vec<JobEvent>> {
    conn.prepare_cached(
        "SELECT id, job, hook, kind, at, reason FROM job_events WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?
    .query_map(
        params![after.0, i64::try_from(limit).unwrap_or(i64::MAX)],
        job_event,
    )?
    .collect()
}

/// Jobs per state, ordered by state, walking the three partial state indexes in their
/// own order: one `GROUP BY state` over the table scanned every row and sorted them (20 ms
/// a scrape of `/metrics` with 100,000 jobs, against 5 ms this way).
pub(super) fn count_by_state(conn: &Connection) -> rusqlite::Result<Vec<(JobState, u64)>> {
    let mut counts = std::collections::BTreeMap::<&'static str, (JobState, u64)>::new();
    for sql in [
        "SELECT state, count(*) FROM jobs INDEXED BY jobs_active
         WHERE state IN ('queued', 'running') GROUP BY state",
        "SELECT state, count(*) FROM jobs INDEXED BY jobs_pending
         WHERE state IN ('queued', 'held') AND state = 'held' GROUP BY state",
        "SELECT state, count(*) FROM jobs INDEXED BY jobs_done
         WHERE state <> 'queued' AND state <> 'held' AND state <> 'running'
         GROUP BY hook, state",
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                parse(r, 0, "job state", |s| JobState::parse(s).ok_or(()))?,
                u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            ))
        })?;
        for row in rows {
            let (state, n) = row?;
            counts.entry(state.as_str()).or_insert((state, 0)).1 += n;
        }
    }
    Ok(counts.into_values().collect())
}

/// Each hook with jobs, by a loose index scan (one index step per hook).
const HOOKS_WITH_JOBS: &str = "SELECT hook FROM jobs WHERE hook > ?1 ORDER BY hook LIMIT 1";

/// Finished jobs that no pending notification needs, of one hook in one state.
const NEWEST_DONE: &str = "SELECT id FROM jobs INDEXED BY jobs_done
     WHERE hook = ?1 AND state = ?2
       AND state <> 'queued' AND state <> 'held' AND state <> 'running'
       AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.job = jobs.id AND outbox.state = 'pending')
     ORDER BY id DESC LIMIT ?3";
const OLDEST_PAST: &str = "SELECT id FROM jobs INDEXED BY jobs_done
     WHERE hook = ?1 AND state = ?2
       AND state <> 'queued' AND state <> 'held' AND state <> 'running'
       AND (id < ?3 OR created_at < ?4)
       AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.job = jobs.id AND outbox.state = 'pending')
     ORDER BY id LIMIT ?5";

/// Removes up to `keep.at_most` finished jobs (with their events and notifications) that
/// are past retention: older than `keep_for`, or not among their hook's `keep_jobs`
/// newest finished ones. A job with a notification still to send stays. The cost grows
/// with the number of hooks, `keep_jobs` and `at_most`, never with the history's size:
/// every query walks an index range from where it starts to where it has enough (a prune
/// that scanned the whole history held the writer, and every delivery, for 364 ms with
/// 100,000 old jobs).
pub(super) fn prune(conn: &Connection, keep: Retention, now: Now) -> rusqlite::Result<Vec<JobId>> {
    let keep_jobs = i64::try_from(keep.keep_jobs).unwrap_or(i64::MAX);
    let keep_for = i64::try_from(keep.keep_for.as_secs()).unwrap_or(i64::MAX / 2);
    let cutoff = now.secs.saturating_sub(keep_for);
    let finished: Vec<&str> = JobState::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let hooks = distinct(conn, HOOKS_WITH_JOBS)?;
    let mut newest = conn.prepare_cached(NEWEST_DONE)?;
    let mut oldest = conn.prepare_cached(OLDEST_PAST)?;
    let mut ids: Vec<i64> = Vec::new();
    for hook in &hooks {
        // The hook's keep_jobs newest finished jobs stay: the smallest of them bounds
        // the rest.
        let mut kept: Vec<i64> = Vec::new();
        for state in &finished {
            let top = newest.query_map(params![hook, state, keep_jobs], |r| r.get(0))?;
            kept.extend(top.collect::<rusqlite::Result<Vec<i64>>>()?);
        }
        let below = wording::jobs_kept_above(kept, keep_jobs);
        for state in &finished {
            let room = keep.at_most.saturating_sub(ids.len());
            if room == 0 {
                break;
            }
            let room = i64::try_from(room).unwrap_or(i64::MAX);
            let past = oldest.query_map(params![hook, state, below, cutoff, room], |r| r.get(0))?;
            ids.extend(past.collect::<rusqlite::Result<Vec<i64>>>()?);
        }
    }
    ids.sort_unstable();
    {
        let mut delete = conn.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
        let mut events = conn.prepare_cached("DELETE FROM job_events WHERE job = ?1")?;
        for id in &ids {
            delete.execute(params![id])?;
            events.execute(params![id])?;
            super::outbox::forget(conn, *id)?;
        }
    }
    super::deliveries::prune(conn, keep_jobs, cutoff, keep.at_most, now)?;
    Ok(ids.into_iter().map(JobId).collect())
}
