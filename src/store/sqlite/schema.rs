//! The SQLite schema and its migrations, keyed by `PRAGMA user_version`.

use rusqlite::Connection;

/// Migrations in order; entry N brings the schema from version N to N+1.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE deliveries (
        hook        TEXT    NOT NULL,
        key         TEXT    NOT NULL,   -- 'id:<delivery id>' or 'body:<sha256 of body>'
        received_at INTEGER NOT NULL,   -- unix seconds
        PRIMARY KEY (hook, key)
    ) WITHOUT ROWID;
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        hook        TEXT    NOT NULL,
        rule        INTEGER NOT NULL,   -- index of the matching [[hook.rule]], from 0
        state       TEXT    NOT NULL,   -- queued running succeeded failed timed_out cancelled superseded interrupted
        forge       TEXT    NOT NULL,
        repository  TEXT    NOT NULL,
        git_ref     TEXT    NOT NULL,
        before_sha  TEXT    NOT NULL,
        after_sha   TEXT    NOT NULL,
        pusher      TEXT,
        delivery    TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_hook_state ON jobs (hook, state, id);
", "
    ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'supersede';  -- or 'fifo'
    ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;      -- 2+ when re-queued after an interruption
    ALTER TABLE jobs ADD COLUMN started_at INTEGER;
    ALTER TABLE jobs ADD COLUMN finished_at INTEGER;
    ALTER TABLE jobs ADD COLUMN detail TEXT;         -- why it ended: exit status, error, superseding job
    ALTER TABLE jobs ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;  -- 1: from POST /api/hooks/{id}/deploy
    CREATE INDEX jobs_by_state ON jobs (state, id);
", "
    -- Finds the push that built on a commit, to spot pushes that arrive out of order.
    CREATE INDEX jobs_by_before ON jobs (hook, before_sha);
", "
    ALTER TABLE jobs ADD COLUMN force INTEGER NOT NULL DEFAULT 0;  -- 1: manual deploy whose sha was not checked against its ref
", "
    -- What a replay key was first accepted as, to tell a duplicate which.
    ALTER TABLE deliveries ADD COLUMN delivery TEXT;  -- the delivery id it came with
    ALTER TABLE deliveries ADD COLUMN job INTEGER;    -- the first job it queued
", "
    -- Leases: who runs a job, until when, and whether an operator asked it to stop.
    ALTER TABLE jobs ADD COLUMN owner TEXT;             -- the instance id of the process running it
    ALTER TABLE jobs ADD COLUMN lease_until INTEGER;    -- unix ms; past it, the job is recovered
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    -- Every state change of every job, in commit order (the id is the cursor).
    CREATE TABLE job_events (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        job    INTEGER NOT NULL,
        hook   TEXT    NOT NULL,
        kind   TEXT    NOT NULL,   -- queued superseded started succeeded failed timed_out cancelled interrupted requeued
        at     INTEGER NOT NULL,   -- unix ms
        reason TEXT    NOT NULL
    );
    CREATE INDEX job_events_by_job ON job_events (job, id);
    -- Every verified delivery and what became of it.
    CREATE TABLE delivery_log (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        hook        TEXT    NOT NULL,
        delivery    TEXT,
        forge       TEXT    NOT NULL,
        event       TEXT,
        git_ref     TEXT,
        after_sha   TEXT,
        received_at INTEGER NOT NULL,  -- unix ms
        outcome     TEXT    NOT NULL,  -- queued duplicate ignored pong bad_payload
        jobs        TEXT,              -- queued: the job ids, comma-separated; duplicate: the first job
        reason      TEXT    NOT NULL
    );
    CREATE INDEX delivery_log_by_hook ON delivery_log (hook, id);
