//! The dashboard at `/ui/`: the browser-facing pages (the only module that renders HTML).
//! Every request must name one of the daemon's hosts (421), every state-changing one
//! must come from the page itself (403, `origin`), both before routing; every page but
//! the login needs a session (`session`, a signed cookie the login sets for whoever
//! knows the API token). `/api` never accepts the cookie. The actions are the API's own
//! operations (`controls`), as plain form posts answered with 303.

mod origin;
mod pages;
mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;
use serde::Deserialize;

use super::api::{cancel_job, check_host, is_token, job_id, job_or_404, unavailable};
use super::controls;
use super::{ApiError, AppState};
use crate::store::JobState;

/// The dashboard's share of the daemon's state.
#[derive(Default)]
pub struct UiState {
    /// The session key, read from the store on first use.
    key: tokio::sync::OnceCell<Arc<Vec<u8>>>,
    /// Failed logins per address: how many, since when.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Failed logins allowed per address in [`LOGIN_WINDOW`].
const LOGIN_TRIES: u32 = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// How often a live log looks for more.
const LIVE_POLL: Duration = Duration::from_millis(200);

/// The most of a log a job page shows at once (the rest: `deployhook logs`).
const PAGE_LOG: u64 = 2 << 20;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(actix_web::middleware::from_fn(guard))
            .route("", web::get().to(|| async { see_other("/ui/") }))
            .route("/", web::get().to(overview))
            .route("/login", web::get().to(login_form))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/static/{file}", web::get().to(asset))
            .route("/hooks/{id}", web::get().to(hook_page))
            .route("/hooks/{id}/{action}", web::post().to(hook_action))
            .route("/jobs/{id}", web::get().to(job_page))
            .route("/jobs/{id}/live", web::get().to(live))
            .route("/jobs/{id}/{action}", web::post().to(job_action)),
    );
}

/// Before routing: the `Host` must be the daemon's, and a state-changing request must
/// come from the dashboard itself.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<web::Data<AppState>>() {
        check_host(req.request(), &state.config.get().server)?;
    }
    let h = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = origin::check(
        req.method().as_str(),
        h("sec-fetch-site"),
        h("origin"),
        h("host"),
    ) {
        tracing::warn!(path = %req.path(), "{why}");
        return Ok(req.into_response(error_page(StatusCode::FORBIDDEN, &why)));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

fn html(status: StatusCode, markup: &Markup) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    for h in SECURITY_HEADERS {
        res.insert_header(h);
    }
    res.content_type("text/html; charset=utf-8")
        .body(markup.clone().into_string())
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let body = maud::html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
        p class="error" { (message) }
        p { a href="/ui/" { "Back to the hooks" } }
    };
    html(status, &pages::page("Error", &body))
}

/// An operation's error, as a page.
fn failed(e: &ApiError) -> HttpResponse {
    error_page(actix_web::ResponseError::status_code(e), &e.to_string())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn key(state: &AppState) -> Result<Arc<Vec<u8>>, ApiError> {
    state
        .ui
        .key
        .get_or_try_init(|| async {
            state
                .store
                .secret(session::KEY_NAME.to_owned())
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
        .map_err(unavailable)
}

fn token_bytes(state: &AppState) -> Vec<u8> {
    let config = state.config.get();
    config
        .server
        .api_token
        .as_ref()
        .unwrap_or(&state.api_token)
        .expose()
        .to_vec()
}

/// `Ok` with a valid session; else the answer that sends the browser to the login.
async fn session(req: &HttpRequest, state: &AppState) -> Result<(), HttpResponse> {
    let key = key(state).await.map_err(|e| failed(&e))?;
    let valid = req
        .cookie(session::COOKIE)
        .is_some_and(|c| session::check(&key, &token_bytes(state), c.value(), now_secs()));
    if valid {
        return Ok(());
    }
    let next = if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/ui/", actix_web::http::uri::PathAndQuery::as_str)
    } else {
        "/ui/"
    };
    Err(see_other(&format!(
        "/ui/login?next={}",
        serde_urlencoded::to_string([("", next)])
            .unwrap_or_default()
            .trim_start_matches('=')
    )))
}

/// The job a page is about, for a signed-in browser; else the login or a 404 page.
async fn signed_in_job(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
) -> Result<crate::store::Job, HttpResponse> {
    session(req, state).await?;
    job_or_404(state, id).await.map_err(|e| failed(&e))
}

/// Where a login may send the browser: a path of the dashboard, nothing else.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("/ui//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(q: web::Query<NextQuery>) -> HttpResponse {
    html(
        StatusCode::OK,
        &pages::login(None, safe_next(q.next.as_deref())),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let next = safe_next(form.next.as_deref()).to_owned();
    {
        let mut failures = state
            .ui
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        if failures.get(&peer).is_some_and(|(n, _)| *n >= LOGIN_TRIES) {
            tracing::warn!(peer = %peer, "dashboard login refused: too many failed attempts");
            return html(
                StatusCode::TOO_MANY_REQUESTS,
                &pages::login(
                    Some("Too many failed logins from this address; wait a minute."),
                    &next,
                ),
            );
        }
    }
    if !is_token(&state, &form.token) {
        let mut failures = state
            .ui
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = failures.entry(peer).or_insert((0, Instant::now()));
        entry.0 += 1;
        tracing::warn!(peer = %peer, "dashboard login with a wrong token");
        return html(
            StatusCode::UNAUTHORIZED,
            &pages::login(Some("That is not the API token."), &next),
        );
    }
    let key = match key(&state).await {
        Ok(k) => k,
        Err(e) => return failed(&e),
    };
    let value = session::issue(&key, &token_bytes(&state), now_secs());
    let secure = state.config.get().server.tls.is_some();
    let cookie = actix_web::cookie::Cookie::build(session::COOKIE, value)
        .path("/ui")
        .http_only(true)
        .secure(secure)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(session::LIFETIME_SECS).unwrap_or(i64::MAX),
        ))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, next))
        .finish()
}

