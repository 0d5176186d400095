//! Faults: malformed HTTP, hostile JSON behind a valid signature, a daemon killed with
//! SIGKILL while it accepts a stream of pushes, and a full disk under `state_dir`. Each
//! is answered (or the connection closed) without a crash, and the server goes on
//! serving.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::helpers::*;

/// How a server met a request: a status line, or a connection closed without one.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Closed,
}

/// Sends `request` (as far as the server lets it) and reads until the server answers and
/// closes; `None` when it did neither within 15 s.
fn exchange(addr: SocketAddr, request: &[u8], then_shutdown: bool) -> Option<Outcome> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may answer and close before it has read everything: not an error.
    let _ = s.write_all(request);
    if then_shutdown {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => break, // reset: closed
        }
    }
    if buf.is_empty() {
        return Some(Outcome::Closed);
    }
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Some(Outcome::Status(status))
}

/// A generic push with its Standard Webhooks headers, as raw header lines.
fn signed_generic_head(body: &[u8], id: &str) -> String {
    let mut head = String::new();
    for (k, v) in standard_webhooks(id, now_secs(), body) {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("Content-Type: application/json\r\n");
    head
}

fn generic_body(after: &str) -> Vec<u8> {
    serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": BEFORE, "after": after,
    })
    .to_string()
    .into_bytes()
}