", "
    -- Keys only the daemon knows (the status links' MAC key), shared by every process
    -- on this database.
    CREATE TABLE secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID;
    -- A delivery's jobs, for its status link.
    CREATE INDEX delivery_log_by_delivery ON delivery_log (hook, delivery);
", "
    -- The claim's loose index scan over the hooks with queued jobs, and each one's oldest.
    CREATE INDEX jobs_by_state_hook ON jobs (state, hook, id);
", "
    ALTER TABLE jobs ADD COLUMN summary TEXT;   -- the line its commands left in $DEPLOYHOOK_SUMMARY
    -- Who is told about a job's events, fixed when it is queued.
    CREATE TABLE job_targets (
        job         INTEGER NOT NULL,
        target      TEXT    NOT NULL,   -- 'status', 'deployment', 'notify:<name>'
        events      TEXT    NOT NULL,   -- the event kinds it hears about: ',started,failed,'
        latest_only INTEGER NOT NULL,   -- 1: a newer row replaces one not yet sent
        memo        TEXT,               -- what the sender keeps between sends (a deployment id)
        PRIMARY KEY (job, target)
    ) WITHOUT ROWID;
    -- What is to be sent, written in the transaction of the event that causes it.
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        job        INTEGER NOT NULL,
        target     TEXT    NOT NULL,
        lane       TEXT    NOT NULL,   -- target and repository: rows of a lane go in order
        event      INTEGER NOT NULL,   -- job_events.id
        state      TEXT    NOT NULL,   -- pending sent failed replaced
        created_at INTEGER NOT NULL,   -- unix ms
        next_at    INTEGER NOT NULL,   -- unix ms: not tried before
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        done_at    INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (lane, id) WHERE state = 'pending';
    CREATE INDEX outbox_by_job ON outbox (job, id);
", "
    -- Rules by name (or index), and what runs one at a time: the hook, or (match = all)
    -- the hook's rule.
    ALTER TABLE jobs ADD COLUMN rule_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN changed_paths TEXT;   -- a JSON list; NULL: the forge listed none
    UPDATE jobs SET rule_key = CAST(rule AS TEXT), lane = hook;
    DROP INDEX jobs_by_state_hook;
    CREATE INDEX jobs_by_state_lane ON jobs (state, lane, id);
    CREATE INDEX jobs_by_rule ON jobs (hook, rule_key, state, id);
", "
    ALTER TABLE jobs ADD COLUMN lock TEXT;   -- jobs holding the same lock never run at once
", "
    -- Paused hooks: their jobs are held (state 'held') until the hook is resumed.
    CREATE TABLE pauses (
        hook   TEXT PRIMARY KEY,
        reason TEXT    NOT NULL,
        since  INTEGER NOT NULL   -- unix ms
    ) WITHOUT ROWID;
", "
    -- Replay keys past their window, oldest first, without a scan of a year of them.
    CREATE INDEX deliveries_by_age ON deliveries (received_at);
", "
    -- Every lookup by state alone is of running jobs (few), which jobs_by_state_lane
    -- finds as well; one index less to change on each job's every state change.
    DROP INDEX jobs_by_state;
", "
    -- A delivery's jobs, for its status link, on its replay key: the delivery log's
    -- (hook, delivery) index was a b-tree page of its own, at a random place, in every
    -- delivery's commit.
    ALTER TABLE deliveries ADD COLUMN jobs TEXT;   -- the job ids queued, comma-separated
    UPDATE deliveries SET jobs = (
        SELECT l.jobs FROM delivery_log l
        WHERE l.hook = deliveries.hook AND l.delivery = deliveries.delivery
          AND l.outcome = 'queued'
        ORDER BY l.id LIMIT 1)
    WHERE key = 'id:' || delivery;
    DROP INDEX delivery_log_by_delivery;
", "
    -- The jobs' state indexes split by what reads them: pending and running jobs (for
    -- supersede, the queue limit, pauses and the claim) apart from ended ones (for the
    -- prune). A pending job leaves the small indexes as it ends, and enters the ended
    -- jobs' index only then, so a delivery that supersedes a job changes one small leaf
    -- of each, plus the end of the ended jobs' range, instead of two leaves of each of
    -- three b-trees the size of the history; a claim changes no history-sized index at
    -- all. SQLite uses a partial index only for a WHERE that names its condition, so the
    -- queries spell it out beside the state they want. (Not `NOT IN` of three states:
    -- that builds a temporary b-tree on every write of a job row, to test its condition.)
    DROP INDEX jobs_by_rule;
    CREATE INDEX jobs_pending ON jobs (hook, rule_key, state, id) WHERE state IN ('queued', 'held');
    DROP INDEX jobs_by_state_lane;
    CREATE INDEX jobs_active ON jobs (state, lane, id) WHERE state IN ('queued', 'running');
    DROP INDEX jobs_by_hook_state;
    CREATE INDEX jobs_done ON jobs (hook, state, id)
        WHERE state <> 'queued' AND state <> 'held' AND state <> 'running';
