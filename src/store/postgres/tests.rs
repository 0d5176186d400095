//! The PostgreSQL backend against a real server: a throwaway cluster the tests start
//! (`tests/support/pg_cluster.rs`), one database per store. Several stores on one
//! database stand for several replicas.

use std::time::{Duration, SystemTime};

use super::super::types::*;
use super::super::{Backend, Store, conformance};
use super::{Connect, Postgres};

#[path = "../../../tests/support/pg_cluster.rs"]
mod pg_cluster;

use pg_cluster::{Cluster, TestDb};

/// The cluster, or `None` (outside CI, without PostgreSQL: the harness said why).
fn cluster() -> Option<&'static Cluster> {
    Cluster::shared()
}

fn connect(cluster: &Cluster, db: &TestDb) -> Connect {
    let mut config: tokio_postgres::Config = db.socket_url.parse().unwrap();
    config.password(cluster.password());
    Connect {
        config,
        tls: None,
        shown: db.name.clone(),
    }
}

async fn open(cluster: &Cluster, db: &TestDb) -> Postgres {
    Postgres::open(connect(cluster, db)).await.unwrap()
}

/// A store on a fresh database of its own.
async fn fresh(cluster: &'static Cluster) -> Store {
    let db = cluster.database();
    Store::from_backend(std::sync::Arc::new(open(cluster, &db).await))
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(cluster) = cluster() else { return };
    conformance::run(|| fresh(cluster)).await;
}

fn delivery(id: &str) -> Delivery {
    let mut d = conformance::delivery("h");
    d.delivery = Some(crate::event::DeliveryId::parse(id).unwrap());
    d
}

#[tokio::test]
async fn one_delivery_sent_to_two_replicas_at_once_is_accepted_once() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (a, b) = (open(cluster, &db).await, open(cluster, &db).await);
    for n in 0..20 {
        let id = format!("d-{n}");
        let keys = vec![format!("id:{id}")];
        let job = vec![conformance::job(0, Queue::Fifo, 'a')];
        let (x, y) = tokio::join!(
            a.accept(delivery(&id), keys.clone(), job.clone(), conformance::ROOM),
            b.accept(delivery(&id), keys, job, conformance::ROOM),
        );
        let outcomes = [x.unwrap(), y.unwrap()];
        let queued = outcomes
            .iter()
            .filter(|o| matches!(o, Acceptance::Queued(_)))
            .count();
        let duplicate = outcomes
            .iter()
            .filter(|o| matches!(o, Acceptance::Duplicate(Prior { same_id: true, .. })))
            .count();
        assert_eq!((queued, duplicate), (1, 1), "{outcomes:?}");
    }
    let jobs = a
        .list(JobFilter {
            limit: Some(100),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 20);
}

#[tokio::test]
async fn two_replicas_never_run_two_jobs_of_one_hook() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (a, b) = (open(cluster, &db).await, open(cluster, &db).await);
    let a = Store::from_backend(std::sync::Arc::new(a));
    for c in ['a', 'b', 'c'] {
        conformance::queue(&a, "h", vec![conformance::job(0, Queue::Fifo, c)]).await;
    }
    conformance::queue(&a, "g", vec![conformance::job(0, Queue::Fifo, 'd')]).await;
    let hour = conformance::hour();
    // Both ask at the same moment, again and again: one job of each hook, no more.
    let mut claimed = Vec::new();
    for _ in 0..3 {
        let (x, y) = tokio::join!(
            a.claim(conformance::owner("a"), hour),
            b.claim(conformance::owner("b"), hour)
        );
        claimed.extend(x.unwrap());
        claimed.extend(y.unwrap());
    }
    let mut hooks: Vec<&str> = claimed.iter().map(|j| j.hook.as_str()).collect();
    hooks.sort_unstable();
    assert_eq!(hooks, ["g", "h"]);
    // fifo across replicas: the first of h's pushes runs first.
    let h = claimed.iter().find(|j| j.hook == "h").unwrap();
    assert_eq!(h.sha, conformance::sha('a'));
}

