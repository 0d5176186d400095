//! Telling people how a deploy went, against fake forges and chats on loopback: each
//! forge's commit-status request exactly as its API describes it, GitHub deployments,
//! chat messages with hostile payload text escaped, signed outgoing webhooks checked
//! with openssl, retries (backoff, Retry-After, the same webhook-id), 410 and other
//! refusals, coalescing of statuses, a restart with a status still pending, and
//! `deployhook notify test`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::fake::{Fake, Reply, Seen};
use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::ZERO;

const STATUS_TOKEN: &str = "ghp_statusTOKEN0123456789abcdef";

/// A daemon whose `[server]` sets `public_url`, with `hooks` (on `repo`; `$REPO`,
/// `$OUT` filled in), a status token file, and `files` written beside hooks.toml.
fn spawn(repo: &Repo, out: &Path, hooks: &str, files: &[(&str, &str)]) -> TestApp {
    let dir = test_dir(repo, out, hooks, files);
    TestApp::spawn_in(dir)
}

fn test_dir(repo: &Repo, out: &Path, hooks: &str, files: &[(&str, &str)]) -> TestDir {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nmax_concurrent_jobs = 8\npublic_url = \"https://deploy.example.com\"\n{}\n{}",
        own_command_user(),
        hooks
            .replace("$REPO", &repo.url())
            .replace("$OUT", &out.display().to_string())
    );
    let dir = TestDir::new("");
    for (name, content) in [("status-token", STATUS_TOKEN)].iter().chain(files) {
        let p = dir.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    std::fs::write(dir.config_path(), text).unwrap();
    dir
}

/// Queues a deploy of `sha` on `main` by hand; returns the job id.
fn deploy(addr: std::net::SocketAddr, hook: &str, sha: &str) -> i64 {
    let res = post(
        addr,
        &format!("/api/hooks/{hook}/deploy"),
        &[("Content-Type", "application/json")],
        serde_json::json!({ "ref": "main", "sha": sha })
            .to_string()
            .as_bytes(),
    );
    job_id(&res)
}

/// The job's notifications, once none is pending.
fn settled(app: &TestApp, id: i64) -> Vec<serde_json::Value> {
    wait_for(
        "the notifications to settle",
        Duration::from_secs(60),
        || {
            let job = get(app.addr, &format!("/api/jobs/{id}")).json();
            let rows = job["notifications"].as_array()?.clone();
            (!rows.is_empty() && rows.iter().all(|n| n["state"] != "pending")).then_some(rows)
        },
    )
}

fn states(seen: &[Seen], key: &str) -> Vec<String> {
    seen.iter()
        .map(|s| s.json()[key].as_str().unwrap_or("").to_owned())
        .collect()
}

