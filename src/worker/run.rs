//! The worker loop and the life of one job: claim (under a lease), check out, run, keep
//! the lease alive, record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::WorkerHandle;
use super::parts::{Checkout, Parts};
use crate::config::{Config, Hook, LiveConfig, Rule};
use crate::git::{self, Abort, Git, GitError, OnRef, Remote, Retry};
use crate::joblog::JobLogs;
use crate::metrics::Metrics;
use crate::runner::identity::CommandUser;
use crate::runner::{Nice, Outcome, RunSpec};
use crate::store::{CheckIn, Finished, InstanceId, Job, JobId, JobState, Origin, Retention, Store};

/// The permissions of `state_dir`'s folders. Commands of another user must reach their
/// work tree (`work/<hook>`) and temp dir (`tmp/<job>`), each theirs and 0700, by path
/// (tools resolve absolute paths): then `state_dir`, `work/` and `tmp/` are 0751, which
/// lets them pass through without listing anything, and everything else in `state_dir`
/// is closed to them by its own mode (`git/` 0750, `logs/` 0750, the database 0600).
/// Otherwise all of it is 0750.
fn open_state_dir(state_dir: &Path, other_users: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let pass = if other_users { 0o751 } else { 0o750 };
    for (dir, mode) in [
        (state_dir.to_path_buf(), pass),
        (state_dir.join("work"), pass),
        (state_dir.join("tmp"), pass),
        (state_dir.join("git"), 0o750),
    ] {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Whether commands run as users other than the daemon's (then the folders on the way to
/// their work trees must let them through).
fn other_users(config: &Config) -> bool {
    CommandUser::resolve(&config.server.command_user)
        .name()
        .is_some()
        || config
            .hooks
            .iter()
            .any(|h| h.rules.iter().any(|r| r.run_as.is_some()))
}

/// A job's work tree: `state_dir/work/<hook>/<rule>/`, one per rule (its name or index),
/// so that rules of a `match = "all"` hook can run at once.
pub fn worktree(state_dir: &Path, hook: &Hook, rule: &Rule) -> PathBuf {
    state_dir.join("work").join(&hook.id).join(rule.key())
}

/// Creates `dir` (a hook's folder of work trees) with the mode of `work/` itself.
fn make_pass_through(dir: &Path, config: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    let mode = if other_users(config) { 0o751 } else { 0o750 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Before 0.2 a hook's work tree was `work/<hook>/` itself: such a checkout (known by its
/// git directory) is emptied and forgotten, so that the rules' work trees below it start
/// clean. Run before any job.
fn retire_hook_worktrees(state_dir: &Path, git: &Git, hooks: &[String]) {
    for hook in hooks {
        let old = state_dir.join("work").join(hook);
        let git_dir = git.git_dir_of(&old);
        if !git_dir.exists() {
            continue;
        }
        let emptied =
            crate::wipe::empty_dir(&old, 0o750).and_then(|_| std::fs::remove_dir_all(&git_dir));
        match emptied {
            Ok(()) => {
                tracing::info!(hook = %hook, "moved to per-rule work trees: the hook's old work tree was emptied");
            }
            Err(e) => tracing::warn!(hook = %hook, "cannot empty the hook's old work tree: {e}"),
        }
    }
}

/// The most finished jobs pruned by one store operation on a tick, busy or not: the
/// store commits a slice together with the deliveries waiting beside it, so they wait for
/// its statements (about 40 µs and 8 µs a job). Under load each slice also waits for a
/// group commit (5–8 ms at 1,000 deliveries/s here), so slices of 10 pruned only
/// 800–1,250 jobs a second, about what a steady 1,000/s supersedes.
pub(super) const PRUNE_SLICE: usize = 25;

/// The most slices pruned one after another on a tick: enough to keep up with 2,000
/// superseded jobs a second at the default tick, while deliveries wait behind one slice
/// at most.
const PRUNE_SLICES_PER_TICK: usize = 400;

/// The most finished jobs pruned at once while deliveries pause.
const PRUNE_BATCH: usize = 2_000;

/// How a sweep of history goes.
#[derive(Clone, Copy)]
enum Sweep {
    /// On every tick: slice after slice until caught up, each small.
    Steady,
    /// Once deliveries pause: one big slice.
    Backlog,
}

/// How long a manual deploy may take to learn where its ref points on the remote.
const RESOLVE_BUDGET: Duration = Duration::from_secs(60);

/// The PATH commands get unless their rule's `env` sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The git cache jobs check out from (shared with the API, which resolves refs for
/// manual deploys through it).
pub fn git_cache(config: &Config) -> Arc<Git> {
    Arc::new(Git::new(
        config.server.state_dir.join("git"),
        Retry {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
        },
    ))
}

/// How a job ended, as the worker records it.
struct Ended {
    state: JobState,
    detail: String,
    /// What its commands left in `$DEPLOYHOOK_SUMMARY`.
    summary: Option<String>,
}

impl Ended {
    fn new(state: JobState, detail: impl Into<String>) -> Ended {
        Ended {
            state,
            detail: detail.into(),
            summary: None,
        }
    }
}

/// What [`Worker::execute_one`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No job was runnable.
    Idle,
    /// A job ran and was recorded as ending in `state`.
    Ran {
        job: JobId,
        state: JobState,
        detail: String,
    },
    /// A job ran, but its lease was lost on the way (another process recovered it): how
    /// it ended was not recorded.
    Lost { job: JobId },
}

/// Runs queued jobs; cheap to clone (the clones are one worker).
#[derive(Clone)]
pub struct Worker(Arc<Inner>);

struct Inner {
    config: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    store: Store,
    logs: JobLogs,
    handle: WorkerHandle,
    parts: Parts,
    me: InstanceId,
}

impl Worker {
    pub fn new(
        config: Arc<LiveConfig>,
        store: Store,
        logs: JobLogs,
        metrics: Arc<Metrics>,
        parts: Parts,
    ) -> Worker {
        let me = InstanceId::on_node(&config.get().store.node_name);
        Worker(Arc::new(Inner {
            config,
            metrics,
            store,
            logs,
            handle: WorkerHandle::default(),
            parts,
            me,
        }))
    }

    pub fn handle(&self) -> WorkerHandle {
        self.0.handle.clone()
    }

    /// The owner this worker claims jobs as.
    pub fn instance(&self) -> &InstanceId {
        &self.0.me
    }

    /// Prepares `state_dir` and recovers jobs whose lease ran out (queueing them again
    /// where their rule says `retry_interrupted`), then runs jobs until `shutdown` turns
    /// true; jobs still running then get `shutdown_grace`, and are then stopped and
    /// recorded as interrupted.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.prepare().await;
        self.recover().await;
        let w = &self.0;
        let mut tasks = tokio::task::JoinSet::new();
        let mut sweeping = None;
        let mut tick = tokio::time::interval(w.parts.timing.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            while w.handle.running_count() < w.config.get().server.max_concurrent_jobs {
                match self.claim().await {
                    Some((job, cancel)) => {
                        let me = self.clone();
                        tasks.spawn(async move { me.execute(job, cancel).await });
                    }
                    None => break,
                }
            }
            tokio::select! {
                () = w.handle.woken() => {}
                // On a steady beat, however busy: lapsed leases, and history in small
                // slices, so that retention holds under steady traffic too.
                _ = tick.tick() => {
                    self.check_in().await;
                    self.recover().await;
                    self.sweep(&mut sweeping, Sweep::Steady, &shutdown);
                }
                // Once deliveries pause for a tick: a big slice, to work off a flood's
                // backlog.
                () = tokio::time::sleep(w.parts.timing.tick) => {
                    self.sweep(&mut sweeping, Sweep::Backlog, &shutdown);
                }
                Some(_) = tasks.join_next() => {}
                _ = shutdown.changed() => break,
            }
        }
        // A sweep stops after the slice it is in: its jobs' logs are removed before the
        // process ends.
        if let Some(sweep) = sweeping {
            let _ = sweep.await;
        }
        // Stopping: running jobs get `shutdown_grace` to finish, then are stopped (and
        // recorded as interrupted); queued jobs stay queued for the next start.
        w.handle.stopping();
        let grace = w.config.get().server.shutdown_grace;
        if !tasks.is_empty() {
            tracing::info!(
                running = tasks.len(),
                ?grace,
                "waiting for running jobs to finish"
            );
        }
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                running = tasks.len(),
                "shutdown grace is over: stopping the jobs still running"
            );
            w.handle.cancel_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Claims the next runnable job and runs it to its end, here and now (tests drive
    /// the worker with this; `run` does the same for many jobs at once).
    pub async fn execute_one(&self) -> Step {
        match self.claim().await {
            Some((job, cancel)) => self.execute(job, cancel).await,
            None => Step::Idle,
        }
    }

    /// Says this replica is alive (other replicas count it; two may not share a name).
    pub async fn check_in(&self) -> CheckIn {
        let w = &self.0;
        let node = w.config.get().store.node_name.clone();
        match w
            .store
            .check_in(node.clone(), w.me.clone(), w.parts.timing.lease)
            .await
        {
            Ok(CheckIn::NameTaken(by)) => {
                tracing::error!(
                    node,
                    other = by,
                    "another live replica uses this node_name; give each replica its own [store] node_name"
                );
                CheckIn::NameTaken(by)
            }
            Ok(alive) => alive,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check in as a replica");
                CheckIn::Alive
            }
        }
    }

    async fn claim(&self) -> Option<(Job, watch::Receiver<bool>)> {
        let w = &self.0;
        let lease_until = SystemTime::now() + w.parts.timing.lease;
        let elsewhere = hooks_elsewhere(&w.config.get());
        match w
            .store
            .claim_skipping(w.me.clone(), lease_until, elsewhere)
            .await
        {
            Ok(Some(job)) => {
                let cancel = w.handle.start(job.id);
                Some((job, cancel))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim a job");
                None
            }
        }
    }

    async fn prepare(&self) {
        let config = self.0.config.get();
        let state_dir = config.server.state_dir.clone();
        let other_users = other_users(&config);
        let git = git_cache(&config);
        let hooks: Vec<String> = config.hooks.iter().map(|h| h.id.clone()).collect();
        drop(config);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = open_state_dir(&state_dir, other_users) {
                tracing::error!(state_dir = %state_dir.display(), "cannot set the state directory's permissions: {e}");
            }
            git::clear_stale_locks(&state_dir.join("git"));
            retire_hook_worktrees(&state_dir, &git, &hooks);
        })
        .await;
    }

    /// Marks jobs whose lease ran out as interrupted, and queues them again where their
    /// rule says `retry_interrupted`.
    async fn recover(&self) {
        let w = &self.0;
        let interrupted = match w.store.recover(SystemTime::now()).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "cannot recover jobs whose lease ran out");
                return;
            }
        };
        for job in interrupted {
            tracing::warn!(job = job.id.0, hook = %job.hook, state = %job.state, detail = ?job.detail, "a job's lease ran out");
            if job.state == JobState::Interrupted {
                self.retry_if_wanted(&job).await;
            }
        }
    }

    async fn retry_if_wanted(&self, job: &Job) {
        let retry = rule_of(&self.0.config.get(), job).is_some_and(|(_, r)| r.retry_interrupted);
        if !retry {
            return;
        }
        match self.0.store.requeue(job.id).await {
            Ok(again) => {
                tracing::info!(
                    job = job.id.0,
                    retry = again.0,
                    "interrupted job queued again"
                );
                self.0.handle.wake();
            }
            Err(e) => {
                tracing::error!(job = job.id.0, error = %e, "cannot queue the interrupted job again");
            }
        }
    }

    /// Prunes history in a task of its own, unless one is still at it: claims go on
    /// meanwhile (a tick's slices, each waiting for a group commit, took seconds under
    /// load, and no job was claimed while they ran).
    fn sweep(
        &self,
        sweeping: &mut Option<tokio::task::JoinHandle<()>>,
        how: Sweep,
        shutdown: &watch::Receiver<bool>,
    ) {
        if sweeping.as_ref().is_some_and(|s| !s.is_finished()) {
            return;
        }
        let (me, stop) = (self.clone(), shutdown.clone());
        *sweeping = Some(tokio::spawn(async move {
            match how {
                Sweep::Steady => {
                    for _ in 0..PRUNE_SLICES_PER_TICK {
                        if *stop.borrow() || me.prune(PRUNE_SLICE).await < PRUNE_SLICE {
                            break;
                        }
                    }
                }
                Sweep::Backlog => {
                    me.prune(PRUNE_BATCH).await;
                }
            }
        }));
    }

    /// Prunes up to `at_most` finished jobs past retention; how many went.
    async fn prune(&self, at_most: usize) -> usize {
        let w = &self.0;
        let config = w.config.get();
        let keep = Retention {
            keep_jobs: config.server.keep_jobs,
            keep_for: config.server.keep_for,
            at_most,
        };
        drop(config);
        match w.store.prune(keep).await {
            Ok(removed) if !removed.is_empty() => {
                let count = removed.len();
                tracing::info!(count, "pruned old jobs and their logs");
                w.logs.remove(removed).await;
                count
            }
            Ok(_) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune old jobs");
                0
            }
        }
    }

    /// Runs a claimed job to its end, renewing its lease meanwhile, and records how it
    /// ended (if it is still ours).
    async fn execute(&self, job: Job, cancel: watch::Receiver<bool>) -> Step {
        let w = &self.0;
        let id = job.id;
        tracing::info!(job = id.0, hook = %job.hook, git_ref = %job.git_ref, sha = %job.sha, "job started");
        let started = std::time::Instant::now();
        let config = w.config.get();
        let work = async {
            match rule_of(&config, &job) {
                None => Ended::new(
                    JobState::Failed,
                    format!(
                        "hook {:?} or its rule {} is no longer configured",
                        job.hook, job.rule_key
                    ),
                ),
                Some((hook, rule)) => self.deploy(&config, &job, hook, rule, cancel).await,
            }
        };
        let ended = self.keep_lease(id, work).await;
        // All of the log is in before the job can be seen ended.
        w.logs.end(id).await;
        let Some(Ended {
            state,
            detail,
            summary,
        }) = ended
        else {
            tracing::warn!(job = id.0, hook = %job.hook, "job stopped: its lease was lost (another process recovered it); not recording how it ended");
            w.logs
                .note(
                    id,
                    &format!("job {id} stopped: this process lost its lease on it"),
                )
                .await;
            w.handle.done(id);
            w.handle.wake();
            return Step::Lost { job: id };
        };
        // A job stopped because the daemon is stopping did not fail: it was interrupted.
        let (state, detail) = if state == JobState::Cancelled && w.handle.is_stopping() {
            (
                JobState::Interrupted,
                "the daemon stopped while this job ran".to_owned(),
            )
        } else {
            (state, detail)
        };
        w.logs
            .note(id, &format!("job {id} {state}: {detail}"))
            .await;
        w.metrics
            .job_finished(&job.hook, state.as_str(), started.elapsed());
        match self.record(id, state, &detail, summary).await {
            Ok(Finished::Recorded) => {
                if state == JobState::Interrupted {
                    self.retry_if_wanted(&job).await;
                }
            }
            Ok(Finished::NotOwner) => {
                tracing::warn!(
                    job = id.0,
                    "job ended after its lease was lost; its end was not recorded"
                );
            }
            Err(e) => tracing::error!(job = id.0, error = %e, "cannot record how the job ended"),
        }
        tracing::info!(job = id.0, hook = %job.hook, state = %state, detail = ?detail, "job finished");
        w.handle.done(id);
        w.handle.wake();
        Step::Ran {
            job: id,
            state,
            detail,
        }
    }

    /// Records how job `id` ended, trying again (and keeping its lease) while the store
    /// cannot write: a disk that filled up must not leave the hook's job `running` for
    /// good. Gives up only when the job is no longer ours (its lease ran out and it was
    /// recovered) or the daemon is stopping.
    async fn record(
        &self,
        id: JobId,
        state: JobState,
        detail: &str,
        summary: Option<String>,
    ) -> Result<Finished, crate::store::StoreError> {
        let w = &self.0;
        let mut wait = Duration::from_millis(200);
        loop {
            match w
                .store
                .finish(w.me.clone(), id, state, detail.to_owned(), summary.clone())
                .await
            {
                Err(e) if !w.handle.is_stopping() => {
                    tracing::error!(job = id.0, error = %e, retry_in = ?wait, "cannot record how the job ended; trying again");
                    tokio::time::sleep(wait).await;
                    let lease_until = SystemTime::now() + w.parts.timing.lease;
                    let _ = w.store.heartbeat(w.me.clone(), vec![id], lease_until).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                done => return done,
            }
        }
    }

    /// Drives `work` to its end while renewing job `id`'s lease every heartbeat. A cancel
    /// recorded in the store (from any process) stops the job; so does losing the lease,
    /// and then the answer is `None`: the job is someone else's to record.
    ///
    /// Fencing: when the lease cannot be renewed (the database is unreachable) for so
    /// long that stopping the job (up to `kill_grace`) would outlast it, the job is
    /// stopped now, before another replica can recover and run it again.
    async fn keep_lease<T>(&self, id: JobId, work: impl Future<Output = T>) -> Option<T> {
        let w = &self.0;
        let every = w.parts.timing.heartbeat;
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A failed renewal is noticed at a beat, and may itself take a beat to fail (the
        // store's connect timeout): two beats, then `kill_grace` to stop the job, all
        // within the lease.
        let fence_after = w
            .parts
            .timing
            .lease
            .saturating_sub(w.config.get().server.kill_grace + 2 * every);
        let mut renewed = tokio::time::Instant::now();
        let mut cancels = w.store.cancels();
        let mut hear_cancels = true;
        let mut lost = false;
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return (!lost).then_some(out),
                // Another replica was asked to cancel a job: renew now, which says whether
                // it is this one.
                changed = cancels.changed(), if !lost && hear_cancels => {
                    match changed {
                        Ok(()) => beat.reset_immediately(),
                        Err(_) => hear_cancels = false,
                    }
                }
                _ = beat.tick(), if !lost => {
                    let lease_until = SystemTime::now() + w.parts.timing.lease;
                    match w.store.heartbeat(w.me.clone(), vec![id], lease_until).await {
                        Ok(b) if b.lost.contains(&id) => {
                            lost = true;
                            w.handle.cancel(id);
                        }
                        Ok(b) => {
                            renewed = tokio::time::Instant::now();
                            if b.cancel.contains(&id) {
                                tracing::info!(job = id.0, "cancel requested");
                                w.handle.cancel(id);
                            }
                        }
                        Err(e) if renewed.elapsed() >= fence_after => {
                            tracing::error!(job = id.0, error = %e, unrenewed = ?renewed.elapsed(), "stopping the job: its lease could not be renewed and would run out before it stopped (another replica may run it again)");
                            lost = true;
                            w.handle.cancel(id);
                        }
                        Err(e) => tracing::warn!(job = id.0, error = %e, "cannot renew the job's lease"),
                    }
                }
            }
        }
    }

    async fn deploy(
        &self,
        config: &Config,
        job: &Job,
        hook: &Hook,
        rule: &Rule,
        mut cancel: watch::Receiver<bool>,
    ) -> Ended {
        let w = &self.0;
        let id = job.id;
        w.logs
            .note(
                id,
                &format!(
                    "job {id} for hook {}: {} at {} (rule {}, attempt {})",
                    hook.id, job.git_ref, job.sha, job.rule_key, job.attempt
                ),
            )
            .await;
        let state_dir = &config.server.state_dir;
        let worktree = worktree(state_dir, hook, rule);
        if let Some(parent) = worktree.parent()
            && let Err(e) = make_pass_through(parent, config)
        {
            return Ended::new(
                JobState::Failed,
                format!("cannot make the folder {}: {e}", parent.display()),
            );
        }
        let on_ref = if matches!(job.origin, Origin::Manual { force: true }) {
            OnRef::Unchecked
        } else {
            OnRef::Required
        };
        let checkout = checkout_within(
            Arc::clone(&w.parts.checkout),
            remote(hook),
            job,
            on_ref,
            worktree.clone(),
            rule.timeout,
            rule.limits.nice,
            &mut cancel,
        )
        .await;
        match checkout {
            Ok(info) => {
                w.metrics.git_fetch(&hook.id, info.duration);
                let how = if info.fetched {
                    "fetched"
                } else {
                    "already cached"
                };
                let took = info.duration.as_secs_f64();
                w.logs
                    .note(
                        id,
                        &format!("checked out {} in {took:.1}s ({how})", job.sha),
                    )
                    .await;
            }
            Err(e @ GitError::TimedOut { .. }) => {
                return Ended::new(JobState::TimedOut, e.to_string());
            }
            Err(e @ GitError::Cancelled) => return Ended::new(JobState::Cancelled, e.to_string()),
            Err(e) => return Ended::new(JobState::Failed, format!("checkout failed: {e}")),
        }
        if *cancel.borrow() {
            return Ended::new(JobState::Cancelled, "cancelled before its commands ran");
        }
        // A user of the commands' own, unless the rule names one or the daemon cannot
        // switch (serve said so at startup).
        let run_as = rule.run_as.clone().or_else(|| {
            CommandUser::resolve(&config.server.command_user)
                .name()
                .map(str::to_owned)
        });
        let secrets = match super::secrets::read(rule) {
            Ok(s) => s,
            Err(e) => return Ended::new(JobState::Failed, e),
        };
        let mask = super::secrets::mask(config, hook, rule, &secrets);
        let mut env = environment(job, hook, rule, run_as.as_deref());
        env.extend(secrets);
        let spec = RunSpec {
            launcher: w.parts.launcher.clone(),
            commands: rule.commands.clone(),
            on_failure: rule.on_failure.clone(),
            finally: rule.finally.clone(),
            workdir: worktree,
            env,
            timeout: rule.timeout,
            kill_grace: config.server.kill_grace,
            limits: rule.limits.clone(),
            run_as,
            sandbox: rule.sandbox,
            read_paths: rule.read_paths.clone(),
            private_paths: config.private_paths.clone(),
            tmp_dir: state_dir.join("tmp").join(id.to_string()),
            changed_files: match &job.paths {
                crate::event::ChangedPaths::Known(list) => Some(list.clone()),
                crate::event::ChangedPaths::Unknown => None,
            },
            log: w.logs.begin(id, config.server.max_log_size).masking(mask),
        };
        ended(w.parts.runner.run(spec, cancel).await, rule)
    }
}

