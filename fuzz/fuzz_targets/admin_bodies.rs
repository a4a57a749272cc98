#![no_main]
//! cargo +nightly fuzz run admin_bodies

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_http::fuzzing::plan_admin_bodies(data);
});
