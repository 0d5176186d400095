//! Re-reading hooks.toml while running: on SIGHUP, on `POST /api/reload`, and (with
//! `server.watch_config`) when the file changes, also when it is replaced rather than
//! rewritten (git checkouts and editors unlink and recreate it, so its inode is watched
//! along with its size and mtime). A valid file takes effect for new deliveries; an
//! invalid one is refused, logged as `file:line:column`, counted, and the old config
//! keeps serving. The TLS certificate is re-read too.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Invalid, LiveConfig};
use crate::metrics::Metrics;
use crate::sd_notify;
use crate::tls::{self, ReloadableCert};

/// How often a watched config file is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

pub struct Reloader {
    config: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    cert: Option<Arc<ReloadableCert>>,
    /// Serializes reloads, so two triggers at once do not interleave.
    lock: std::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(
        config: Arc<LiveConfig>,
        metrics: Arc<Metrics>,
        cert: Option<Arc<ReloadableCert>>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            config,
            metrics,
            cert,
            lock: std::sync::Mutex::new(()),
        })
    }

    /// Reloads now; `cause` is for the log line.
    pub fn reload(&self, cause: &str) -> Result<(), Invalid> {
        let _one_at_a_time = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = sd_notify::reloading();
        let result = self.config.reload();
        match &result {
            Ok(warnings) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                self.reload_cert();
                self.metrics.config_reload(true);
                let hooks = self.config.get().hooks.len();
                tracing::info!(cause, hooks, "config reloaded");
            }
            Err(invalid) => {
                for d in &invalid.diagnostics {
                    tracing::error!("{d}");
                }
                self.metrics.config_reload(false);
                tracing::error!(
                    cause,
                    "config reload refused; the previous config keeps serving"
                );
            }
        }
        let _ = sd_notify::notify("READY=1");
        result.map(|_| ())
    }

    fn reload_cert(&self) {
        let (Some(cert), Some(tls)) = (&self.cert, self.config.get().server.tls.clone()) else {
            return;
        };
        match tls::load(&tls) {
            Ok(key) => cert.replace(key),
            Err(e) => {
                tracing::error!("TLS certificate not reloaded, the previous one is served: {e}");
            }
        }
    }

    /// Reloads on every SIGHUP, until the process ends.
    pub async fn on_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload with POST /api/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let me = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || me.reload("SIGHUP")).await;
        }
    }

    /// With `watch_config`, reloads when the file's inode, size or mtime changes.
    pub async fn watch_file(self: Arc<Self>) {
        let path = self.config.path().to_path_buf();
        let stamp = |p: &std::path::Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
        };
        let mut last = stamp(&path);
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if !self.config.get().server.watch_config {
                last = stamp(&path);
                continue;
            }
            let now = stamp(&path);
            // A file that is gone for a moment (mid-replace) is not a change yet.
            if now.is_some() && now != last {
                last = now;
                let me = Arc::clone(&self);
                let _ = tokio::task::spawn_blocking(move || me.reload("the file changed")).await;
            }
        }
    }
}
