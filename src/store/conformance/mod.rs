//! What every store backend must do, as one suite generic over the [`Backend`] seam: each
//! backend's tests call [`run`] with a function that opens a fresh, empty store.
//!
//! [`Backend`]: super::Backend

use std::time::{Duration, SystemTime};

mod lanes;
mod outbox;
mod pauses;

use super::Store;
use super::types::*;
use crate::event::{ChangedPaths, DeliveryId, Forge, PushEvent, RefName, Sha};

/// A `max_queued` no check reaches (but `queue_limits`).
pub const ROOM: usize = 1_000;

/// Runs every check, each on a store of its own.
pub async fn run<F: Future<Output = Store>>(open: impl Fn() -> F) {
    accept_and_replay(&open().await).await;
    concurrent_duplicates_are_accepted_once(&open().await).await;
    supersede_keeps_the_newest_pending_job(&open().await).await;
    out_of_order_pushes_and_rollbacks(&open().await).await;
    fifo_runs_every_push_in_order(&open().await).await;
    claim_runs_one_job_per_hook(&open().await).await;
    leases_fence_and_expire(&open().await).await;
    cancel_queued_and_running(&open().await).await;
    events_in_commit_order(&open().await).await;
    delivery_records(&open().await).await;
    delivery_jobs_and_secrets(&open().await).await;
    queue_limits(&open().await).await;
    pruning(&open().await).await;
    outbox::run(&open).await;
    lanes::run(&open).await;
    pauses::run(&open).await;
}

pub fn sha(c: char) -> Sha {
    Sha::parse(&c.to_string().repeat(40)).unwrap()
}

pub fn job(rule: usize, queue: Queue, after: char) -> NewJob {
    NewJob {
        rule,
        rule_key: rule.to_string(),
        per_rule: false,
        lock: None,
        reason: None,
        queue,
        event: PushEvent {
            forge: Forge::Generic,
            repository: "a/b".into(),
            git_ref: RefName::parse("refs/heads/main").unwrap(),
            before: sha('1'),
            after: sha(after),
            forced: false,
            paths: ChangedPaths::Unknown,
            pusher: Some("me".into()),
            delivery: None,
        },
        origin: Origin::Push,
        notify: Vec::new(),
    }
}

fn push(before: char, after: char) -> NewJob {
    let mut j = job(0, Queue::Supersede, after);
    j.event.before = sha(before);
    j
}

pub fn delivery(hook: &str) -> Delivery {
    Delivery {
        hook: hook.to_owned(),
        delivery: None,
        forge: Forge::Generic,
        event: Some("push".into()),
        git_ref: Some(RefName::parse("refs/heads/main").unwrap()),
        after: None,
        note: None,
    }
}

pub async fn queue(s: &Store, hook: &str, jobs: Vec<NewJob>) -> Vec<JobId> {
    Entered::ids(&entered(s, hook, jobs).await)
}

/// Accepts a delivery of `jobs` for `hook`: the jobs and the state each was left in.
pub async fn entered(s: &Store, hook: &str, jobs: Vec<NewJob>) -> Vec<Entered> {
    match s
        .accept(delivery(hook), Vec::new(), jobs, ROOM)
        .await
        .unwrap()
    {
        Acceptance::Queued(entered) => entered,
        other @ (Acceptance::Duplicate(_) | Acceptance::Full { .. }) => {
            panic!("not queued: {other:?}")
        }
    }
}

pub async fn state(s: &Store, id: JobId) -> JobState {
    s.get(id).await.unwrap().unwrap().state
}

pub fn hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

pub fn owner(name: &str) -> InstanceId {
    InstanceId::from_recorded(name)
}

