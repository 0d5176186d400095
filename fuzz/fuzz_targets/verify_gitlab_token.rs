//! GitLab's `X-Gitlab-Token`: whatever the headers hold, `verify` does not panic and
//! accepts exactly the configured tokens, byte for byte.

#![no_main]

use deployhook::secret::Secret;
use deployhook::verify::{self, Auth, Headers as _};
use deployhook_fuzz::{GITLAB_TOKEN, now, split};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut headers, body) = split(data);
    let other: &[u8] = b"a-second-token-during-rotation";
    let auth = Auth::GitlabToken {
        tokens: vec![Secret::new(GITLAB_TOKEN), Secret::new(other)],
    };
    match verify::verify(&auth, &headers, body, now()) {
        Ok(v) => {
            let given = headers.get("X-Gitlab-Token").unwrap_or_default();
            assert!(
                given == GITLAB_TOKEN || given == other,
                "accepted a token that is not configured: {given:?}"
            );
            assert!(v.signed_id().is_none());
            let _ = v.json();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    for token in [GITLAB_TOKEN, other] {
        headers.set("X-Gitlab-Token", token);
        if let Err(e) = verify::verify(&auth, &headers, body, now()) {
            panic!("a configured token was refused: {e}");
        }
    }
});