/// A request that breaks HTTP/1.1 one way: (what, bytes, close our side after).
type Malformed = (&'static str, Vec<u8>, bool);

/// Request heads that break HTTP/1.1 one way each.
fn malformed_heads() -> Vec<Malformed> {
    let many_headers = (0..200).fold(String::new(), |mut h, i| {
        let _ = write!(h, "X-H{i}: {i}\r\n");
        h
    });
    vec![
        (
            "garbage request line",
            b"\x00\x01\x02GARBAGE\xff\r\n\r\n".to_vec(),
            false,
        ),
        ("no HTTP version", b"POST /hooks/ci\r\n\r\n".to_vec(), false),
        (
            "header without a colon",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nthis is no header\r\n\r\n".to_vec(),
            false,
        ),
        (
            "space in a header name",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n".to_vec(),
            false,
        ),
        (
            "control character in a header value",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n".to_vec(),
            false,
        ),
        (
            "a 40 KB header",
            format!(
                "POST /hooks/ci HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "a".repeat(40 * 1024)
            )
            .into_bytes(),
            false,
        ),
        (
            // Past actix's limit on a request head (128 KiB).
            "a 200 KB header",
            format!(
                "POST /hooks/ci HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(200 * 1024)
            )
            .into_bytes(),
            false,
        ),
        (
            "a 40 KB request target",
            format!(
                "POST /hooks/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "c".repeat(40 * 1024)
            )
            .into_bytes(),
            false,
        ),
        (
            "200 headers",
            format!("POST /hooks/ci HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            false,
        ),
        ("only the end of a head", b"\r\n\r\n".to_vec(), false),
        ("half a request line, then EOF", b"POST /hoo".to_vec(), true),
    ]
}

/// Requests whose body framing is broken. Some carry a valid signature, so that the
/// handler is reached where the request lets it.
fn malformed_bodies(body: &[u8]) -> Vec<Malformed> {
    let signed = signed_generic_head(body, "msg_malformed");
    vec![
        (
            "Content-Length is not a number",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n0123456789"
                .to_vec(),
            false,
        ),
        (
            "two different Content-Lengths",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"
                .to_vec(),
            false,
        ),
        (
            "Content-Length and chunked both",
            b"POST /hooks/ci HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        (
            "bad chunk size, signed headers",
            format!(
                "POST /hooks/ci HTTP/1.1\r\nHost: x\r\n{signed}Transfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n"
            )
            .into_bytes(),
            false,
        ),
        (
            "chunk longer than it says, signed headers",
            format!(
                "POST /hooks/ci HTTP/1.1\r\nHost: x\r\n{signed}Transfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n"
            )
            .into_bytes(),
            false,
        ),
        (
            "body cut short, signed headers",
            format!(
                "POST /hooks/ci HTTP/1.1\r\nHost: x\r\n{signed}Content-Length: {}\r\n\r\n{}",
                body.len(),
                String::from_utf8_lossy(&body[..body.len() / 2])
            )
            .into_bytes(),
            true,
        ),
    ]
}

#[test]
fn malformed_http_gets_a_4xx_or_a_closed_connection_and_the_server_serves_on() {
    let app = TestApp::spawn(&standard_config());
    let addr = app.addr;
    let body = generic_body(AFTER);
    let cases = [malformed_heads(), malformed_bodies(&body)].concat();
    let mut statuses = Vec::new();
    for (what, request, shutdown) in &cases {
        let started = std::time::Instant::now();
        let outcome = exchange(addr, request, *shutdown)
            .unwrap_or_else(|| panic!("{what}: neither answered nor closed in 15 s"));
        eprintln!("{what}: {outcome:?} after {:?}", started.elapsed());
        if let Outcome::Status(code) = outcome {
            assert!((400..500).contains(&code), "{what}: answered {code}");
            statuses.push(code);
        }
    }
    // Not everything may be met by a silent close: most get a status saying why.
    assert!(
        statuses.len() >= cases.len() / 2,
        "only {} of {} malformed requests were answered: {statuses:?}",
        statuses.len(),
        cases.len()
    );

    let sw = standard_webhooks("msg_after_malformed", now_secs(), &body);
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let res = app.post("ci", &headers, &body);
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(app.jobs().len(), 1, "no malformed request became a job");
}

/// The headers that make `body` a correctly signed delivery of `event` to hook `hook`
/// of the standard config.
fn signed_headers(hook: &str, event: &str, body: &[u8]) -> Vec<(String, String)> {
    let json = ("Content-Type".to_owned(), "application/json".to_owned());
    let mut h = match hook {
        "gh" => vec![
            ("X-GitHub-Event".into(), event.into()),
            ("X-Hub-Signature-256".into(), hub_signature(body)),
        ],
        "gl" => vec![
            ("X-Gitlab-Event".into(), event.into()),
            ("X-Gitlab-Token".into(), GITLAB_TOKEN.into()),
        ],
        "gitea" => vec![
            ("X-Gitea-Event".into(), event.into()),
            ("X-Gitea-Signature".into(), bare_signature(body)),
        ],
        "bb" => vec![
            ("X-Event-Key".into(), event.into()),
            ("X-Hub-Signature".into(), hub_signature(body)),
        ],
        "ci" => standard_webhooks(&format!("msg_{}", body.len()), now_secs(), body).to_vec(),
        _ => unreachable!(),
    };
    h.push(json);
    h
}

/// `haystack` with every `from` replaced by `to`, byte-wise.
fn replace_bytes(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Each forge's push, as its payload parser reads it: (hook, event, fixture, the name of
/// the repository, which every parser reads and the test breaks).
const PUSHES: [(&str, &str, &str, &str); 6] = [
    ("gh", "push", "github/push.json", "acme/website"),
    ("gl", "Push Hook", "gitlab/push.json", "acme/website"),
    ("gitea", "push", "gitea/push.json", "acme/website"),
    (
        "bb",
        "repo:push",
        "bitbucket/repo-push.json",
        "acme/website",
    ),
    (
        "bb",
        "repo:refs_changed",
        "bitbucket-server/refs-changed.json",
        "\"slug\": \"website\"",
    ),
    ("ci", "push", "generic/push.json", "acme/website"),
];

/// Events whose body is only checked to be JSON: (hook, event).
const OTHERS: [(&str, &str); 6] = [
    ("gh", "ping"),
    ("gh", "issues"),
    ("gl", "System Hook"),
    ("gl", "Note Hook"),
    ("gitea", "issues"),
    ("bb", "diagnostics:ping"),
];

/// What to send, where, and the answers that are right: (what, hook, event, body, statuses).
type Case<'a> = (String, &'a str, &'a str, Vec<u8>, &'a [u16]);

#[test]
fn hostile_json_behind_a_valid_signature_is_answered_without_a_crash() {
    let app = TestApp::spawn(&standard_config().replace("64KiB", "2MiB"));
    // Far past serde_json's recursion limit (128), and deep enough to overflow a
    // thread's stack if anything parsed it recursively without one.
    let depth = 20_000;
    let nested_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_object = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let mut cases: Vec<Case> = Vec::new();
    for (what, body) in [
        ("nested arrays", nested_array.as_bytes()),
        ("nested objects", nested_object.as_bytes()),
    ] {
        for (hook, event, ..) in PUSHES {
            cases.push((what.to_owned(), hook, event, body.to_vec(), &[400]));
        }
        // Deep but valid JSON that is only checked: acknowledged (200) or refused (400,
        // where the parser does look inside), never a crash.
        for (hook, event) in OTHERS {
            cases.push((what.to_owned(), hook, event, body.to_vec(), &[200, 400]));
        }
    }
    for (hook, event) in PUSHES.iter().map(|p| (p.0, p.1)).chain(OTHERS) {
        let garbage = b"\xff\xfe\x00{\x80}".to_vec();
        cases.push(("not UTF-8 at all".into(), hook, event, garbage, &[400]));
    }
    for (hook, event, fixture_name, name) in PUSHES {
        let json = fixture(fixture_name);
        // The bad bytes go inside the string, before its last two characters.
        let broken_name = |bad: &[u8]| {
            let (head, tail) = name.as_bytes().split_at(name.len() - 2);
            replace_bytes(&json, name.as_bytes(), &[head, bad, tail].concat())
        };
        for (what, body) in [
            ("invalid UTF-8 in the repository", broken_name(b"\xff")),
            (
                "a lone surrogate in the repository",
                broken_name(b"\\ud800"),
            ),
        ] {
            cases.push((
                format!("{what} of {fixture_name}"),
                hook,
                event,
                body,
                &[400],
            ));
        }
        // A 20000-deep array in a field the parser skips is still a valid push (the
        // generic format allows no unknown field).
        let open = json.iter().position(|&b| b == b'{').unwrap();
        let deep = format!("{{\"deep\": {nested_array}, ");
        let body = [&json[..open], deep.as_bytes(), &json[open + 1..]].concat();
        let right: &[u16] = if hook == "ci" { &[400] } else { &[202] };
        cases.push((
            format!("nesting in a field of {fixture_name}"),
            hook,
            event,
            body,
            right,
        ));
    }
    let mut queued = 0;
    for (what, hook, event, body, right) in &cases {
        let headers = signed_headers(hook, event, body);
        let res = app.post(hook, &refs(&headers), body);
        assert!(
            right.contains(&res.status),
            "{what} to {hook} ({event}): {} {}",
            res.status,
            res.body
        );
        match res.status {
            202 => queued += 1,
            400 => assert!(!res.error().is_empty()),
            _ => {}
        }
    }
    let body = generic_body(AFTER);
    let headers = signed_headers("ci", "push", &body);
    assert_eq!(app.post("ci", &refs(&headers), &body).status, 202);
    assert_eq!(app.jobs().len(), queued + 1);
}

// --- SIGKILL in the middle of a stream of pushes ------------------------------------

/// Posts a delivery; the status line's code if the server got that far, `None` if the
/// connection failed or closed before a status line.
fn try_post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<u16> {
    let bytes = post_request(addr, path, headers, body);
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(&bytes).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn sigkill_while_accepting_pushes_loses_no_push_that_was_answered_202() {
    const SENDERS: usize = 4;
    const MAX_PER_SENDER: usize = 200; // at most 800 pushes: one page of the jobs API
    const KILL_AFTER: usize = 60;
    let repo = crate::gitrepo::Repo::new();
    repo.commit(&[("version.txt", "1")], &[]);
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
state_dir = "state"
{command_user}
keep_jobs = 100000

[[hook]]
id = "site"
forge = "generic"
secret_file = "whsec"
repository = "acme/website"
clone_url = "{}"

[[hook.rule]]
branches = ["main"]
commands = ["true"]
"#,
        repo.url(),
        command_user = own_command_user(),
    );
    let dir = TestDir::new(&config);
    let (mut daemon, addr) = start_daemon(&dir.config_path());

    let accepted = Mutex::new(Vec::<String>::new());
    let unanswered = AtomicUsize::new(0);
    let dead = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..SENDERS {
            let (accepted, unanswered, dead) = (&accepted, &unanswered, &dead);
            s.spawn(move || {
                for i in 0..MAX_PER_SENDER {
                    // A distinct commit and body per push.
                    let body = generic_body(&format!("{:020x}{:020x}", t + 1, i + 1));
                    let id = format!("msg_kill_{t}_{i}");
                    let sw = standard_webhooks(&id, now_secs(), &body);
                    let mut headers = refs(&sw);
                    headers.push(("Content-Type", "application/json"));
                    match try_post(addr, "/hooks/site", &headers, &body) {
                        Some(202) => accepted.lock().unwrap().push(id),
                        Some(other) => panic!("{id}: answered {other} before the kill"),
                        None => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                            if dead.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                    }
                }
            });
        }
        wait_for(
            "pushes to be accepted before the kill",
            Duration::from_secs(120),
            || (accepted.lock().unwrap().len() >= KILL_AFTER).then_some(()),
        );
        daemon.0.kill().unwrap(); // SIGKILL
        daemon.0.wait().unwrap();
        dead.store(true, Ordering::Relaxed);
    });
    let accepted = accepted.into_inner().unwrap();
    let total = SENDERS * MAX_PER_SENDER;
    assert!(
        accepted.len() < total && unanswered.load(Ordering::Relaxed) > 0,
        "the kill did not land in the middle of the stream ({} of {total} accepted)",
        accepted.len()
    );

    eprintln!(
        "killed after {} pushes answered 202; {} sends got no answer",
        accepted.len(),
        unanswered.load(Ordering::Relaxed)
    );
    let (_daemon, addr) = start_daemon(&dir.config_path());
    let jobs = get(addr, "/api/jobs?hook=site&limit=1000").json();
    let recorded: std::collections::HashSet<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["delivery"].as_str())
        .collect();
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} pushes answered 202 are not jobs after the restart: {lost:?}",
        lost.len(),
        accepted.len()
    );
}

