//! Fuzz the cache reader: no input may panic, and whatever parses must round-trip.
//! Run with `cargo +nightly fuzz run deserialize` from the repository root (optional; CI runs
//! the stable property tests instead).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cache) = tokencache::TokenCache::from_json(text) {
        let once = cache.serialize();
        let again = tokencache::TokenCache::from_json(&once).expect("own output parses").serialize();
        assert_eq!(once, again);
        let _ = cache.problems();
        let _ = cache.split_partitions();
    }
});
