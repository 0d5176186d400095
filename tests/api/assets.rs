//! `deployhook generate` through the real binary: the shipped schema is current, the man
//! pages and completions cover the CLI, and the schema accepts the shipped configs and
//! refuses unknown keys, as `deployhook check` does.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use deployhook::cli::Cli;
use serde_json::{Map, Value};

const SHIPPED_SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/hooks.schema.json");

/// Runs `deployhook generate --out <tempdir>`; the files are in the returned dir.
fn generate() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["generate", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn visible_subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect()
}

#[test]
fn the_shipped_schema_is_the_generated_one() {
    let dir = generate();
    let generated = read(dir.path(), "hooks.schema.json");
    let shipped = std::fs::read_to_string(SHIPPED_SCHEMA).unwrap_or_default();
    assert!(
        generated == shipped,
        "packaging/hooks.schema.json is not what the config types generate now; update it \
         with `scripts/package.sh --update-schema` (or `cargo run -- generate --out \
         target/assets && cp target/assets/hooks.schema.json packaging/`) and commit it"
    );
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = generate();
    let page = read(dir.path(), "deployhook.1");
    assert!(
        page.starts_with(".ie") && page.contains(".TH deployhook 1"),
        "{page}"
    );
    for name in visible_subcommands() {
        // roff escapes the hyphen.
        assert!(
            page.contains(&format!("deployhook\\-{name}(1)")),
            "deployhook.1 does not list {name}:\n{page}"
        );
        let sub = read(dir.path(), &format!("deployhook-{name}.1"));
        assert!(sub.contains(&format!(".TH deployhook-{name} 1")), "{sub}");
    }
    for hidden in ["deployhook\\-generate", "sandbox\\-exec"] {
        assert!(
            !page.contains(hidden),
            "deployhook.1 shows {hidden}:\n{page}"
        );
    }
}

#[test]
fn completions_offer_the_subcommands_but_not_the_internal_ones() {
    let dir = generate();
    let bash = read(dir.path(), "deployhook.bash");
    let zsh = read(dir.path(), "_deployhook");
    let fish = read(dir.path(), "deployhook.fish");
    assert!(zsh.starts_with("#compdef deployhook"), "{zsh}");
    for script in [&bash, &zsh, &fish] {
        for name in ["serve", "check"] {
            assert!(script.contains(name), "no {name} in:\n{script}");
        }
        assert!(!script.contains("sandbox-exec") && !script.contains("generate"));
    }
    assert!(bash.contains("complete -F _deployhook"), "{bash}");
}

#[test]
fn the_schema_accepts_the_shipped_configs() {
    let schema: Value =
        serde_json::from_str(&read(generate().path(), "hooks.schema.json")).unwrap();
    for file in ["hooks.toml", "packaging/hooks.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let errors = validate(&schema, &toml_file_as_json(&path));
        assert!(errors.is_empty(), "{file}:\n{errors}");
    }
    // The packaged default is also a config `check` accepts, as the unit's ExecStartPre runs it.
    let packaged = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/hooks.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["check", "--config", packaged])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{packaged}: ok (0 hooks)\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let everything = r#"
        [server]
        listen = "0.0.0.0:9000"
        state_dir = "/var/lib/deployhook"
        max_body = "1MiB"
        max_concurrent_jobs = 2
        api_token_file = "token"
        kill_grace = "5s"
        max_log_size = "64KiB"
        keep_jobs = 10
        keep_for = "7d"
        shutdown_grace = "1m"
        watch_config = true
        log_level = "debug"
        allow_from = ["192.0.2.0/24"]
        trusted_proxies = ["127.0.0.1/32"]
        tls = { cert_file = "cert.pem", key_file = "key.pem" }

        [[hook]]
        id = "a"
        forge = "gitlab"
        secret_file = ["new", "old"]
        repository = "a/b"
        clone_url = "ssh://git@example.com/a/b.git"
        ssh_key_file = "key"
        known_hosts_file = "known_hosts"
        shallow = true
        submodules = false

        [[hook.rule]]
        tags = ["v*"]
        paths = ["src/**"]
        commands = ["make", ["make", "install"]]
        timeout = "1h"
        queue = "fifo"
        retry_interrupted = true
        env = { A = "1" }
        run_as = "deploy"
        limits = { cpu = "1m", memory = "1GiB", nofile = 64, nproc = 32, nice = 4 }
        sandbox = true

        [[hook]]
        id = "b"
        forge = "github"
        secret_env = "B"
        legacy_sha1 = true
        repository = "a/c"
        clone_url = "https://example.com/a/c.git"
        token_file = "token"
        token_user = "x"
        [[hook.rule]]
        branches = ["main"]
        commands = [["true"]]
    "#;
    let errors = validate(&schema, &toml_as_json(everything));
    assert!(errors.is_empty(), "{errors}");
}

/// Valid for the schema and for `deployhook check`; the refused cases change one line.
const VALID: &str = r#"# top
[server]
listen = "127.0.0.1:0"
# server

[[hook]]
id = "a"
forge = "generic"
secret = "whsec_ZGVtby1rZXktZm9yLXRoZS1kZXBsb3lob29rLXJlYWRtZQ=="
repository = "a/b"
clone_url = "."
# hook

[[hook.rule]]
branches = ["main"]
commands = ["true"]
# rule
"#;

