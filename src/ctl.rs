//! The CLI commands that talk to a running daemon through its API (`jobs`, `deliveries`,
//! `logs`, `deploy`, `cancel`), over a minimal HTTP/1.1 client: the daemon is local, plain HTTP,
//! and a full client library would double the dependency tree for four requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Where the daemon is and how to authenticate to it.
pub struct Target {
    /// `host:port` of the daemon.
    pub addr: String,
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("--url must look like http://127.0.0.1:9000 (https is not supported by the CLI yet)")]
    BadUrl,
    #[error("cannot read the API token file {0}: {1}")]
    Token(String, std::io::Error),
    #[error("cannot reach the daemon at {0}: {1} (is `deployhook serve` running there?)")]
    Connect(String, std::io::Error),
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
}

impl Target {
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<Target, CtlError> {
        let addr = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or(CtlError::BadUrl)?
            .to_owned();
        let token = match token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| CtlError::Token(p.display().to_string(), e))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Target { addr, token })
    }

    /// Sends a request; returns the status and a reader positioned at the body.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Box<dyn Read>), CtlError> {
        let mut stream =
            TcpStream::connect(&self.addr).map_err(|e| CtlError::Connect(self.addr.clone(), e))?;
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| CtlError::Connect(self.addr.clone(), e))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = &self.token {
            req.push_str("Authorization: Bearer ");
            req.push_str(t);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream
            .write_all(req.as_bytes())
            .map_err(|e| CtlError::Connect(self.addr.clone(), e))?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .map_err(|e| CtlError::Protocol(e.to_string()))?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CtlError::Protocol(format!("bad status line {status_line:?}")))?;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|e| CtlError::Protocol(e.to_string()))?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
        let body: Box<dyn Read> = if chunked {
            Box::new(Chunked {
                inner: reader,
                left: 0,
                done: false,
            })
        } else {
            Box::new(reader)
        };
        Ok((status, body))
    }

    /// A request whose answer is JSON; API errors become `CtlError::Api`.
    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CtlError> {
        let (status, mut reader) = self.send(method, path, body)?;
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| CtlError::Protocol(e.to_string()))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| CtlError::Protocol(format!("{e}: {text:?}")))?;
        if status >= 400 {
            let message = value["error"].as_str().unwrap_or(&text).to_owned();
            return Err(CtlError::Api { status, message });
        }
        Ok(value)
    }
}

/// Decodes a chunked body as it arrives, so that `logs --follow` prints as the job runs.
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            self.inner.read_line(&mut size)?;
            let hex = size.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(hex, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// `deployhook jobs`: a table of recent jobs.
pub fn jobs(
    t: &Target,
    hook: Option<&str>,
    state: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut query = Vec::new();
    if let Some(h) = hook {
        query.push(format!("hook={}", encode(h)));
    }
    if let Some(s) = state {
        query.push(format!("state={}", encode(s)));
    }
    let path = if query.is_empty() {
        "/api/jobs".to_owned()
    } else {
        format!("/api/jobs?{}", query.join("&"))
    };
    let v = t.json("GET", &path, None)?;
    let _ = writeln!(
        out,
        "{:>6}  {:<16} {:<11} {:<24} {:<12} DETAIL",
        "ID", "HOOK", "STATE", "REF", "SHA"
    );
    for j in v["jobs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:>6}  {:<16} {:<11} {:<24} {:<12} {}",
            j["id"].as_i64().unwrap_or_default(),
            j["hook"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or(""),
            j["ref"].as_str().unwrap_or(""),
            j["sha"].as_str().unwrap_or("").get(..12).unwrap_or(""),
            j["detail"].as_str().unwrap_or(""),
        );
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
    let v = t.json("GET", &path, None)?;
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
fn utc(secs: f64) -> String {
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
    let ended = t.json("GET", &format!("/api/jobs/{job}"), None)?;
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
    let (status, mut body) = t.send("GET", &path, None)?;
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

/// `deployhook deploy HOOK --ref REF [--sha SHA [--force]]`.
pub fn deploy(
    t: &Target,
    hook: &str,
    git_ref: &str,
    sha: Option<&str>,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut body = serde_json::json!({ "ref": git_ref });
    if let Some(s) = sha {
        body["sha"] = Value::from(s);
    }
    if force {
        body["force"] = Value::from(true);
    }
    let v = t.json(
        "POST",
        &format!("/api/hooks/{}/deploy", encode(hook)),
        Some(&body),
    )?;
    for j in v["jobs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "queued job {} for {} at {}",
            j["id"],
            j["ref"].as_str().unwrap_or(""),
            j["sha"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `deployhook cancel JOB`.
pub fn cancel(t: &Target, job: u64, out: &mut dyn Write) -> Result<(), CtlError> {
    let v = t.json("POST", &format!("/api/jobs/{job}/cancel"), None)?;
    let _ = writeln!(out, "job {job}: {}", v["state"].as_str().unwrap_or("?"));
    Ok(())
}

/// Percent-encodes a query or path value.
fn encode(s: &str) -> String {
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
