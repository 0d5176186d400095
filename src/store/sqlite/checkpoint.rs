//! WAL checkpoints, on a thread of their own (`store-checkpoint`), so that the writer
//! thread every delivery waits for never copies the log back into the database.
//!
//! SQLite's automatic checkpoint runs inside the commit that fills the log past its
//! threshold: that commit (and every delivery queued behind it) waited for a thousand
//! pages to be copied and the database file synced, several milliseconds, every hundred
//! or so deliveries. Here the writer's connection has no automatic checkpoint; a hook on
//! it wakes this thread once the log holds [`PAGES`], and this thread runs a `PASSIVE`
//! checkpoint on a connection of its own while the writer goes on committing (WAL mode
//! allows both at once). Nothing about durability changes: a commit is on disk (in the
//! log, synced) before its caller hears back, checkpointed or not.
//!
//! The log starts over only when the writer *begins* a transaction with all of it
//! copied. A pass that the writer overtakes (a transaction begun while it copied) leaves
//! the log unfinished, so that commit finds it still past the threshold and wakes
//! another pass, which copies one commit's pages and syncs the database again, while the
//! next transaction overtakes it in turn: at 1,000 deliveries/s that was a pass every
//! seven or eight commits, a checkpoint running a tenth of the time, and the deliveries
//! committed meanwhile took three times as long (their fsync behind the database's). So
//! after each pass this thread takes the [`Gate`] the writer holds for each transaction
//! (waiting, at most, for the one in progress) and looks at the log's length: if the
//! writer committed past what the pass copied, it copies the rest while the writer waits,
//! and the writer's next transaction starts the log over. A reader's old snapshot can
//! keep even that pass from catching up; then no pass holds the writer again until the
//! log has grown by another [`PAGES`].

use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Log pages after which a checkpoint is asked for: SQLite's own threshold for its
/// automatic one.
pub(super) const PAGES: c_int = 1000;

/// What the writer holds for each transaction, and the checkpoint thread holds to see
/// the log between two of them (and, if it must, to copy the rest of it).
#[derive(Clone, Default)]
pub(super) struct Gate(Arc<Mutex<()>>);

impl Gate {
    /// Waits for a catching-up pass, if one is running; held, none starts.
    pub(super) fn enter(&self) -> MutexGuard<'_, ()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the checkpoint thread for the database at `path` and hooks `writer`'s commits
/// to it (which also turns off the writer's automatic checkpoint: SQLite keeps one WAL
/// hook per connection, and the automatic checkpoint is that hook). The thread stops when
/// `writer` is closed. Each checkpoint first takes `hold`: whoever holds it keeps
/// checkpoints from running (the tests do, to show the writer never runs one itself).
/// The writer takes the returned [`Gate`] for each of its transactions.
pub(super) fn start(
    path: &Path,
    writer: &mut Connection,
    hold: Arc<Mutex<()>>,
) -> Result<Gate, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    // The checkpoint syncs the log before copying it and the database after: FULL,
    // like the writer, so that a checkpointed page is as durable as a committed one.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    // One wake-up waiting is enough: it stands for every commit since.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    // The log's length after the writer's last commit: a pass's own figures stop where
    // it began.
    let committed = Arc::new(AtomicI32::new(0));
    let log_now = Arc::clone(&committed);
    writer
        .wal_hook(Some(move |_: &mut Wal, pages: c_int| {
            log_now.store(pages, Ordering::Release);
            if pages >= PAGES {
                let _ = wake.try_send(());
            }
            Ok(())
        }))
        .map_err(|e| e.to_string())?;
    let gate = Gate::default();
    let writer_out = gate.clone();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            // The log's length when a catching-up pass last failed to catch up.
            let mut stuck_at: Option<i64> = None;
            while woken.recv().is_ok() {
                let _held = hold.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(pass) = checkpoint(&conn) else {
                    continue;
                };
                if stuck_at.is_some_and(|at| pass.log < at) {
                    stuck_at = None; // the log started over since
                }
                if stuck_at.is_none_or(|at| pass.log >= at + i64::from(PAGES)) {
                    // Between two of the writer's transactions, the log's length is the
                    // last commit's.
                    let _writer_out = writer_out.enter();
                    if i64::from(committed.load(Ordering::Acquire)) > pass.copied {
                        stuck_at = checkpoint(&conn).filter(Pass::behind).map(|p| p.log);
                    }
                }
                // Wake-ups sent meanwhile were for commits these passes copied.
                while woken.try_recv().is_ok() {}
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(gate)
}

/// What one checkpoint pass found, in log frames.
#[derive(Clone, Copy)]
struct Pass {
    log: i64,
    copied: i64,
}

impl Pass {
    /// A reader still needs the end of the log it found.
    fn behind(&self) -> bool {
        self.copied < self.log
    }
}

/// Copies as much of the log into the database as no reader still needs, without waiting
/// for anyone (`PASSIVE`); the writer starts the log over once all of it is copied.
fn checkpoint(conn: &Connection) -> Option<Pass> {
    let done = conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Pass {
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    });
    match done {
        Ok(pass) => {
            tracing::trace!(log = pass.log, copied = pass.copied, "WAL checkpoint");
            Some(pass)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                database = ?conn.path().unwrap_or_default(),
                "WAL checkpoint failed; the log grows until one works (deliveries are not affected)"
            );
            None
        }
    }
}
