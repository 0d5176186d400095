//! The dashboard in a real browser: Debian's chromium, driven through chromedriver
//! (WebDriver over HTTP on a free loopback port, killed when the test ends). It logs in,
//! watches a running job's log lines arrive and its state flip without a reload, cancels
//! another job, pauses a hook, sees a push held, resumes it and sees it deploy; it saves
//! screenshots (also at phone width) under `target/ui-screenshots/` for a person to look
//! at. Without chromium and chromedriver the test fails under CI (`CI=true`) and says so
//! loudly otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use deployhook::http_client::{Client, Method};
use serde_json::{Value, json};

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, config, hook};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (after saying why) when the browser is not installed and this is not CI.
    fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            let why = "chromium and chromium-driver are not installed (.ci/run installs them)";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED the browser test: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = Client::new(Duration::from_secs(60));
        wait_for("chromedriver to answer", Duration::from_secs(30), || {
            let ready = client.get(&format!("{base}/status"), &[]).ok()?;
            (ready.status == 200).then_some(())
        });
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            client,
            _profile: profile,
        };
        let started = b.call(
            Method::Post,
            "/session",
            &json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            }}}),
        );
        started["sessionId"]
            .as_str()
            .unwrap()
            .clone_into(&mut b.session);
        Some(b)
    }

    fn call(&self, method: Method, path: &str, body: &Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|v| panic!("{path}: {v}"))
    }

    /// A WebDriver command; `Err` with the answer when it failed (no such element, a
    /// stale one while the page is being replaced...).
    fn try_call(&self, method: Method, path: &str, body: &Value) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
        let body = body.to_string();
        let answer = self
            .client
            .open(
                method,
                &url,
                &headers,
                (method != Method::Get).then_some(body.as_bytes()),
            )
            .unwrap()
            .read()
            .unwrap();
        let v: Value = serde_json::from_str(&answer.body).unwrap();
        if answer.status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(v)
        }
    }

    /// The element's text, if the page has it now (after a click, the next page may
    /// still be on its way).
    fn try_text(&self, css: &str) -> Option<String> {
        let found = self
            .try_call(
                Method::Post,
                &self.at("/element"),
                &json!({ "using": "css selector", "value": css }),
            )
            .ok()?;
        let e = found[ELEMENT].as_str()?.to_owned();
        self.try_call(
            Method::Get,
            &self.at(&format!("/element/{e}/text")),
            &Value::Null,
        )
        .ok()
        .map(|t| t.as_str().unwrap_or("").to_owned())
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn open(&self, url: &str) {
        self.call(Method::Post, &self.at("/url"), &json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.call(Method::Get, &self.at("/url"), &Value::Null)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            Method::Post,
            &self.at("/element"),
            &json!({ "using": "css selector", "value": css }),
        );
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.call(
            Method::Get,
            &self.at(&format!("/element/{e}/text")),
            &Value::Null,
        )
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            Method::Post,
            &self.at(&format!("/element/{e}/value")),
            &json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call(
            Method::Post,
            &self.at(&format!("/element/{e}/click")),
            &json!({}),
        );
    }

    /// Waits until the element's text satisfies `ok`, reading it again (no reload).
    fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        wait_for(what, Duration::from_secs(60), || {
            let t = self.try_text(css)?;
            ok(&t).then_some(t)
        })
    }

    fn size(&self, width: u32, height: u32) {
        self.call(
            Method::Post,
            &self.at("/window/rect"),
            &json!({ "width": width, "height": height }),
        );
    }

    fn screenshot(&self, name: &str) {
        let png = self.call(Method::Get, &self.at("/screenshot"), &Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.client.open(Method::Delete, &url, &[], None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn push(addr: SocketAddr, hook: &str, sha: &str, id: &str) -> i64 {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": "refs/heads/main", "before": ZERO, "after": sha,
        "pusher": "<i>alice</i>",
    })
    .to_string();
    let sw = standard_webhooks(id, now_secs(), body.as_bytes());
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    job_id(&post(
        addr,
        &format!("/hooks/{hook}"),
        &headers,
        body.as_bytes(),
    ))
}

const WAITS: &str = "[[hook.rule]]\nname = \"site\"\nbranches = [\"main\"]\nenv = { OUT = \"$OUTDIR\" }\ncommands = [\"echo first line; i=0; while [ ! -e \\\"$OUT/go\\\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; echo last line\"]\n";
const HANGS: &str = "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"sleep\", \"120\"]]\n";

#[test]
fn in_a_real_browser_the_dashboard_follows_cancels_pauses_and_resumes() {
    let Some(b) = Browser::start() else { return };
    let repo = Repo::new();
    let sha = repo.commit(&[("index.html", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let hooks = hook("site", &repo, WAITS) + &hook("hang", &repo, HANGS);
    let app = TestApp::spawn(&config(out.path(), &hooks));
    let ui = format!("http://{}/ui", app.addr);

    // Log in.
    b.open(&format!("{ui}/"));
    assert!(b.url().contains("/ui/login"), "{}", b.url());
    b.type_into("#token", &token_of(app.addr).unwrap());
    b.click("button[type=submit]");
    b.wait_text("h1", "the overview", |t| t == "Hooks");
    b.screenshot("overview");

    // A running job: its lines arrive live, and its state flips when it ends.
    let running = push(app.addr, "site", &sha, "msg_browser_1");
    wait_for("the job to run", Duration::from_secs(30), || {
        (get(app.addr, &format!("/api/jobs/{running}")).json()["state"] == "running").then_some(())
    });
    b.open(&format!("{ui}/jobs/{running}"));
    b.wait_text("#log", "the first line", |t| t.contains("first line"));
    assert!(
        b.text("dl").contains("<i>alice</i>"),
        "the pusher shown as text"
    );
    std::fs::write(out.path().join("go"), "").unwrap();
    b.wait_text("#log", "the last line, without a reload", |t| {
        t.contains("last line")
    });
    b.wait_text("#state", "the state to flip", |t| t == "succeeded");
    b.screenshot("job");

    // Cancel another job from its page.
    let hanging = push(app.addr, "hang", &sha, "msg_browser_2");
    wait_for("the hanging job to run", Duration::from_secs(30), || {
        (get(app.addr, &format!("/api/jobs/{hanging}")).json()["state"] == "running").then_some(())
    });
    b.open(&format!("{ui}/jobs/{hanging}"));
    b.click("#cancel");
    b.wait_text("#state", "the job to end cancelled", |t| t == "cancelled");

    // Pause a hook, see a push held, resume and see it deploy.
    b.open(&format!("{ui}/hooks/site"));
    b.type_into("input[name=reason]", "change freeze");
    b.click("#pause");
    b.wait_text(".paused", "the hook to say it is paused", |t| {
        t.contains("change freeze")
    });
    let held = push(app.addr, "site", &sha, "msg_browser_3");
    b.open(&format!("{ui}/jobs/{held}"));
    assert_eq!(b.text("#state"), "held");
    b.open(&format!("{ui}/hooks/site"));
    b.screenshot("hook-paused");
    b.click("#resume");
    b.wait_text(".notice", "the hook to say it was resumed", |t| {
        t.starts_with("Resumed")
    });
    assert_eq!(wait_job(&app, held)["state"], "succeeded");

    // At phone width.
    b.size(390, 844);
    b.open(&format!("{ui}/"));
    b.screenshot("overview-phone");
}
