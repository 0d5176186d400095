//! Finding and signalling processes through `/proc`, and reaping the orphans the daemon
//! adopts as a child subreaper. cgroups are not assumed: the process tree is read from
//! `/proc/<pid>/stat` (parent, state, session).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// One line of the process table: what `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `D`, `Z`, `T`, ...
    pub state: u8,
    pub session: i32,
}

impl ProcInfo {
    pub fn is_zombie(&self) -> bool {
        self.state == b'Z'
    }
}

/// Parses the content of `/proc/<pid>/stat`. The command name is in parentheses and may
/// itself contain spaces and parentheses, so the fields are read after the *last* `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<ProcInfo> {
    let (head, tail) = stat.rsplit_once(')')?;
    let pid = head.split_once(' ')?.0.trim().parse().ok()?;
    let mut fields = tail.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let parent = fields.next()?.parse().ok()?;
    let _pgrp = fields.next()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcInfo {
        pid,
        ppid: parent,
        state,
        session,
    })
}

/// Every process visible in `/proc` right now. Processes that vanish while being read
/// are skipped.
pub(crate) fn process_table() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let name = entry.ok()?.file_name();
        let pid: i32 = name.to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&stat)
    })
    .collect()
}

/// The processes below `root` in `table` (children, their children, ...), not `root`.
pub(crate) fn descendants(table: &[ProcInfo], root: i32) -> Vec<ProcInfo> {
    let mut children: HashMap<i32, Vec<&ProcInfo>> = HashMap::new();
    for p in table {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child.pid) {
                found.push(**child);
                queue.push(child.pid);
            }
        }
    }
    found
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn signal(pid: i32, signal: Signal) {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::debug!(pid, %e, "cannot send {signal}"),
    }
}

/// SIGKILLs every live process of session `sid`: the backstop for a supervisor that had
/// to be killed itself, whose command tree is then orphaned. (Processes that left the
/// session with `setsid` are out of reach here; the supervisor normally catches them.)
pub(crate) fn kill_session(sid: i32) {
    for p in process_table() {
        if p.session == sid && !p.is_zombie() {
            signal(p.pid, Signal::SIGKILL);
        }
    }
}

/// Set once the daemon is a child subreaper ([`start_reaper`]'s caller made it one):
/// only then do a dead supervisor's orphans come back to this process.
static SUBREAPER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long [`kill_strays`] keeps at it before it gives up on processes that survive
/// SIGKILL (uninterruptible sleep).
const STRAYS_GIVE_UP: Duration = Duration::from_secs(5);

/// Kills every process of a job whose supervisor is gone: as a child subreaper, the
/// daemon adopts whatever a dead supervisor left, so every child of ours that is not a
/// live supervisor (the runner spawns nothing else) is such a stray, and so is everything
/// below it, whatever sessions or process groups it made. Killed with SIGKILL until none
/// is left; returns how many were signalled. Does nothing in a process that is not a
/// subreaper (a test binary), where strays went to init instead.
pub(crate) fn kill_strays() -> usize {
    if !SUBREAPER.load(std::sync::atomic::Ordering::Relaxed) {
        return 0;
    }
    let Ok(me) = i32::try_from(std::process::id()) else {
        return 0;
    };
    let started = std::time::Instant::now();
    let mut signalled = HashSet::new();
    loop {
        let alive: Vec<i32> = {
            // Held while reading the table, so that a supervisor being spawned now is
            // either registered or not yet our child.
            let spawned = lock_spawned();
            let table = process_table();
            table
                .iter()
                .filter(|p| p.ppid == me && !spawned.contains(&p.pid))
                .flat_map(|stray| {
                    let below = descendants(&table, stray.pid);
                    std::iter::once(*stray).chain(below)
                })
                .filter(|p| !p.is_zombie())
                .map(|p| p.pid)
                .collect()
        };
        if alive.is_empty() || started.elapsed() > STRAYS_GIVE_UP {
            if !alive.is_empty() {
                tracing::error!(?alive, "processes of a job survive SIGKILL");
            }
            return signalled.len();
        }
        for pid in alive {
            signal(pid, Signal::SIGKILL);
            signalled.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of the supervisors the runner has spawned and that tokio is still waiting
/// for. The orphan reaper must never reap these, or tokio would lose their exit status.
/// A list rather than a set: in theory a pid could be reused before its entry is removed.
static SPAWNED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Holds the registry locked: spawn while holding it, so that the reaper cannot see the
/// new child as an unknown zombie before its pid is registered.
pub(crate) fn lock_spawned() -> MutexGuard<'static, Vec<i32>> {
    SPAWNED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forgets a pid registered in [`lock_spawned`]'s list once tokio has reaped it.
pub(crate) fn unregister(pid: i32) {
    let mut spawned = lock_spawned();
    if let Some(i) = spawned.iter().position(|&p| p == pid) {
        spawned.swap_remove(i);
    }
}

/// How often the daemon looks for adopted orphans to reap. A zombie costs only a pid
/// slot, so a slow, cheap scan is enough.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Reaps, once, every zombie child of this process that the runner did not spawn: those
/// are orphans re-parented to us because we are a child subreaper. Returns how many.
pub(crate) fn reap_orphans() -> usize {
    let me = std::process::id();
    let Ok(me) = i32::try_from(me) else { return 0 };
    let spawned = lock_spawned();
    let mut reaped = 0;
    for p in process_table() {
        if p.ppid == me
            && p.is_zombie()
            && !spawned.contains(&p.pid)
            && let Ok(status) = waitpid(Pid::from_raw(p.pid), Some(WaitPidFlag::WNOHANG))
        {
            tracing::debug!(pid = p.pid, ?status, "reaped an orphaned process");
            reaped += 1;
        }
    }
    reaped
}

/// Starts the thread that reaps adopted orphans, once per process; called once this
/// process is a child subreaper.
pub(crate) fn start_reaper() -> std::io::Result<()> {
    static STARTED: Mutex<bool> = Mutex::new(false);
    SUBREAPER.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if !*started {
        std::thread::Builder::new()
            .name("deployhook-reaper".into())
            .spawn(|| {
                loop {
                    reap_orphans();
                    std::thread::sleep(REAP_EVERY);
                }
            })?;
        *started = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let p = parse_stat("42 (a b) c)) S 7 42 40 0 -1 4194560 120").unwrap();
        assert_eq!(
            p,
            ProcInfo {
                pid: 42,
                ppid: 7,
                state: b'S',
                session: 40
            }
        );
        assert!(parse_stat("garbage").is_none());
        let z = parse_stat("9 (sleep) Z 1 9 9 0").unwrap();
        assert!(z.is_zombie());
    }

    #[test]
    fn descendants_follow_the_tree() {
        let p = |pid, ppid| ProcInfo {
            pid,
            ppid,
            state: b'S',
            session: 1,
        };
        let table = [p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(20, 1), p(13, 10)];
        let mut found: Vec<i32> = descendants(&table, 10).iter().map(|p| p.pid).collect();
        found.sort_unstable();
        assert_eq!(found, [11, 12, 13]);
        assert!(descendants(&table, 12).is_empty());
    }

    #[test]
    fn this_process_is_in_the_table() {
        let me = i32::try_from(std::process::id()).unwrap();
        let table = process_table();
        let entry = table.iter().find(|p| p.pid == me).unwrap();
        assert!(!entry.is_zombie());
    }
}
