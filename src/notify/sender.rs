//! The task that empties the outbox: it takes the rows that are due (one per lane, so
//! each lane's rows go in order), sends each on a blocking thread, and records how it
//! went: sent, retried later (backoff, `Retry-After`), or given up on. The deploy queue
//! never waits for it; a row it has not finished is pending in the store, and sent after
//! a restart.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, Semaphore, watch};

use super::deliver::{self, Target};
use super::retry::{self, Verdict};
use crate::config::{Config, LiveConfig};
use crate::http_client::Client;
use crate::metrics::Metrics;
use crate::store::{Attempt, Job, Outgoing, Store};

/// Rows sent at once (each on a blocking thread).
const IN_FLIGHT: usize = 8;

/// How often the outbox is looked at when nothing wakes the sender (retries come due).
const POLL: Duration = Duration::from_secs(1);

/// At shutdown, how long rows that are due may still be sent.
const FLUSH: Duration = Duration::from_secs(5);

/// The outbox's sender; cheap to clone.
#[derive(Clone)]
pub struct Notifier(Arc<Inner>);

struct Inner {
    store: Store,
    config: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    /// Lanes with a row being sent.
    busy: Mutex<HashSet<String>>,
    /// Targets that answered 410 Gone, until the config is reloaded (the config they
    /// were disabled under is kept to tell).
    gone: Mutex<(Option<Arc<Config>>, HashSet<String>)>,
    clients: Mutex<HashMap<(Duration, Option<PathBuf>), Client>>,
    /// Rung when a row is done, so that the next one of its lane goes at once.
    done: Notify,
    /// The status-link key, read from the store once.
    link_key: tokio::sync::OnceCell<Vec<u8>>,
}

impl Notifier {
    pub fn new(store: Store, config: Arc<LiveConfig>, metrics: Arc<Metrics>) -> Notifier {
        Notifier(Arc::new(Inner {
            store,
            config,
            metrics,
            busy: Mutex::new(HashSet::new()),
            gone: Mutex::new((None, HashSet::new())),
            clients: Mutex::new(HashMap::new()),
            done: Notify::new(),
            link_key: tokio::sync::OnceCell::new(),
        }))
    }

    /// Sends rows until `stop` turns true, then for at most [`FLUSH`] more.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut changed = self.0.store.changed();
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        loop {
            self.start_due(&slots).await;
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = changed.changed() => {}
                () = self.0.done.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        let deadline = tokio::time::Instant::now() + FLUSH;
        while tokio::time::Instant::now() < deadline {
            let started = self.start_due(&slots).await;
            let idle = slots.available_permits() == IN_FLIGHT;
            if started == 0 && idle {
                break;
            }
            tokio::select! {
                () = self.0.done.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Starts sending the rows that are due and whose lanes are free; returns how many.
    async fn start_due(&self, slots: &Arc<Semaphore>) -> usize {
        let free = slots.available_permits();
        if free == 0 {
            return 0;
        }
        let busy: Vec<String> = lock(&self.0.busy).iter().cloned().collect();
        let due = match self.0.store.outbox_due(SystemTime::now(), busy, free).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                return 0;
            }
        };
        let mut started = 0;
        for item in due {
            let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                break;
            };
            if !lock(&self.0.busy).insert(item.lane.clone()) {
                continue;
            }
            started += 1;
            let me = self.clone();
            tokio::spawn(async move {
                let lane = item.lane.clone();
                me.send(item).await;
                lock(&me.0.busy).remove(&lane);
                drop(permit);
                me.0.done.notify_one();
            });
        }
        started
    }