async fn accept_and_replay(s: &Store) {
    let keys = vec!["id:1".to_owned(), "body:x".to_owned()];
    let mut d = delivery("h");
    d.delivery = Some(DeliveryId::parse("d-1").unwrap());
    let first = match s
        .accept(
            d.clone(),
            keys.clone(),
            vec![job(0, Queue::Fifo, '2')],
            ROOM,
        )
        .await
        .unwrap()
    {
        Acceptance::Queued(entered) => Entered::ids(&entered),
        other @ (Acceptance::Duplicate(_) | Acceptance::Full { .. }) => panic!("{other:?}"),
    };
    assert_eq!(first.len(), 1);
    let got = s.get(first[0]).await.unwrap().unwrap();
    assert_eq!(
        (got.hook.as_str(), got.state, got.sha.clone(), got.attempt),
        ("h", JobState::Queued, sha('2'), 1)
    );
    assert_eq!(got.delivery.as_ref().map(DeliveryId::as_str), Some("d-1"));
    // Same body under a fresh delivery id: still a replay, and it says of which job.
    let again = s
        .accept(
            delivery("h"),
            vec!["id:2".into(), "body:x".into()],
            vec![job(0, Queue::Fifo, '2')],
            ROOM,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Acceptance::Duplicate(Prior {
            same_id: false,
            delivery: Some("d-1".into()),
            job: Some(first[0]),
        })
    );
    assert!(matches!(
        s.accept(d, keys.clone(), vec![job(0, Queue::Fifo, '2')], ROOM)
            .await
            .unwrap(),
        Acceptance::Duplicate(Prior { same_id: true, .. })
    ));
    // Another hook has its own record.
    assert!(matches!(
        s.accept(delivery("g"), keys, vec![job(0, Queue::Fifo, '2')], ROOM)
            .await
            .unwrap(),
        Acceptance::Queued(_)
    ));
    let queued = s
        .list(JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
}

async fn concurrent_duplicates_are_accepted_once(s: &Store) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.accept(
                    delivery("h"),
                    vec!["id:same".into()],
                    vec![job(0, Queue::Fifo, '2')],
                    ROOM,
                )
                .await
            })
        })
        .collect();
    let mut queued = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), Acceptance::Queued(_)) {
            queued += 1;
        }
    }
    assert_eq!(queued, 1);
}

async fn supersede_keeps_the_newest_pending_job(s: &Store) {
    let a = queue(s, "h", vec![job(0, Queue::Supersede, 'a')]).await[0];
    let other_rule = queue(s, "h", vec![job(1, Queue::Supersede, 'c')]).await[0];
    let b = queue(s, "h", vec![job(0, Queue::Supersede, 'b')]).await[0];
    let got = s.get(a).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Superseded);
    assert_eq!(got.detail, Some(format!("superseded by job {b}")));
    assert!(got.finished_at.is_some());
    assert_eq!(state(s, b).await, JobState::Queued);
    assert_eq!(state(s, other_rule).await, JobState::Queued);
}

async fn out_of_order_pushes_and_rollbacks(s: &Store) {
    // Pushes a→b and b→c, delivered c first: b is older and must not win.
    let c = entered(s, "h", vec![push('b', 'c')]).await[0];
    assert_eq!(
        c.state,
        JobState::Queued,
        "the acceptance says how it left the job"
    );
    let c = c.id;
    let b = entered(s, "h", vec![push('a', 'b')]).await[0];
    assert_eq!(b.state, JobState::Superseded);
    let b = b.id;
    assert_eq!(state(s, c).await, JobState::Queued);
    let late = s.get(b).await.unwrap().unwrap();
    assert_eq!(late.state, JobState::Superseded);
    assert_eq!(
        late.detail,
        Some(format!(
            "superseded by job {c}, a later push that arrived first"
        ))
    );
    // A revert (c→b after b→c) is newer, not older: it supersedes as usual.
    let revert = queue(s, "h", vec![push('c', 'b')]).await[0];
    assert_eq!(state(s, revert).await, JobState::Queued);
    assert_eq!(state(s, c).await, JobState::Superseded);

    // The rollback bug: on another hook, after a→b and b→c, a force-push back to a
    // (c→a) was marked "a later push that arrived first" (a→b was built on a) and never
    // ran, and so was a manual deploy of a. Both run.
    queue(s, "r", vec![push('a', 'b')]).await;
    queue(s, "r", vec![push('b', 'c')]).await;
    let back = queue(s, "r", vec![push('c', 'a')]).await[0];
    let job = s.get(back).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued, "{:?}", job.detail);
    let mut by_hand = push('0', 'a');
    by_hand.origin = Origin::Manual { force: false };
    let manual = queue(s, "r", vec![by_hand]).await[0];
    let job = s.get(manual).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued, "{:?}", job.detail);
    assert_eq!(job.origin, Origin::Manual { force: false });
}

