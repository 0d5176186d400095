//! Operator controls under `/api`: the hooks overview, a deploy by hand, a rollback to
//! the last good commit, a redeploy of a job's exact commit, and pausing and resuming a
//! hook. Each deploy is a manual job that says why it was queued.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::api::{authorize, job_or_404, unavailable};
use super::views::secs;
use super::{ApiError, AppState};
use crate::config::{Hook, Matching, Rule};
use crate::event::{ChangedPaths, DeliveryId, PushEvent, RefName, Sha};
use crate::routing;
use crate::store::{Acceptance, Delivery, Job, JobFilter, JobId, JobState, NewJob, Origin};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/hooks", web::get().to(hooks))
        .route("/api/hooks/{id}/deploy", web::post().to(deploy))
        .route("/api/hooks/{id}/rollback", web::post().to(rollback))
        .route("/api/hooks/{id}/pause", web::post().to(pause))
        .route("/api/hooks/{id}/resume", web::post().to(resume))
        .route("/api/jobs/{id}/redeploy", web::post().to(redeploy));
}

/// How many of a hook's latest jobs the overview and a rollback look through.
const HISTORY: usize = 500;

fn hook_of<'c>(config: &'c crate::config::Config, id: &str) -> Result<&'c Hook, ApiError> {
    config
        .hook(id)
        .ok_or_else(|| ApiError::UnknownHook(id.to_owned()))
}

/// A job to queue by hand: `sha` on `git_ref` with `rule`, recorded with `reason`.
struct ManualJob<'a> {
    hook: &'a Hook,
    rule: &'a Rule,
    git_ref: RefName,
    before: Option<Sha>,
    sha: Sha,
    force: bool,
    reason: Option<String>,
}

/// A job an operator's request queued.
pub(super) struct Queued {
    pub hook: String,
    pub id: JobId,
    /// `queued`, or `held` on a paused hook.
    state: JobState,
    rule: usize,
    rule_key: String,
    git_ref: RefName,
    sha: Sha,
    reason: Option<String>,
}

impl Queued {
    /// The API's 202.
    fn answer(&self) -> HttpResponse {
        HttpResponse::Accepted().json(json!({
            "status": "queued",
            "hook": self.hook,
            "jobs": [{
                "id": self.id.0, "rule": self.rule, "rule_key": self.rule_key,
                "ref": self.git_ref.as_str(), "sha": self.sha.as_str(), "state": self.state.as_str(),
                "reason": self.reason,
            }],
        }))
    }
}

