//! What every fuzz target shares: the input format (header lines, a blank line, the
//! body), a header map over it, and signing with fixed keys, so that the payload parsers
//! are reached through `verify` exactly as the server reaches them (a `Verified` can
//! only be made by `verify`).
//!
//! The input format keeps crash files readable and seeds easy to write by hand:
//!
//! ```text
//! X-GitHub-Event: push
//! Content-Type: application/json
//!
//! {"ref": ...}
//! ```
//!
//! Everything before the first `\n\n` is header lines (`name: value`; a line without a
//! colon is skipped); everything after it is the body. Without a `\n\n`, it is all body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deployhook::event::{DeliveryId, Forge};
use deployhook::secret::Secret;
use deployhook::verify::{Auth, Encoding, Headers};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The clock every target runs at.
pub const NOW_SECS: u64 = 1_700_000_000;

/// The HMAC secret of the body-signing forges.
pub const SECRET: &[u8] = b"It's a Secret to Everybody";
/// The Standard Webhooks secret (generic hooks, GitLab signing tokens).
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// GitLab's shared token.
pub const GITLAB_TOKEN: &[u8] = b"gl-token-0123456789";

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// Request headers as the fuzz input gives them: names compared case-insensitively,
/// values raw bytes (possibly not UTF-8, as a hostile client may send).
#[derive(Clone, Debug, Default)]
pub struct FuzzHeaders(pub Vec<(String, Vec<u8>)>);

impl FuzzHeaders {
    /// Replaces every header called `name` with one holding `value`.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.remove(name);
        self.0.push((name.to_owned(), value.into()));
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

impl Headers for FuzzHeaders {
    fn get(&self, name: &str) -> Option<&[u8]> {
        Headers::get(&self.0, name)
    }
}

/// Splits a fuzz input into its headers and its body.
pub fn split(data: &[u8]) -> (FuzzHeaders, &[u8]) {
    let Some(at) = data.windows(2).position(|w| w == b"\n\n") else {
        return (FuzzHeaders::default(), data);
    };
    let mut headers = FuzzHeaders::default();
    for line in data[..at].split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
        // HTTP drops the optional whitespace around a value; so does this.
        let value = line[colon + 1..].trim_ascii();
        headers.0.push((name, value.to_vec()));
    }
    (headers, &data[at + 2..])
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha1> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The key bytes of [`WHSEC`].
pub fn whsec_key() -> Vec<u8> {
    STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .expect("WHSEC is valid base64")
}

/// `v1,<base64>` for Standard Webhooks' `id.timestamp.body`.
pub fn standard_webhooks_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        &whsec_key(),
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", b64(&mac))
}

/// The signature headers a Gitea-family forge puts its MAC in, first preferred, as
/// `config` binds them.
pub fn gitea_signature_headers(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::Forgejo => &["X-Forgejo-Signature", "X-Gitea-Signature"],
        Forge::Gogs => &["X-Gogs-Signature"],
        _ => &["X-Gitea-Signature"],
    }
}

/// The `Auth` a hook of `forge` has with the fixed secrets. GitLab gets its shared token
/// unless `signed_gitlab`, which makes it use Standard Webhooks.
pub fn auth(forge: Forge, signed_gitlab: bool) -> Auth {
    let secret = || vec![Secret::new(SECRET)];
    match forge {
        Forge::Github => Auth::Github {
            secrets: secret(),
            legacy_sha1: false,
        },
        Forge::Gitea | Forge::Forgejo | Forge::Gogs => Auth::Gitea {
            secrets: secret(),
            headers: gitea_signature_headers(forge),
        },
        Forge::Bitbucket => Auth::Bitbucket { secrets: secret() },
        Forge::Gitlab if !signed_gitlab => Auth::GitlabToken {
            tokens: vec![Secret::new(GITLAB_TOKEN)],
        },
        Forge::Gitlab | Forge::Generic => Auth::StandardWebhooks {
            keys: vec![Secret::new(whsec_key())],
        },
    }
}

