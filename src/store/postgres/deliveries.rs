//! Deliveries' SQL on PostgreSQL: the replay keys that refuse a delivery seen before (by
//! any replica: they are checked and written under the write lock), the delivery
//! records, and the store's secrets.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::jobs::{forge, insert, parse, parse_opt};
use super::{Fail, Tx};
use crate::event::{DeliveryId, RefName, Sha};
use crate::store::types::{
    Acceptance, Delivery, DeliveryOutcome, DeliveryRecord, Entered, JobId, NewJob, NotQueued, Prior,
};
use crate::store::wording::{self, Now, from_ms};

pub(super) async fn accept(
    tx: &Tx<'_>,
    delivery: &Delivery,
    replay_keys: &[String],
    jobs: &[NewJob],
    max_queued: usize,
    now: Now,
) -> Result<Acceptance, Fail> {
    let hook = delivery.hook.as_str();
    let seen = tx
        .prepare_cached("SELECT delivery, job FROM deliveries WHERE hook = $1 AND key = $2")
        .await?;
    for key in replay_keys {
        if let Some(r) = tx.query_opt(&seen, &[&hook, key]).await? {
            let prior = Prior {
                same_id: key.starts_with("id:"),
                delivery: r.try_get(0)?,
                job: r.try_get::<_, Option<i64>>(1)?.map(JobId),
            };
            let why = wording::duplicate(&prior);
            log(
                tx,
                delivery,
                &DeliveryOutcome::Duplicate(prior.job),
                &why,
                now,
            )
            .await?;
            return Ok(Acceptance::Duplicate(prior));
        }
    }
    // Counting stops at the limit: the cost is bounded, whatever the queue's depth.
    let stmt = tx
        .prepare_cached(
            "SELECT count(*) FROM
                 (SELECT 1 FROM jobs WHERE state IN ('queued', 'held') AND hook = $1 LIMIT $2)
                 AS waiting",
        )
        .await?;
    let limit = i64::try_from(max_queued).unwrap_or(i64::MAX);
    let waiting: i64 = tx.query_one(&stmt, &[&hook, &limit]).await?.try_get(0)?;
    let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
    if !jobs.is_empty() && waiting >= max_queued {
        let why = wording::queue_full(waiting);
        let full = DeliveryOutcome::Not(NotQueued::QueueFull);
        log(tx, delivery, &full, &why, now).await?;
        return Ok(Acceptance::Full { waiting });
    }
    let id = delivery.delivery.as_ref().map(DeliveryId::as_str);
    let mut entered = Vec::with_capacity(jobs.len());
    for job in jobs {
        entered.push(insert(tx, hook, job, id, now).await?);
    }
    let ids = Entered::ids(&entered);
    let remember = tx
        .prepare_cached(
            "INSERT INTO deliveries (hook, key, received_at, delivery, job, jobs)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    let (first, all) = (ids.first().map(|id| id.0), wording::job_list(&ids));
    for key in replay_keys {
        tx.execute(&remember, &[&hook, key, &now.secs, &id, &first, &all])
            .await?;
    }
    let why = wording::queued_jobs(&ids, delivery.note.as_deref());
    log(tx, delivery, &DeliveryOutcome::Queued(ids), &why, now).await?;
    Ok(Acceptance::Queued(entered))
}

pub(super) async fn record(
    tx: &Tx<'_>,
    delivery: &Delivery,
    outcome: NotQueued,
    reason: &str,
    now: Now,
) -> Result<(), Fail> {
    log(tx, delivery, &DeliveryOutcome::Not(outcome), reason, now).await
}

async fn log(
    tx: &Tx<'_>,
    d: &Delivery,
    outcome: &DeliveryOutcome,
    reason: &str,
    now: Now,
) -> Result<(), Fail> {
    let jobs = match outcome {
        DeliveryOutcome::Queued(ids) => Some(wording::job_list(ids)),
        DeliveryOutcome::Duplicate(first) => first.map(|j| j.to_string()),
        DeliveryOutcome::Not(_) => None,
    };
    let stmt = tx
        .prepare_cached(
            "INSERT INTO delivery_log (hook, delivery, forge, event, git_ref, after_sha,
                                       received_at, outcome, jobs, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &d.hook,
            &d.delivery.as_ref().map(DeliveryId::as_str),
            &d.forge.as_str(),
            &d.event,
            &d.git_ref.as_ref().map(RefName::as_str),
            &d.after.as_ref().map(Sha::as_str),
            &now.ms,
            &outcome.as_str(),
            &jobs,
            &reason,
        ],
    )
    .await?;
    Ok(())
}

fn job_list(r: &Row, col: usize) -> Result<Vec<JobId>, Fail> {
    let jobs: Option<String> = r.try_get(col)?;
    wording::job_ids(jobs.as_deref()).map_err(|_| Fail::Corrupt {
        what: "job list",
        value: jobs.unwrap_or_default(),
    })
}

