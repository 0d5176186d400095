//! `deployhook check` through the real binary: exit codes and messages, verbatim.

use std::process::Command;

use crate::helpers::TestDir;

fn check(dir: &TestDir) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["check", "--config"])
        .arg(dir.config_path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn shipped_hooks_toml_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/hooks.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["check", "--config", path])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{path}: ok (2 hooks)\n")
    );
    // The demo's inline secrets are allowed but called out.
    assert_eq!(
        stderr.matches("warning: inline secret").count(),
        2,
        "{stderr}"
    );
}

#[test]
fn every_problem_is_listed_with_file_line_and_column() {
    let text = r#"[server]
listn = "127.0.0.1:9000"
max_body = "25 parsecs"

[[hook]]
id = "site"
forge = "githbu"
secret_file = "missing"
repository = "acme/website"
clone_url = "https://user:token@example.com/x.git"

[[hook.rule]]
branches = ["refs/heads/main", "a..b", "[oops"]
commands = []

[[hook]]
id = "site"
forge = "generic"
secret_file = "secret"
repository = "acme"
clone_url = "/srv/app"

[[hook.rule]]
branches = ["**"]
commands = [["make"]]

[[hook.rule]]
branches = ["main"]
commands = [["make"]]

[[hook.rule]]
branches = ["main"]
paths = []
commands = [[]]
timeout = "soon"

[[hook]]
id = "lab"
forge = "gitlab"
secret = "tok"
secret_env = "LAB_TOKEN"
repository = "a/b"
clone_url = "git@example.com:a/b.git"
"#;
    let dir = TestDir::new(text);
    let file = dir.config_path().display().to_string();
    let (code, stdout, stderr) = check(&dir);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    let expected = [
        "2:1: unknown key `listn` in [server]; did you mean `listen`?",
        "3:12: max_body: unknown size unit \"parsecs\": use B, KB, KiB, MB, MiB, GB or GiB",
        "7:9: unknown forge \"githbu\"; did you mean `github`? forge is one of github, gitlab, gitea, forgejo, gogs, bitbucket, generic",
        &format!(
            "8:15: cannot read secret file {}/missing: No such file or directory (os error 2)",
            dir.dir.path().display()
        ),
        "10:13: clone_url contains a password or token; keep credentials out of the URL (and out of logs)",
        "12:1: rule has no commands: add commands = [[\"make\", \"deploy\"]] (an argv list) or [\"./deploy.sh\"] (run by /bin/sh -c)",
        "13:13: branch patterns match the name without refs/heads/: write `main`, not `refs/heads/main`",
        "13:32: branch pattern `a..b` can never match: git ref names cannot contain `..`",
        "13:40: bad glob: error parsing glob '[oops': unclosed character class; missing ']'",
        "17:6: duplicate hook id `site` (first defined at line 6); each hook needs its own id",
        "19:15: generic hooks are signed per Standard Webhooks: the secret must be whsec_ followed by base64, e.g. \"whsec_$(openssl rand -base64 32)\"",
        "20:14: repository \"acme\" must be owner/name as the forge names it (GitLab: the project's path with namespace)",
        "27:1: this rule can never match: rule 1 above it matches every push this one does, and the first matching rule wins",
        "33:9: paths = [] can never match; remove `paths` to deploy whatever files changed",
        "34:13: command is an empty argv list; its first item is the program to run",
        "35:11: timeout: \"soon\" is not a duration: write a number and a unit (ms, s, m, h, d), like \"10m\" or \"1h30m\"",
        "40:10: set only one of secret_env and secret: a hook's secrets all come from one place",
        "37:1: hook has no [[hook.rule]]: every push would be ignored; add a rule with branches and commands",
    ];
    let mut want: Vec<String> = expected.iter().map(|e| format!("{file}:{e}")).collect();
    want.sort_by_key(|l| {
        let pos = &l[file.len() + 1..];
        let mut it = pos.split(':');
        (
            it.next().unwrap().parse::<usize>().unwrap(),
            it.next().unwrap().parse::<usize>().unwrap(),
        )
    });
    want.push(format!(
        "{file}: {} errors; nothing was started",
        expected.len()
    ));
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(got, want, "\n--- stderr ---\n{stderr}");
}

#[test]
fn syntax_errors_and_missing_files_are_reported() {
    let dir = TestDir::new("[server\nlisten = 1\n");
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1);
    let file = dir.config_path().display().to_string();
    assert!(stderr.starts_with(&format!("{file}:1:8: ")), "{stderr}");

    let dir = TestDir::new("[server]\nlisten = 9000\n");
    let file = dir.config_path().display().to_string();
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "{file}:2:10: invalid type: integer `9000`, expected a string"
        )),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["check", "--config", "/nonexistent/hooks.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("/nonexistent/hooks.toml: cannot read config: No such file or directory (os error 2)")
    );
}

