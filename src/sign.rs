//! `deployhook sign`: the headers a forge would send with a body, so an operator can test
//! a hook with curl; and the signatures of the daemon's own outgoing webhooks. The
//! counterpart of `verify`, kept apart from it so that the daemon's checking code never
//! signs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::Forge;
use crate::verify::{decode_whsec, to_hex};

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// Standard Webhooks headers for `body`.
fn standard_webhooks(key: &[u8], id: &str, now: u64, body: &[u8]) -> Vec<(String, String)> {
    standard_webhooks_headers(&[key], id, now, body)
}

/// Standard Webhooks headers for `body`, signed with each of `keys` (the decoded
/// `whsec_` secrets; several while one is rotated): `webhook-signature` lists one
/// `v1,<base64>` per key, space-separated, as the specification allows. Also what the
/// daemon's own outgoing webhooks carry (`notify`).
pub fn standard_webhooks_headers(
    keys: &[&[u8]],
    id: &str,
    now: u64,
    body: &[u8],
) -> Vec<(String, String)> {
    let ts = now.to_string();
    let signatures: Vec<String> = keys
        .iter()
        .map(|key| {
            let mac = hmac_sha256(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect();
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts),
        ("webhook-signature".into(), signatures.join(" ")),
    ]
}

/// The headers `forge` sends with a push whose JSON body is `body`: content type, event,
/// delivery id and signature. `secret` is as configured for the hook (a `whsec_` secret
/// for generic hooks and GitLab signing tokens).
pub fn push_headers(
    forge: Forge,
    secret: &str,
    body: &[u8],
    delivery: &str,
    now: u64,
) -> Result<Vec<(String, String)>, String> {
    let key = secret.as_bytes();
    let hex = || to_hex(&hmac_sha256(key, &[body]));
    let whsec = || {
        decode_whsec(secret)
            .ok_or_else(|| "this secret must be whsec_ followed by base64".to_owned())
    };
    let mut h: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
    let mut add = |k: &str, v: String| h.push((k.to_owned(), v));
    match forge {
        Forge::Github => {
            add("X-GitHub-Event", "push".into());
            add("X-GitHub-Delivery", delivery.into());
            add("X-Hub-Signature-256", format!("sha256={}", hex()));
        }
        Forge::Gitea | Forge::Forgejo | Forge::Gogs => {
            let prefix = match forge {
                Forge::Gitea => "X-Gitea",
                Forge::Forgejo => "X-Forgejo",
                _ => "X-Gogs",
            };
            add(&format!("{prefix}-Event"), "push".into());
            add(&format!("{prefix}-Delivery"), delivery.into());
            add(&format!("{prefix}-Signature"), hex());
        }
        Forge::Bitbucket => {
            add("X-Event-Key", "repo:push".into());
            add("X-Request-UUID", delivery.into());
            add("X-Hub-Signature", format!("sha256={}", hex()));
        }
        Forge::Gitlab => {
            add("X-Gitlab-Event", "Push Hook".into());
            if secret.starts_with("whsec_") {
                h.extend(standard_webhooks(&whsec()?, delivery, now, body));
            } else {
                add("Idempotency-Key", delivery.into());
                add("X-Gitlab-Token", secret.into());
            }
        }
        Forge::Generic => h.extend(standard_webhooks(&whsec()?, delivery, now, body)),
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::verify::{Auth, verify};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn github_signature_is_the_documented_one() {
        let h = push_headers(
            Forge::Github,
            "It's a Secret to Everybody",
            b"Hello, World!",
            "d",
            0,
        )
        .unwrap();
        assert!(h.contains(&(
            "X-Hub-Signature-256".into(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into()
        )));
    }

    #[test]
    fn what_sign_makes_verify_accepts() {
        let body = br#"{"x":1}"#;
        let now = 1_700_000_000;
        let at = UNIX_EPOCH + Duration::from_secs(now);
        let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let cases = [
            (
                Forge::Github,
                "s",
                Auth::Github {
                    secrets: vec![Secret::new("s")],
                    legacy_sha1: false,
                },
            ),
            (
                Forge::Forgejo,
                "s",
                Auth::Gitea {
                    secrets: vec![Secret::new("s")],
                    headers: &["X-Forgejo-Signature"],
                },
            ),
            (
                Forge::Bitbucket,
                "s",
                Auth::Bitbucket {
                    secrets: vec![Secret::new("s")],
                },
            ),
            (
                Forge::Gitlab,
                "tok",
                Auth::GitlabToken {
                    tokens: vec![Secret::new("tok")],
                },
            ),
            (
                Forge::Generic,
                whsec,
                Auth::StandardWebhooks {
                    keys: vec![Secret::new(decode_whsec(whsec).unwrap())],
                },
            ),
        ];
        for (forge, secret, auth) in cases {
            let h = push_headers(forge, secret, body, "msg_1", now).unwrap();
            assert!(verify(&auth, &h, body, at).is_ok(), "{forge}");
            // A GitLab token does not sign the body; every other scheme does.
            if forge != Forge::Gitlab {
                assert!(verify(&auth, &h, b"{\"x\":2}", at).is_err(), "{forge}");
            }
        }
        assert!(push_headers(Forge::Generic, "plain", body, "m", now).is_err());
    }
}
