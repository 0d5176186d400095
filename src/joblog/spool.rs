//! Copying a running job's log into the store, for a store several replicas share: the
//! runner writes the log to a local spool file as always (`state_dir/log-spool/`), and a
//! task per running job appends what is new to the store every [`EVERY`], so that any
//! replica streams it live. When the job's commands are done the rest is copied and the
//! spool file removed; deployhook's lines outside a run go to the store directly.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::oneshot;

use crate::store::{JobId, LogBook};

/// How often new output is copied into the store (how far behind a reader on another
/// replica is, at most, plus its own poll).
const EVERY: Duration = Duration::from_millis(200);

/// The most bytes one append sends.
const CHUNK: u64 = 256 << 10;

/// How long the rest of a finished job's log is retried while the store cannot write,
/// before it is given up (with a warning saying how much).
const GIVE_UP: Duration = Duration::from_secs(30);

/// The jobs whose logs are being copied from this replica's spool.
#[derive(Clone)]
pub(super) struct Spools {
    dir: PathBuf,
    book: Arc<dyn LogBook>,
    live: Arc<Mutex<HashMap<JobId, Live>>>,
}

struct Live {
    /// Said when the job's commands are done: copy the rest and stop.
    done: oneshot::Sender<()>,
    copier: tokio::task::JoinHandle<()>,
}

impl Spools {
    /// Spools in `dir`, which is emptied: files left there by a replica that died were
    /// copied up to its last round, and the job has been recovered since.
    pub(super) fn open(dir: PathBuf, book: Arc<dyn LogBook>) -> io::Result<Spools> {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "log") {
                tracing::warn!(spool = %path.display(), "removing a job log spool left by a stopped process; at most its last {}ms of output are missing from the store", EVERY.as_millis());
                std::fs::remove_file(&path)?;
            }
        }
        Ok(Spools {
            dir,
            book,
            live: Arc::default(),
        })
    }

    pub(super) fn book(&self) -> &Arc<dyn LogBook> {
        &self.book
    }

    /// The spool file of job `id`.
    pub(super) fn path(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{}.log", id.0))
    }

    /// Whether job `id`'s log is being written to its spool file now.
    pub(super) fn is_live(&self, id: JobId) -> bool {
        self.live.lock().expect("spools").contains_key(&id)
    }

    /// Starts copying job `id`'s spool file into the store (once).
    pub(super) fn start(&self, id: JobId) {
        let mut live = self.live.lock().expect("spools");
        if live.contains_key(&id) {
            return;
        }
        let (done, finished) = oneshot::channel();
        let copier = tokio::spawn(copy(Arc::clone(&self.book), self.path(id), id, finished));
        live.insert(id, Live { done, copier });
    }

    /// Copies the rest of job `id`'s spool into the store and removes the file; returns
    /// once that is done (or given up). Nothing, when its log is not being spooled.
    pub(super) async fn end(&self, id: JobId) {
        let Some(live) = self.live.lock().expect("spools").remove(&id) else {
            return;
        };
        let _ = live.done.send(());
        if let Err(e) = live.copier.await {
            tracing::warn!(job = id.0, "the job log copier failed: {e}");
        }
    }
}

/// Appends what is new in `path` to the store every [`EVERY`] until `done`, then the
/// rest, then removes the file.
async fn copy(book: Arc<dyn LogBook>, path: PathBuf, id: JobId, mut done: oneshot::Receiver<()>) {
    let mut copied = 0u64;
    let mut failing = false;
    loop {
        let last = tokio::select! {
            () = tokio::time::sleep(EVERY) => false,
            _ = &mut done => true,
        };
        if last {
            break;
        }
        match copy_new(&*book, &path, id, &mut copied).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    job = id.0,
                    "cannot copy the job log into the store (retrying): {e}"
                );
            }
            Err(_) => {}
        }
    }
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    loop {
        match copy_new(&*book, &path, id, &mut copied).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                let size = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
                tracing::warn!(
                    job = id.0,
                    "gave up copying the end of the job log into the store: {} bytes are missing there: {e}",
                    size.saturating_sub(copied)
                );
                break;
            }
            Err(_) => tokio::time::sleep(EVERY).await,
        }
    }
    if let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(spool = %path.display(), "cannot remove the job log spool: {e}");
    }
}

/// Appends everything past `copied` in `path` to the store, advancing `copied`.
async fn copy_new(
    book: &dyn LogBook,
    path: &Path,
    id: JobId,
    copied: &mut u64,
) -> Result<(), String> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    loop {
        let mut chunk = Vec::new();
        let read = async {
            f.seek(io::SeekFrom::Start(*copied)).await?;
            (&mut f).take(CHUNK).read_to_end(&mut chunk).await
        };
        read.await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len() as u64;
        book.append(id, chunk).await.map_err(|e| e.to_string())?;
        *copied += n;
    }
}
