//! The dashboard's HTML, written with maud: every value is escaped (a pusher named
//! `<script>` or a log line with HTML shows as text); the only script is our own
//! `live.js`, the only style `style.css`. Every action is a plain `<form method="post">`.

use std::time::SystemTime;

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::store::{DeliveryRecord, Job, JobEvent, JobState, Notification, Pause};

fn when(t: SystemTime) -> String {
    let s = crate::joblog::timestamp(t);
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

fn when_secs(v: &Value) -> String {
    v.as_i64().map_or_else(
        || "-".to_owned(),
        |s| {
            when(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)),
            )
        },
    )
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Every page's head: its title, our style, our one script.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · deployhook" }
            link rel="stylesheet" href="/ui/static/style.css";
            script src="/ui/static/live.js" defer {}
        }
    }
}

/// A page: the layout around `body`.
pub fn page(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    a href="/ui/" class="brand" { "deployhook" }
                    form method="post" action="/ui/logout" class="inline" {
                        button type="submit" class="link" { "Log out" }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>, next: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main class="login" {
                    h1 { "deployhook" }
                    @if let Some(e) = error { p class="error" { (e) } }
                    form method="post" action="/ui/login" {
                        input type="hidden" name="next" value=(next);
                        label for="token" { "API token" }
                        input type="password" id="token" name="token" autocomplete="current-password" required;
                        button type="submit" { "Log in" }
                    }
                    p class="hint" { "The token is in server.api_token_file, or else in state_dir/api-token." }
                }
            }
        }
    }
}

fn state_badge(state: &str) -> Markup {
    html! { span class={ "state " (state) } { (state) } }
}

