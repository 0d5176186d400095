//! Regressions found while fuzzing (fuzz/, scripts/fuzz.sh): each test replays the input
//! that broke a property of a fuzz target, through the real server.

use crate::helpers::*;

/// Found while writing the `intake` target's properties. Gitea, Forgejo and Gogs sign
/// the JSON document, not the request body, and their delivery id header is not signed.
/// A captured JSON delivery, re-sent form-encoded (`payload=<the same JSON>`) under a
/// fresh id, carries a valid signature but a different body: the replay key must come
/// from what was signed, or the old push deploys again (a rollback by replay, which the
/// README promises cannot happen).
#[test]
fn a_gitea_delivery_replayed_form_encoded_under_a_new_id_is_a_duplicate() {
    let app = TestApp::spawn(&standard_config());
    let json = fixture("gitea/push.json");
    let sig = bare_signature(&json);
    let send = |delivery: &str, content_type: &str, body: &[u8]| {
        app.post(
            "gitea",
            &[
                ("Content-Type", content_type),
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Delivery", delivery),
                ("X-Gitea-Signature", &sig),
            ],
            body,
        )
    };
    let first = send("gitea-1", "application/json", &json);
    assert_eq!(first.status, 202, "{}", first.body);

    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let replay = send(
        "gitea-2",
        "application/x-www-form-urlencoded",
        form.as_bytes(),
    );
    assert_eq!(
        (replay.status, replay.json()["status"].clone()),
        (200, "duplicate".into()),
        "the same signed push, form-encoded under a new id, was queued again: {}",
        replay.body
    );
    // The form's other fields are not signed either: adding one is the same replay.
    let padded = format!("{form}&padding=1");
    let replay = send(
        "gitea-3",
        "application/x-www-form-urlencoded",
        padded.as_bytes(),
    );
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(app.jobs().len(), 1, "one push, one job");
}

/// The same finding one level down, where the `intake` fuzz target sees it: the body
/// replay key of a Gitea-family delivery must not depend on how the signed JSON was
/// wrapped for transport.
#[test]
fn gitea_body_replay_keys_cover_what_was_signed_not_how_it_was_sent() {
    use deployhook::intake::{Decision, decide};
    let dir = TestDir::new(&standard_config());
    let config = deployhook::config::load(&dir.config_path()).unwrap().config;
    let json = fixture("gogs/push.json");
    let form = serde_urlencoded::to_string([("payload", String::from_utf8(json.clone()).unwrap())])
        .unwrap();
    let hook = config.hook("gogs").unwrap();
    let body_key = |content_type: &str, body: &[u8]| {
        let headers = vec![
            ("Content-Type", content_type.to_owned()),
            ("X-Gogs-Event", "push".to_owned()),
            ("X-Gogs-Signature", bare_signature(&json)),
            ("X-Gogs-Delivery", format!("d-{content_type}")),
        ];
        match decide(hook, &headers, body, std::time::SystemTime::now()) {
            Ok(Decision::Deploy(d)) => d
                .replay_keys
                .into_iter()
                .find(|k| k.starts_with("body:"))
                .expect("a body key: the delivery id is not signed"),
            other => panic!("{content_type}: {other:?}"),
        }
    };
    let as_json = body_key("application/json", &json);
    let as_form = body_key("application/x-www-form-urlencoded", form.as_bytes());
    assert_eq!(as_json, as_form, "one signed push, two replay keys");
}
