//! The Gitea / Forgejo / Gogs payload parser (one dialect, three header sets), on
//! correctly signed deliveries, JSON or form-encoded.

#![no_main]

use deployhook::event::Forge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for forge in [Forge::Gitea, Forge::Forgejo, Forge::Gogs] {
        deployhook_fuzz::fuzz_parser(forge, false, data);
    }
});
