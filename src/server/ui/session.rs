//! The dashboard's session cookie: `v1.<expiry>.<MAC>`, an HMAC of the expiry and a
//! digest of the API token under a key the store keeps. Valid on every replica (the key
//! is shared), until it expires or the token is rotated (the digest no longer matches);
//! nothing per session is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "deployhook_session";

/// The store's name for the key.
pub const KEY_NAME: &str = "ui-session";

/// How long a login lasts.
pub const LIFETIME_SECS: u64 = 12 * 3600;

fn mac(key: &[u8], token: &[u8], expires: u64) -> String {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    m.update(b"deployhook ui session\0");
    m.update(expires.to_string().as_bytes());
    m.update(b"\0");
    m.update(&Sha256::digest(token));
    URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
}

/// A session for whoever knows `token`, from `now` (unix seconds).
pub fn issue(key: &[u8], token: &[u8], now: u64) -> String {
    let expires = now + LIFETIME_SECS;
    format!("v1.{expires}.{}", mac(key, token, expires))
}

/// Whether `value` is a session for `token` that has not expired at `now`.
pub fn check(key: &[u8], token: &[u8], value: &str, now: u64) -> bool {
    let mut parts = value.split('.');
    let (Some("v1"), Some(expires), Some(given), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires > now && bool::from(mac(key, token, expires).as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_until_it_expires_is_tampered_with_or_the_token_changes() {
        let (key, token, now) = (b"k".repeat(32), b"the api token".to_vec(), 1_000_000);
        let s = issue(&key, &token, now);
        assert!(check(&key, &token, &s, now));
        assert!(check(&key, &token, &s, now + LIFETIME_SECS - 1));
        assert!(!check(&key, &token, &s, now + LIFETIME_SECS), "expired");
        assert!(!check(&key, b"a rotated token", &s, now), "token rotated");
        assert!(!check(&b"x".repeat(32), &token, &s, now), "another key");
        let later = s.replacen(
            &(now + LIFETIME_SECS).to_string(),
            &(now + 10 * LIFETIME_SECS).to_string(),
            1,
        );
        assert!(
            !check(&key, &token, &later, now),
            "a longer expiry without its MAC"
        );
        for bad in ["", "v1", "v1.x.y", "v2.1.abc", &format!("{s}.extra")] {
            assert!(!check(&key, &token, bad, now), "{bad}");
        }
    }
}
