//! A delivery accepted once never deploys again: not when redelivered, not under a fresh
//! delivery id, not after a restart.

use crate::helpers::*;

fn github_push(app: &TestApp, delivery: &str) -> Response {
    let body = fixture("github/push.json");
    app.post(
        "gh",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &hub_signature(&body)),
        ],
        &body,
    )
}

#[test]
fn redelivery_and_replay_under_a_new_id_are_duplicates_across_restarts() {
    let app = TestApp::spawn(&standard_config());
    assert_eq!(github_push(&app, "d-1").status, 202);

    let again = github_push(&app, "d-1");
    assert_eq!(again.status, 200);
    let json = again.json();
    assert_eq!(json["status"], "duplicate");
    assert_eq!(json["delivery"], "d-1");
    assert_eq!(
        json["reason"],
        "this delivery was already accepted (job 1); it will not deploy again"
    );
    // The id header is not signed: the same signed body under a new id is a replay too,
    // and the answer says which delivery and job it was, and how to deploy it on purpose.
    let replay = github_push(&app, "d-2").json();
    assert_eq!(replay["status"], "duplicate");
    assert_eq!(
        replay["accepted_as"],
        serde_json::json!({"delivery": "d-1", "job": 1})
    );
    let reason = replay["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "the same push was already accepted as delivery \"d-1\" (job 1) under another delivery id; it will not deploy again; to deploy it again on purpose, run `deployhook deploy gh --ref refs/heads/main --sha "
        ),
        "{reason}"
    );

    let dir = app.stop();
    let app = TestApp::spawn_in(dir);
    assert_eq!(github_push(&app, "d-1").json()["status"], "duplicate");
    assert_eq!(app.jobs().len(), 1);
}

#[test]
fn standard_webhooks_replays_are_caught_by_the_signed_id() {
    let app = TestApp::spawn(&standard_config());
    let body = fixture("generic/push.json");
    let send = |id: &str| {
        let sw = standard_webhooks(id, now_secs(), &body);
        let mut headers = refs(&sw);
        headers.push(("Content-Type", "application/json"));
        app.post("ci", &headers, &body)
    };
    assert_eq!(send("msg_a").status, 202);
    assert_eq!(send("msg_a").json()["status"], "duplicate");
    // A new signed id for the same push is a deliberate new delivery (e.g. a redeploy
    // from CI): the signature covers id and timestamp, so it cannot be a replay.
    assert_eq!(send("msg_b").status, 202);
    assert_eq!(app.jobs().len(), 2);
}

#[test]
fn concurrent_copies_of_one_delivery_queue_one_job() {
    let app = TestApp::spawn(&standard_config());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| github_push(&app, "same").status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(app.jobs().len(), 1);
}