/// What a Gitea-family forge signs: the JSON document, taken out of the form when the
/// body is form-encoded; `None` when a form has no `payload` field.
pub fn gitea_signed_bytes(headers: &FuzzHeaders, body: &[u8]) -> Option<Vec<u8>> {
    match Encoding::of(headers) {
        Encoding::Form => Encoding::Form
            .json_document(body)
            .ok()
            .map(std::borrow::Cow::into_owned),
        _ => Some(body.to_vec()),
    }
}

/// A `webhook-id` the input gave that Standard Webhooks accepts, or a fixed one.
pub fn usable_webhook_id(headers: &FuzzHeaders) -> String {
    headers
        .get("webhook-id")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|id| DeliveryId::parse(id).is_ok())
        .unwrap_or("msg_fuzz")
        .to_owned()
}

/// Makes `headers` carry the correct signature (or token) for `body` under `auth`'s
/// scheme, as the forge would. Returns `false` when the forge could not have signed this
/// body at all (a Gitea-family form without a `payload` field).
pub fn sign(auth: &Auth, headers: &mut FuzzHeaders, body: &[u8]) -> bool {
    match auth {
        Auth::Github { .. } => {
            let mac = hmac_sha256(SECRET, &[body]);
            headers.set("X-Hub-Signature-256", format!("sha256={}", hex(&mac)));
        }
        Auth::Gitea { headers: names, .. } => {
            let Some(signed) = gitea_signed_bytes(headers, body) else {
                return false;
            };
            let mac = hmac_sha256(SECRET, &[&signed]);
            for name in *names {
                headers.remove(name);
            }
            headers.set(names[0], hex(&mac));
        }
        Auth::Bitbucket { .. } => {
            let mac = hmac_sha256(SECRET, &[body]);
            headers.set("X-Hub-Signature", format!("sha256={}", hex(&mac)));
        }
        Auth::GitlabToken { .. } => headers.set("X-Gitlab-Token", GITLAB_TOKEN),
        Auth::StandardWebhooks { .. } => {
            let id = usable_webhook_id(headers);
            let ts = NOW_SECS.to_string();
            headers.set(
                "webhook-signature",
                standard_webhooks_signature(&id, &ts, body),
            );
            headers.set("webhook-id", id);
            headers.set("webhook-timestamp", ts);
        }
    }
    true
}

/// What must hold of any answer a payload parser gives: errors print, and every push
/// event is made of values that re-validate and carries the delivery's id.
pub fn check_delivery(result: &Result<deployhook::forge::Delivery, deployhook::forge::ParseError>) {
    use deployhook::event::{RefName, Sha};
    use deployhook::forge::DeliveryKind;
    let delivery = match result {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    match &delivery.kind {
        DeliveryKind::Push(events) => {
            for ev in events {
                assert_eq!(
                    RefName::parse(ev.git_ref.as_str()).as_ref(),
                    Ok(&ev.git_ref)
                );
                assert_eq!(Sha::parse(ev.before.as_str()).as_ref(), Ok(&ev.before));
                assert_eq!(Sha::parse(ev.after.as_str()).as_ref(), Ok(&ev.after));
                assert_eq!(ev.delivery, delivery.id);
                if let Some(p) = &ev.pusher {
                    assert!(!p.is_empty(), "empty pusher kept");
                    assert!(
                        !p.chars().any(char::is_control),
                        "control character in {p:?}"
                    );
                }
            }
        }
        DeliveryKind::Other(name) => {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b" :_.-?".contains(&b)),
                "event name not made printable: {name:?}"
            );
        }
        DeliveryKind::Ping => {}
    }
}

/// Signs the input as `forge` would, verifies it (which must succeed) and parses it.
pub fn fuzz_parser(forge: Forge, signed_gitlab: bool, data: &[u8]) {
    let (mut headers, body) = split(data);
    let auth = auth(forge, signed_gitlab);
    if !sign(&auth, &mut headers, body) {
        return;
    }
    let verified = deployhook::verify::verify(&auth, &headers, body, now())
        .unwrap_or_else(|e| panic!("a correctly signed {forge} delivery was refused: {e}"));
    let result = deployhook::forge::parse(forge, &headers, &verified);
    check_delivery(&result);
    if forge == Forge::Generic
        && let Ok(d) = &result
    {
        assert_eq!(
            d.id.as_ref(),
            verified.signed_id(),
            "generic id is the signed one"
        );
    }
}
