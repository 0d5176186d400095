//! The Gitea family's bare hex signature (`X-Gitea-Signature`, `X-Forgejo-Signature`,
//! `X-Gogs-Signature`) over the JSON document, also when form-encoded: whatever the
//! headers hold, `verify` does not panic and only lets the true MAC in; with the true
//! MAC, any body the forge could have signed is accepted.

#![no_main]

use deployhook::event::Forge;
use deployhook::verify::{self, Headers as _, Rejection};
use deployhook_fuzz::{
    SECRET, auth, gitea_signature_headers, gitea_signed_bytes, hex, hmac_sha256, now, sign, split,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split(data);
    let signed_bytes = gitea_signed_bytes(&headers, body);
    for forge in [Forge::Gitea, Forge::Forgejo, Forge::Gogs] {
        let auth = auth(forge, false);
        match verify::verify(&auth, &headers, body, now()) {
            Ok(v) => {
                let signed = signed_bytes
                    .as_ref()
                    .expect("a form without payload verified");
                let want = hex(&hmac_sha256(SECRET, &[signed]));
                // The first of the forge's signature headers that is present counts.
                let given = gitea_signature_headers(forge)
                    .iter()
                    .find_map(|n| headers.get(n))
                    .expect("verified without a signature header")
                    .trim_ascii();
                assert!(
                    given.eq_ignore_ascii_case(want.as_bytes()),
                    "{forge}: accepted without the true MAC: {headers:?}"
                );
                assert!(v.signed_id().is_none());
                let _ = v.json();
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let mut signed = headers.clone();
        let signable = sign(&auth, &mut signed, body);
        match verify::verify(&auth, &signed, body, now()) {
            Ok(_) => assert!(signable),
            Err(Rejection::NoFormPayload) if !signable => {}
            Err(e) => panic!("{forge}: the true MAC was refused: {e}"),
        }
    }
});
