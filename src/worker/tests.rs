//! The worker's lifecycle with a fake checkout and a fake runner and a real SQLite store
//! in a temp dir. Time is real but short (a one-second lease): tokio's paused clock
//! would race the store's writer thread and the checkout thread, which it cannot see
//! (it jumps ahead while the runtime waits on them), so the tests poll with deadlines.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::run::PRUNE_SLICE;
use super::*;
use crate::config::{LiveConfig, load_str};
use crate::event::{ChangedPaths, Forge, PushEvent, RefName, Sha};
use crate::git::{Abort, CheckoutInfo, GitError, OnRef, Remote};
use crate::joblog::JobLogs;
use crate::metrics::Metrics;
use crate::runner::{Outcome, Ran, RunSpec};
use crate::store::{
    Acceptance, CancelResult, Delivery, InstanceId, JobId, JobState, NewJob, Origin, Queue, Store,
};

const LEASE: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_millis(100);

/// Checks out nothing, at once.
struct NoCheckout;

impl Checkout for NoCheckout {
    fn checkout(
        &self,
        _: &Remote,
        _: &str,
        _: &str,
        _: OnRef,
        _: &Abort,
        worktree: &Path,
    ) -> Result<CheckoutInfo, GitError> {
        std::fs::create_dir_all(worktree).unwrap();
        Ok(CheckoutInfo {
            fetch_attempts: 0,
            fetched: false,
            duration: Duration::ZERO,
        })
    }
}

/// What the fake commands do.
#[derive(Clone, Copy)]
enum Commands {
    Succeed,
    /// Run until cancelled.
    Hang,
}

struct FakeRun {
    does: Commands,
    started: Arc<AtomicUsize>,
}

impl Run for FakeRun {
    fn run(&self, _: RunSpec, mut cancel: watch::Receiver<bool>) -> BoxFuture<'static, Ran> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let does = self.does;
        async move {
            match does {
                Commands::Succeed => Outcome::Succeeded,
                Commands::Hang => {
                    while !*cancel.borrow_and_update() {
                        if cancel.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    Outcome::Cancelled { command: 0 }
                }
            }
            .into()
        }
        .boxed()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    worker: Worker,
    started: Arc<AtomicUsize>,
    /// What the worker was made of, for another worker on another store.
    config: Arc<LiveConfig>,
    parts: Parts,
}

fn setup(does: Commands, retry_interrupted: bool) -> Setup {
    setup_with(does, retry_interrupted, "")
}

/// [`setup`], with more `[server]` keys.
fn setup_with(does: Commands, retry_interrupted: bool, server: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
state_dir = "{}/state"
shutdown_grace = "2s"
{server}

[[hook]]
id = "h"
forge = "generic"
secret = "whsec_ZGVtby1rZXktZm9yLXRoZS1kZXBsb3lob29rLXJlYWRtZQ=="
repository = "a/b"
clone_url = "/nonexistent"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]
queue = "fifo"
retry_interrupted = {retry_interrupted}
"#,
        dir.path().display()
    );
    let loaded = load_str(&dir.path().join("hooks.toml"), &text, &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let state_dir = loaded.config.server.state_dir.clone();
    let config = LiveConfig::new(loaded.config);
    let store = Store::open(&state_dir).unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let parts = Parts {
        checkout: Arc::new(NoCheckout),
        runner: Arc::new(FakeRun {
            does,
            started: Arc::clone(&started),
        }),
        launcher: "/nonexistent/deployhook".into(),
        timing: Timing {
            tick: Duration::from_millis(200),
            lease: LEASE,
            heartbeat: HEARTBEAT,
        },
    };
    let worker = Worker::new(
        Arc::clone(&config),
        store.clone(),
        JobLogs::open(&state_dir).unwrap(),
        Arc::new(Metrics::default()),
        parts.clone(),
    );
    Setup {
        _dir: dir,
        store,
        worker,
        started,
        config,
        parts,
    }
}

