//! Fuzz the cache reader: no input may panic, and whatever parses must round-trip.
//! Run with `cargo +nightly fuzz run deserialize` from the repository root (optional; CI runs
//! the same check, `check.rs`, on mutated inputs with stable Rust: `tests/mutation.rs` of the
//! core crate).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check_cache_input(data));
