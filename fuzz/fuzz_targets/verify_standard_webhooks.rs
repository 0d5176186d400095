//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): whatever
//! the headers hold, `verify` does not panic, only lets a true `v1` MAC of
//! `id.timestamp.body` in and only within five minutes; a true MAC among any number of
//! other entries is accepted, and the id it returns is the signed one.

#![no_main]

use std::time::Duration;

use deployhook::event::Forge;
use deployhook::verify::{self, Headers as _, Rejection, TOLERANCE_SECS};
use deployhook_fuzz::{NOW_SECS, auth, now, sign, split, standard_webhooks_signature};
use libfuzzer_sys::fuzz_target;

/// A header as text, the way the scheme reads it (printable ASCII, trimmed).
fn text(value: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(value?).ok().map(str::trim)
}

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split(data);
    let auth = auth(Forge::Generic, false);
    match verify::verify(&auth, &headers, body, now()) {
        Ok(v) => {
            let id = text(headers.get("webhook-id")).expect("verified without an id");
            let ts = text(headers.get("webhook-timestamp")).expect("verified without a timestamp");
            let secs: u64 = ts.parse().expect("verified with a non-numeric timestamp");
            assert!(
                secs.abs_diff(NOW_SECS) <= TOLERANCE_SECS,
                "stale {ts} accepted"
            );
            let want = standard_webhooks_signature(id, ts, body);
            let sigs =
                text(headers.get("webhook-signature")).expect("verified without a signature");
            assert!(
                sigs.split(' ').any(|e| e == want),
                "accepted without the true MAC: {headers:?}"
            );
            assert_eq!(
                v.signed_id().map(deployhook::event::DeliveryId::as_str),
                Some(id)
            );
            let _ = v.json();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // The true MAC, alone or after whatever entries the input had.
    let mut signed = headers.clone();
    assert!(sign(&auth, &mut signed, body));
    let truth = signed.get("webhook-signature").unwrap().to_vec();
    let mut variants = vec![truth.clone()];
    if let Some(given) = headers.get("webhook-signature")
        && given.iter().all(|b| (0x20..0x7f).contains(b))
    {
        let mut both = given.to_vec();
        both.push(b' ');
        both.extend_from_slice(&truth);
        variants.push(both);
    }
    for sig in variants {
        signed.set("webhook-signature", sig.clone());
        if let Err(e) = verify::verify(&auth, &signed, body, now()) {
            panic!(
                "the true MAC was refused ({e}): {:?}",
                String::from_utf8_lossy(&sig)
            );
        }
    }
    // The five minutes hold to the second, both ways.
    let tolerance = Duration::from_secs(TOLERANCE_SECS);
    let second = Duration::from_secs(1);
    for at in [now() + tolerance, now() - tolerance] {
        assert!(verify::verify(&auth, &signed, body, at).is_ok());
    }
    for at in [now() + tolerance + second, now() - tolerance - second] {
        assert!(matches!(
            verify::verify(&auth, &signed, body, at),
            Err(Rejection::Stale)
        ));
    }
});
