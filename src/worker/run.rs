//! The worker loop and the life of one job: claim, check out, run, record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::WorkerHandle;
use crate::config::{Config, Hook, LiveConfig, Rule};
use crate::git::{self, Abort, Git, GitError, OnRef, Remote, Retry};
use crate::metrics::Metrics;
use crate::runner::identity::CommandUser;
use crate::runner::{self, Outcome, RunSpec};
use crate::store::{JobRecord, JobState, Store};

/// How often the worker looks for runnable jobs and prunes history without being woken.
const TICK: Duration = Duration::from_secs(5);

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

/// How long a manual deploy may take to learn where its ref points on the remote.
const RESOLVE_BUDGET: Duration = Duration::from_secs(60);

/// The PATH commands get unless their rule's `env` sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct Worker {
    config: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    store: Store,
    handle: WorkerHandle,
    git: Arc<Git>,
    /// The deployhook binary, which the runner starts as each command's supervisor.
    launcher: PathBuf,
}

impl Worker {
    pub fn new(
        config: Arc<LiveConfig>,
        store: Store,
        metrics: Arc<Metrics>,
        launcher: PathBuf,
    ) -> Worker {
        let git = Git::new(
            config.get().server.state_dir.join("git"),
            Retry {
                attempts: 3,
                first_backoff: Duration::from_secs(1),
            },
        );
        Worker {
            config,
            metrics,
            store,
            handle: WorkerHandle::default(),
            git: Arc::new(git),
            launcher,
        }
    }

    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// The git cache, shared with the API (manual deploys resolve refs through it).
    pub fn git(&self) -> Arc<Git> {
        Arc::clone(&self.git)
    }

