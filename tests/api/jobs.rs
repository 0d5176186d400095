//! Deploys end to end: pushes to a real local repository's hook become jobs that check out
//! the exact commit and run real commands; the queue supersedes, keeps order, runs hooks in
//! parallel, cancels, and survives a kill -9.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::gitrepo::{Repo, git};
use crate::helpers::*;

pub(crate) const ZERO: &str = "0000000000000000000000000000000000000000";

/// A generic hook on `repo` whose rules are given as TOML.
pub(crate) fn hook(id: &str, repo: &Repo, rules: &str) -> String {
    format!(
        r#"
[[hook]]
id = "{id}"
forge = "generic"
secret_file = "whsec"
repository = "acme/website"
clone_url = "{}"
{rules}
"#,
        repo.url()
    )
}

pub(crate) fn config(out: &Path, hooks: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nkill_grace = \"2s\"\n{}\n{}",
        own_command_user(),
        hooks.replace("$OUTDIR", &out.display().to_string())
    )
}

/// A daemon with one hook, `site`, on `repo`; `$OUTDIR` in `rules` is `out`.
pub(crate) fn spawn_site(out: &Path, repo: &Repo, rules: &str) -> TestApp {
    TestApp::spawn(&config(out, &hook("site", repo, rules)))
}

/// A `site` hook whose one rule runs `true`, with `server` added to `[server]`.
fn spawn_true_site(repo: &Repo, out: &Path, server: &str) -> TestApp {
    let text = config(
        out,
        &hook(
            "site",
            repo,
            "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
        ),
    )
    .replace("[server]\n", &format!("[server]\n{server}\n"));
    TestApp::spawn(&text)
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_push_of_an_older_commit_deploys_that_commit() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1"), ("old.txt", "gone in v2")], &[]);
    let v2 = repo.commit(&[("version.txt", "2")], &["old.txt"]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        r#"
[[hook.rule]]
branches = ["main"]
env = { OUT = "$OUTDIR" }
commands = ["cp version.txt \"$OUT/deployed\"; ls > \"$OUT/files\""]
"#,
    );
    let job = wait_job(
        &app,
        job_id(&push_generic(
            &app,
            "site",
            "refs/heads/main",
            v1.as_str(),
            &v2,
        )),
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(read(&out.path().join("deployed")), "2");
    assert!(!read(&out.path().join("files")).contains("old.txt"));

    // The branch still points at v2; a push event naming v1 deploys v1.
    let job = wait_job(
        &app,
        job_id(&push_generic(&app, "site", "refs/heads/main", &v2, &v1)),
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["sha"], v1.as_str());
    assert_eq!(read(&out.path().join("deployed")), "1");
    assert!(read(&out.path().join("files")).contains("old.txt"));
    let log = get(app.addr, &format!("/api/jobs/{}/log", job["id"])).body;
    // The worker's lines and the runner's share the file, in the order they happened.
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} is not in the log:\n{log}"))
    };
    let id = &job["id"];
    let order = [
        at(&format!("job {id} for hook site: refs/heads/main at {v1}")),
        at(&format!("checked out {v1}")),
        at("$ cp version.txt"),
        at("exit code 0 after"),
        at(&format!("job {id} succeeded")),
    ];
    assert!(order.is_sorted(), "{order:?}\n{log}");
}

