//! The outbox part of the conformance suite: rows written with the events that cause
//! them, handed out one per lane in order, latest-only targets coalesced, attempts
//! recorded, memos kept, retries of a job heard about by the same targets.

use std::time::{Duration, SystemTime};

use super::{hour, job, owner, queue};
use crate::store::Store;
use crate::store::types::*;

fn status() -> Subscription {
    Subscription {
        target: "status".into(),
        on: vec![EventKind::Started, EventKind::Succeeded, EventKind::Failed],
        latest_only: true,
    }
}

fn chat() -> Subscription {
    Subscription {
        target: "notify:chat".into(),
        on: vec![
            EventKind::Succeeded,
            EventKind::Failed,
            EventKind::Interrupted,
        ],
        latest_only: false,
    }
}

fn told(subs: Vec<Subscription>, after: char) -> NewJob {
    let mut j = job(0, Queue::Fifo, after);
    j.notify = subs;
    j
}

async fn due(s: &Store, at: SystemTime) -> Vec<(JobId, String, EventKind)> {
    s.outbox_due(at, Vec::new(), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.job, o.target, o.event.kind))
        .collect()
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1)
}

async fn sent(s: &Store, o: &Outgoing) {
    s.outbox_attempt(o.id, Attempt::Sent { memo: None })
        .await
        .unwrap();
}

/// Every outbox check, each on a store of its own.
pub async fn run<F: Future<Output = Store>>(open: &impl Fn() -> F) {
    rows_follow_events_and_coalesce(&open().await).await;
    lanes_keep_order_and_retries_wait(&open().await).await;
    memos_requeues_and_pruning(&open().await).await;
}

async fn rows_follow_events_and_coalesce(s: &Store) {
    let id = queue(s, "h", vec![told(vec![status(), chat()], 'a')]).await[0];
    assert!(due(s, later()).await.is_empty(), "nobody hears `queued`");
    s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(
        due(s, later()).await,
        vec![(id, "status".into(), EventKind::Started)]
    );
    s.finish(
        owner("w"),
        id,
        JobState::Succeeded,
        "ok".into(),
        Some("v2".into()),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(id).await.unwrap().unwrap().summary.as_deref(),
        Some("v2")
    );
    // The unsent `started` status is replaced by `succeeded`; the chat hears once.
    assert_eq!(
        due(s, later()).await,
        vec![
            (id, "notify:chat".into(), EventKind::Succeeded),
            (id, "status".into(), EventKind::Succeeded),
        ]
    );
    let rows = s.notifications(id).await.unwrap();
    let seen: Vec<(&str, EventKind, OutboxState)> = rows
        .iter()
        .map(|n| (n.target.as_str(), n.kind, n.state))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("status", EventKind::Started, OutboxState::Replaced),
            ("notify:chat", EventKind::Succeeded, OutboxState::Pending),
            ("status", EventKind::Succeeded, OutboxState::Pending),
        ]
    );
    let depth = s.outbox_depth().await.unwrap();
    assert_eq!(depth.pending, 2);
    assert!(depth.oldest.is_some_and(|t| t <= SystemTime::now()));
    // Not due yet, or its lane busy: not handed out.
    assert!(
        due(s, SystemTime::now() - Duration::from_secs(60))
            .await
            .is_empty()
    );
    let free = s
        .outbox_due(later(), vec![format!("status\u{1f}a/b")], 100)
        .await
        .unwrap();
    assert_eq!(free.len(), 1);
    assert_eq!(free[0].target, "notify:chat");
    assert_eq!(free[0].lane, "notify:chat\u{1f}a/b");
    for o in s.outbox_due(later(), Vec::new(), 100).await.unwrap() {
        sent(s, &o).await;
    }
    assert!(due(s, hour()).await.is_empty());
    assert_eq!(s.outbox_depth().await.unwrap(), OutboxDepth::default());
    let states: Vec<OutboxState> = s
        .notifications(id)
        .await
        .unwrap()
        .iter()
        .map(|n| n.state)
        .collect();
    assert_eq!(
        states,
        vec![OutboxState::Replaced, OutboxState::Sent, OutboxState::Sent]
    );
}