    /// Marks jobs a previous process left running as interrupted (queueing them again
    /// where their rule says `retry_interrupted`), then runs jobs until `shutdown` turns
    /// true; jobs still running then are stopped and recorded as interrupted.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.recover().await;
        let me = Arc::new(self);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while me.handle.running_count() < me.config.get().server.max_concurrent_jobs {
                match me.store.claim().await {
                    Ok(Some(job)) => {
                        let cancel = me.handle.start(job.job_id());
                        let shutting_down = shutdown.clone();
                        tasks.spawn(Arc::clone(&me).execute(job, cancel, shutting_down));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim a job");
                        break;
                    }
                }
            }
            tokio::select! {
                () = me.handle.woken() => {}
                () = tokio::time::sleep(TICK) => me.prune().await,
                Some(_) = tasks.join_next() => {}
                _ = shutdown.changed() => break,
            }
        }
        // Stopping: running jobs get `shutdown_grace` to finish, then are stopped (and
        // recorded as interrupted); queued jobs stay queued for the next start.
        let grace = me.config.get().server.shutdown_grace;
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
            me.handle.cancel_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    async fn recover(&self) {
        let config = self.config.get();
        let state_dir = config.server.state_dir.clone();
        let other_users = CommandUser::resolve(&config.server.command_user)
            .name()
            .is_some()
            || config
                .hooks
                .iter()
                .any(|h| h.rules.iter().any(|r| r.run_as.is_some()));
        drop(config);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = open_state_dir(&state_dir, other_users) {
                tracing::error!(state_dir = %state_dir.display(), "cannot set the state directory's permissions: {e}");
            }
            git::clear_stale_locks(&state_dir.join("git"))
        })
        .await;
        let interrupted = match self.store.recover().await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "cannot recover jobs left running");
                return;
            }
        };
        for job in interrupted {
            let retry = Self::rule_of(&self.config.get(), &job)
                .is_some_and(|(_, rule)| rule.retry_interrupted);
            tracing::warn!(job = job.id, hook = %job.hook, retry, "job was interrupted by a daemon stop");
            if retry && let Err(e) = self.store.requeue(job.job_id()).await {
                tracing::error!(job = job.id, error = %e, "cannot queue the interrupted job again");
            }
        }
    }

    async fn prune(&self) {
        let config = self.config.get();
        let s = &config.server;
        match self.store.prune(s.keep_jobs, s.keep_for).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(count = removed.len(), "pruned old jobs and their logs");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune old jobs"),
        }
    }

    fn rule_of<'c>(config: &'c Config, job: &JobRecord) -> Option<(&'c Hook, &'c Rule)> {
        let hook = config.hook(&job.hook)?;
        let rule = hook.rules.get(usize::try_from(job.rule).ok()?)?;
        Some((hook, rule))
    }

    async fn execute(
        self: Arc<Self>,
        job: JobRecord,
        cancel: watch::Receiver<bool>,
        shutdown: watch::Receiver<bool>,
    ) {
        let id = job.job_id();
        let log_path = self.store.log_path(id);
        tracing::info!(job = job.id, hook = %job.hook, git_ref = %job.git_ref, sha = %job.sha, "job started");
        let started = std::time::Instant::now();
        let config = self.config.get();
        let (state, detail) = match Self::rule_of(&config, &job) {
            None => (
                JobState::Failed,
                format!(
                    "hook {:?} or its rule {} is no longer configured",
                    job.hook, job.rule
                ),
            ),
            Some((hook, rule)) => {
                self.deploy(&config, &job, hook, rule, &log_path, cancel)
                    .await
            }
        };
        // A job stopped because the daemon is stopping did not fail: it was interrupted.
        let (state, detail) = if state == JobState::Cancelled && *shutdown.borrow() {
            (
                JobState::Interrupted,
                "the daemon stopped while this job ran".to_owned(),
            )
        } else {
            (state, detail)
        };
        append(&log_path, &format!("job {} {state}: {detail}", job.id)).await;
        self.metrics
            .job_finished(&job.hook, state.as_str(), started.elapsed());
        if let Err(e) = self.store.finish(id, state, detail.clone()).await {
            tracing::error!(job = job.id, error = %e, "cannot record how the job ended");
        }
        tracing::info!(job = job.id, hook = %job.hook, state = %state, detail = ?detail, "job finished");
        self.handle.done(id);
        self.handle.wake();
    }

    async fn deploy(
        &self,
        config: &Config,
        job: &JobRecord,
        hook: &Hook,
        rule: &Rule,
        log_path: &Path,
        mut cancel: watch::Receiver<bool>,
    ) -> (JobState, String) {
        append(
            log_path,
            &format!(
                "job {} for hook {}: {} at {} (rule {}, attempt {})",
                job.id, hook.id, job.git_ref, job.sha, rule.index, job.attempt
            ),
        )
        .await;
        let state_dir = &config.server.state_dir;
        let worktree = state_dir.join("work").join(&hook.id);
        let on_ref = if job.force {
            OnRef::Unchecked
        } else {
            OnRef::Required
        };
        let checkout = checkout_within(
            Arc::clone(&self.git),
            remote(hook),
            job,
            on_ref,
            worktree.clone(),
            rule.timeout,
            &mut cancel,
        )
        .await;
        match checkout {
            Ok(info) => {
                self.metrics.git_fetch(&hook.id, info.duration);
                append(
                    log_path,
                    &format!(
                        "checked out {} in {:.1}s ({})",
                        job.sha,
                        info.duration.as_secs_f64(),
                        if info.fetched {
                            "fetched"
                        } else {
                            "already cached"
                        }
                    ),
                )
                .await;
            }
            Err(e @ GitError::TimedOut { .. }) => return (JobState::TimedOut, e.to_string()),
            Err(e @ GitError::Cancelled) => return (JobState::Cancelled, e.to_string()),
            Err(e) => return (JobState::Failed, format!("checkout failed: {e}")),
        }
        if *cancel.borrow() {
            return (
                JobState::Cancelled,
                "cancelled before its commands ran".to_owned(),
            );
        }
        // A user of the commands' own, unless the rule names one or the daemon cannot
        // switch (serve said so at startup).
        let run_as = rule.run_as.clone().or_else(|| {
            CommandUser::resolve(&config.server.command_user)
                .name()
                .map(str::to_owned)
        });
        let spec = RunSpec {
            launcher: self.launcher.clone(),
            commands: rule.commands.clone(),
            workdir: worktree,
            env: environment(job, hook, rule, run_as.as_deref()),
            timeout: rule.timeout,
            kill_grace: config.server.kill_grace,
            limits: rule.limits.clone(),
            run_as,
            sandbox: rule.sandbox,
            read_paths: rule.read_paths.clone(),
            private_paths: config.private_paths.clone(),
            tmp_dir: state_dir.join("tmp").join(job.id.to_string()),
            log_path: log_path.to_path_buf(),
            log_cap: config.server.max_log_size,
        };
        match runner::run(spec, cancel).await {
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
        }
    }
}

