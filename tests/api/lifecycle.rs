//! The job lifecycle as the API shows it: a job's events, the event stream (a JSON page,
//! and Server-Sent Events that resume from `Last-Event-ID` without a gap or a repeat and
//! ping when idle), and delivery records ("why did my push not deploy?") with the CLI's
//! `deliveries`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, spawn_site};

/// An open `GET /api/events` stream, read as it arrives.
struct EventStream {
    body: BufReader<TcpStream>,
    /// Decoded body bytes not yet split into messages.
    pending: String,
}

/// One message of the stream: an event (`id:` and `data:`) or a comment (a ping).
#[derive(Debug)]
enum Message {
    Event { id: i64, data: serde_json::Value },
    Comment(String),
}

impl EventStream {
    fn open(addr: SocketAddr, query: &str, last_event_id: Option<i64>) -> EventStream {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let auth = token_of(addr)
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /api/events{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}{resume}\r\n"
        )
        .unwrap();
        let mut body = BufReader::new(s);
        let mut status = String::new();
        body.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            body.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-type:") {
                v.trim().clone_into(&mut content_type);
            }
        }
        assert_eq!(content_type, "text/event-stream");
        EventStream {
            body,
            pending: String::new(),
        }
    }

    /// The next message, reading (chunked) body as needed.
    fn next(&mut self) -> Message {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                return parse_message(block.trim_end());
            }
            let mut size = String::new();
            self.body.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            assert!(n > 0, "the stream ended");
            let mut chunk = vec![0; n + 2];
            self.body.read_exact(&mut chunk).unwrap();
            self.pending
                .push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }

    /// The next event, skipping pings.
    fn next_event(&mut self) -> (i64, serde_json::Value) {
        loop {
            if let Message::Event { id, data } = self.next() {
                return (id, data);
            }
        }
    }
}

fn parse_message(block: &str) -> Message {
    if let Some(comment) = block.strip_prefix(':') {
        return Message::Comment(comment.trim().to_owned());
    }
    let mut id = None;
    let mut data = None;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).unwrap());
        } else {
            panic!("unexpected line {line:?} in {block:?}");
        }
    }
    Message::Event {
        id: id.unwrap(),
        data: data.unwrap(),
    }
}

