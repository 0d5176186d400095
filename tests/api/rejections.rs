//! Every kind of bad request gets its status and a JSON error a person can act on, and
//! nothing is recorded.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use crate::helpers::*;

fn app() -> TestApp {
    TestApp::spawn(&standard_config())
}

fn github_headers(sig: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".into()),
        ("X-GitHub-Event", "push".into()),
        ("X-GitHub-Delivery", "d-1".into()),
        ("X-Hub-Signature-256", sig.into()),
    ]
}

fn send(app: &TestApp, hook: &str, headers: &[(&'static str, String)], body: &[u8]) -> Response {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post(hook, &h, body)
}

#[test]
fn github_documented_vector_passes_verification_then_fails_as_json() {
    // GitHub's documented example: the signature is right, so the answer is about the
    // body (400), not about authenticity (401).
    let app = app();
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let res = send(&app, "gh", &github_headers(sig), b"Hello, World!");
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(
        res.error()
            .starts_with("body is not a valid GitHub push event: expected value"),
        "{}",
        res.body
    );
    let res = send(&app, "gh", &github_headers(sig), b"Hello, World?");
    assert_eq!(res.status, 401);
}

#[test]
fn unsigned_forged_and_malformed_signatures_are_401() {
    let app = app();
    let body = fixture("github/push.json");
    let good = hub_signature(&body);
    let wrong = format!("sha256={}", hex(&openssl_hmac(b"another secret", &body)));
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            github_headers(&good)
                .into_iter()
                .filter(|(k, _)| *k != "X-Hub-Signature-256")
                .collect(),
            "missing X-Hub-Signature-256 header: the delivery is not signed; set the hook's secret in the forge",
        ),
        (
            github_headers(""),
            "missing X-Hub-Signature-256 header: the delivery is not signed; set the hook's secret in the forge",
        ),
        (
            github_headers(&good.replace("sha256=", "sha512=")),
            "X-Hub-Signature-256 header is malformed: expected sha256=<64 hexadecimal digits>",
        ),
        (
            github_headers(&wrong),
            "signature does not match: the secret configured in the forge differs from hooks.toml, or the body was changed in transit",
        ),
    ];
    for (headers, message) in cases {
        let res = send(&app, "gh", &headers, &body);
        assert_eq!(res.status, 401, "{}", res.body);
        assert_eq!(res.error(), message);
        assert!(!res.body.contains(&good[7..]), "the expected value leaked");
    }
    assert!(app.jobs().is_empty());
}

#[test]
fn stale_standard_webhooks_timestamp_is_401() {
    let app = app();
    let body = fixture("generic/push.json");
    // Well past the 300 s tolerance: the exact boundary is the unit tests' (a VM's clock
    // can step a second between the signer's reading and the daemon's).
    for ts in [now_secs() - 330, now_secs() + 330] {
        let sw = standard_webhooks("msg_old", ts, &body);
        let mut headers = refs(&sw);
        headers.push(("Content-Type", "application/json"));
        let res = app.post("ci", &headers, &body);
        assert_eq!(res.status, 401);
        assert!(
            res.error()
                .starts_with("webhook-timestamp is more than 300 seconds away"),
            "{}",
            res.body
        );
    }
}

#[test]
fn signed_but_unreadable_bodies_are_400() {
    let app = app();
    let json = b"{\"ref\": \"refs/heads/main\", \"before\": ";
    let res = send(&app, "gh", &github_headers(&hub_signature(json)), json);
    assert_eq!(res.status, 400);
    assert!(
        res.error()
            .starts_with("body is not a valid GitHub push event: EOF while parsing"),
        "{}",
        res.body
    );

    let body = fixture("github/push.json");
    let sig = hub_signature(&body);
    let mut headers = github_headers(&sig);
    headers[0].1 = "text/plain".into();
    let res = send(&app, "gh", &headers, &body);
    assert_eq!(res.status, 400);
    assert_eq!(
        res.error(),
        "unsupported Content-Type \"text/plain\": send application/json (or application/x-www-form-urlencoded where the forge offers it)"
    );

    let headers: Vec<_> = github_headers(&sig)
        .into_iter()
        .filter(|(k, _)| *k != "X-GitHub-Event")
        .collect();
    let res = send(&app, "gh", &headers, &body);
    assert_eq!(res.status, 400);
    assert_eq!(
        res.error(),
        "missing X-GitHub-Event header: cannot tell which event this is"
    );

    // Deep nesting and invalid UTF-8 inside a signed body: refused, server alive.
    for evil in [vec![b'['; 60_000], b"{\"ref\": \"\xff\xfe\"}".to_vec()] {
        let res = send(&app, "gh", &github_headers(&hub_signature(&evil)), &evil);
        assert_eq!(res.status, 400, "{}", res.body);
        assert!(
            res.error()
                .starts_with("body is not a valid GitHub push event"),
            "{}",
            res.body
        );
    }
    let res = send(&app, "gh", &github_headers(&sig), &body);
    assert_eq!(res.status, 202, "server still serves after hostile input");
}

#[test]
fn unknown_hook_is_404_and_other_methods_405() {
    let app = app();
    let res = app.post("nope", &[("Content-Type", "application/json")], b"{}");
    assert_eq!(res.status, 404);
    assert_eq!(
        res.error(),
        "no hook named \"nope\"; check the URL (hooks are served at /hooks/<id> as configured in hooks.toml)"
    );
    for method in ["GET", "PUT", "DELETE", "OPTIONS"] {
        let res = raw(
            app.addr,
            format!("{method} /hooks/gh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(res.status, 405, "{method}");
        assert_eq!(res.header("Allow"), Some("POST"));
        assert!(res.header("Access-Control-Allow-Origin").is_none());
        assert_eq!(
            res.error(),
            "method not allowed; deliveries are POST requests"
        );
    }
    let res = raw(
        app.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(res.status, 404);
}

#[test]
fn oversized_bodies_are_413_without_being_read() {
    let app = app(); // max_body = 64KiB
    // Declared too large: answered from the headers alone, before any body byte is sent.
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(
        b"POST /hooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n",
    )
    .unwrap();
    let res = read_response(&mut s);
    assert_eq!(res.status, 413);
    assert_eq!(
        res.error(),
        "body is larger than this server accepts (65536 bytes; raise server.max_body to allow more)"
    );

    // Chunked, no length given: cut off once the limit is passed.
    let mut req = b"POST /hooks/gh HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let res = raw(app.addr, &req);
    assert_eq!(res.status, 413);
}

#[test]
fn truncated_body_is_400() {
    let app = app();
    let body = fixture("github/push.json");
    let sig = hub_signature(&body);
    let mut s = TcpStream::connect(app.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /hooks/gh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let res = read_response(&mut s);
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(
        res.error()
            .starts_with("the request body could not be read to its end"),
        "{}",
        res.body
    );
    assert!(app.jobs().is_empty());
}
