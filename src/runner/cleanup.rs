//! A rule's cleanup steps, after its commands: `on_failure` when a command failed, timed
//! out or could not be started (not when the job was cancelled), then `finally`, always. They run like the
//! commands (same sandbox, user, limits, environment), plus `DEPLOYHOOK_RESULT` and,
//! after a failure, `DEPLOYHOOK_FAILED_COMMAND`; their own results are logged and never
//! change the job's. A cancel or shutdown still ends the job promptly: a `finally` that
//! runs after (or during) one gets `kill_grace`, then is stopped as a timed-out command is.

use std::time::Duration;

use tokio::sync::watch;

use super::{Outcome, RunSpec, launcher, run_command};
use crate::joblog::JobLog;

/// `DEPLOYHOOK_RESULT`'s value for how the commands ended.
fn result(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { .. } | Outcome::Error(_) => "failed",
        Outcome::TimedOut { .. } => "timed_out",
        Outcome::Cancelled { .. } => "cancelled",
    }
}

/// Runs the cleanup steps that `outcome` calls for.
pub(super) async fn run(
    spec: &RunSpec,
    confinement: &launcher::Confinement,
    outcome: &Outcome,
    cancel: &mut watch::Receiver<bool>,
    log: &mut JobLog,
) {
    if spec.on_failure.is_empty() && spec.finally.is_empty() {
        return;
    }
    let mut env = spec.env.clone();
    env.retain(|(k, _)| k != "DEPLOYHOOK_RESULT" && k != "DEPLOYHOOK_FAILED_COMMAND");
    env.push(("DEPLOYHOOK_RESULT".into(), result(outcome).into()));
    if let Outcome::Failed { command, .. } | Outcome::TimedOut { command } = outcome {
        env.push(("DEPLOYHOOK_FAILED_COMMAND".into(), command.to_string()));
    }
    let mut step = spec.clone();
    step.env = env;
    let failed = matches!(
        outcome,
        Outcome::Failed { .. } | Outcome::TimedOut { .. } | Outcome::Error(_)
    );
    if failed && !*cancel.borrow() {
        steps(
            "on_failure",
            &step,
            confinement,
            Stage::OnFailure,
            cancel,
            log,
        )
        .await;
    }
    if *cancel.borrow() {
        // Cancelled or stopping: `finally` gets kill_grace, and no cancel cuts it shorter.
        step.timeout = step.timeout.min(spec.kill_grace);
        let (_keep, mut never) = watch::channel(false);
        steps(
            "finally",
            &step,
            confinement,
            Stage::Finally,
            &mut never,
            log,
        )
        .await;
    } else {
        let mut late = grace_after(cancel.clone(), spec.kill_grace);
        steps(
            "finally",
            &step,
            confinement,
            Stage::Finally,
            &mut late,
            log,
        )
        .await;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    OnFailure,
    Finally,
}

async fn steps(
    name: &str,
    spec: &RunSpec,
    confinement: &launcher::Confinement,
    stage: Stage,
    cancel: &mut watch::Receiver<bool>,
    log: &mut JobLog,
) {
    let commands = match stage {
        Stage::OnFailure => &spec.on_failure,
        Stage::Finally => &spec.finally,
    };
    for (index, command) in commands.iter().enumerate() {
        if *cancel.borrow() {
            log.note(&format!(
                "{name}: cancelled before step {} started",
                index + 1
            ));
            return;
        }
        log.note(&format!("{name}: step {}", index + 1));
        let done = run_command(spec, confinement, index, command, cancel, log).await;
        let said = match &done {
            Outcome::Succeeded => "succeeded".to_owned(),
            Outcome::Failed { status, .. } => format!("failed: {status}"),
            Outcome::TimedOut { .. } => {
                format!("ran longer than {:?} and was stopped", spec.timeout)
            }
            Outcome::Cancelled { .. } => "stopped: the job was cancelled".to_owned(),
            Outcome::Error(e) => format!("could not run: {e}"),
        };
        log.note(&format!("{name}: step {} {said}", index + 1));
        if done != Outcome::Succeeded {
            return;
        }
    }
}

/// A cancel that fires `grace` after `cancel` does.
fn grace_after(mut cancel: watch::Receiver<bool>, grace: Duration) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            if *cancel.borrow_and_update() {
                break;
            }
            tokio::select! {
                changed = cancel.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(grace) => { let _ = tx.send(true); }
            () = tx.closed() => {}
        }
    });
    rx
}
