//! The status link a delivery's sender gets in the 202: `/status/{hook}/{delivery}/{key}`,
//! where `delivery` is the delivery id in unpadded base64url and `key` is an HMAC of hook and
//! delivery id under a key only the daemon holds (kept in the store). Whoever has the link
//! may read that delivery's jobs' states, and nothing else; nothing per delivery is stored,
//! and a wrong key is indistinguishable from an unknown delivery.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::verify::to_hex;

/// The store's name for the daemon's status-link key.
pub const KEY_NAME: &str = "status-link";

/// Hex digits of the MAC in a link: 128 bits.
const KEY_HEX: usize = 32;

fn mac(secret: &[u8], hook: &str, delivery: &str) -> String {
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length");
    m.update(b"deployhook status link\0");
    m.update(hook.as_bytes());
    m.update(b"\0");
    m.update(delivery.as_bytes());
    let mut hex = to_hex(&m.finalize().into_bytes());
    hex.truncate(KEY_HEX);
    hex
}

/// The link's path for `delivery` to `hook`.
pub fn path(secret: &[u8], hook: &str, delivery: &str) -> String {
    format!(
        "/status/{hook}/{}/{}",
        URL_SAFE_NO_PAD.encode(delivery),
        mac(secret, hook, delivery)
    )
}

/// The delivery id a link names, if its key is right.
pub fn open(secret: &[u8], hook: &str, encoded: &str, key: &str) -> Option<String> {
    let delivery = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let expected = mac(secret, hook, &delivery);
    bool::from(expected.as_bytes().ct_eq(key.as_bytes())).then_some(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_only_with_its_own_key_hook_and_delivery() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let p = path(secret, "app", "msg/1 +x");
        let parts: Vec<&str> = p.split('/').collect();
        assert_eq!(parts[..3], ["", "status", "app"]);
        let (encoded, key) = (parts[3], parts[4]);
        assert!(!encoded.contains(['/', '+', '=']), "{encoded}");
        assert_eq!(key.len(), 32);
        assert_eq!(
            open(secret, "app", encoded, key).as_deref(),
            Some("msg/1 +x")
        );
        // Another hook, another delivery, a tampered key, another daemon's key: closed.
        assert_eq!(open(secret, "web", encoded, key), None);
        let other = path(secret, "app", "msg/2");
        let other_encoded = other.split('/').nth(3).unwrap();
        assert_eq!(open(secret, "app", other_encoded, key), None);
        let mut tampered = key.to_owned();
        tampered.replace_range(..1, if key.starts_with('0') { "1" } else { "0" });
        assert_eq!(open(secret, "app", encoded, &tampered), None);
        assert_eq!(open(b"another daemon's key", "app", encoded, key), None);
        assert_eq!(open(secret, "app", "!!", key), None);
    }
}
