//! deployhook's own push format, for senders that are not a forge (a CI job, a script):
//!
//! ```json
//! {"repository": "org/app", "ref": "refs/heads/main", "before": "<sha>", "after": "<sha>",
//!  "paths": ["optional", "changed/files"], "pusher": "optional name"}
//! ```
//!
//! It is always a push; its delivery id is the signed `webhook-id`.

use serde::Deserialize;

use super::{Delivery, ParseError, RawPush, from_json, single_push};
use crate::event::{ChangedPaths, Forge};
use crate::verify::Verified;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    repository: String,
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    paths: Option<Vec<String>>,
    pusher: Option<String>,
}

pub(super) fn parse(verified: &Verified<'_>) -> Result<Delivery, ParseError> {
    let p: Push = from_json(
        verified.json()?,
        "generic push (see README: generic push format)",
    )?;
    let id = verified.signed_id().cloned();
    single_push(
        id,
        RawPush {
            forge: Forge::Generic,
            repository: p.repository,
            git_ref: &p.git_ref,
            before: &p.before,
            after: &p.after,
            forced: false,
            paths: p.paths.map_or(ChangedPaths::Unknown, ChangedPaths::Known),
            pusher: p.pusher,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeliveryId, RefKind};
    use crate::forge::DeliveryKind;

    #[test]
    fn documented_generic_push() {
        let body = include_bytes!("../../tests/fixtures/generic/push.json");
        let id = DeliveryId::parse("msg_1").unwrap();
        let d = parse(&Verified::assume(body, Some(id.clone()))).unwrap();
        assert_eq!(d.id, Some(id));
        let DeliveryKind::Push(e) = d.kind else {
            panic!()
        };
        assert_eq!(e[0].git_ref.kind(), RefKind::Branch("main"));
        assert_eq!(
            e[0].paths,
            ChangedPaths::Known(vec!["site/index.html".into(), "README.md".into()])
        );
        assert_eq!(e[0].pusher.as_deref(), Some("ci-bot"));
    }

    #[test]
    fn typos_and_missing_fields_are_named() {
        let body = br#"{"repository":"a/b","ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","path":[]}"#;
        let err = parse(&Verified::assume(body, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `path`"), "{err}");
        let err = parse(&Verified::assume(br#"{"repository":"a/b"}"#, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `ref`"), "{err}");
    }
}
