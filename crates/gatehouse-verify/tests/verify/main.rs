//! gatehouse-verify against real HTTP: a JWKS server on 127.0.0.1:0 that counts requests,
//! keys generated per test, and a clock the tests move instead of sleeping.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithms;
mod cache;
mod claims;
mod extractor;
mod support;