async fn fifo_runs_every_push_in_order(s: &Store) {
    let ids: Vec<JobId> = {
        let mut ids = Vec::new();
        for c in ['a', 'b', 'c'] {
            ids.extend(queue(s, "h", vec![job(0, Queue::Fifo, c)]).await);
        }
        ids
    };
    for (id, c) in ids.iter().zip(['a', 'b', 'c']) {
        let j = s.claim(owner("w"), hour()).await.unwrap().unwrap();
        assert_eq!((j.id, j.sha.clone()), (*id, sha(c)));
        assert_eq!(
            s.finish(owner("w"), j.id, JobState::Succeeded, "ok".into(), None)
                .await
                .unwrap(),
            Finished::Recorded
        );
    }
    assert_eq!(s.claim(owner("w"), hour()).await.unwrap(), None);
}

async fn claim_runs_one_job_per_hook(s: &Store) {
    for (hook, c) in [("h", 'a'), ("h", 'b'), ("g", 'c')] {
        queue(s, hook, vec![job(0, Queue::Fifo, c)]).await;
    }
    let first = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!((first.hook.as_str(), first.state), ("h", JobState::Running));
    assert_eq!(first.owner, Some(owner("w")));
    assert!(first.started_at.is_some());
    // h is busy (whoever runs it): the next runnable job is g's, then nothing.
    assert_eq!(
        s.claim(owner("v"), hour()).await.unwrap().unwrap().hook,
        "g"
    );
    assert_eq!(s.claim(owner("v"), hour()).await.unwrap(), None);
    s.finish(
        owner("w"),
        first.id,
        JobState::Succeeded,
        "exit 0".into(),
        None,
    )
    .await
    .unwrap();
    let second = s.claim(owner("v"), hour()).await.unwrap().unwrap();
    assert_eq!((second.hook.as_str(), second.sha.clone()), ("h", sha('b')));
}

/// `who` does not own job `id`: its heartbeat calls the job lost, its finish is refused.
async fn not_ours(s: &Store, who: &str, id: JobId) {
    let beat = s.heartbeat(owner(who), vec![id], hour()).await.unwrap();
    assert_eq!(beat.lost, vec![id], "{who}");
    assert_eq!(
        s.finish(owner(who), id, JobState::Succeeded, "late".into(), None)
            .await
            .unwrap(),
        Finished::NotOwner,
        "{who}"
    );
}

async fn leases_fence_and_expire(s: &Store) {
    queue(s, "h", vec![job(0, Queue::Fifo, 'a')]).await;
    queue(s, "g", vec![job(0, Queue::Fifo, 'b')]).await;
    let soon = SystemTime::now() + Duration::from_secs(2);
    let live = s.claim(owner("live"), hour()).await.unwrap().unwrap();
    let dying = s.claim(owner("dying"), soon).await.unwrap().unwrap();
    // Only the owner renews, finishes and hears about its jobs.
    not_ours(s, "other", live.id).await;
    assert_eq!(state(s, live.id).await, JobState::Running);
    // Recovery a minute from now: the dying owner's lease has run out, the live one's
    // (an hour) has not.
    let later = SystemTime::now() + Duration::from_secs(60);
    let recovered = s.recover(later).await.unwrap();
    assert_eq!(
        recovered.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![dying.id]
    );
    assert_eq!(recovered[0].state, JobState::Interrupted);
    assert_eq!(state(s, live.id).await, JobState::Running);
    let gone = s.get(dying.id).await.unwrap().unwrap();
    assert_eq!(gone.state, JobState::Interrupted);
    assert!(gone.detail.unwrap().contains("dying"));
    // The dying owner comes back: its job is lost to it, and its late finish is refused.
    not_ours(s, "dying", dying.id).await;
    assert_eq!(state(s, dying.id).await, JobState::Interrupted);
    // A renewed lease outlives its first term.
    let beat = s
        .heartbeat(
            owner("live"),
            vec![live.id],
            later + Duration::from_secs(3600 * 2),
        )
        .await
        .unwrap();
    assert_eq!(beat, Heartbeat::default());
    assert!(
        s.recover(SystemTime::now() + Duration::from_secs(3600 + 60))
            .await
            .unwrap()
            .is_empty()
    );
    // An interrupted job queued again is a new attempt of the same push.
    let retry = s.requeue(dying.id).await.unwrap();
    let r = s.get(retry).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.attempt, r.sha.clone(), r.hook.as_str()),
        (JobState::Queued, 2, dying.sha.clone(), dying.hook.as_str())
    );
}

