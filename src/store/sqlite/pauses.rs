//! Paused hooks: a pause holds the hook's queued jobs (state `held`, with an event), and
//! every job queued while it lasts; a resume queues them again. Supersede applies among
//! held jobs as among queued ones.

use rusqlite::{Connection, OptionalExtension, params};

use super::jobs::event;
use super::{Now, from_ms};
use crate::store::types::{EventKind, JobId, JobState, Pause};
use crate::store::wording;

/// Why a job of `hook` is held, if the hook is paused.
pub(super) fn paused(conn: &Connection, hook: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT reason FROM pauses WHERE hook = ?1")?
        .query_row([hook], |r| r.get(0))
        .optional()
}

/// Pauses `hook` (again: the reason is replaced) and holds its queued jobs; returns them.
pub(super) fn pause(
    conn: &Connection,
    hook: &str,
    reason: &str,
    now: Now,
) -> rusqlite::Result<Vec<JobId>> {
    conn.prepare_cached(
        "INSERT INTO pauses (hook, reason, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (hook) DO UPDATE SET reason = excluded.reason",
    )?
    .execute(params![hook, reason, now.ms])?;
    let held = move_state(conn, hook, JobState::Queued, JobState::Held)?;
    let why = wording::held(reason);
    for id in &held {
        event(conn, *id, hook, EventKind::Held, now, &why)?;
    }
    Ok(held)
}

/// Resumes `hook`: its held jobs are queued again, oldest first. `None` if it was not
/// paused.
pub(super) fn resume(
    conn: &Connection,
    hook: &str,
    now: Now,
) -> rusqlite::Result<Option<Vec<JobId>>> {
    if conn
        .prepare_cached("DELETE FROM pauses WHERE hook = ?1")?
        .execute([hook])?
        == 0
    {
        return Ok(None);
    }
    let released = move_state(conn, hook, JobState::Held, JobState::Queued)?;
    for id in &released {
        event(conn, *id, hook, EventKind::Released, now, wording::RESUMED)?;
    }
    Ok(Some(released))
}

/// Moves `hook`'s pending jobs in state `from` (queued or held) to `to`; returns them,
/// oldest first. Found, then changed by id: an UPDATE that walks the index whose `state`
/// it changes, or RETURNING, collects its rows in a temporary b-tree. The pending jobs'
/// index is ordered by rule first, so they are sorted here.
fn move_state(
    conn: &Connection,
    hook: &str,
    from: JobState,
    to: JobState,
) -> rusqlite::Result<Vec<JobId>> {
    let mut ids: Vec<JobId> = conn
        .prepare_cached(
            "SELECT id FROM jobs INDEXED BY jobs_pending
             WHERE hook = ?1 AND state IN ('queued', 'held') AND state = ?2",
        )?
        .query_map(params![hook, from.as_str()], |r| r.get(0).map(JobId))?
        .collect::<rusqlite::Result<_>>()?;
    ids.sort_unstable_by_key(|id| id.0);
    let mut set = conn.prepare_cached("UPDATE jobs SET state = ?2 WHERE id = ?1")?;
    for id in &ids {
        set.execute(params![id.0, to.as_str()])?;
    }
    Ok(ids)
}

pub(super) fn list(conn: &Connection) -> rusqlite::Result<Vec<Pause>> {
    conn.prepare_cached("SELECT hook, reason, since FROM pauses ORDER BY hook")?
        .query_map([], |r| {
            Ok(Pause {
                hook: r.get(0)?,
                reason: r.get(1)?,
                since: from_ms(r.get(2)?),
            })
        })?
        .collect()
}
