#![no_main]
//! cargo +nightly fuzz run json_bodies

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_http::fuzzing::parse_bodies(data);
});
