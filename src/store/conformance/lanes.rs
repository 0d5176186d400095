//! Lanes: what runs one at a time (a hook, or with `per_rule` a hook's rule) and what
//! supersedes what (the hook and the rule's key, whatever the rule's index now).

use super::{hour, job, owner, queue, state};
use crate::store::Store;
use crate::store::types::*;

fn ruled(key: &str, index: usize, per_rule: bool, queue: Queue, after: char) -> NewJob {
    let mut j = job(index, queue, after);
    key.clone_into(&mut j.rule_key);
    j.per_rule = per_rule;
    j
}

pub async fn run<F: Future<Output = Store>>(open: &impl Fn() -> F) {
    rules_of_one_hook_run_at_once_per_rule(&open().await).await;
    supersede_follows_the_rule_key(&open().await).await;
    a_lock_is_held_by_one_job_of_any_hook(&open().await).await;
    hooks_left_to_other_replicas_are_skipped(&open().await).await;
}

/// `run_on`: a replica not named leaves the hook's jobs to others, but claims the rest.
async fn hooks_left_to_other_replicas_are_skipped(s: &Store) {
    let local = queue(s, "local", vec![job(0, Queue::Fifo, 'a')]).await[0];
    let mono = queue(s, "mono", vec![ruled("api", 0, true, Queue::Fifo, 'a')]).await[0];
    let anywhere = queue(s, "anywhere", vec![job(0, Queue::Fifo, 'b')]).await[0];
    let skip = vec!["local".to_owned(), "mono".to_owned()];
    let got = s
        .claim_skipping(owner("b"), hour(), skip.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, anywhere);
    assert!(
        s.claim_skipping(owner("b"), hour(), skip)
            .await
            .unwrap()
            .is_none(),
        "only the skipped hooks' jobs are left"
    );
    let a = s.claim(owner("a"), hour()).await.unwrap().unwrap();
    let b = s.claim(owner("a"), hour()).await.unwrap().unwrap();
    assert_eq!((a.id, b.id), (local, mono));
}

async fn rules_of_one_hook_run_at_once_per_rule(s: &Store) {
    let api = queue(s, "mono", vec![ruled("api", 0, true, Queue::Fifo, 'a')]).await[0];
    let web = queue(s, "mono", vec![ruled("web", 1, true, Queue::Fifo, 'a')]).await[0];
    let api2 = queue(s, "mono", vec![ruled("api", 0, true, Queue::Fifo, 'b')]).await[0];
    let first = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    let second = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!((first.id, second.id), (api, web), "two rules, two lanes");
    assert_eq!(second.rule_key, "web");
    assert!(
        s.claim(owner("w"), hour()).await.unwrap().is_none(),
        "the api rule's second job waits for its first"
    );
    s.finish(owner("w"), api, JobState::Succeeded, "ok".into(), None)
        .await
        .unwrap();
    let third = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(third.id, api2);
    // Without per_rule, the hook is the lane: one job at a time whatever its rule.
    queue(s, "one", vec![ruled("a", 0, false, Queue::Fifo, 'a')]).await;
    queue(s, "one", vec![ruled("b", 1, false, Queue::Fifo, 'a')]).await;
    assert_eq!(
        s.claim(owner("w"), hour()).await.unwrap().unwrap().rule_key,
        "a"
    );
    assert!(s.claim(owner("w"), hour()).await.unwrap().is_none());
}

async fn supersede_follows_the_rule_key(s: &Store) {
    // Rule `web` was rule 1, and after a reload that reordered the rules it is rule 0: a
    // newer push for it still replaces the older one, and never one of `api`'s.
    let old_web = queue(s, "h", vec![ruled("web", 1, false, Queue::Supersede, 'a')]).await[0];
    let api = queue(s, "h", vec![ruled("api", 0, false, Queue::Supersede, 'a')]).await[0];
    let new_web = queue(s, "h", vec![ruled("web", 0, false, Queue::Supersede, 'b')]).await[0];
    assert_eq!(state(s, old_web).await, JobState::Superseded);
    assert_eq!(state(s, api).await, JobState::Queued);
    let j = s.get(new_web).await.unwrap().unwrap();
    assert_eq!((j.rule, j.rule_key.as_str()), (0, "web"));
}

async fn a_lock_is_held_by_one_job_of_any_hook(s: &Store) {
    let locked = |queue: Queue, after: char| {
        let mut j = ruled("0", 0, false, queue, after);
        j.lock = Some("prod-web".into());
        j
    };
    let app = queue(s, "app", vec![locked(Queue::Fifo, 'a')]).await[0];
    let config = queue(s, "config", vec![locked(Queue::Supersede, 'a')]).await[0];
    let free = queue(s, "other", vec![job(0, Queue::Fifo, 'a')]).await[0];
    let first = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!((first.id, first.lock.as_deref()), (app, Some("prod-web")));
    assert_eq!(s.lock_holder("prod-web".into()).await.unwrap(), Some(app));
    // The config repo's job waits for the lock; a hook without it runs meanwhile.
    let second = s.claim(owner("w"), hour()).await.unwrap().unwrap();
    assert_eq!(second.id, free);
    assert!(s.claim(owner("w"), hour()).await.unwrap().is_none());
    // Supersede still applies while it waits.
    let newer = queue(s, "config", vec![locked(Queue::Supersede, 'b')]).await[0];
    assert_eq!(state(s, config).await, JobState::Superseded);
    s.finish(owner("w"), app, JobState::Succeeded, "ok".into(), None)
        .await
        .unwrap();
    assert_eq!(s.lock_holder("prod-web".into()).await.unwrap(), None);
    assert_eq!(
        s.claim(owner("w"), hour()).await.unwrap().unwrap().id,
        newer
    );
}
