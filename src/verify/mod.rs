//! Proves that a delivery comes from the forge a hook is bound to, exactly as that forge
//! signs it, before anything else of the body is read. Pure: no I/O, no actix.
//!
//! Every comparison of a signature or token is constant-time (`Mac::verify_slice`, or
//! `subtle` on digests), and no error says anything about the expected value.

mod content;
mod standard_webhooks;

use std::borrow::Cow;
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use content::{ContentError, Encoding};
pub use standard_webhooks::{TOLERANCE_SECS, decode_whsec};

use crate::event::DeliveryId;
use crate::secret::Secret;

/// Read access to request headers, so that this module and `forge` need not know actix.
pub trait Headers {
    /// The raw value of the first header with this (case-insensitive) name.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

/// Name/value pairs in order, as `deployhook sign` makes them and as tests and the fuzz
/// targets hand them in: the first pair with the name (ignoring case) wins.
impl<K: AsRef<str>, V: AsRef<[u8]>> Headers for Vec<(K, V)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// How a hook's deliveries are authenticated; built by `config` from the hook's forge and
/// secrets. Several secrets may be listed so that one can be rotated without downtime:
/// a delivery is authentic when any one of them matches.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `X-Hub-Signature-256: sha256=<hex>` over the raw body (also when form-encoded).
    /// The sha1 `X-Hub-Signature` is accepted only when `legacy_sha1` is set.
    Github {
        secrets: Vec<Secret>,
        legacy_sha1: bool,
    },
    /// A bare hex HMAC-SHA256 of the JSON payload, in the first of `headers` present
    /// (Forgejo sends both `X-Forgejo-Signature` and `X-Gitea-Signature`).
    Gitea {
        secrets: Vec<Secret>,
        headers: &'static [&'static str],
    },
    /// Bitbucket Cloud and Data Center: `X-Hub-Signature: sha256=<hex>` over the body.
    Bitbucket { secrets: Vec<Secret> },
    /// GitLab's shared secret token, sent as is in `X-Gitlab-Token`.
    GitlabToken { tokens: Vec<Secret> },
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), used
    /// by `generic` hooks and by GitLab's signing tokens. Keys are the decoded `whsec_`
    /// bytes.
    StandardWebhooks { keys: Vec<Secret> },
}

impl Auth {
    /// The secrets as they are written in their files, for masking in job logs (a
    /// Standard Webhooks key as `whsec_<base64>` and as its base64 alone).
    pub fn secret_texts(&self) -> Vec<Vec<u8>> {
        use base64::Engine as _;
        match self {
            Auth::Github { secrets, .. }
            | Auth::Gitea { secrets, .. }
            | Auth::Bitbucket { secrets } => secrets.iter().map(|s| s.expose().to_vec()).collect(),
            Auth::GitlabToken { tokens } => tokens.iter().map(|s| s.expose().to_vec()).collect(),
            Auth::StandardWebhooks { keys } => keys
                .iter()
                .flat_map(|k| {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(k.expose());
                    [format!("whsec_{b64}").into_bytes(), b64.into_bytes()]
                })
                .collect(),
        }
    }
}

/// The body of a delivery whose signature checked out. Only `verify` can make one, so a
/// payload parser (and through it a job) can only ever see authenticated bytes.
#[derive(Debug)]
pub struct Verified<'a> {
    json: Result<Cow<'a, [u8]>, ContentError>,
    signed_id: Option<DeliveryId>,
    /// The bytes the signature covers: the raw body, or for Gitea-family forms the JSON
    /// document inside it (the same signed document can come in either encoding).
    signed: Cow<'a, [u8]>,
}

impl Verified<'_> {
    /// The JSON document of the delivery (taken out of `payload=` when form-encoded), or
    /// why the body is not one we can read.
    pub fn json(&self) -> Result<&[u8], ContentError> {
        match &self.json {
            Ok(json) => Ok(json),
            Err(e) => Err(e.clone()),
        }
    }

    /// The bytes the signature (or token) vouches for; what a replay check must compare.
    pub fn signed(&self) -> &[u8] {
        &self.signed
    }

    /// The delivery id when the signature covers it (Standard Webhooks' `webhook-id`).
    /// Other forges' delivery ids travel in unsigned headers.
    pub fn signed_id(&self) -> Option<&DeliveryId> {
        self.signed_id.as_ref()
    }
}

