//! Cache keys, exactly as MSAL Python 1.39 makes them, and the extended cache key hash.
//!
//! Writers must produce these keys: MSAL Python updates and removes entries by recomputing the
//! key, so an entry under any other key is duplicated on update and can never be removed.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::entry::{Entry, Field, Section};
use crate::json::JsonObject;

/// Request parameters that never contribute to the extended cache key (MSAL 1.39).
pub const EXT_CACHE_KEY_EXCLUDED_FIELDS: &[&str] = &[
    "client_id",
    "grant_type",
    "scope",
    "claims",
    "username",
    "password",
    "refresh_token",
    "code",
    "redirect_uri",
    "code_verifier",
    "device_code",
    "assertion",
    "requested_token_use",
    "client_assertion",
    "client_assertion_type",
    "client_secret",
    "token_type",
    "req_cnf",
    "key_id",
    "user_federated_identity_credential",
    "user_id",
    "client_info",
];

fn join_lower(parts: &[&str]) -> String {
    parts.join("-").to_lowercase()
}

/// The key of an access token.
///
/// ```
/// assert_eq!(
///     tokencache::keys::access_token_key("hid", "env", "cid", "realm", "scope", Some("h4sh")),
///     "hid-env-atext-cid-realm-scope-h4sh"
/// );
/// ```
pub fn access_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
    target: &str,
    ext_cache_key: Option<&str>,
) -> String {
    match ext_cache_key.filter(|e| !e.is_empty()) {
        Some(ext) => join_lower(&[
            home_account_id,
            environment,
            "atext",
            client_id,
            realm,
            target,
            ext,
        ]),
        None => join_lower(&[
            home_account_id,
            environment,
            "AccessToken",
            client_id,
            realm,
            target,
        ]),
    }
}

/// The key of a refresh token (no realm: refresh tokens are cross-tenant).
pub fn refresh_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    target: &str,
) -> String {
    join_lower(&[
        home_account_id,
        environment,
        "RefreshToken",
        client_id,
        "",
        target,
    ])
}

/// The key of an ID token (an empty scope part, so it ends in `-`).
pub fn id_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
) -> String {
    join_lower(&[
        home_account_id,
        environment,
        "IdToken",
        client_id,
        realm,
        "",
    ])
}

/// The key of an account.
pub fn account_key(home_account_id: &str, environment: &str, realm: &str) -> String {
    join_lower(&[home_account_id, environment, realm])
}

/// The key of app metadata (not lower-cased).
pub fn app_metadata_key(environment: &str, client_id: &str) -> String {
    format!("appmetadata-{environment}-{client_id}")
}

/// The key MSAL would store `entry` under in `section`.
pub fn canonical_key(section: Section, entry: &Entry) -> String {
    let s = |f: Field| entry.str_field(f).unwrap_or_default();
    match section {
        Section::AccessToken => access_token_key(
            s(Field::HomeAccountId),
            s(Field::Environment),
            s(Field::ClientId),
            s(Field::Realm),
            s(Field::Target),
            entry.str_field(Field::ExtCacheKey),
        ),
        Section::RefreshToken => refresh_token_key(
            s(Field::HomeAccountId),
            s(Field::Environment),
            s(Field::ClientId),
            s(Field::Target),
        ),
        Section::IdToken => id_token_key(
            s(Field::HomeAccountId),
            s(Field::Environment),
            s(Field::ClientId),
            s(Field::Realm),
        ),
        Section::Account => account_key(
            s(Field::HomeAccountId),
            s(Field::Environment),
            s(Field::Realm),
        ),
        Section::AppMetadata => app_metadata_key(s(Field::Environment), s(Field::ClientId)),
    }
}

/// The extended cache key of a token request's body parameters, as MSAL 1.39 computes it
/// (the length-prefixed encoding shared with MSAL Go), or `""` when no parameter counts.
///
/// ```
/// use tokencache::json::{JsonObject, JsonValue};
/// let mut data = JsonObject::new();
/// data.insert("fmi_path", JsonValue::string("SomeFmiPath/Cred"));
/// data.insert("scope", JsonValue::string("excluded"));
/// assert_eq!(tokencache::keys::ext_cache_key(&data), "2e_axlhg1h9qjyopcsi_evuplq057p6i8mslc940gxc");
/// ```
pub fn ext_cache_key(data: &JsonObject) -> String {
    let mut components: Vec<(&str, String)> = data
        .iter()
        .filter(|(k, v)| !EXT_CACHE_KEY_EXCLUDED_FIELDS.contains(k) && v.is_truthy())
        .map(|(k, v)| (k, v.python_str()))
        .collect();
    if components.is_empty() {
        return String::new();
    }
    components.sort_by(|a, b| a.0.cmp(b.0));
    let mut preimage = String::new();
    for (k, v) in &components {
        preimage.push_str(&format!("{}:{}{}:{}", k.len(), k, v.len(), v));
    }
    let digest = Sha256::digest(preimage.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest)
        .to_lowercase()
}

/// Sorts scopes the way MSAL stores a target: by code point, case preserved, duplicates kept.
pub fn target_of<S: AsRef<str>>(scopes: &[S]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(AsRef::as_ref).collect();
    sorted.sort_unstable();
    sorted.join(" ")
}