async fn logout() -> HttpResponse {
    let mut gone = actix_web::cookie::Cookie::build(session::COOKIE, "")
        .path("/ui")
        .finish();
    gone.make_removal();
    HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/ui/login"))
        .finish()
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "live.js" => (include_str!("live.js"), "text/javascript; charset=utf-8"),
        "style.css" => (include_str!("style.css"), "text/css; charset=utf-8"),
        _ => return error_page(StatusCode::NOT_FOUND, "no such file"),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "max-age=300"))
        .body(body)
}

async fn overview(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(to_login) = session(&req, &state).await {
        return to_login;
    }
    match controls::overview(&state).await {
        Ok(hooks) => html(StatusCode::OK, &pages::overview(&hooks)),
        Err(e) => failed(&e),
    }
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

/// What a `?done=` after an action says (only these words: nothing from the URL is shown).
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "paused" => "Paused: new jobs wait, held, until you resume.",
        "resumed" => "Resumed: held jobs are queued again.",
        "queued" => "Queued.",
        "cancelled" => "Cancelled.",
        "cancelling" => "Cancelling: the job is being stopped.",
        _ => return None,
    })
}

async fn hook_page(
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<Done>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(to_login) = session(&req, &state).await {
        return to_login;
    }
    let config = state.config.get();
    let Some(hook) = config.hook(&id) else {
        return failed(&ApiError::UnknownHook(id.into_inner()));
    };
    let jobs = state
        .store
        .list(crate::store::JobFilter {
            hook: Some(hook.id.clone()),
            state: None,
            limit: Some(30),
        })
        .await;
    let deliveries = state.store.deliveries(Some(hook.id.clone()), 30).await;
    let pauses = state.store.pauses().await;
    let (Ok(jobs), Ok(deliveries), Ok(pauses)) = (jobs, deliveries, pauses) else {
        return failed(&ApiError::Unavailable("the store cannot be read".into()));
    };
    let page = pages::HookPage {
        id: &hook.id,
        repository: &hook.repository,
        forge: hook.forge.as_str(),
        pause: pauses.iter().find(|p| p.hook == hook.id),
        jobs: &jobs,
        deliveries: &deliveries,
        notice: done_notice(q.done.as_deref()),
    };
    html(StatusCode::OK, &pages::hook(&page))
}

#[derive(Deserialize)]
struct ActionForm {
    reason: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

async fn hook_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(to_login) = session(&req, &state).await {
        return to_login;
    }
    let (hook, action) = path.into_inner();
    let form = form.into_inner();
    let back = |done: &str| see_other(&format!("/ui/hooks/{hook}?done={done}"));
    let to_job = |q: &controls::Queued| see_other(&format!("/ui/jobs/{}?done=queued", q.id));
    let done = match action.as_str() {
        "pause" => controls::pause_hook(&state, &hook, form.reason.as_deref().unwrap_or(""))
            .await
            .map(|_| back("paused")),
        "resume" => controls::resume_hook(&state, &hook)
            .await
            .map(|_| back("resumed")),
        "rollback" => controls::roll_back(&state, &hook, controls::RollbackRequest::default())
            .await
            .map(|q| to_job(&q)),
        "deploy" => {
            let body = controls::DeployRequest {
                git_ref: form.git_ref.unwrap_or_default().trim().to_owned(),
                sha: None,
                force: false,
                rule: None,
            };
            controls::deploy_by_hand(&state, &hook, body)
                .await
                .map(|q| to_job(&q))
        }
        _ => Err(ApiError::NotFound),
    };
    done.unwrap_or_else(|e| failed(&e))
}