/// `/ui/`: every hook, what is live, what runs and waits.
pub fn overview(hooks: &[Value]) -> Markup {
    page(
        "Hooks",
        &html! {
            h1 { "Hooks" }
            div class="cards" {
                @for h in hooks {
                    @let id = h["id"].as_str().unwrap_or("");
                    section class="card" id={ "hook-" (id) } {
                        h2 { a href={ "/ui/hooks/" (id) } { (id) } }
                        p class="muted" { (h["repository"].as_str().unwrap_or("")) " · " (h["forge"].as_str().unwrap_or("")) }
                        @if let Some(p) = h["paused"].as_object() {
                            p class="paused" { "Paused" @if let Some(r) = p.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) { ": " (r) } }
                        }
                        table {
                            tr { th { "Rule" } th { "Live" } th { "Since" } th { "By" } }
                            @for l in h["live"].as_array().into_iter().flatten() {
                                tr {
                                    td { (l["rule"].as_str().unwrap_or("")) }
                                    td { a href={ "/ui/jobs/" (l["job"]) } { code { (short(l["sha"].as_str().unwrap_or(""))) } } }
                                    td { (when_secs(&l["finished_at"])) }
                                    td { (l["pusher"].as_str().unwrap_or("-")) }
                                }
                            }
                        }
                        p {
                            @for r in h["running"].as_array().into_iter().flatten() {
                                "Running: " a href={ "/ui/jobs/" (r) } { "job " (r) } " "
                            }
                            "Queued: " (h["queued"]) " · Held: " (h["held"])
                        }
                        @if let Some(f) = h["last_failure"].as_object() {
                            p class="failure" {
                                "Last failure: "
                                a href={ "/ui/jobs/" (f.get("job").unwrap_or(&Value::Null)) } { "job " (f.get("job").unwrap_or(&Value::Null)) }
                                " " (f.get("state").and_then(Value::as_str).unwrap_or(""))
                                ": " (f.get("detail").and_then(Value::as_str).unwrap_or(""))
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What `/ui/hooks/{id}` shows.
pub struct HookPage<'a> {
    pub id: &'a str,
    pub repository: &'a str,
    pub forge: &'a str,
    pub pause: Option<&'a Pause>,
    pub jobs: &'a [Job],
    pub deliveries: &'a [DeliveryRecord],
    pub notice: Option<&'a str>,
}

fn jobs_table(jobs: &[Job]) -> Markup {
    html! {
        table class="jobs" {
            tr { th { "Job" } th { "Rule" } th { "State" } th { "Ref" } th { "Commit" } th { "Pusher" } th { "Started" } }
            @for j in jobs {
                tr {
                    td { a href={ "/ui/jobs/" (j.id) } { (j.id) } }
                    td { (j.rule_key) }
                    td { (state_badge(j.state.as_str())) }
                    td { (j.git_ref.as_str()) }
                    td { code { (short(j.sha.as_str())) } }
                    td { (j.pusher.as_deref().unwrap_or("-")) }
                    td { (j.started_at.map_or_else(|| "-".to_owned(), when)) }
                }
            }
        }
    }
}

pub fn hook(p: &HookPage<'_>) -> Markup {
    let base = format!("/ui/hooks/{}", p.id);
    page(
        p.id,
        &html! {
            h1 { "Hook " (p.id) }
            p class="muted" { (p.repository) " · " (p.forge) }
            @if let Some(n) = p.notice { p class="notice" { (n) } }
            div class="actions" {
                @if let Some(pause) = p.pause {
                    p class="paused" { "Paused since " (when(pause.since)) @if !pause.reason.is_empty() { ": " (pause.reason) } }
                    form method="post" action={ (base) "/resume" } { button type="submit" id="resume" { "Resume" } }
                } @else {
                    form method="post" action={ (base) "/pause" } {
                        input type="text" name="reason" placeholder="why (shown with held jobs)" maxlength="500";
                        button type="submit" id="pause" { "Pause" }
                    }
                }
                form method="post" action={ (base) "/rollback" } { button type="submit" id="rollback" { "Rollback" } }
                form method="post" action={ (base) "/deploy" } {
                    input type="text" name="ref" placeholder="main or refs/tags/v1.2" required;
                    button type="submit" id="deploy" { "Deploy ref" }
                }
            }
            h2 { "Jobs" }
            (jobs_table(p.jobs))
            h2 { "Deliveries" }
            table class="deliveries" {
                tr { th { "Received" } th { "Delivery" } th { "Ref" } th { "Outcome" } th { "Why" } }
                @for d in p.deliveries {
                    tr {
                        td { (when(d.received_at)) }
                        td { code { (d.delivery.delivery.as_ref().map_or("-", crate::event::DeliveryId::as_str)) } }
                        td { (d.delivery.git_ref.as_ref().map_or("-", crate::event::RefName::as_str)) }
                        td { (d.outcome.as_str()) }
                        td { ul class="reasons" { @for part in d.reason.split("; ") { li { (part) } } } }
                    }
                }
            }
        },
    )
}

/// What `/ui/jobs/{id}` shows.
pub struct JobPage<'a> {
    pub job: &'a Job,
    pub events: &'a [JobEvent],
    pub notifications: &'a [Notification],
    pub log: &'a str,
    /// The log's length: where the live stream starts.
    pub offset: u64,
    pub commit_url: Option<String>,
    pub waiting_for: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn job(p: &JobPage<'_>) -> Markup {
    let j = p.job;
    let live = !j.state.is_final();
    let base = format!("/ui/jobs/{}", j.id);
    page(
        &format!("Job {}", j.id),
        &html! {
            h1 { "Job " (j.id) " " span id="state" class={ "state " (j.state.as_str()) } { (j.state.as_str()) } }
            @if let Some(n) = p.notice { p class="notice" { (n) } }
            dl {
                dt { "Hook" } dd { a href={ "/ui/hooks/" (j.hook) } { (j.hook) } }
                dt { "Rule" } dd { (j.rule_key) }
                dt { "Ref" } dd { (j.git_ref.as_str()) }
                dt { "Commit" } dd {
                    @if let Some(url) = &p.commit_url { a href=(url) { code { (j.sha.as_str()) } } }
                    @else { code { (j.sha.as_str()) } }
                }
                dt { "Pusher" } dd { (j.pusher.as_deref().unwrap_or("-")) }
                dt { "Delivery" } dd { (j.delivery.as_ref().map_or("-", crate::event::DeliveryId::as_str)) }
                dt { "Attempt" } dd { (j.attempt) }
                dt { "Queued" } dd { (when(j.created_at)) }
                dt { "Started" } dd { (j.started_at.map_or_else(|| "-".to_owned(), when)) }
                dt { "Ended" } dd { (j.finished_at.map_or_else(|| "-".to_owned(), when)) }
                @if let Some(d) = &j.detail { dt { "Why" } dd id="detail" { (d) } }
                @if let Some(s) = &j.summary { dt { "Summary" } dd { (s) } }
                @if let Some(w) = p.waiting_for { dt { "Waiting for" } dd { (w) } }
            }
            div class="actions" {
                @if matches!(j.state, JobState::Queued | JobState::Held | JobState::Running) {
                    form method="post" action={ (base) "/cancel" } { button type="submit" id="cancel" { "Cancel" } }
                }
                form method="post" action={ (base) "/redeploy" } { button type="submit" id="redeploy" { "Redeploy" } }
            }
            h2 { "Log" }
            pre id="log" data-live=(live) data-src={ (base) "/live" } data-offset=(p.offset) { (p.log) }
            h2 { "Events" }
            table class="events" {
                @for e in p.events {
                    tr { td { (when(e.at)) } td { (state_badge(e.kind.as_str())) } td { (e.reason) } }
                }
            }
            @if !p.notifications.is_empty() {
                h2 { "Notifications" }
                table {
                    @for n in p.notifications {
                        tr {
                            td { (n.target) } td { (n.kind.as_str()) } td { (n.state.as_str()) }
                            td { (n.attempts) " attempt(s)" } td { (n.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_is_escaped() {
        let hooks = vec![serde_json::json!({
            "id": "site", "repository": "<b>acme</b>/x", "forge": "github",
            "live": [{ "rule": "0", "job": 1, "sha": "abc", "pusher": "<script>alert(1)</script>", "finished_at": 1 }],
            "running": [], "queued": 0, "held": 0,
            "paused": { "reason": "\"><img src=x onerror=alert(1)>" }, "last_failure": null,
        })];
        let html = overview(&hooks).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>acme"), "{html}");
        let login = login(Some("wrong <token>"), "/ui/\"><x").into_string();
        assert!(login.contains("wrong &lt;token&gt;"), "{login}");
        assert!(!login.contains("\"><x"), "{login}");
    }
}
