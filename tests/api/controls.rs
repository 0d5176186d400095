//! Operating deploys from the CLI, against a real daemon and real repositories: pause and
//! resume (held jobs, across a restart), rollback to the last good commit or a given one,
//! redeploy, `--wait` exit statuses, `jobs`/`show`/`hooks`/`reload`, `--url` and the
//! token from the environment, and `explain`.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook, read};

/// Runs the CLI against `app` with `args`; `--url` goes first, before the subcommand.
fn cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    cli_in(app.addr, &app.dir().config_path(), args, None)
}

fn cli_in(
    addr: std::net::SocketAddr,
    config: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deployhook"));
    c.args(["--url", &format!("http://{addr}")])
        .args(args)
        .env("DEPLOYHOOK_TOKEN_FILE", token_file(config))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon's own token file, as `$DEPLOYHOOK_TOKEN_FILE` names it to the CLI.
fn token_file(config: &Path) -> std::path::PathBuf {
    config.with_file_name("state").join("api-token")
}

fn job_of(stdout: &str) -> i64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("queued job "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no job queued: {stdout}"))
}

const DEPLOY: &str = "[[hook.rule]]\nname = \"site\"\nbranches = [\"main\"]\nqueue = \"fifo\"\nenv = { OUT = \"$OUTDIR\" }\ncommands = [\"cp version.txt \\\"$OUT/deployed\\\"; grep -qv bad version.txt\"]\n";

#[test]
fn pause_holds_jobs_across_a_restart_and_resume_deploys_them() {
    let repo = Repo::new();
    let v = repo.versions(1);
    let out = tempfile::tempdir().unwrap();
    let hooks = hook("site", &repo, DEPLOY) + &hook("other", &repo, DEPLOY);
    let app = TestApp::spawn(&config(out.path(), &hooks));
    let (code, stdout, stderr) = cli(&app, &["pause", "site", "--reason", "incident 42"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "hook site paused; 0 queued job(s) held");
    // Deliveries are still verified, recorded and answered 202; the job is held, and the
    // answer says so.
    let answer = push_generic(&app, "site", "refs/heads/main", ZERO, &v[0]);
    assert_eq!(answer.json()["jobs"][0]["state"], "held", "{}", answer.body);
    let id = job_id(&answer);
    let job = get(app.addr, &format!("/api/jobs/{id}")).json();
    assert_eq!(job["state"], "held", "{job}");
    // So is an operator's deploy, and the CLI says so.
    let (code, stdout, stderr) = cli(&app, &["deploy", "site", "--ref", "main", "--sha", &v[0]]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("held until the hook is resumed"),
        "{stdout}"
    );
    let manual = job_of(&stdout);
    assert_eq!(job["waiting_for"], "hook site is paused: incident 42");
    let metrics = get(app.addr, "/metrics").body;
    assert!(
        metrics.contains("deployhook_hook_paused{hook=\"site\"} 1\n"),
        "{metrics}"
    );
    // The pause survives a restart.
    let dir = app.stop();
    let app = TestApp::spawn_in(dir);
    // Another hook's job runs to its end meanwhile: the worker is at work, and still
    // leaves the held one alone.
    let other = job_id(&push_generic(&app, "other", "refs/heads/main", ZERO, &v[0]));
    assert_eq!(wait_job(&app, other)["state"], "succeeded");
    assert_eq!(
        get(app.addr, &format!("/api/jobs/{id}")).json()["state"],
        "held"
    );
    let (_, stdout, _) = cli(&app, &["hooks"]);
    assert!(stdout.contains("paused: incident 42"), "{stdout}");
    let (code, stdout, _) = cli(&app, &["resume", "site"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "hook site resumed; 2 held job(s) queued");
    assert_eq!(wait_job(&app, id)["state"], "succeeded");
    assert_eq!(wait_job(&app, manual)["state"], "succeeded");
    assert_eq!(read(&out.path().join("deployed")), "1");
    let (code, _, stderr) = cli(&app, &["resume", "site"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not paused"), "{stderr}");
}

#[test]
fn rollback_and_redeploy_deploy_earlier_good_commits_and_wait_says_how_it_went() {
    let repo = Repo::new();
    let v = repo.versions(3);
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, DEPLOY)));
    let mut before = ZERO.to_owned();
    let mut ids = Vec::new();
    for sha in &v {
        let id = job_id(&push_generic(&app, "site", "refs/heads/main", &before, sha));
        assert_eq!(wait_job(&app, id)["state"], "succeeded");
        ids.push(id);
        before.clone_from(sha);
    }
    // The last good commit before the current one (v3) is v2.
    let (code, stdout, stderr) = cli(&app, &["rollback", "site", "--wait"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(read(&out.path().join("deployed")), "2");
    let rolled = job_of(&stdout);
    assert!(
        stdout.contains(&format!("job {rolled} succeeded")),
        "{stdout}"
    );
    let job = get(app.addr, &format!("/api/jobs/{rolled}")).json();
    assert_eq!(
        job["events"][0]["reason"],
        format!(
            "rollback of site/site from {} (job {}) to {} (job {})",
            &v[2][..7],
            ids[2],
            &v[1][..7],
            ids[1]
        )
    );
    assert_eq!(
        (job["manual"].as_bool(), job["force"].as_bool()),
        (Some(true), Some(true))
    );
    // To a given commit that deployed before (a prefix will do); not to one that never did.
    let (code, _, stderr) = cli(&app, &["rollback", "site", "--to", &v[0][..10], "--wait"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(read(&out.path().join("deployed")), "1");
    let (code, _, stderr) = cli(&app, &["rollback", "site", "--to", "abcdef1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("never deployed successfully"), "{stderr}");
    // Redeploy a job's exact commit.
    let (code, stdout, _) = cli(&app, &["redeploy", &ids[2].to_string(), "--wait"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(read(&out.path().join("deployed")), "3");
    // A deploy that fails: --wait exits 3 and says why.
    let bad = repo.commit(&[("version.txt", "bad")], &[]);
    let (code, stdout, stderr) = cli(
        &app,
        &["deploy", "site", "--ref", "main", "--sha", &bad, "--wait"],
    );
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("failed: command 1 failed: exit code 1"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&app, &["redeploy", "99999"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("404"), "{stderr}");
}

#[test]
fn jobs_show_hooks_and_reload_say_what_an_operator_asks() {
    let repo = Repo::new();
    let v = repo.versions(1);
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, DEPLOY)));
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": v[0],
        "pusher": "alice",
    })
    .to_string();
    let sw = standard_webhooks("msg_ops_1", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let id = job_id(&app.post("site", &headers, body.as_bytes()));
    assert_eq!(wait_job(&app, id)["state"], "succeeded");

    let (code, stdout, _) = cli(&app, &["jobs"]);
    assert_eq!(code, 0);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    for column in ["STARTED (UTC)", "TOOK", "SHA", "PUSHER", "RULE"] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(
        row.contains(&v[0][..7]) && row.contains("alice") && row.contains("site"),
        "{row}"
    );
    // JSON, limited; the state filter; --url after the subcommand works as well.
    let (code, stdout, _) = cli(&app, &["jobs", "--json", "--limit", "1"]);
    assert_eq!(code, 0);
    let v_json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v_json["jobs"].as_array().unwrap().len(), 1);
    let (code, stdout, _) = cli(&app, &["jobs", "--state", "failed"]);
    assert_eq!((code, stdout.lines().count()), (0, 1), "{stdout}");
    let (code, stdout, _) = cli(&app, &["show", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!("job {id}: succeeded")),
        "{stdout}"
    );
    assert!(stdout.contains("pusher       alice"), "{stdout}");
    assert!(
        stdout.contains("started") && stdout.contains("succeeded"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&app, &["show", "424242"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("404"), "{stderr}");
    let (code, stdout, _) = cli(&app, &["hooks"]);
    assert_eq!(code, 0);
    let row = stdout.lines().nth(1).unwrap();
    assert!(
        row.starts_with("site") && row.contains(&v[0][..7]) && row.ends_with("ok"),
        "{stdout}"
    );
    let (code, stdout, stderr) = cli(&app, &["reload"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "reloaded (1 hooks)");
    // Unknown hooks are a failure, and the URL may come from the environment.
    let o = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["pause", "nope"])
        .env("DEPLOYHOOK_URL", format!("http://{}", app.addr))
        .env(
            "DEPLOYHOOK_TOKEN_FILE",
            token_file(&app.dir().config_path()),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no hook named \"nope\""));
}

#[test]
fn explain_says_rule_by_rule_why_a_push_did_not_deploy() {
    let repo = Repo::new();
    let out = tempfile::tempdir().unwrap();
    let rules = "[[hook.rule]]\nname = \"site\"\nbranches = [\"main\", \"release/*\"]\ncommands = [[\"true\"]]\n[[hook.rule]]\nbranches = [\"dev\"]\npaths = [\"site/**\"]\ncommands = [[\"true\"]]\n";
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, rules)));
    let payload = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/dev", "before": ZERO,
        "after": "2".repeat(40), "paths": ["README.md"],
    })
    .to_string();
    // A payload from the forge's page, against the config: nothing is deployed.
    let config = app.dir().config_path();
    let (code, stdout, stderr) = cli_in(
        app.addr,
        &config,
        &["explain", "site", "--config", config.to_str().unwrap()],
        Some(payload.as_bytes()),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim(),
        "refs/heads/dev at 2222222: does not deploy: no rule matches refs/heads/dev: rule site: branch \"dev\" matches none of main, release/*; rule 1: no changed file matches site/**"
    );
    assert!(app.jobs().is_empty());
    // The same delivery, sent: its record holds the same verdicts.
    let sw = standard_webhooks("msg_explain_1", now_secs(), payload.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    assert_eq!(app.post("site", &headers, payload.as_bytes()).status, 200);
    let (code, stdout, stderr) = cli(&app, &["explain", "site", "--delivery", "msg_explain_1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("delivery msg_explain_1 (push refs/heads/dev at 2222222): ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule 1: no changed file matches site/**"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&app, &["explain", "site", "--delivery", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no recorded delivery"), "{stderr}");
}
