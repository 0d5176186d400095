//! What the rest of the daemon may ask of the worker: wake up (a job was queued) and
//! stop a running job at once (a cancel already recorded in the store, which the job's
//! heartbeat would otherwise notice a few seconds later). Cheap to clone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use crate::store::JobId;

#[derive(Clone, Default)]
pub struct WorkerHandle {
    wake: Arc<Notify>,
    /// Cancel switches of the jobs running now.
    running: Arc<Mutex<HashMap<JobId, watch::Sender<bool>>>>,
    /// The daemon is stopping: a job stopped now is interrupted, not cancelled.
    stopping: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// Tells the worker that a job may be runnable now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks a running job to stop; `false` if this process is not running it.
    pub fn cancel(&self, id: JobId) -> bool {
        let running = self.running.lock().expect("cancel switches lock");
        running.get(&id).is_some_and(|tx| tx.send(true).is_ok())
    }

    pub(super) fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The daemon is stopping (long-lived answers, like event streams, end then).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Asks every running job to stop (the daemon is stopping).
    pub(super) fn cancel_all(&self) {
        for tx in self.running.lock().expect("cancel switches lock").values() {
            let _ = tx.send(true);
        }
    }

    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Registers a job as running; the receiver turns true when it should stop.
    pub(super) fn start(&self, id: JobId) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        self.running
            .lock()
            .expect("cancel switches lock")
            .insert(id, tx);
        rx
    }

    pub(super) fn done(&self, id: JobId) {
        self.running
            .lock()
            .expect("cancel switches lock")
            .remove(&id);
    }

    pub(super) fn running_count(&self) -> usize {
        self.running.lock().expect("cancel switches lock").len()
    }
}