impl<'a> Verified<'a> {
    /// A JSON body an operator hands to `deployhook explain` (from the forge's delivery
    /// page), read as if verified: explain only routes it, and nothing is deployed or
    /// recorded from it. The delivery path never calls this.
    pub fn for_explain(json: &'a [u8]) -> Verified<'a> {
        Verified {
            json: Ok(Cow::Borrowed(json)),
            signed_id: None,
            signed: Cow::Borrowed(json),
        }
    }
}

#[cfg(test)]
impl<'a> Verified<'a> {
    /// A JSON body taken as verified, for unit tests of the payload parsers.
    pub(crate) fn assume(json: &'a [u8], signed_id: Option<DeliveryId>) -> Verified<'a> {
        Verified {
            json: Ok(Cow::Borrowed(json)),
            signed_id,
            signed: Cow::Borrowed(json),
        }
    }
}

/// Why a delivery is not authentic. Every variant is answered 401 and names what the
/// sender must fix, never the value that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing {0} header: the delivery is not signed; set the hook's secret in the forge")]
    MissingHeader(&'static str),
    #[error("{header} header is malformed: expected {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error(
        "signature does not match: the secret configured in the forge differs from hooks.toml, or the body was changed in transit"
    )]
    Mismatch,
    #[error("X-Gitlab-Token does not match the hook's token")]
    TokenMismatch,
    #[error(
        "only a sha1 X-Hub-Signature was sent; this hook accepts X-Hub-Signature-256 (set legacy_sha1 = true to accept sha1)"
    )]
    Sha1NotAllowed,
    #[error(
        "webhook-timestamp is more than {TOLERANCE_SECS} seconds away from this server's clock: a replayed or delayed delivery, or a clock out of sync"
    )]
    Stale,
    #[error("form-encoded body has no payload field to check the signature of")]
    NoFormPayload,
}

/// Checks `body` against the hook's `auth`, reading only the headers its scheme defines.
pub fn verify<'a>(
    auth: &Auth,
    headers: &dyn Headers,
    body: &'a [u8],
    now: SystemTime,
) -> Result<Verified<'a>, Rejection> {
    let encoding = Encoding::of(headers);
    match auth {
        Auth::Github {
            secrets,
            legacy_sha1,
        } => {
            verify_github(secrets, *legacy_sha1, headers, body)?;
            Ok(unsigned_id(encoding.json_document(body), body))
        }
        Auth::Gitea {
            secrets,
            headers: names,
        } => {
            // Gitea, Forgejo and Gogs sign the JSON document itself, also when they send
            // it form-encoded, so it has to be taken out of the form first.
            let json = encoding.json_document(body);
            let signed: &[u8] = match (&encoding, &json) {
                (Encoding::Form, Ok(doc)) => doc,
                (Encoding::Form, Err(_)) => return Err(Rejection::NoFormPayload),
                _ => body,
            };
            let (name, value) = first_header(headers, names)?;
            let mac = hex_value(value).ok_or(Rejection::Malformed {
                header: name,
                expected: "64 hexadecimal digits",
            })?;
            check_hmac::<Hmac<Sha256>>(secrets, &[signed], &mac)?;
            let signed = Cow::Owned(signed.to_vec());
            Ok(Verified {
                json,
                signed_id: None,
                signed,
            })
        }
        Auth::Bitbucket { secrets } => {
            let mac = prefixed_hex(
                headers,
                "X-Hub-Signature",
                "sha256=",
                "sha256=<64 hexadecimal digits>",
            )?;
            check_hmac::<Hmac<Sha256>>(secrets, &[body], &mac)?;
            Ok(unsigned_id(encoding.json_only(body), body))
        }
        Auth::GitlabToken { tokens } => {
            let given = headers
                .get("X-Gitlab-Token")
                .filter(|v| !v.is_empty())
                .ok_or(Rejection::MissingHeader("X-Gitlab-Token"))?;
            // Comparing digests hides the token's length as well as its bytes.
            let given = Sha256::digest(given);
            let matched = tokens.iter().fold(subtle::Choice::from(0), |acc, t| {
                acc | Sha256::digest(t.expose()).ct_eq(&given)
            });
            if bool::from(matched) {
                Ok(unsigned_id(encoding.json_only(body), body))
            } else {
                Err(Rejection::TokenMismatch)
            }
        }
        Auth::StandardWebhooks { keys } => {
            let id = standard_webhooks::verify(keys, headers, body, now)?;
            Ok(Verified {
                json: encoding.json_only(body),
                signed_id: Some(id),
                signed: Cow::Borrowed(body),
            })
        }
    }
}