/// How a job whose commands ran as `ran` ended.
fn ended(ran: crate::runner::Ran, rule: &Rule) -> Ended {
    let (state, detail) = match ran.outcome {
        Outcome::Succeeded => (JobState::Succeeded, "all commands succeeded".to_owned()),
        Outcome::Failed { command, status } => (
            JobState::Failed,
            format!("command {} failed: {status}", command + 1),
        ),
        Outcome::TimedOut { command } => (
            JobState::TimedOut,
            format!(
                "command {} ran longer than {:?} and was killed",
                command + 1,
                rule.timeout
            ),
        ),
        Outcome::Cancelled { command } => (
            JobState::Cancelled,
            format!("cancelled while command {} ran", command + 1),
        ),
        Outcome::Error(e) => (JobState::Failed, e),
    };
    Ended {
        state,
        detail,
        summary: ran.summary,
    }
}

/// The hook and rule a job was queued for, found by the rule's key (its name, or its
/// index), so that a reload that moves a named rule keeps its jobs on it.
fn rule_of<'c>(config: &'c Config, job: &Job) -> Option<(&'c Hook, &'c Rule)> {
    let hook = config.hook(&job.hook)?;
    let rule = hook.rule(&job.rule_key)?;
    Some((hook, rule))
}

/// Fetches and checks out `job`'s commit into `worktree` on a thread of its own, and
/// returns when it is done, when `budget` is spent, or when `cancel` turns true,
/// whichever comes first. libgit2 blocks its thread and can only be stopped at its next
/// callback; a remote that sends nothing at all gives it none until its read timeout. So
/// the job does not wait for that: it ends now, the thread stops at the next chance, and
/// the next checkout of this work tree waits for it (the git module holds a lock per work
/// tree). A plain thread rather than `spawn_blocking`: the runtime waits for blocking
/// tasks when it shuts down, and a stopping daemon must not; and one of the job's own,
/// so that it can run at the job's CPU priority (`nice`) and end with it.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one part of what to check out, how, and for how long"
)]
async fn checkout_within(
    git: Arc<dyn Checkout>,
    remote: Remote,
    job: &Job,
    on_ref: OnRef,
    worktree: PathBuf,
    budget: Duration,
    nice: Nice,
    cancel: &mut watch::Receiver<bool>,
) -> Result<git::CheckoutInfo, GitError> {
    let abort = Abort::after(budget);
    let (done, result) = tokio::sync::oneshot::channel();
    let (git_ref, sha, stopper) = (job.git_ref.to_string(), job.sha.to_string(), abort.clone());
    std::thread::Builder::new()
        .name(format!("checkout-{}", job.id.0))
        .spawn(move || {
            // Raising a niceness needs no privilege, so this fails only where the call
            // is filtered out; the checkout then runs at the daemon's priority, as
            // before: worth a warning, not a failed job.
            if let Err(e) = nice.lower_this_thread() {
                tracing::warn!("cannot lower the checkout's CPU priority by {nice}: {e}");
            }
            let _ = done.send(git.checkout(&remote, &git_ref, &sha, on_ref, &abort, &worktree));
        })
        .map_err(|e| GitError::Local {
            action: "start a thread to check out",
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
    let cancelled = async {
        while !*cancel.borrow_and_update() {
            if cancel.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        finished = result => finished.unwrap_or_else(|_| Err(GitError::Local {
            action: "check out",
            path: PathBuf::new(),
            reason: "the checkout thread ended without an answer".to_owned(),
        })),
        () = tokio::time::sleep(budget) => {
            stopper.cancel();
            Err(GitError::TimedOut { budget })
        }
        () = cancelled => {
            stopper.cancel();
            Err(GitError::Cancelled)
        }
    }
}

/// The git module's view of a hook's repository.
pub(super) fn remote(hook: &Hook) -> Remote {
    Remote {
        url: hook.clone_url.clone(),
        auth: hook.git_auth.clone(),
        shallow: hook.shallow,
        submodules: hook.submodules,
        limits: hook.checkout_limits,
        submodule_urls: hook.submodule_urls.clone(),
    }
}

/// The complete environment of a job's commands: a fixed base, the rule's `env`, and the
/// push as `DEPLOYHOOK_*` variables. Payload values travel only here, never in argv.
/// `HOME` is `user`'s home when the commands run as `user`.
pub fn environment(
    job: &Job,
    hook: &Hook,
    rule: &Rule,
    user: Option<&str>,
) -> Vec<(String, String)> {
    let home = user
        .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
        .map(|u| u.dir.display().to_string())
        .or_else(|| std::env::var("HOME").ok())
        .unwrap_or_else(|| "/".to_owned());
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), home),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (k, v) in &rule.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    let full_ref = job.git_ref.as_str();
    let (ref_kind, ref_name) = match full_ref.strip_prefix("refs/heads/") {
        Some(b) => ("DEPLOYHOOK_BRANCH", b),
        None => match full_ref.strip_prefix("refs/tags/") {
            Some(t) => ("DEPLOYHOOK_TAG", t),
            None => ("DEPLOYHOOK_OTHER_REF", full_ref),
        },
    };
    let push = [
        ("DEPLOYHOOK_HOOK", hook.id.as_str()),
        ("DEPLOYHOOK_RULE", &rule.key()),
        ("DEPLOYHOOK_JOB_ID", &job.id.to_string()),
        ("DEPLOYHOOK_FORGE", job.forge.as_str()),
        ("DEPLOYHOOK_REPOSITORY", job.repository.as_str()),
        ("DEPLOYHOOK_REF", full_ref),
        (ref_kind, ref_name),
        ("DEPLOYHOOK_BEFORE", job.before.as_str()),
        ("DEPLOYHOOK_SHA", job.sha.as_str()),
        ("DEPLOYHOOK_PUSHER", job.pusher.as_deref().unwrap_or("")),
        (
            "DEPLOYHOOK_DELIVERY",
            job.delivery.as_ref().map_or("", |d| d.as_str()),
        ),
    ];
    env.extend(push.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

/// The commit `git_ref` points at on the hook's remote now, fetching it first.
pub async fn resolve_ref(
    git: Arc<Git>,
    hook: &Hook,
    git_ref: &crate::event::RefName,
) -> Result<String, String> {
    let remote = remote(hook);
    let git_ref = git_ref.to_string();
    tokio::task::spawn_blocking(move || {
        git.resolve(&remote, &git_ref, &Abort::after(RESOLVE_BUDGET))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// The hooks whose `run_on` does not name this replica: their jobs are other replicas'.
fn hooks_elsewhere(config: &Config) -> Vec<String> {
    let me = &config.store.node_name;
    config
        .hooks
        .iter()
        .filter(|h| h.run_on.as_ref().is_some_and(|on| !on.contains(me)))
        .map(|h| h.id.clone())
        .collect()
}