fn created() -> Reply {
    Reply::new(201, r#"{"id": 4242}"#)
}

/// A rule that waits for `$OUT/go-<hook>` (so the test sees the running status first),
/// then leaves a summary.
fn held_rule(hook: &str) -> String {
    format!(
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [\"while [ ! -e '$OUT/go-{hook}' ]; do sleep 0.05; done; echo 'v2 live on 3 hosts' > \\\"$DEPLOYHOOK_SUMMARY\\\"\"]\n"
    )
}

fn forge_hook(id: &str, forge: &str, repository: &str, api: &str, extra: &str) -> String {
    format!(
        "\n[[hook]]\nid = \"{id}\"\nforge = \"{forge}\"\nsecret_file = \"secret\"\nrepository = \"{repository}\"\nclone_url = \"$REPO\"\n[hook.status]\ntoken_file = \"status-token\"\napi_url = \"{api}\"\n{extra}\n{}",
        held_rule(id)
    )
}

#[test]
fn each_forge_gets_its_commit_status_as_its_api_describes() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v2")], &[]);
    let out = tempfile::tempdir().unwrap();
    let (github, gitlab, gitea, cloud, dc) = (
        Fake::start(created()),
        Fake::start(created()),
        Fake::start(created()),
        Fake::start(created()),
        Fake::start(created()),
    );
    let hooks = [
        forge_hook(
            "gh",
            "github",
            "acme/website",
            &github.url(""),
            "deployment_environment = \"production\"",
        ),
        forge_hook(
            "gl",
            "gitlab",
            "acme/platform/website",
            &gitlab.url("/api/v4"),
            "",
        ),
        forge_hook("gt", "gitea", "acme/website", &gitea.url("/api/v1"), ""),
        forge_hook("bbc", "bitbucket", "acme/website", &cloud.url("/2.0"), ""),
        forge_hook("bbdc", "bitbucket", "PROJ/website", &dc.url(""), ""),
    ]
    .concat();
    let app = spawn(&repo, out.path(), &hooks, &[]);
    let ids: Vec<i64> = ["gh", "gl", "gt", "bbc", "bbdc"]
        .iter()
        .map(|h| deploy(app.addr, h, &sha))
        .collect();
    // Each forge hears "running" while the job runs ...
    github.wait("GitHub's pending status and deployment status", |s| {
        s.iter().filter(|r| r.path.contains("/statuses")).count() >= 2
    });
    for fake in [&gitlab, &gitea, &cloud, &dc] {
        fake.wait("a running status", |s| !s.is_empty());
    }
    for h in ["gh", "gl", "gt", "bbc", "bbdc"] {
        std::fs::write(out.path().join(format!("go-{h}")), "").unwrap();
    }
    // ... and the end, with the commands' summary as its description.
    for id in &ids {
        assert_eq!(wait_job(&app, *id)["state"], "succeeded");
        let rows = settled(&app, *id);
        assert!(rows.iter().all(|n| n["state"] == "sent"), "{rows:?}");
    }
    let link = |id: i64| format!("https://deploy.example.com/api/jobs/{id}");

    check_github(&github.seen(), &sha, ids[0]);

    // GitLab: the project's path URL-encoded, PRIVATE-TOKEN, its own state names.
    let seen = gitlab.seen();
    for r in &seen {
        assert_eq!(
            r.path,
            format!("/api/v4/projects/acme%2Fplatform%2Fwebsite/statuses/{sha}")
        );
        assert_eq!(r.header("private-token"), Some(STATUS_TOKEN));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.json()["name"], "deployhook/gl/0");
    }
    assert_eq!(states(&seen, "state"), ["running", "success"]);

    // Gitea and Forgejo: `Authorization: token`.
    let seen = gitea.seen();
    for r in &seen {
        assert_eq!(r.path, format!("/api/v1/repos/acme/website/statuses/{sha}"));
        assert_eq!(
            r.header("authorization"),
            Some(&*format!("token {STATUS_TOKEN}"))
        );
        assert_eq!(r.json()["context"], "deployhook/gt/0");
    }
    assert_eq!(states(&seen, "state"), ["pending", "success"]);

    check_bitbucket(&cloud.seen(), &dc.seen(), &sha, &link(ids[3]));

    // Counted, and nothing left waiting.
    let metrics = get(app.addr, "/metrics").body;
    assert!(
        metrics.contains(
            "deployhook_notifications_total{target=\"status\",kind=\"github\",result=\"sent\"} 2\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("deployhook_outbox_pending 0\n"),
        "{metrics}"
    );
}

/// GitHub: a commit status and a deployment with its statuses, for job `id` of `sha`.
fn check_github(seen: &[Seen], sha: &str, id: i64) {
    let link = format!("https://deploy.example.com/api/jobs/{id}");
    // GitHub: a commit status and a deployment with its statuses.
    let statuses: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path == format!("/repos/acme/website/statuses/{sha}"))
        .collect();
    assert_eq!(statuses.len(), 2, "{seen:?}");
    for r in seen {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.header("authorization"),
            Some(&*format!("Bearer {STATUS_TOKEN}"))
        );
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(r.header("user-agent").unwrap().starts_with("deployhook/"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let (first, last) = (statuses[0].json(), statuses[1].json());
    assert_eq!(first["state"], "pending");
    assert_eq!(first["context"], "deployhook/gh/0");
    assert_eq!(first["description"], format!("Deploying (job {id})"));
    assert_eq!(first["target_url"], link);
    assert_eq!(last["state"], "success");
    assert_eq!(last["description"], "v2 live on 3 hosts");
    let made: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path == "/repos/acme/website/deployments")
        .collect();
    assert_eq!(made.len(), 1, "one deployment per job");
    let d = made[0].json();
    assert_eq!(d["ref"], sha);
    assert_eq!(d["environment"], "production");
    assert_eq!(d["auto_merge"], false);
    assert_eq!(d["required_contexts"], serde_json::json!([]));
    let ds: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path == "/repos/acme/website/deployments/4242/statuses")
        .collect();
    assert_eq!(
        ds.iter()
            .map(|r| r.json()["state"].clone())
            .collect::<Vec<_>>(),
        ["in_progress", "success"]
    );
    assert_eq!(ds[1].json()["log_url"], link);
}

