//! `deployhook trigger`: a CI job's deploy in one line. Sends a signed generic push
//! (Standard Webhooks), retrying a network error, a 429 (after its `Retry-After`) or a 5xx
//! under the same `webhook-id`, so a retry is never a second deploy; with `--wait`, follows
//! the delivery's jobs through the `status_url` of the answer (no API token needed) until
//! they end, and exits with a code that says how they ended. The secret is only ever used
//! to sign.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::event::Forge;
use crate::http_client::{Answer, Client, ClientError};
use crate::secret::Secret;

/// How `trigger` ends, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Accepted (and, with `--wait`, every job succeeded).
    Succeeded = 0,
    /// Not sent, or refused (a 4xx, a network error after every retry, bad arguments).
    Error = 1,
    /// A job failed.
    Failed = 3,
    /// A job ran longer than its rule's timeout.
    TimedOut = 4,
    /// A job was cancelled, superseded by a newer push, or interrupted.
    Stopped = 5,
    /// The daemon accepted the push but no rule matched it: nothing deploys.
    NothingMatched = 6,
    /// `--timeout` passed before every job ended.
    StillRunning = 7,
}

/// What to send, and whether to wait.
pub struct Trigger {
    /// The daemon's base URL (`https://deploy.example.com`).
    pub url: String,
    pub hook: String,
    pub secret: Secret,
    pub repository: String,
    pub git_ref: String,
    pub sha: String,
    pub before: Option<String>,
    pub pusher: Option<String>,
    pub paths: Option<Vec<String>>,
    /// Follow the jobs for at most this long.
    pub wait: Option<Duration>,
    pub verbose: bool,
}

/// Attempts to send the push in all; the waits between them double from one second.
const ATTEMPTS: u32 = 6;

/// How often `--wait` asks how the jobs are doing.
const POLL: Duration = Duration::from_secs(2);

/// One request's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Trigger {
    /// Sends the push, waits if asked, and says how it went on `out` (and what went
    /// wrong on `err`).
    pub fn run(&self, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
        let client = Client::new(REQUEST_TIMEOUT);
        let Some(answer) = self.send(&client, err) else {
            return Exit::Error;
        };
        let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if answer.status >= 400 {
            let message = v["error"].as_str().unwrap_or(&answer.body);
            let _ = writeln!(
                err,
                "deployhook: the daemon answered {}: {message}",
                answer.status
            );
            return Exit::Error;
        }
        let status = v["status"].as_str().unwrap_or("");
        match status {
            "queued" => {
                for j in v["jobs"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "queued job {} for {} at {} (rule {})",
                        j["id"],
                        j["ref"].as_str().unwrap_or(""),
                        j["sha"].as_str().unwrap_or(""),
                        j["rule"]
                    );
                }
            }
            "duplicate" => {
                let _ = writeln!(out, "{}", v["reason"].as_str().unwrap_or("duplicate"));
            }
            "ignored" => {
                let _ = writeln!(
                    out,
                    "nothing to deploy: {}",
                    v["reason"].as_str().unwrap_or("")
                );
                return Exit::NothingMatched;
            }
            other => {
                let _ = writeln!(
                    err,
                    "deployhook: unexpected answer {other:?}: {}",
                    answer.body
                );
                return Exit::Error;
            }
        }
        let link = v["status_url"].as_str();
        if let Some(l) = link {
            let _ = writeln!(out, "status: {l}");
        }
        let Some(limit) = self.wait else {
            return Exit::Succeeded;
        };
        let Some(link) = link else {
            let _ = writeln!(err, "deployhook: the answer has no status_url to wait on");
            return Exit::Error;
        };
        wait(&client, link, limit, self.verbose, out, err)
    }

    fn body(&self) -> Vec<u8> {
        let mut body = serde_json::json!({
            "repository": self.repository,
            "ref": self.git_ref,
            "before": self.before.clone().unwrap_or_else(|| "0".repeat(self.sha.len())),
            "after": self.sha,
        });
        if let Some(p) = &self.pusher {
            body["pusher"] = Value::from(p.as_str());
        }
        if let Some(paths) = &self.paths {
            body["paths"] = Value::from(paths.clone());
        }
        body.to_string().into_bytes()
    }

    /// Posts the push until it is answered below 500, or the attempts run out.
    fn send(&self, client: &Client, err: &mut dyn Write) -> Option<Answer> {
        let body = self.body();
        let delivery = new_delivery_id();
        let url = format!("{}/hooks/{}", self.url.trim_end_matches('/'), self.hook);
        let secret = String::from_utf8_lossy(self.secret.expose()).into_owned();
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let headers =
                match crate::sign::push_headers(Forge::Generic, &secret, &body, &delivery, now) {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = writeln!(err, "deployhook: cannot sign: {e}");
                        return None;
                    }
                };
            if self.verbose {
                let _ = writeln!(err, "POST {url} (delivery {delivery}, attempt {attempt})");
            }
            let why = match client.post(&url, &headers, &body) {
                // 429: the hook's queue is full; worth waiting for, as the daemon says.
                Ok(a) if a.status < 500 && a.status != 429 => return Some(a),
                Ok(a) => {
                    if let Some(secs) = a.retry_after {
                        backoff = backoff.max(Duration::from_secs(secs.min(300)));
                    }
                    format!("the daemon answered {}: {}", a.status, a.body.trim())
                }
                Err(ClientError::BadUrl(u)) => {
                    let _ = writeln!(
                        err,
                        "deployhook: --url {u:?} must start with http:// or https://"
                    );
                    return None;
                }
                Err(ClientError::Transport(e)) => e,
            };
            if attempt == ATTEMPTS {
                let _ = writeln!(
                    err,
                    "deployhook: giving up after {ATTEMPTS} attempts: {why}"
                );
                return None;
            }
            let _ = writeln!(
                err,
                "deployhook: {why}; trying again in {}s",
                backoff.as_secs()
            );
            std::thread::sleep(backoff);
            backoff *= 2;
        }
        None
    }
}

