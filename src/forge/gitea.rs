//! Gitea, Forgejo and Gogs, which share one push payload (Forgejo is a Gitea fork, Gitea
//! a Gogs fork) and differ in their header names.

use serde::Deserialize;

use super::{
    CommitFiles, Delivery, DeliveryKind, ParseError, RawPush, changed_paths, check_json,
    delivery_header, delivery_headers, event_header, from_json, single_push,
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
    pusher: Option<User>,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    total_commits: Option<usize>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
    username: Option<String>,
}

/// Event headers, in order of preference. Forgejo also sends Gitea's.
fn event_names(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::Forgejo => &["X-Forgejo-Event", "X-Gitea-Event"],
        Forge::Gogs => &["X-Gogs-Event"],
        _ => &["X-Gitea-Event"],
    }
}

pub(super) fn parse(
    forge: Forge,
    headers: &dyn Headers,
    verified: &Verified<'_>,
) -> Result<Delivery, ParseError> {
    let event = event_header(headers, event_names(forge))?;
    let id = delivery_header(headers, delivery_headers(forge))?;
    let json = verified.json()?;
    if event != "push" {
        check_json(json, "event")?;
        return Ok(Delivery {
            id,
            kind: DeliveryKind::Other(event),
        });
    }
    let p: Push = from_json(json, "push event")?;
    single_push(
        id,
        RawPush {
            forge,
            repository: p.repository.full_name,
            git_ref: &p.git_ref,
            before: &p.before,
            after: &p.after,
            forced: false,
            paths: changed_paths(&p.commits, p.total_commits),
            pusher: p.pusher.and_then(|u| u.login.or(u.username)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangedPaths, PushEvent, RefKind};
    use crate::verify::tests::TestHeaders;

    fn one(forge: Forge, h: &[(&str, &str)], body: &[u8]) -> PushEvent {
        let d = parse(forge, &TestHeaders::with(h), &Verified::assume(body, None)).unwrap();
        assert_eq!(d.id.as_ref().unwrap().as_str(), "d-1");
        match d.kind {
            DeliveryKind::Push(mut e) if e.len() == 1 => e.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gitea_forgejo_and_gogs_pushes() {
        let g = one(
            Forge::Gitea,
            &[("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "d-1")],
            include_bytes!("../../tests/fixtures/gitea/push.json"),
        );
        assert_eq!(
            (g.forge, g.repository.as_str()),
            (Forge::Gitea, "acme/website")
        );
        assert_eq!(g.pusher.as_deref(), Some("gitea-user"));
        assert!(matches!(&g.paths, ChangedPaths::Known(v) if v.len() == 4));

        // Forgejo also sends Gitea's headers; its own win.
        let f = one(
            Forge::Forgejo,
            &[
                ("X-Forgejo-Event", "push"),
                ("X-Gitea-Event", "push"),
                ("X-Forgejo-Delivery", "d-1"),
                ("X-Gitea-Delivery", "d-2"),
            ],
            include_bytes!("../../tests/fixtures/forgejo/push.json"),
        );
        assert_eq!(f.git_ref.kind(), RefKind::Branch("release/1.0"));
        assert_eq!(f.pusher.as_deref(), Some("forgejo-user"));

        let s = one(
            Forge::Gogs,
            &[("X-Gogs-Event", "push"), ("X-Gogs-Delivery", "d-1")],
            include_bytes!("../../tests/fixtures/gogs/push.json"),
        );
        assert_eq!(s.pusher.as_deref(), Some("gogs-user"));
        assert_eq!(s.after.as_str(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    }

    #[test]
    fn gogs_hook_does_not_read_gitea_headers() {
        let h = TestHeaders::with(&[("X-Gitea-Event", "push")]);
        let body = include_bytes!("../../tests/fixtures/gogs/push.json");
        assert_eq!(
            parse(Forge::Gogs, &h, &Verified::assume(body, None)).unwrap_err(),
            ParseError::MissingEvent("X-Gogs-Event")
        );
    }
}
