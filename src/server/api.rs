//! The jobs API under `/api`: list, show, log (with follow), cancel, manual deploy. Every
//! request needs the bearer token from `server.api_token_file`; with none configured, only
//! loopback clients are answered.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{ApiError, AppState};
use crate::event::{ChangedPaths, DeliveryId, PushEvent, RefName, Sha};
use crate::intake::JobSpec;
use crate::routing;
use crate::store::{Acceptance, CancelResult, JobFilter, JobId, JobState, NewJob, Origin};

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/jobs", web::get().to(list))
        .route("/api/jobs/{id}", web::get().to(show))
        .route("/api/jobs/{id}/log", web::get().to(log))
        .route("/api/jobs/{id}/cancel", web::post().to(cancel))
        .route("/api/hooks/{id}/deploy", web::post().to(deploy));
}

pub(super) fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    match &state.config.get().server.api_token {
        Some(token) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let ok = Sha256::digest(given.trim().as_bytes()).ct_eq(&Sha256::digest(token.expose()));
            if bool::from(ok) {
                Ok(())
            } else {
                Err(ApiError::Unauthorized(
                    "missing or wrong API token: send Authorization: Bearer <the token in server.api_token_file>".into(),
                ))
            }
        }
        None if req.peer_addr().is_some_and(|p| p.ip().is_loopback()) => Ok(()),
        None => Err(ApiError::Forbidden(
            "the API answers only loopback clients while server.api_token_file is not set".into(),
        )),
    }
}

fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse::<i64>()
        .map(JobId)
        .map_err(|_| ApiError::NotFoundWhat(format!("no job {raw:?}: job ids are numbers")))
}

fn no_job(id: JobId) -> ApiError {
    ApiError::NotFoundWhat(format!("no job {}", id.0))
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
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
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs })))
}

async fn show(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = job_id(&id)?;
    match state.store.get(id).await.map_err(unavailable)? {
        Some(job) => Ok(HttpResponse::Ok().json(job)),
        None => Err(no_job(id)),
    }
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
    let id = job_id(&id)?;
    if state.store.get(id).await.map_err(unavailable)?.is_none() {
        return Err(no_job(id));
    }
    let path = state.store.log_path(id);
    let mut text = HttpResponse::Ok();
    text.content_type("text/plain; charset=utf-8");
    if !q.follow.unwrap_or(false) {
        let bytes = tokio::fs::read(&path).await.unwrap_or_default();
        return Ok(text.body(bytes));
    }
    let store = state.store.clone();
    let stream = futures_util::stream::unfold((0u64, false), move |(offset, last_round)| {
        let (store, path) = (store.clone(), path.clone());
        async move {
            loop {
                let chunk = read_from(&path, offset).await;
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
                    .is_none_or(|j| j.job_state().is_final());
                if done {
                    let chunk = read_from(&path, offset).await;
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

async fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(1 << 20).read_to_end(&mut buf).await;
    buf
}

async fn cancel(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = job_id(&id)?;
    match state.store.cancel(id).await.map_err(unavailable)? {
        CancelResult::Cancelled => {
            Ok(HttpResponse::Ok().json(json!({ "id": id.0, "state": "cancelled" })))
        }
        CancelResult::Running => {
            if state.worker.cancel(id) {
                Ok(HttpResponse::Accepted().json(json!({ "id": id.0, "state": "cancelling" })))
            } else {
                Err(ApiError::Conflict(format!(
                    "job {} is marked running but this daemon is not running it; it will be marked interrupted at the next start",
                    id.0
                )))
            }
        }
        CancelResult::AlreadyFinished(s) => Err(ApiError::Conflict(format!(
            "job {} already ended: {s}",
            id.0
        ))),
        CancelResult::NotFound => Err(no_job(id)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    /// A full ref (`refs/tags/v1.2`) or a branch name (`main`).
    #[serde(rename = "ref")]
    git_ref: String,
    /// The commit to deploy; without it, the ref's current commit on the remote.
    sha: Option<String>,
    /// Deploy `sha` even if it is not reachable from `ref` (recorded in the job).
    #[serde(default)]
    force: bool,
}

/// A deploy by hand: the first rule of the hook whose branch/tag globs match the ref.
async fn deploy(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<DeployRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let config = state.config.get();
    let hook = config
        .hook(&id)
        .ok_or_else(|| ApiError::UnknownHook(id.into_inner()))?;
    let full = if body.git_ref.starts_with("refs/") {
        body.git_ref.clone()
    } else {
        format!("refs/heads/{}", body.git_ref)
    };
    let git_ref = RefName::parse(&full).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Pick the rule by the ref alone first: no point asking the remote for a ref that no
    // rule would deploy.
    let by_ref = |sha: Sha| PushEvent {
        forge: hook.forge,
        repository: hook.repository.clone(),
        git_ref: git_ref.clone(),
        before: Sha::parse(&"0".repeat(sha.as_str().len())).expect("zeros are a sha"),
        after: sha,
        forced: false,
        paths: ChangedPaths::Unknown,
        pusher: Some("manual".to_owned()),
        delivery: None::<DeliveryId>,
    };
    let probe = by_ref(Sha::parse(&"0".repeat(40)).expect("zeros are a sha"));
    let Some(rule) = hook.rules.iter().find(|r| routing::matches(r, &probe)) else {
        return Err(ApiError::Unprocessable(format!(
            "no rule of hook {:?} matches {}",
            hook.id, probe.git_ref
        )));
    };
    let sha = if let Some(s) = &body.sha {
        Sha::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?
    } else {
        let resolved = crate::worker::resolve_ref(state.git.clone(), hook, &git_ref)
            .await
            .map_err(ApiError::BadGateway)?;
        Sha::parse(&resolved).map_err(|e| ApiError::BadGateway(e.to_string()))?
    };
    let event = by_ref(sha);
    let spec = JobSpec {
        rule: rule.index,
        queue: rule.queue,
        event,
    };
    let (git_ref, sha) = (spec.event.git_ref.to_string(), spec.event.after.to_string());
    let accepted = state
        .store
        .accept(
            &hook.id,
            Vec::new(),
            vec![NewJob {
                spec,
                origin: Origin::Manual { force: body.force },
            }],
        )
        .await
        .map_err(unavailable)?;
    let Acceptance::Queued(ids) = accepted else {
        return Err(ApiError::Unavailable("the store refused the job".into()));
    };
    state.worker.wake();
    tracing::info!(hook = %hook.id, job = ids[0].0, git_ref = %git_ref, sha = %sha, force = body.force, "manual deploy queued");
    Ok(HttpResponse::Accepted().json(json!({
        "status": "queued",
        "hook": hook.id,
        "jobs": [{ "id": ids[0].0, "rule": rule.index, "ref": git_ref, "sha": sha, "state": "queued" }],
    })))
}