/// A delivery whose signature covers the raw body but not its id.
fn unsigned_id<'a>(json: Result<Cow<'a, [u8]>, ContentError>, body: &'a [u8]) -> Verified<'a> {
    Verified {
        json,
        signed_id: None,
        signed: Cow::Borrowed(body),
    }
}

fn verify_github(
    secrets: &[Secret],
    legacy_sha1: bool,
    headers: &dyn Headers,
    body: &[u8],
) -> Result<(), Rejection> {
    const SHA256: &str = "X-Hub-Signature-256";
    const SHA1: &str = "X-Hub-Signature";
    if headers.get(SHA256).is_some() {
        let mac = prefixed_hex(headers, SHA256, "sha256=", "sha256=<64 hexadecimal digits>")?;
        return check_hmac::<Hmac<Sha256>>(secrets, &[body], &mac);
    }
    if headers.get(SHA1).is_none() {
        return Err(Rejection::MissingHeader(SHA256));
    }
    if !legacy_sha1 {
        return Err(Rejection::Sha1NotAllowed);
    }
    let mac = prefixed_hex(headers, SHA1, "sha1=", "sha1=<40 hexadecimal digits>")?;
    check_hmac::<Hmac<Sha1>>(secrets, &[body], &mac)
}

/// The bytes of a `<prefix><hex>` signature header, such as `sha256=<hex>`.
fn prefixed_hex(
    headers: &dyn Headers,
    header: &'static str,
    prefix: &str,
    expected: &'static str,
) -> Result<Vec<u8>, Rejection> {
    text_header(headers, header)?
        .strip_prefix(prefix)
        .and_then(hex_value)
        .ok_or(Rejection::Malformed { header, expected })
}

/// Succeeds when the MAC of `parts` (concatenated) under any secret equals `mac`.
/// `verify_slice` compares in constant time; a wrong length fails without comparing.
pub(crate) fn check_hmac<M: Mac + hmac::digest::KeyInit>(
    secrets: &[Secret],
    parts: &[&[u8]],
    mac: &[u8],
) -> Result<(), Rejection> {
    let mut any = false;
    for secret in secrets {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(secret.expose())
            .expect("HMAC accepts keys of any length");
        for part in parts {
            m.update(part);
        }
        any |= m.verify_slice(mac).is_ok();
    }
    if any {
        Ok(())
    } else {
        Err(Rejection::Mismatch)
    }
}

/// A header that must be present and printable ASCII.
pub(crate) fn text_header<'h>(
    headers: &'h dyn Headers,
    name: &'static str,
) -> Result<&'h str, Rejection> {
    let raw = headers
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or(Rejection::MissingHeader(name))?;
    std::str::from_utf8(raw)
        .ok()
        .filter(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .map(str::trim)
        .ok_or(Rejection::Malformed {
            header: name,
            expected: "printable ASCII",
        })
}

fn first_header<'h>(
    headers: &'h dyn Headers,
    names: &'static [&'static str],
) -> Result<(&'static str, &'h str), Rejection> {
    for &name in names {
        if headers.get(name).is_some() {
            return Ok((name, text_header(headers, name)?));
        }
    }
    Err(Rejection::MissingHeader(names[0]))
}

