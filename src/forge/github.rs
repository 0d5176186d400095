//! GitHub: `X-GitHub-Event` (push, ping, ...) and `X-GitHub-Delivery`; tag pushes are
//! push events on `refs/tags/`.

use serde::Deserialize;

use super::{
    CommitFiles, Delivery, DeliveryKind, ParseError, RawPush, changed_paths, check_json,
    delivery_header, delivery_headers, event_header, from_json,
};
use crate::event::Forge;
use crate::verify::{Headers, Verified};

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    repository: Repository,
    pusher: Option<Pusher>,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<CommitFiles>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Pusher {
    name: Option<String>,
}

/// GitHub puts at most this many commits in a push payload; with that many listed, the
/// file list may be incomplete.
const MAX_LISTED_COMMITS: usize = 2048;

pub(super) fn parse(
    headers: &dyn Headers,
    verified: &Verified<'_>,
) -> Result<Delivery, ParseError> {
    let event = event_header(headers, &["X-GitHub-Event"])?;
    let id = delivery_header(headers, delivery_headers(Forge::Github))?;
    let json = verified.json()?;
    let kind = match event.as_str() {
        "push" => {
            let p: Push = from_json(json, "GitHub push event")?;
            let paths = if p.commits.len() >= MAX_LISTED_COMMITS {
                crate::event::ChangedPaths::Unknown
            } else {
                changed_paths(&p.commits, None)
            };
            let event = RawPush {
                forge: Forge::Github,
                repository: p.repository.full_name,
                git_ref: &p.git_ref,
                before: &p.before,
                after: &p.after,
                forced: p.forced,
                paths,
                pusher: p.pusher.and_then(|p| p.name),
            }
            .validate(id.clone())?;
            DeliveryKind::Push(vec![event])
        }
        "ping" => {
            check_json(json, "GitHub ping event")?;
            DeliveryKind::Ping
        }
        _ => {
            check_json(json, "GitHub event")?;
            DeliveryKind::Other(event)
        }
    };
    Ok(Delivery { id, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangedPaths, RefKind};
    use crate::verify::tests::TestHeaders;

    const PUSH: &[u8] = include_bytes!("../../tests/fixtures/github/push.json");
    const TAG: &[u8] = include_bytes!("../../tests/fixtures/github/push-tag.json");
    const DELETE: &[u8] = include_bytes!("../../tests/fixtures/github/push-delete.json");

    fn headers(event: &str) -> TestHeaders {
        TestHeaders::with(&[
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ])
    }

    fn push(body: &[u8]) -> crate::event::PushEvent {
        let d = parse(&headers("push"), &Verified::assume(body, None)).unwrap();
        assert_eq!(
            d.id.as_ref().unwrap().as_str(),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        match d.kind {
            DeliveryKind::Push(mut events) if events.len() == 1 => events.remove(0),
            other => panic!("not one push: {other:?}"),
        }
    }

    #[test]
    fn documented_push_payload() {
        let e = push(PUSH);
        assert_eq!(e.repository, "acme/website");
        assert_eq!(e.git_ref.kind(), RefKind::Branch("main"));
        assert_eq!(
            e.before.as_str(),
            "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
        );
        assert_eq!(e.after.as_str(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(e.pusher.as_deref(), Some("octocat"));
        assert!(!e.forced && !e.created() && !e.deleted());
        assert_eq!(
            e.paths,
            ChangedPaths::Known(vec![
                "README.md".into(),
                "old/legacy.txt".into(),
                "site/css/main.css".into(),
                "site/index.html".into(),
            ])
        );
    }

    #[test]
    fn tag_push_and_branch_delete() {
        let t = push(TAG);
        assert_eq!(t.git_ref.kind(), RefKind::Tag("v1.2.0"));
        assert!(t.created());
        assert_eq!(t.paths, ChangedPaths::Unknown);
        let d = push(DELETE);
        assert!(d.deleted());
        assert_eq!(d.git_ref.kind(), RefKind::Branch("feature/old"));
    }

    #[test]
    fn ping_and_other_events() {
        let ping = include_bytes!("../../tests/fixtures/github/ping.json");
        let d = parse(&headers("ping"), &Verified::assume(ping, None)).unwrap();
        assert_eq!(d.kind, DeliveryKind::Ping);
        let issues = include_bytes!("../../tests/fixtures/github/issues.json");
        let d = parse(&headers("issues"), &Verified::assume(issues, None)).unwrap();
        assert_eq!(d.kind, DeliveryKind::Other("issues".into()));
    }

    #[test]
    fn bad_bodies_and_headers() {
        let v = Verified::assume(b"{\"ref\": ", None);
        assert!(matches!(
            parse(&headers("push"), &v),
            Err(ParseError::Json { .. })
        ));
        let v = Verified::assume(b"{}", None);
        let err = parse(&headers("push"), &v).unwrap_err().to_string();
        assert!(err.contains("missing field `ref`"), "{err}");
        let no_event = TestHeaders::with(&[("X-GitHub-Delivery", "x")]);
        assert_eq!(
            parse(&no_event, &Verified::assume(PUSH, None)).unwrap_err(),
            ParseError::MissingEvent("X-GitHub-Event")
        );
        let bad_sha = String::from_utf8(PUSH.to_vec())
            .unwrap()
            .replace("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "not-a-sha");
        let err = parse(
            &headers("push"),
            &Verified::assume(bad_sha.as_bytes(), None),
        );
        assert!(matches!(err, Err(ParseError::Value(_))), "{err:?}");
    }
}