/// Queues `m`.
async fn queue_manual(state: &AppState, m: ManualJob<'_>) -> Result<Queued, ApiError> {
    let zeros = || Sha::parse(&"0".repeat(m.sha.as_str().len())).expect("zeros are a sha");
    let event = PushEvent {
        forge: m.hook.forge,
        repository: m.hook.repository.clone(),
        git_ref: m.git_ref.clone(),
        before: m.before.clone().unwrap_or_else(zeros),
        after: m.sha.clone(),
        forced: false,
        paths: ChangedPaths::Unknown,
        pusher: Some("manual".to_owned()),
        delivery: None::<DeliveryId>,
    };
    let asked = Delivery {
        hook: m.hook.id.clone(),
        delivery: None,
        forge: m.hook.forge,
        event: Some("manual".to_owned()),
        git_ref: Some(m.git_ref.clone()),
        after: Some(m.sha.clone()),
        note: None,
    };
    let job = NewJob {
        rule: m.rule.index,
        rule_key: m.rule.key(),
        per_rule: m.hook.matching == Matching::All,
        lock: m.rule.lock.clone(),
        queue: m.rule.queue,
        event,
        origin: Origin::Manual { force: m.force },
        notify: crate::notify::subscriptions(&state.config.get(), m.hook, m.rule),
        reason: m.reason.clone(),
    };
    let accepted = state
        .store
        .accept(asked, Vec::new(), vec![job], m.hook.max_queued)
        .await
        .map_err(unavailable)?;
    let job = match accepted {
        Acceptance::Queued(entered) => entered[0],
        Acceptance::Full { waiting } => {
            return Err(ApiError::QueueFull {
                hook: m.hook.id.clone(),
                waiting,
            });
        }
        Acceptance::Duplicate(_) => {
            return Err(ApiError::Unavailable("the store refused the job".into()));
        }
    };
    if job.state == JobState::Queued {
        state.worker.wake();
    }
    let id = job.id;
    tracing::info!(hook = %m.hook.id, job = id.0, state = job.state.as_str(), git_ref = %m.git_ref, sha = %m.sha, force = m.force, reason = ?m.reason, "manual job queued");
    Ok(Queued {
        hook: m.hook.id.clone(),
        id,
        state: job.state,
        rule: m.rule.index,
        rule_key: m.rule.key(),
        git_ref: m.git_ref,
        sha: m.sha,
        reason: m.reason,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeployRequest {
    /// A full ref (`refs/tags/v1.2`) or a branch name (`main`).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit to deploy; without it, the ref's current commit on the remote.
    pub sha: Option<String>,
    /// Deploy `sha` even if it is not reachable from `ref` (recorded in the job).
    #[serde(default)]
    pub force: bool,
    /// The rule (its name, or its index) to deploy with; default: the first whose
    /// branch/tag globs match the ref.
    pub rule: Option<String>,
}

/// The rule a deploy by hand runs with: the one asked for (which must deploy the ref), or
/// the first whose branch/tag globs match it.
fn pick_rule<'h>(
    hook: &'h Hook,
    key: Option<&str>,
    git_ref: &RefName,
) -> Result<&'h Rule, ApiError> {
    let probe = PushEvent {
        forge: hook.forge,
        repository: hook.repository.clone(),
        git_ref: git_ref.clone(),
        before: Sha::parse(&"0".repeat(40)).expect("zeros are a sha"),
        after: Sha::parse(&"0".repeat(40)).expect("zeros are a sha"),
        forced: false,
        paths: ChangedPaths::Unknown,
        pusher: None,
        delivery: None,
    };
    let Some(key) = key else {
        return hook
            .rules
            .iter()
            .find(|r| routing::matches(r, &probe))
            .ok_or_else(|| {
                ApiError::Unprocessable(format!("no rule of hook {:?} matches {git_ref}", hook.id))
            });
    };
    let rule = hook.rule(key).ok_or_else(|| {
        ApiError::Unprocessable(format!("hook {:?} has no rule {key:?}", hook.id))
    })?;
    match routing::why_not(rule, &probe) {
        Some(why) => Err(ApiError::Unprocessable(format!(
            "rule {key} of hook {:?} does not deploy {git_ref}: {why}",
            hook.id
        ))),
        None => Ok(rule),
    }
}

async fn deploy(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<DeployRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(deploy_by_hand(&state, &id, body.into_inner())
        .await?
        .answer())
}

/// A deploy by hand: with the rule asked for, or the first of the hook whose branch/tag
/// globs match the ref.
pub(super) async fn deploy_by_hand(
    state: &AppState,
    hook: &str,
    body: DeployRequest,
) -> Result<Queued, ApiError> {
    let config = state.config.get();
    let hook = hook_of(&config, hook)?;
    let full = if body.git_ref.starts_with("refs/") {
        body.git_ref.clone()
    } else {
        format!("refs/heads/{}", body.git_ref)
    };
    let git_ref = RefName::parse(&full).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Pick the rule by the ref alone first: no point asking the remote for a ref that no
    // rule would deploy.
    let rule = pick_rule(hook, body.rule.as_deref(), &git_ref)?;
    let sha = if let Some(s) = &body.sha {
        Sha::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?
    } else {
        let resolved = crate::worker::resolve_ref(state.git.clone(), hook, &git_ref)
            .await
            .map_err(ApiError::BadGateway)?;
        Sha::parse(&resolved).map_err(|e| ApiError::BadGateway(e.to_string()))?
    };
    let m = ManualJob {
        hook,
        rule,
        git_ref,
        before: None,
        sha,
        force: body.force,
        reason: None,
    };
    queue_manual(state, m).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackRequest {
    /// The rule whose deploys to roll back; default: the rule of the hook's last
    /// successful deploy.
    pub rule: Option<String>,
    /// The commit to go back to, which must have deployed successfully before; default:
    /// the last one before the current one.
    pub to: Option<String>,
}

/// The hook's jobs that succeeded, newest first.
async fn succeeded(state: &AppState, hook: &str) -> Result<Vec<Job>, ApiError> {
    state
        .store
        .list(JobFilter {
            hook: Some(hook.to_owned()),
            state: Some(JobState::Succeeded),
            limit: Some(HISTORY),
        })
        .await
        .map_err(unavailable)
}

fn short(sha: &Sha) -> &str {
    &sha.as_str()[..7]
}

async fn rollback(
    req: HttpRequest,
    id: web::Path<String>,
    body: Option<web::Json<RollbackRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    Ok(roll_back(&state, &id, body).await?.answer())
}

/// Deploys the commit that deployed successfully before the current one (or `to`).
pub(super) async fn roll_back(
    state: &AppState,
    hook: &str,
    body: RollbackRequest,
) -> Result<Queued, ApiError> {
    let config = state.config.get();
    let hook = hook_of(&config, hook)?;
    let good = succeeded(state, &hook.id).await?;
    let rule_key = match &body.rule {
        Some(r) => hook
            .rule(r)
            .ok_or_else(|| {
                ApiError::Unprocessable(format!("hook {:?} has no rule {r:?}", hook.id))
            })?
            .key(),
        None => good.first().map(|j| j.rule_key.clone()).ok_or_else(|| {
            ApiError::Conflict(format!(
                "hook {:?} has no successful deploy to roll back",
                hook.id
            ))
        })?,
    };
    let rule = hook.rule(&rule_key).ok_or_else(|| {
        ApiError::Conflict(format!(
            "the rule {rule_key} of hook {:?} is no longer configured",
            hook.id
        ))
    })?;
    let good: Vec<&Job> = good.iter().filter(|j| j.rule_key == rule_key).collect();
    let Some(current) = good.first() else {
        return Err(ApiError::Conflict(format!(
            "rule {rule_key} of hook {:?} has no successful deploy to roll back",
            hook.id
        )));
    };
    let target = match &body.to {
        Some(to) => {
            let to = to.to_ascii_lowercase();
            if current.sha.as_str().starts_with(&to) {
                return Err(ApiError::Conflict(format!(
                    "{} is what is deployed now (job {})",
                    current.sha, current.id
                )));
            }
            good.iter().find(|j| j.sha.as_str().starts_with(&to)).ok_or_else(|| {
                ApiError::Conflict(format!(
                    "{to} never deployed successfully with rule {rule_key} of hook {:?}; roll back only to a commit that did",
                    hook.id
                ))
            })?
        }
        None => good.iter().find(|j| j.sha != current.sha).ok_or_else(|| {
            ApiError::Conflict(format!(
                "nothing to roll back to: {} (job {}) is the only commit that deployed successfully",
                current.sha, current.id
            ))
        })?,
    };
    let reason = format!(
        "rollback of {}/{rule_key} from {} (job {}) to {} (job {})",
        hook.id,
        short(&current.sha),
        current.id,
        short(&target.sha),
        target.id
    );
    let m = ManualJob {
        hook,
        rule,
        git_ref: target.git_ref.clone(),
        before: Some(current.sha.clone()),
        sha: target.sha.clone(),
        // It deployed before from this ref, which may have moved on since.
        force: true,
        reason: Some(reason),
    };
    queue_manual(state, m).await
}

async fn redeploy(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(deploy_again(&state, &id).await?.answer())
}

/// Deploys a job's exact commit again, with its rule.
pub(super) async fn deploy_again(state: &AppState, job: &str) -> Result<Queued, ApiError> {
    let job = job_or_404(state, job).await?;
    let id = job.id;
    let config = state.config.get();
    let hook = hook_of(&config, &job.hook)?;
    let rule = hook.rule(&job.rule_key).ok_or_else(|| {
        ApiError::Conflict(format!(
            "job {id}'s rule {} of hook {:?} is no longer configured",
            job.rule_key, hook.id
        ))
    })?;
    let m = ManualJob {
        hook,
        rule,
        git_ref: job.git_ref.clone(),
        before: None,
        sha: job.sha.clone(),
        force: true,
        reason: Some(format!("redeploy of job {id} ({})", short(&job.sha))),
    };
    queue_manual(state, m).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    reason: Option<String>,
}

async fn pause(
    req: HttpRequest,
    id: web::Path<String>,
    body: Option<web::Json<PauseRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let reason = body.and_then(|b| b.into_inner().reason).unwrap_or_default();
    let (hook, reason, held) = pause_hook(&state, &id, &reason).await?;
    Ok(HttpResponse::Ok().json(json!({
        "hook": hook, "paused": true, "reason": reason,
        "held": held.iter().map(|j| j.0).collect::<Vec<_>>(),
    })))
}

/// Pauses `hook` with `reason` (control characters dropped, cut to 500); returns the
/// hook, the reason kept and the jobs held.
pub(super) async fn pause_hook(
    state: &AppState,
    hook: &str,
    reason: &str,
) -> Result<(String, String, Vec<JobId>), ApiError> {
    let hook = hook_of(&state.config.get(), hook)?.id.clone();
    let reason = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect::<String>();
    let held = state
        .store
        .pause(hook.clone(), reason.clone())
        .await
        .map_err(unavailable)?;
    tracing::info!(hook = %hook, reason = ?reason, held = held.len(), "hook paused");
    Ok((hook, reason, held))
}

async fn resume(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (hook, released) = resume_hook(&state, &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "hook": hook, "paused": false,
        "released": released.iter().map(|j| j.0).collect::<Vec<_>>(),
    })))
}

