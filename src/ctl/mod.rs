//! The CLI commands that talk to a running daemon through its API, over `http_client`
//! (plain HTTP or HTTPS): `jobs`, `show`, `deliveries`, `logs`, `cancel` here; the
//! operator controls (`deploy`, `rollback`, `redeploy`, `pause`, `resume`, `hooks`,
//! `reload`, `--wait`) in `manage`.

pub mod commands;
mod manage;

pub use manage::{DeployArgs, deploy, hooks, pause, redeploy, reload, resume, rollback, wait_for};

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::http_client::{Client, ClientError, Method, Stream};

/// How long the daemon may take to start answering.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon is and how to authenticate to it.
pub struct Target {
    /// `http://host:port` or `https://host:port`, without a trailing `/`.
    pub base: String,
    pub token: Option<String>,
    client: Client,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("--url must look like http://127.0.0.1:9000 or https://deploy.example.com")]
    BadUrl,
    #[error("cannot read the API token file {0}: {1}")]
    Token(String, std::io::Error),
    #[error("cannot reach the daemon at {0}: {1} (is `deployhook serve` running there?)")]
    Connect(String, String),
    #[error("the daemon's answer could not be read: {0}")]
    Protocol(String),
    /// The daemon answered with an error; its message says what to do.
    #[error("{status}: {message}")]
    Api { status: u16, message: String },
    /// `logs --follow` saw the job end in a state other than `succeeded`.
    #[error("job {job} ended {state}: {detail}")]
    JobEnded {
        job: u64,
        state: String,
        detail: String,
    },
    /// `--wait` saw the job end other than `succeeded` (or not end in time): the exit
    /// status says how (`trigger`'s codes).
    #[error("job {job} {state}: {detail}")]
    Waited {
        job: u64,
        state: String,
        detail: String,
        code: u8,
    },
}

impl CtlError {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Waited { code, .. } => *code,
            _ => 1,
        }
    }
}

impl Target {
    /// `token_file` must be readable when `required`; otherwise an unreadable one is
    /// skipped (the daemon's 401 then says where the token is).
    pub fn new(url: &str, token_file: Option<&Path>, required: bool) -> Result<Target, CtlError> {
        let base = url.trim_end_matches('/');
        let host = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or(CtlError::BadUrl)?;
        if host.is_empty() || host.contains('/') {
            return Err(CtlError::BadUrl);
        }
        let token = match token_file.map(|p| (p, std::fs::read_to_string(p))) {
            Some((_, Ok(t))) => Some(t.trim().to_owned()),
            Some((p, Err(e))) if required => {
                return Err(CtlError::Token(p.display().to_string(), e));
            }
            Some((_, Err(_))) | None => None,
        };
        Ok(Target {
            base: base.to_owned(),
            token,
            client: Client::for_streams(TIMEOUT),
        })
    }

    /// Sends a request; returns the answer with its body to be read as it comes.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Stream, CtlError> {
        let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
        if let Some(t) = &self.token {
            headers.push(("Authorization".to_owned(), format!("Bearer {t}")));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        let url = format!("{}{path}", self.base);
        self.client
            .open(method, &url, &headers, body.as_deref())
            .map_err(|e| match e {
                ClientError::BadUrl(_) => CtlError::BadUrl,
                ClientError::Transport(e) => CtlError::Connect(self.base.clone(), e),
            })
    }

    /// A request whose answer is JSON; API errors become `CtlError::Api`.
    pub(crate) fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CtlError> {
        let answer = self
            .send(method, path, body)?
            .read()
            .map_err(|e| CtlError::Protocol(e.to_string()))?;
        let value: Value = serde_json::from_str(&answer.body)
            .map_err(|e| CtlError::Protocol(format!("{e}: {:?}", answer.body)))?;
        if answer.status >= 400 {
            let message = value["error"].as_str().unwrap_or(&answer.body).to_owned();
            return Err(CtlError::Api {
                status: answer.status,
                message,
            });
        }
        Ok(value)
    }
}

