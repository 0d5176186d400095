//! The GitLab payload parser, on deliveries carrying the right token, or signed with a
//! signing token (Standard Webhooks) when the input has a `webhook-id` header.

#![no_main]

use deployhook::event::Forge;
use deployhook::verify::Headers as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signed = deployhook_fuzz::split(data).0.get("webhook-id").is_some();
    deployhook_fuzz::fuzz_parser(Forge::Gitlab, signed, data);
});