async fn queue(store: &Store, hook: &str) -> JobId {
    let event = PushEvent {
        forge: Forge::Generic,
        repository: "a/b".into(),
        git_ref: RefName::parse("refs/heads/main").unwrap(),
        before: Sha::parse(&"1".repeat(40)).unwrap(),
        after: Sha::parse(&"2".repeat(40)).unwrap(),
        forced: false,
        paths: ChangedPaths::Unknown,
        pusher: None,
        delivery: None,
    };
    let delivery = Delivery {
        hook: hook.to_owned(),
        delivery: None,
        forge: Forge::Generic,
        event: Some("push".into()),
        git_ref: None,
        after: None,
        note: None,
    };
    let job = NewJob {
        rule: 0,
        rule_key: "0".into(),
        per_rule: false,
        lock: None,
        reason: None,
        queue: Queue::Fifo,
        event,
        origin: Origin::Push,
        notify: Vec::new(),
    };
    match store
        .accept(delivery, Vec::new(), vec![job], 1_000)
        .await
        .unwrap()
    {
        Acceptance::Queued(entered) => entered[0].id,
        other @ (Acceptance::Duplicate(_) | Acceptance::Full { .. }) => panic!("{other:?}"),
    }
}

async fn state_of(store: &Store, id: JobId) -> (JobState, String) {
    let j = store.get(id).await.unwrap().unwrap();
    (j.state, j.detail.unwrap_or_default())
}

/// Polls until `cond` holds, for at most half a minute.
async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}

/// Queues a job and runs it with `execute_one` in a task of its own, until its commands
/// have started.
async fn start_one(s: &Setup) -> (JobId, tokio::task::JoinHandle<Step>) {
    let id = queue(&s.store, "h").await;
    let worker = s.worker.clone();
    let run = tokio::spawn(async move { worker.execute_one().await });
    until("the commands to start", || async {
        s.started.load(Ordering::SeqCst) == 1
    })
    .await;
    (id, run)
}

#[tokio::test]
async fn runs_a_job_and_says_what_it_did() {
    let s = setup(Commands::Succeed, false);
    assert_eq!(s.worker.execute_one().await, Step::Idle);
    let id = queue(&s.store, "h").await;
    let step = s.worker.execute_one().await;
    assert_eq!(
        step,
        Step::Ran {
            job: id,
            state: JobState::Succeeded,
            detail: "all commands succeeded".into()
        }
    );
    let job = s.store.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.owner.as_ref(), Some(s.worker.instance()));
}

#[tokio::test]
async fn a_job_whose_hook_was_removed_by_a_reload_fails_and_says_why() {
    let s = setup(Commands::Succeed, false);
    let id = queue(&s.store, "gone").await;
    let Step::Ran { job, state, detail } = s.worker.execute_one().await else {
        panic!("it ran")
    };
    assert_eq!((job, state), (id, JobState::Failed));
    assert_eq!(
        detail,
        "hook \"gone\" or its rule 0 is no longer configured"
    );
    assert_eq!(s.started.load(Ordering::SeqCst), 0, "no command ran");
}

#[tokio::test]
async fn a_cancel_recorded_in_the_store_reaches_the_job_at_its_heartbeat() {
    let s = setup(Commands::Hang, false);
    let (id, run) = start_one(&s).await;
    // As another process would: through the store only, not this worker's handle.
    assert_eq!(s.store.cancel(id).await.unwrap(), CancelResult::Requested);
    let step = run.await.unwrap();
    assert_eq!(
        step,
        Step::Ran {
            job: id,
            state: JobState::Cancelled,
            detail: "cancelled while command 1 ran".into()
        }
    );
    assert_eq!(state_of(&s.store, id).await.0, JobState::Cancelled);
}

