//! Paused hooks on PostgreSQL: as in the SQLite backend, a pause holds the hook's queued
//! jobs and every job queued while it lasts; a resume queues them again. Both run under
//! the write lock, so a delivery accepted by another replica at the same moment is held
//! too.

use deadpool_postgres::GenericClient;

use super::jobs::event;
use super::{Fail, Tx};
use crate::store::types::{EventKind, JobId, Pause};
use crate::store::wording::{self, Now, from_ms};

/// Holds job `id` (just queued) if its hook is paused; says whether it did.
pub(super) async fn hold_if_paused(
    tx: &Tx<'_>,
    hook: &str,
    id: JobId,
    now: Now,
) -> Result<bool, Fail> {
    let stmt = tx
        .prepare_cached("SELECT reason FROM pauses WHERE hook = $1")
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&hook]).await? else {
        return Ok(false);
    };
    let reason: String = row.try_get(0)?;
    let stmt = tx
        .prepare_cached("UPDATE jobs SET state = 'held' WHERE id = $1 AND state = 'queued'")
        .await?;
    let held = tx.execute(&stmt, &[&id.0]).await? > 0;
    if held {
        event(tx, id, hook, EventKind::Held, now, &wording::held(&reason)).await?;
    }
    Ok(held)
}

/// Pauses `hook` (again: the reason is replaced) and holds its queued jobs; returns them.
pub(super) async fn pause(
    tx: &Tx<'_>,
    hook: &str,
    reason: &str,
    now: Now,
) -> Result<Vec<JobId>, Fail> {
    tx.execute(
        "INSERT INTO pauses (hook, reason, since) VALUES ($1, $2, $3)
         ON CONFLICT (hook) DO UPDATE SET reason = excluded.reason",
        &[&hook, &reason, &now.ms],
    )
    .await?;
    let mut held: Vec<JobId> = tx
        .query(
            "UPDATE jobs SET state = 'held' WHERE hook = $1 AND state = 'queued' RETURNING id",
            &[&hook],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0).map(JobId))
        .collect::<Result<_, _>>()?;
    held.sort();
    let why = wording::held(reason);
    for id in &held {
        event(tx, *id, hook, EventKind::Held, now, &why).await?;
    }
    Ok(held)
}

/// Resumes `hook`: its held jobs are queued again, oldest first. `None` if it was not
/// paused.
pub(super) async fn resume(tx: &Tx<'_>, hook: &str, now: Now) -> Result<Option<Vec<JobId>>, Fail> {
    if tx
        .execute("DELETE FROM pauses WHERE hook = $1", &[&hook])
        .await?
        == 0
    {
        return Ok(None);
    }
    let mut released: Vec<JobId> = tx
        .query(
            "UPDATE jobs SET state = 'queued' WHERE hook = $1 AND state = 'held' RETURNING id",
            &[&hook],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0).map(JobId))
        .collect::<Result<_, _>>()?;
    released.sort();
    for id in &released {
        event(tx, *id, hook, EventKind::Released, now, wording::RESUMED).await?;
    }
    Ok(Some(released))
}

pub(super) async fn list(c: &impl GenericClient) -> Result<Vec<Pause>, Fail> {
    let stmt = c
        .prepare_cached("SELECT hook, reason, since FROM pauses ORDER BY hook")
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(Pause {
                hook: r.try_get(0)?,
                reason: r.try_get(1)?,
                since: from_ms(r.try_get(2)?),
            })
        })
        .collect()
}
