//! The operator controls of the CLI: `deploy`, `rollback`, `redeploy` (each with
//! `--wait`, whose exit status is how the job ended), `pause`, `resume`, `hooks` and
//! `reload`.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{CtlError, Target, encode, utc};
use crate::http_client::Method;
use crate::trigger::Exit;

/// How often `--wait` asks how the job is doing.
const POLL: Duration = Duration::from_millis(500);

/// What `deployhook deploy` asks for.
pub struct DeployArgs<'a> {
    pub hook: &'a str,
    pub git_ref: &'a str,
    pub sha: Option<&'a str>,
    pub force: bool,
    pub rule: Option<&'a str>,
}

/// Prints the job a 202 queued, and returns its id.
fn queued(v: &Value, out: &mut dyn Write) -> Result<u64, CtlError> {
    let j = &v["jobs"][0];
    let id = j["id"]
        .as_u64()
        .ok_or_else(|| CtlError::Protocol(format!("no job in the answer: {v}")))?;
    let why = j["reason"]
        .as_str()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let held = match j["state"].as_str() {
        Some("held") => ", held until the hook is resumed",
        _ => "",
    };
    let _ = writeln!(
        out,
        "queued job {id} for {} at {} (rule {}){why}{held}",
        j["ref"].as_str().unwrap_or(""),
        j["sha"].as_str().unwrap_or(""),
        j["rule_key"].as_str().unwrap_or("?"),
    );
    Ok(id)
}

/// `deployhook deploy HOOK --ref REF [--sha SHA [--force]] [--rule R]`.
pub fn deploy(t: &Target, a: &DeployArgs<'_>, out: &mut dyn Write) -> Result<u64, CtlError> {
    let mut body = serde_json::json!({ "ref": a.git_ref });
    if let Some(r) = a.rule {
        body["rule"] = Value::from(r);
    }
    if let Some(s) = a.sha {
        body["sha"] = Value::from(s);
    }
    if a.force {
        body["force"] = Value::from(true);
    }
    let v = t.json(
        Method::Post,
        &format!("/api/hooks/{}/deploy", encode(a.hook)),
        Some(&body),
    )?;
    queued(&v, out)
}

/// `deployhook rollback HOOK [--rule R] [--to SHA]`.
pub fn rollback(
    t: &Target,
    hook: &str,
    rule: Option<&str>,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, CtlError> {
    let mut body = serde_json::json!({});
    if let Some(r) = rule {
        body["rule"] = Value::from(r);
    }
    if let Some(s) = to {
        body["to"] = Value::from(s);
    }
    let v = t.json(
        Method::Post,
        &format!("/api/hooks/{}/rollback", encode(hook)),
        Some(&body),
    )?;
    queued(&v, out)
}

/// `deployhook redeploy JOB`.
pub fn redeploy(t: &Target, job: u64, out: &mut dyn Write) -> Result<u64, CtlError> {
    let v = t.json(Method::Post, &format!("/api/jobs/{job}/redeploy"), None)?;
    queued(&v, out)
}

/// `--wait`: follows job `id` until it ends (or `limit` passes) and says how it ended;
/// `Ok` only if it succeeded.
pub fn wait_for(t: &Target, id: u64, limit: Duration, out: &mut dyn Write) -> Result<(), CtlError> {
    let deadline = Instant::now() + limit;
    loop {
        let j = t.json(Method::Get, &format!("/api/jobs/{id}"), None)?;
        let state = j["state"].as_str().unwrap_or("?").to_owned();
        let detail = j["detail"].as_str().unwrap_or("").to_owned();
        match state.as_str() {
            "queued" | "held" | "running" if Instant::now() >= deadline => {
                return Err(CtlError::Waited {
                    job: id,
                    detail: format!("still {state} after {}s", limit.as_secs()),
                    state,
                    code: Exit::StillRunning as u8,
                });
            }
            "queued" | "held" | "running" => std::thread::sleep(POLL),
            "succeeded" => {
                let _ = writeln!(out, "job {id} succeeded: {detail}");
                return Ok(());
            }
            _ => {
                let code = Exit::Succeeded.max_with(&state) as u8;
                return Err(CtlError::Waited {
                    job: id,
                    state,
                    detail,
                    code,
                });
            }
        }
    }
}

/// `deployhook pause HOOK [--reason TEXT]`.
pub fn pause(
    t: &Target,
    hook: &str,
    reason: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let body = serde_json::json!({ "reason": reason });
    let v = t.json(
        Method::Post,
        &format!("/api/hooks/{}/pause", encode(hook)),
        Some(&body),
    )?;
    let held = v["held"].as_array().map_or(0, Vec::len);
    let _ = writeln!(out, "hook {hook} paused; {held} queued job(s) held");
    Ok(())
}

/// `deployhook resume HOOK`.
pub fn resume(t: &Target, hook: &str, out: &mut dyn Write) -> Result<(), CtlError> {
    let v = t.json(
        Method::Post,
        &format!("/api/hooks/{}/resume", encode(hook)),
        None,
    )?;
    let released = v["released"].as_array().map_or(0, Vec::len);
    let _ = writeln!(out, "hook {hook} resumed; {released} held job(s) queued");
    Ok(())
}

/// `deployhook reload`.
pub fn reload(t: &Target, out: &mut dyn Write) -> Result<(), CtlError> {
    let v = t.json(Method::Post, "/api/reload", None)?;
    let _ = writeln!(out, "reloaded ({} hooks)", v["hooks"]);
    for w in v["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{}", w.as_str().unwrap_or(""));
    }
    Ok(())
}

