//! Job logs in the database, in chunks: the replica that runs a job appends its output
//! as it comes, and any replica reads any job's log from a byte offset. Appends do not
//! take the write lock (they touch no job); the size row serializes appends to one log.

use deadpool_postgres::{GenericClient, Pool};
use futures_util::FutureExt as _;

use super::{Fail, Tx, read_err, write_err};
use crate::store::types::JobId;
use crate::store::{Answer, LogBook};

/// The most chunks one read looks at (a chunk is at most what the appender sends, and
/// a reader asks for a bounded slice).
const CHUNKS_PER_READ: i64 = 256;

/// The job-log side of the PostgreSQL store.
pub(super) struct PgLogs {
    pub(super) pool: Pool,
}

fn offset(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Appends `bytes` at the end of job `job`'s log.
async fn append(c: &impl GenericClient, job: JobId, bytes: &[u8]) -> Result<(), Fail> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stmt = c
        .prepare_cached(
            "WITH grown AS (
                 INSERT INTO job_log_sizes AS s (job, size) VALUES ($1, $3)
                 ON CONFLICT (job) DO UPDATE SET size = s.size + excluded.size
                 RETURNING size
             )
             INSERT INTO job_logs (job, start, bytes) SELECT $1, size - $3, $2 FROM grown",
        )
        .await?;
    let len = offset(bytes.len() as u64);
    c.execute(&stmt, &[&job.0, &bytes, &len]).await?;
    Ok(())
}

/// Up to `max` bytes of job `job`'s log from byte `from`.
async fn read(c: &impl GenericClient, job: JobId, from: u64, max: u64) -> Result<Vec<u8>, Fail> {
    let stmt = c
        .prepare_cached(
            "SELECT start, bytes FROM job_logs
             WHERE job = $1 AND start >= coalesce(
                 (SELECT max(start) FROM job_logs WHERE job = $1 AND start <= $2), 0)
             ORDER BY start LIMIT $3",
        )
        .await?;
    let rows = c
        .query(&stmt, &[&job.0, &offset(from), &CHUNKS_PER_READ])
        .await?;
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut at = from;
    for row in rows {
        let start: i64 = row.try_get(0)?;
        let bytes: &[u8] = row.try_get(1)?;
        let start = u64::try_from(start).unwrap_or(0);
        if start > at {
            break; // not contiguous (cannot happen: sizes and chunks are written together)
        }
        let skip = usize::try_from(at - start).unwrap_or(usize::MAX);
        let Some(rest) = bytes.get(skip..) else {
            continue;
        };
        let take = rest.len().min(max - out.len());
        out.extend_from_slice(&rest[..take]);
        at += take as u64;
        if out.len() == max {
            break;
        }
    }
    Ok(out)
}

/// Deletes the logs of pruned jobs (in the prune's transaction).
pub(super) async fn forget(tx: &Tx<'_>, ids: &[i64]) -> Result<(), Fail> {
    tx.execute("DELETE FROM job_logs WHERE job = ANY($1)", &[&ids])
        .await?;
    tx.execute("DELETE FROM job_log_sizes WHERE job = ANY($1)", &[&ids])
        .await?;
    Ok(())
}

impl LogBook for PgLogs {
    fn append(&self, job: JobId, bytes: Vec<u8>) -> Answer<'_, ()> {
        async move {
            let client = self.pool.get().await.map_err(|e| write_err(e.into()))?;
            append(&client, job, &bytes).await.map_err(write_err)
        }
        .boxed()
    }

    fn read(&self, job: JobId, from: u64, max: u64) -> Answer<'_, Vec<u8>> {
        async move {
            let client = self.pool.get().await.map_err(|e| read_err(e.into()))?;
            read(&client, job, from, max).await.map_err(read_err)
        }
        .boxed()
    }
}