#[tokio::test]
async fn a_commit_by_one_replica_wakes_the_other() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (a, b) = (open(cluster, &db).await, open(cluster, &db).await);
    let mut changed = b.changed();
    changed.borrow_and_update();
    let store = Store::from_backend(std::sync::Arc::new(a));
    // The listener may still be connecting: write until b hears of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        conformance::queue(&store, "h", vec![conformance::job(0, Queue::Fifo, 'a')]).await;
        if tokio::time::timeout(Duration::from_millis(500), changed.changed())
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other replica never heard of a commit"
        );
    }
    assert!(!b.events(Cursor(0), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_late_finish_after_the_lease_ran_out_is_refused() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let s = open(cluster, &db).await;
    let store = Store::from_backend(std::sync::Arc::new(s));
    conformance::queue(&store, "h", vec![conformance::job(0, Queue::Fifo, 'a')]).await;
    let me = conformance::owner("fenced");
    // A lease already over (as after a replica lost the database for longer than it).
    let past = SystemTime::now() - Duration::from_secs(1);
    let job = store.claim(me.clone(), past).await.unwrap().unwrap();
    let beat = store
        .heartbeat(me.clone(), vec![job.id], conformance::hour())
        .await
        .unwrap();
    assert_eq!(beat.lost, vec![job.id]);
    let finished = store
        .finish(me, job.id, JobState::Succeeded, "done".into(), None)
        .await
        .unwrap();
    assert_eq!(finished, Finished::NotOwner);
    assert_eq!(conformance::state(&store, job.id).await, JobState::Running);
    let recovered = store.recover(SystemTime::now()).await.unwrap();
    assert_eq!(recovered[0].state, JobState::Interrupted);
}

#[tokio::test]
async fn events_are_read_in_commit_order_while_two_replicas_write() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let a = Store::from_backend(std::sync::Arc::new(open(cluster, &db).await));
    let b = Store::from_backend(std::sync::Arc::new(open(cluster, &db).await));
    let writers = [a.clone(), b.clone()].map(|s| {
        tokio::spawn(async move {
            for n in 0..40 {
                let hook = format!("h{}", n % 5);
                conformance::queue(&s, &hook, vec![conformance::job(0, Queue::Fifo, 'a')]).await;
            }
        })
    });
    // A reader following the cursor while they write never sees an id below one it has
    // seen, and at the end has seen every event exactly once.
    let mut cursor = Cursor(0);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 80 {
        for e in a.events(cursor, 7).await.unwrap() {
            assert!(e.cursor.0 > cursor.0);
            cursor = e.cursor;
            seen.push(e.cursor.0);
        }
        assert!(tokio::time::Instant::now() < deadline, "saw {}", seen.len());
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let all: Vec<i64> = a
        .events(Cursor(0), 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.cursor.0)
        .collect();
    assert_eq!(seen, all);
}

#[tokio::test]
async fn two_replicas_never_send_one_lane_at_once() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let a = open(cluster, &db).await;
    let b = open(cluster, &db).await;
    let store = Store::from_backend(std::sync::Arc::new(open(cluster, &db).await));
    let mut job = conformance::job(0, Queue::Fifo, 'a');
    job.notify = vec![Subscription {
        target: "notify:chat".into(),
        on: vec![EventKind::Queued],
        latest_only: false,
    }];
    conformance::queue(&store, "h", vec![job.clone()]).await;
    conformance::queue(&store, "h", vec![job]).await;
    let now = SystemTime::now() + Duration::from_secs(1);
    let x = a.outbox_due(now, Vec::new(), 10).await.unwrap();
    let y = b.outbox_due(now, Vec::new(), 10).await.unwrap();
    // One lane (target + repository): its head goes to one replica, the other gets none.
    assert_eq!(x.len(), 1);
    assert!(y.is_empty(), "{y:?}");
    // Once sent, the next row of the lane is anyone's.
    a.outbox_attempt(x[0].id, Attempt::Sent { memo: None })
        .await
        .unwrap();
    let y = b.outbox_due(now, Vec::new(), 10).await.unwrap();
    assert_eq!(y.len(), 1);
    assert!(y[0].id.0 > x[0].id.0);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    drop(open(cluster, &db).await);
    cluster.psql(
        &db.name,
        "UPDATE deployhook_schema SET version = version + 1",
    );
    let err = Postgres::open(connect(cluster, &db)).await.err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("newer than this deployhook knows"), "{msg}");
}

