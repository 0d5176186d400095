//! GitLab: `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, or `System Hook` with an
//! `object_kind`), delivery id in `Idempotency-Key` (GitLab 17.4+) or its older headers.

use serde::Deserialize;

use super::{
    CommitFiles, Delivery, DeliveryKind, ParseError, RawPush, changed_paths, check_json,
    delivery_header, delivery_headers, event_header, from_json, single_push,
};
use crate::event::Forge;
use crate::verify::{Headers, Verified};

#[derive(Deserialize)]
struct Push {
    object_kind: String,
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    user_username: Option<String>,
    project: Project,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    total_commits_count: Option<usize>,
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
}

#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
}

pub(super) fn parse(
    headers: &dyn Headers,
    verified: &Verified<'_>,
) -> Result<Delivery, ParseError> {
    let event = event_header(headers, &["X-Gitlab-Event"])?;
    let id = match verified.signed_id() {
        Some(signed) => Some(signed.clone()),
        None => delivery_header(headers, delivery_headers(Forge::Gitlab))?,
    };
    let json = verified.json()?;
    let is_push = match event.as_str() {
        "Push Hook" | "Tag Push Hook" => true,
        // System hooks carry every kind of event under one header value.
        "System Hook" => {
            let k: Kind = from_json(json, "GitLab system hook event")?;
            matches!(k.object_kind.as_deref(), Some("push" | "tag_push"))
        }
        _ => false,
    };
    if !is_push {
        check_json(json, "GitLab event")?;
        return Ok(Delivery {
            id,
            kind: DeliveryKind::Other(event),
        });
    }
    let p: Push = from_json(json, "GitLab push event")?;
    if !matches!(p.object_kind.as_str(), "push" | "tag_push") {
        return Ok(Delivery {
            id,
            kind: DeliveryKind::Other(event),
        });
    }
    single_push(
        id,
        RawPush {
            forge: Forge::Gitlab,
            repository: p.project.path_with_namespace,
            git_ref: &p.git_ref,
            before: &p.before,
            after: &p.after,
            // GitLab does not say whether a push was forced.
            forced: false,
            paths: changed_paths(&p.commits, p.total_commits_count),
            pusher: p.user_username,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangedPaths, DeliveryId, PushEvent, RefKind};
    use crate::verify::tests::TestHeaders;

    fn one(event: &str, body: &[u8]) -> PushEvent {
        let h = TestHeaders::with(&[
            ("X-Gitlab-Event", event),
            ("Idempotency-Key", "f6b7a3c4-1111-4a8e-9b1e-0c2d3e4f5a6b"),
        ]);
        match parse(&h, &Verified::assume(body, None)).unwrap().kind {
            DeliveryKind::Push(mut e) if e.len() == 1 => e.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn documented_push_and_tag_push() {
        let p = one(
            "Push Hook",
            include_bytes!("../../tests/fixtures/gitlab/push.json"),
        );
        assert_eq!(p.repository, "acme/website");
        assert_eq!(p.git_ref.kind(), RefKind::Branch("main"));
        assert_eq!(p.after.as_str(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert_eq!(p.pusher.as_deref(), Some("jsmith"));
        assert_eq!(
            p.delivery.as_ref().map(DeliveryId::as_str),
            Some("f6b7a3c4-1111-4a8e-9b1e-0c2d3e4f5a6b")
        );
        assert!(matches!(&p.paths, ChangedPaths::Known(v) if v.len() == 4));
        let t = one(
            "Tag Push Hook",
            include_bytes!("../../tests/fixtures/gitlab/tag-push.json"),
        );
        assert_eq!(t.git_ref.kind(), RefKind::Tag("v1.2.0"));
        assert!(t.created());
        assert_eq!(t.paths, ChangedPaths::Unknown);
    }

    #[test]
    fn truncated_commit_list_means_unknown_paths() {
        let p = one(
            "Push Hook",
            include_bytes!("../../tests/fixtures/gitlab/push-truncated.json"),
        );
        assert_eq!(p.paths, ChangedPaths::Unknown);
    }

    #[test]
    fn system_hook_push_and_other_events() {
        let body = include_bytes!("../../tests/fixtures/gitlab/push.json");
        let p = one("System Hook", body);
        assert_eq!(p.git_ref.kind(), RefKind::Branch("main"));
        let h = TestHeaders::with(&[("X-Gitlab-Event", "Merge Request Hook")]);
        let d = parse(
            &h,
            &Verified::assume(br#"{"object_kind":"merge_request"}"#, None),
        );
        assert_eq!(
            d.unwrap().kind,
            DeliveryKind::Other("Merge Request Hook".into())
        );
        let h = TestHeaders::with(&[("X-Gitlab-Event", "System Hook")]);
        let d = parse(
            &h,
            &Verified::assume(br#"{"object_kind":"user_create"}"#, None),
        );
        assert_eq!(d.unwrap().kind, DeliveryKind::Other("System Hook".into()));
    }

    #[test]
    fn signed_webhook_id_is_the_delivery_id() {
        let h = TestHeaders::with(&[
            ("X-Gitlab-Event", "Push Hook"),
            ("Idempotency-Key", "unsigned-copy"),
        ]);
        let signed = DeliveryId::parse("signed-id").unwrap();
        let body = include_bytes!("../../tests/fixtures/gitlab/push.json");
        let d = parse(&h, &Verified::assume(body, Some(signed.clone()))).unwrap();
        assert_eq!(d.id, Some(signed));
    }
}
