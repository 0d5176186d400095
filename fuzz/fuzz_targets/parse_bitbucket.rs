//! The Bitbucket payload parser, on correctly signed deliveries.

#![no_main]

use deployhook::event::Forge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| deployhook_fuzz::fuzz_parser(Forge::Bitbucket, false, data));
