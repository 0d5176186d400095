//! The PostgreSQL schema and its migrations, numbered in `deployhook_schema`. Applied at
//! open by one replica at a time (a session advisory lock); a database whose schema is
//! newer than this build knows is refused, so an old replica never writes to it.

use tokio_postgres::Client;

/// Session lock held while migrating ("deployhook migrate").
const MIGRATE_LOCK: i64 = 0x6470_686b_6d69;

/// Migrations in order; entry N brings the schema from version N to N+1. The tables
/// follow the SQLite backend's (times are unix seconds or ms as there, in BIGINTs).
pub(super) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE deliveries (
        hook        TEXT   NOT NULL,
        key         TEXT   NOT NULL,   -- 'id:<delivery id>' or 'body:<sha256 of body>'
        received_at BIGINT NOT NULL,   -- unix seconds
        delivery    TEXT,              -- the delivery id it came with
        job         BIGINT,            -- the first job it queued
        PRIMARY KEY (hook, key)
    );
    CREATE INDEX deliveries_by_age ON deliveries (received_at);
    CREATE TABLE jobs (
        id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        hook             TEXT    NOT NULL,
        rule             BIGINT  NOT NULL,   -- index of the matching [[hook.rule]], from 0
        rule_key         TEXT    NOT NULL,   -- its name, or its index
        lane             TEXT    NOT NULL,   -- what runs one at a time: the hook, or hook + rule
        state            TEXT    NOT NULL,
        queue            TEXT    NOT NULL,   -- supersede, fifo
        forge            TEXT    NOT NULL,
        repository       TEXT    NOT NULL,
        git_ref          TEXT    NOT NULL,
        before_sha       TEXT    NOT NULL,
        after_sha        TEXT    NOT NULL,
        pusher           TEXT,
        delivery         TEXT,
        changed_paths    TEXT,               -- a JSON list; NULL: the forge listed none
        lock             TEXT,
        attempt          BIGINT  NOT NULL DEFAULT 1,
        manual           BOOLEAN NOT NULL DEFAULT false,
        force            BOOLEAN NOT NULL DEFAULT false,
        created_at       BIGINT  NOT NULL,   -- unix seconds
        started_at       BIGINT,
        finished_at      BIGINT,
        detail           TEXT,
        summary          TEXT,
        owner            TEXT,               -- the instance running it
        lease_until      BIGINT,             -- unix ms, on the database's clock
        cancel_requested BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX jobs_by_state_lane ON jobs (state, lane, id);
    CREATE INDEX jobs_by_rule ON jobs (hook, rule_key, state, id);
    CREATE INDEX jobs_by_before ON jobs (hook, before_sha);
    CREATE INDEX jobs_by_hook_state ON jobs (hook, state, id);
    CREATE INDEX jobs_by_hook_ref ON jobs (hook, git_ref, id);
    CREATE TABLE job_events (
        id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the cursor: commit order
        job    BIGINT NOT NULL,
        hook   TEXT   NOT NULL,
        kind   TEXT   NOT NULL,
        at     BIGINT NOT NULL,   -- unix ms
        reason TEXT   NOT NULL
    );
    CREATE INDEX job_events_by_job ON job_events (job, id);
    CREATE TABLE delivery_log (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        hook        TEXT   NOT NULL,
        delivery    TEXT,
        forge       TEXT   NOT NULL,
        event       TEXT,
        git_ref     TEXT,
        after_sha   TEXT,
        received_at BIGINT NOT NULL,  -- unix ms
        outcome     TEXT   NOT NULL,
        jobs        TEXT,             -- job ids, comma-separated
        reason      TEXT   NOT NULL
    );
    CREATE INDEX delivery_log_by_hook ON delivery_log (hook, id);
    CREATE INDEX delivery_log_by_delivery ON delivery_log (hook, delivery);
    CREATE TABLE secrets (
        name  TEXT  PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE job_targets (
        job         BIGINT  NOT NULL,
        target      TEXT    NOT NULL,
        events      TEXT    NOT NULL,   -- ',started,failed,'
        latest_only BOOLEAN NOT NULL,
        memo        TEXT,
        PRIMARY KEY (job, target)
    );
    CREATE TABLE outbox (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job         BIGINT NOT NULL,
        target      TEXT   NOT NULL,
        lane        TEXT   NOT NULL,
        event       BIGINT NOT NULL,   -- job_events.id
        state       TEXT   NOT NULL,   -- pending sent failed replaced
        created_at  BIGINT NOT NULL,   -- unix ms
        next_at     BIGINT NOT NULL,
        attempts    BIGINT NOT NULL DEFAULT 0,
        last_error  TEXT,
        done_at     BIGINT,
        taken_by    TEXT,              -- the replica sending it now ...
        taken_until BIGINT             -- ... until then (unix ms, the database's clock)
    );
    CREATE INDEX outbox_pending ON outbox (lane, id) WHERE state = 'pending';
    CREATE INDEX outbox_by_job ON outbox (job, id);
    CREATE TABLE pauses (
        hook   TEXT   PRIMARY KEY,
        reason TEXT   NOT NULL,
        since  BIGINT NOT NULL   -- unix ms
    );
",
    "
    -- The replicas, by node name, and when each last said it was alive.
    CREATE TABLE replicas (
        node       TEXT   PRIMARY KEY,
        instance   TEXT   NOT NULL,   -- node:pid:start of the process using the name
        started_at BIGINT NOT NULL,   -- unix ms, the database's clock
        seen_at    BIGINT NOT NULL
    );
",
    "
    -- Job logs, in chunks as the running replica copies them in, so that any replica
    -- can serve any job's log. A chunk's start is its byte offset in the log; a log's
    -- size is the next chunk's start (taken and bumped in one statement).
    CREATE TABLE job_logs (
        job   BIGINT NOT NULL,
        start BIGINT NOT NULL,
        bytes BYTEA  NOT NULL,
        PRIMARY KEY (job, start)
    );
    CREATE TABLE job_log_sizes (
        job  BIGINT PRIMARY KEY,
        size BIGINT NOT NULL
    );
",
    "
    -- The pending jobs alone, for supersede and max_queued: in the (hook, rule_key,
    -- state, id) index a scan for pending jobs walked every superseded one of the rule
    -- (a prepared statement's generic plan could not use the state there), so each
    -- delivery cost more the more history the hook had (ingest fell to 250/s at 3,000
    -- jobs). Rows leave this index as they end, and plain index scans drop them.
    CREATE INDEX jobs_pending ON jobs (hook, rule_key, id) WHERE state IN ('queued', 'held');
    -- Every column later_push asks for equal, so no plan prefers (hook, git_ref) and walks
    -- every job of the ref (as one did before the table's first ANALYZE: 0.9 ms a push).
    DROP INDEX jobs_by_before;
    CREATE INDEX jobs_by_before ON jobs (hook, before_sha, git_ref, rule_key);
    -- Ended jobs are rewritten once or twice each; vacuum the queue often enough that
    -- index-only scans (max_queued's count) need not visit their dead versions.
    ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500);
",
    "
    -- A delivery's jobs, for its status link, on its replay key (as in SQLite): one index
    -- of the delivery log fewer to change in every delivery's transaction.
    ALTER TABLE deliveries ADD COLUMN jobs TEXT;   -- the job ids queued, comma-separated
    UPDATE deliveries d SET jobs = (
        SELECT l.jobs FROM delivery_log l
        WHERE l.hook = d.hook AND l.delivery = d.delivery AND l.outcome = 'queued'
        ORDER BY l.id LIMIT 1)
    WHERE d.key = 'id:' || d.delivery;
    DROP INDEX delivery_log_by_delivery;
",
];

/// Why the database cannot be used by this build.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    #[error(
        "the database's schema is version {found}, newer than this deployhook knows ({known}); upgrade this replica"
    )]
    Newer { found: usize, known: usize },
    #[error("{0}")]
    Db(String),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(e: tokio_postgres::Error) -> Self {
        SchemaError::Db(super::describe(&e))
    }
}

/// Applies the migrations not yet applied, one replica at a time.
pub(super) async fn prepare(client: &mut Client) -> Result<(), SchemaError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    let result = migrate(client).await;
    // Released whatever happened (a session lock outlives a failed transaction).
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await?;
    result
}

async fn migrate(client: &mut Client) -> Result<(), SchemaError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS deployhook_schema (version BIGINT NOT NULL)")
        .await?;
    let version: Option<i64> = client
        .query_opt("SELECT max(version) FROM deployhook_schema", &[])
        .await?
        .and_then(|r| r.get(0));
    let done = usize::try_from(version.unwrap_or(0)).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(SchemaError::Newer {
            found: done,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        let next = i64::try_from(i + 1).expect("few migrations");
        tx.execute("DELETE FROM deployhook_schema", &[]).await?;
        tx.execute(
            "INSERT INTO deployhook_schema (version) VALUES ($1)",
            &[&next],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The schema version this build writes.
pub(super) fn known() -> usize {
    MIGRATIONS.len()
}
