//! Pauses: a paused hook's queued and new jobs are held (never claimed), supersede still
//! applies among them, a pause survives reopening the store, and resume queues them again.

use super::{entered, hour, job, owner, queue, state};
use crate::store::Store;
use crate::store::types::*;

pub async fn run<F: Future<Output = Store>>(open: &impl Fn() -> F) {
    held_jobs_wait_for_resume(&open().await).await;
}

async fn held_jobs_wait_for_resume(s: &Store) {
    let waiting = queue(s, "h", vec![job(0, Queue::Fifo, 'a')]).await[0];
    assert_eq!(
        s.pause("h".into(), "incident 42".into()).await.unwrap(),
        vec![waiting]
    );
    assert_eq!(state(s, waiting).await, JobState::Held);
    let pauses = s.pauses().await.unwrap();
    assert_eq!(
        (pauses.len(), pauses[0].reason.as_str()),
        (1, "incident 42")
    );
    // A job queued while paused is held at once; supersede still applies among held.
    // The acceptance says so (the answer to the delivery, and no wake-up of the worker).
    let old = queue(s, "h", vec![job(1, Queue::Supersede, 'b')]).await[0];
    let new = entered(s, "h", vec![job(1, Queue::Supersede, 'c')]).await[0];
    assert_eq!(new.state, JobState::Held);
    let new = new.id;
    assert_eq!(state(s, old).await, JobState::Superseded);
    assert_eq!(state(s, new).await, JobState::Held);
    let other = queue(s, "other", vec![job(0, Queue::Fifo, 'a')]).await[0];
    assert_eq!(
        s.claim(owner("w"), hour()).await.unwrap().unwrap().id,
        other
    );
    assert!(
        s.claim(owner("w"), hour()).await.unwrap().is_none(),
        "held jobs never run"
    );
    let kinds: Vec<EventKind> = s
        .job_events(new)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Queued, EventKind::Held]);
    assert_eq!(s.resume("other".into()).await.unwrap(), None, "not paused");
    assert_eq!(
        s.resume("h".into()).await.unwrap(),
        Some(vec![waiting, new])
    );
    assert!(s.pauses().await.unwrap().is_empty());
    assert_eq!(
        s.claim(owner("w"), hour()).await.unwrap().unwrap().id,
        waiting
    );
    assert_eq!(
        s.job_events(new).await.unwrap().last().unwrap().kind,
        EventKind::Released
    );
    // A held job can be cancelled like a queued one.
    s.pause("h".into(), String::new()).await.unwrap();
    assert_eq!(s.cancel(new).await.unwrap(), CancelResult::Cancelled);
}
