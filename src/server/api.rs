//! The jobs API under `/api`: list, show (with its events), log (with follow), cancel,
//! the event stream (JSON pages or Server-Sent Events) and delivery
//! records. Every request needs the bearer token: `server.api_token_file`'s, or the one the
//! daemon made in `state_dir/api-token` (see `api_token`). Loopback is not a credential.

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::views::{DeliveryView, EventView, JobView};
use super::{ApiError, AppState};
use crate::store::{CancelResult, Cursor, JobFilter, JobId, JobState};

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How much of a log one read (one chunk of the answer) takes.
const LOG_CHUNK: u64 = 1 << 20;

/// How often an event stream reads the store without being told of a commit (commits by
/// other processes are seen this way).
const EVENTS_POLL: Duration = Duration::from_secs(1);

/// The default interval of an idle event stream's comment pings (`?ping=` seconds).
const EVENTS_PING: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/jobs", web::get().to(list))
        .route("/api/jobs/{id}", web::get().to(show))
        .route("/api/jobs/{id}/log", web::get().to(log))
        .route("/api/jobs/{id}/cancel", web::post().to(cancel))
        .route("/api/events", web::get().to(events))
        .route("/api/deliveries", web::get().to(deliveries));
}

/// 421 unless the request's `Host` is one of the daemon's names (see `host_allowed`).
pub(super) fn check_host(
    req: &HttpRequest,
    server: &crate::config::Server,
) -> Result<(), ApiError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if host_allowed(host, server) {
        Ok(())
    } else {
        Err(ApiError::MisdirectedHost(host_name(host).to_owned()))
    }
}

/// Whether `given` is the API token, compared in constant time.
pub(super) fn is_token(state: &AppState, given: &str) -> bool {
    let config = state.config.get();
    let token = config.server.api_token.as_ref().unwrap_or(&state.api_token);
    bool::from(Sha256::digest(given.trim().as_bytes()).ct_eq(&Sha256::digest(token.expose())))
}

pub(super) fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    check_host(req, &state.config.get().server)?;
    // The scheme name is case-insensitive (RFC 9110, 11.1).
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token);
    if is_token(state, given) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "missing or wrong API token: send Authorization: Bearer <token>, the token in server.api_token_file (or, when that is not set, in state_dir/api-token); the CLI finds it through --config or takes --token-file".into(),
        ))
    }
}

/// `Host` without its port: `[::1]:9000` → `::1`, `deploy.example.com:443` →
/// `deploy.example.com`.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether an API request's `Host` names this daemon: loopback names, the listen
/// address, `public_url`'s host and `allowed_hosts`. A page on another site that a
/// browser reaches through DNS rebinding names that site, and is turned away (421)
/// before the token is even looked at.
fn host_allowed(host: &str, server: &crate::config::Server) -> bool {
    let name = host_name(host);
    let public = server.public_url.as_deref().map(|u| {
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        host_name(rest.split('/').next().unwrap_or(""))
    });
    ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .chain(public)
        .chain(server.allowed_hosts.iter().map(String::as_str))
        .any(|h| h.eq_ignore_ascii_case(name))
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            ip == server.listen.ip() || (ip.is_loopback() && server.listen.ip().is_loopback())
        })
}

pub(super) fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse::<i64>()
        .map(JobId)
        .map_err(|_| ApiError::NotFoundWhat(format!("no job {raw:?}: job ids are numbers")))
}

/// The job a path names, or 404.
pub(super) async fn job_or_404(state: &AppState, raw: &str) -> Result<crate::store::Job, ApiError> {
    let id = job_id(raw)?;
    state
        .store
        .get(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| no_job(id))
}

fn no_job(id: JobId) -> ApiError {
    ApiError::NotFoundWhat(format!("no job {}", id.0))
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

#[derive(Deserialize)]
struct ListQuery {
    hook: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
}

async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let job_state = match &q.state {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!("unknown state {s:?}; one of {}", names.join(", ")))
        })?),
    };
    let jobs = state
        .store
        .list(JobFilter {
            hook: q.hook.clone(),
            state: job_state,
            limit: Some(q.limit.unwrap_or(100).min(1000)),
        })
        .await
        .map_err(unavailable)?;
    let jobs: Vec<JobView<'_>> = jobs.iter().map(JobView::new).collect();
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs })))
}

