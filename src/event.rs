//! The normalized push event that every forge's payload becomes, and the validated
//! newtypes it is built from. Rule matching and job creation only ever see these types.

use std::fmt;

/// The kind of sender a hook is bound to. Always taken from the config, never guessed
/// from request headers (Gitea and Forgejo also send GitHub's headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forge {
    Github,
    Gitlab,
    Gitea,
    Forgejo,
    Gogs,
    Bitbucket,
    /// Any other sender (a CI job, a script): deployhook's own push JSON, signed per
    /// Standard Webhooks.
    Generic,
}

impl Forge {
    pub const ALL: [Forge; 7] = [
        Forge::Github,
        Forge::Gitlab,
        Forge::Gitea,
        Forge::Forgejo,
        Forge::Gogs,
        Forge::Bitbucket,
        Forge::Generic,
    ];

    /// The name used in hooks.toml, in responses and in job records.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::Github => "github",
            Forge::Gitlab => "gitlab",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::Gogs => "gogs",
            Forge::Bitbucket => "bitbucket",
            Forge::Generic => "generic",
        }
    }

    pub fn from_name(name: &str) -> Option<Forge> {
        Forge::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value from a payload or header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("commit id {0:?} is not 40 or 64 hexadecimal digits")]
    Sha(String),
    #[error("ref {0:?} is not a valid git ref name")]
    Ref(String),
    #[error("delivery id {0:?} must be 1 to 128 printable ASCII characters without spaces")]
    Delivery(String),
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sha(String);

impl Sha {
    pub fn parse(s: &str) -> Result<Sha, InvalidValue> {
        let ok = matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(Sha(s.to_ascii_lowercase()))
        } else {
            Err(InvalidValue::Sha(truncate_for_message(s)))
        }
    }

    /// The all-zero id forges send as `before` of a created ref or `after` of a deleted one.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full git ref name (`refs/heads/main`), checked against git's ref-name rules so
/// that it is safe to log, to put in an environment variable and to hand to git.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefName(String);

/// What a ref points at, by its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Other,
}

impl RefName {
    pub fn parse(s: &str) -> Result<RefName, InvalidValue> {
        if s.starts_with("refs/") && s.len() <= 1024 && is_valid_ref_path(&s["refs/".len()..]) {
            Ok(RefName(s.to_owned()))
        } else {
            Err(InvalidValue::Ref(truncate_for_message(s)))
        }
    }

    /// A branch, as Bitbucket Cloud names it (without `refs/heads/`).
    pub fn branch(name: &str) -> Result<RefName, InvalidValue> {
        RefName::parse(&format!("refs/heads/{name}"))
    }

    /// A tag, as Bitbucket Cloud names it (without `refs/tags/`).
    pub fn tag(name: &str) -> Result<RefName, InvalidValue> {
        RefName::parse(&format!("refs/tags/{name}"))
    }

    pub fn kind(&self) -> RefKind<'_> {
        if let Some(b) = self.0.strip_prefix("refs/heads/") {
            RefKind::Branch(b)
        } else if let Some(t) = self.0.strip_prefix("refs/tags/") {
            RefKind::Tag(t)
        } else {
            RefKind::Other
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// git check-ref-format's rules for the part after `refs/`: no empty or dot-leading
/// components, no `..`, `@{`, control characters, space or any of `~^:?*[\`, and no
/// `.lock` / `.` / `/` at the end.
pub fn is_valid_ref_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains("..")
        && !path.contains("@{")
        && path != "@"
        && !path.as_bytes().ends_with(b".lock")
        && !path.ends_with('.')
        && path
            .bytes()
            .all(|b| b > 0x20 && b != 0x7f && !b"~^:?*[\\".contains(&b))
        && path
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.'))
}

/// A forge's id for one delivery (GitHub's `X-GitHub-Delivery`, Standard Webhooks'
/// `webhook-id`, ...). Printable ASCII only, so it can be logged and stored as is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryId(String);

impl DeliveryId {
    pub fn parse(s: &str) -> Result<DeliveryId, InvalidValue> {
        let ok = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(DeliveryId(s.to_owned()))
        } else {
            Err(InvalidValue::Delivery(truncate_for_message(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The files a push changed, when the forge tells us all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangedPaths {
    Known(Vec<String>),
    /// The forge sent no file list (Bitbucket, tag pushes) or a truncated one
    /// (GitLab lists at most 20 commits). A rule's `paths` filter then matches, since
    /// skipping a deploy that was needed is worse than running one that was not.
    Unknown,
}

/// One ref update, whatever forge it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    pub forge: Forge,
    /// `owner/name` as the payload names it (full_name, path_with_namespace, ...).
    pub repository: String,
    pub git_ref: RefName,
    pub before: Sha,
    pub after: Sha,
    /// Whether the forge said the push rewrote history (`false` when it does not say).
    pub forced: bool,
    pub paths: ChangedPaths,
    pub pusher: Option<String>,
    pub delivery: Option<DeliveryId>,
}

impl PushEvent {
    pub fn created(&self) -> bool {
        self.before.is_zero()
    }

    pub fn deleted(&self) -> bool {
        self.after.is_zero()
    }
}

/// Error messages quote what they refused; keep hostile input from making them huge.
fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_accepts_sha1_and_sha256_and_lowercases() {
        let s = Sha::parse("0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C").unwrap();
        assert_eq!(s.as_str(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
        assert!(Sha::parse(&"a".repeat(64)).is_ok());
        assert!(Sha::parse(&"a".repeat(39)).is_err());
        assert!(Sha::parse(&"g".repeat(40)).is_err());
        assert!(Sha::parse(&"0".repeat(40)).unwrap().is_zero());
    }

    #[test]
    fn ref_names_follow_git_rules() {
        for good in [
            "refs/heads/main",
            "refs/heads/release/1.0",
            "refs/tags/v1.2.0",
        ] {
            assert!(RefName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "main",
            "refs/heads/",
            "refs/heads/a..b",
            "refs/heads/a b",
            "refs/heads/a\nb",
            "refs/heads/x.lock",
            "refs/heads/.hidden",
            "refs/heads/a//b",
            "refs/heads/a@{1}",
            "refs/heads/$(rm -rf /)",
        ] {
            assert!(RefName::parse(bad).is_err(), "{bad:?}");
        }
        let r = RefName::parse("refs/tags/v1").unwrap();
        assert_eq!(r.kind(), RefKind::Tag("v1"));
        assert_eq!(
            RefName::parse("refs/heads/feat/x").unwrap().kind(),
            RefKind::Branch("feat/x")
        );
        assert_eq!(
            RefName::parse("refs/notes/x").unwrap().kind(),
            RefKind::Other
        );
    }

    #[test]
    fn delivery_ids_are_printable_ascii() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_ok());
        assert!(DeliveryId::parse("{a-b}").is_ok());
        assert!(DeliveryId::parse("").is_err());
        assert!(DeliveryId::parse("a b").is_err());
        assert!(DeliveryId::parse("a\x1b[31m").is_err());
        assert!(DeliveryId::parse(&"x".repeat(129)).is_err());
        let long = "é".repeat(100);
        let err = DeliveryId::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }
}
