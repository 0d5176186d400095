//! Ingest and claim cost against the depth of the queue, on the real SQLite store
//! (`cargo bench --bench queue_depth`). With one hook's job running and N jobs queued
//! behind it, it measures how fast another hook's deliveries are accepted and how long
//! a claim takes, for N = 0 and N = 100,000, and prints the ratios. Not a test: the
//! numbers go in benches/RESULTS.md.

use std::time::{Duration, Instant, SystemTime};

use deployhook::event::{ChangedPaths, Forge, PushEvent, RefName, Sha};
use deployhook::store::{Acceptance, Delivery, InstanceId, NewJob, Origin, Queue, Store};

const DEEP: usize = 100_000;
const MEASURED: usize = 3_000;

fn job(n: usize) -> NewJob {
    NewJob {
        rule: 0,
        rule_key: "0".into(),
        per_rule: false,
        lock: None,
        reason: None,
        queue: Queue::Fifo,
        event: PushEvent {
            forge: Forge::Generic,
            repository: "a/b".into(),
            git_ref: RefName::parse("refs/heads/main").unwrap(),
            before: Sha::parse(&"0".repeat(40)).unwrap(),
            after: Sha::parse(&format!("{n:040x}")).unwrap(),
            forced: false,
            paths: ChangedPaths::Unknown,
            pusher: None,
            delivery: None,
        },
        origin: Origin::Push,
        notify: Vec::new(),
    }
}

fn delivery(hook: &str) -> Delivery {
    Delivery {
        hook: hook.to_owned(),
        delivery: None,
        forge: Forge::Generic,
        event: Some("push".into()),
        git_ref: None,
        after: None,
        note: None,
    }
}

/// Accepts per second for `hook` (64 at a time, as concurrent requests would), and the
/// mean time of a claim that finds nothing runnable but must look past `deep` jobs.
async fn measure(store: &Store, hook: &str, start: usize) -> (f64, Duration) {
    let began = Instant::now();
    let mut n = start;
    while n < start + MEASURED {
        let batch: Vec<_> = (0..64)
            .map(|i| {
                let s = store.clone();
                let hook = hook.to_owned();
                tokio::spawn(async move {
                    s.accept(
                        delivery(&hook),
                        vec![format!("id:{}", n + i)],
                        vec![job(n + i)],
                        usize::MAX,
                    )
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in batch {
            assert!(matches!(t.await.unwrap(), Acceptance::Queued(_)));
        }
        n += 64;
    }
    let rate = f64::from(u32::try_from(n - start).unwrap()) / began.elapsed().as_secs_f64();
    let far = SystemTime::now() + Duration::from_secs(3600);
    let claims = 200;
    let began = Instant::now();
    for _ in 0..claims {
        // Every hook has a running job: the claim finds nothing, after looking at the queue.
        assert!(
            store
                .claim(InstanceId::from_recorded("bench"), far)
                .await
                .unwrap()
                .is_none()
        );
    }
    (rate, began.elapsed() / claims)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut results = Vec::new();
    for depth in [0, DEEP] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let far = SystemTime::now() + Duration::from_secs(3600);
        // One running job on "deep" and on "other", then `depth` queued behind "deep".
        for hook in ["deep", "other"] {
            store
                .accept(delivery(hook), vec![], vec![job(0)], usize::MAX)
                .await
                .unwrap();
            store
                .claim(InstanceId::from_recorded("bench"), far)
                .await
                .unwrap()
                .unwrap();
        }
        let mut n = 1;
        while n <= depth {
            let jobs: Vec<NewJob> = (n..(n + 500).min(depth + 1)).map(job).collect();
            n += jobs.len();
            store
                .accept(delivery("deep"), vec![], jobs, usize::MAX)
                .await
                .unwrap();
        }
        let (rate, claim) = measure(&store, "other", DEEP + 10).await;
        println!(
            "queued {depth:>7}: accept {rate:>8.0}/s, claim {:>8.1} µs",
            claim.as_secs_f64() * 1e6
        );
        results.push((rate, claim));
    }
    let (r0, c0) = results[0];
    let (r1, c1) = results[1];
    println!(
        "at {DEEP} queued: accept rate {:.2}× of an empty queue's, claim {:.2}× as long",
        r1 / r0,
        c1.as_secs_f64() / c0.as_secs_f64()
    );
}