/// Bitbucket Cloud and Data Center: build statuses, with a link each.
fn check_bitbucket(cloud: &[Seen], dc: &[Seen], sha: &str, link: &str) {
    let seen = cloud;
    for r in seen {
        assert_eq!(
            r.path,
            format!("/2.0/repositories/acme/website/commit/{sha}/statuses/build")
        );
        assert_eq!(
            r.header("authorization"),
            Some(&*format!("Bearer {STATUS_TOKEN}"))
        );
        assert_eq!(r.json()["key"], "deployhook/bbc/0");
        assert_eq!(r.json()["url"], link);
    }
    assert_eq!(states(seen, "state"), ["INPROGRESS", "SUCCESSFUL"]);
    let seen = dc;
    for r in seen {
        assert_eq!(
            r.path,
            format!("/rest/api/latest/projects/PROJ/repos/website/commits/{sha}/builds")
        );
        assert_eq!(r.json()["key"], "deployhook/bbdc/0");
    }
    assert_eq!(states(seen, "state"), ["INPROGRESS", "SUCCESSFUL"]);
    assert_eq!(seen[1].json()["description"], "v2 live on 3 hosts");
}

/// A push from a generic hook whose pusher is hostile.
fn hostile_push(app: &TestApp, sha: &str) -> i64 {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": sha,
        "pusher": "@everyone <!channel> <b>x</b> [click](http://evil.example)\n**bold**",
    })
    .to_string();
    let id = format!("msg_hostile_{sha}");
    let sw = standard_webhooks(&id, now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    job_id(&app.post("site", &headers, body.as_bytes()))
}

/// Five chats, named by the hook and its rule (Slack by both), for a rule that fails.
fn chat_config(chat: &Fake) -> String {
    format!(
        r#"
[[notify]]
name = "slack"
kind = "slack"
url_file = "slack-url"

[[notify]]
name = "discord"
kind = "discord"
url_file = "discord-url"

[[notify]]
name = "teams"
kind = "teams"
url_file = "teams-url"

[[notify]]
name = "ntfy"
kind = "ntfy"
url_file = "ntfy-url"

[[notify]]
name = "room"
kind = "matrix"
homeserver = "{}"
room = "!ops:example.org"
token_file = "matrix-token"

[[hook]]
id = "site"
forge = "generic"
secret_file = "whsec"
repository = "acme/website"
clone_url = "$REPO"
notify = ["slack", "discord"]

[[hook.rule]]
branches = ["main"]
notify = ["teams", "ntfy", "room", "slack"]
commands = [["false"]]
"#,
        chat.url("/matrix")
    )
}

