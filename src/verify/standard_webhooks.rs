//! The Standard Webhooks scheme: HMAC-SHA256 over `id.timestamp.body`, sent as one or
//! more `v1,<base64>` entries in `webhook-signature`, with a timestamp that must be
//! within five minutes of our clock so that a captured delivery cannot be replayed later.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Hmac;
use sha2::Sha256;

use super::{Headers, Rejection, check_hmac, text_header};
use crate::event::DeliveryId;
use crate::secret::Secret;

/// How far `webhook-timestamp` may be from our clock, either way.
pub const TOLERANCE_SECS: u64 = 5 * 60;

/// The key bytes of a `whsec_<base64>` secret, or `None` when it is not one.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// Verifies the three headers and returns the (signed) delivery id.
pub(super) fn verify(
    keys: &[Secret],
    headers: &dyn Headers,
    body: &[u8],
    now: SystemTime,
) -> Result<DeliveryId, Rejection> {
    let id = text_header(headers, "webhook-id")?;
    let id = DeliveryId::parse(id).map_err(|_| Rejection::Malformed {
        header: "webhook-id",
        expected: "1 to 128 printable ASCII characters",
    })?;
    let timestamp = text_header(headers, "webhook-timestamp")?;
    let ts: u64 = timestamp
        .parse()
        .ok()
        .filter(|_| timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(Rejection::Malformed {
            header: "webhook-timestamp",
            expected: "whole seconds since 1970",
        })?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(ts) > TOLERANCE_SECS {
        return Err(Rejection::Stale);
    }
    let signatures = text_header(headers, "webhook-signature")?;
    let mut any_v1 = false;
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        // Other versions (v1a: asymmetric) are skipped, as the spec says.
        let Some(b64) = entry.strip_prefix("v1,") else {
            continue;
        };
        any_v1 = true;
        let Ok(mac) = STANDARD.decode(b64) else {
            continue;
        };
        let signed = [
            id.as_str().as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            body,
        ];
        if check_hmac::<Hmac<Sha256>>(keys, &signed, &mac).is_ok() {
            return Ok(id);
        }
    }
    if any_v1 {
        Err(Rejection::Mismatch)
    } else {
        Err(Rejection::Malformed {
            header: "webhook-signature",
            expected: "space-separated v1,<base64> entries",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::TestHeaders;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn key(whsec: &str) -> Vec<Secret> {
        vec![Secret::new(decode_whsec(whsec).unwrap())]
    }

    // The vectors below are the Standard Webhooks reference libraries' own test values.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: u64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn headers(id: &str, ts: &str, sig: &str) -> TestHeaders {
        TestHeaders::with(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ])
    }

    #[test]
    fn library_sign_vector_verifies() {
        let h = headers(ID, &TS.to_string(), SIG);
        let id = verify(&key(SECRET), &h, BODY, at(TS)).unwrap();
        assert_eq!(id.as_str(), ID);
    }

    #[test]
    fn second_library_vector_verifies() {
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        let keys = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert!(verify(&keys, &h, br#"{"test": 2432232314}"#, at(1_614_265_330)).is_ok());
    }

    #[test]
    fn wrong_signature_from_the_library_tests_is_rejected() {
        let h = headers(
            ID,
            &TS.to_string(),
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
        );
        assert_eq!(
            verify(&key(SECRET), &h, BODY, at(TS)),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn one_of_several_signatures_is_enough() {
        let multi = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,abc v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {SIG} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        let h = headers(ID, &TS.to_string(), &multi);
        assert!(verify(&key(SECRET), &h, BODY, at(TS)).is_ok());
        let without = multi.replace(SIG, "");
        let h = headers(ID, &TS.to_string(), &without);
        assert_eq!(
            verify(&key(SECRET), &h, BODY, at(TS)),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn timestamps_outside_five_minutes_are_stale() {
        let h = headers(ID, &TS.to_string(), SIG);
        assert!(verify(&key(SECRET), &h, BODY, at(TS + TOLERANCE_SECS)).is_ok());
        assert!(verify(&key(SECRET), &h, BODY, at(TS - TOLERANCE_SECS)).is_ok());
        assert_eq!(
            verify(&key(SECRET), &h, BODY, at(TS + TOLERANCE_SECS + 1)),
            Err(Rejection::Stale)
        );
        assert_eq!(
            verify(&key(SECRET), &h, BODY, at(TS - TOLERANCE_SECS - 1)),
            Err(Rejection::Stale)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let ts = TS.to_string();
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut h = headers(ID, &ts, SIG);
            h.0.remove(missing);
            assert_eq!(
                verify(&key(SECRET), &h, BODY, at(TS)),
                Err(Rejection::MissingHeader(missing))
            );
        }
        for bad_ts in ["-1", "+1649367553", "1649367553.0", "soon"] {
            let h = headers(ID, bad_ts, SIG);
            assert!(matches!(
                verify(&key(SECRET), &h, BODY, at(TS)),
                Err(Rejection::Malformed {
                    header: "webhook-timestamp",
                    ..
                })
            ));
        }
        let h = headers(ID, &ts, "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(matches!(
            verify(&key(SECRET), &h, BODY, at(TS)),
            Err(Rejection::Malformed {
                header: "webhook-signature",
                ..
            })
        ));
    }

    #[test]
    fn whsec_decoding() {
        assert_eq!(decode_whsec("whsec_AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_whsec("AAEC"), None);
        assert_eq!(decode_whsec("whsec_!!"), None);
        assert_eq!(decode_whsec("whsec_"), None);
    }
}