fn kinds(events: &serde_json::Value) -> Vec<(i64, String)> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["job"].as_i64().unwrap(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn job_events_and_an_event_stream_that_resumes_without_gap_or_repeat() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("v", "1")], &[]);
    let v2 = repo.commit(&[("v", "2")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
    );
    let first = job_id(&push_generic(&app, "site", "refs/heads/main", ZERO, &v1));
    assert_eq!(wait_job(&app, first)["state"], "succeeded");

    // The job's own history.
    let job = get(app.addr, &format!("/api/jobs/{first}")).json();
    let history = kinds(&job["events"]);
    assert_eq!(
        history,
        [(first, "queued"), (first, "started"), (first, "succeeded")]
            .map(|(j, k)| (j, k.to_owned()))
    );
    assert_eq!(job["events"][2]["reason"], "all commands succeeded");

    // The same, as a page of the whole stream.
    let page = get(app.addr, "/api/events?after=0").json();
    assert_eq!(kinds(&page["events"]), history);
    let cursors: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_eq!(page["next"], cursors[2]);
    let after_first = get(
        app.addr,
        &format!("/api/events?after={}&limit=1", cursors[0]),
    )
    .json();
    assert_eq!(after_first["events"][0]["cursor"], cursors[1]);
    assert_eq!(after_first["events"].as_array().unwrap().len(), 1);

    // Live: resume after the first event, then see a new push's events as they happen.
    let mut stream = EventStream::open(app.addr, "?ping=1", Some(cursors[0]));
    assert_eq!(stream.next_event().0, cursors[1], "no gap, no repeat");
    let (id, data) = stream.next_event();
    assert_eq!((id, data["kind"].as_str()), (cursors[2], Some("succeeded")));
    let second = job_id(&push_generic(&app, "site", "refs/heads/main", &v1, &v2));
    let mut live = Vec::new();
    while live.last().map(|(_, k): &(i64, String)| k.as_str()) != Some("succeeded") {
        let (id, data) = stream.next_event();
        assert_eq!(data["cursor"], id);
        assert_eq!(data["job"], second);
        live.push((id, data["kind"].as_str().unwrap().to_owned()));
    }
    let live_kinds: Vec<&str> = live.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(live_kinds, ["queued", "started", "succeeded"]);
    // Idle now: a comment ping keeps the connection open.
    let ping = wait_for("a ping", Duration::from_secs(30), || match stream.next() {
        Message::Comment(c) => Some(c),
        Message::Event { id, .. } => panic!("no more events, got {id}"),
    });
    assert_eq!(ping, "ping");

    // A reconnect from the middle of the live part picks up exactly there.
    let mut again = EventStream::open(app.addr, "", Some(live[0].0));
    assert_eq!(again.next_event().0, live[1].0);
    assert_eq!(again.next_event().0, live[2].0);

    let bad = raw(
        app.addr,
        format!(
            "GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nLast-Event-ID: yesterday\r\nConnection: close\r\n\r\n",
            app.addr,
            token_of(app.addr).unwrap()
        )
        .as_bytes(),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn delivery_records_say_what_became_of_each_push_and_why() {
    let repo = Repo::new();
    let v1 = repo.commit(&[("v", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = spawn_site(
        out.path(),
        &repo,
        "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
    );
    let ignored = push_generic(&app, "site", "refs/heads/dev", ZERO, &v1);
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    // One push, sent twice as the forge would retry it (same delivery id).
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": v1,
    })
    .to_string();
    let sw = standard_webhooks("msg_retried", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let queued = app.post("site", &headers, body.as_bytes());
    let job = job_id(&queued);
    assert_eq!(app.post("site", &headers, body.as_bytes()).status, 200);
    // Authentic but unreadable.
    let garbage = b"{\"ref\": ";
    let sw = standard_webhooks("msg_garbage", now_secs(), garbage);
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    assert_eq!(app.post("site", &headers, garbage).status, 400);
    // Not authentic: counted, never stored.
    let forged = standard_webhooks("msg_forged", now_secs(), b"{}");
    assert_eq!(app.post("site", &refs(&forged), b"{\"x\":1}").status, 401);

    let records = get(app.addr, "/api/deliveries?hook=site").json();
    let records = records["deliveries"].as_array().unwrap();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["bad_payload", "duplicate", "queued", "ignored"]);
    assert!(records.iter().all(|r| r["hook"] == "site"));
    let [bad, duplicate, accepted, skipped] = [0, 1, 2, 3].map(|i| &records[i]);
    assert_eq!(bad["delivery"], "msg_garbage");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("EOF while parsing a value"),
        "{bad}"
    );
    assert_eq!(duplicate["delivery"], "msg_retried");
    assert_eq!(duplicate["jobs"], serde_json::json!([job]));
    assert_eq!(
        duplicate["reason"],
        format!("this delivery id was already accepted (job {job})")
    );
    assert_eq!(
        (
            accepted["event"].as_str(),
            accepted["ref"].as_str(),
            accepted["sha"].as_str()
        ),
        (Some("push"), Some("refs/heads/main"), Some(v1.as_str()))
    );
    assert_eq!(accepted["jobs"], serde_json::json!([job]));
    assert_eq!(skipped["ref"], "refs/heads/dev");
    let why = skipped["reason"].as_str().unwrap().to_owned();
    assert!(why.contains("refs/heads/dev"), "{why}");

    let metrics = get(app.addr, "/metrics").body;
    assert!(
        metrics.contains("deployhook_signature_failures_total{hook=\"site\"} 1"),
        "{metrics}"
    );

    // The CLI: one line per delivery, newest first, with the reason.
    let cli = Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args([
            "deliveries",
            "--url",
            &format!("http://{}", app.addr),
            "site",
        ])
        .arg("--token-file")
        .arg(app.dir().config_path().with_file_name("state/api-token"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(cli.status.success());
    let stdout = String::from_utf8(cli.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].starts_with("RECEIVED"), "{stdout}");
    assert!(
        lines[2].contains("msg_retried") && lines[2].contains("duplicate"),
        "{stdout}"
    );
    assert!(
        lines[4].contains("ignored") && lines[4].contains(&why),
        "{stdout}"
    );
    assert!(lines[3].contains(&job.to_string()), "{stdout}");
}

/// A stopping daemon waits for the answers it is sending: an open event stream must not
/// hold it up for the HTTP server's whole shutdown timeout. It ends, and the daemon exits.
#[test]
fn an_open_event_stream_ends_when_the_daemon_stops() {
    let repo = Repo::new();
    let out = tempfile::tempdir().unwrap();
    let dir = TestDir::new(&crate::jobs::config(
        out.path(),
        &crate::jobs::hook(
            "site",
            &repo,
            "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n",
        ),
    ));
    let (mut daemon, addr) = start_daemon(&dir.config_path());
    let mut stream = EventStream::open(addr, "?ping=1", None);
    assert!(
        matches!(stream.next(), Message::Comment(_)),
        "the stream is open"
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(daemon.0.id()).unwrap());
    let asked = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_for("the daemon to exit", Duration::from_secs(30), || {
        daemon.0.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "took {:?}",
        asked.elapsed()
    );
}
