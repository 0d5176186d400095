//! `POST /hooks/{id}`: reads the body within `max_body`, hands it to `intake`, records
//! accepted work and every verified delivery's outcome in the store before answering,
//! and logs one line per delivery.

use std::time::SystemTime;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde_json::json;

use super::{ApiError, AppState, status};
use crate::access;
use crate::config::Hook;
use crate::event::{DeliveryId, RefName, Sha};
use crate::forge;
use crate::intake::{self, Decision, Deploy, IntakeError, JobSpec};
use crate::store::{Acceptance, Delivery, JobState, NewJob, NotQueued, Origin, Prior};
use crate::verify::Headers;

/// How long a request body may take to arrive in full.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// actix's header map seen through `verify::Headers`.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(header::HeaderValue::as_bytes)
    }
}

pub async fn deliver(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let config = state.config.get();
    if let Some(peer) = req.peer_addr() {
        // Every header line, in order: a proxy may append its own line rather than
        // extend the client's, and the client's own lines come first.
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("X-Forwarded-For")
            .filter_map(|v| v.to_str().ok())
            .collect();
        let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
        let client = access::client_ip(
            peer.ip(),
            forwarded.as_deref(),
            &config.server.trusted_proxies,
        );
        if !access::allowed(client, &config.server.allow_from) {
            tracing::warn!(hook = ?id.as_str(), client = %client, "delivery refused: address not in server.allow_from");
            return Err(ApiError::Forbidden(format!(
                "deliveries from {client} are not allowed (server.allow_from)"
            )));
        }
    }
    let Some(hook) = config.hook(&id) else {
        tracing::info!(hook = ?id.as_str(), "delivery for an unknown hook refused");
        return Err(ApiError::UnknownHook(id.into_inner()));
    };
    let headers = ActixHeaders(req.headers());
    // Unverified, but printable: only for log lines about refused requests.
    let claimed_id = forge::claimed_delivery_id(hook.forge, &headers);
    let claimed = show(claimed_id.as_ref());
    let body = match read_body(&req, payload, config.server.max_body).await {
        Ok(body) => body,
        Err(e) => {
            tracing::info!(hook = %hook.id, delivery = %claimed, error = %e, "delivery body refused");
            return Err(e);
        }
    };
    let decision = match intake::decide(hook, &headers, &body, SystemTime::now()) {
        Ok(d) => d,
        Err(IntakeError::Unauthorized(r)) => {
            state.metrics.signature_failure(&hook.id);
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "unauthorized");
            tracing::warn!(hook = %hook.id, delivery = %claimed, peer = ?req.peer_addr(), reason = %r, "delivery rejected: not authentic");
            return Err(ApiError::Unauthorized(r.to_string()));
        }
        Err(IntakeError::BadRequest(e)) => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "bad_request");
            // The message may quote payload text: `?` escapes it for the log.
            tracing::warn!(hook = %hook.id, delivery = %claimed, error = ?e.to_string(), "signed delivery is unreadable");
            let seen = received(hook, claimed_id.clone(), None, None);
            record(&state, seen, NotQueued::BadPayload, e.to_string()).await;
            return Err(ApiError::BadRequest(e.to_string()));
        }
    };
    respond(&state, &req, hook, decision).await
}

async fn respond(
    state: &AppState,
    req: &HttpRequest,
    hook: &Hook,
    decision: Decision,
) -> Result<HttpResponse, ApiError> {
    match decision {
        Decision::Pong { delivery } => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "pong");
            tracing::info!(hook = %hook.id, delivery = %show(delivery.as_ref()), "ping answered");
            let seen = received(hook, delivery.clone(), Some("ping"), None);
            record(state, seen, NotQueued::Pong, "ping answered".to_owned()).await;
            Ok(HttpResponse::Ok().json(json!({
                "status": "pong",
                "hook": hook.id,
                "delivery": delivery.as_ref().map(DeliveryId::as_str),
            })))
        }
        Decision::Ignore {
            delivery,
            event,
            pushed,
            reason,
        } => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "ignored");
            tracing::info!(hook = %hook.id, delivery = %show(delivery.as_ref()), reason = ?reason, "delivery ignored");
            let seen = received(hook, delivery.clone(), Some(&event), pushed);
            record(state, seen, NotQueued::Ignored, reason.clone()).await;
            Ok(HttpResponse::Ok().json(json!({
                "status": "ignored",
                "hook": hook.id,
                "delivery": delivery.as_ref().map(DeliveryId::as_str),
                "reason": reason,
            })))
        }
        Decision::Deploy(deploy) => queue(state, req, hook, deploy).await,
    }
}

