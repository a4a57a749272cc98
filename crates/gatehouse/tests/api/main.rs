//! gatehouse's integration tests: one test binary (each extra `tests/*.rs` is another slow
//! link), a module per surface. Every test serves the real router on 127.0.0.1:0 against a
//! fresh SQLite file and a fresh Postgres database, or runs the real binary.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod helpers;
mod admin;
mod atomicity;
mod auth;
mod errors;
mod hostile;
mod import;
mod limits;
mod mail;
mod ops;
mod process;
mod security;
mod sessions;
mod shutdown;
mod supabase;
mod tokens;
mod upstream;
