//! Test support: a config in a temp dir, a running server, a raw HTTP client, and
//! signing with the openssl command line.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use std::sync::Arc;

use deployhook::config::{self, LiveConfig};
use deployhook::joblog::JobLogs;
use deployhook::metrics::Metrics;
use deployhook::reload::Reloader;
use deployhook::server::{AppState, Application};
use deployhook::store::{JobId, Store};
use deployhook::worker::{Parts, Worker};

pub const BEFORE: &str = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
pub const AFTER: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

/// The secret every test hook uses, and the Standard Webhooks key.
pub const SECRET: &str = "It's a Secret to Everybody";
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const GITLAB_TOKEN: &str = "gl-token-0123456789";

pub fn fixture(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `command_user = "<the user running the tests>"`: commands run as the daemon's own
/// user, as they did before commands got a user of their own, so that what a test's
/// commands can write (its temp dirs) does not depend on which users this machine has.
/// The tests of the separate user set their own.
pub fn own_command_user() -> String {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the user running the tests has a name");
    format!("command_user = {:?}", me.name)
}

/// A hook per forge, all for acme/website, with a branch rule, a tag rule and a rule
/// with a paths filter.
pub fn standard_config() -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nmax_body = \"64KiB\"\n{}\n",
        own_command_user()
    );
    for (id, forge, secret) in [
        ("gh", "github", "secret_file = \"secret\""),
        (
            "gh-sha1",
            "github",
            "secret_file = \"secret\"\nlegacy_sha1 = true",
        ),
        ("gl", "gitlab", "secret_file = \"gitlab-token\""),
        ("gl-signed", "gitlab", "secret_file = \"whsec\""),
        ("gitea", "gitea", "secret_file = \"secret\""),
        ("forgejo", "forgejo", "secret_file = \"secret\""),
        ("gogs", "gogs", "secret_file = \"secret\""),
        ("bb", "bitbucket", "secret_file = \"secret\""),
        ("ci", "generic", "secret_file = \"whsec\""),
    ] {
        let _ = write!(
            text,
            r#"
[[hook]]
id = "{id}"
forge = "{forge}"
{secret}
repository = "acme/website"
clone_url = "https://git.example.invalid/acme/website.git"

[[hook.rule]]
branches = ["main", "release/*"]
commands = [["make", "deploy"]]

[[hook.rule]]
tags = ["v*"]
commands = [["make", "release"]]

[[hook.rule]]
branches = ["docs"]
paths = ["docs/**"]
commands = [["make", "docs"]]
"#
        );
    }
    text
}

/// A config file and its secrets in a fresh temp dir.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new(config_text: &str) -> TestDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        };
        write("secret", &format!("{SECRET}\n"));
        write("gitlab-token", GITLAB_TOKEN);
        write("whsec", WHSEC);
        write("hooks.toml", config_text);
        TestDir { dir }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hooks.toml")
    }

    /// The state a job was recorded in, read through the store once the daemon that
    /// used this directory has exited (the store is then free to open).
    pub fn recorded_state(&self, id: i64) -> String {
        let state_dir = self.dir.path().join("state");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::open(&state_dir).unwrap();
            let job = store.get(JobId(id)).await.unwrap();
            job.unwrap_or_else(|| panic!("no job {id}"))
                .state
                .to_string()
        })
    }
}

