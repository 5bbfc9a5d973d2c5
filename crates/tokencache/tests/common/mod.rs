//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use tokencache::json::{JsonObject, JsonValue};
use tokencache::{TokenCache, TokenEvent};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/golden` in the repository.
pub fn golden_dir() -> PathBuf {
    repo_root().join("tests/golden")
}

/// The scenarios shared with the Python generator: name -> events (each with `_now`).
pub fn scenarios() -> Vec<(String, Vec<(TokenEvent, i64)>)> {
    let text =
        std::fs::read_to_string(golden_dir().join("scenarios.json")).expect("scenarios.json");
    let all = JsonObject::parse(&text).expect("scenarios parse");
    all.iter()
        .map(|(name, events)| {
            let JsonValue::Array(events) = events else {
                panic!("events of {name}")
            };
            let events = events
                .iter()
                .map(|e| {
                    let JsonValue::Object(o) = e else {
                        panic!("event")
                    };
                    let now = o
                        .get("_now")
                        .and_then(JsonValue::as_int_lenient)
                        .expect("_now");
                    (TokenEvent::from_msal_event(o).expect("event"), now)
                })
                .collect();
            (name.to_owned(), events)
        })
        .collect()
}

/// A cache with the scenario's events applied.
pub fn apply(events: &[(TokenEvent, i64)]) -> TokenCache {
    let cache = TokenCache::new();
    for (event, now) in events {
        cache.add_at(event, *now).expect("add");
    }
    cache
}

#[path = "../../../../tests/support/python.rs"]
mod python_support;
#[allow(
    unused_imports,
    reason = "not every test binary that shares this module asks for Python"
)]
pub use python_support::python;
