//! `deployhook trigger` against a real daemon over HTTP: deploys and waits, fails with
//! the job's reason, says when nothing matched, retries a 503 without a second deploy, and
//! never shows the secret; and the status link it waits on, which shows a delivery's jobs
//! and nothing else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook, spawn_site};

/// Runs `deployhook trigger` for `sha` on `git_ref`; returns exit code, stdout, stderr.
fn trigger(
    url: &str,
    secret_file: &Path,
    git_ref: &str,
    sha: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["trigger", "--url", url, "--hook", "site", "--secret-file"])
        .arg(secret_file)
        .args([
            "--repository",
            "acme/website",
            "--ref",
            git_ref,
            "--sha",
            sha,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RULES: &str = r#"
[[hook.rule]]
branches = ["main"]
queue = "fifo"
commands = ["""
echo LOG-LINE-ONLY-IN-THE-LOG
if [ "$(cat v)" = bad ]; then exit 3; fi
"""]
"#;

#[test]
fn trigger_deploys_waits_and_exits_by_how_the_jobs_ended() {
    let repo = Repo::new();
    let good = repo.commit(&[("v", "good")], &[]);
    let bad = repo.commit(&[("v", "bad")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(out.path(), &repo, RULES);
    let url = format!("http://{}", app.addr);
    let secret = app.dir().config_path().with_file_name("whsec");

    let (code, stdout, stderr) = trigger(
        &url,
        &secret,
        "refs/heads/main",
        &good,
        &["--wait", "--verbose"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("queued job 1 for refs/heads/main"),
        "{stdout}"
    );
    assert!(
        stdout.contains("job 1 succeeded: all commands succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("status: {url}/status/site/")),
        "{stdout}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(WHSEC), "the secret was printed: {text}");
        assert!(!text.contains("webhook-signature"), "{text}");
    }

    let (code, stdout, stderr) = trigger(&url, &secret, "refs/heads/main", &bad, &["--wait"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("job 2 failed: command 1 failed: exit code 3"),
        "{stdout}"
    );

    let (code, stdout, _) = trigger(&url, &secret, "refs/heads/dev", &good, &["--wait"]);
    assert_eq!(code, 6, "{stdout}");
    assert!(stdout.starts_with("nothing to deploy: "), "{stdout}");

    // A wrong secret is the daemon's 401, reported, not retried.
    let wrong = out.path().join("wrong");
    std::fs::write(&wrong, "whsec_d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldA==").unwrap();
    let (code, _, stderr) = trigger(&url, &wrong, "refs/heads/main", &good, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("the daemon answered 401"), "{stderr}");
    assert_eq!(app.jobs().len(), 2, "two deploys in all");
}

/// A front that answers the first request with `answer` (after passing it on to the
/// daemon, with `forward`: the daemon's own answer lost on the way back), and passes
/// everything after it through untouched.
fn front(
    daemon: SocketAddr,
    forward: bool,
    answer: &'static [u8],
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                let request = read_request(&mut client);
                if forward {
                    // Pass it on, closing after the answer, and drop the answer.
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let closing = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
                    let answer = raw(daemon, closing.as_bytes());
                    assert_eq!(answer.status, 202, "{}", answer.body);
                }
                let _ = client.write_all(answer);
                continue;
            }
            let Ok(upstream) = TcpStream::connect(daemon) else {
                return;
            };
            let (mut a, mut b) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            let (mut c, mut u) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

/// One whole request (headers and a Content-Length body).
fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let n = s.read(&mut byte).unwrap();
        assert!(n > 0, "the request ended early");
        buf.extend_from_slice(&byte[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + length {
            return buf;
        }
    }
}

/// What `trigger --wait` did through a [`front`] that answers its first request so.
struct Retried {
    code: i32,
    stdout: String,
    stderr: String,
    /// Requests the front saw.
    seen: usize,
    /// Jobs the daemon recorded.
    jobs: usize,
    took: std::time::Duration,
}

fn through_front(forward: bool, answer: &'static [u8]) -> Retried {
    let repo = Repo::new();
    let good = repo.commit(&[("v", "good")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(out.path(), &repo, RULES);
    let (front, seen) = front(app.addr, forward, answer);
    let secret = app.dir().config_path().with_file_name("whsec");
    let began = std::time::Instant::now();
    let (code, stdout, stderr) = trigger(
        &format!("http://{front}"),
        &secret,
        "refs/heads/main",
        &good,
        &["--wait"],
    );
    Retried {
        code,
        stdout,
        stderr,
        seen: seen.load(Ordering::SeqCst),
        jobs: app.jobs().len(),
        took: began.elapsed(),
    }
}

#[test]
fn a_retry_after_a_lost_answer_deploys_once() {
    let r = through_front(
        true,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the daemon answered 503"), "{}", r.stderr);
    assert!(
        r.stdout
            .contains("this delivery was already accepted (job 1)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("job 1 succeeded"), "{}", r.stdout);
    assert!(r.seen >= 2, "it was sent again");
    assert_eq!(r.jobs, 1, "one deploy");
}

/// A 429 (the hook's queue is full) is waited out as its `Retry-After` says, then sent
/// again.
#[test]
fn a_429_is_retried_after_its_retry_after() {
    let r = through_front(
        false,
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the daemon answered 429"), "{}", r.stderr);
    assert!(r.stderr.contains("trying again in 2s"), "{}", r.stderr);
    assert!(r.took >= std::time::Duration::from_secs(2));
    assert!(r.stdout.contains("job 1 succeeded"), "{}", r.stdout);
    assert!(r.seen >= 2);
    assert_eq!(r.jobs, 1);
}

/// The path of the status link a push's 202 gave, without the daemon's address.
fn status_path(app: &TestApp, res: &Response) -> String {
    let link = res.json()["status_url"].as_str().unwrap().to_owned();
    link.strip_prefix(&format!("http://{}", app.addr))
        .unwrap()
        .to_owned()
}

#[test]
fn the_status_link_shows_its_deliverys_jobs_only_and_a_tampered_one_is_unknown() {
    let repo = Repo::new();
    let good = repo.commit(&[("v", "good")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(out.path(), &repo, RULES);
    let other = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &good));
    let res = push_generic(&app, "site", "refs/heads/main", &good, &good);
    let mine = job_id(&res);
    let path = status_path(&app, &res);
    wait_job(&app, mine);
    let status = get(app.addr, &path);
    assert_eq!(status.status, 200, "{}", status.body);
    let v = status.json();
    assert_eq!(v["done"], true);
    let ids: Vec<i64> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [mine], "not job {other}");
    assert_eq!(v["jobs"][0]["state"], "succeeded");
    assert_eq!(v["jobs"][0]["reason"], "all commands succeeded");
    assert!(!status.body.contains("LOG-LINE"), "{}", status.body);
    assert!(
        !status.body.contains("echo"),
        "no configuration: {}",
        status.body
    );
    // Live, as Server-Sent Events: one snapshot (it is done), then the end.
    let sse = raw(
        app.addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
            app.addr
        )
        .as_bytes(),
    );
    assert_eq!(sse.status, 200);
    assert!(sse.body.contains("id: 1\ndata: {"), "{}", sse.body);
    assert!(sse.body.contains("\"done\":true"), "{}", sse.body);
    // Any change to the link is a 404, the same as for a delivery that does not exist.
    let key_at = path.rfind('/').unwrap() + 1;
    let mut tampered = path.clone();
    let flipped = if path[key_at..].starts_with('0') {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(key_at..=key_at, flipped);
    let unknown = path.replacen("/site/", "/other/", 1);
    let answers: Vec<(u16, String)> = [tampered, unknown, "/status/site/bm9uZQ/00".to_owned()]
        .iter()
        .map(|p| {
            let r = get(app.addr, p);
            (r.status, r.body)
        })
        .collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 404);
}

/// A status link names its delivery's jobs; once the last of them is pruned the link is
/// a 404, like one that never existed, while a newer delivery's link still answers.
#[test]
fn a_status_link_goes_with_the_last_of_its_jobs() {
    let repo = Repo::new();
    let first = repo.commit(&[("v", "one")], &[]);
    let second = repo.commit(&[("v", "two")], &[]);
    let out = tempfile::tempdir().unwrap();
    let text = config(out.path(), &hook("site", &repo, RULES))
        .replace("[server]\n", "[server]\nkeep_jobs = 1\n");
    let app = TestApp::spawn(&text);
    let old = push_generic(&app, "site", "refs/heads/main", ZERO, &first);
    let (old_job, old_link) = (job_id(&old), status_path(&app, &old));
    wait_job(&app, old_job);
    assert_eq!(get(app.addr, &old_link).status, 200);
    let new = push_generic(&app, "site", "refs/heads/main", &first, &second);
    let (new_job, new_link) = (job_id(&new), status_path(&app, &new));
    wait_job(&app, new_job);
    wait_for(
        "the old job pruned",
        std::time::Duration::from_secs(30),
        || {
            let r = get(app.addr, &format!("/api/jobs/{old_job}"));
            (r.status == 404).then_some(())
        },
    );
    let answer = get(app.addr, &old_link);
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        answer.body.contains("no such status link"),
        "{}",
        answer.body
    );
    let live = get(app.addr, &new_link);
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(live.json()["jobs"][0]["id"].as_i64(), Some(new_job));
}

#[test]
fn the_secret_is_not_in_the_daemons_log() {
    let repo = Repo::new();
    let good = repo.commit(&[("v", "good")], &[]);
    let out = tempfile::tempdir().unwrap();
    let dir = TestDir::new(&config(out.path(), &hook("site", &repo, RULES)));
    let (daemon, addr) = start_daemon(&dir.config_path());
    let secret = dir.config_path().with_file_name("whsec");
    let (code, stdout, stderr) = trigger(
        &format!("http://{addr}"),
        &secret,
        "refs/heads/main",
        &good,
        &["--wait", "--verbose"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let log = daemon.log();
    assert!(log.contains("job queued"), "{log}");
    assert!(!log.contains(WHSEC), "{log}");
    assert!(!log.contains(WHSEC.trim_start_matches("whsec_")), "{log}");
}