async fn cancel_queued_and_running(s: &Store) {
    let ids = queue(s, "h", vec![job(0, Queue::Fifo, 'a')]).await;
    let queued = queue(s, "h", vec![job(0, Queue::Fifo, 'b')]).await[0];
    let running = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(running.id, ids[0]);
    assert_eq!(s.cancel(running.id).await.unwrap(), CancelResult::Requested);
    assert!(s.get(running.id).await.unwrap().unwrap().cancel_requested);
    // The owner hears of it at its next heartbeat (from any process).
    let beat = s
        .heartbeat(owner("w"), vec![running.id], hour())
        .await
        .unwrap();
    assert_eq!(beat.cancel, vec![running.id]);
    assert_eq!(s.cancel(queued).await.unwrap(), CancelResult::Cancelled);
    assert_eq!(
        s.cancel(queued).await.unwrap(),
        CancelResult::AlreadyFinished(JobState::Cancelled)
    );
    assert_eq!(
        s.cancel(JobId(999_999)).await.unwrap(),
        CancelResult::NotFound
    );
    s.finish(
        owner("w"),
        running.id,
        JobState::Cancelled,
        "cancelled while command 1 ran".into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(state(s, running.id).await, JobState::Cancelled);
    // A job asked to cancel whose owner died before it could stop it ends cancelled, not
    // interrupted, when its lease runs out.
    let orphan = queue(s, "g", vec![job(0, Queue::Fifo, 'c')]).await[0];
    let soon = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(
        s.claim(owner("gone"), soon).await.unwrap().unwrap().id,
        orphan
    );
    assert_eq!(s.cancel(orphan).await.unwrap(), CancelResult::Requested);
    let recovered = s
        .recover(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        recovered
            .iter()
            .map(|j| (j.id, j.state))
            .collect::<Vec<_>>(),
        [(orphan, JobState::Cancelled)]
    );
    assert_eq!(
        s.job_events(orphan).await.unwrap().last().unwrap().kind,
        EventKind::Cancelled
    );
}

async fn events_in_commit_order(s: &Store) {
    let changed = s.changed();
    let start = s.events(Cursor::default(), 1000).await.unwrap();
    let after = start.last().map_or(Cursor::default(), |e| e.cursor);
    let a = queue(s, "h", vec![job(0, Queue::Supersede, 'a')]).await[0];
    assert!(changed.has_changed().unwrap(), "a commit is announced");
    let b = queue(s, "h", vec![job(0, Queue::Supersede, 'b')]).await[0];
    let run = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(run.id, b);
    s.finish(
        owner("w"),
        b,
        JobState::Failed,
        "command 1 failed: exit status: 1".into(),
        None,
    )
    .await
    .unwrap();
    let events = s.events(after, 1000).await.unwrap();
    let seen: Vec<(JobId, EventKind)> = events.iter().map(|e| (e.job, e.kind)).collect();
    assert_eq!(
        seen,
        vec![
            (a, EventKind::Queued),
            (b, EventKind::Queued),
            (a, EventKind::Superseded),
            (b, EventKind::Started),
            (b, EventKind::Failed),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor));
    assert_eq!(events[2].reason, format!("superseded by job {b}"));
    assert_eq!(events[4].reason, "command 1 failed: exit status: 1");
    assert!(events[3].reason.contains('w'), "{}", events[3].reason);
    assert!(events.iter().all(|e| e.hook == "h"));
    let now = SystemTime::now();
    assert!(
        events
            .iter()
            .all(|e| e.at <= now && e.at > now - Duration::from_secs(60))
    );
    // Paging: after the third, then a limit.
    let rest = s.events(events[2].cursor, 1).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0], events[3]);
    // One job's history.
    let of_b: Vec<EventKind> = s
        .job_events(b)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        of_b,
        vec![EventKind::Queued, EventKind::Started, EventKind::Failed]
    );
    // Requeue: the old job says where it went, the new one where it came from.
    queue(s, "i", vec![job(0, Queue::Fifo, 'c')]).await;
    let dead = s
        .claim(owner("gone"), SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    s.recover(SystemTime::now() + Duration::from_secs(1))
        .await
        .unwrap();
    let retry = s.requeue(dead.id).await.unwrap();
    let tail: Vec<(JobId, EventKind)> = s
        .events(events[4].cursor, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.job, e.kind))
        .collect();
    assert_eq!(
        tail,
        vec![
            (dead.id, EventKind::Queued),
            (dead.id, EventKind::Started),
            (dead.id, EventKind::Interrupted),
            (dead.id, EventKind::Requeued),
            (retry, EventKind::Queued),
        ]
    );
}