#[test]
fn deploy_settings_are_checked_too() {
    let text = r#"[server]
max_concurrent_jobs = 0
kill_grace = "soon"

[[hook]]
id = "site"
forge = "github"
secret_file = "secret"
repository = "acme/website"
clone_url = "git@example.com:acme/website.git"
ssh_key_file = "missing-key"
max_checkout_size = "lots"
max_tree_depth = 0

[[hook.rule]]
branches = ["main"]
commands = [["make"]]
queue = "lifo"
run_as = "no-such-user-here"
env = { "1BAD" = "x", DEPLOYHOOK_SHA = "y", GOOD = "z" }
limits = { cpu = "1h", memory = "lots", nofiles = 10, nice = 25 }
"#;
    let dir = TestDir::new(text);
    let file = dir.config_path().display().to_string();
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1);
    let want = [
        "2:23: max_concurrent_jobs: must be a whole number above 0, not 0".to_owned(),
        "3:14: kill_grace: \"soon\" is not a duration: write a number and a unit (ms, s, m, h, d), like \"10m\" or \"1h30m\"".to_owned(),
        "11:16: ssh_key_file needs known_hosts_file: the server's host key is checked against it (get it with ssh-keyscan, then verify it)".to_owned(),
        "12:21: max_checkout_size: \"lots\" is not a size: write a whole number and a unit, like \"25MiB\"".to_owned(),
        "13:18: max_tree_depth: must be a whole number above 0, not 0".to_owned(),
        "18:9: queue: \"lifo\" is not a queue mode: use \"supersede\" (a newer push replaces a pending one) or \"fifo\" (every push runs, in order)".to_owned(),
        "19:10: run_as: no user named \"no-such-user-here\" on this machine".to_owned(),
        "20:9: env: \"1BAD\" is not a valid variable name (letters, digits and _, not starting with a digit)".to_owned(),
        "20:23: env: DEPLOYHOOK_SHA is set by deployhook itself for every job".to_owned(),
        "21:33: limits.memory: \"lots\" is not a size: write a whole number and a unit, like \"25MiB\"".to_owned(),
        "21:41: unknown key `nofiles` in limits; did you mean `nofile`?".to_owned(),
        "21:62: limits.nice: must be 0 (the daemon's own CPU priority) to 19 (the lowest), not 25".to_owned(),
    ];
    let mut want: Vec<String> = want.iter().map(|w| format!("{file}:{w}")).collect();
    want.sort_by_key(|l| {
        let mut it = l[file.len() + 1..].split(':');
        (
            it.next().unwrap().parse::<usize>().unwrap(),
            it.next().unwrap().parse::<usize>().unwrap(),
        )
    });
    want.push(format!(
        "{file}: {} errors; nothing was started",
        want.len()
    ));
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(got, want, "\n--- stderr ---\n{stderr}");
}

#[test]
fn weak_secrets_and_tokens_are_a_warning() {
    let dir = TestDir::new(
        r#"[server]
api_token_file = "short"

[[hook]]
id = "gh"
forge = "github"
secret = "hunter2"
repository = "acme/website"
clone_url = "/srv/app"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]

[[hook]]
id = "ci"
forge = "generic"
secret = "whsec_c2hvcnQ="
repository = "acme/website"
clone_url = "/srv/app"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]
"#,
    );
    std::fs::write(dir.config_path().with_file_name("short"), "abc\n").unwrap();
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 0, "warnings only: {stderr}");
    let weak: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("can be guessed"))
        .collect();
    assert_eq!(weak.len(), 3, "{stderr}");
    for (line, bytes) in weak.iter().zip([3, 7, 5]) {
        assert!(
            line.contains(&format!(
                "warning: a secret of {bytes} bytes can be guessed: use at least 16 random bytes"
            )),
            "{line}"
        );
    }
    assert!(weak[0].contains("hooks.toml:2:"), "{}", weak[0]);
}