/// A server running in its own thread on 127.0.0.1:0; stopped when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    dir: Option<TestDir>,
    handle: actix_web::dev::ServerHandle,
    stop_jobs: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestApp {
    pub fn spawn(config_text: &str) -> TestApp {
        Self::spawn_in(TestDir::new(config_text))
    }

    pub fn spawn_in(dir: TestDir) -> TestApp {
        let loaded = config::load(&dir.config_path()).unwrap_or_else(|e| panic!("{e}"));
        let cfg = LiveConfig::new(loaded.config);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let store = Store::open(&cfg.get().server.state_dir).unwrap();
                let api_token =
                    deployhook::api_token::load_or_create(&cfg.get().server.state_dir).unwrap();
                let token_text = String::from_utf8(api_token.expose().to_vec()).unwrap();
                // As `serve` does: the launcher binary cargo built beside the daemon's.
                let launcher = deployhook::runner::launcher::locate(Path::new(env!(
                    "CARGO_BIN_EXE_deployhook"
                )));
                let metrics = Arc::new(Metrics::default());
                let logs = JobLogs::open(&cfg.get().server.state_dir).unwrap();
                let git = deployhook::worker::git_cache(&cfg.get());
                let worker = Worker::new(
                    cfg.clone(),
                    store.clone(),
                    logs.clone(),
                    metrics.clone(),
                    Parts::standard(git.clone(), launcher),
                );
                let notifier =
                    deployhook::notify::Notifier::new(store.clone(), cfg.clone(), metrics.clone());
                let state = AppState {
                    config: cfg.clone(),
                    store,
                    logs,
                    worker: worker.handle(),
                    git,
                    reloader: Reloader::new(cfg, metrics.clone(), None),
                    metrics,
                    api_token,
                    status_key: tokio::sync::OnceCell::new(),
                    ui: deployhook::server::UiState::default(),
                };
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                register_token(listener.local_addr().unwrap(), token_text);
                let app = Application::new(state, listener, None).unwrap();
                let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
                tx.send((app.local_addr(), app.handle(), stop_jobs))
                    .unwrap();
                let worker = actix_web::rt::spawn(worker.run(jobs_stopped.clone()));
                let notifier = actix_web::rt::spawn(notifier.run(jobs_stopped));
                app.run().await.unwrap();
                let _ = worker.await;
                let _ = notifier.await;
            });
        });
        let (addr, handle, stop_jobs) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        TestApp {
            addr,
            dir: Some(dir),
            handle,
            stop_jobs,
            thread: Some(thread),
        }
    }

    /// Stops the server and hands back its directory (state and all), for a restart.
    pub fn stop(mut self) -> TestDir {
        self.shutdown();
        self.dir.take().expect("dir is only taken here")
    }

    pub fn dir(&self) -> &TestDir {
        self.dir.as_ref().expect("dir is only taken by stop")
    }

    fn shutdown(&mut self) {
        // Not graceful: a test is over, nothing in flight matters.
        let _ = self.stop_jobs.send(true);
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn post(&self, hook: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        post(self.addr, &format!("/hooks/{hook}"), headers, body)
    }

    /// The jobs recorded, oldest first, as (hook, rule, ref, sha), read through the API.
    pub fn jobs(&self) -> Vec<(String, i64, String, String)> {
        let res = get(self.addr, "/api/jobs?limit=1000");
        assert_eq!(res.status, 200, "{}", res.body);
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        let mut jobs: Vec<_> = res.json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    text(&j["hook"]),
                    j["rule"].as_i64().unwrap(),
                    text(&j["ref"]),
                    text(&j["sha"]),
                )
            })
            .collect();
        jobs.reverse();
        jobs
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` message of an error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.body))
            .to_owned()
    }
}

pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    // As the CLI would: API requests carry the daemon's token.
    let auth = path
        .starts_with("/api/")
        .then(|| token_of(addr))
        .flatten()
        .map(|t| format!("Bearer {t}"));
    let mut headers = headers.to_vec();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    raw(addr, &post_request(addr, path, &headers, body))
}

/// The API token of each daemon the tests started, by address.
static TOKENS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<SocketAddr, String>>,
> = std::sync::LazyLock::new(Default::default);

/// Remembers the API token of the daemon at `addr`, for [`get`] and [`post`].
pub fn register_token(addr: SocketAddr, token: String) {
    TOKENS.lock().unwrap().insert(addr, token);
}

/// The API token of the daemon at `addr`, if a test started it.
pub fn token_of(addr: SocketAddr) -> Option<String> {
    TOKENS.lock().unwrap().get(&addr).cloned()
}

/// The bytes of a `POST` with these headers and body, `Connection: close`.
pub fn post_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends raw bytes, reads the answer until the server closes the connection.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    read_response(&mut s)
}

pub fn read_response(s: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Response {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// HMAC-SHA256 of `data` under `key`, computed by `openssl dgst`.
pub fn openssl_hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let hexkey = hex(key);
    let mut child = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-mac",
            "HMAC",
            "-macopt",
            &format!("hexkey:{hexkey}"),
            "-binary",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl must be installed (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32);
    out.stdout
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `X-Hub-Signature-256` as GitHub (and, as `X-Hub-Signature`, Bitbucket) sends it.
pub fn hub_signature(body: &[u8]) -> String {
    format!("sha256={}", hex(&openssl_hmac(SECRET.as_bytes(), body)))
}

/// The bare hex signature Gitea, Forgejo and Gogs send.
pub fn bare_signature(body: &[u8]) -> String {
    hex(&openssl_hmac(SECRET.as_bytes(), body))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard Webhooks headers for `body`: (id, timestamp, signature).
pub fn standard_webhooks(id: &str, timestamp: u64, body: &[u8]) -> [(String, String); 3] {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    [
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            format!("v1,{}", b64(&openssl_hmac(&key, &signed))),
        ),
    ]
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Headers as `&str` pairs, for `post`.
pub fn refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// GET a path with the daemon's API token, as the CLI would.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let auth = token_of(addr)
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// Sends a generic (Standard Webhooks) push for `git_ref` from `before` to `after`.
pub fn push_generic(
    app: &TestApp,
    hook: &str,
    git_ref: &str,
    before: &str,
    after: &str,
) -> Response {
    push_generic_at(app.addr, hook, git_ref, before, after)
}

/// [`push_generic`] to a daemon at `addr` (one started with [`start_daemon`]).
pub fn push_generic_at(
    addr: SocketAddr,
    hook: &str,
    git_ref: &str,
    before: &str,
    after: &str,
) -> Response {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": git_ref, "before": before, "after": after,
    })
    .to_string();
    let id = format!("msg_{hook}_{after}_{}", now_nanos());
    let sw = standard_webhooks(&id, now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    post(addr, &format!("/hooks/{hook}"), &headers, body.as_bytes())
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The id of the one job a 202 queued.
pub fn job_id(res: &Response) -> i64 {
    assert_eq!(res.status, 202, "{}", res.body);
    res.json()["jobs"][0]["id"].as_i64().unwrap()
}

/// Polls the API until job `id` reaches a final state, and returns the job.
pub fn wait_job(app: &TestApp, id: i64) -> serde_json::Value {
    wait_job_at(app.addr, id)
}

/// [`wait_job`] on a daemon at `addr`.
pub fn wait_job_at(addr: SocketAddr, id: i64) -> serde_json::Value {
    wait_for(&format!("job {id} to end"), Duration::from_secs(60), || {
        let job = get(addr, &format!("/api/jobs/{id}")).json();
        let state = job["state"].as_str().unwrap_or("").to_owned();
        (state != "queued" && state != "running").then_some(job)
    })
}

/// A child process that is killed when the test ends, even by a panic.
pub struct Daemon(
    pub std::process::Child,
    /// Its stderr lines so far, when started by [`start_command`].
    pub std::sync::Arc<std::sync::Mutex<Vec<String>>>,
);

impl Daemon {
    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        self.1.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `deployhook serve` on `config`; its address from the `listening on` log line. Killed
/// when the returned guard is dropped.
pub fn start_daemon(config: &Path) -> (Daemon, SocketAddr) {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_deployhook"));
    serve.args(["serve", "--config"]).arg(config);
    start_command(serve)
}

/// Like [`start_daemon`], for a command line that ends up exec-ing `deployhook serve`
/// (under `sh -c 'umask ...; exec ...'`, or `setpriv` as another user).
pub fn start_command(mut command: Command) -> (Daemon, SocketAddr) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (token_tx, token_rx) = std::sync::mpsc::channel::<String>();
    let keep = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            keep.lock().unwrap().push(line.clone());
            if let Some(at) = line.find("token_file=") {
                let path = line[at + 11..].split_whitespace().next().unwrap_or("");
                if let Ok(t) = std::fs::read_to_string(path) {
                    let _ = token_tx.send(t.trim().to_owned());
                }
            }
            if let Some(at) = line.find("listening on ") {
                let addr = line[at + 13..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let child = Daemon(child, lines);
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon logs `listening on <addr>`")
        .parse()
        .unwrap();
    // Logged before `listening on`, when the config names no token file.
    if let Ok(t) = token_rx.try_recv() {
        register_token(addr, t);
    }
    (child, addr)
}
