//! Bitbucket's `X-Hub-Signature: sha256=<hex>`: whatever the headers hold, `verify` does
//! not panic and only lets the true MAC in; with the true MAC, any body is accepted.

#![no_main]

use deployhook::event::Forge;
use deployhook::verify::{self, Headers as _};
use deployhook_fuzz::{SECRET, auth, hex, hmac_sha256, now, sign, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split(data);
    let auth = auth(Forge::Bitbucket, false);
    match verify::verify(&auth, &headers, body, now()) {
        Ok(v) => {
            let want = format!("sha256={}", hex(&hmac_sha256(SECRET, &[body])));
            let given = headers
                .get("X-Hub-Signature")
                .unwrap_or_default()
                .trim_ascii();
            assert!(
                given.len() == want.len()
                    && given.starts_with(b"sha256=")
                    && given.eq_ignore_ascii_case(want.as_bytes()),
                "accepted without the true MAC: {headers:?}"
            );
            assert!(v.signed_id().is_none());
            let _ = v.json();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let mut signed = headers.clone();
    assert!(sign(&auth, &mut signed, body));
    if let Err(e) = verify::verify(&auth, &signed, body, now()) {
        panic!("the true MAC was refused: {e}");
    }
});