/// Lowercase hexadecimal, as forges write digests.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Decodes hexadecimal digits of either case; `None` for anything else.
fn hex_value(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some(u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).expect("two hex digits"))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Header map for tests; names are matched case-insensitively like HTTP does.
    #[derive(Default)]
    pub(crate) struct TestHeaders(pub HashMap<String, Vec<u8>>);

    impl TestHeaders {
        pub(crate) fn with(pairs: &[(&str, &str)]) -> TestHeaders {
            TestHeaders(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
                    .collect(),
            )
        }
    }

    impl Headers for TestHeaders {
        fn get(&self, name: &str) -> Option<&[u8]> {
            self.0.get(&name.to_ascii_lowercase()).map(Vec::as_slice)
        }
    }

    fn github(legacy_sha1: bool) -> Auth {
        Auth::Github {
            secrets: vec![Secret::new("It's a Secret to Everybody")],
            legacy_sha1,
        }
    }

    // GitHub's documented test values ("Validating webhook deliveries").
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_documented_test_vector() {
        let h = TestHeaders::with(&[("X-Hub-Signature-256", GH_SIG)]);
        assert!(verify(&github(false), &h, GH_BODY, SystemTime::now()).is_ok());
        let upper = GH_SIG.replace("757107ea", "757107EA");
        let h = TestHeaders::with(&[("x-hub-signature-256", &upper)]);
        assert!(verify(&github(false), &h, GH_BODY, SystemTime::now()).is_ok());
        let h = TestHeaders::with(&[("X-Hub-Signature-256", GH_SIG)]);
        assert_eq!(
            verify(&github(false), &h, b"Hello, World?", SystemTime::now()).unwrap_err(),
            Rejection::Mismatch
        );
    }

    #[test]
    fn github_missing_empty_and_malformed_signatures() {
        let now = SystemTime::now();
        let cases: &[(&[(&str, &str)], Rejection)] = &[
            (&[], Rejection::MissingHeader("X-Hub-Signature-256")),
            (
                &[("X-Hub-Signature-256", "")],
                Rejection::MissingHeader("X-Hub-Signature-256"),
            ),
            (
                &[(
                    "X-Hub-Signature-256",
                    "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                )],
                Rejection::Malformed {
                    header: "X-Hub-Signature-256",
                    expected: "sha256=<64 hexadecimal digits>",
                },
            ),
            (
                &[("X-Hub-Signature-256", "sha256=zz")],
                Rejection::Malformed {
                    header: "X-Hub-Signature-256",
                    expected: "sha256=<64 hexadecimal digits>",
                },
            ),
            (
                &[("X-Hub-Signature-256", "sha256=7571")],
                Rejection::Mismatch,
            ),
            (
                &[(
                    "X-Hub-Signature",
                    "sha1=0000000000000000000000000000000000000000",
                )],
                Rejection::Sha1NotAllowed,
            ),
        ];
        for (pairs, want) in cases {
            let h = TestHeaders::with(pairs);
            assert_eq!(
                verify(&github(false), &h, GH_BODY, now).unwrap_err(),
                *want,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn github_sha1_only_when_opted_in() {
        let mut m =
            <Hmac<Sha1> as hmac::digest::KeyInit>::new_from_slice(b"It's a Secret to Everybody")
                .unwrap();
        m.update(GH_BODY);
        let sig = to_hex(&m.finalize().into_bytes());
        let h = TestHeaders::with(&[("X-Hub-Signature", &format!("sha1={sig}"))]);
        assert!(verify(&github(true), &h, GH_BODY, SystemTime::now()).is_ok());
        assert_eq!(
            verify(&github(false), &h, GH_BODY, SystemTime::now()).unwrap_err(),
            Rejection::Sha1NotAllowed
        );
    }

    #[test]
    fn any_of_several_secrets_matches() {
        let auth = Auth::Github {
            secrets: vec![
                Secret::new("the new secret"),
                Secret::new("It's a Secret to Everybody"),
            ],
            legacy_sha1: false,
        };
        let h = TestHeaders::with(&[("X-Hub-Signature-256", GH_SIG)]);
        assert!(verify(&auth, &h, GH_BODY, SystemTime::now()).is_ok());
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        let auth = Auth::GitlabToken {
            tokens: vec![Secret::new("s3cret-token")],
        };
        let now = SystemTime::now();
        let ok = TestHeaders::with(&[("X-Gitlab-Token", "s3cret-token")]);
        assert!(verify(&auth, &ok, b"{}", now).is_ok());
        for bad in ["s3cret-toke", "s3cret-token ", "S3cret-token"] {
            let h = TestHeaders::with(&[("X-Gitlab-Token", bad)]);
            assert_eq!(
                verify(&auth, &h, b"{}", now).unwrap_err(),
                Rejection::TokenMismatch
            );
        }
        assert_eq!(
            verify(&auth, &TestHeaders::default(), b"{}", now).unwrap_err(),
            Rejection::MissingHeader("X-Gitlab-Token")
        );
    }

    #[test]
    fn hex_value_decodes_both_cases_only() {
        assert_eq!(hex_value("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_value("0"), None);
        assert_eq!(hex_value(""), None);
        assert_eq!(hex_value("0g"), None);
        assert_eq!(hex_value("+1"), None);
    }
}
