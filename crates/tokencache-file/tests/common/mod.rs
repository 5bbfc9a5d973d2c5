//! Helpers shared by the file store tests.
#![allow(dead_code)]

use std::path::PathBuf;

use base64::Engine;
use tokencache::TokenEvent;

/// base64url without padding.
pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// An auth-code response for account `uid`.
pub fn user_event(uid: &str) -> TokenEvent {
    TokenEvent::new("cid", ["User.Read"])
        .token_endpoint("https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&format!(
            r#"{{"access_token":"at-{uid}","refresh_token":"rt-{uid}","expires_in":3600,"client_info":"{}"}}"#,
            b64(&format!(r#"{{"uid":"{uid}","utid":"t"}}"#))
        ))
        .expect("response")
}

/// The `record_responses` example, built by `cargo test` next to this test binary.
pub fn record_responses() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir
        .join("examples")
        .join(format!("record_responses{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

/// Home account ids of the accounts in a cache file.
pub fn accounts_in(text: &str) -> Vec<String> {
    let cache = tokencache::TokenCache::from_json(text).expect("cache parses");
    cache
        .all_accounts()
        .iter()
        .filter_map(|a| a.home_account_id().map(str::to_owned))
        .collect()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[path = "../../../../tests/support/python.rs"]
mod python_support;
#[allow(
    unused_imports,
    reason = "not every test binary that shares this module asks for Python"
)]
pub use python_support::python;
