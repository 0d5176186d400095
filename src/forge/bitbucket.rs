//! Bitbucket Cloud (`X-Event-Key: repo:push`, `X-Request-UUID`) and Bitbucket Data Center
//! (`repo:refs_changed`, `X-Request-Id`, `diagnostics:ping`). One delivery may update
//! several refs, so it can yield several push events. Neither lists changed files.

use serde::Deserialize;

use super::{
    Delivery, DeliveryKind, ParseError, RawPush, check_json, delivery_header, delivery_headers,
    event_header, from_json,
};
use crate::event::{ChangedPaths, DeliveryId, Forge, PushEvent, RefName};
use crate::verify::{Headers, Verified};

const ZERO: &str = "0000000000000000000000000000000000000000";

#[derive(Deserialize)]
struct CloudPush {
    repository: CloudRepository,
    actor: Option<CloudActor>,
    push: CloudChanges,
}

#[derive(Deserialize)]
struct CloudRepository {
    full_name: String,
}

#[derive(Deserialize)]
struct CloudActor {
    nickname: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct CloudChanges {
    changes: Vec<CloudChange>,
}

#[derive(Deserialize)]
struct CloudChange {
    old: Option<CloudRefState>,
    new: Option<CloudRefState>,
    #[serde(default)]
    forced: bool,
}

#[derive(Deserialize)]
struct CloudRefState {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: CloudTarget,
}

#[derive(Deserialize)]
struct CloudTarget {
    hash: String,
}

#[derive(Deserialize)]
struct ServerPush {
    repository: ServerRepository,
    actor: Option<ServerActor>,
    changes: Vec<ServerChange>,
}

#[derive(Deserialize)]
struct ServerRepository {
    slug: String,
    project: ServerProject,
}

#[derive(Deserialize)]
struct ServerProject {
    key: String,
}

#[derive(Deserialize)]
struct ServerActor {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerChange {
    ref_id: String,
    from_hash: String,
    to_hash: String,
}

pub(super) fn parse(
    headers: &dyn Headers,
    verified: &Verified<'_>,
) -> Result<Delivery, ParseError> {
    let event = event_header(headers, &["X-Event-Key"])?;
    let id = delivery_header(headers, delivery_headers(Forge::Bitbucket))?;
    let json = verified.json()?;
    let kind = match event.as_str() {
        "repo:push" => DeliveryKind::Push(cloud(from_json(json, "Bitbucket push")?, id.as_ref())?),
        "repo:refs_changed" => DeliveryKind::Push(server(
            from_json(json, "Bitbucket Data Center refs_changed event")?,
            id.as_ref(),
        )?),
        "diagnostics:ping" => {
            check_json(json, "Bitbucket ping")?;
            DeliveryKind::Ping
        }
        _ => {
            check_json(json, "Bitbucket event")?;
            DeliveryKind::Other(event)
        }
    };
    Ok(Delivery { id, kind })
}

fn cloud(p: CloudPush, id: Option<&DeliveryId>) -> Result<Vec<PushEvent>, ParseError> {
    let pusher = p.actor.and_then(|a| a.nickname.or(a.display_name));
    let mut events = Vec::new();
    for change in p.push.changes {
        // The ref is named by its new state, or by its old one when it was deleted.
        let Some(state) = change.new.as_ref().or(change.old.as_ref()) else {
            continue;
        };
        let git_ref = match state.kind.as_str() {
            "branch" => RefName::branch(&state.name)?,
            "tag" | "annotated_tag" => RefName::tag(&state.name)?,
            _ => continue,
        };
        events.push(
            RawPush {
                forge: Forge::Bitbucket,
                repository: p.repository.full_name.clone(),
                git_ref: git_ref.as_str(),
                before: target_hash(change.old.as_ref()),
                after: target_hash(change.new.as_ref()),
                forced: change.forced,
                paths: ChangedPaths::Unknown,
                pusher: pusher.clone(),
            }
            .validate(id.cloned())?,
        );
    }
    Ok(events)
}

/// The commit a ref state points at; a missing state (created or deleted ref) is zero.
fn target_hash(state: Option<&CloudRefState>) -> &str {
    state.map_or(ZERO, |s| s.target.hash.as_str())
}

fn server(p: ServerPush, id: Option<&DeliveryId>) -> Result<Vec<PushEvent>, ParseError> {
    let repository = format!("{}/{}", p.repository.project.key, p.repository.slug);
    let pusher = p.actor.and_then(|a| a.name);
    p.changes
        .iter()
        .map(|c| {
            RawPush {
                forge: Forge::Bitbucket,
                repository: repository.clone(),
                git_ref: &c.ref_id,
                before: &c.from_hash,
                after: &c.to_hash,
                forced: false,
                paths: ChangedPaths::Unknown,
                pusher: pusher.clone(),
            }
            .validate(id.cloned())
            .map_err(ParseError::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RefKind;
    use crate::verify::tests::TestHeaders;

    fn events(key: &str, id_header: &str, body: &[u8]) -> Vec<PushEvent> {
        let h = TestHeaders::with(&[("X-Event-Key", key), (id_header, "req-1")]);
        let d = parse(&h, &Verified::assume(body, None)).unwrap();
        assert_eq!(d.id.unwrap().as_str(), "req-1");
        match d.kind {
            DeliveryKind::Push(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cloud_push() {
        let e = events(
            "repo:push",
            "X-Request-UUID",
            include_bytes!("../../tests/fixtures/bitbucket/repo-push.json"),
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].repository, "acme/website");
        assert_eq!(e[0].git_ref.kind(), RefKind::Branch("main"));
        assert_eq!(
            e[0].before.as_str(),
            "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
        );
        assert_eq!(
            e[0].after.as_str(),
            "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
        );
        assert_eq!(e[0].paths, ChangedPaths::Unknown);
        assert_eq!(e[0].pusher.as_deref(), Some("emma"));
    }

    #[test]
    fn cloud_push_of_two_refs_gives_two_events() {
        let e = events(
            "repo:push",
            "X-Request-UUID",
            include_bytes!("../../tests/fixtures/bitbucket/repo-push-two-refs.json"),
        );
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].git_ref.kind(), RefKind::Tag("v1.2.0"));
        assert!(e[1].created());
    }

    #[test]
    fn data_center_refs_changed_and_ping() {
        let e = events(
            "repo:refs_changed",
            "X-Request-Id",
            include_bytes!("../../tests/fixtures/bitbucket-server/refs-changed.json"),
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].repository, "ACME/website");
        assert_eq!(e[0].pusher.as_deref(), Some("jdoe"));
        assert_eq!(
            e[0].after.as_str(),
            "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
        );
        let h = TestHeaders::with(&[("X-Event-Key", "diagnostics:ping")]);
        let ping = include_bytes!("../../tests/fixtures/bitbucket-server/diagnostics-ping.json");
        assert_eq!(
            parse(&h, &Verified::assume(ping, None)).unwrap().kind,
            DeliveryKind::Ping
        );
    }
}