#[tokio::test]
async fn replicas_opening_at_once_migrate_once() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (a, b, c) = tokio::join!(
        Postgres::open(connect(cluster, &db)),
        Postgres::open(connect(cluster, &db)),
        Postgres::open(connect(cluster, &db)),
    );
    for s in [a, b, c] {
        s.unwrap();
    }
    let rows = cluster.psql(
        &db.name,
        "SELECT count(*), max(version) FROM deployhook_schema",
    );
    assert_eq!(rows.trim(), format!("1|{}", super::schema::known()));
}

#[tokio::test]
async fn tls_to_a_tcp_host_trusts_ca_file_and_nothing_less() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let mut config: tokio_postgres::Config = db.tcp_url.parse().unwrap();
    config.password(cluster.password());
    let ca = std::fs::read(cluster.ca_file()).unwrap();
    let trusted = Connect {
        config: config.clone(),
        tls: Some(super::tls_config(Some(&ca)).unwrap()),
        shown: db.name.clone(),
    };
    let store = Postgres::open(trusted).await.unwrap();
    store.ping().await.unwrap();
    // The test CA is not among the platform's roots: the server is not believed.
    let untrusted = Connect {
        config,
        tls: Some(super::tls_config(None).unwrap()),
        shown: db.name.clone(),
    };
    let err = Postgres::open(untrusted).await.err().unwrap().to_string();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_node_name_is_one_live_replicas_and_the_live_ones_are_counted() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let s = open(cluster, &db).await;
    let lease = Duration::from_secs(30);
    let (a, b) = (InstanceId::on_node("a"), InstanceId::from_recorded("a:2:x"));
    assert_eq!(
        s.check_in("a".into(), a.clone(), lease).await.unwrap(),
        CheckIn::Alive
    );
    assert_eq!(
        s.check_in("a".into(), a.clone(), lease).await.unwrap(),
        CheckIn::Alive
    );
    // A second process under the same name is refused while the first is alive ...
    assert_eq!(
        s.check_in("a".into(), b.clone(), lease).await.unwrap(),
        CheckIn::NameTaken(a.as_str().to_owned())
    );
    s.check_in("b".into(), InstanceId::on_node("b"), lease)
        .await
        .unwrap();
    assert_eq!(s.replicas_alive(lease).await.unwrap(), 2);
    // ... and may take it once the first has not checked in for longer than the lease.
    cluster.psql(
        &db.name,
        "UPDATE replicas SET seen_at = seen_at - 60000 WHERE node = 'a'",
    );
    assert_eq!(s.replicas_alive(lease).await.unwrap(), 1);
    assert_eq!(
        s.check_in("a".into(), b, lease).await.unwrap(),
        CheckIn::Alive
    );
}

