#![no_main]
//! cargo +nightly fuzz run token

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_core::fuzzing::verify_token(data);
});