#[test]
fn commands_see_exactly_the_documented_environment() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    // perl prints the environment it was given without adding to it, as a shell would.
    let app = spawn_site(
        out.path(),
        &repo,
        r#"
[[hook.rule]]
branches = ["main"]
env = { OUT = "$OUTDIR", DEPLOY_TARGET = "production" }
commands = [["perl", "-e", "open(my $f, '>', \"$ENV{OUT}/env\") or die; print $f join(\"\\n\", map {\"$_=$ENV{$_}\"} sort keys %ENV)"]]
"#,
    );
    let job = wait_job(
        &app,
        job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha)),
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    let env = read(&out.path().join("env"));
    let vars: std::collections::BTreeMap<&str, &str> =
        env.lines().filter_map(|l| l.split_once('=')).collect();
    let names: Vec<&str> = vars.keys().copied().collect();
    assert_eq!(
        names,
        [
            "DEPLOYHOOK_BEFORE",
            "DEPLOYHOOK_BRANCH",
            "DEPLOYHOOK_DELIVERY",
            "DEPLOYHOOK_FORGE",
            "DEPLOYHOOK_HOOK",
            "DEPLOYHOOK_JOB_ID",
            "DEPLOYHOOK_PUSHER",
            "DEPLOYHOOK_REF",
            "DEPLOYHOOK_REPOSITORY",
            "DEPLOYHOOK_RULE",
            "DEPLOYHOOK_SHA",
            "DEPLOYHOOK_SUMMARY",
            "DEPLOY_TARGET",
            "HOME",
            "LANG",
            "OUT",
            "PATH",
            "TMPDIR",
        ],
        "{env}"
    );
    assert_eq!(vars["DEPLOYHOOK_SHA"], sha.as_str());
    assert_eq!(vars["DEPLOYHOOK_BRANCH"], "main");
    assert_eq!(vars["DEPLOYHOOK_REF"], "refs/heads/main");
    assert_eq!(vars["DEPLOYHOOK_FORGE"], "generic");
    assert_eq!(vars["DEPLOYHOOK_JOB_ID"], job["id"].to_string());
    assert_eq!(vars["DEPLOY_TARGET"], "production");
    assert_eq!(vars["DEPLOYHOOK_RULE"], "0");
    assert!(vars["DEPLOYHOOK_DELIVERY"].starts_with("msg_site_"));
    assert_eq!(
        vars["DEPLOYHOOK_SUMMARY"],
        format!("{}/deployhook-summary", vars["TMPDIR"])
    );
}

#[test]
fn cancel_stops_a_running_job() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"sleep\", \"120\"]]\n",
    );
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha));
    wait_for("the job to run", Duration::from_secs(60), || {
        let job = get(app.addr, &format!("/api/jobs/{id}")).json();
        (job["state"] == "running"
            && get(app.addr, &format!("/api/jobs/{id}/log"))
                .body
                .contains("sleep"))
        .then_some(())
    });
    let res = post(app.addr, &format!("/api/jobs/{id}/cancel"), &[], b"");
    assert_eq!(res.status, 202, "{}", res.body);
    let job = wait_job(&app, id);
    assert_eq!(job["state"], "cancelled", "{job}");
    let again = post(app.addr, &format!("/api/jobs/{id}/cancel"), &[], b"");
    assert_eq!(again.status, 409);
    assert_eq!(again.error(), format!("job {id} already ended: cancelled"));
}

/// Waits until a hook has no queued or running job.
fn wait_idle(app: &TestApp, hook: &str) {
    wait_for(
        &format!("{hook} to go idle"),
        Duration::from_secs(120),
        || {
            let busy = ["queued", "running"].iter().any(|s| {
                let jobs = get(app.addr, &format!("/api/jobs?hook={hook}&state={s}")).json();
                !jobs["jobs"].as_array().unwrap().is_empty()
            });
            (!busy).then_some(())
        },
    );
}

