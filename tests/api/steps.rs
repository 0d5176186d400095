//! What real teams' deploys need, with real repositories and processes: secrets for the
//! commands, masked in the job log however they are printed; a lock two hooks share;
//! `on_failure` and `finally` steps after a failure, a timeout, a cancel and a success.

use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook, read};

const TOKEN: &str = "tok-1234567890-abcdefghij";
const STATUS_TOKEN: &str = "ghp_maskedSTATUStoken0123456789";
const CHAT_URL: &str = "http://127.0.0.1:9/services/T000/B000/SLACKSECRET";
const KUBE_LINE_1: &str = "client-key-data: LS0tLS1CRUdJTiBQUklWQVRF";
const KUBE_LINE_2: &str = "client-certificate-data: LS0tLS1CRUdJTiBDRVJU";

#[test]
fn secrets_reach_the_commands_and_never_the_log_however_they_are_printed() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = format!(
        r#"
[[hook.rule]]
branches = ["main"]
secrets = {{ DEPLOY_TOKEN = "deploy-token", KUBECONFIG_DATA = "kube" }}
env = {{ OUT = "$OUTDIR", WH = "{WHSEC}", ST = "{STATUS_TOKEN}", CU = "{CHAT_URL}" }}
commands = [
  "printf '%s' \"$DEPLOY_TOKEN\" > \"$OUT/token\"",
  "echo \"the token is $DEPLOY_TOKEN, once more: $DEPLOY_TOKEN\"",
  "printf 'split: %s' \"$(echo \"$DEPLOY_TOKEN\" | cut -c1-9)\"; sleep 0.3; printf '%s done\n' \"$(echo \"$DEPLOY_TOKEN\" | cut -c10-)\"",
  "printf '%s\n' \"$KUBECONFIG_DATA\"",
  "echo \"$DEPLOY_TOKEN\" >&2",
  "echo \"webhook secret: $WH\"",
  "echo \"notify token: $ST, chat: $CU\"",
]
"#
    );
    // The hook also tells a chat and an ntfy topic: their URL and token are masked too.
    let rules = format!("notify = [\"chat\", \"phone\"]\n{rules}");
    let chat = "\n[[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl_file = \"chat-url\"\n\n[[notify]]\nname = \"phone\"\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:9/deploys\"\ntoken_file = \"status-token\"\n";
    let dir = TestDir::new(&config(out.path(), &(hook("site", &repo, &rules) + chat)));
    for (name, content) in [
        ("deploy-token", format!("{TOKEN}\n")),
        ("kube", format!("{KUBE_LINE_1}\n{KUBE_LINE_2}\n")),
        ("status-token", STATUS_TOKEN.to_owned()),
        ("chat-url", CHAT_URL.to_owned()),
    ] {
        let p = dir.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let app = TestApp::spawn_in(dir);
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha));
    let job = wait_job(&app, id);
    assert_eq!(job["state"], "succeeded", "{job}");
    // The command got the value (without the file's line break) ...
    assert_eq!(read(&out.path().join("token")), TOKEN);
    // ... and the log shows none of it, in one piece, in two writes, on stderr, on
    // several lines, nor the hook's own webhook secret.
    let log = get(app.addr, &format!("/api/jobs/{id}/log")).body;
    for secret in [
        TOKEN,
        KUBE_LINE_1,
        KUBE_LINE_2,
        WHSEC,
        &WHSEC[6..],
        STATUS_TOKEN,
        CHAT_URL,
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(
        log.contains("out| the token is ***, once more: ***"),
        "{log}"
    );
    assert!(log.contains("out| split: *** done"), "{log}");
    assert!(
        log.contains("out| ***\n") && log.contains("err| ***"),
        "{log}"
    );
    assert!(log.contains("out| webhook secret: ***"), "{log}");
    assert!(log.contains("out| notify token: ***, chat: ***"), "{log}");
    // Nor the job record or the API.
    let record = get(app.addr, &format!("/api/jobs/{id}")).body;
    assert!(!record.contains(TOKEN), "{record}");
}