/// Follows a status link until every job has ended (or `limit` passes), printing each
/// job's end once.
fn wait(
    client: &Client,
    link: &str,
    limit: Duration,
    verbose: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    let deadline = Instant::now() + limit;
    let mut told = std::collections::HashSet::new();
    let mut worst = Exit::Succeeded;
    loop {
        match client.get(link, &[]) {
            Ok(a) if a.status == 200 => {
                let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
                for j in v["jobs"].as_array().into_iter().flatten() {
                    let state = j["state"].as_str().unwrap_or("");
                    if matches!(state, "queued" | "running") || !told.insert(j["id"].to_string()) {
                        continue;
                    }
                    let _ = writeln!(
                        out,
                        "job {} {state}: {}",
                        j["id"],
                        j["reason"].as_str().unwrap_or("")
                    );
                    worst = worst.max_with(state);
                }
                if v["done"].as_bool() == Some(true) {
                    return worst;
                }
            }
            Ok(a) if a.status < 500 => {
                let _ = writeln!(
                    err,
                    "deployhook: the status link answered {}: {}",
                    a.status,
                    a.body.trim()
                );
                return Exit::Error;
            }
            Ok(a) => {
                if verbose {
                    let _ = writeln!(err, "status link answered {}; asking again", a.status);
                }
            }
            Err(e) => {
                if verbose {
                    let _ = writeln!(err, "status link: {e}; asking again");
                }
            }
        }
        if Instant::now() + POLL > deadline {
            let _ = writeln!(err, "deployhook: still not done after {limit:?}: {link}");
            return Exit::StillRunning;
        }
        std::thread::sleep(POLL);
    }
}

impl Exit {
    /// The worse of `self` and how a job that ended in `state` ends the run.
    #[must_use]
    pub fn max_with(self, state: &str) -> Exit {
        let this = match state {
            "succeeded" => Exit::Succeeded,
            "failed" => Exit::Failed,
            "timed_out" => Exit::TimedOut,
            _ => Exit::Stopped,
        };
        // Failed beats timed out beats stopped beats succeeded.
        let rank = |e: Exit| match e {
            Exit::Failed => 3,
            Exit::TimedOut => 2,
            Exit::Stopped => 1,
            _ => 0,
        };
        if rank(this) > rank(self) { this } else { self }
    }
}

/// `trigger_` and 128 random bits, as hex.
fn new_delivery_id() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if random.is_err() {
        // No /dev/urandom: time and pid still make the id unique to this run.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    format!("trigger_{}", crate::verify::to_hex(&bytes))
}