#[test]
fn a_burst_of_50_pushes_supersedes_or_runs_in_order() {
    let repo = Repo::new();
    let shas = repo.versions(50);
    let out = tempfile::tempdir().unwrap();
    // The supersede deploy takes long enough (3 s) for the whole burst to arrive while
    // the first one runs.
    let rule = |queue: &str, file: &str, sleep: &str| {
        format!(
            "[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"{queue}\"\nenv = {{ OUT = \"$OUTDIR\" }}\ncommands = [\"cat version.txt >> \\\"$OUT/{file}\\\"; echo >> \\\"$OUT/{file}\\\"; sleep {sleep}\"]\n"
        )
    };
    let hooks = hook("sup", &repo, &rule("supersede", "sup.runs", "3"))
        + &hook("fifo", &repo, &rule("fifo", "fifo.runs", "0"));
    let app = TestApp::spawn(&config(out.path(), &hooks));
    for hook in ["sup", "fifo"] {
        let mut before = ZERO.to_owned();
        for sha in &shas {
            assert_eq!(
                push_generic(&app, hook, "refs/heads/main", &before, sha).status,
                202
            );
            before.clone_from(sha);
        }
    }
    wait_idle(&app, "sup");
    wait_idle(&app, "fifo");

    let sup: Vec<String> = read(&out.path().join("sup.runs"))
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!sup.is_empty() && sup.len() <= 2, "supersede ran {sup:?}");
    assert_eq!(
        sup.last().map(String::as_str),
        Some("50"),
        "the last push is what is deployed"
    );
    let superseded = get(app.addr, "/api/jobs?hook=sup&state=superseded&limit=100").json();
    assert_eq!(superseded["jobs"].as_array().unwrap().len(), 50 - sup.len());

    let fifo: Vec<String> = read(&out.path().join("fifo.runs"))
        .lines()
        .map(str::to_owned)
        .collect();
    let want: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    assert_eq!(fifo, want, "fifo runs every push in order");
}

#[test]
fn two_hooks_deploy_in_parallel() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    // Each waits (up to 20 s) for the other to have started: both succeed only together.
    let rule = |other: &str| {
        format!(
            "[[hook.rule]]\nbranches = [\"main\"]\nenv = {{ OUT = \"$OUTDIR\", OTHER = \"{other}\" }}\ncommands = [\"touch \\\"$OUT/$DEPLOYHOOK_HOOK\\\"; i=0; while [ ! -e \\\"$OUT/$OTHER\\\" ]; do sleep 0.05; i=$((i+1)); [ $i -gt 400 ] && exit 1; done; exit 0\"]\n"
        )
    };
    let app = TestApp::spawn(&config(
        out.path(),
        &(hook("a", &repo, &rule("b")) + &hook("b", &repo, &rule("a"))),
    ));
    let a = job_id(&push_generic(&app, "a", "refs/heads/main", ZERO, &sha));
    let b = job_id(&push_generic(&app, "b", "refs/heads/main", ZERO, &sha));
    assert_eq!(wait_job(&app, a)["state"], "succeeded");
    assert_eq!(wait_job(&app, b)["state"], "succeeded");
}

#[test]
fn a_repository_that_cannot_be_fetched_fails_the_job_readably() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no-such-repo");
    let text = config(
        out.path(),
        &format!(
            "[[hook]]\nid = \"site\"\nforge = \"generic\"\nsecret_file = \"whsec\"\nrepository = \"acme/website\"\nclone_url = \"{}\"\n[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
            missing.display()
        ),
    );
    let app = TestApp::spawn(&text);
    let job = wait_job(
        &app,
        job_id(&push_generic(
            &app,
            "site",
            "refs/heads/main",
            ZERO,
            "1111111111111111111111111111111111111111",
        )),
    );
    assert_eq!(job["state"], "failed");
    let detail = job["detail"].as_str().unwrap();
    assert!(detail.starts_with("checkout failed: "), "{detail}");
    assert!(detail.contains("no-such-repo"), "{detail}");
}