    /// One attempt at `item`, recorded.
    async fn send(&self, item: Outgoing) {
        let w = &self.0;
        let config = w.config.get();
        let job = match w.store.get(item.job).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                self.record(
                    &item,
                    "?",
                    Attempt::Failed {
                        error: format!("job {} is no longer recorded", item.job),
                    },
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job of an outbox row");
                return;
            }
        };
        let Some(target) = Target::find(&config, &job.hook, &item.target) else {
            let error = format!(
                "{} is no longer configured for hook {}",
                item.target, job.hook
            );
            self.record(&item, "?", Attempt::Failed { error }).await;
            return;
        };
        let kind = target.kind();
        if self.is_gone(&config, &item.target) {
            let error = format!(
                "{} answered 410 Gone before; it is disabled until the config is reloaded",
                item.target
            );
            self.record(&item, kind, Attempt::Failed { error }).await;
            return;
        }
        let client = match self.client(target.sending()) {
            Ok(c) => c,
            Err(error) => {
                self.record(&item, kind, Attempt::Failed { error }).await;
                return;
            }
        };
        let link = self.link(&config, &job).await;
        let give_up_after = target.sending().give_up_after;
        let (blocking_item, blocking_job, blocking_config) =
            (item.clone(), job.clone(), Arc::clone(&config));
        let outcome = tokio::task::spawn_blocking(move || {
            let target = Target::find(&blocking_config, &blocking_job.hook, &blocking_item.target)
                .expect("found above, in the same config");
            deliver::attempt(
                &client,
                &target,
                &blocking_item,
                &blocking_job,
                link.as_deref(),
            )
        })
        .await;
        let Ok(outcome) = outcome else {
            tracing::error!(target = %item.target, job = item.job.0, "sending a notification panicked");
            return;
        };
        let attempt = match outcome.verdict {
            Verdict::Sent => Attempt::Sent { memo: outcome.memo },
            Verdict::Failed { error } => Attempt::Failed { error },
            Verdict::Gone { error } => {
                self.disable(&config, &item.target);
                tracing::warn!(target = %item.target, "the target answered 410 Gone: disabled until the config is reloaded");
                Attempt::Failed { error }
            }
            Verdict::Retry { wait, error } => {
                let schedule = retry::backoff(item.attempts + 1, retry::jitter());
                let at = SystemTime::now() + wait.map_or(schedule, |w| w.max(schedule));
                if at > item.created_at + give_up_after {
                    Attempt::Failed {
                        error: format!(
                            "gave up after {} attempts over {}: {error}",
                            item.attempts + 1,
                            deliver::human(give_up_after)
                        ),
                    }
                } else {
                    Attempt::Retry {
                        at,
                        error,
                        memo: outcome.memo,
                    }
                }
            }
        };
        self.record(&item, kind, attempt).await;
    }

    async fn record(&self, item: &Outgoing, kind: &str, attempt: Attempt) {
        let w = &self.0;
        match &attempt {
            Attempt::Sent { .. } => {
                w.metrics.notification(&item.target, kind, true);
                tracing::debug!(target = %item.target, job = item.job.0, event = %item.event.kind, "sent");
            }
            Attempt::Retry { at, error, .. } => {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                tracing::warn!(target = %item.target, job = item.job.0, event = %item.event.kind, attempt = item.attempts + 1, retry_in = ?wait, error = %error, "not sent yet; will try again");
            }
            Attempt::Failed { error } => {
                w.metrics.notification(&item.target, kind, false);
                tracing::error!(target = %item.target, job = item.job.0, event = %item.event.kind, error = %error, "not sent; given up");
            }
        }
        // The row must not stay pending after it was sent (it would be sent again, which
        // at-least-once allows, but not forever): try a few times.
        for wait in [0, 200, 1_000, 5_000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match w.store.outbox_attempt(item.id, attempt.clone()).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "cannot record a notification attempt"),
            }
        }
    }

    fn client(&self, sending: &crate::config::Sending) -> Result<Client, String> {
        let key = (sending.timeout, sending.ca_file.clone());
        let mut clients = lock(&self.0.clients);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = deliver::client_for(sending)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// The page that shows `job`, when `public_url` is set: the status link of the
    /// delivery that queued it (readable without a token), else its API record.
    async fn link(&self, config: &Config, job: &Job) -> Option<String> {
        let base = config.server.public_url.as_deref()?;
        if let Some(d) = &job.delivery {
            let key = self
                .0
                .link_key
                .get_or_try_init(|| self.0.store.secret(crate::status_link::KEY_NAME.to_owned()))
                .await
                .ok()?;
            return Some(format!(
                "{base}{}",
                crate::status_link::path(key, &job.hook, d.as_str())
            ));
        }
        Some(format!("{base}/api/jobs/{}", job.id))
    }

    fn is_gone(&self, config: &Arc<Config>, target: &str) -> bool {
        self.gone_under(config, |gone| gone.contains(target))
    }

    fn disable(&self, config: &Arc<Config>, target: &str) {
        self.gone_under(config, |gone| gone.insert(target.to_owned()));
    }

    /// The targets that answered 410 under `config`: a reload (another config) forgets
    /// them.
    fn gone_under<T>(&self, config: &Arc<Config>, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        let mut gone = lock(&self.0.gone);
        if !gone.0.as_ref().is_some_and(|c| Arc::ptr_eq(c, config)) {
            *gone = (Some(Arc::clone(config)), HashSet::new());
        }
        f(&mut gone.1)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