// --- A full disk under state_dir -------------------------------------------------------

/// A small file system mounted on a temp dir, unmounted when dropped.
struct SmallFs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    /// A 2 MiB tmpfs, or else a loop-mounted 4 MiB ext4 image; `None` when this
    /// sandbox allows neither (no CAP_SYS_ADMIN).
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let mount = dir.path().join("state");
        std::fs::create_dir(&mount).ok()?;
        let run = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let tmpfs = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&mount));
        let mounted = tmpfs || {
            let image = dir.path().join("fs.img");
            std::fs::File::create(&image)
                .and_then(|f| f.set_len(4 << 20))
                .is_ok()
                && run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
                && run(Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&image)
                    .arg(&mount))
        };
        mounted.then(|| SmallFs { mount, _dir: dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status();
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    for size in [64 * 1024, 4096, 512, 1] {
        let block = vec![0xa5u8; size];
        while f.write_all(&block).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

#[test]
fn a_full_state_dir_answers_503_without_crashing_and_recovers() {
    let Some(fs) = SmallFs::mount() else {
        // Without a small file system to fill, check what does not need one: the
        // store refuses to start on a state_dir it cannot create, with a clear error.
        eprintln!("no tmpfs or loop mount allowed here: full-disk test reduced");
        let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
            .args(["serve", "--config"])
            .arg(
                TestDir::new(&standard_config().replace("\"state\"", "\"/proc/nope\""))
                    .config_path(),
            )
            .output()
            .unwrap();
        assert!(!out.status.success());
        return;
    };
    let config = standard_config()
        .replace(
            "state_dir = \"state\"",
            &format!("state_dir = \"{}\"", fs.mount.display()),
        )
        // Jobs fail at once (no such repository) instead of filling the disk with a clone.
        .replace(
            "https://git.example.invalid/acme/website.git",
            "/nonexistent/website",
        );
    let app = TestApp::spawn(&config);
    let mut n = 0;
    let mut push = || {
        n += 1;
        push_generic(&app, "ci", "refs/heads/main", BEFORE, &format!("{n:040x}"))
    };
    assert_eq!(push().status, 202, "before the disk is full");

    let filler = fill(&fs.mount);
    // SQLite may still have room in pages it already owns: push until it has none.
    let mut full_accepted = 0;
    let refused = (0..50).find_map(|_| {
        let res = push();
        match res.status {
            202 => {
                full_accepted += 1;
                None
            }
            503 => Some(res),
            other => panic!("a full disk was answered {other}: {}", res.body),
        }
    });
    let refused = refused.expect("50 pushes onto a full disk were all accepted");
    eprintln!(
        "disk full: {full_accepted} more pushes accepted, then {}",
        refused.body
    );
    assert!(refused.error().contains("retry later"), "{}", refused.body);
    assert_eq!(refused.header("Retry-After"), Some("30"));
    // Still alive and still refusing cleanly.
    assert_eq!(push().status, 503);

    std::fs::remove_file(&filler).unwrap();
    let recovered = wait_for(
        "pushes to be accepted again once there is space",
        Duration::from_secs(30),
        || {
            let res = push();
            (res.status == 202).then_some(res)
        },
    );
    assert_eq!(recovered.json()["status"], "queued");
    // Every push answered 202, before, during and after, is a job.
    let jobs = get(app.addr, "/api/jobs?hook=ci&limit=1000").json();
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        2 + full_accepted,
        "{jobs}"
    );
    drop(app);
    drop(fs);
}

/// `max_queued`: a delivery that finds the hook's queue full is answered 429 with
/// `Retry-After` and queues nothing; its refusal is in the delivery records; once the
/// queue drains, the same delivery (its replay key was not kept) is accepted.
#[test]
fn a_full_queue_answers_429_and_loses_nothing() {
    let repo = crate::gitrepo::Repo::new();
    let [v1, v2, v3] = [1, 2, 3].map(|n| repo.commit(&[("v", &n.to_string())], &[]));
    let out = tempfile::tempdir().unwrap();
    let gate = out.path().join("gate");
    let rules = format!(
        "max_queued = 1\n\n[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"fifo\"\ncommands = [\"while [ ! -e {} ]; do sleep 0.05; done\"]\n",
        gate.display()
    );
    let app = crate::jobs::spawn_site(out.path(), &repo, &rules);
    let first = job_id(&push_generic(
        &app,
        "site",
        "refs/heads/main",
        crate::jobs::ZERO,
        &v1,
    ));
    wait_for("the first job to run", Duration::from_secs(30), || {
        (get(app.addr, &format!("/api/jobs/{first}")).json()["state"] == "running").then_some(())
    });
    job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v2));
    // One waits: the next is refused, and says why.
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": v2, "after": v3,
    })
    .to_string();
    let sw = standard_webhooks("msg_full", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let refused = app.post("site", &headers, body.as_bytes());
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("30"));
    assert!(refused.error().contains("max_queued"), "{}", refused.body);
    let records = get(app.addr, "/api/deliveries?hook=site&limit=1").json();
    assert_eq!(records["deliveries"][0]["outcome"], "queue_full");
    assert_eq!(app.jobs().len(), 2);
    // Drained, the forge's retry of that very delivery goes through.
    std::fs::write(&gate, "").unwrap();
    wait_for("the queue to drain", Duration::from_secs(60), || {
        let queued = get(app.addr, "/api/jobs?hook=site&state=queued").json();
        queued["jobs"].as_array().unwrap().is_empty().then_some(())
    });
    let sw = standard_webhooks("msg_full", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let again = app.post("site", &headers, body.as_bytes());
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(app.jobs().len(), 3);
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` at `dir` (made if missing). Tests run as root in CI; a mount that
    /// fails fails the test.
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A job that fills the disk under `state_dir`: its end cannot be recorded, `/readyz`
/// says so, and once space is freed the end is recorded and the hook's next job runs,
/// without a restart.
#[test]
fn a_full_disk_does_not_wedge_the_hook() {
    let repo = crate::gitrepo::Repo::new();
    let v1 = repo.commit(&[("v", "1")], &[]);
    let v2 = repo.commit(&[("v", "2")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = "[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"fifo\"\ncommands = [\"if [ \\\"$(cat v)\\\" = 1 ]; then head -c 8M /dev/zero > fill 2>/dev/null; fi; true\"]\n";
    let dir = TestDir::new(&crate::jobs::config(
        out.path(),
        &crate::jobs::hook("site", &repo, rules),
    ));
    let state = dir.config_path().with_file_name("state");
    let _disk = Tmpfs::mount(&state, "4m");
    let app = TestApp::spawn_in(dir);
    assert_eq!(get(app.addr, "/readyz").status, 200);
    let first = job_id(&push_generic(
        &app,
        "site",
        "refs/heads/main",
        crate::jobs::ZERO,
        &v1,
    ));
    let fill = state.join("work/site/0/fill");
    wait_for(
        "the disk to fill and /readyz to say so",
        Duration::from_secs(60),
        || (fill.exists() && get(app.addr, "/readyz").status == 503).then_some(()),
    );
    assert_eq!(
        get(app.addr, &format!("/api/jobs/{first}")).json()["state"],
        "running"
    );
    std::fs::remove_file(&fill).unwrap();
    let job = wait_job(&app, first);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(get(app.addr, "/readyz").status, 200);
    let second = job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v2));
    assert_eq!(wait_job(&app, second)["state"], "succeeded");
}