/// Resumes `hook`; returns it and the jobs released.
pub(super) async fn resume_hook(
    state: &AppState,
    hook: &str,
) -> Result<(String, Vec<JobId>), ApiError> {
    let hook = hook_of(&state.config.get(), hook)?.id.clone();
    let Some(released) = state
        .store
        .resume(hook.clone())
        .await
        .map_err(unavailable)?
    else {
        return Err(ApiError::Conflict(format!("hook {hook:?} is not paused")));
    };
    state.worker.wake();
    tracing::info!(hook = %hook, released = released.len(), "hook resumed");
    Ok((hook, released))
}

/// Each hook with what is live now (the last successful deploy of each rule), what runs,
/// what waits, its last failure and whether it is paused.
async fn hooks(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    Ok(HttpResponse::Ok().json(json!({ "hooks": overview(&state).await? })))
}

/// The hooks overview, as `/api/hooks` and the dashboard show it.
pub(super) async fn overview(state: &AppState) -> Result<Vec<serde_json::Value>, ApiError> {
    let config = state.config.get();
    let pauses = state.store.pauses().await.map_err(unavailable)?;
    let mut out = Vec::new();
    for hook in &config.hooks {
        let jobs = state
            .store
            .list(JobFilter {
                hook: Some(hook.id.clone()),
                state: None,
                limit: Some(HISTORY),
            })
            .await
            .map_err(unavailable)?;
        let live: Vec<_> = hook
            .rules
            .iter()
            .filter_map(|r| {
                let key = r.key();
                let j = jobs
                    .iter()
                    .find(|j| j.rule_key == key && j.state == JobState::Succeeded)?;
                Some(json!({
                    "rule": key, "job": j.id.0, "ref": j.git_ref.as_str(), "sha": j.sha.as_str(),
                    "pusher": j.pusher, "finished_at": j.finished_at.map(secs),
                }))
            })
            .collect();
        let count = |s: JobState| jobs.iter().filter(|j| j.state == s).count();
        let running: Vec<i64> = jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .map(|j| j.id.0)
            .collect();
        let failure = jobs.iter().find(|j| {
            matches!(
                j.state,
                JobState::Failed | JobState::TimedOut | JobState::Interrupted
            )
        });
        let pause = pauses.iter().find(|p| p.hook == hook.id);
        out.push(json!({
            "id": hook.id,
            "forge": hook.forge.as_str(),
            "repository": hook.repository,
            "live": live,
            "running": running,
            "queued": count(JobState::Queued),
            "held": count(JobState::Held),
            "paused": pause.map(|p| json!({ "reason": p.reason, "since": secs(p.since) })),
            "last_failure": failure.map(|j| json!({
                "job": j.id.0, "state": j.state.as_str(), "detail": j.detail, "sha": j.sha.as_str(),
                "finished_at": j.finished_at.map(secs),
            })),
        }));
    }
    Ok(out)
}