async fn delivery_records(s: &Store) {
    let mut d = delivery("h");
    d.delivery = Some(DeliveryId::parse("abc").unwrap());
    d.after = Some(sha('a'));
    let ids = match s
        .accept(
            d.clone(),
            vec!["id:abc".into()],
            vec![job(0, Queue::Fifo, 'a')],
            ROOM,
        )
        .await
        .unwrap()
    {
        Acceptance::Queued(entered) => Entered::ids(&entered),
        other @ (Acceptance::Duplicate(_) | Acceptance::Full { .. }) => panic!("{other:?}"),
    };
    s.accept(
        d.clone(),
        vec!["id:abc".into()],
        vec![job(0, Queue::Fifo, 'a')],
        ROOM,
    )
    .await
    .unwrap();
    let mut ping = delivery("h");
    ping.event = Some("ping".into());
    s.record(ping, NotQueued::Pong, "ping answered".into())
        .await
        .unwrap();
    s.record(
        delivery("g"),
        NotQueued::Ignored,
        "no rule matches refs/heads/dev".into(),
    )
    .await
    .unwrap();
    let mut bad = delivery("h");
    bad.event = None;
    s.record(bad, NotQueued::BadPayload, "invalid JSON at line 1".into())
        .await
        .unwrap();
    let h = s.deliveries(Some("h".into()), 100).await.unwrap();
    let outcomes: Vec<&str> = h.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["bad_payload", "pong", "duplicate", "queued"]);
    assert_eq!(h[3].outcome, DeliveryOutcome::Queued(ids.clone()));
    assert_eq!(h[3].delivery, d);
    assert_eq!(h[2].outcome, DeliveryOutcome::Duplicate(Some(ids[0])));
    assert!(h[2].reason.contains("already accepted"), "{}", h[2].reason);
    assert_eq!(h[0].reason, "invalid JSON at line 1");
    assert!(h.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(s.deliveries(None, 2).await.unwrap().len(), 2);
    let g = s.deliveries(Some("g".into()), 100).await.unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].reason, "no rule matches refs/heads/dev");
}

