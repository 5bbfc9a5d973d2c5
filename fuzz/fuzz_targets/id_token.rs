//! Fuzz the reader of ID tokens: no input may panic (see `check.rs`).
//! Run with `cargo +nightly fuzz run id_token` from the repository root (optional; CI runs the same
//! check on mutated inputs with stable Rust: `tests/mutation.rs` of the core crate).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check_id_token(data));
