//! How a fetch and checkout learn that they must stop: the job's deadline passed, or it
//! was cancelled (by an operator, or by the daemon stopping). libgit2 blocks the calling
//! thread, so it cannot be interrupted from outside; it asks its callbacks (transfer
//! progress, sideband messages, checkout notifications) whether to go on, and those
//! answer from here. Retries and their backoff check it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::GitError;

/// Shared by the thread doing the checkout and whoever may stop it; cheap to clone.
#[derive(Debug, Clone)]
pub struct Abort(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// When the time is up, with the budget it came from (for the message).
    deadline: Option<(Instant, Duration)>,
    cancelled: AtomicBool,
}

impl Abort {
    /// Stops after `budget` from now, or when cancelled.
    pub fn after(budget: Duration) -> Abort {
        Abort(Arc::new(Inner {
            deadline: Instant::now()
                .checked_add(budget)
                .map(|deadline| (deadline, budget)),
            cancelled: AtomicBool::new(false),
        }))
    }

    /// Only stops when cancelled.
    pub fn never() -> Abort {
        Abort(Arc::new(Inner {
            deadline: None,
            cancelled: AtomicBool::new(false),
        }))
    }

    /// Asks the checkout to stop at the next chance.
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }

    /// Why it must stop, if it must.
    pub(super) fn check(&self) -> Result<(), GitError> {
        if self.0.cancelled.load(Ordering::Relaxed) {
            return Err(GitError::Cancelled);
        }
        match self.0.deadline {
            Some((deadline, budget)) if Instant::now() >= deadline => {
                Err(GitError::TimedOut { budget })
            }
            _ => Ok(()),
        }
    }

    /// For libgit2's callbacks: `true` to go on.
    pub(super) fn go_on(&self) -> bool {
        self.check().is_ok()
    }

    /// Sleeps `wait`, or less if it must stop first; then says whether it must.
    pub(super) fn sleep(&self, wait: Duration) -> Result<(), GitError> {
        const SLICE: Duration = Duration::from_millis(50);
        let until = Instant::now() + wait;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(SLICE.min(until - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_and_cancel() {
        let never = Abort::never();
        assert!(never.go_on());
        never.cancel();
        assert_eq!(never.check(), Err(GitError::Cancelled));

        let soon = Abort::after(Duration::from_millis(30));
        assert!(soon.go_on());
        let started = Instant::now();
        let slept = soon.sleep(Duration::from_secs(10));
        assert_eq!(
            slept,
            Err(GitError::TimedOut {
                budget: Duration::from_millis(30)
            })
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