fn record_row(r: &Row) -> Result<DeliveryRecord, Fail> {
    let ids = job_list(r, 9)?;
    let kind: String = r.try_get(8)?;
    let outcome = match kind.as_str() {
        "queued" => DeliveryOutcome::Queued(ids),
        "duplicate" => DeliveryOutcome::Duplicate(ids.first().copied()),
        "ignored" => DeliveryOutcome::Not(NotQueued::Ignored),
        "pong" => DeliveryOutcome::Not(NotQueued::Pong),
        "bad_payload" => DeliveryOutcome::Not(NotQueued::BadPayload),
        "queue_full" => DeliveryOutcome::Not(NotQueued::QueueFull),
        _ => {
            return Err(Fail::Corrupt {
                what: "delivery outcome",
                value: kind,
            });
        }
    };
    Ok(DeliveryRecord {
        seq: r.try_get(0)?,
        delivery: Delivery {
            hook: r.try_get(1)?,
            delivery: parse_opt(r, 2, "delivery id", DeliveryId::parse)?,
            forge: parse(r, 3, "forge", forge)?,
            event: r.try_get(4)?,
            git_ref: parse_opt(r, 5, "ref", RefName::parse)?,
            after: parse_opt(r, 6, "commit", Sha::parse)?,
            note: None,
        },
        received_at: from_ms(r.try_get(7)?),
        outcome,
        reason: r.try_get(10)?,
    })
}

pub(super) async fn deliveries(
    c: &impl GenericClient,
    hook: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRecord>, Fail> {
    let stmt = c
        .prepare_cached(
            "SELECT id, hook, delivery, forge, event, git_ref, after_sha, received_at, outcome,
                    jobs, reason
             FROM delivery_log WHERE ($1::text IS NULL OR hook = $1) ORDER BY id DESC LIMIT $2",
        )
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(&stmt, &[&hook, &limit])
        .await?
        .iter()
        .map(record_row)
        .collect()
}

pub(super) async fn delivery_jobs(
    c: &impl GenericClient,
    hook: &str,
    delivery: &str,
) -> Result<Option<Vec<JobId>>, Fail> {
    let stmt = c
        .prepare_cached(
            // The delivery id's replay key (`intake::replay_keys` writes it as `id:<id>`).
            "SELECT jobs FROM deliveries
             WHERE hook = $1 AND key = 'id:' || $2 AND jobs IS NOT NULL",
        )
        .await?;
    c.query_opt(&stmt, &[&hook, &delivery])
        .await?
        .map(|r| job_list(&r, 0))
        .transpose()
}

/// The secret `name`, made on first use; two replicas asking at once get the same one.
pub(super) async fn secret(c: &impl GenericClient, name: &str) -> Result<Vec<u8>, Fail> {
    let fresh = wording::fresh_secret().map_err(|e| Fail::Corrupt {
        what: "random source",
        value: e.to_string(),
    })?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    c.execute(&stmt, &[&name, &fresh]).await?;
    let stmt = c
        .prepare_cached("SELECT value FROM secrets WHERE name = $1")
        .await?;
    Ok(c.query_one(&stmt, &[&name]).await?.try_get(0)?)
}

/// Each hook with delivery records, by a loose index scan (one index probe per hook).
pub(super) const HOOKS_WITH_RECORDS: &str = "WITH RECURSIVE hooks(hook) AS (
         (SELECT hook FROM delivery_log ORDER BY hook LIMIT 1)
         UNION ALL
         SELECT (SELECT hook FROM delivery_log WHERE hook > hooks.hook ORDER BY hook LIMIT 1)
         FROM hooks WHERE hooks.hook IS NOT NULL)
     SELECT hook FROM hooks WHERE hook IS NOT NULL";

/// Delivery records go as jobs do (beyond `keep` per hook, or received before `cutoff`,
/// unix seconds); replay keys stay a year (see `wording::replay_cutoff`). At most
/// `at_most` of each, found by index ranges: never a scan of the whole log.
pub(super) async fn prune(
    tx: &Tx<'_>,
    keep: i64,
    cutoff: i64,
    at_most: usize,
    now: Now,
) -> Result<(), Fail> {
    let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
    let hooks = super::jobs::strings(tx, HOOKS_WITH_RECORDS).await?;
    let bound = tx
        .prepare_cached(
            "SELECT id FROM delivery_log WHERE hook = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
        )
        .await?;
    let delete = tx
        .prepare_cached(
            "DELETE FROM delivery_log WHERE id IN (
                 SELECT id FROM delivery_log
                 WHERE hook = $1 AND (id <= $2 OR received_at < $3) ORDER BY id LIMIT $4)",
        )
        .await?;
    let mut left = at_most;
    for hook in &hooks {
        if left <= 0 {
            break;
        }
        let keep_th = match keep {
            ..=0 => None,
            _ => tx
                .query_opt(&bound, &[hook, &(keep - 1)])
                .await?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()?,
        };
        let below = wording::records_past(keep, keep_th);
        let gone = tx
            .execute(
                &delete,
                &[hook, &below, &cutoff.saturating_mul(1000), &left],
            )
            .await?;
        left -= i64::try_from(gone).unwrap_or(i64::MAX);
    }
    let stmt = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE (hook, key) IN (
                 SELECT hook, key FROM deliveries WHERE received_at < $1
                 ORDER BY received_at LIMIT $2)",
        )
        .await?;
    tx.execute(&stmt, &[&wording::replay_cutoff(cutoff, now), &at_most])
        .await?;
    Ok(())
}
