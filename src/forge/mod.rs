//! Turns a verified delivery from one forge into a normalized [`Delivery`]: its id, and
//! whether it is a ping, one or more [`PushEvent`]s, or some other event we ignore.
//! Pure: no I/O, no actix. One submodule per payload dialect.

mod bitbucket;
mod generic;
mod gitea;
mod github;
mod gitlab;

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::event::{ChangedPaths, DeliveryId, Forge, InvalidValue, PushEvent, RefName, Sha};
use crate::verify::{ContentError, Headers, Verified};

/// What one delivery asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The forge's id for this delivery, used to refuse replays.
    pub id: Option<DeliveryId>,
    pub kind: DeliveryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The forge testing the hook (GitHub `ping`, Bitbucket `diagnostics:ping`).
    Ping,
    /// Ref updates; Bitbucket may send several in one delivery.
    Push(Vec<PushEvent>),
    /// Any other event, by the name the forge gave it (already made safe to print).
    Other(String),
}

/// Why a verified body is not a delivery we can read. Answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing {0} header: cannot tell which event this is")]
    MissingEvent(&'static str),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("body is not a valid {what}: {detail}")]
    Json { what: &'static str, detail: String },
    #[error("{0}")]
    Value(#[from] InvalidValue),
    #[error("{header} header: {error}")]
    DeliveryHeader {
        header: &'static str,
        error: InvalidValue,
    },
    #[error(
        "the delivery updates {count} refs, more than the {max} one delivery may: push fewer refs at once"
    )]
    TooManyPushes { count: usize, max: usize },
}

/// The most ref updates one delivery may carry (Bitbucket sends every changed ref of a
/// push in one delivery): each becomes a job, and one signed body must not queue
/// thousands.
pub const MAX_PUSHES: usize = 100;

/// Reads the delivery in the dialect of `forge` (which comes from the hook's config).
pub fn parse(
    forge: Forge,
    headers: &dyn Headers,
    verified: &Verified<'_>,
) -> Result<Delivery, ParseError> {
    let delivery = match forge {
        Forge::Github => github::parse(headers, verified),
        Forge::Gitlab => gitlab::parse(headers, verified),
        Forge::Gitea | Forge::Forgejo | Forge::Gogs => gitea::parse(forge, headers, verified),
        Forge::Bitbucket => bitbucket::parse(headers, verified),
        Forge::Generic => generic::parse(verified),
    }?;
    if let DeliveryKind::Push(events) = &delivery.kind
        && events.len() > MAX_PUSHES
    {
        return Err(ParseError::TooManyPushes {
            count: events.len(),
            max: MAX_PUSHES,
        });
    }
    Ok(delivery)
}

/// The headers a forge puts its delivery id in, in order of preference.
fn delivery_headers(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::Github => &["X-GitHub-Delivery"],
        Forge::Gitlab => &["Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID"],
        Forge::Gitea => &["X-Gitea-Delivery"],
        Forge::Forgejo => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
        Forge::Gogs => &["X-Gogs-Delivery"],
        Forge::Bitbucket => &["X-Request-UUID", "X-Request-Id"],
        Forge::Generic => &["webhook-id"],
    }
}

/// The delivery id a request claims to have, for log lines about requests refused before
/// they could be read. Not verified, but printable ASCII (or `None`), so safe to log.
pub fn claimed_delivery_id(forge: Forge, headers: &dyn Headers) -> Option<DeliveryId> {
    delivery_header(headers, delivery_headers(forge))
        .ok()
        .flatten()
}