#[test]
fn the_api_and_cli_list_show_log_and_deploy_by_hand() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("version.txt", "1")], &[]);
    let v2 = repo.commit(&[("version.txt", "2")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"cat\", \"version.txt\"]]\n",
    );
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1));
    assert_eq!(wait_job(&app, id)["state"], "succeeded");

    let cli = |args: &[&str]| {
        let url = format!("http://{}", app.addr);
        let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(&args[..1])
            .args(["--url", &url])
            // The CLI finds the daemon's token through its config.
            .arg("--config")
            .arg(app.dir().config_path())
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = cli(&["jobs", "--hook", "site"]);
    assert_eq!(code, 0);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&id.to_string()) && l.contains("succeeded")),
        "{stdout}"
    );
    let (code, stdout, _) = cli(&["logs", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("cat version.txt"), "{stdout}");

    // By hand, with no sha: the branch's head on the remote (v2) is deployed.
    let (code, stdout, stderr) = cli(&["deploy", "site", "--ref", "main"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&v2), "{stdout}");
    let manual: i64 = stdout.split_whitespace().nth(2).unwrap().parse().unwrap();
    let job = wait_job(&app, manual);
    assert_eq!(
        (job["state"].as_str(), job["manual"].as_bool()),
        (Some("succeeded"), Some(true))
    );
    let (code, stdout, _) = cli(&["logs", "--follow", &manual.to_string()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("succeeded"), "{stdout}");

    let (code, _, stderr) = cli(&["cancel", &manual.to_string()]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        format!("deployhook: 409: job {manual} already ended: succeeded")
    );
    let (code, _, stderr) = cli(&["deploy", "site", "--ref", "refs/tags/v9"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no rule of hook \"site\" matches refs/tags/v9"),
        "{stderr}"
    );
    assert_eq!(get(app.addr, "/api/jobs/9999").status, 404);
    assert_eq!(get(app.addr, "/api/jobs?state=bogus").status, 400);
}

#[test]
fn the_api_requires_the_token_when_one_is_configured() {
    let (repo, out) = (Repo::new(), tempfile::tempdir().unwrap());
    let app = spawn_true_site(&repo, out.path(), "api_token_file = \"secret\"");
    let res = get(app.addr, "/api/jobs");
    assert_eq!(res.status, 401);
    assert_eq!(
        res.error(),
        "missing or wrong API token: send Authorization: Bearer <token>, the token in server.api_token_file (or, when that is not set, in state_dir/api-token); the CLI finds it through --config or takes --token-file"
    );
    let res = raw(
        app.addr,
        format!("GET /api/jobs HTTP/1.1\r\nHost: localhost:9000\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\n\r\n").as_bytes(),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    // The scheme name is case-insensitive; the token is not.
    for (scheme, token, status) in [
        ("bearer", SECRET.to_owned(), 200),
        ("BEARER", SECRET.to_owned(), 200),
        ("Basic", SECRET.to_owned(), 401),
        ("Bearer", SECRET.to_uppercase(), 401),
    ] {
        let res = raw(
            app.addr,
            format!("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {scheme} {token}\r\n\r\n").as_bytes(),
        );
        assert_eq!(res.status, status, "{scheme} {}", res.body);
    }
}

#[test]
fn kill_9_with_running_and_queued_jobs_then_restart() {
    let repo = Repo::new();
    let shas = repo.versions(2);
    git(&repo.path, &["branch", "slow"]);
    let out = tempfile::tempdir().unwrap();
    let rules = r#"
[[hook.rule]]
branches = ["slow"]
retry_interrupted = true
env = { OUT = "$OUTDIR" }
commands = ["if [ -e \"$OUT/slow.once\" ]; then echo retried >> \"$OUT/runs\"; else touch \"$OUT/slow.once\"; sleep 600; fi"]

[[hook.rule]]
branches = ["main"]
queue = "fifo"
env = { OUT = "$OUTDIR" }
commands = ["cat version.txt >> \"$OUT/runs\"; echo >> \"$OUT/runs\""]
"#;
    let dir = TestDir::new(&config(out.path(), &hook("site", &repo, rules)));
    let (mut daemon, addr) = start_daemon(&dir.config_path());
    let send = |addr, git_ref: &str, before: &str, after: &str| {
        let body = serde_json::json!({"repository": "acme/website", "ref": git_ref, "before": before, "after": after}).to_string();
        let sw = standard_webhooks(
            &format!("msg_{git_ref}_{after}"),
            now_secs(),
            body.as_bytes(),
        );
        let mut headers = refs(&sw);
        headers.push(("Content-Type", "application/json"));
        let res = post(addr, "/hooks/site", &headers, body.as_bytes());
        assert_eq!(res.status, 202, "{}", res.body);
        res.json()["jobs"][0]["id"].as_i64().unwrap()
    };
    let slow = send(addr, "refs/heads/slow", ZERO, &shas[1]);
    wait_for("the slow job to run", Duration::from_secs(60), || {
        out.path().join("slow.once").exists().then_some(())
    });
    let q1 = send(addr, "refs/heads/main", ZERO, &shas[0]);
    let q2 = send(addr, "refs/heads/main", &shas[0], &shas[1]);
    daemon.0.kill().unwrap(); // SIGKILL
    daemon.0.wait().unwrap();

    let (_daemon, addr) = start_daemon(&dir.config_path());
    let job = |id: i64| get(addr, &format!("/api/jobs/{id}")).json();
    let done = |id: i64| {
        wait_for(&format!("job {id}"), Duration::from_secs(60), || {
            let j = job(id);
            (j["state"] != "queued" && j["state"] != "running").then_some(j)
        })
    };
    assert_eq!(done(slow)["state"], "interrupted");
    assert_eq!(done(q1)["state"], "succeeded");
    assert_eq!(done(q2)["state"], "succeeded");
    let retried = wait_for(
        "the retried job to succeed",
        Duration::from_secs(60),
        || {
            let jobs = get(addr, "/api/jobs?hook=site&state=succeeded").json();
            jobs["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["attempt"] == 2)
                .cloned()
        },
    );
    assert_eq!(retried["sha"], shas[1].as_str());
    assert_eq!(read(&out.path().join("runs")), "1\n2\nretried\n");
}

#[test]
fn a_command_writing_100_mb_leaves_a_capped_log_and_a_live_daemon() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let text = config(
        out.path(),
        &hook("site", &repo, "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [\"yes 'a line of output' | head -c 100000000\"]\n"),
    )
    .replace("[server]\n", "[server]\nmax_log_size = \"64KiB\"\n");
    let app = TestApp::spawn(&text);
    let job = wait_job(
        &app,
        job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha)),
    );
    assert_eq!(job["state"], "succeeded", "{job}");
    let log = get(app.addr, &format!("/api/jobs/{}/log", job["id"])).body;
    assert!(log.len() < 64 * 1024 + 4096, "log is {} bytes", log.len());
    assert!(
        log.contains("truncated"),
        "{}",
        &log[log.len().saturating_sub(500)..]
    );
    // Still serving.
    let next = repo.commit(&[("version.txt", "2")], &[]);
    assert_eq!(
        push_generic(&app, "site", "refs/heads/main", &sha, &next).status,
        202
    );
}

