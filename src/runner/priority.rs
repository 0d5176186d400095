//! CPU priority of a job's work: how many steps of niceness below the daemon a job's
//! checkout thread and its commands run (`limits.nice`), so that a build that wants
//! every core leaves the daemon enough to answer deliveries and run its store.

use std::fmt;

/// Steps of niceness added to the daemon's own, 0 to 19. Relative, as `nice -n` is:
/// raising a niceness needs no privilege, lowering one does (CAP_SYS_NICE), so a job
/// can only ever run at or below the daemon's priority. The kernel stops at 19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Nice(u8);

impl Nice {
    /// The highest step the kernel has: the least CPU under contention.
    pub const MAX: u8 = 19;
    /// The daemon's own priority.
    pub const SAME: Nice = Nice(0);
    /// What a rule without `limits.nice` gets: under contention a nice-10 thread gets
    /// about a tenth of the CPU a nice-0 one does (CFS weights 110 and 1024); with
    /// nothing else to run it runs at full speed.
    pub const DEFAULT: Nice = Nice(10);

    /// `None` past [`Nice::MAX`].
    pub fn new(steps: u8) -> Option<Nice> {
        (steps <= Self::MAX).then_some(Nice(steps))
    }

    pub fn steps(self) -> u8 {
        self.0
    }

    /// Lowers the calling thread's priority by these steps (on Linux the niceness is a
    /// thread's, and the threads and processes it starts afterwards inherit it). Meant
    /// for a thread that does only the job's work: there is no way back up.
    pub fn lower_this_thread(self) -> std::io::Result<()> {
        if self.0 > 0 {
            rustix::process::nice(i32::from(self.0))?;
        }
        Ok(())
    }
}

impl Default for Nice {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Nice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The calling thread's niceness, -20 to 19.
pub fn this_thread() -> std::io::Result<i32> {
    Ok(rustix::process::getpriority_process(None)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_lowered_by_its_steps_and_no_further_than_19() {
        let before = this_thread().unwrap();
        let lowered = std::thread::spawn(|| {
            Nice::new(3).unwrap().lower_this_thread().unwrap();
            let once = this_thread().unwrap();
            Nice::new(Nice::MAX).unwrap().lower_this_thread().unwrap();
            (once, this_thread().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, ((before + 3).min(19), 19));
        // The other threads keep theirs.
        assert_eq!(this_thread().unwrap(), before);
        assert_eq!(Nice::new(20), None);
        assert_eq!(Nice::default().steps(), 10);
    }
}