#[test]
fn chats_get_the_failure_with_payload_text_escaped_and_no_secret_shown() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let chat = Fake::start(Reply::new(200, "ok"));
    let hooks = chat_config(&chat);
    let files = [
        ("slack-url", chat.url("/slack/T000/SECRETslack")),
        ("discord-url", chat.url("/discord/1/SECRETdiscord")),
        ("teams-url", chat.url("/teams/SECRETteams")),
        ("ntfy-url", chat.url("/ntfy/deploys-SECRETntfy")),
        ("matrix-token", "syt_SECRETmatrix".to_owned()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn(&repo, out.path(), &hooks, &files);
    let id = hostile_push(&app, &sha);
    assert_eq!(wait_job(&app, id)["state"], "failed");
    let rows = settled(&app, id);
    let targets: Vec<&str> = rows.iter().map(|n| n["target"].as_str().unwrap()).collect();
    assert_eq!(
        targets.len(),
        5,
        "slack once, though named twice: {targets:?}"
    );
    assert!(
        rows.iter()
            .all(|n| n["state"] == "sent" && n["event"] == "failed"),
        "{rows:?}"
    );
    let seen = chat.seen();
    let by = |prefix: &str| -> Seen {
        seen.iter()
            .find(|r| r.path.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request to {prefix}: {seen:?}"))
            .clone()
    };

    let slack = by("/slack/T000/SECRETslack");
    assert_eq!(slack.method, "POST");
    let text = slack.json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("&lt;!channel&gt;"), "{text}");
    assert!(
        !text.contains("<!channel>") && !text.contains("<b>"),
        "{text}"
    );
    assert!(text.contains("failed"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");

    let discord = by("/discord/1/SECRETdiscord").json();
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    let content = discord["content"].as_str().unwrap();
    assert!(!content.contains("[click](http"), "{content}");

    let teams = by("/teams/SECRETteams").json();
    assert_eq!(teams["type"], "message");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");

    let ntfy = by("/ntfy/deploys-SECRETntfy");
    assert_eq!(ntfy.method, "POST");
    assert!(ntfy.header("title").unwrap().contains("site"));
    assert_eq!(ntfy.header("priority"), Some("high"));
    assert!(ntfy.text().contains("failed"), "{}", ntfy.text());

    let matrix = by("/matrix/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/");
    assert_eq!(matrix.method, "PUT");
    assert_eq!(
        matrix.header("authorization"),
        Some("Bearer syt_SECRETmatrix")
    );
    let m = matrix.json();
    assert_eq!(m["msgtype"], "m.notice");
    assert!(m.get("formatted_body").is_none(), "never HTML: {m}");

    // The API names the targets, never their URLs or tokens.
    let job = get(app.addr, &format!("/api/jobs/{id}")).body;
    assert!(!job.contains("SECRET"), "{job}");
}

/// Checks `seen`'s Standard Webhooks signature with every key, computed by openssl.
fn check_signatures(seen: &Seen, keys: &[&[u8]]) {
    let id = seen.header("webhook-id").unwrap();
    let ts = seen.header("webhook-timestamp").unwrap();
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &seen.body].concat();
    let sent: Vec<&str> = seen
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .collect();
    let expected: Vec<String> = keys
        .iter()
        .map(|k| format!("v1,{}", b64(&openssl_hmac(k, &signed))))
        .collect();
    assert_eq!(sent, expected);
    let age = now_secs().abs_diff(ts.parse().unwrap());
    assert!(age < 60, "timestamp of the attempt: {ts}");
}

#[test]
fn a_webhook_is_signed_retried_with_backoff_and_retry_after_under_one_id() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let hook = Fake::start(Reply::new(204, ""));
    hook.then(Reply::new(500, "down"));
    hook.then(Reply::new(429, "slow down").header("Retry-After", "6"));
    let (new_key, old_key) = (
        b"new key, 32 bytes long, for test",
        b"old key, also 32 bytes long, ok!",
    );
    let whsec = |k: &[u8]| format!("whsec_{}", b64(k));
    let hooks = format!(
        r#"
[[notify]]
name = "audit"
kind = "webhook"
url = "{}"
secret_file = ["audit-new", "audit-old"]
on = "all"

[[hook]]
id = "site"
forge = "generic"
secret_file = "whsec"
repository = "acme/website"
clone_url = "$REPO"
notify = ["audit"]

[[hook.rule]]
branches = ["main"]
queue = "fifo"
commands = [["true"]]
"#,
        hook.url("/deploys")
    );
    let app = spawn(
        &repo,
        out.path(),
        &hooks,
        &[
            ("audit-new", &whsec(new_key)),
            ("audit-old", &whsec(old_key)),
        ],
    );
    let id = deploy(app.addr, "site", &sha);
    assert_eq!(wait_job(&app, id)["state"], "succeeded");
    // queued, started, succeeded: in order, the first retried twice before any other.
    let seen = hook.wait("five requests", |s| s.len() >= 5);
    let types: Vec<String> = seen
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "deploy.queued",
            "deploy.queued",
            "deploy.queued",
            "deploy.started",
            "deploy.succeeded"
        ]
    );
    let ids: Vec<&str> = seen
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert!(
        ids[0] == ids[1] && ids[1] == ids[2],
        "a retry is the same message: {ids:?}"
    );
    assert!(ids[2] != ids[3] && ids[3] != ids[4], "{ids:?}");
    for r in &seen {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/deploys");
        check_signatures(r, &[new_key, old_key]);
    }
    // The first retry within a few seconds (2 s, ±25 %); the second waited for the
    // Retry-After of 6 s, longer than the schedule's 4 s (+25 %) would have.
    let gap1 = seen[1].at - seen[0].at;
    let gap2 = seen[2].at - seen[1].at;
    assert!(
        gap1 >= Duration::from_millis(1400) && gap1 < Duration::from_secs(10),
        "{gap1:?}"
    );
    assert!(gap2 >= Duration::from_millis(5900), "{gap2:?}");
    let data = seen[4].json()["data"].clone();
    assert_eq!(data["job"], id);
    assert_eq!(data["sha"], sha.as_str());
    assert_eq!(data["state"], "succeeded");
    let rows = settled(&app, id);
    assert_eq!(rows[0]["attempts"], 3);
    assert_eq!(rows[0]["state"], "sent");
}