#[tokio::test]
async fn heartbeats_renew_the_lease_and_a_lost_lease_stops_the_job_unrecorded() {
    let s = setup(Commands::Hang, false);
    let (id, run) = start_one(&s).await;
    // For three leases' time, the job stays ours: its heartbeats renew it.
    let since = std::time::Instant::now();
    while since.elapsed() < LEASE * 3 {
        assert!(s.store.recover(SystemTime::now()).await.unwrap().is_empty());
        assert_eq!(state_of(&s.store, id).await.0, JobState::Running);
        tokio::time::sleep(HEARTBEAT).await;
    }
    // Another process whose clock runs a minute ahead recovers it: the lease is lost,
    // the job stops at the next heartbeat, and the worker does not overwrite what the
    // other process recorded.
    let other = s
        .store
        .recover(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(run.await.unwrap(), Step::Lost { job: id });
    assert_eq!(state_of(&s.store, id).await.0, JobState::Interrupted);
}

#[tokio::test]
async fn an_expired_lease_is_recovered_and_retried_where_the_rule_says_so() {
    let s = setup(Commands::Succeed, true);
    let id = queue(&s.store, "h").await;
    // A process that claimed it and died: its lease runs for a few more seconds, in
    // which the worker must leave it alone.
    let dead = InstanceId::from_recorded("dead:1:0");
    let lease_until = SystemTime::now() + Duration::from_secs(3);
    assert!(s.store.claim(dead, lease_until).await.unwrap().is_some());
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(s.worker.clone().run(stopped));
    while SystemTime::now() + Duration::from_millis(500) < lease_until {
        assert_eq!(state_of(&s.store, id).await.0, JobState::Running);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retried = || async {
        let jobs = s
            .store
            .list(crate::store::JobFilter::default())
            .await
            .unwrap();
        jobs.iter()
            .any(|j| j.attempt == 2 && j.state == JobState::Succeeded)
    };
    until("the retry to succeed", retried).await;
    let (state, detail) = state_of(&s.store, id).await;
    assert_eq!(state, JobState::Interrupted);
    assert!(detail.contains("dead:1:0"), "{detail}");
    stop.send(true).unwrap();
    run.await.unwrap();
}

#[tokio::test]
async fn shutdown_grace_then_interrupted_and_retried() {
    let s = setup(Commands::Hang, true);
    let id = queue(&s.store, "h").await;
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(s.worker.clone().run(stopped));
    until("the commands to start", || async {
        s.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let asked = tokio::time::Instant::now();
    stop.send(true).unwrap();
    run.await.unwrap();
    // It waited the grace (2 s) for the job, then stopped it.
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        state_of(&s.store, id).await,
        (
            JobState::Interrupted,
            "the daemon stopped while this job ran".to_owned()
        )
    );
    // retry_interrupted: queued again for the next start (or another replica).
    let again = s
        .store
        .list(crate::store::JobFilter {
            state: Some(JobState::Queued),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

/// With a push every 50 ms (each waking the worker), history is still pruned on every
/// tick: `keep_jobs` holds under steady traffic, not only once it pauses.
#[tokio::test]
async fn pruning_keeps_up_under_steady_traffic() {
    let s = setup_with(Commands::Succeed, false, "keep_jobs = 3");
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(s.worker.clone().run(stopped));
    let finished = || async {
        s.store
            .list(crate::store::JobFilter::default())
            .await
            .unwrap()
            .iter()
            .filter(|j| j.state.is_final())
            .count()
    };
    let mut most = 0;
    for _ in 0..60 {
        queue(&s.store, "h").await;
        s.worker.handle().wake();
        tokio::time::sleep(Duration::from_millis(50)).await;
        most = most.max(finished().await);
    }
    assert!(s.started.load(Ordering::SeqCst) > 30, "the jobs ran");
    // Three kept, plus what finished since the last tick (200 ms: about four), with room
    // for a slow machine; without pruning on the tick it would be all sixty.
    assert!(most <= 15, "{most} finished jobs kept at once");
    stop.send(true).unwrap();
    run.await.unwrap();
}

/// A backlog of history larger than one slice is worked off on one tick, slice after
/// slice, under steady traffic (which keeps the big idle-time prune from ever running):
/// not one slice per tick, which let history grow at a steady 1,000 deliveries/s.
#[tokio::test]
async fn a_tick_prunes_slice_after_slice_until_caught_up() {
    let s = setup_with(Commands::Succeed, false, "keep_jobs = 3");
    for _ in 0..(PRUNE_SLICE + PRUNE_SLICE / 2) {
        let id = queue(&s.store, "h").await;
        s.store.cancel(id).await.unwrap();
    }
    let counting = Arc::new(FullDisk {
        inner: s.store.clone(),
        failures: AtomicUsize::new(0),
        seen: std::sync::Mutex::default(),
        prunes: unheld(),
    });
    let worker = worker_on(&s, Arc::clone(&counting));
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(worker.clone().run(stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pruned = || {
        counting
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|op| op.strip_prefix("prune:")?.parse::<usize>().ok())
            .sum::<usize>()
    };
    while pruned() < PRUNE_SLICE + PRUNE_SLICE / 2 - 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            counting.seen.lock().unwrap()
        );
        worker.handle().wake();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    run.await.unwrap();
    let seen: Vec<String> = counting
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|op| *op != "prune asked")
        .cloned()
        .collect();
    let full = seen
        .iter()
        .position(|op| *op == format!("prune:{PRUNE_SLICE}"))
        .expect("a full slice");
    assert!(
        seen[full + 1].starts_with("prune:"),
        "after a full slice the same tick prunes again: {seen:?}"
    );
}

/// A worker made as `s`'s, on `store`.
fn worker_on(s: &Setup, store: Arc<FullDisk>) -> Worker {
    let state_dir = s.config.get().server.state_dir.clone();
    Worker::new(
        Arc::clone(&s.config),
        Store::from_backend(store as Arc<dyn crate::store::Backend>),
        JobLogs::open(&state_dir).unwrap(),
        Arc::new(Metrics::default()),
        s.parts.clone(),
    )
}

/// Prunes that never wait.
fn unheld() -> tokio::sync::Semaphore {
    tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS)
}

/// Jobs are claimed and run while a prune is under way: a tick's sweep of history runs
/// beside the loop that claims, not in it (slice after slice, each waiting for a group
/// commit, it took seconds under load, and no job started meanwhile).
#[tokio::test]
async fn jobs_start_while_history_is_pruned() {
    let s = setup_with(Commands::Succeed, false, "keep_jobs = 3");
    let held = Arc::new(FullDisk {
        inner: s.store.clone(),
        failures: AtomicUsize::new(0),
        seen: std::sync::Mutex::default(),
        prunes: tokio::sync::Semaphore::new(0),
    });
    let worker = worker_on(&s, Arc::clone(&held));
    let (stop, stopped) = watch::channel(false);
    let run = tokio::spawn(worker.clone().run(stopped));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let asked = || {
        held.seen
            .lock()
            .unwrap()
            .iter()
            .any(|op| op == "prune asked")
    };
    while !asked() {
        assert!(std::time::Instant::now() < deadline, "no prune asked for");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    queue(&s.store, "h").await;
    worker.handle().wake();
    while s.started.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no job started while a prune was under way"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.prunes.add_permits(tokio::sync::Semaphore::MAX_PERMITS);
    stop.send(true).unwrap();
    run.await.unwrap();
}

/// A store whose `finish` fails the first `failures` times (a full disk), and otherwise
/// is the SQLite store it wraps.
struct FullDisk {
    inner: Store,
    failures: AtomicUsize,
    /// The recoveries and prunes asked for, in order: `recover`, `prune asked` and, once
    /// answered, `prune:<removed>`.
    seen: std::sync::Mutex<Vec<String>>,
    /// A prune waits for a permit (none: every prune hangs until some are added).
    prunes: tokio::sync::Semaphore,
}

type Answer<'a, T> = BoxFuture<'a, Result<T, crate::store::StoreError>>;

impl crate::store::Backend for FullDisk {
    fn accept(
        &self,
        d: Delivery,
        k: Vec<String>,
        j: Vec<NewJob>,
        m: usize,
    ) -> Answer<'_, Acceptance> {
        self.inner.accept(d, k, j, m)
    }
    fn record(&self, d: Delivery, o: crate::store::NotQueued, r: String) -> Answer<'_, ()> {
        self.inner.record(d, o, r)
    }
    fn claim_skipping(
        &self,
        o: InstanceId,
        l: SystemTime,
        s: Vec<String>,
    ) -> Answer<'_, Option<crate::store::Job>> {
        self.inner.claim_skipping(o, l, s)
    }
    fn heartbeat(
        &self,
        o: InstanceId,
        r: Vec<JobId>,
        l: SystemTime,
    ) -> Answer<'_, crate::store::Heartbeat> {
        self.inner.heartbeat(o, r, l)
    }
    fn finish(
        &self,
        o: InstanceId,
        id: JobId,
        s: JobState,
        d: String,
        summary: Option<String>,
    ) -> Answer<'_, crate::store::Finished> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return async {
                Err(crate::store::StoreError::Write(
                    "database or disk is full".into(),
                ))
            }
            .boxed();
        }
        self.inner.finish(o, id, s, d, summary)
    }
    fn cancel(&self, id: JobId) -> Answer<'_, CancelResult> {
        self.inner.cancel(id)
    }
    fn recover(&self, now: SystemTime) -> Answer<'_, Vec<crate::store::Job>> {
        self.seen.lock().unwrap().push("recover".into());
        self.inner.recover(now)
    }
    fn requeue(&self, id: JobId) -> Answer<'_, JobId> {
        self.inner.requeue(id)
    }
    fn pause(&self, hook: String, reason: String) -> Answer<'_, Vec<JobId>> {
        self.inner.pause(hook, reason)
    }
    fn resume(&self, hook: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.inner.resume(hook)
    }
    fn pauses(&self) -> Answer<'_, Vec<crate::store::Pause>> {
        self.inner.pauses()
    }
    fn lock_holder(&self, lock: String) -> Answer<'_, Option<JobId>> {
        self.inner.lock_holder(lock)
    }
    fn get(&self, id: JobId) -> Answer<'_, Option<crate::store::Job>> {
        self.inner.get(id)
    }
    fn job_events(&self, id: JobId) -> Answer<'_, Vec<crate::store::JobEvent>> {
        self.inner.job_events(id)
    }
    fn list(&self, f: crate::store::JobFilter) -> Answer<'_, Vec<crate::store::Job>> {
        self.inner.list(f)
    }
    fn events(&self, a: crate::store::Cursor, l: usize) -> Answer<'_, Vec<crate::store::JobEvent>> {
        self.inner.events(a, l)
    }
    fn deliveries(
        &self,
        h: Option<String>,
        l: usize,
    ) -> Answer<'_, Vec<crate::store::DeliveryRecord>> {
        self.inner.deliveries(h, l)
    }
    fn delivery_jobs(&self, h: String, d: String) -> Answer<'_, Option<Vec<JobId>>> {
        self.inner.delivery_jobs(h, d)
    }
    fn secret(&self, n: String) -> Answer<'_, Vec<u8>> {
        self.inner.secret(n)
    }
    fn count_by_state(&self) -> Answer<'_, Vec<(JobState, u64)>> {
        self.inner.count_by_state()
    }
    fn prune(&self, r: crate::store::Retention) -> Answer<'_, Vec<JobId>> {
        async move {
            self.seen.lock().unwrap().push("prune asked".into());
            let _permit = self.prunes.acquire().await.unwrap();
            let removed = self.inner.prune(r).await?;
            self.seen
                .lock()
                .unwrap()
                .push(format!("prune:{}", removed.len()));
            Ok(removed)
        }
        .boxed()
    }
    fn outbox_due(
        &self,
        now: SystemTime,
        busy: Vec<String>,
        limit: usize,
    ) -> Answer<'_, Vec<crate::store::Outgoing>> {
        self.inner.outbox_due(now, busy, limit)
    }
    fn outbox_attempt(
        &self,
        id: crate::store::OutboxId,
        a: crate::store::Attempt,
    ) -> Answer<'_, ()> {
        self.inner.outbox_attempt(id, a)
    }
    fn notifications(&self, job: JobId) -> Answer<'_, Vec<crate::store::Notification>> {
        self.inner.notifications(job)
    }
    fn outbox_depth(&self) -> Answer<'_, crate::store::OutboxDepth> {
        self.inner.outbox_depth()
    }
    fn ping(&self) -> Answer<'_, ()> {
        self.inner.ping()
    }
    fn changed(&self) -> watch::Receiver<u64> {
        self.inner.changed()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The end of a job that cannot be recorded (the disk is full) is tried again until it
/// is, so the hook does not stay `running` for good, and the next job of the hook runs.
#[tokio::test]
async fn an_end_that_cannot_be_recorded_is_recorded_once_it_can() {
    let s = setup(Commands::Succeed, false);
    let worker = worker_on(
        &s,
        Arc::new(FullDisk {
            inner: s.store.clone(),
            failures: AtomicUsize::new(3),
            seen: std::sync::Mutex::default(),
            prunes: unheld(),
        }),
    );
    let first = queue(&s.store, "h").await;
    let second = queue(&s.store, "h").await;
    assert_eq!(
        worker.execute_one().await,
        Step::Ran {
            job: first,
            state: JobState::Succeeded,
            detail: "all commands succeeded".into()
        }
    );
    assert_eq!(state_of(&s.store, first).await.0, JobState::Succeeded);
    let Step::Ran { job, state, .. } = worker.execute_one().await else {
        panic!("the hook's next job runs")
    };
    assert_eq!((job, state), (second, JobState::Succeeded));
}

/// Checks out nothing, and notes the CPU priority of the thread it was asked on.
struct PriorityCheckout(std::sync::Mutex<Option<i32>>);

impl Checkout for PriorityCheckout {
    fn checkout(
        &self,
        remote: &Remote,
        git_ref: &str,
        sha: &str,
        on_ref: OnRef,
        abort: &Abort,
        worktree: &Path,
    ) -> Result<CheckoutInfo, GitError> {
        *self.0.lock().unwrap() = Some(crate::runner::priority::this_thread().unwrap());
        NoCheckout.checkout(remote, git_ref, sha, on_ref, abort, worktree)
    }
}

/// A job's checkout runs at the job's CPU priority (`limits.nice`, 10 by default) on a
/// thread of its own, and the worker's threads keep the daemon's.
#[tokio::test]
async fn a_checkout_runs_below_the_daemon_s_cpu_priority() {
    let s = setup(Commands::Succeed, false);
    let checkout = Arc::new(PriorityCheckout(std::sync::Mutex::new(None)));
    let parts = Parts {
        checkout: Arc::clone(&checkout) as Arc<dyn Checkout>,
        ..s.parts.clone()
    };
    let state_dir = s.config.get().server.state_dir.clone();
    let worker = Worker::new(
        Arc::clone(&s.config),
        s.store.clone(),
        JobLogs::open(&state_dir).unwrap(),
        Arc::new(Metrics::default()),
        parts,
    );
    let daemon = crate::runner::priority::this_thread().unwrap();
    let id = queue(&s.store, "h").await;
    assert!(matches!(worker.execute_one().await, Step::Ran { job, .. } if job == id));
    let nice = crate::config::Nice::default();
    assert_eq!(
        *checkout.0.lock().unwrap(),
        Some((daemon + i32::from(nice.steps())).min(19))
    );
    assert_eq!(crate::runner::priority::this_thread().unwrap(), daemon);
}