async fn show(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let job = job_or_404(&state, &id).await?;
    let id = job.id;
    let events = state.store.job_events(id).await.map_err(unavailable)?;
    let notifications = state.store.notifications(id).await.map_err(unavailable)?;
    let mut view = JobView::new(&job)
        .with_events(&events)
        .with_notifications(&notifications);
    if job.state == JobState::Held {
        let pauses = state.store.pauses().await.map_err(unavailable)?;
        view.waiting_for = Some(match pauses.iter().find(|p| p.hook == job.hook) {
            Some(p) if !p.reason.is_empty() => format!("hook {} is paused: {}", job.hook, p.reason),
            _ => format!("hook {} is paused", job.hook),
        });
    } else if job.state == JobState::Queued
        && let Some(lock) = &job.lock
        && let Some(holder) = state
            .store
            .lock_holder(lock.clone())
            .await
            .map_err(unavailable)?
    {
        view.waiting_for = Some(format!("lock {lock}, held by job {holder}"));
    }
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
struct LogQuery {
    follow: Option<bool>,
}

/// The job's log as text; with `?follow=true` the answer streams until the job ends.
async fn log(
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<LogQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = job_or_404(&state, &id).await?.id;
    let mut text = HttpResponse::Ok();
    text.content_type("text/plain; charset=utf-8");
    let logs = state.logs.clone();
    if !q.follow.unwrap_or(false) {
        let mut all = Vec::new();
        loop {
            let chunk = logs
                .read(id, all.len() as u64, LOG_CHUNK)
                .await
                .map_err(unavailable)?;
            if chunk.is_empty() {
                return Ok(text.body(all));
            }
            all.extend(chunk);
        }
    }
    let store = state.store.clone();
    let stream = futures_util::stream::unfold((0u64, false), move |(offset, last_round)| {
        let (store, logs) = (store.clone(), logs.clone());
        async move {
            loop {
                let chunk = logs.read(id, offset, LOG_CHUNK).await.unwrap_or_default();
                if !chunk.is_empty() {
                    let next = offset + chunk.len() as u64;
                    return Some((
                        Ok::<_, std::io::Error>(Bytes::from(chunk)),
                        (next, last_round),
                    ));
                }
                if last_round {
                    return None;
                }
                // Once the job is over, read once more for the last lines, then stop.
                let done = store
                    .get(id)
                    .await
                    .ok()
                    .flatten()
                    .is_none_or(|j| j.state.is_final());
                if done {
                    let chunk = logs.read(id, offset, LOG_CHUNK).await.unwrap_or_default();
                    if chunk.is_empty() {
                        return None;
                    }
                    let next = offset + chunk.len() as u64;
                    return Some((Ok(Bytes::from(chunk)), (next, true)));
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
        }
    });
    Ok(text.streaming(stream))
}

async fn cancel(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = job_id(&id)?;
    Ok(match cancel_job(&state, id).await? {
        Cancelling::Cancelled => {
            HttpResponse::Ok().json(json!({ "id": id.0, "state": "cancelled" }))
        }
        Cancelling::Stopping { here } => HttpResponse::Accepted().json(json!({
            "id": id.0,
            "state": "cancelling",
            "here": here,
        })),
    })
}

/// What cancelling did.
pub(super) enum Cancelling {
    /// It was queued (or held), and is cancelled.
    Cancelled,
    /// It runs: its process stops it (`here`: this one, at once; else at its next
    /// heartbeat).
    Stopping { here: bool },
}

/// Cancels job `id` (a running one wherever it runs).
pub(super) async fn cancel_job(state: &AppState, id: JobId) -> Result<Cancelling, ApiError> {
    match state.store.cancel(id).await.map_err(unavailable)? {
        CancelResult::Cancelled => Ok(Cancelling::Cancelled),
        CancelResult::Requested => Ok(Cancelling::Stopping {
            here: state.worker.cancel(id),
        }),
        CancelResult::AlreadyFinished(s) => Err(ApiError::Conflict(format!(
            "job {} already ended: {s}",
            id.0
        ))),
        CancelResult::NotFound => Err(no_job(id)),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<usize>,
    /// Seconds between an idle stream's comment pings.
    ping: Option<u64>,
}

/// Job events in commit order after a cursor: a JSON page, or with `Accept:
/// text/event-stream` a live stream of Server-Sent Events whose `id:` is the cursor, so a
/// reconnect with `Last-Event-ID` resumes where it left off, without a gap or a repeat.
async fn events(
    req: HttpRequest,
    q: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let resume = req
        .headers()
        .get("Last-Event-ID")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID must be a cursor (a number)".into())
                })
        })
        .transpose()?;
    let after = Cursor(resume.or(q.after).unwrap_or(0));
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    if !super::wants_event_stream(&req) {
        let page = state
            .store
            .events(after, limit)
            .await
            .map_err(unavailable)?;
        let next = page.last().map_or(after, |e| e.cursor);
        let events: Vec<EventView<'_>> = page.iter().map(EventView::new).collect();
        return Ok(HttpResponse::Ok().json(json!({ "events": events, "next": next.0 })));
    }
    let ping = q
        .ping
        .map_or(EVENTS_PING, |s| Duration::from_secs(s.clamp(1, 300)));
    let store = state.store.clone();
    let worker = state.worker.clone();
    let changed = store.changed();
    let stream = futures_util::stream::unfold(
        (after, changed, tokio::time::Instant::now()),
        move |(mut cursor, mut changed, mut last_sent)| {
            let (store, worker) = (store.clone(), worker.clone());
            async move {
                loop {
                    // A stopping daemon waits for open answers: end this one (the
                    // client resumes from its Last-Event-ID elsewhere or later).
                    if worker.is_stopping() {
                        return None;
                    }
                    changed.borrow_and_update();
                    let page = match store.events(cursor, 500).await {
                        Ok(page) => page,
                        // The client reconnects with Last-Event-ID and loses nothing.
                        Err(e) => {
                            tracing::warn!(error = %e, "event stream ended: cannot read events");
                            return None;
                        }
                    };
                    if let Some(last) = page.last() {
                        cursor = last.cursor;
                        let mut chunk = String::new();
                        for e in &page {
                            let data = serde_json::to_string(&EventView::new(e))
                                .expect("an event serializes");
                            let _ = write!(chunk, "id: {}\ndata: {data}\n\n", e.cursor.0);
                        }
                        let now = tokio::time::Instant::now();
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(chunk)),
                            (cursor, changed, now),
                        ));
                    }
                    let ping_at = last_sent + ping;
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { tokio::time::sleep(EVENTS_POLL).await },
                        () = tokio::time::sleep(EVENTS_POLL) => {}
                        () = tokio::time::sleep_until(ping_at) => {
                            last_sent = tokio::time::Instant::now();
                            return Some((Ok(Bytes::from_static(b": ping\n\n")), (cursor, changed, last_sent)));
                        }
                    }
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    hook: Option<String>,
    limit: Option<usize>,
}

