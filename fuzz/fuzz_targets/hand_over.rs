//! Fuzz the reader of hand-over records (what a lock holder applies): no input may panic (see `check.rs`).
//! Run with `cargo +nightly fuzz run hand_over` from the repository root (optional; CI runs the same
//! check on mutated inputs with stable Rust: `tests/mutation.rs` of the core crate).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check_hand_over_record(data));