/// The store's jobs for a push's matches, each with who is told about it.
fn new_jobs(config: &crate::config::Config, hook: &Hook, jobs: Vec<JobSpec>) -> Vec<NewJob> {
    jobs.into_iter()
        .map(|spec| NewJob {
            notify: hook.rules.get(spec.rule).map_or_else(Vec::new, |rule| {
                crate::notify::subscriptions(config, hook, rule)
            }),
            lock: hook.rules.get(spec.rule).and_then(|r| r.lock.clone()),
            reason: None,
            rule: spec.rule,
            rule_key: spec.rule_key,
            per_rule: spec.per_rule,
            queue: spec.queue,
            event: spec.event,
            origin: Origin::Push,
        })
        .collect()
}

/// The rules that did not deploy a push, and why, as the 202 lists them.
fn not_deployed_json(rules: &[(RefName, crate::routing::NotDeployed)]) -> Vec<serde_json::Value> {
    rules
        .iter()
        .map(|(git_ref, n)| json!({ "rule": n.rule, "ref": git_ref.as_str(), "reason": n.reason }))
        .collect()
}

/// Each job's rule (index and key), ref and commit, for the 202 and the log.
type Summary = ((usize, String), String, String);

fn summary_of(jobs: &[JobSpec]) -> Vec<Summary> {
    jobs.iter()
        .map(|j| {
            (
                (j.rule, j.rule_key.clone()),
                j.event.git_ref.to_string(),
                j.event.after.to_string(),
            )
        })
        .collect()
}

/// Why the other rules did not deploy a push, as the delivery's record keeps it.
fn record_note(rules: &[(RefName, crate::routing::NotDeployed)]) -> Option<String> {
    let notes: Vec<String> = rules
        .iter()
        .map(|(_, n)| format!("rule {}: {}", n.rule, n.reason))
        .collect();
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Queues a delivery's jobs (unless it is a replay) and answers 202 with them and the
/// delivery's status link.
async fn queue(
    state: &AppState,
    req: &HttpRequest,
    hook: &Hook,
    deploy: Deploy,
) -> Result<HttpResponse, ApiError> {
    let Deploy {
        delivery,
        replay_keys,
        jobs,
        skipped,
        not_deployed,
    } = deploy;
    let summary = summary_of(&jobs);
    let mut seen = received(
        hook,
        delivery.clone(),
        Some("push"),
        jobs.first()
            .map(|j| (j.event.git_ref.clone(), j.event.after.clone())),
    );
    seen.note = record_note(&not_deployed);
    let outcome = state
        .store
        .accept(
            seen,
            replay_keys,
            new_jobs(&state.config.get(), hook, jobs),
            hook.max_queued,
        )
        .await
        .map_err(|e| {
            tracing::error!(hook = %hook.id, delivery = %show(delivery.as_ref()), error = %e, "delivery not recorded");
            state.metrics.delivery(&hook.id, hook.forge.as_str(), "unavailable");
            // The cause stays in the log: a sender learns nothing of the database (its
            // host, its socket path) from the answer.
            ApiError::Unavailable("the daemon's store cannot write; the cause is in its log".into())
        })?;
    let delivery_str = delivery.as_ref().map(DeliveryId::as_str);
    match outcome {
        Acceptance::Duplicate(prior) => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "duplicate");
            tracing::info!(hook = %hook.id, delivery = %show(delivery.as_ref()), accepted_as = ?prior.delivery, job = ?prior.job.map(|j| j.0), "duplicate delivery: already accepted, not deployed again");
            let first = summary
                .first()
                .map(|(_, r, sha)| (r.as_str(), sha.as_str()));
            // The sender retrying a delivery it sent (same id) gets its link again.
            let link = match (prior.same_id, delivery_str) {
                (true, Some(d)) => status::url(state, req, &hook.id, d).await,
                _ => None,
            };
            Ok(duplicate_answer(
                &hook.id,
                delivery_str,
                &prior,
                first,
                link.as_deref(),
            ))
        }
        Acceptance::Full { waiting } => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "queue_full");
            tracing::warn!(hook = %hook.id, delivery = %show(delivery.as_ref()), waiting, "delivery refused: the hook's queue is full (max_queued)");
            Err(ApiError::QueueFull {
                hook: hook.id.clone(),
                waiting,
            })
        }
        Acceptance::Queued(entered) => {
            state
                .metrics
                .delivery(&hook.id, hook.forge.as_str(), "queued");
            // A paused hook's jobs wait for its resume, which wakes the worker itself.
            if entered.iter().any(|j| j.state == JobState::Queued) {
                state.worker.wake();
            }
            let jobs: Vec<_> = entered
                .iter()
                .zip(&summary)
                .map(|(job, ((rule, key), git_ref, sha))| {
                    let (id, job_state) = (job.id.0, job.state.as_str());
                    tracing::info!(hook = %hook.id, delivery = %show(delivery.as_ref()), job = id, state = job_state, rule = %key, git_ref = %git_ref, sha = %sha, "job queued");
                    json!({ "id": id, "rule": rule, "rule_key": key, "ref": git_ref, "sha": sha, "state": job_state })
                })
                .collect();
            let link = match delivery_str {
                Some(d) => status::url(state, req, &hook.id, d).await,
                None => None,
            };
            Ok(HttpResponse::Accepted().json(json!({
                "status": "queued",
                "hook": hook.id,
                "delivery": delivery_str,
                "jobs": jobs,
                "skipped": skipped,
                "not_deployed": not_deployed_json(&not_deployed),
                "status_url": link,
            })))
        }
    }
}

