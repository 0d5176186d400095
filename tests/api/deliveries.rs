//! Real forge payloads, signed as each forge signs them, sent over HTTP: each must queue
//! exactly the job its ref asks for.

use crate::helpers::*;
use serde_json::Value;

fn app() -> TestApp {
    TestApp::spawn(&standard_config())
}

/// Asserts a 202 that queued one job per `(rule, ref)` given, all for AFTER.
fn assert_queued(res: &Response, want: &[(u64, &str)]) -> Value {
    assert_eq!(res.status, 202, "{}", res.body);
    let json = res.json();
    assert_eq!(json["status"], "queued");
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), want.len(), "{json}");
    for (job, (rule, git_ref)) in jobs.iter().zip(want) {
        assert_eq!(job["rule"], *rule, "{json}");
        assert_eq!(job["ref"], *git_ref, "{json}");
        assert_eq!(job["sha"], AFTER, "{json}");
        assert!(job["id"].as_i64().unwrap() > 0);
    }
    json
}

#[test]
fn github_push_queues_a_job_recorded_on_disk() {
    let app = app();
    let body = fixture("github/push.json");
    let sig = hub_signature(&body);
    let res = app.post(
        "gh",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("X-Hub-Signature-256", &sig),
        ],
        &body,
    );
    let json = assert_queued(&res, &[(0, "refs/heads/main")]);
    assert_eq!(json["delivery"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    // Durable before the answer: the job is in the database file already.
    assert_eq!(
        app.jobs(),
        vec![(
            "gh".to_owned(),
            0,
            "refs/heads/main".to_owned(),
            AFTER.to_owned()
        )]
    );
}

#[test]
fn github_form_encoded_push_is_signed_over_the_raw_form() {
    let app = app();
    let json = fixture("github/push.json");
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let sig = hub_signature(form.as_bytes());
    let res = app.post(
        "gh",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "form-1"),
            ("X-Hub-Signature-256", &sig),
        ],
        form.as_bytes(),
    );
    assert_queued(&res, &[(0, "refs/heads/main")]);
}

#[test]
fn github_tag_push_uses_the_tag_rule() {
    let app = app();
    let body = fixture("github/push-tag.json");
    let res = app.post(
        "gh",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "tag-1"),
            ("X-Hub-Signature-256", &hub_signature(&body)),
        ],
        &body,
    );
    assert_queued(&res, &[(1, "refs/tags/v1.2.0")]);
}

#[test]
fn github_legacy_sha1_only_on_the_hook_that_opts_in() {
    let app = app();
    let body = fixture("github/push.json");
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha1", "-hmac", SECRET, "-hex", "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &body).unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let sha1 = format!("sha1={}", out.split_whitespace().next().unwrap());
    let headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "sha1-1"),
        ("X-Hub-Signature", sha1.as_str()),
    ];
    assert_queued(
        &app.post("gh-sha1", &headers, &body),
        &[(0, "refs/heads/main")],
    );
    let res = app.post("gh", &headers, &body);
    assert_eq!(res.status, 401);
    assert!(res.error().contains("legacy_sha1"), "{}", res.body);
}

#[test]
fn github_ping_other_events_and_deletes_run_nothing() {
    let app = app();
    for (event, file, status, reason_has) in [
        ("ping", "github/ping.json", "pong", ""),
        (
            "issues",
            "github/issues.json",
            "ignored",
            "not a push event",
        ),
        (
            "push",
            "github/push-delete.json",
            "ignored",
            "refs/heads/feature/old was deleted",
        ),
    ] {
        let body = fixture(file);
        let res = app.post(
            "gh",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", event),
                ("X-GitHub-Delivery", file),
                ("X-Hub-Signature-256", &hub_signature(&body)),
            ],
            &body,
        );
        assert_eq!(res.status, 200, "{file}: {}", res.body);
        let json = res.json();
        assert_eq!(json["status"], status, "{json}");
        assert!(
            json["reason"].as_str().unwrap_or("").contains(reason_has),
            "{json}"
        );
    }
    assert!(app.jobs().is_empty());
}

#[test]
fn gitlab_push_and_tag_push_with_the_secret_token() {
    let app = app();
    let body = fixture("gitlab/push.json");
    let res = app.post(
        "gl",
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", GITLAB_TOKEN),
            ("Idempotency-Key", "9a7b6c5d-0000-4000-8000-000000000001"),
        ],
        &body,
    );
    assert_queued(&res, &[(0, "refs/heads/main")]);
    let body = fixture("gitlab/tag-push.json");
    let res = app.post(
        "gl",
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Tag Push Hook"),
            ("X-Gitlab-Token", GITLAB_TOKEN),
        ],
        &body,
    );
    assert_queued(&res, &[(1, "refs/tags/v1.2.0")]);
    let res = app.post(
        "gl",
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", "gl-token-0123456788"),
        ],
        &fixture("gitlab/push.json"),
    );
    assert_eq!(res.status, 401);
    assert_eq!(
        res.error(),
        "X-Gitlab-Token does not match the hook's token"
    );
}

#[test]
fn gitlab_signing_token_uses_standard_webhooks() {
    let app = app();
    let body = fixture("gitlab/push.json");
    let sw = standard_webhooks("9a7b6c5d-0000-4000-8000-000000000002", now_secs(), &body);
    let mut headers = refs(&sw);
    headers.extend([
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", "Push Hook"),
    ]);
    let res = app.post("gl-signed", &headers, &body);
    let json = assert_queued(&res, &[(0, "refs/heads/main")]);
    assert_eq!(json["delivery"], "9a7b6c5d-0000-4000-8000-000000000002");
    // The token alone does not get past a hook that has a signing token.
    let res = app.post(
        "gl-signed",
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", GITLAB_TOKEN),
        ],
        &body,
    );
    assert_eq!(res.status, 401);
    assert!(
        res.error().starts_with("missing webhook-id header"),
        "{}",
        res.body
    );
}