#[test]
fn the_schema_refuses_unknown_keys_and_wrong_types_as_check_does() {
    let schema: Value =
        serde_json::from_str(&read(generate().path(), "hooks.schema.json")).unwrap();
    let refused = [
        ("# top", "top = 1", "/: unknown key top"),
        ("# server", "listn = \"x\"", "/server: unknown key listn"),
        (
            "# server",
            "tls = { cert = \"x\" }",
            "/server/tls: unknown key cert",
        ),
        ("# hook", "secrets = \"x\"", "/hook/0: unknown key secrets"),
        (
            "# rule",
            "branch = [\"main\"]",
            "/hook/0/rule/0: unknown key branch",
        ),
        (
            "# rule",
            "limits = { cores = 2 }",
            "/hook/0/rule/0/limits: unknown key cores",
        ),
        (
            "forge = \"generic\"",
            "forge = \"githbu\"",
            "/hook/0/forge: not one of",
        ),
        (
            "secret = \"whsec_",
            "secret = 5 # ",
            "/hook/0/secret: matches none of",
        ),
        (
            "commands = [\"true\"]",
            "commands = [[\"make\", 1]]",
            "/hook/0/rule/0/commands/0: matches none of",
        ),
        (
            "# rule",
            "env = { A = 1 }",
            "/hook/0/rule/0/env/A: expected string",
        ),
        (
            "# server",
            "keep_jobs = 0",
            "/server/keep_jobs: below the minimum 1",
        ),
        (
            "listen = \"127.0.0.1:0\"",
            "listen = 9000",
            "/server/listen: expected string",
        ),
        (
            "# rule",
            "queue = \"lifo\"",
            "/hook/0/rule/0/queue: not one of",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hooks.toml");
    let run_check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(validate(&schema, &toml_as_json(VALID)), "");
    let (code, stderr) = run_check(VALID);
    assert_eq!(code, Some(0), "{stderr}");
    for (from, to, expected) in refused {
        assert!(VALID.contains(from), "{from}");
        let text = VALID.replacen(from, to, 1);
        let errors = validate(&schema, &toml_as_json(&text));
        assert!(
            errors.lines().any(|l| l.starts_with(expected)),
            "{to}: expected {expected:?}, got:\n{errors}"
        );
        let (code, stderr) = run_check(&text);
        assert_eq!(code, Some(1), "check accepted {to}: {stderr}");
    }
}

fn toml_file_as_json(path: &Path) -> Value {
    toml_as_json(&std::fs::read_to_string(path).unwrap())
}

fn toml_as_json(text: &str) -> Value {
    let value: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    serde_json::to_value(value).unwrap()
}

/// A JSON Schema checker for the keywords `hooks.schema.json` uses (and no others: an
/// unknown keyword fails the test, so the checker cannot silently let a file through).
/// Returns one `path: problem` line per problem.
fn validate(root: &Value, value: &Value) -> String {
    let mut errors = String::new();
    check(root, root, value, "", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut String) {
    let here = if path.is_empty() { "/" } else { path };
    let Value::Object(schema) = schema else {
        panic!("schema at {here} is not an object")
    };
    for (keyword, rule) in schema {
        match keyword.as_str() {
            // Annotations; and objects' keys, checked together below.
            "$schema"
            | "title"
            | "description"
            | "definitions"
            | "format"
            | "properties"
            | "additionalProperties" => {}
            "$ref" => {
                let name = rule
                    .as_str()
                    .unwrap()
                    .strip_prefix("#/definitions/")
                    .unwrap();
                check(root, &root["definitions"][name], value, path, errors);
            }
            "allOf" => {
                for s in rule.as_array().unwrap() {
                    check(root, s, value, path, errors);
                }
            }
            "anyOf" => {
                let ok = rule.as_array().unwrap().iter().any(|s| {
                    let mut e = String::new();
                    check(root, s, value, path, &mut e);
                    e.is_empty()
                });
                if !ok {
                    let _ = writeln!(errors, "{here}: matches none of {rule}");
                }
            }
            "type" => {
                let t = rule.as_str().unwrap();
                let ok = match t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "boolean" => value.is_boolean(),
                    "integer" => value.is_i64() || value.is_u64(),
                    _ => panic!("type {t} at {here}"),
                };
                if !ok {
                    let _ = writeln!(errors, "{here}: expected {t}, got {value}");
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    let _ = writeln!(errors, "{here}: not one of {rule}");
                }
            }
            "minimum" => {
                if value.as_f64().is_some_and(|n| n < rule.as_f64().unwrap()) {
                    let _ = writeln!(errors, "{here}: below the minimum {rule}");
                }
            }
            "maximum" => {
                if value.as_f64().is_some_and(|n| n > rule.as_f64().unwrap()) {
                    let _ = writeln!(errors, "{here}: above the maximum {rule}");
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, item, &format!("{path}/{i}"), errors);
                }
            }
            other => panic!("the test's checker does not know `{other}` (at {here})"),
        }
    }
    if let Value::Object(obj) = value
        && (schema.contains_key("properties") || schema.contains_key("additionalProperties"))
    {
        check_object(root, schema, obj, path, errors);
    }
}

/// `properties` and `additionalProperties`: each key by its own schema, or by the one for
/// the others, or refused.
fn check_object(
    root: &Value,
    schema: &Map<String, Value>,
    obj: &Map<String, Value>,
    path: &str,
    errors: &mut String,
) {
    let here = if path.is_empty() { "/" } else { path };
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (key, v) in obj {
        let sub = format!("{path}/{key}");
        match (properties.get(key), schema.get("additionalProperties")) {
            (Some(s), _) | (None, Some(s @ Value::Object(_))) => check(root, s, v, &sub, errors),
            (None, Some(Value::Bool(false))) => {
                let _ = writeln!(errors, "{here}: unknown key {key}");
            }
            (None, _) => {}
        }
    }
}