#[test]
fn two_hooks_sharing_a_lock_never_run_at_once() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    // Each records when it started and ended (ns); `app` first waits for `go`.
    let rule = |name: &str, wait: &str| {
        format!(
            "[[hook.rule]]\nbranches = [\"main\"]\nlock = \"prod-web\"\nenv = {{ OUT = \"$OUTDIR\" }}\ncommands = [\"date +%s%N > \\\"$OUT/{name}.start\\\"; i=0; while [ ! -e \\\"$OUT/{wait}\\\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.3; date +%s%N > \\\"$OUT/{name}.end\\\"\"]\n"
        )
    };
    let hooks = [
        hook("app", &repo, &rule("app", "go")),
        hook("conf", &repo, &rule("conf", "go")),
    ]
    .concat();
    let app = TestApp::spawn(&config(out.path(), &hooks));
    let first = job_id(&push_generic(&app, "app", "refs/heads/main", ZERO, &sha));
    wait_for("app's job to run", Duration::from_secs(30), || {
        out.path().join("app.start").exists().then_some(())
    });
    let second = job_id(&push_generic(&app, "conf", "refs/heads/main", ZERO, &sha));
    let waiting = wait_for(
        "conf's job to say what it waits for",
        Duration::from_secs(30),
        || {
            let job = get(app.addr, &format!("/api/jobs/{second}")).json();
            job["waiting_for"].as_str().map(str::to_owned)
        },
    );
    assert_eq!(waiting, format!("lock prod-web, held by job {first}"));
    assert_eq!(
        get(app.addr, &format!("/api/jobs/{second}")).json()["state"],
        "queued"
    );
    std::fs::write(out.path().join("go"), "").unwrap();
    for id in [first, second] {
        assert_eq!(wait_job(&app, id)["state"], "succeeded");
    }
    let at = |name: &str| read(&out.path().join(name)).trim().parse::<u128>().unwrap();
    assert!(
        at("app.end") <= at("conf.start"),
        "conf started before app had ended"
    );
}

#[test]
fn on_failure_and_finally_run_after_a_failure_a_timeout_a_cancel_and_a_success() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rule = |name: &str, branch: &str, command: &str, timeout: &str| {
        format!(
            r#"
[[hook.rule]]
name = "{name}"
branches = ["{branch}"]
timeout = "{timeout}"
env = {{ OUT = "$OUTDIR" }}
commands = ["true", "{command}"]
on_failure = ["echo \"$DEPLOYHOOK_RESULT $DEPLOYHOOK_FAILED_COMMAND\" > \"$OUT/{name}.on_failure\""]
finally = ["echo \"$DEPLOYHOOK_RESULT\" > \"$OUT/{name}.finally\"", "touch \"$OUT/{name}.finally2\""]
"#
        )
    };
    let rules = [
        rule("fails", "fail", "exit 3", "1m"),
        rule("slow", "slow", "sleep 30", "1s"),
        rule("cancelled", "cancel", "sleep 30", "1m"),
        rule("works", "main", "true", "1m"),
    ]
    .concat();
    for branch in ["fail", "slow", "cancel"] {
        crate::gitrepo::git(&repo.path, &["branch", branch]);
    }
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, &rules)));
    let run = |branch: &str| {
        job_id(&push_generic(
            &app,
            "site",
            &format!("refs/heads/{branch}"),
            ZERO,
            &sha,
        ))
    };
    let failed = run("fail");
    let job = wait_job(&app, failed);
    assert_eq!(job["detail"], "command 2 failed: exit code 3", "{job}");
    let slow = run("slow");
    let job = wait_job(&app, slow);
    assert_eq!(job["state"], "timed_out", "{job}");
    let cancelled = run("cancel");
    wait_for(
        "the job to run its second command",
        Duration::from_secs(30),
        || {
            get(app.addr, &format!("/api/jobs/{cancelled}/log"))
                .body
                .contains("sleep 30")
                .then_some(())
        },
    );
    assert_eq!(
        post(app.addr, &format!("/api/jobs/{cancelled}/cancel"), &[], b"").status,
        202
    );
    assert_eq!(wait_job(&app, cancelled)["state"], "cancelled");
    let works = run("main");
    let job = wait_job(&app, works);
    assert_eq!(job["state"], "succeeded", "{job}");

    let o = |name: &str| read(&out.path().join(name));
    assert_eq!(o("fails.on_failure"), "failed 1\n");
    assert_eq!(o("fails.finally"), "failed\n");
    assert_eq!(o("slow.on_failure"), "timed_out 1\n");
    assert_eq!(o("slow.finally"), "timed_out\n");
    assert!(!out.path().join("cancelled.on_failure").exists());
    assert_eq!(o("cancelled.finally"), "cancelled\n");
    assert!(!out.path().join("works.on_failure").exists());
    assert_eq!(o("works.finally"), "succeeded\n");
    for name in ["fails", "slow", "cancelled", "works"] {
        assert!(
            out.path().join(format!("{name}.finally2")).exists(),
            "{name}"
        );
    }
    // The steps' results are in the log; the job's own result stays.
    let log = get(app.addr, &format!("/api/jobs/{failed}/log")).body;
    assert!(log.contains("job| on_failure: step 1 succeeded"), "{log}");
    assert!(log.contains("job| finally: step 2 succeeded"), "{log}");
    assert_eq!(
        wait_job(&app, failed)["detail"],
        "command 2 failed: exit code 3"
    );
}