#[test]
fn a_gone_target_is_disabled_until_reload_and_a_refusal_is_not_retried() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let gone = Fake::start(Reply::new(410, "this webhook was deleted"));
    let forge = Fake::start(
        Reply::new(
            422,
            r#"{"message":"Validation Failed","errors":[{"message":"context too long"}]}"#,
        )
        .header("X-Accepted-GitHub-Permissions", "statuses=write"),
    );
    let hooks = format!(
        r#"
[[notify]]
name = "old-hook"
kind = "webhook"
url = "{}"
secret_file = "whsec"

[[hook]]
id = "site"
forge = "github"
secret_file = "secret"
repository = "acme/website"
clone_url = "$REPO"
notify = ["old-hook"]
[hook.status]
token_file = "status-token"
api_url = "{}"
on = ["final"]

[[hook.rule]]
branches = ["main"]
queue = "fifo"
commands = [["true"]]
"#,
        gone.url("/hook"),
        forge.url("")
    );
    let app = spawn(&repo, out.path(), &hooks, &[]);
    let first = deploy(app.addr, "site", &sha);
    let rows = settled(&app, first);
    let error_of = |rows: &[serde_json::Value], target: &str| -> String {
        let row = rows.iter().find(|n| n["target"] == target).unwrap();
        assert_eq!(row["state"], "failed", "{row}");
        assert_eq!(row["attempts"], 1, "not retried: {row}");
        row["last_error"].as_str().unwrap().to_owned()
    };
    assert!(error_of(&rows, "notify:old-hook").starts_with("answered 410"));
    let refused = error_of(&rows, "status");
    assert!(refused.contains("Validation Failed"), "{refused}");
    assert!(
        refused.contains("(the token needs: statuses=write)"),
        "{refused}"
    );
    // Disabled: the next job's message is not sent at all.
    let second = deploy(app.addr, "site", &sha);
    let rows = settled(&app, second);
    assert!(error_of(&rows, "notify:old-hook").contains("disabled until the config is reloaded"));
    assert_eq!(gone.seen().len(), 1);
    // A reload (the operator fixed the URL, or not) tries it again.
    assert_eq!(post(app.addr, "/api/reload", &[], b"").status, 200);
    let third = deploy(app.addr, "site", &sha);
    settled(&app, third);
    assert_eq!(gone.seen().len(), 2);
    assert_eq!(
        forge.seen().len(),
        3,
        "one final status per job, none retried"
    );
}

