#![no_main]
//! cargo +nightly fuzz run csrf

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_core::fuzzing::check_csrf(data);
});