"];

/// Sets durability pragmas and applies any migrations not yet applied.
pub fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    // WAL + synchronous=FULL: a commit is on disk when it returns, so a 202 survives
    // a power cut, while readers never block the writer.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    plan_once(conn)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(version).unwrap_or(usize::MAX);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).expect("few migrations"),
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// Statements a connection keeps prepared: more than the writer uses (about forty), so
/// that a claim or a prune never pushes out the delivery path's (rusqlite keeps 16).
const PREPARED: usize = 128;

/// Prepares each statement once and plans it once, whatever is bound to it: a cache of
/// [`PREPARED`] statements, and the query planner stability guarantee. By default SQLite plans a
/// statement again when a bound value could change its plan, and it judged so for the
/// outbox's fan-out (`instr(events, ?)`) on every call: a parse and plan per job event,
/// on the writer thread every delivery waits for. Our statements are written for the
/// indexes they use, so a value-blind plan is the one we want (the query planner
/// stability guarantee).
pub fn plan_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(PREPARED);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brings a fresh database to `version`, as an older build left it.
    fn at_version(conn: &Connection, version: usize) {
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", i64::try_from(version).unwrap())
            .unwrap();
    }

    /// Status links read a delivery's jobs off its replay key now: the migration copies
    /// them from the delivery log, for the rows whose record is still there.
    #[test]
    fn the_migration_moves_each_deliverys_jobs_onto_its_replay_key() {
        let mut conn = Connection::open_in_memory().unwrap();
        let moving = MIGRATIONS
            .iter()
            .position(|m| m.contains("DROP INDEX delivery_log_by_delivery"))
            .unwrap();
        at_version(&conn, moving);
        conn.execute_batch(
            "INSERT INTO deliveries (hook, key, received_at, delivery, job) VALUES
                 ('h', 'id:one', 1, 'one', 7),
                 ('h', 'body:abc', 1, 'one', 7),
                 ('h', 'id:gone', 1, 'gone', 3),
                 ('g', 'id:one', 1, 'one', 9);
             INSERT INTO delivery_log (hook, delivery, forge, received_at, outcome, jobs, reason)
             VALUES ('h', 'one', 'github', 1, 'duplicate', '2', 'seen'),
                    ('h', 'one', 'github', 1, 'queued', '7,8', 'queued'),
                    ('g', 'one', 'github', 1, 'queued', '9', 'queued');",
        )
        .unwrap();
        prepare(&mut conn).unwrap();
        let jobs = |hook: &str, key: &str| -> Option<String> {
            conn.query_row(
                "SELECT jobs FROM deliveries WHERE hook = ?1 AND key = ?2",
                [hook, key],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(jobs("h", "id:one").as_deref(), Some("7,8"));
        assert_eq!(jobs("g", "id:one").as_deref(), Some("9"));
        assert_eq!(jobs("h", "body:abc"), None, "only the id's key is read");
        assert_eq!(jobs("h", "id:gone"), None, "its record was pruned");
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'delivery_log_by_delivery'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
    }
}
