//! The dashboard over real HTTP: a session only from a login with the API token (never
//! for `/api`), throttled wrong logins, 421 for a foreign `Host`, 403 for a cross-site
//! form post, escaped payload text, strict headers, and a job's live log as Server-Sent
//! Events that resume from `Last-Event-ID`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook};

/// A request with these headers (and `Host` the daemon's, unless given).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        let _ = write!(req, "Host: {addr}\r\n");
    }
    for (k, v) in headers {
        let _ = write!(req, "{k}: {v}\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

/// Logs in with the daemon's token; returns the `Cookie` header to send.
pub fn log_in(addr: SocketAddr) -> String {
    let token = token_of(addr).expect("the test knows the daemon's token");
    let form = format!("token={token}&next=%2Fui%2F");
    let res = request(
        addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(res.status, 303, "{}", res.body);
    let cookie = res
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

const SLOW: &str = "[[hook.rule]]\nname = \"site\"\nbranches = [\"main\"]\nenv = { OUT = \"$OUTDIR\" }\ncommands = [\"echo first line; echo '<b>bold</b> & <script>x</script>'; i=0; while [ ! -e \\\"$OUT/go\\\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo last line\"]\n";

#[test]
fn the_dashboard_needs_a_login_with_the_token_and_api_never_takes_the_cookie() {
    let repo = Repo::new();
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, SLOW)));
    let res = request(app.addr, "GET", "/ui/", &[], b"");
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/ui/login?next=%2Fui%2F"));
    let page = request(
        app.addr,
        "GET",
        "/ui/login?next=%2Fui%2Fhooks%2Fsite",
        &[],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("name=\"next\" value=\"/ui/hooks/site\""),
        "{}",
        page.body
    );
    let wrong = request(
        app.addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=guess&next=%2Fui%2F",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let cookie = log_in(app.addr);
    let set = request(
        app.addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "token={}&next=https%3A%2F%2Fevil.example%2F",
            token_of(app.addr).unwrap()
        )
        .as_bytes(),
    );
    assert_eq!(
        set.header("location"),
        Some("/ui/"),
        "never off the dashboard"
    );
    let attributes = set.header("set-cookie").unwrap().to_ascii_lowercase();
    for a in ["httponly", "samesite=strict", "path=/ui", "max-age="] {
        assert!(attributes.contains(a), "{attributes}");
    }
    let home = request(app.addr, "GET", "/ui/", &[("Cookie", &cookie)], b"");
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("href=\"/ui/hooks/site\""),
        "{}",
        home.body
    );
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(home.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(home.header("cache-control"), Some("no-store"));
    // The API takes only the bearer token.
    let api = request(app.addr, "GET", "/api/jobs", &[("Cookie", &cookie)], b"");
    assert_eq!(api.status, 401);
    // A tampered session is no session.
    let tampered = format!("{cookie}x");
    assert_eq!(
        request(app.addr, "GET", "/ui/", &[("Cookie", &tampered)], b"").status,
        303
    );
    // Wrong logins are throttled: a few, then 429 even for the right token.
    for _ in 0..5 {
        request(
            app.addr,
            "POST",
            "/ui/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"token=guess",
        );
    }
    let throttled = request(
        app.addr,
        "POST",
        "/ui/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={}", token_of(app.addr).unwrap()).as_bytes(),
    );
    assert_eq!(throttled.status, 429);
}