/// The web page of the commit on its forge, when `clone_url` is an https URL.
fn commit_url(hook: &crate::config::Hook, sha: &str) -> Option<String> {
    let base = hook.clone_url.strip_prefix("https://")?;
    let base = base.trim_end_matches('/').trim_end_matches(".git");
    let path = match hook.forge {
        crate::event::Forge::Gitlab => "-/commit",
        crate::event::Forge::Bitbucket => "commits",
        _ => "commit",
    };
    Some(format!("https://{base}/{path}/{sha}"))
}

async fn job_page(
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<Done>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let job = match signed_in_job(&req, &state, &id).await {
        Ok(j) => j,
        Err(answer) => return answer,
    };
    let (events, notes, log) = (
        state.store.job_events(job.id).await,
        state.store.notifications(job.id).await,
        state.logs.read(job.id, 0, PAGE_LOG).await,
    );
    let (Ok(events), Ok(notes)) = (events, notes) else {
        return failed(&ApiError::Unavailable("the store cannot be read".into()));
    };
    let log = log.unwrap_or_default();
    // The page shows whole lines; the live stream goes on from the end of the last one.
    let whole = log.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let config = state.config.get();
    let waiting = match job.state {
        JobState::Held => Some(format!("hook {} is paused", job.hook)),
        _ => None,
    };
    let page = pages::JobPage {
        job: &job,
        events: &events,
        notifications: &notes,
        log: &String::from_utf8_lossy(&log[..whole]),
        offset: whole as u64,
        commit_url: config
            .hook(&job.hook)
            .and_then(|h| commit_url(h, job.sha.as_str())),
        waiting_for: waiting.as_deref(),
        notice: done_notice(q.done.as_deref()),
    };
    html(StatusCode::OK, &pages::job(&page))
}

async fn job_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(to_login) = session(&req, &state).await {
        return to_login;
    }
    let (job, action) = path.into_inner();
    let done = match action.as_str() {
        "cancel" => match job_id(&job) {
            Ok(id) => cancel_job(&state, id).await.map(|c| {
                let done = match c {
                    super::api::Cancelling::Cancelled => "cancelled",
                    super::api::Cancelling::Stopping { .. } => "cancelling",
                };
                see_other(&format!("/ui/jobs/{}?done={done}", id.0))
            }),
            Err(e) => Err(e),
        },
        "redeploy" => controls::deploy_again(&state, &job)
            .await
            .map(|q| see_other(&format!("/ui/jobs/{}?done=queued", q.id))),
        _ => Err(ApiError::NotFound),
    };
    done.unwrap_or_else(|e| failed(&e))
}

#[derive(Deserialize)]
struct LiveQuery {
    offset: Option<u64>,
}

/// A job's log as it grows, as Server-Sent Events: `log` events (one `data:` line per log
/// line, `id:` the byte offset after them, so a reconnect resumes), then one `state`
/// event with the job's final state, and the stream ends.
async fn live(
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<LiveQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let job = match signed_in_job(&req, &state, &id).await {
        Ok(j) => j,
        Err(answer) => return answer,
    };
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let start = resume.or(q.offset).unwrap_or(0);
    let (store, logs, id) = (state.store.clone(), state.logs.clone(), job.id);
    let stream = futures_util::stream::unfold(Some(start), move |offset| {
        let (store, logs) = (store.clone(), logs.clone());
        async move {
            let offset = offset?;
            loop {
                let ended = store
                    .get(id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|j| j.state.is_final());
                // Read after looking at the state: once it has ended, its log is whole.
                let chunk = logs.read(id, offset, 64 << 10).await.unwrap_or_default();
                let whole = match chunk.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None if ended.is_some() => chunk.len(),
                    None => 0,
                };
                if whole > 0 {
                    let next = offset + whole as u64;
                    return Some((
                        Ok::<_, std::io::Error>(log_event(&chunk[..whole], next)),
                        Some(next),
                    ));
                }
                if let Some(j) = ended {
                    let event = format!("event: state\ndata: {}\n\n", j.state.as_str());
                    return Some((Ok(Bytes::from(event)), None));
                }
                tokio::time::sleep(LIVE_POLL).await;
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// One `log` event: a `data:` line per log line, `id:` the offset after them.
fn log_event(lines: &[u8], next: u64) -> Bytes {
    let mut event = format!("id: {next}\nevent: log\n");
    for line in String::from_utf8_lossy(lines).lines() {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_frame_each_line_and_carry_the_offset() {
        let e = log_event(b"one\ntwo\n", 42);
        assert_eq!(&e[..], b"id: 42\nevent: log\ndata: one\ndata: two\n\n");
    }

    #[test]
    fn a_login_sends_the_browser_only_to_dashboard_pages() {
        assert_eq!(safe_next(Some("/ui/jobs/3")), "/ui/jobs/3");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ui//evil.example",
            "/api/jobs",
            "/ui\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
        assert_eq!(done_notice(Some("<script>")), None);
    }
}
