//! What the worker drives, as seams: a [`Checkout`] (git, in the daemon) and a [`Run`]
//! (the runner's subprocess queue), so that its lifecycle can be tested with fakes. Also
//! how often it does what ([`Timing`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::git::{Abort, CheckoutInfo, Git, GitError, OnRef, Remote};
use crate::runner::{self, Ran, RunSpec};

/// Fetches a commit and checks it out into a work tree.
pub trait Checkout: Send + Sync {
    /// Blocks its thread until done or `abort` fires; the worker calls it on a thread of
    /// its own.
    fn checkout(
        &self,
        remote: &Remote,
        git_ref: &str,
        sha: &str,
        on_ref: OnRef,
        abort: &Abort,
        worktree: &Path,
    ) -> Result<CheckoutInfo, GitError>;
}

impl Checkout for Git {
    fn checkout(
        &self,
        remote: &Remote,
        git_ref: &str,
        sha: &str,
        on_ref: OnRef,
        abort: &Abort,
        worktree: &Path,
    ) -> Result<CheckoutInfo, GitError> {
        Git::checkout(self, remote, git_ref, sha, on_ref, abort, worktree)
    }
}

/// Runs a job's commands; stops them when `cancel` turns true.
pub trait Run: Send + Sync {
    fn run(&self, spec: RunSpec, cancel: watch::Receiver<bool>) -> BoxFuture<'static, Ran>;
}

/// The real thing: each command a supervised, sandboxed child process.
pub struct Processes;

impl Run for Processes {
    fn run(&self, spec: RunSpec, cancel: watch::Receiver<bool>) -> BoxFuture<'static, Ran> {
        runner::run(spec, cancel).boxed()
    }
}

/// The worker's collaborators.
#[derive(Clone)]
pub struct Parts {
    pub checkout: Arc<dyn Checkout>,
    pub runner: Arc<dyn Run>,
    /// The deployhook binary, which the runner starts as each command's supervisor.
    pub launcher: PathBuf,
    pub timing: Timing,
}

impl Parts {
    /// git and real processes, on the system clock.
    pub fn standard(git: Arc<Git>, launcher: PathBuf) -> Parts {
        Parts {
            checkout: git,
            runner: Arc::new(Processes),
            launcher,
            timing: Timing::default(),
        }
    }
}

/// How often the worker does what.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Looking for runnable jobs, lapsed leases and history to prune, unwoken.
    pub tick: Duration,
    /// How long a claimed job is ours without a heartbeat.
    pub lease: Duration,
    /// How often a running job's lease is renewed (and a cancel from another process
    /// is noticed). Well under `lease`, so that one slow beat does not lose the job.
    pub heartbeat: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            tick: Duration::from_secs(5),
            lease: crate::config::DEFAULT_LEASE,
            heartbeat: crate::config::HEARTBEAT,
        }
    }
}