/// `deployhook logs N --follow` returns when the job ends in any final state, saying how,
/// and exits 0 only for `succeeded`: a queued job cancelled before it ran, and one that
/// failed, both exit 1 naming the state and the reason.
#[test]
fn logs_follow_ends_in_every_final_state_and_succeeds_only_on_success() {
    let repo = Repo::new();
    let [v1, v2, v3] = [1, 2, 3].map(|n| repo.commit(&[("version.txt", &n.to_string())], &[]));
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        r#"
[[hook.rule]]
branches = ["main"]
queue = "fifo"
commands = ["""
v=$(cat version.txt)
if [ "$v" = 1 ]; then sleep 3; fi
if [ "$v" = 3 ]; then exit 3; fi
true
"""]
"#,
    );
    let follow = |id: i64| {
        let o = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["logs", "--url", &format!("http://{}", app.addr), "--follow"])
            .arg("--config")
            .arg(app.dir().config_path())
            .arg(id.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let first = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1));
    let second = job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v2));
    let res = post(app.addr, &format!("/api/jobs/{second}/cancel"), &[], b"");
    assert_eq!(res.status, 200, "{}", res.body);
    let (code, stderr) = follow(second);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("deployhook: job {second} ended cancelled")),
        "{stderr}"
    );
    assert_eq!(follow(first), (Some(0), String::new()));
    let third = job_id(&push_generic(&app, "site", "refs/heads/main", &v2, &v3));
    let (code, stderr) = follow(third);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        format!("deployhook: job {third} ended failed: command 1 failed: exit code 3")
    );
}