/// A verified delivery, as the store records it.
fn received(
    hook: &Hook,
    delivery: Option<DeliveryId>,
    event: Option<&str>,
    pushed: Option<(RefName, Sha)>,
) -> Delivery {
    let (git_ref, after) = pushed.unzip();
    Delivery {
        hook: hook.id.clone(),
        delivery,
        forge: hook.forge,
        event: event.map(str::to_owned),
        git_ref,
        after,
        note: None,
    }
}

/// Records a verified delivery that queued nothing. The answer does not depend on it: a
/// store that cannot write is logged, and the forge still hears what happened.
async fn record(state: &AppState, delivery: Delivery, outcome: NotQueued, reason: String) {
    if let Err(e) = state.store.record(delivery, outcome, reason).await {
        tracing::warn!(error = %e, "cannot record the delivery");
    }
}

fn show(d: Option<&DeliveryId>) -> &str {
    d.map_or("-", DeliveryId::as_str)
}

/// Reads at most `limit` bytes. A declared or actual larger body is refused with 413
/// without buffering it; a body cut short is a 400.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let capacity = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
    let read = async {
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::BadRequest(format!(
                    "the request body could not be read to its end: {e}"
                ))
            })?;
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    // A body that trickles in (or never comes) must not hold a connection for good.
    tokio::time::timeout(BODY_DEADLINE, read)
        .await
        .map_err(|_| ApiError::RequestTimeout(BODY_DEADLINE.as_secs()))?
}

/// The 200 for a duplicate delivery.
/// `first` is the ref and commit of its first job, for the command that deploys it anyway.
fn duplicate_answer(
    hook: &str,
    delivery: Option<&str>,
    prior: &Prior,
    first: Option<(&str, &str)>,
    status_url: Option<&str>,
) -> HttpResponse {
    let redeploy =
        first.map(|(git_ref, sha)| format!("deployhook deploy {hook} --ref {git_ref} --sha {sha}"));
    HttpResponse::Ok().json(json!({
        "status": "duplicate",
        "hook": hook,
        "delivery": delivery,
        "accepted_as": {
            "delivery": prior.delivery,
            "job": prior.job.map(|j| j.0),
        },
        "reason": duplicate_reason(prior, redeploy.as_deref()),
        "status_url": status_url,
    }))
}

/// Why a duplicate does not deploy: the same delivery again, or the same signed push under
/// another delivery id (which would be a replay, so it is refused too), naming what it was
/// first accepted as and how to deploy it again on purpose.
fn duplicate_reason(prior: &Prior, redeploy: Option<&str>) -> String {
    let job = prior
        .job
        .map(|j| format!(" (job {})", j.0))
        .unwrap_or_default();
    if prior.same_id {
        return format!("this delivery was already accepted{job}; it will not deploy again");
    }
    let as_delivery = prior
        .delivery
        .as_deref()
        .map(|d| format!(" as delivery {d:?}"))
        .unwrap_or_default();
    let again = redeploy
        .map(|c| format!("; to deploy it again on purpose, run `{c}`"))
        .unwrap_or_default();
    format!(
        "the same push was already accepted{as_delivery}{job} under another delivery id; it will not deploy again{again}"
    )
}