#[tokio::test]
async fn job_logs_are_one_log_whoever_appends_and_go_with_their_job() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (a, b) = (
        Store::from_backend(std::sync::Arc::new(open(cluster, &db).await)),
        Store::from_backend(std::sync::Arc::new(open(cluster, &db).await)),
    );
    let id = conformance::queue(&a, "h", vec![conformance::job(0, Queue::Fifo, 'a')]).await[0];
    let (book_a, book_b) = (a.log_book().unwrap(), b.log_book().unwrap());
    // Two replicas append at once (the runner's copier on one, a note from the other):
    // every chunk lands whole, none overlaps another, and the log has no gap.
    let chunk = |who: char, n: usize| format!("{who}{n:03}{}\n", "x".repeat(n % 7)).into_bytes();
    let appends = |book: std::sync::Arc<dyn crate::store::LogBook>, who: char| async move {
        for n in 0..40 {
            book.append(id, chunk(who, n)).await.unwrap();
        }
    };
    tokio::join!(appends(book_a.clone(), 'a'), appends(book_b.clone(), 'b'));
    let whole = book_b.read(id, 0, 1 << 20).await.unwrap();
    let mut lines: Vec<&[u8]> = whole.split_inclusive(|&c| c == b'\n').collect();
    assert_eq!(lines.len(), 80);
    lines.sort_unstable();
    let mut expected: Vec<Vec<u8>> = (0..40)
        .flat_map(|n| [chunk('a', n), chunk('b', n)])
        .collect();
    expected.sort_unstable();
    assert_eq!(
        lines,
        expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    // Any slice, from any offset, across chunk boundaries, reads what the whole says.
    for from in [0, 1, 5, 6, 100, whole.len() - 1] {
        for max in [1, 3, 64, 1 << 20] {
            let part = book_a.read(id, from as u64, max as u64).await.unwrap();
            let end = whole.len().min(from + max);
            assert_eq!(part, whole[from..end], "from {from}, max {max}");
        }
    }
    assert!(
        book_a
            .read(id, whole.len() as u64, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Pruned with its job, by whichever replica prunes.
    let job = a
        .claim(conformance::owner("w"), conformance::hour())
        .await
        .unwrap()
        .unwrap();
    a.finish(
        conformance::owner("w"),
        job.id,
        JobState::Succeeded,
        "ok".into(),
        None,
    )
    .await
    .unwrap();
    let keep = Retention {
        keep_jobs: 0,
        keep_for: Duration::from_secs(3600),
        at_most: 100,
    };
    assert_eq!(b.prune(keep).await.unwrap(), vec![id]);
    assert!(book_a.read(id, 0, 1 << 20).await.unwrap().is_empty());
    book_a.append(id, b"later\n".to_vec()).await.unwrap();
    assert_eq!(book_b.read(id, 0, 100).await.unwrap(), b"later\n");
}

/// The shared blocks (hit or read) that the prune's queries touch, by EXPLAIN (ANALYZE,
/// BUFFERS), on a fresh database holding `history` finished jobs and delivery records of
/// two hooks, pruned to the newest 100 per hook, 50 at a time.
async fn prune_blocks(cluster: &'static Cluster, history: i64) -> i64 {
    let db = cluster.database();
    let _store = open(cluster, &db).await;
    let (client, conn) = connect(cluster, &db)
        .config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let now_ms = now * 1000;
    client
        .batch_execute(&format!(
            "INSERT INTO jobs (hook, rule, rule_key, lane, state, queue, forge, repository,
                               git_ref, before_sha, after_sha, created_at)
             SELECT CASE WHEN i % 2 = 0 THEN 'h' ELSE 'g' END, 0, '0', 'h',
                    (ARRAY['succeeded', 'failed', 'superseded'])[i % 3 + 1], 'supersede',
                    'github', 'a/b', 'refs/heads/main', repeat('a', 40), repeat('a', 40), {now}
             FROM generate_series(1, {history}) AS i;
             INSERT INTO delivery_log (hook, forge, received_at, outcome, reason)
             SELECT CASE WHEN i % 2 = 0 THEN 'h' ELSE 'g' END, 'github', {now_ms},
                    'ignored', 'a tag'
             FROM generate_series(1, {history}) AS i;
             ANALYZE"
        ))
        .await
        .unwrap();
    let explain = |sql: &str| format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {sql}");
    let blocks = |plan: Vec<tokio_postgres::Row>| -> i64 {
        // The top node's line counts everything below it.
        let line = plan
            .iter()
            .map(|r| r.get::<_, String>(0))
            .find(|l| l.trim_start().starts_with("Buffers:"))
            .unwrap_or_default();
        line.split([' ', ','])
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| *k == "hit" || *k == "read")
            .map(|(_, v)| v.parse::<i64>().unwrap())
            .sum()
    };
    let mut total = 0;
    for hooks in [
        super::jobs::HOOKS_WITH_JOBS,
        super::deliveries::HOOKS_WITH_RECORDS,
    ] {
        total += blocks(client.query(&explain(hooks), &[]).await.unwrap());
    }
    for hook in ["g", "h"] {
        for state in ["succeeded", "failed", "superseded"] {
            let newest = client
                .query(
                    &explain(super::jobs::NEWEST_DONE),
                    &[&hook, &state, &100_i64],
                )
                .await
                .unwrap();
            total += blocks(newest);
            let oldest = client
                .query(
                    &explain(super::jobs::OLDEST_PAST),
                    &[&hook, &state, &(history - 300), &(now - 86_400), &50_i64],
                )
                .await
                .unwrap();
            total += blocks(oldest);
        }
    }
    total
}