#[test]
fn gitea_forgejo_and_gogs_pushes() {
    let app = app();
    let cases = [
        ("gitea", "gitea/push.json", "X-Gitea", "refs/heads/main"),
        (
            "forgejo",
            "forgejo/push.json",
            "X-Forgejo",
            "refs/heads/release/1.0",
        ),
        ("gogs", "gogs/push.json", "X-Gogs", "refs/heads/main"),
    ];
    for (hook, file, prefix, git_ref) in cases {
        let body = fixture(file);
        let sig = bare_signature(&body);
        let (event, delivery, signature) = (
            format!("{prefix}-Event"),
            format!("{prefix}-Delivery"),
            format!("{prefix}-Signature"),
        );
        let res = app.post(
            hook,
            &[
                ("Content-Type", "application/json"),
                (&event, "push"),
                (&delivery, &format!("{hook}-1")),
                (&signature, &sig),
            ],
            &body,
        );
        assert_queued(&res, &[(0, git_ref)]);
    }
}

#[test]
fn gitea_form_encoded_push_is_signed_over_the_json_payload() {
    let app = app();
    let json = fixture("gitea/push.json");
    let sig = bare_signature(&json);
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let res = app.post(
        "gitea",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Delivery", "form-1"),
            ("X-Gitea-Signature", &sig),
        ],
        form.as_bytes(),
    );
    assert_queued(&res, &[(0, "refs/heads/main")]);
}

#[test]
fn bitbucket_cloud_and_data_center() {
    let app = app();
    let body = fixture("bitbucket/repo-push.json");
    let res = app.post(
        "bb",
        &[
            ("Content-Type", "application/json"),
            ("X-Event-Key", "repo:push"),
            ("X-Request-UUID", "bb-1"),
            ("X-Hub-Signature", &hub_signature(&body)),
        ],
        &body,
    );
    assert_queued(&res, &[(0, "refs/heads/main")]);

    let body = fixture("bitbucket/repo-push-two-refs.json");
    let res = app.post(
        "bb",
        &[
            ("Content-Type", "application/json"),
            ("X-Event-Key", "repo:push"),
            ("X-Request-UUID", "bb-2"),
            ("X-Hub-Signature", &hub_signature(&body)),
        ],
        &body,
    );
    assert_queued(&res, &[(0, "refs/heads/main"), (1, "refs/tags/v1.2.0")]);

    let body = fixture("bitbucket-server/refs-changed.json");
    let res = app.post(
        "bb",
        &[
            ("Content-Type", "application/json; charset=UTF-8"),
            ("X-Event-Key", "repo:refs_changed"),
            ("X-Request-Id", "bb-3"),
            ("X-Hub-Signature", &hub_signature(&body)),
        ],
        &body,
    );
    assert_queued(&res, &[(0, "refs/heads/main")]);

    let body = fixture("bitbucket-server/diagnostics-ping.json");
    let res = app.post(
        "bb",
        &[
            ("Content-Type", "application/json"),
            ("X-Event-Key", "diagnostics:ping"),
            ("X-Hub-Signature", &hub_signature(&body)),
        ],
        &body,
    );
    assert_eq!(
        (res.status, res.json()["status"].as_str()),
        (200, Some("pong"))
    );
    assert_eq!(app.jobs().len(), 4);
}

#[test]
fn generic_push_signed_per_standard_webhooks() {
    let app = app();
    let body = fixture("generic/push.json");
    let sw = standard_webhooks("msg_2b8f6a", now_secs(), &body);
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let json = assert_queued(&app.post("ci", &headers, &body), &[(0, "refs/heads/main")]);
    assert_eq!(json["delivery"], "msg_2b8f6a");
}

#[test]
fn paths_filter_and_unmatched_refs_answer_why_nothing_runs() {
    let app = app();
    let send = |git_ref: &str, paths: &[&str], id: &str| {
        let body = serde_json::json!({
            "repository": "acme/website", "ref": git_ref, "before": BEFORE, "after": AFTER,
            "paths": paths,
        })
        .to_string();
        let sw = standard_webhooks(id, now_secs(), body.as_bytes());
        let mut headers = refs(&sw);
        headers.push(("Content-Type", "application/json"));
        app.post("ci", &headers, body.as_bytes())
    };
    assert_queued(
        &send("refs/heads/docs", &["docs/a/b.md"], "p1"),
        &[(2, "refs/heads/docs")],
    );
    let res = send("refs/heads/docs", &["src/main.rs"], "p2");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json()["reason"],
        "no rule matches refs/heads/docs: rule 0: branch \"docs\" matches none of main, release/*; \
         rule 1: branch \"docs\": the rule deploys no branches; rule 2: no changed file matches docs/**"
    );
    let res = send("refs/heads/feature/x", &[], "p3");
    let reason = res.json()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("no rule matches refs/heads/feature/x: rule 0: branch \"feature/x\" matches none of main, release/*;"),
        "{reason}"
    );

    let other = serde_json::json!({
        "repository": "acme/other", "ref": "refs/heads/main", "before": BEFORE, "after": AFTER,
    })
    .to_string();
    let sw = standard_webhooks("p4", now_secs(), other.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let res = app.post("ci", &headers, other.as_bytes());
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json()["reason"],
        "repository \"acme/other\" is not this hook's repository \"acme/website\""
    );
    assert_eq!(app.jobs().len(), 1);
}