async fn lanes_keep_order_and_retries_wait(s: &Store) {
    let first = queue(s, "h", vec![told(vec![chat()], 'a')]).await[0];
    let second = queue(s, "h", vec![told(vec![chat()], 'b')]).await[0];
    for (id, state) in [(first, JobState::Failed), (second, JobState::Succeeded)] {
        let j = s.claim(owner("w"), hour()).await.unwrap().unwrap();
        assert_eq!(j.id, id);
        s.finish(owner("w"), id, state, "done".into(), None)
            .await
            .unwrap();
    }
    // One lane (the chat, repository a/b): only its oldest row is handed out.
    let heads = s.outbox_due(later(), Vec::new(), 100).await.unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!((heads[0].job, heads[0].attempts), (first, 0));
    // A retry waits for its time, and holds the lane meanwhile.
    let at = SystemTime::now() + Duration::from_secs(600);
    s.outbox_attempt(
        heads[0].id,
        Attempt::Retry {
            at,
            error: "503 from the chat".into(),
            memo: None,
        },
    )
    .await
    .unwrap();
    assert!(due(s, later()).await.is_empty());
    let again = s
        .outbox_due(at + Duration::from_secs(1), Vec::new(), 100)
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].attempts), (heads[0].id, 1));
    let row = &s.notifications(first).await.unwrap()[0];
    assert_eq!(row.last_error.as_deref(), Some("503 from the chat"));
    assert_eq!(row.state, OutboxState::Pending);
    // Given up on: the lane moves on to the next row.
    s.outbox_attempt(
        again[0].id,
        Attempt::Failed {
            error: "400 bad request".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        due(s, later()).await,
        vec![(second, "notify:chat".into(), EventKind::Succeeded)]
    );
    let row = &s.notifications(first).await.unwrap()[0];
    assert_eq!((row.state, row.attempts), (OutboxState::Failed, 2));
    assert!(row.done_at.is_some());
}

async fn memos_requeues_and_pruning(s: &Store) {
    let id = queue(s, "h", vec![told(vec![status(), chat()], 'a')]).await[0];
    s.claim(owner("w"), SystemTime::now() + Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    let started = s.outbox_due(later(), Vec::new(), 100).await.unwrap();
    assert_eq!(started[0].memo, None);
    s.outbox_attempt(
        started[0].id,
        Attempt::Sent {
            memo: Some("deployment 42".into()),
        },
    )
    .await
    .unwrap();
    // The lease lapses: `interrupted` reaches the chat (the status does not hear it).
    s.recover(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        due(s, later()).await,
        vec![(id, "notify:chat".into(), EventKind::Interrupted)]
    );
    // Its retry is heard about by the same targets, with nothing kept from the first.
    let retry = s.requeue(id).await.unwrap();
    s.claim(owner("w"), hour()).await.unwrap().unwrap();
    let rows = s.outbox_due(later(), Vec::new(), 100).await.unwrap();
    let seen: Vec<(JobId, &str, Option<&str>)> = rows
        .iter()
        .map(|o| (o.job, o.target.as_str(), o.memo.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![(id, "notify:chat", None), (retry, "status", None)]
    );
    s.finish(owner("w"), retry, JobState::Failed, "exit 1".into(), None)
        .await
        .unwrap();
    // A finished job with rows still pending is not pruned; once they are sent, it is.
    let keep = Retention {
        keep_jobs: 1,
        keep_for: Duration::from_secs(3600),
        at_most: 100,
    };
    assert!(s.prune(keep).await.unwrap().is_empty());
    loop {
        let rows = s.outbox_due(later(), Vec::new(), 100).await.unwrap();
        if rows.is_empty() {
            break;
        }
        for o in rows {
            sent(s, &o).await;
        }
    }
    assert_eq!(s.prune(keep).await.unwrap(), vec![id]);
    assert!(s.notifications(id).await.unwrap().is_empty());
    assert_eq!(s.notifications(retry).await.unwrap().len(), 3);
}
