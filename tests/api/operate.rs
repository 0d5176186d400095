//! Running it for months: systemd notifications, reloads (signal, API, file watch),
//! graceful shutdown, metrics and health, TLS, who may deliver, `sign`, credentials and
//! JSON logs — through the real binary where a process boundary matters.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;

/// A running `deployhook serve` whose stderr lines arrive on a channel.
struct Serve {
    daemon: Daemon,
    addr: std::net::SocketAddr,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Serve {
    fn start(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deployhook"));
        cmd.args(["serve", "--config"])
            .arg(dir.config_path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let daemon = Daemon(child, std::sync::Arc::default());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let addr: std::net::SocketAddr =
            wait_for("the listening line", Duration::from_secs(60), || {
                let line = lines.recv_timeout(Duration::from_millis(100)).ok()?;
                log.push(line.clone());
                let at = line.find("listening on ")?;
                line[at + 13..]
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()?
                    .parse()
                    .ok()
            });
        // As the CLI would, API requests to it carry the token it made.
        let token = dir.config_path().with_file_name("state/api-token");
        if let Ok(t) = std::fs::read_to_string(token) {
            register_token(addr, t.trim().to_owned());
        }
        Serve {
            daemon,
            addr,
            lines,
            log,
        }
    }

    /// Waits for a log line containing `text`.
    fn expect_log(&mut self, text: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        wait_for(
            &format!("a log line with {text:?}"),
            Duration::from_secs(30),
            || {
                let line = self.lines.recv_timeout(Duration::from_millis(100)).ok()?;
                self.log.push(line.clone());
                line.contains(text).then_some(line)
            },
        )
    }

    fn signal(&self, sig: &str) {
        let pid = self.daemon.0.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{sig}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

fn base_config(extra_server: &str, hooks: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\n{}\n{extra_server}\n{hooks}",
        own_command_user()
    )
}

fn generic_hook(id: &str, clone_url: &str, commands: &str) -> String {
    format!(
        "\n[[hook]]\nid = \"{id}\"\nforge = \"generic\"\nsecret_file = \"whsec\"\nrepository = \"acme/website\"\nclone_url = \"{clone_url}\"\n[[hook.rule]]\nbranches = [\"main\"]\ncommands = {commands}\n"
    )
}

fn push_to(addr: std::net::SocketAddr, hook: &str, after: &str, id: &str) -> Response {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000", "after": after,
    })
    .to_string();
    let sw = standard_webhooks(id, now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    post(addr, &format!("/hooks/{hook}"), &headers, body.as_bytes())
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = TestDir::new(&base_config(
        "",
        &generic_hook("a", "/nonexistent", "[[\"true\"]]"),
    ));
    let socket_path = dir.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let serve = Serve::start(
        &dir,
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    serve.signal("HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(next(), "READY=1");
    serve.signal("TERM");
    assert_eq!(next(), "STOPPING=1");
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let dir = TestDir::new(&base_config(
        "",
        &generic_hook("a", "/nonexistent", "[[\"true\"]]"),
    ));
    let mut serve = Serve::start(&dir, &[], &[]);
    let sha = "1111111111111111111111111111111111111111";
    assert_eq!(push_to(serve.addr, "b", sha, "m1").status, 404);

    let two = base_config(
        "",
        &(generic_hook("a", "/nonexistent", "[[\"true\"]]")
            + &generic_hook("b", "/nonexistent", "[[\"true\"]]")),
    );
    std::fs::write(dir.config_path(), &two).unwrap();
    serve.signal("HUP");
    serve.expect_log("config reloaded");
    assert_eq!(push_to(serve.addr, "b", sha, "m2").status, 202);

    std::fs::write(
        dir.config_path(),
        two.replace("forge = \"generic\"", "forge = \"genric\""),
    )
    .unwrap();
    serve.signal("HUP");
    let line = serve.expect_log("unknown forge \"genric\"");
    let file = dir.config_path().display().to_string();
    assert!(
        line.contains(&format!("{file}:9:9: unknown forge")),
        "{line}"
    );
    serve.expect_log("config reload refused");
    // The previous config keeps serving.
    assert_eq!(push_to(serve.addr, "b", sha, "m3").status, 202);
    let metrics = get(serve.addr, "/metrics").body;
    assert!(
        metrics.contains("deployhook_config_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("deployhook_config_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn the_api_reloads_and_a_replaced_file_is_picked_up_when_watched() {
    let one = generic_hook("a", "/nonexistent", "[[\"true\"]]");
    let two = one.clone() + &generic_hook("b", "/nonexistent", "[[\"true\"]]");
    let dir = TestDir::new(&base_config("watch_config = true", &one));
    let serve = Serve::start(&dir, &[], &[]);
    let sha = "1111111111111111111111111111111111111111";

    // Editors and git replace the file (write elsewhere, rename over it).
    let tmp = dir.dir.path().join("hooks.toml.new");
    std::fs::write(&tmp, base_config("watch_config = true", &two)).unwrap();
    std::fs::rename(&tmp, dir.config_path()).unwrap();
    wait_for(
        "the watched file to be reloaded",
        Duration::from_secs(30),
        || (push_to(serve.addr, "b", sha, &format!("w{}", now_secs())).status == 202).then_some(()),
    );

    std::fs::write(dir.config_path(), base_config("", "[[hook]]\nid = \"x\"\n")).unwrap();
    let res = post(serve.addr, "/api/reload", &[], b"");
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(
        res.error()
            .starts_with("the config was not reloaded; the previous one keeps serving:"),
        "{}",
        res.body
    );
    std::fs::write(dir.config_path(), base_config("", &one)).unwrap();
    let res = post(serve.addr, "/api/reload", &[], b"");
    assert_eq!(
        (res.status, res.json()["hooks"].as_u64()),
        (200, Some(1)),
        "{}",
        res.body
    );
}

#[test]
fn sigterm_lets_a_short_job_finish_interrupts_a_long_one_and_keeps_the_queue() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display();
    let hooks = generic_hook(
        "short",
        &repo.url(),
        &format!("[\"touch {o}/short.started; sleep 1; touch {o}/short.done\"]"),
    ) + &generic_hook(
        "long",
        &repo.url(),
        &format!("[\"touch {o}/long.started; sleep 120\"]"),
    ) + &generic_hook(
        "queued",
        &repo.url(),
        &format!("[\"touch {o}/queued.started; sleep 120\"]"),
    );
    let dir = TestDir::new(&base_config(
        "shutdown_grace = \"3s\"\nkill_grace = \"1s\"\nmax_concurrent_jobs = 2",
        &hooks,
    ));
    let mut serve = Serve::start(&dir, &[], &[]);
    let ids: Vec<i64> = ["short", "long", "queued"]
        .iter()
        .map(|h| {
            push_to(serve.addr, h, &sha, &format!("t-{h}")).json()["jobs"][0]["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    wait_for("both jobs to start", Duration::from_secs(60), || {
        (out.path().join("short.started").exists() && out.path().join("long.started").exists())
            .then_some(())
    });
    serve.signal("TERM");
    let status = wait_for("the daemon to exit", Duration::from_secs(60), || {
        serve.daemon.0.try_wait().ok().flatten()
    });
    assert!(status.success());
    assert!(
        out.path().join("short.done").exists(),
        "the short job had time to finish"
    );
    assert!(!out.path().join("queued.started").exists());

    let state = |id: i64| dir.recorded_state(id);
    assert_eq!(state(ids[0]), "succeeded");
    assert_eq!(state(ids[1]), "interrupted");
    assert_eq!(state(ids[2]), "queued");
}

#[test]
fn metrics_health_and_readiness() {
    let app = TestApp::spawn(&standard_config());
    let body = fixture("generic/push.json");
    let sw = standard_webhooks("msg_metrics", now_secs(), &body);
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    assert_eq!(app.post("ci", &headers, &body).status, 202);
    assert_eq!(app.post("ci", &headers, &body).status, 200);
    assert_eq!(
        app.post("gh", &[("Content-Type", "application/json")], &body)
            .status,
        401
    );
    let m = get(app.addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for line in [
        "deployhook_deliveries_total{hook=\"ci\",forge=\"generic\",outcome=\"queued\"} 1",
        "deployhook_deliveries_total{hook=\"ci\",forge=\"generic\",outcome=\"duplicate\"} 1",
        "deployhook_deliveries_total{hook=\"gh\",forge=\"github\",outcome=\"unauthorized\"} 1",
        "deployhook_signature_failures_total{hook=\"gh\"} 1",
        "# TYPE deployhook_job_duration_seconds histogram",
        "# TYPE deployhook_queue_depth gauge",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            m.body
        );
    }
    assert!(m.body.contains("deployhook_build_info{version=\""));
    assert_eq!(get(app.addr, "/healthz").json()["status"], "ok");
    assert_eq!(get(app.addr, "/readyz").json()["status"], "ready");
}

#[test]
fn allow_from_and_trusted_proxies() {
    let hook = generic_hook("a", "/nonexistent", "[[\"true\"]]");
    let app = TestApp::spawn(&base_config("allow_from = [\"10.0.0.0/8\"]", &hook));
    let res = push_to(
        app.addr,
        "a",
        "1111111111111111111111111111111111111111",
        "m1",
    );
    assert_eq!(res.status, 403);
    assert_eq!(
        res.error(),
        "deliveries from 127.0.0.1 are not allowed (server.allow_from)"
    );

    let app = TestApp::spawn(&base_config(
        "allow_from = [\"10.0.0.0/8\"]\ntrusted_proxies = [\"127.0.0.1\"]",
        &hook,
    ));
    let body = serde_json::json!({"repository": "acme/website", "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000", "after": "1111111111111111111111111111111111111111"}).to_string();
    let sw = standard_webhooks("m2", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    headers.push(("X-Forwarded-For", "10.9.8.7"));
    assert_eq!(app.post("a", &headers, body.as_bytes()).status, 202);
    headers.pop();
    headers.push(("X-Forwarded-For", "198.51.100.1"));
    assert_eq!(app.post("a", &headers, body.as_bytes()).status, 403);
    // A proxy that appends a header line of its own (HAProxy style) rather than extending
    // the client's: the client's forged line comes first and must not be believed.
    headers.pop();
    headers.push(("X-Forwarded-For", "10.9.8.7"));
    headers.push(("X-Forwarded-For", "198.51.100.1"));
    let res = app.post("a", &headers, body.as_bytes());
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(
        res.error(),
        "deliveries from 198.51.100.1 are not allowed (server.allow_from)"
    );
}

#[test]
fn sign_prints_what_the_forge_would_send() {
    let app = TestApp::spawn(&standard_config());
    let body = fixture("github/push.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args([
            "sign",
            "--forge",
            "github",
            "--delivery",
            "signed-by-cli",
            "--secret-file",
        ])
        .arg(app.dir().dir.path().join("secret"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &body).unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let headers: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once(": ")).collect();
    assert!(
        headers.contains(&("X-Hub-Signature-256", hub_signature(&body).as_str())),
        "{out}"
    );
    let res = app.post("gh", &headers, &body);
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(res.json()["delivery"], "signed-by-cli");
}

#[test]
fn secret_file_can_name_a_systemd_credential() {
    let text = base_config(
        "",
        "\n[[hook]]\nid = \"a\"\nforge = \"github\"\nsecret_file = \"%d/hook-secret\"\nrepository = \"acme/website\"\nclone_url = \"/srv/x\"\n[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
    );
    let dir = TestDir::new(&text);
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("hook-secret"), "from-systemd\n").unwrap();
    let run = |env: Option<&std::path::Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deployhook"));
        cmd.args(["check", "--config"])
            .arg(dir.config_path())
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(p) = env {
            cmd.env("CREDENTIALS_DIRECTORY", p);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(Some(creds.path())).0, Some(0));
    let (code, stderr) = run(None);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("%d/hook-secret names a systemd credential, but $CREDENTIALS_DIRECTORY is not set: add LoadCredential=hook-secret:<file> to the unit"),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = TestDir::new(&base_config(
        "",
        &generic_hook("a", "/nonexistent", "[[\"true\"]]"),
    ));
    let mut serve = Serve::start(&dir, &["--log-format", "json"], &[]);
    let line = serve.expect_log("listening on");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("listening on 127.0.0.1:")
    );
}

/// A self-signed certificate for 127.0.0.1, made with the openssl command line.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    (cert, key)
}

/// A config with one hook that serves HTTPS with this certificate and key.
fn write_tls_config(dir: &TestDir, cert: &std::path::Path, key: &std::path::Path) {
    let tls = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    std::fs::write(
        dir.config_path(),
        base_config(&tls, &generic_hook("a", "/nonexistent", "[[\"true\"]]")),
    )
    .unwrap();
}

#[test]
fn tls_serves_https_and_a_bad_certificate_fails_check() {
    let dir = TestDir::new("");
    let (cert, key) = self_signed(dir.dir.path());
    write_tls_config(&dir, &cert, &key);
    let serve = Serve::start(&dir, &[], &[]);
    // openssl s_client speaks TLS to it and verifies the chain against our certificate.
    assert_eq!(
        https_healthz(serve.addr, &cert).as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    drop(serve);

    std::fs::write(&key, "not a key\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["check", "--config"])
        .arg(dir.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[server.tls]: cannot read a private key from {}",
            key.display()
        )),
        "{stderr}"
    );
}

/// `GET /healthz` over HTTPS, the server's certificate checked against `ca` only: the
/// answer's status line, or `None` when the handshake (or the verification) failed.
fn https_healthz(addr: std::net::SocketAddr, ca: &std::path::Path) -> Option<String> {
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
        .arg(ca)
        .args(["-connect", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut client.stdin.take().unwrap(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let out = String::from_utf8_lossy(&client.wait_with_output().unwrap().stdout).into_owned();
    out.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .map(str::to_owned)
}

#[test]
fn a_reload_swaps_the_tls_certificate_and_a_broken_one_keeps_the_old() {
    let dir = TestDir::new("");
    let root = dir.dir.path();
    let (old_dir, new_dir) = (root.join("old"), root.join("new"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let (old_cert, old_key) = self_signed(&old_dir);
    let (new_cert, new_key) = self_signed(&new_dir);
    // The config names one pair of files; a renewal (certbot, an ACME client) rewrites them.
    let (cert, key) = (root.join("cert.pem"), root.join("key.pem"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    write_tls_config(&dir, &cert, &key);
    let mut serve = Serve::start(&dir, &[], &[]);
    let ok = Some("HTTP/1.1 200 OK".to_owned());
    assert_eq!(https_healthz(serve.addr, &old_cert), ok);
    assert_eq!(
        https_healthz(serve.addr, &new_cert),
        None,
        "not yet renewed"
    );

    // Renewed on disk: the listener keeps going and new handshakes get the new pair.
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    serve.signal("HUP");
    wait_for("the renewed certificate", Duration::from_secs(30), || {
        (https_healthz(serve.addr, &new_cert) == ok).then_some(())
    });
    assert_eq!(
        https_healthz(serve.addr, &old_cert),
        None,
        "the old one is gone"
    );

    // A renewal that left a broken key behind: refused and said so, the last good
    // certificate keeps serving.
    std::fs::write(&key, "not a key\n").unwrap();
    serve.signal("HUP");
    serve.expect_log("config reload refused; the previous config keeps serving");
    let why = serve.expect_log("cannot read a private key from");
    assert!(why.contains(&key.display().to_string()), "{why}");
    assert_eq!(https_healthz(serve.addr, &new_cert), ok);
}

#[test]
fn reloads_in_a_loop_under_load_drop_no_request() {
    let hook = generic_hook("a", "/nonexistent", "[[\"true\"]]");
    let app = TestApp::spawn(&base_config("", &hook));
    let addr = app.addr;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reloads, statuses) = std::thread::scope(|s| {
        let reloader = s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(post(addr, "/api/reload", &[], b"").status, 200);
                n += 1;
            }
            n
        });
        let senders: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    (0..50)
                        .map(|i| {
                            push_to(
                                addr,
                                "a",
                                &format!("{:040x}", t * 1000 + i + 1),
                                &format!("load-{t}-{i}"),
                            )
                            .status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        let statuses: Vec<u16> = senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (reloader.join().unwrap(), statuses)
    });
    assert!(reloads > 0);
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let jobs = get(app.addr, "/api/jobs?hook=a&limit=1000").json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 200);
}