/// The event name from the first of `names` present, reduced to characters that are
/// safe to print.
fn event_header(headers: &dyn Headers, names: &[&'static str]) -> Result<String, ParseError> {
    let raw = names
        .iter()
        .find_map(|n| headers.get(n).filter(|v| !v.is_empty()))
        .ok_or(ParseError::MissingEvent(names[0]))?;
    Ok(raw
        .iter()
        .take(64)
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b" :_.-".contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect())
}

/// The delivery id from the first of `names` present.
fn delivery_header(
    headers: &dyn Headers,
    names: &[&'static str],
) -> Result<Option<DeliveryId>, ParseError> {
    for &header in names {
        if let Some(raw) = headers.get(header) {
            let text = String::from_utf8_lossy(raw);
            return DeliveryId::parse(text.trim())
                .map(Some)
                .map_err(|error| ParseError::DeliveryHeader { header, error });
        }
    }
    Ok(None)
}

fn from_json<'de, T: Deserialize<'de>>(
    json: &'de [u8],
    what: &'static str,
) -> Result<T, ParseError> {
    serde_json::from_slice(json).map_err(|e| {
        let mut detail = e.to_string();
        if detail.len() > 200 {
            let mut end = 200;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
            detail.push('…');
        }
        ParseError::Json { what, detail }
    })
}

/// Checks that a body we do not otherwise read is well-formed JSON.
fn check_json(json: &[u8], what: &'static str) -> Result<(), ParseError> {
    from_json::<serde::de::IgnoredAny>(json, what).map(|_| ())
}

/// The per-commit file lists GitHub, GitLab, Gitea and Gogs send.
#[derive(Deserialize, Default)]
struct CommitFiles {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
}

/// The union of the files of `commits`, or `Unknown` when the list cannot be trusted
/// to be complete: no commits listed (a tag, a new branch, a rewind) or fewer listed
/// than the forge says were pushed.
fn changed_paths(commits: &[CommitFiles], total: Option<usize>) -> ChangedPaths {
    if commits.is_empty() || total.is_some_and(|t| t > commits.len()) {
        return ChangedPaths::Unknown;
    }
    let set: BTreeSet<&String> = commits
        .iter()
        .flat_map(|c| c.added.iter().chain(&c.removed).chain(&c.modified))
        .collect();
    ChangedPaths::Known(set.into_iter().cloned().collect())
}

/// A delivery of exactly one push, as every forge but Bitbucket sends.
fn single_push(id: Option<DeliveryId>, raw: RawPush<'_>) -> Result<Delivery, ParseError> {
    let event = raw.validate(id.clone())?;
    Ok(Delivery {
        id,
        kind: DeliveryKind::Push(vec![event]),
    })
}

/// The fields of a push as the payload spells them, before validation.
struct RawPush<'a> {
    forge: Forge,
    repository: String,
    git_ref: &'a str,
    before: &'a str,
    after: &'a str,
    forced: bool,
    paths: ChangedPaths,
    pusher: Option<String>,
}

impl RawPush<'_> {
    fn validate(self, delivery: Option<DeliveryId>) -> Result<PushEvent, InvalidValue> {
        Ok(PushEvent {
            forge: self.forge,
            repository: self.repository,
            git_ref: RefName::parse(self.git_ref)?,
            before: Sha::parse(self.before)?,
            after: Sha::parse(self.after)?,
            forced: self.forced,
            paths: self.paths,
            // The pusher ends up in DEPLOYHOOK_PUSHER and in logs: no control characters
            // (a NUL could not even be put in an environment variable).
            pusher: self.pusher.filter(|p| !p.is_empty()).map(|p| {
                p.chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect()
            }),
            delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::TestHeaders;

    /// One signed Bitbucket Data Center body with thousands of changed refs must not queue
    /// thousands of jobs: past `MAX_PUSHES` the delivery is refused whole.
    #[test]
    fn a_delivery_may_update_at_most_max_pushes_refs() {
        let body = |n: usize| {
            let changes: Vec<serde_json::Value> = (0..n)
                .map(|i| {
                    serde_json::json!({
                        "refId": format!("refs/heads/b{i}"),
                        "fromHash": "0".repeat(40),
                        "toHash": "1".repeat(40),
                    })
                })
                .collect();
            serde_json::json!({
                "repository": {"slug": "app", "project": {"key": "ACME"}},
                "changes": changes,
            })
            .to_string()
        };
        let h = TestHeaders::with(&[
            ("X-Event-Key", "repo:refs_changed"),
            ("X-Request-Id", "r1"),
            ("Content-Type", "application/json"),
        ]);
        let ok = body(MAX_PUSHES);
        let d = parse(Forge::Bitbucket, &h, &Verified::assume(ok.as_bytes(), None)).unwrap();
        assert!(matches!(d.kind, DeliveryKind::Push(e) if e.len() == MAX_PUSHES));
        let big = body(MAX_PUSHES + 1);
        let err = parse(
            Forge::Bitbucket,
            &h,
            &Verified::assume(big.as_bytes(), None),
        );
        assert!(
            matches!(
                err,
                Err(ParseError::TooManyPushes {
                    count: 101,
                    max: 100
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn pushers_lose_their_control_characters() {
        let raw = RawPush {
            forge: Forge::Generic,
            repository: "a/b".into(),
            git_ref: "refs/heads/main",
            before: "0000000000000000000000000000000000000000",
            after: "1111111111111111111111111111111111111111",
            forced: false,
            paths: ChangedPaths::Unknown,
            pusher: Some("eve\0\u{1b}[2J".into()),
        };
        assert_eq!(
            raw.validate(None).unwrap().pusher.as_deref(),
            Some("eve??[2J")
        );
    }

    #[test]
    fn event_names_are_made_printable() {
        let h = TestHeaders::with(&[("X-Event", "push\u{1b}[31m")]);
        assert_eq!(event_header(&h, &["X-Event"]).unwrap(), "push??31m");
        assert_eq!(
            event_header(&TestHeaders::default(), &["X-Event"]).unwrap_err(),
            ParseError::MissingEvent("X-Event")
        );
    }

    #[test]
    fn paths_are_unknown_when_the_list_is_empty_or_truncated() {
        let c = |a: &str| CommitFiles {
            added: vec![a.to_owned()],
            ..CommitFiles::default()
        };
        assert_eq!(changed_paths(&[], None), ChangedPaths::Unknown);
        assert_eq!(changed_paths(&[c("a")], Some(2)), ChangedPaths::Unknown);
        assert_eq!(
            changed_paths(&[c("b"), c("a"), c("b")], Some(3)),
            ChangedPaths::Known(vec!["a".into(), "b".into()])
        );
    }
}
