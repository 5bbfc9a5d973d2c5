//! The property every input to the cache reader must keep, shared by the libFuzzer target
//! (`deserialize.rs`, nightly, optional) and the stable mutation test that CI runs
//! (`crates/tokencache/tests/mutation.rs`): no input panics, and whatever parses round-trips.

/// Feeds `data` to the cache reader; panics when the property breaks.
pub fn check_cache_input(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cache) = tokencache::TokenCache::from_json(text) {
        let once = cache.serialize();
        let again = tokencache::TokenCache::from_json(&once)
            .expect("own output parses")
            .serialize();
        assert_eq!(once, again, "what parses round-trips");
        let _ = cache.problems();
        let _ = cache.split_partitions();
    }
}
