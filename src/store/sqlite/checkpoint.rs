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

use std::ffi::c_int;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// Log pages after which a checkpoint is asked for: SQLite's own threshold for its
/// automatic one.
pub(super) const PAGES: c_int = 1000;

/// Starts the checkpoint thread for the database at `path` and hooks `writer`'s commits
/// to it (which also turns off the writer's automatic checkpoint: SQLite keeps one WAL
/// hook per connection, and the automatic checkpoint is that hook). The thread stops when
/// `writer` is closed. Each checkpoint first takes `hold`: whoever holds it keeps
/// checkpoints from running (the tests do, to show the writer never runs one itself).
pub(super) fn start(
    path: &Path,
    writer: &mut Connection,
    hold: Arc<Mutex<()>>,
) -> Result<(), String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    // The checkpoint syncs the log before copying it and the database after: FULL,
    // like the writer, so that a checkpointed page is as durable as a committed one.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    // One wake-up waiting is enough: it stands for every commit since.
    let (wake, woken) = mpsc::sync_channel::<()>(1);
    writer
        .wal_hook(Some(move |_: &mut Wal, pages: c_int| {
            if pages >= PAGES {
                let _ = wake.try_send(());
            }
            Ok(())
        }))
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let _held = hold
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                checkpoint(&conn);
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Copies as much of the log into the database as no reader still needs, without waiting
/// for anyone (`PASSIVE`); the writer starts the log over once all of it is copied.
fn checkpoint(conn: &Connection) {
    let done = conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match done {
        Ok((log, copied)) => tracing::trace!(log, copied, "WAL checkpoint"),
        Err(e) => tracing::warn!(
            error = %e,
            database = ?conn.path().unwrap_or_default(),
            "WAL checkpoint failed; the log grows until one works (deliveries are not affected)"
        ),
    }
}
