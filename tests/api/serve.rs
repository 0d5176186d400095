//! `deployhook serve` as a real process: it starts on a config, answers a signed push,
//! keeps hostile payload text out of its log unescaped, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::*;

#[test]
fn serve_answers_a_signed_push_and_stops_on_sigterm() {
    let dir = TestDir::new(&standard_config());
    let mut child = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["serve", "--config"])
        .arg(dir.config_path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let mut child = Daemon(child, std::sync::Arc::default());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log: Vec<Vec<u8>> = Vec::new();
    let addr = wait_for("the listening line", Duration::from_secs(60), || {
        let line = rx.recv_timeout(Duration::from_millis(100)).ok()?;
        log.push(line.clone());
        let text = String::from_utf8_lossy(&line);
        let at = text.find("listening on ")?;
        text[at + "listening on ".len()..]
            .split_whitespace()
            .next()?
            .parse::<std::net::SocketAddr>()
            .ok()
    });

    let body = fixture("github/push.json");
    let res = post(
        addr,
        "/hooks/gh",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "serve-1"),
            ("X-Hub-Signature-256", &hub_signature(&body)),
        ],
        &body,
    );
    assert_eq!(res.status, 202, "{}", res.body);

    // A forged one: refused, and the log line names the hook and the claimed delivery.
    let res = post(
        addr,
        "/hooks/gh",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "forged-1"),
            ("X-Hub-Signature-256", &format!("sha256={}", "0".repeat(64))),
        ],
        &body,
    );
    assert_eq!(res.status, 401);

    // A signed payload that names a repository full of terminal escapes.
    let hostile = serde_json::json!({
        "repository": "evil/\u{1b}[2J\u{1b}[31mrepo\nFAKE LOG LINE",
        "ref": "refs/heads/main", "before": BEFORE, "after": AFTER,
    })
    .to_string();
    let sw = standard_webhooks("msg_hostile", now_secs(), hostile.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let res = post(addr, "/hooks/ci", &headers, hostile.as_bytes());
    assert_eq!(res.status, 200, "{}", res.body);

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_for("the daemon to exit", Duration::from_secs(30), || {
        child.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
    }
    let all: Vec<u8> = log.join(&b'\n');
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("job queued"), "{text}");
    assert!(text.contains("delivery ignored"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("not authentic")
            && l.contains("hook=gh")
            && l.contains("delivery=forged-1")),
        "{text}"
    );
    assert!(!all.contains(&0x1b), "raw escape byte in the log:\n{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("FAKE LOG LINE")),
        "{text}"
    );
    assert!(!text.contains(SECRET), "secret in the log");
}

/// A second `serve` on the state directory of a running one refuses to start and names
/// the process that holds it (it used to start, and mark the first one's running job
/// interrupted while that job went on to succeed). The first keeps serving.
#[test]
fn a_second_serve_on_the_same_state_dir_refuses_to_start() {
    let dir = TestDir::new(&standard_config());
    let (first, addr) = start_daemon(&dir.config_path());
    let second = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["serve", "--config"])
        .arg(dir.config_path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another deployhook (process {})",
            first.0.id()
        )),
        "{stderr}"
    );
    assert_eq!(get(addr, "/healthz").status, 200);
    // Once the first is gone (however it went), the directory is free again.
    drop(first);
    let (_again, addr) = start_daemon(&dir.config_path());
    assert_eq!(get(addr, "/healthz").status, 200);
}