/// The newest delivery records: what became of each verified delivery, and why.
async fn deliveries(
    req: HttpRequest,
    q: web::Query<DeliveriesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let records = state
        .store
        .deliveries(q.hook.clone(), limit)
        .await
        .map_err(unavailable)?;
    let deliveries: Vec<DeliveryView<'_>> = records.iter().map(DeliveryView::new).collect();
    Ok(HttpResponse::Ok().json(json!({ "deliveries": deliveries })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_hosts_are_loopback_the_listen_address_public_url_and_allowed_hosts() {
        let text = "[server]\nlisten = \"10.1.2.3:9000\"\npublic_url = \"https://Deploy.Example.com:8443/x\"\nallowed_hosts = [\"ops.internal\"]\n";
        let loaded =
            crate::config::load_str(std::path::Path::new("/etc/hooks.toml"), text, &|_| None)
                .unwrap_or_else(|e| panic!("{e}"));
        let server = &loaded.config.server;
        for ok in [
            "localhost",
            "127.0.0.1:9000",
            "[::1]",
            "10.1.2.3:9000",
            "deploy.example.com",
            "OPS.internal:1",
        ] {
            assert!(host_allowed(ok, server), "{ok}");
        }
        for no in [
            "",
            "evil.example",
            "10.1.2.4",
            "127.0.0.2",
            "deploy.example.com.evil",
            "[::2]:9000",
        ] {
            assert!(!host_allowed(no, server), "{no}");
        }
        assert_eq!(host_name("[::1]:9000"), "::1");
        assert_eq!(host_name("name:443"), "name");
        assert_eq!(host_name("name"), "name");
    }
}
