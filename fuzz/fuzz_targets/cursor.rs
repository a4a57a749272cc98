#![no_main]
//! cargo +nightly fuzz run cursor

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_core::fuzzing::parse_cursor(data);
});