#[test]
fn a_status_not_yet_sent_is_replaced_by_the_newer_state() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let forge = Fake::start(created());
    // The running status fails and would be retried in a minute; the job ends meanwhile.
    forge.then(Reply::new(503, "maintenance").header("Retry-After", "60"));
    let hooks = forge_hook("gh", "github", "acme/website", &forge.url(""), "");
    let app = spawn(&repo, out.path(), &hooks, &[]);
    let id = deploy(app.addr, "gh", &sha);
    wait_for(
        "the running status to wait for its retry",
        Duration::from_secs(60),
        || {
            let job = get(app.addr, &format!("/api/jobs/{id}")).json();
            (job["notifications"][0]["attempts"] == 1).then_some(())
        },
    );
    std::fs::write(out.path().join("go-gh"), "").unwrap();
    assert_eq!(wait_job(&app, id)["state"], "succeeded");
    let rows = settled(&app, id);
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|n| (n["event"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("started", "replaced"), ("succeeded", "sent")]);
    assert!(rows[0]["last_error"].as_str().unwrap().contains("503"));
    // The forge saw the failed pending and then success, not the pending again.
    assert_eq!(states(&forge.seen(), "state"), ["pending", "success"]);
}

#[test]
fn a_status_pending_when_the_daemon_is_killed_is_sent_after_it_restarts() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let forge = Fake::start(Reply::new(502, "bad gateway"));
    let hooks = format!(
        "\n[[hook]]\nid = \"gh\"\nforge = \"github\"\nsecret_file = \"secret\"\nrepository = \"acme/website\"\nclone_url = \"$REPO\"\n[hook.status]\ntoken_file = \"status-token\"\napi_url = \"{}\"\non = [\"final\"]\n[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
        forge.url("")
    );
    let dir = test_dir(&repo, out.path(), &hooks, &[]);
    let (mut daemon, addr) = start_daemon(&dir.config_path());
    let id = deploy(addr, "gh", &sha);
    assert_eq!(wait_job_at(addr, id)["state"], "succeeded");
    forge.wait("a first attempt", |s| !s.is_empty());
    let pending = wait_for("the pending gauge", Duration::from_secs(30), || {
        let m = get(addr, "/metrics").body;
        m.contains("deployhook_outbox_pending 1\n").then_some(m)
    });
    assert!(
        pending.contains("deployhook_outbox_oldest_pending_seconds "),
        "{pending}"
    );
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let log = daemon.log();
    assert!(log.contains("will try again"), "{log}");
    assert!(
        !log.contains(STATUS_TOKEN),
        "the token is never logged: {log}"
    );
    drop(daemon);

    forge.always(created());
    let before = forge.seen().len();
    let (_daemon, addr) = start_daemon(&dir.config_path());
    let seen = forge.wait("the status sent after the restart", |s| {
        s.len() > before && s.iter().any(|r| r.json()["state"] == "success")
    });
    assert_eq!(seen.last().unwrap().json()["state"], "success");
    wait_for("the row to be sent", Duration::from_secs(30), || {
        let job = get(addr, &format!("/api/jobs/{id}")).json();
        (job["notifications"][0]["state"] == "sent").then_some(())
    });
}