/// A rollback by force-push (after v1→v2 and v2→v3, a push v3→v1) and by hand
/// (`deploy --sha v1`) both deploy v1: neither is "a later push that arrived first".
#[test]
fn a_rollback_deploys_whether_force_pushed_or_by_hand() {
    let repo = Repo::new();
    let [v1, v2, v3] = [1, 2, 3].map(|n| repo.commit(&[("version.txt", &n.to_string())], &[]));
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\nenv = { OUT = \"$OUTDIR\" }\ncommands = [\"cp version.txt \\\"$OUT/deployed\\\"\"]\n",
    );
    for (before, after) in [(&v1, &v2), (&v2, &v3)] {
        let id = job_id(&push_generic(
            &app,
            "site",
            "refs/heads/main",
            before,
            after,
        ));
        assert_eq!(wait_job(&app, id)["state"], "succeeded");
    }
    // The branch is force-pushed back to v1.
    git(&repo.path, &["reset", "-q", "--hard", &v1]);
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", &v3, &v1));
    let job = wait_job(&app, id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(read(&out.path().join("deployed")), "1");

    git(&repo.path, &["reset", "-q", "--hard", &v3]);
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v3));
    assert_eq!(wait_job(&app, id)["state"], "succeeded");
    let res = post(
        app.addr,
        "/api/hooks/site/deploy",
        &[("Content-Type", "application/json")],
        serde_json::json!({ "ref": "main", "sha": v1 })
            .to_string()
            .as_bytes(),
    );
    let job = wait_job(&app, job_id(&res));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(read(&out.path().join("deployed")), "1");
}

/// No `api_token_file`: the daemon makes a token of its own, and loopback alone is not
/// enough (a reverse proxy, a web page and every deploy command are on loopback too).
/// The CLI finds the token through the config; `/metrics` asks for it with
/// `metrics_auth = true`.
#[test]
fn the_api_needs_a_token_even_from_loopback() {
    let (repo, out) = (Repo::new(), tempfile::tempdir().unwrap());
    let app = spawn_true_site(&repo, out.path(), "metrics_auth = true");
    let token_file = app.dir().config_path().with_file_name("state/api-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.trim().len(), 64, "{token:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let ask = |path: &str, auth: &str| {
        raw(
            app.addr,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .status
    };
    let bearer = format!("Authorization: Bearer {}\r\n", token.trim());
    for path in ["/api/jobs", "/api/events", "/api/deliveries", "/metrics"] {
        assert_eq!(ask(path, ""), 401, "{path} without a token");
        assert_eq!(ask(path, &bearer), 200, "{path} with it");
    }
    assert_eq!(
        raw(
            app.addr,
            b"POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .status,
        401
    );
    assert_eq!(ask("/healthz", ""), 200, "health stays anonymous");
    // A page on another site that reaches the daemon by DNS rebinding names that site:
    // 421, token or not; names the daemon answers to pass.
    let with_host = |host: &str| {
        let r = raw(
            app.addr,
            format!("GET /api/jobs HTTP/1.1\r\nHost: {host}\r\n{bearer}Connection: close\r\n\r\n")
                .as_bytes(),
        );
        (r.status, r.body)
    };
    let (status, body) = with_host("evil.example:9000");
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("server.allowed_hosts"), "{body}");
    for ok in ["localhost", "LOCALHOST:9000", "127.0.0.1:1", "[::1]:9000"] {
        assert_eq!(with_host(ok).0, 200, "{ok}");
    }
    // The CLI: with the config it finds the token; with a config that names nothing it
    // can read, the daemon's 401 says where the token is.
    let jobs = |config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["jobs", "--url", &format!("http://{}", app.addr), "--config"])
            .arg(config)
            .env_remove("DEPLOYHOOK_TOKEN_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let found = jobs(&app.dir().config_path());
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let elsewhere = out.path().join("other.toml");
    std::fs::write(&elsewhere, "[server]\nstate_dir = \"nowhere\"\n").unwrap();
    let refused = jobs(&elsewhere);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cannot read the API token file"),
        "{stderr}"
    );
}
