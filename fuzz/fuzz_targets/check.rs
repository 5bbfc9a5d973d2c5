//! The properties every parser of untrusted input must keep, shared by the libFuzzer targets
//! (nightly, optional) and the stable mutation tests that CI runs
//! (`crates/tokencache/tests/mutation.rs`): no input panics, and what parses behaves.
//!
//! | input | who could write it | check |
//! |---|---|---|
//! | a cache file | anyone who can write the file | [`check_cache_input`] |
//! | a hand-over record | anyone who can write `<cache>.pending/` | [`check_hand_over_record`] |
//! | a stored partition | anyone who can write a row or key of the store | [`check_partition_document`] |
//! | a token response | the identity provider, or the network | [`check_token_response`] |
//! | an ID token | the identity provider | [`check_id_token`] |
#![allow(dead_code, reason = "each target uses one check")]

/// Feeds `data` to the cache reader; panics when the property breaks: whatever parses
/// round-trips, and its problems and partitions can be listed.
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

/// A hand-over record (`{"now": …, "event": {…}}`), as a lock holder reads and applies it: no
/// panic, and an event that applies leaves a cache that serializes and parses again.
pub fn check_hand_over_record(data: &[u8]) {
    use tokencache::json::{JsonObject, JsonValue};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(record) = JsonObject::parse(text) else {
        return;
    };
    let now = record
        .get("now")
        .and_then(JsonValue::as_int_lenient)
        .unwrap_or(1_700_000_000);
    let Some(JsonValue::Object(event)) = record.get("event") else {
        return;
    };
    let Ok(event) = tokencache::TokenEvent::from_msal_event(event) else {
        return;
    };
    let cache = tokencache::TokenCache::new();
    if cache.add_at(&event, now).is_ok() {
        let text = cache.serialize();
        tokencache::TokenCache::from_json(&text).expect("a cache we wrote parses");
        let _ = event.to_msal_event();
    }
}

/// A stored partition document, sealed or not, as a partitioned store loads it: opening the
/// envelope never panics (whatever the bytes), and a document that opens and parses can be
/// narrowed to its partition.
pub fn check_partition_document(data: &[u8]) {
    #[cfg(feature = "crypto")]
    {
        use tokencache::seal::{DataKey, Envelope};
        let key = DataKey::from_bytes([7; 32]);
        let _ = Envelope::PARTITION.key_id(data);
        let _ = Envelope::PARTITION.version(data);
        let _ = Envelope::FILE.open(&key, b"", data);
        let _ = Envelope::HAND_OVER.open(&key, b"cache.json", data);
        if let Ok(plain) = Envelope::PARTITION.open(&key, b"p.t", data) {
            narrow(&plain);
        }
    }
    narrow(data);
}

fn narrow(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cache) = tokencache::TokenCache::from_json(text) {
        let own = tokencache::PartitionKey::new("p.t");
        if !cache.holds_only(&own) {
            let only = cache.serialize_partition(&own);
            tokencache::TokenCache::from_json(&only).expect("a partition we wrote parses");
        }
    }
}

/// A token response body, as a client records it: no panic whatever the numbers, the
/// `client_info` or the `id_token` hold, and the expiries written are bounded.
pub fn check_token_response(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = tokencache::TokenEvent::new("cid", ["User.Read"])
        .token_endpoint("https://login.microsoftonline.com/t/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(text)
    else {
        return;
    };
    let now = 1_700_000_000;
    let cache = tokencache::TokenCache::new();
    if cache.add_at(&event, now).is_ok() {
        for at in cache.all_access_tokens() {
            if let Some(expires_on) = at.expires_on() {
                assert!(
                    (now..=now + tokencache::MAX_LIFETIME_SECS).contains(&expires_on),
                    "expiry {expires_on} out of bounds"
                );
            }
        }
        tokencache::TokenCache::from_json(&cache.serialize()).expect("a cache we wrote parses");
    }
}

/// An ID token: decoding its claims never panics.
pub fn check_id_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tokencache::decode_jwt_claims(text);
    let _ = tokencache::decode_json_part(text);
}
