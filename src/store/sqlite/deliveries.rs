//! Deliveries' SQL: the replay keys that refuse a delivery seen before, and the delivery
//! records that say what became of each verified delivery ("why did my push not
//! deploy?"). Called from the writer thread's group commit and the read connections.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::jobs::{forge, insert, parse, parse_opt};
use super::{Now, from_ms};
use crate::event::{DeliveryId, RefName, Sha};
use crate::store::types::{
    Acceptance, Delivery, DeliveryOutcome, DeliveryRecord, Entered, JobId, NewJob, NotQueued, Prior,
};
use crate::store::wording;

pub(in crate::store) fn accept(
    conn: &Connection,
    delivery: &Delivery,
    replay_keys: &[String],
    jobs: &[NewJob],
    max_queued: usize,
    now: Now,
) -> rusqlite::Result<Acceptance> {
    let hook = delivery.hook.as_str();
    let mut seen =
        conn.prepare_cached("SELECT delivery, job FROM deliveries WHERE hook = ?1 AND key = ?2")?;
    for key in replay_keys {
        let prior = seen
            .query_row(params![hook, key], |r| {
                Ok(Prior {
                    same_id: key.starts_with("id:"),
                    delivery: r.get(0)?,
                    job: r.get::<_, Option<i64>>(1)?.map(JobId),
                })
            })
            .optional()?;
        if let Some(prior) = prior {
            let why = wording::duplicate(&prior);
            log(
                conn,
                delivery,
                &DeliveryOutcome::Duplicate(prior.job),
                &why,
                now,
            )?;
            return Ok(Acceptance::Duplicate(prior));
        }
    }
    // Counting stops at the limit: the cost is bounded, whatever the queue's depth. The
    // pending jobs' partial index holds queued and held jobs alone, so its condition is
    // met by every entry and builds nothing.
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM
                 (SELECT 1 FROM jobs INDEXED BY jobs_pending
                  WHERE hook = ?1 AND state IN ('queued', 'held') LIMIT ?2)",
        )?
        .query_row(
            params![hook, i64::try_from(max_queued).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
    let waiting = usize::try_from(n).unwrap_or(usize::MAX);
    if !jobs.is_empty() && waiting >= max_queued {
        let why = wording::queue_full(waiting);
        log(
            conn,
            delivery,
            &DeliveryOutcome::Not(NotQueued::QueueFull),
            &why,
            now,
        )?;
        return Ok(Acceptance::Full { waiting });
    }
    let id = delivery.delivery.as_ref().map(DeliveryId::as_str);
    let mut entered = Vec::with_capacity(jobs.len());
    for job in jobs {
        entered.push(insert(conn, hook, job, id, now)?);
    }
    let ids = Entered::ids(&entered);
    let mut remember = conn.prepare_cached(
        "INSERT INTO deliveries (hook, key, received_at, delivery, job, jobs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let (first, all) = (ids.first().map(|id| id.0), wording::job_list(&ids));
    for key in replay_keys {
        remember.execute(params![hook, key, now.secs, id, first, all])?;
    }
    let why = wording::queued_jobs(&ids, delivery.note.as_deref());
    log(conn, delivery, &DeliveryOutcome::Queued(ids), &why, now)?;
    Ok(Acceptance::Queued(entered))
}

pub(in crate::store) fn record(
    conn: &Connection,
    delivery: &Delivery,
    outcome: NotQueued,
    reason: &str,
    now: Now,
) -> rusqlite::Result<()> {
    log(conn, delivery, &DeliveryOutcome::Not(outcome), reason, now)
}

fn log(
    conn: &Connection,
    d: &Delivery,
    outcome: &DeliveryOutcome,
    reason: &str,
    now: Now,
) -> rusqlite::Result<()> {
    let jobs = match outcome {
        DeliveryOutcome::Queued(ids) => Some(wording::job_list(ids)),
        DeliveryOutcome::Duplicate(first) => first.map(|j| j.to_string()),
        DeliveryOutcome::Not(_) => None,
    };
    conn.prepare_cached(
        "INSERT INTO delivery_log (hook, delivery, forge, event, git_ref, after_sha, received_at,
                                   outcome, jobs, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        d.hook,
        d.delivery.as_ref().map(DeliveryId::as_str),
        d.forge.as_str(),
        d.event,
        d.git_ref.as_ref().map(RefName::as_str),
        d.after.as_ref().map(Sha::as_str),
        now.ms,
        outcome.as_str(),
        jobs,
        reason,
    ])?;
    Ok(())
}

fn record_row(r: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let jobs: Option<String> = r.get(9)?;
    let ids = wording::job_ids(jobs.as_deref())
        .map_err(|_| super::jobs::corrupt(9, "job list", jobs.as_deref().unwrap_or("")))?;
    let kind: String = r.get(8)?;
    let outcome = match kind.as_str() {
        "queued" => DeliveryOutcome::Queued(ids),
        "duplicate" => DeliveryOutcome::Duplicate(ids.first().copied()),
        "ignored" => DeliveryOutcome::Not(NotQueued::Ignored),
        "pong" => DeliveryOutcome::Not(NotQueued::Pong),
        "bad_payload" => DeliveryOutcome::Not(NotQueued::BadPayload),
        "queue_full" => DeliveryOutcome::Not(NotQueued::QueueFull),
        other => return Err(super::jobs::corrupt(8, "delivery outcome", other)),
    };
    Ok(DeliveryRecord {
        seq: r.get(0)?,
        delivery: Delivery {
            hook: r.get(1)?,
            delivery: parse_opt(r, 2, "delivery id", DeliveryId::parse)?,
            forge: parse(r, 3, "forge", forge)?,
            event: r.get(4)?,
            git_ref: parse_opt(r, 5, "ref", RefName::parse)?,
            after: parse_opt(r, 6, "commit", Sha::parse)?,
            note: None,
        },
        received_at: from_ms(r.get(7)?),
        outcome,
        reason: r.get(10)?,
    })
}

pub(in crate::store) fn deliveries(
    conn: &Connection,
    hook: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<DeliveryRecord>> {
    conn.prepare_cached(
        "SELECT id, hook, delivery, forge, event, git_ref, after_sha, received_at, outcome, jobs, reason
         FROM delivery_log WHERE (?1 IS NULL OR hook = ?1) ORDER BY id DESC LIMIT ?2",
    )?
    .query_map(
        params![hook, i64::try_from(limit).unwrap_or(i64::MAX)],
        record_row,
    )?
    .collect()
}

pub(in crate::store) fn delivery_jobs(
    conn: &Connection,
    hook: &str,
    delivery: &str,
) -> rusqlite::Result<Option<Vec<JobId>>> {
    // The delivery id's replay key (`intake::replay_keys` writes it as `id:<id>`); a row
    // from before its jobs were kept there, whose delivery record is gone, has none.
    let jobs: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT jobs FROM deliveries
             WHERE hook = ?1 AND key = 'id:' || ?2 AND jobs IS NOT NULL",
        )?
        .query_row(params![hook, delivery], |r| r.get(0))
        .optional()?;
    jobs.map(|j| {
        wording::job_ids(j.as_deref())
            .map_err(|_| super::jobs::corrupt(0, "job list", j.as_deref().unwrap_or("")))
    })
    .transpose()
}

pub(in crate::store) fn secret(conn: &Connection, name: &str) -> rusqlite::Result<Vec<u8>> {
    let existing: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    if let Some(v) = existing {
        return Ok(v);
    }
    let fresh = wording::fresh_secret().map_err(io_err)?;
    conn.prepare_cached("INSERT INTO secrets (name, value) VALUES (?1, ?2)")?
        .execute(params![name, fresh])?;
    Ok(fresh)
}

fn io_err(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Delivery records go as jobs do (beyond `keep` per hook, or received before `cutoff`,
/// unix seconds); replay keys stay a year, so that an old push cannot come back soon.
pub(super) fn prune(
    conn: &Connection,
    keep: i64,
    cutoff: i64,
    at_most: usize,
    now: Now,
) -> rusqlite::Result<()> {
    let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
    // Per hook, by index ranges: the keep-th newest record bounds the rest (see
    // `jobs::prune` for why never a scan of the whole log).
    let hooks = super::jobs::distinct(
        conn,
        "SELECT hook FROM delivery_log WHERE hook > ?1 ORDER BY hook LIMIT 1",
    )?;
    let mut bound = conn.prepare_cached(
        "SELECT id FROM delivery_log INDEXED BY delivery_log_by_hook
         WHERE hook = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
    )?;
    // Found, then deleted one by one: `DELETE ... WHERE id IN (SELECT ...)` builds a
    // temporary b-tree of the ids.
    let mut past = conn.prepare_cached(
        "SELECT id FROM delivery_log INDEXED BY delivery_log_by_hook
         WHERE hook = ?1 AND (id <= ?2 OR received_at < ?3) ORDER BY id LIMIT ?4",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM delivery_log WHERE id = ?1")?;
    let mut left = at_most;
    for hook in &hooks {
        if left <= 0 {
            break;
        }
        let keep_th = match keep {
            ..=0 => None,
            _ => bound
                .query_row(params![hook, keep - 1], |r| r.get::<_, i64>(0))
                .optional()?,
        };
        let below = wording::records_past(keep, keep_th);
        let gone = past
            .query_map(
                params![hook, below, cutoff.saturating_mul(1000), left],
                |r| r.get::<_, i64>(0),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for id in &gone {
            delete.execute([id])?;
        }
        left -= i64::try_from(gone.len()).unwrap_or(i64::MAX);
    }
    let expired = conn
        .prepare_cached(
            "SELECT hook, key FROM deliveries INDEXED BY deliveries_by_age
             WHERE received_at < ?1 ORDER BY received_at LIMIT ?2",
        )?
        .query_map(params![wording::replay_cutoff(cutoff, now), at_most], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut forget = conn.prepare_cached("DELETE FROM deliveries WHERE hook = ?1 AND key = ?2")?;
    for (hook, key) in &expired {
        forget.execute(params![hook, key])?;
    }
    Ok(())
}
