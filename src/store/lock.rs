//! One daemon per `state_dir`: a lock on `state_dir/lock`, held for as long as the store's
//! writer runs (the process's life, in the daemon). A second `serve` on the same
//! directory would otherwise start, mark the first one's running job `interrupted` and
//! race it for the queue; instead it refuses to start and says which process holds it.
//! The kernel drops the lock when its holder dies, however it dies.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::StoreError;

/// Held while it lives.
pub(super) struct StateLock(#[expect(dead_code, reason = "held, never read")] Flock<File>);

/// In this process, how long to wait for a store being closed to let go (a restart
/// within one process: tests, or a future in-process reload).
const SAME_PROCESS_WAIT: Duration = Duration::from_secs(5);

/// Takes the lock of `state_dir` and writes this process's pid into it.
pub(super) fn acquire(state_dir: &Path) -> Result<StateLock, StoreError> {
    let path = state_dir.join("lock");
    let open_err = |reason: String| StoreError::Open {
        path: path.clone(),
        reason,
    };
    let started = Instant::now();
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| open_err(e.to_string()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let me = std::process::id().to_string();
                locked
                    .set_len(0)
                    .and_then(|()| locked.rewind())
                    .and_then(|()| locked.write_all(me.as_bytes()))
                    .map_err(|e| open_err(e.to_string()))?;
                return Ok(StateLock(locked));
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_owned();
                let ours = holder == std::process::id().to_string();
                if ours && started.elapsed() < SAME_PROCESS_WAIT {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                return Err(StoreError::InUse {
                    dir: state_dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another process".to_owned()
                    } else {
                        format!("process {holder}")
                    },
                });
            }
            Err((_, e)) => return Err(open_err(format!("cannot lock it: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join("lock")).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        // From this process it waits for the first to be dropped.
        let waiter = {
            let dir = dir.path().to_owned();
            std::thread::spawn(move || acquire(&dir).map(drop))
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        waiter.join().unwrap().unwrap();
    }
}
