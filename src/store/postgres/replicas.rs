//! The replicas table: each replica checks in on every worker tick under its node name,
//! which no two live processes may share; the count of those seen lately is a metric.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::{DB_MS, Fail};
use crate::store::types::{CheckIn, InstanceId};

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Takes or renews `node` for `instance`, unless another instance held it within
/// `alive_for`.
pub(super) async fn check_in(
    c: &impl GenericClient,
    node: &str,
    instance: &InstanceId,
    alive_for: Duration,
) -> Result<CheckIn, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO replicas AS r (node, instance, started_at, seen_at)
             VALUES ($1, $2, {DB_MS}, {DB_MS})
             ON CONFLICT (node) DO UPDATE
                 SET instance = excluded.instance, seen_at = excluded.seen_at,
                     started_at = CASE WHEN r.instance = excluded.instance
                                       THEN r.started_at ELSE excluded.started_at END
                 WHERE r.instance = excluded.instance OR r.seen_at < {DB_MS} - $3
             RETURNING instance"
        ))
        .await?;
    if c.query_opt(&stmt, &[&node, &instance.as_str(), &ms(alive_for)])
        .await?
        .is_some()
    {
        return Ok(CheckIn::Alive);
    }
    let holder: String = c
        .query_one("SELECT instance FROM replicas WHERE node = $1", &[&node])
        .await?
        .try_get(0)?;
    Ok(CheckIn::NameTaken(holder))
}

pub(super) async fn alive(c: &impl GenericClient, alive_for: Duration) -> Result<u64, Fail> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM replicas WHERE seen_at >= {DB_MS} - $1"
        ))
        .await?;
    let n: i64 = c.query_one(&stmt, &[&ms(alive_for)]).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