/// `deployhook hooks`: each hook, what is live, what runs and waits.
pub fn hooks(t: &Target, json: bool, out: &mut dyn Write) -> Result<(), CtlError> {
    let v = t.json(Method::Get, "/api/hooks", None)?;
    if json {
        let _ = writeln!(out, "{v:#}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:<24} {:<8} {:<8} {:<20} {:<7} {:<6} {:<5} STATUS",
        "HOOK",
        "FORGE",
        "REPOSITORY",
        "RULE",
        "LIVE",
        "DEPLOYED (UTC)",
        "RUNNING",
        "QUEUED",
        "HELD"
    );
    for h in v["hooks"].as_array().into_iter().flatten() {
        let status = match (&h["paused"], &h["last_failure"]) {
            (Value::Object(p), _) => format!(
                "paused{}",
                p.get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            (_, Value::Object(f)) => format!(
                "last failure: job {} {}",
                f.get("job").unwrap_or(&Value::Null),
                f.get("state").and_then(Value::as_str).unwrap_or("")
            ),
            _ => "ok".to_owned(),
        };
        let live = h["live"].as_array().cloned().unwrap_or_default();
        let rows = if live.is_empty() {
            vec![Value::Null]
        } else {
            live
        };
        for (i, l) in rows.iter().enumerate() {
            let running: Vec<String> = h["running"]
                .as_array()
                .into_iter()
                .flatten()
                .map(ToString::to_string)
                .collect();
            let first = i == 0;
            let _ = writeln!(
                out,
                "{:<16} {:<9} {:<24} {:<8} {:<8} {:<20} {:<7} {:<6} {:<5} {}",
                if first {
                    h["id"].as_str().unwrap_or("")
                } else {
                    ""
                },
                if first {
                    h["forge"].as_str().unwrap_or("")
                } else {
                    ""
                },
                if first {
                    h["repository"].as_str().unwrap_or("")
                } else {
                    ""
                },
                l["rule"].as_str().unwrap_or("-"),
                l["sha"].as_str().and_then(|s| s.get(..7)).unwrap_or("-"),
                l["finished_at"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), utc),
                if first && !running.is_empty() {
                    running.join(",")
                } else {
                    "-".to_owned()
                },
                if first {
                    h["queued"].to_string()
                } else {
                    String::new()
                },
                if first {
                    h["held"].to_string()
                } else {
                    String::new()
                },
                if first { status.as_str() } else { "" },
            );
        }
    }
    Ok(())
}