/// Fetches and checks out `job`'s commit into `worktree` on a thread of its own, and
/// returns when it is done, when `budget` is spent, or when `cancel` turns true,
/// whichever comes first. libgit2 blocks its thread and can only be stopped at its next
/// callback; a remote that sends nothing at all gives it none until its read timeout. So
/// the job does not wait for that: it ends now, the thread stops at the next chance, and
/// the next checkout of this work tree waits for it (the git module holds a lock per work
/// tree). A plain thread rather than `spawn_blocking`: the runtime waits for blocking
/// tasks when it shuts down, and a stopping daemon must not.
async fn checkout_within(
    git: Arc<Git>,
    remote: Remote,
    job: &JobRecord,
    on_ref: OnRef,
    worktree: PathBuf,
    budget: Duration,
    cancel: &mut watch::Receiver<bool>,
) -> Result<git::CheckoutInfo, GitError> {
    let abort = Abort::after(budget);
    let (done, result) = tokio::sync::oneshot::channel();
    let (git_ref, sha, stopper) = (job.git_ref.clone(), job.sha.clone(), abort.clone());
    std::thread::Builder::new()
        .name(format!("checkout-{}", job.id))
        .spawn(move || {
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
    job: &JobRecord,
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
    let (ref_kind, ref_name) = match job.git_ref.strip_prefix("refs/heads/") {
        Some(b) => ("DEPLOYHOOK_BRANCH", b),
        None => match job.git_ref.strip_prefix("refs/tags/") {
            Some(t) => ("DEPLOYHOOK_TAG", t),
            None => ("DEPLOYHOOK_OTHER_REF", job.git_ref.as_str()),
        },
    };
    let push = [
        ("DEPLOYHOOK_HOOK", hook.id.as_str()),
        ("DEPLOYHOOK_JOB_ID", &job.id.to_string()),
        ("DEPLOYHOOK_FORGE", job.forge.as_str()),
        ("DEPLOYHOOK_REPOSITORY", job.repository.as_str()),
        ("DEPLOYHOOK_REF", job.git_ref.as_str()),
        (ref_kind, ref_name),
        ("DEPLOYHOOK_BEFORE", job.before.as_str()),
        ("DEPLOYHOOK_SHA", job.sha.as_str()),
        ("DEPLOYHOOK_PUSHER", job.pusher.as_deref().unwrap_or("")),
        ("DEPLOYHOOK_DELIVERY", job.delivery.as_deref().unwrap_or("")),
    ];
    env.extend(push.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

/// Appends one of deployhook's own lines to a job's log.
async fn append(path: &Path, text: &str) {
    let line = runner::job_log_line(text);
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .await;
    if let Ok(mut f) = file {
        // tokio's File finishes a write in the background; without the flush the next
        // line (this job's or the runner's) could land before this one.
        let _ = f.write_all(line.as_bytes()).await;
        let _ = f.flush().await;
    }
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