#[test]
fn status_and_notify_tables_are_checked_with_every_problem_listed() {
    let text = r#"[server]
listen = "127.0.0.1:0"

[[notify]]
name = "chat"
kind = "slack"
url = "http://chat.example.com/hook"

[[notify]]
name = "room"
kind = "matrix"
homeserver = "https://matrix.example.org"
room = "ops"

[[notify]]
name = "audit"
kind = "webhook"
url = "https://audit.example.com/"
secret_file = "secret"
on = ["finished"]

[[hook]]
id = "old"
forge = "gogs"
secret_file = "secret"
repository = "acme/website"
clone_url = "https://example.com/x.git"
notify = ["chta"]
[hook.status]
token_file = "no-such-token"

[[hook]]
id = "self-hosted"
forge = "gitea"
secret_file = "secret"
repository = "acme/website"
clone_url = "https://example.com/x.git"
[hook.status]
token_file = "secret"
api_url = "http://gitea.internal/api/v1"
contxt = "x"

[[hook.rule]]
branches = ["main"]
commands = [["true"]]
"#;
    let dir = TestDir::new(text);
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1, "{stderr}");
    let file = dir.config_path().display().to_string();
    for expected in [
        "7:7: warning: inline slack URL: whoever reads this file can post as deployhook; prefer url_file",
        "7:7: the slack URL is http://, which would send the token and messages in the clear; use https:// (http:// is allowed only for loopback addresses)",
        "13:8: room \"ops\" is not a room id like \"!abc123:example.org\"",
        "19:15: secret does not hold a whsec_<base64> secret (Standard Webhooks)",
        "20:6: on: unknown event \"finished\"",
        "28:11: notify: no [[notify]] target is named `chta`; did you mean `chat`?",
        "29:1: [hook.status]: forge = \"gogs\" has no commit status API",
        "30:14: cannot read secret file",
        "40:11: api_url: is http://",
        "41:1: unknown key `contxt` in [hook.status]; did you mean `context`?",
    ] {
        assert!(
            stderr.contains(&format!("{file}:{expected}")),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn a_covered_rule_is_an_error_only_when_the_first_match_wins() {
    let text = |matching: &str| {
        format!(
            r#"[server]
listen = "127.0.0.1:0"

[[hook]]
id = "platform"
forge = "generic"
secret_file = "whsec"
repository = "acme/platform"
clone_url = "https://example.com/x.git"
{matching}

[[hook.rule]]
name = "everything"
branches = ["main"]
commands = [["true"]]

[[hook.rule]]
name = "api"
branches = ["main"]
paths = ["services/api/**"]
commands = [["true"]]

[[hook.rule]]
name = "api"
tags = ["v*"]
commands = [["true"]]
"#
        )
    };
    let dir = TestDir::new(&text(""));
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("17:1: this rule can never match"),
        "{stderr}"
    );
    assert!(
        stderr.contains("23:1: two rules are named `api` (the first is rule 1)"),
        "{stderr}"
    );
    let dir = TestDir::new(&text("match = \"all\""));
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1);
    assert!(!stderr.contains("never match"), "{stderr}");
    assert!(stderr.contains("two rules are named `api`"), "{stderr}");
}

#[test]
fn secrets_locks_and_steps_are_checked() {
    let text = r#"[server]
listen = "127.0.0.1:0"

[[hook]]
id = "site"
forge = "generic"
secret_file = "whsec"
repository = "acme/site"
clone_url = "https://example.com/x.git"

[[hook.rule]]
branches = ["main"]
env = { API_TOKEN = "inline", REGION = "eu" }
secrets = { AWS_KEY = "readable-by-all", DB_PASSWORD = "missing", DEPLOYHOOK_X = "whsec", REGION = "whsec" }
lock = ""
commands = [["true"]]
on_failure = [[]]
finally = ["./release.sh"]
"#;
    let dir = TestDir::new(text);
    let open = dir.dir.path().join("readable-by-all");
    std::fs::write(&open, "k").unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, _, stderr) = check(&dir);
    assert_eq!(code, 1, "{stderr}");
    let file = dir.config_path().display().to_string();
    for expected in [
        "13:9: warning: env: API_TOKEN looks like a secret",
        "14:23: warning: secret file",
        "14:56: cannot read secret file",
        "14:67: secrets: DEPLOYHOOK_X is set by deployhook itself for every job",
        "14:91: secrets: REGION is in env as well; set it in one of them",
        "15:8: lock: must be a name of 1 to 128 characters",
        "17:15: command is an empty argv list",
    ] {
        assert!(
            stderr.contains(&format!("{file}:{expected}")),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("REGION looks like"), "{stderr}");
}

#[test]
fn a_bad_store_section_is_reported_without_its_password() {
    let text = r#"[server]
kill_grace = "30s"

[store]
backend = "postgres"
url = "postgres://deployhook:hunter2@db1.internal/deployhook"
password_file = "missing"
lease = "30s"
node_nmae = "deploy-a"

[[hook]]
id = "site"
forge = "generic"
secret_file = "whsec"
repository = "acme/site"
clone_url = "https://example.com/site.git"
run_on = ["deploy-a", "deploy-a"]

[[hook.rule]]
branches = ["main"]
commands = [["true"]]
"#;
    let dir = TestDir::new(text);
    let file = dir.config_path().display().to_string();
    let (code, stdout, stderr) = check(&dir);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    let want = [
        "6:7: url: holds a password: remove it from the URL and put it in password_file (a file, or \"%d/NAME\" for a systemd credential)".to_owned(),
        format!(
            "7:17: cannot read secret file {}/missing: No such file or directory (os error 2)",
            dir.dir.path().display()
        ),
        "8:9: lease: \"30s\" is too short: a replica that cannot reach the database stops its running jobs before its lease runs out, which takes up to two heartbeats (10s) and kill_grace (30s), plus 5s of margin; set lease = \"45s\" or more".to_owned(),
        "9:1: unknown key `node_nmae` in [store]; did you mean `node_name`?".to_owned(),
        "17:23: run_on: `deploy-a` is named twice".to_owned(),
    ];
    let mut want: Vec<String> = want.iter().map(|w| format!("{file}:{w}")).collect();
    want.push(format!(
        "{file}: {} errors; nothing was started",
        want.len()
    ));
    let got: Vec<&str> = stderr.lines().collect();
    assert_eq!(got, want, "\n--- stderr ---\n{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
