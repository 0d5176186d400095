//! Operations endpoints: `GET /metrics` (Prometheus text), `GET /healthz` (the process
//! answers), `GET /readyz` (the store can read and write), and `POST /api/reload`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::api::authorize;
use super::{ApiError, AppState};
use crate::store::{JobFilter, JobState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/api/reload", web::post().to(reload));
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.config.get().server.metrics_auth {
        authorize(&req, &state)?;
    }
    let counts = state.store.count_by_state().await.unwrap_or_default();
    let queued = counts
        .iter()
        .find(|(s, _)| *s == JobState::Queued)
        .map_or(0, |(_, n)| i64::try_from(*n).unwrap_or(i64::MAX));
    let by_state: Vec<(String, i64)> = counts
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), i64::try_from(*n).unwrap_or(i64::MAX)))
        .collect();
    let outbox = state.store.outbox_depth().await.unwrap_or_default();
    let gauges = crate::metrics::Gauges {
        jobs_by_state: by_state,
        queue_depth: queued,
        outbox_pending: outbox.pending,
        outbox_oldest: outbox
            .oldest
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default(),
        paused: state
            .store
            .pauses()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.hook)
            .collect(),
        replicas_alive: state
            .store
            .replicas_alive(state.config.get().store.lease)
            .await
            .unwrap_or_default(),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&gauges)))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready when the store can read and write (a full disk, or a writer that stopped, is
/// not ready: deliveries would get 503).
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let probe = JobFilter {
        limit: Some(1),
        ..JobFilter::default()
    };
    let read = state.store.list(probe).await.map(|_| ());
    match read.and(state.store.ping().await) {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "error": format!("the state database cannot be used: {e}") })),
    }
}

async fn reload(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let reloader = state.reloader.clone();
    let result = web::block(move || reloader.reload("POST /api/reload"))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    match result {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({
            "status": "reloaded",
            "hooks": state.config.get().hooks.len(),
        }))),
        Err(invalid) => Err(ApiError::Unprocessable(format!(
            "the config was not reloaded; the previous one keeps serving:\n{invalid}"
        ))),
    }
}