#[test]
fn notify_test_sends_a_test_message_and_prints_the_answer() {
    let repo = Repo::new();
    let out = tempfile::tempdir().unwrap();
    let chat = Fake::start(Reply::new(200, "ok"));
    chat.then(Reply::new(404, "no_team"));
    let hooks = "\n[[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl_file = \"chat-url\"\n\n[[hook]]\nid = \"site\"\nforge = \"generic\"\nsecret_file = \"whsec\"\nrepository = \"acme/website\"\nclone_url = \"$REPO\"\n[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n";
    let url = chat.url("/services/SECRET");
    let dir = test_dir(&repo, out.path(), hooks, &[("chat-url", &url)]);
    let run = |name: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["notify", "test", name, "--config"])
            .arg(dir.config_path())
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run("chat");
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("chat: answered 404\nno_team"), "{stdout}");
    let (code, stdout, _) = run("chat");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("chat: answered 200"), "{stdout}");
    let (code, _, stderr) = run("nope");
    assert_eq!(code, 1);
    assert!(stderr.contains("the config has chat"), "{stderr}");
    let seen = chat.seen();
    assert_eq!(seen.len(), 2);
    let text = seen[1].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("test"), "{text}");
    assert!(!stdout.contains("SECRET") && !stderr.contains("SECRET"));
}

#[test]
fn a_slow_target_times_out_is_retried_and_never_holds_up_deploys() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "v1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let chat = Fake::start(Reply::new(200, "ok"));
    let mut slow = Reply::new(200, "too late");
    slow.delay = Duration::from_secs(30);
    chat.then(slow);
    let hooks = "\n[[notify]]\nname = \"chat\"\nkind = \"discord\"\nurl_file = \"chat-url\"\ntimeout = \"5s\"\non = [\"succeeded\"]\n\n[[hook]]\nid = \"site\"\nforge = \"generic\"\nsecret_file = \"whsec\"\nrepository = \"acme/website\"\nclone_url = \"$REPO\"\nnotify = [\"chat\"]\n[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"fifo\"\ncommands = [[\"true\"]]\n";
    let url = chat.url("/webhooks/1/x");
    let app = spawn(&repo, out.path(), hooks, &[("chat-url", &url)]);
    let first = deploy(app.addr, "site", &sha);
    chat.wait("the first attempt", |s| !s.is_empty());
    let second = deploy(app.addr, "site", &sha);
    for id in [first, second] {
        assert_eq!(wait_job(&app, id)["state"], "succeeded");
    }
    // Both deploys ran while the first message was stuck on the slow chat (its attempt
    // has a 5 s deadline).
    let job = get(app.addr, &format!("/api/jobs/{first}")).json();
    assert_eq!(job["notifications"][0]["state"], "pending", "{job}");
    assert_eq!(job["notifications"][0]["attempts"], 0, "{job}");
    let rows = settled(&app, first);
    assert_eq!(rows[0]["state"], "sent");
    assert_eq!(
        rows[0]["attempts"], 2,
        "the attempt that timed out, then one that did not"
    );
    assert_eq!(settled(&app, second)[0]["state"], "sent");
    let seen = chat.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].json()["content"],
        seen[1].json()["content"],
        "the same message again"
    );
}

/// A CA and a certificate it signed for 127.0.0.1 (with its key), made by openssl.
fn private_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl must be installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=deployhook test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[test]
fn a_target_behind_a_private_ca_is_reached_with_its_ca_file_only() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(certs.path());
    // Another deployhook serving HTTPS with that certificate stands in for the target.
    let server = TestDir::new(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\n{}\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        own_command_user(),
        cert.display(),
        key.display()
    ));
    let (_https, addr) = start_daemon(&server.config_path());
    let target = |ca_file: &str| {
        let dir = TestDir::new(&format!(
            "[[notify]]\nname = \"hook\"\nkind = \"ntfy\"\nurl = \"https://127.0.0.1:{}/hooks/none\"\n{ca_file}\n",
            addr.port()
        ));
        let o = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["notify", "test", "hook", "--config"])
            .arg(dir.config_path())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Through the CA: TLS holds, and the server's own answer comes back (no such hook).
    let (stdout, stderr) = target(&format!("ca_file = \"{}\"", ca.display()));
    assert!(stdout.starts_with("hook: answered 404"), "{stdout}{stderr}");
    // With the platform's roots only, the certificate is refused: no answer at all.
    let (stdout, stderr) = target("");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("hook: no answer"), "{stderr}");
    assert!(
        stderr.to_ascii_lowercase().contains("certificate"),
        "{stderr}"
    );
}