/// A prune walks index ranges from where it starts to where it has enough: four times
/// the history costs its queries no more pages (they ranked every finished job and
/// every delivery record with a window function, on the transaction deliveries wait for).
#[tokio::test]
async fn a_prune_reads_what_it_removes_not_the_history() {
    let Some(cluster) = cluster() else { return };
    let small = prune_blocks(cluster, 2_000).await;
    let large = prune_blocks(cluster, 8_000).await;
    assert!(small > 0, "EXPLAIN showed no buffers");
    assert!(
        large * 10 < small * 12,
        "{large} blocks with 8,000 jobs against {small} with 2,000"
    );
}

/// Status links read a delivery's jobs off its replay key now: the migration copies them
/// from the delivery log, for the rows whose record is still there.
#[tokio::test]
async fn the_migration_moves_each_deliverys_jobs_onto_its_replay_key() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database();
    let (client, conn) = connect(cluster, &db)
        .config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let moving = super::schema::MIGRATIONS
        .iter()
        .position(|m| m.contains("DROP INDEX delivery_log_by_delivery"))
        .unwrap();
    client
        .batch_execute("CREATE TABLE deployhook_schema (version BIGINT NOT NULL)")
        .await
        .unwrap();
    for sql in &super::schema::MIGRATIONS[..moving] {
        client.batch_execute(sql).await.unwrap();
    }
    client
        .batch_execute(&format!(
            "INSERT INTO deployhook_schema (version) VALUES ({moving});
             INSERT INTO deliveries (hook, key, received_at, delivery, job) VALUES
                 ('h', 'id:one', 1, 'one', 7),
                 ('h', 'body:abc', 1, 'one', 7),
                 ('h', 'id:gone', 1, 'gone', 3);
             INSERT INTO delivery_log (hook, delivery, forge, received_at, outcome, jobs, reason)
             VALUES ('h', 'one', 'github', 1, 'duplicate', '2', 'seen'),
                    ('h', 'one', 'github', 1, 'queued', '7,8', 'queued');"
        ))
        .await
        .unwrap();
    drop(client);
    driver.await.unwrap().unwrap();
    let store = open(cluster, &db).await;
    assert_eq!(
        store.delivery_jobs("h".into(), "one".into()).await.unwrap(),
        Some(vec![JobId(7), JobId(8)])
    );
    assert_eq!(
        store
            .delivery_jobs("h".into(), "gone".into())
            .await
            .unwrap(),
        None,
        "its record was pruned"
    );
    let index = cluster.psql(
        &db.name,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'delivery_log_by_delivery'",
    );
    assert_eq!(index.trim(), "0");
}
