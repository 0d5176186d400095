//! Monorepos and rule names with real repositories and processes: `match = "all"` runs
//! every matching rule, in parallel, each in its own work tree, and says why the others
//! did not; `match = "first"` says which rules lost; commands get `DEPLOYHOOK_RULE` and
//! the exact changed files; a reload that reorders named rules keeps queued jobs on
//! their own rule.

use std::path::Path;
use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook, read};

/// A generic push of `sha` on main that lists `paths` as changed.
fn push_paths(app: &TestApp, sha: &str, paths: &[&str]) -> Response {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": sha,
        "paths": paths,
    })
    .to_string();
    let id = format!("msg_mono_{sha}_{}", paths.len());
    let sw = standard_webhooks(&id, now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    app.post("site", &headers, body.as_bytes())
}

/// A rule named `name` for `paths` that records its rule, work tree and changed files in
/// `$OUT/<name>.*`, and first waits (at most 20 s) for `$OUT/<wait>` to exist.
fn recording_rule(name: &str, paths: &str, wait: &str) -> String {
    format!(
        r#"
[[hook.rule]]
name = "{name}"
branches = ["main"]
paths = ["{paths}"]
env = {{ OUT = "$OUTDIR" }}
commands = ["touch \"$OUT/{name}.started\"; i=0; while [ ! -e \"$OUT/{wait}\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; [ -e \"$OUT/{wait}\" ] || exit 7; echo \"$DEPLOYHOOK_RULE\" > \"$OUT/{name}.rule\"; pwd > \"$OUT/{name}.pwd\"; cp \"$DEPLOYHOOK_CHANGED_FILES\" \"$OUT/{name}.files\""]
"#
    )
}

#[test]
fn a_monorepo_push_runs_every_matching_rule_at_once_each_in_its_own_work_tree() {
    let repo = Repo::new();
    let sha = repo.commit(
        &[("services/api/main.go", "a"), ("services/web/app.ts", "w")],
        &[],
    );
    let out = tempfile::tempdir().unwrap();
    // Each waits for the other to have started: run one after the other, they would
    // both time out.
    let rules = [
        "match = \"all\"\n".to_owned(),
        recording_rule("api", "services/api/**", "web.started"),
        recording_rule("web", "services/web/**", "api.started"),
        recording_rule("docs", "docs/**", "never"),
    ]
    .concat();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, &rules)));
    let hostile = "services/api/$(touch pwned)\nand a newline.txt";
    let res = push_paths(
        &app,
        &sha,
        &["services/api/main.go", hostile, "services/web/app.ts"],
    );
    assert_eq!(res.status, 202, "{}", res.body);
    let answer = res.json();
    let jobs = answer["jobs"].as_array().unwrap();
    let keys: Vec<&str> = jobs
        .iter()
        .map(|j| j["rule_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["api", "web"]);
    assert_eq!(
        answer["not_deployed"],
        serde_json::json!([{
            "rule": "docs", "ref": "refs/heads/main", "reason": "no changed file matches docs/**"
        }])
    );
    for j in jobs {
        let job = wait_job(&app, j["id"].as_i64().unwrap());
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let o = out.path();
    assert_eq!(read(&o.join("api.rule")).trim(), "api");
    assert_eq!(read(&o.join("web.rule")).trim(), "web");
    let state = app.dir().dir.path().join("state/work/site");
    assert_eq!(
        Path::new(read(&o.join("api.pwd")).trim()),
        std::fs::canonicalize(state.join("api")).unwrap()
    );
    assert_eq!(
        Path::new(read(&o.join("web.pwd")).trim()),
        std::fs::canonicalize(state.join("web")).unwrap()
    );
    // The changed files, exactly, the odd one quoted as git quotes it; never run.
    let expected = "services/api/main.go\n\"services/api/$(touch pwned)\\nand a newline.txt\"\nservices/web/app.ts\n";
    assert_eq!(read(&o.join("api.files")), expected);
    assert_eq!(read(&o.join("web.files")), expected);
    assert!(!state.join("api/pwned").exists() && !o.join("pwned").exists());
    assert!(!o.join("docs.started").exists());
    // The delivery's record keeps why the other rule did not deploy it.
    let records = get(app.addr, "/api/deliveries?hook=site").json();
    let reason = records["deliveries"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.ends_with("; rule docs: no changed file matches docs/**"),
        "{reason}"
    );
}

#[test]
fn with_match_first_the_rules_that_lost_are_listed_and_no_file_list_means_no_variable() {
    let repo = Repo::new();
    let sha = repo.commit(&[("services/api/main.go", "a")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = r#"
[[hook.rule]]
name = "api"
branches = ["main"]
paths = ["services/api/**"]
env = { OUT = "$OUTDIR" }
commands = ["echo \"${DEPLOYHOOK_CHANGED_FILES-unset}\" > \"$OUT/files\""]
[[hook.rule]]
name = "everything"
branches = ["main"]
commands = [["true"]]
"#;
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, rules)));
    let res = push_paths(&app, &sha, &["services/api/main.go"]);
    let answer = res.json();
    assert_eq!(answer["jobs"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(
        answer["not_deployed"][0]["reason"],
        "also matched; the first match wins (match = \"first\")"
    );
    assert_eq!(answer["not_deployed"][0]["rule"], "everything");
    assert_eq!(wait_job(&app, job_id(&res))["state"], "succeeded");
    // A push whose forge lists no files (here: none given) sets no variable.
    let id = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha));
    assert_eq!(wait_job(&app, id)["state"], "succeeded");
    assert_eq!(read(&out.path().join("files")).trim(), "unset");
}

#[test]
fn a_reload_that_reorders_named_rules_keeps_queued_jobs_on_their_own_rule() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let sha2 = repo.commit(&[("index.html", "2")], &[]);
    let out = tempfile::tempdir().unwrap();
    // Pushes that list no files match both (a `paths` filter matches an unknown list),
    // and neither rule covers the other: whichever comes first deploys them.
    let rule = |name: &str, branch: &str| {
        format!(
            "[[hook.rule]]\nname = \"{name}\"\nbranches = [\"{branch}\"]\npaths = [\"{name}/**\"]\nqueue = \"fifo\"\nenv = {{ OUT = \"$OUTDIR\" }}\ncommands = [\"i=0; while [ ! -e \\\"$OUT/go\\\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo {name} >> \\\"$OUT/ran\\\"\"]\n"
        )
    };
    let before = config(
        out.path(),
        &hook(
            "site",
            &repo,
            &[rule("a", "main"), rule("b", "main")].concat(),
        ),
    );
    let app = TestApp::spawn(&before);
    // One job runs (and waits for `go`), a second one is queued, both for rule a.
    let first = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &sha));
    wait_for("the first job to start", Duration::from_secs(30), || {
        (get(app.addr, &format!("/api/jobs/{first}")).json()["state"] == "running").then_some(())
    });
    let second = job_id(&push_generic(&app, "site", "refs/heads/main", &sha, &sha2));
    // Swap the rules: `b` now comes first and would match the same pushes.
    let after = config(
        out.path(),
        &hook(
            "site",
            &repo,
            &[rule("b", "main"), rule("a", "main")].concat(),
        ),
    );
    std::fs::write(app.dir().config_path(), &after).unwrap();
    assert_eq!(post(app.addr, "/api/reload", &[], b"").status, 200);
    std::fs::write(out.path().join("go"), "").unwrap();
    for id in [first, second] {
        let job = wait_job(&app, id);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["rule_key"], "a");
    }
    assert_eq!(read(&out.path().join("ran")), "a\na\n");
}
