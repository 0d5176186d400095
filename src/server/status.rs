//! `GET /status/{hook}/{delivery}/{key}`: what a delivery's sender may read without the
//! API token — the states, times and final reasons of the jobs that delivery queued,
//! nothing else (no log, no other job, no configuration). As JSON, or with `Accept:
//! text/event-stream` as a Server-Sent Events stream of snapshots that ends once every
//! job has ended. The link comes in the delivery's 202 (`status_url`); see `status_link`.

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::views::secs;
use super::{ApiError, AppState};
use crate::status_link;
use crate::store::{Job, JobId, Store};

/// How often a stream looks at the jobs without being told of a commit.
const POLL: Duration = Duration::from_secs(1);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/status/{hook}/{delivery}/{key}", web::get().to(status));
}

/// The link for `delivery` to `hook`, absolute: `public_url`, or where `req` came to.
pub(super) async fn url(
    state: &AppState,
    req: &HttpRequest,
    hook: &str,
    delivery: &str,
) -> Option<String> {
    let key = key(state).await?;
    let path = status_link::path(&key, hook, delivery);
    let configured = state.config.get().server.public_url.clone();
    let base = configured.unwrap_or_else(|| {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    Some(format!("{base}{path}"))
}

async fn key(state: &AppState) -> Option<std::sync::Arc<Vec<u8>>> {
    let got = state
        .status_key
        .get_or_try_init(|| async {
            state
                .store
                .secret(status_link::KEY_NAME.to_owned())
                .await
                .map(std::sync::Arc::new)
        })
        .await;
    match got {
        Ok(k) => Some(k.clone()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the status-link key; answers carry no status_url");
            None
        }
    }
}

/// One job as a status link shows it.
#[derive(Serialize)]
struct JobStatus<'a> {
    id: i64,
    rule: usize,
    #[serde(rename = "ref")]
    git_ref: &'a str,
    sha: &'a str,
    state: &'static str,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    /// Why it ended; only once it has.
    reason: Option<&'a str>,
}

/// The answer's JSON for these jobs.
fn snapshot(hook: &str, delivery: &str, jobs: &[Job]) -> serde_json::Value {
    let list: Vec<JobStatus<'_>> = jobs
        .iter()
        .map(|j| JobStatus {
            id: j.id.0,
            rule: j.rule,
            git_ref: j.git_ref.as_str(),
            sha: j.sha.as_str(),
            state: j.state.as_str(),
            created_at: secs(j.created_at),
            started_at: j.started_at.map(secs),
            finished_at: j.finished_at.map(secs),
            reason: j.state.is_final().then_some(j.detail.as_deref()).flatten(),
        })
        .collect();
    serde_json::json!({
        "hook": hook,
        "delivery": delivery,
        "done": jobs.iter().all(|j| j.state.is_final()),
        "jobs": list,
    })
}

async fn jobs_of(store: &Store, ids: &[JobId]) -> Result<Vec<Job>, ApiError> {
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        // A job pruned before its delivery record is simply left out.
        if let Some(j) = store
            .get(*id)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
        {
            jobs.push(j);
        }
    }
    Ok(jobs)
}

fn closed() -> ApiError {
    ApiError::NotFoundWhat("no such status link (it may have expired with its delivery)".into())
}

async fn status(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (hook, encoded, given) = path.into_inner();
    let Some(secret) = key(&state).await else {
        return Err(ApiError::Unavailable(
            "the status-link key cannot be read".into(),
        ));
    };
    // A wrong key and an unknown delivery answer alike.
    let delivery = status_link::open(&secret, &hook, &encoded, &given).ok_or_else(closed)?;
    let ids = state
        .store
        .delivery_jobs(hook.clone(), delivery.clone())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(closed)?;
    let jobs = jobs_of(&state.store, &ids).await?;
    // The delivery's replay key, which names its jobs, is kept a year; the link goes
    // with the last of its jobs.
    if jobs.is_empty() && !ids.is_empty() {
        return Err(closed());
    }
    if !super::wants_event_stream(&req) {
        return Ok(HttpResponse::Ok().json(snapshot(&hook, &delivery, &jobs)));
    }
    let (store, worker) = (state.store.clone(), state.worker.clone());
    let changed = store.changed();
    // (sequence number, last snapshot sent, every job ended and said so)
    let start = (0u64, String::new(), false);
    let stream = futures_util::stream::unfold(
        (start, changed),
        move |((seq, last, ended), mut changed)| {
            let (store, worker, ids, hook, delivery) = (
                store.clone(),
                worker.clone(),
                ids.clone(),
                hook.clone(),
                delivery.clone(),
            );
            async move {
                if ended {
                    return None;
                }
                loop {
                    if worker.is_stopping() {
                        return None;
                    }
                    changed.borrow_and_update();
                    let jobs = jobs_of(&store, &ids).await.ok()?;
                    let now = snapshot(&hook, &delivery, &jobs);
                    let text = now.to_string();
                    if text != last {
                        let done = now["done"].as_bool().unwrap_or(false);
                        let mut chunk = String::new();
                        let _ = write!(chunk, "id: {}\ndata: {text}\n\n", seq + 1);
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(chunk)),
                            ((seq + 1, text, done), changed),
                        ));
                    }
                    tokio::select! {
                        r = changed.changed() => if r.is_err() { tokio::time::sleep(POLL).await },
                        () = tokio::time::sleep(POLL) => {}
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