async fn pruning(s: &Store) {
    let mut all = Vec::new();
    for c in ['a', 'b', 'c', 'd'] {
        all.extend(queue(s, "h", vec![job(0, Queue::Fifo, c)]).await);
    }
    for _ in 0..2 {
        let j = s.claim(owner("w"), hour()).await.unwrap().unwrap();
        s.finish(owner("w"), j.id, JobState::Failed, "exit 1".into(), None)
            .await
            .unwrap();
    }
    let running = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    // Keep one finished job per hook: the older of the two finished ones goes, with its
    // events; running and queued jobs always stay.
    let keep = Retention {
        keep_jobs: 1,
        keep_for: Duration::from_secs(3600),
        at_most: 100,
    };
    assert_eq!(s.prune(keep).await.unwrap(), vec![all[0]]);
    assert!(s.get(all[0]).await.unwrap().is_none());
    assert!(s.job_events(all[0]).await.unwrap().is_empty());
    assert_eq!(s.list(JobFilter::default()).await.unwrap().len(), 3);
    assert_eq!(state(s, running.id).await, JobState::Running);
    // Delivery records are kept the same way: one per hook here.
    assert_eq!(s.deliveries(Some("h".into()), 100).await.unwrap().len(), 1);
    let counts = s.count_by_state().await.unwrap();
    assert!(counts.contains(&(JobState::Running, 1)), "{counts:?}");
    assert!(counts.contains(&(JobState::Queued, 1)), "{counts:?}");
    assert!(counts.contains(&(JobState::Failed, 1)), "{counts:?}");
}

async fn delivery_jobs_and_secrets(s: &Store) {
    let mut d = delivery("h");
    d.delivery = Some(DeliveryId::parse("one").unwrap());
    let ids = match s
        .accept(
            d.clone(),
            vec!["id:one".into()],
            vec![job(0, Queue::Fifo, 'a'), job(1, Queue::Fifo, 'a')],
            ROOM,
        )
        .await
        .unwrap()
    {
        Acceptance::Queued(entered) => Entered::ids(&entered),
        other @ (Acceptance::Duplicate(_) | Acceptance::Full { .. }) => panic!("{other:?}"),
    };
    // A retry of it is a duplicate; the delivery still names its first jobs.
    s.accept(
        d,
        vec!["id:one".into()],
        vec![job(0, Queue::Fifo, 'a')],
        ROOM,
    )
    .await
    .unwrap();
    assert_eq!(
        s.delivery_jobs("h".into(), "one".into()).await.unwrap(),
        Some(ids)
    );
    assert_eq!(
        s.delivery_jobs("g".into(), "one".into()).await.unwrap(),
        None
    );
    assert_eq!(
        s.delivery_jobs("h".into(), "two".into()).await.unwrap(),
        None
    );
    let key = s.secret("k".into()).await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(s.secret("k".into()).await.unwrap(), key, "kept");
    assert_ne!(s.secret("other".into()).await.unwrap(), key);
}

async fn queue_limits(s: &Store) {
    let full = |s: &Store, hook: &str, key: &str| {
        let (s, hook, key) = (s.clone(), hook.to_owned(), key.to_owned());
        async move {
            s.accept(
                delivery(&hook),
                vec![key],
                vec![job(0, Queue::Fifo, 'a')],
                2,
            )
            .await
            .unwrap()
        }
    };
    assert!(matches!(full(s, "h", "id:1").await, Acceptance::Queued(_)));
    assert!(matches!(full(s, "h", "id:2").await, Acceptance::Queued(_)));
    // Two wait: the third is refused whole, its replay key not kept (it may come again),
    // and the refusal is recorded with the reason.
    assert_eq!(full(s, "h", "id:3").await, Acceptance::Full { waiting: 2 });
    let records = s.deliveries(Some("h".into()), 1).await.unwrap();
    assert_eq!(
        records[0].outcome,
        DeliveryOutcome::Not(NotQueued::QueueFull)
    );
    assert!(
        records[0].reason.contains("max_queued"),
        "{}",
        records[0].reason
    );
    // Another hook has its own room; a running job does not count as waiting.
    assert!(matches!(full(s, "g", "id:3").await, Acceptance::Queued(_)));
    let running = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(running.hook, "h");
    assert!(matches!(full(s, "h", "id:3").await, Acceptance::Queued(_)));
    assert_eq!(
        s.list(JobFilter {
            hook: Some("h".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .len(),
        3
    );
    // Claiming stays right with several hooks waiting: the oldest job of a hook with
    // nothing running.
    let next = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(next.hook, "g", "h is busy");
    assert_eq!(s.claim(owner("w"), hour()).await.unwrap(), None);
}
