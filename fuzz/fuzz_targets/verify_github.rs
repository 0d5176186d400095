//! GitHub's signature headers (`X-Hub-Signature-256`, and the sha1 `X-Hub-Signature`
//! when `legacy_sha1` is on): whatever the headers hold, `verify` does not panic and only
//! lets the true MAC in; with the true MAC, any body is accepted.

#![no_main]

use deployhook::event::Forge;
use deployhook::secret::Secret;
use deployhook::verify::{self, Auth, Headers as _};
use deployhook_fuzz::{SECRET, auth, hex, hmac_sha1, hmac_sha256, now, sign, split};
use libfuzzer_sys::fuzz_target;

/// `value`, trimmed, is `prefix` followed by `mac` in hex of either case.
fn names_mac(value: Option<&[u8]>, prefix: &str, mac: &[u8]) -> bool {
    let Some(v) = value else { return false };
    let v = v.trim_ascii();
    v.len() == prefix.len() + mac.len() * 2
        && v.starts_with(prefix.as_bytes())
        && v[prefix.len()..].eq_ignore_ascii_case(hex(mac).as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split(data);
    for legacy_sha1 in [false, true] {
        let auth = Auth::Github {
            secrets: vec![Secret::new("another secret"), Secret::new(SECRET)],
            legacy_sha1,
        };
        match verify::verify(&auth, &headers, body, now()) {
            Ok(v) => {
                let sha256 = headers.get("X-Hub-Signature-256");
                let ok = if sha256.is_some() {
                    names_mac(sha256, "sha256=", &hmac_sha256(SECRET, &[body]))
                } else {
                    legacy_sha1
                        && names_mac(
                            headers.get("X-Hub-Signature"),
                            "sha1=",
                            &hmac_sha1(SECRET, body),
                        )
                };
                assert!(ok, "accepted without the true MAC: {headers:?}");
                assert!(v.signed_id().is_none());
                let _ = v.json();
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    let mut signed = headers.clone();
    let auth = auth(Forge::Github, false);
    assert!(sign(&auth, &mut signed, body));
    if let Err(e) = verify::verify(&auth, &signed, body, now()) {
        panic!("the true MAC was refused: {e}");
    }
});
