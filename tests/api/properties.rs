//! Property: any single-byte change to a signed body or to its signature is rejected, for
//! every verification scheme. Checked exhaustively over every byte position (with several
//! replacement bytes each) against the library, and on a sample over HTTP.

use std::time::SystemTime;

use deployhook::secret::Secret;
use deployhook::verify::{Auth, decode_whsec, verify};

use crate::helpers::*;

/// Headers as the library reads a list of name/value pairs.
type H = Vec<(String, Vec<u8>)>;

fn headers(pairs: &[(&str, String)]) -> H {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone().into_bytes()))
        .collect()
}

/// Every way to change one byte: flip the low bit, the case bit and the high bit.
fn mutations(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len()).flat_map(move |i| {
        [0x01u8, 0x20, 0x80].into_iter().map(move |flip| {
            let mut m = bytes.to_vec();
            m[i] ^= flip;
            m
        })
    })
}

fn secret() -> Vec<Secret> {
    vec![Secret::new(SECRET)]
}

/// (auth, signature header, signature for the body, how to render a signature value)
fn schemes(body: &[u8]) -> Vec<(Auth, &'static str, String)> {
    let mac = openssl_hmac(SECRET.as_bytes(), body);
    vec![
        (
            Auth::Github {
                secrets: secret(),
                legacy_sha1: false,
            },
            "X-Hub-Signature-256",
            format!("sha256={}", hex(&mac)),
        ),
        (
            Auth::Bitbucket { secrets: secret() },
            "X-Hub-Signature",
            format!("sha256={}", hex(&mac)),
        ),
        (
            Auth::Gitea {
                secrets: secret(),
                headers: &["X-Gitea-Signature"],
            },
            "X-Gitea-Signature",
            hex(&mac),
        ),
    ]
}

#[test]
fn any_single_byte_change_to_body_or_signature_is_rejected() {
    let body = fixture("gitea/push.json");
    let now = SystemTime::now();
    let ct = ("Content-Type", "application/json".to_owned());
    for (auth, header, sig) in schemes(&body) {
        let ok = headers(&[ct.clone(), (header, sig.clone())]);
        assert!(
            verify(&auth, &ok, &body, now).is_ok(),
            "{header}: untouched must pass"
        );
        for changed in mutations(&body) {
            assert!(
                verify(&auth, &ok, &changed, now).is_err(),
                "{header}: body change passed"
            );
        }
        for changed in mutations(sig.as_bytes()) {
            let h: H = vec![
                ("Content-Type".into(), b"application/json".to_vec()),
                (header.into(), changed.clone()),
            ];
            let res = verify(&auth, &h, &body, now);
            // Changing the case of a hex digit (not of the `sha256=` prefix) leaves the
            // same signature.
            let split = sig.rfind('=').map_or(0, |i| i + 1);
            let same = String::from_utf8(changed).is_ok_and(|s| {
                s[..split] == sig[..split] && s[split..].eq_ignore_ascii_case(&sig[split..])
            });
            assert_eq!(res.is_ok(), same, "{header}: signature change");
        }
    }

    // Standard Webhooks: body, id, timestamp and signature are all covered.
    let key = vec![Secret::new(decode_whsec(WHSEC).unwrap())];
    let auth = Auth::StandardWebhooks { keys: key };
    let ts = now_secs();
    let sw = standard_webhooks("msg_prop", ts, &body);
    let pairs: Vec<(&str, String)> = sw
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .chain([ct.clone()])
        .collect();
    assert!(verify(&auth, &headers(&pairs), &body, now).is_ok());
    for changed in mutations(&body) {
        assert!(verify(&auth, &headers(&pairs), &changed, now).is_err());
    }
    for (i, (name, value)) in pairs.iter().enumerate().take(3) {
        for changed in mutations(value.as_bytes()) {
            let mut h = headers(&pairs);
            h[i] = ((*name).to_owned(), changed);
            assert!(
                verify(&auth, &h, &body, now).is_err(),
                "{name} change passed"
            );
        }
    }

    // GitLab's token: any change to it fails.
    let auth = Auth::GitlabToken {
        tokens: vec![Secret::new(GITLAB_TOKEN)],
    };
    for changed in mutations(GITLAB_TOKEN.as_bytes()) {
        let h: H = vec![("X-Gitlab-Token".into(), changed)];
        assert!(verify(&auth, &h, b"{}", now).is_err());
    }
}

#[test]
fn single_byte_changes_over_http_are_401_and_record_nothing() {
    let app = TestApp::spawn(&standard_config());
    let body = fixture("generic/push.json");
    let sw = standard_webhooks("msg_http", now_secs(), &body);
    let mut headers = refs(&sw);
    headers.push(("Content-Type", "application/json"));
    // Every position of the body, changed one way each.
    for i in 0..body.len() {
        let mut changed = body.clone();
        changed[i] ^= 0x01;
        let res = app.post("ci", &headers, &changed);
        assert_eq!(res.status, 401, "byte {i}: {}", res.body);
    }
    assert!(app.jobs().is_empty());
    assert_eq!(app.post("ci", &headers, &body).status, 202);
}