/// `deployhook jobs`: a table of recent jobs (or the API's JSON).
pub fn jobs(
    t: &Target,
    hook: Option<&str>,
    state: Option<&str>,
    limit: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut query = vec![format!("limit={limit}")];
    if let Some(h) = hook {
        query.push(format!("hook={}", encode(h)));
    }
    if let Some(s) = state {
        query.push(format!("state={}", encode(s)));
    }
    let path = format!("/api/jobs?{}", query.join("&"));
    let v = t.json(Method::Get, &path, None)?;
    if json {
        let _ = writeln!(out, "{v:#}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<16} {:<8} {:<11} {:<20} {:>8}  {:<24} {:<8} {:<16} DETAIL",
        "ID", "HOOK", "RULE", "STATE", "STARTED (UTC)", "TOOK", "REF", "SHA", "PUSHER"
    );
    for j in v["jobs"].as_array().into_iter().flatten() {
        let started = j["started_at"].as_f64();
        let took = match (started, j["finished_at"].as_f64()) {
            (Some(s), Some(f)) => took(f - s),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<16} {:<8} {:<11} {:<20} {:>8}  {:<24} {:<8} {:<16} {}",
            j["id"].as_i64().unwrap_or_default(),
            j["hook"].as_str().unwrap_or(""),
            j["rule_key"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or(""),
            started.map_or_else(|| "-".to_owned(), utc),
            took,
            j["ref"].as_str().unwrap_or(""),
            j["sha"].as_str().unwrap_or("").get(..7).unwrap_or(""),
            j["pusher"].as_str().unwrap_or("-"),
            j["detail"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// `12s`, `4m05s`: how long a job ran.
fn took(secs: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a job's run time in whole seconds"
    )]
    let s = secs.max(0.0) as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `deployhook show JOB`: one job, its events and its notifications (or the JSON).
pub fn show(t: &Target, job: u64, json: bool, out: &mut dyn Write) -> Result<(), CtlError> {
    let j = t.json(Method::Get, &format!("/api/jobs/{job}"), None)?;
    if json {
        let _ = writeln!(out, "{j:#}");
        return Ok(());
    }
    let field = |k: &str| match &j[k] {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let _ = writeln!(out, "job {}: {}", field("id"), field("state"));
    for (label, key) in [
        ("hook", "hook"),
        ("rule", "rule_key"),
        ("ref", "ref"),
        ("commit", "sha"),
        ("pusher", "pusher"),
        ("delivery", "delivery"),
        ("attempt", "attempt"),
        ("detail", "detail"),
        ("summary", "summary"),
        ("waiting for", "waiting_for"),
    ] {
        if !j[key].is_null() {
            let _ = writeln!(out, "  {label:<12} {}", field(key));
        }
    }
    for (label, key) in [
        ("queued", "created_at"),
        ("started", "started_at"),
        ("ended", "finished_at"),
    ] {
        if let Some(at) = j[key].as_f64() {
            let _ = writeln!(out, "  {label:<12} {} UTC", utc(at));
        }
    }
    let _ = writeln!(out, "events:");
    for e in j["events"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {}  {:<11} {}",
            utc(e["at"].as_f64().unwrap_or(0.0)),
            e["kind"].as_str().unwrap_or(""),
            e["reason"].as_str().unwrap_or("")
        );
    }
    let notes = j["notifications"].as_array().cloned().unwrap_or_default();
    if !notes.is_empty() {
        let _ = writeln!(out, "notifications:");
        for n in notes {
            let _ = writeln!(
                out,
                "  {:<20} {:<11} {:<9} {} attempt(s){}",
                n["target"].as_str().unwrap_or(""),
                n["event"].as_str().unwrap_or(""),
                n["state"].as_str().unwrap_or(""),
                n["attempts"],
                n["last_error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `deployhook deliveries [HOOK]`: the newest delivery records, newest first.
pub fn deliveries(
    t: &Target,
    hook: Option<&str>,
    limit: usize,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut path = format!("/api/deliveries?limit={limit}");
    if let Some(h) = hook {
        path.push_str("&hook=");
        path.push_str(&encode(h));
    }
    let v = t.json(Method::Get, &path, None)?;
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:<24} {:<8} {:<24} {:<12} {:<11} {:<8} REASON",
        "RECEIVED (UTC)", "HOOK", "DELIVERY", "EVENT", "REF", "SHA", "OUTCOME", "JOBS"
    );
    for d in v["deliveries"].as_array().into_iter().flatten() {
        let jobs: Vec<String> = d["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(|j| j.to_string())
            .collect();
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<24} {:<8} {:<24} {:<12} {:<11} {:<8} {}",
            utc(d["received_at"].as_f64().unwrap_or(0.0)),
            d["hook"].as_str().unwrap_or(""),
            d["delivery"].as_str().unwrap_or("-"),
            d["event"].as_str().unwrap_or("-"),
            d["ref"].as_str().unwrap_or("-"),
            d["sha"].as_str().map_or("-", |s| s.get(..12).unwrap_or(s)),
            d["outcome"].as_str().unwrap_or(""),
            if jobs.is_empty() {
                "-".to_owned()
            } else {
                jobs.join(",")
            },
            d["reason"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix seconds, as job logs print times.
pub(crate) fn utc(secs: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a time from the daemon's own clock, after 1970 and before 2^64 seconds"
    )]
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0.0) as u64);
    let stamp = crate::joblog::timestamp(t);
    stamp.get(..19).unwrap_or(&stamp).replace('T', " ")
}

/// `deployhook logs JOB [--follow]`: copies the job's log to `out` (as it grows, with
/// follow). With follow it returns once the job has ended, in whatever state, and is `Ok`
/// only if it `succeeded`: the error names the state and why (superseded, cancelled, ...).
pub fn logs(t: &Target, job: u64, follow: bool, out: &mut dyn Write) -> Result<(), CtlError> {
    copy_log(t, job, follow, out)?;
    if !follow {
        return Ok(());
    }
    let ended = t.json(Method::Get, &format!("/api/jobs/{job}"), None)?;
    let state = ended["state"].as_str().unwrap_or("?");
    if state == "succeeded" {
        let _ = writeln!(
            out,
            "job {job} succeeded: {}",
            ended["detail"].as_str().unwrap_or("")
        );
        return Ok(());
    }
    Err(CtlError::JobEnded {
        job,
        state: state.to_owned(),
        detail: ended["detail"].as_str().unwrap_or("").to_owned(),
    })
}

fn copy_log(t: &Target, job: u64, follow: bool, out: &mut dyn Write) -> Result<(), CtlError> {
    let path = format!(
        "/api/jobs/{job}/log{}",
        if follow { "?follow=true" } else { "" }
    );
    let Stream {
        status, mut body, ..
    } = t.send(Method::Get, &path, None)?;
    if status >= 400 {
        let mut text = String::new();
        let _ = body.read_to_string(&mut text);
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(CtlError::Api { status, message });
    }
    let mut buf = [0u8; 8192];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| CtlError::Protocol(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
    }
}

/// `deployhook explain HOOK --delivery ID`: the record of that delivery, whose reason
/// says, rule by rule, why it did (or did not) deploy.
pub fn explain_delivery(
    t: &Target,
    hook: &str,
    delivery: &str,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let v = t.json(
        Method::Get,
        &format!("/api/deliveries?hook={}&limit=1000", encode(hook)),
        None,
    )?;
    let found = v["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["delivery"].as_str() == Some(delivery));
    let Some(d) = found else {
        return Err(CtlError::Api {
            status: 404,
            message: format!(
                "no recorded delivery {delivery:?} for hook {hook:?} (records are kept as long as keep_jobs and keep_for allow)"
            ),
        });
    };
    let _ = writeln!(
        out,
        "delivery {delivery} ({} {} at {}): {}",
        d["event"].as_str().unwrap_or("-"),
        d["ref"].as_str().unwrap_or("-"),
        d["sha"].as_str().and_then(|s| s.get(..7)).unwrap_or("-"),
        d["outcome"].as_str().unwrap_or("?")
    );
    let reason = d["reason"].as_str().unwrap_or("");
    for part in reason.split("; ") {
        let _ = writeln!(out, "  {part}");
    }
    Ok(())
}

/// `deployhook cancel JOB`.
pub fn cancel(t: &Target, job: u64, out: &mut dyn Write) -> Result<(), CtlError> {
    let v = t.json(Method::Post, &format!("/api/jobs/{job}/cancel"), None)?;
    let _ = writeln!(out, "job {job}: {}", v["state"].as_str().unwrap_or("?"));
    Ok(())
}

/// Percent-encodes a query or path value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