#[test]
fn foreign_hosts_and_cross_site_posts_are_refused_before_anything_else() {
    let repo = Repo::new();
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, SLOW)));
    let cookie = log_in(app.addr);
    for path in ["/ui/", "/ui/login", "/api/jobs"] {
        let res = request(
            app.addr,
            "GET",
            path,
            &[("Host", "evil.example"), ("Cookie", &cookie)],
            b"",
        );
        assert_eq!(res.status, 421, "{path}");
    }
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let cross = request(
        app.addr,
        "POST",
        "/ui/hooks/site/pause",
        &[form[0], form[1], ("Sec-Fetch-Site", "cross-site")],
        b"reason=x",
    );
    assert_eq!(cross.status, 403);
    let other = request(
        app.addr,
        "POST",
        "/ui/hooks/site/pause",
        &[form[0], form[1], ("Origin", "https://evil.example")],
        b"reason=x",
    );
    assert_eq!(other.status, 403);
    // Refused before login too: a cross-site post without a session is not redirected.
    let anonymous = request(
        app.addr,
        "POST",
        "/ui/logout",
        &[("Sec-Fetch-Site", "cross-site")],
        b"",
    );
    assert_eq!(anonymous.status, 403);
    assert!(get(app.addr, "/api/hooks").json()["hooks"][0]["paused"].is_null());
    let own = format!("http://{}", app.addr);
    let same = request(
        app.addr,
        "POST",
        "/ui/hooks/site/pause",
        &[
            form[0],
            form[1],
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", &own),
        ],
        b"reason=incident",
    );
    assert_eq!(same.status, 303);
    assert_eq!(same.header("location"), Some("/ui/hooks/site?done=paused"));
    assert_eq!(
        get(app.addr, "/api/hooks").json()["hooks"][0]["paused"]["reason"],
        "incident"
    );
}

/// Reads SSE lines from `s` until `done` holds for what was read so far.
fn read_until(s: &mut BufReader<TcpStream>, done: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    while !done(&seen) {
        let mut line = String::new();
        assert!(
            s.read_line(&mut line).unwrap() > 0,
            "the stream ended early: {seen}"
        );
        seen.push_str(&line);
    }
    seen
}

fn open_live(
    addr: SocketAddr,
    cookie: &str,
    path: &str,
    resume: Option<&str>,
) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let resume = resume
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .unwrap();
    BufReader::new(s)
}

#[test]
fn a_job_page_escapes_what_it_shows_and_streams_the_log_live() {
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(&config(out.path(), &hook("site", &repo, SLOW)));
    let cookie = log_in(app.addr);
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": sha,
        "pusher": "<script>alert(1)</script>",
    })
    .to_string();
    let sw = standard_webhooks("msg_ui_1", now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    let id = job_id(&app.post("site", &headers, body.as_bytes()));
    wait_for("the first lines", Duration::from_secs(30), || {
        get(app.addr, &format!("/api/jobs/{id}/log"))
            .body
            .contains("</script>")
            .then_some(())
    });
    let page = request(
        app.addr,
        "GET",
        &format!("/ui/jobs/{id}"),
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("<b>bold</b>") && page.body.contains("&lt;b&gt;bold&lt;/b&gt; &amp;")
    );
    assert!(page.body.contains("data-live=\"true\""), "{}", page.body);
    // The live log: the lines so far, then (after `go`) the last one and the end.
    let path = format!("/ui/jobs/{id}/live?offset=0");
    let mut live = open_live(app.addr, &cookie, &path, None);
    let first = read_until(&mut live, |s| s.contains("</script>\n\n"));
    assert!(first.contains("content-type: text/event-stream"), "{first}");
    assert!(
        first.contains("event: log\n") && first.contains("out| first line"),
        "{first}"
    );
    let resume_at = first
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_owned();
    std::fs::write(out.path().join("go"), "").unwrap();
    let rest = read_until(&mut live, |s| s.contains("event: state\ndata: succeeded\n"));
    assert!(rest.contains("out| last line"), "{rest}");
    assert!(!rest.contains("first line"), "no line twice: {rest}");
    // A reconnect with Last-Event-ID goes on from there: no line again.
    let mut again = open_live(
        app.addr,
        &cookie,
        &format!("/ui/jobs/{id}/live"),
        Some(&resume_at),
    );
    let resumed = read_until(&mut again, |s| s.contains("event: state\n"));
    assert!(
        resumed.contains("out| last line") && !resumed.contains("first line"),
        "{resumed}"
    );
    // Without a session: to the login.
    let anonymous = request(app.addr, "GET", &format!("/ui/jobs/{id}/live"), &[], b"");
    assert_eq!(anonymous.status, 303);
}
