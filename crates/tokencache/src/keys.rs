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

/// Every key an MSAL SDK writes `entry` under in `section`: MSAL Python's ([`canonical_key`],
/// always first), then msal-node's, MSAL .NET's (and Java's) and MSAL Go's where they differ.
///
/// A cache shared by apps in several languages holds entries under each writer's own key, and
/// each SDK finds the others' entries by their fields, not their keys. So an entry under any of
/// these keys is where its writer put it: [`crate::TokenCache::problems`] accepts it,
/// [`crate::TokenCache::repair`] leaves it there, and an update of an equivalent entry writes
/// over it in place instead of adding a second copy.
///
/// The differences, from each SDK's key code:
///
/// - msal-node appends the authentication scheme (empty for Bearer; older versions also the
///   requested-claims hash before it), and keys a family refresh token by its family id;
/// - MSAL .NET keys a refresh token without a target, a family refresh token by its family id,
///   and a proof-of-possession access token under `accesstoken_with_authscheme` plus its type;
/// - MSAL Go 1.1+ keys a refresh token by four parts (family id or client id), an ID token
///   without the empty target, and appends a non-Bearer token type to an access token key.
///
/// ```
/// use tokencache::{Section, TokenCache};
/// let cache = TokenCache::from_json(r#"{"RefreshToken": {"h-env-refreshtoken-1---": {
///     "credential_type": "RefreshToken", "secret": "s", "home_account_id": "h",
///     "environment": "env", "client_id": "cid", "family_id": "1"}}}"#).unwrap();
/// let (key, entry) = &cache.entries(Section::RefreshToken)[0];
/// let keys = tokencache::keys::native_keys(Section::RefreshToken, entry.as_ref().unwrap());
/// assert_eq!(keys[0], "h-env-refreshtoken-cid--", "MSAL Python's");
/// assert!(keys.contains(key), "msal-node's family key");
/// ```
pub fn native_keys(section: Section, entry: &Entry) -> Vec<String> {
    let python = canonical_key(section, entry);
    let s = |f: Field| entry.str_field(f).unwrap_or_default();
    let (hid, env, cid, realm, target) = (
        s(Field::HomeAccountId),
        s(Field::Environment),
        s(Field::ClientId),
        s(Field::Realm),
        s(Field::Target),
    );
    let family = entry
        .str_field(Field::FamilyId)
        .filter(|f| !f.is_empty())
        .unwrap_or(cid);
    let token_type = entry.str_field(Field::TokenType).unwrap_or_default();
    let scheme = if token_type.is_empty() || token_type.eq_ignore_ascii_case("bearer") {
        ""
    } else {
        token_type
    };
    let claims_hash = entry
        .str_field(Field::RequestedClaimsHash)
        .unwrap_or_default();
    let ext = entry
        .str_field(Field::ExtCacheKey)
        .filter(|e| !e.is_empty());
    let with_ext = |parts: Vec<&str>| match ext {
        Some(ext) => format!("{}-{}", join_lower(&parts), ext.to_lowercase()),
        None => join_lower(&parts),
    };
    let credential_type = entry
        .str_field(Field::CredentialType)
        .unwrap_or(section.name());
    let mut keys = vec![python];
    match section {
        Section::AccessToken => {
            let node = [hid, env, credential_type, cid, realm, target];
            keys.push(with_ext([&node[..], &[scheme]].concat()));
            keys.push(with_ext([&node[..], &[claims_hash, scheme]].concat()));
            if !scheme.is_empty() {
                let base = [hid, env, "AccessToken", cid, realm, target];
                keys.push(with_ext([&base[..], &[scheme]].concat()));
                let dotnet = [hid, env, "AccessToken_With_AuthScheme", cid, realm, target];
                keys.push(with_ext([&dotnet[..], &[scheme]].concat()));
            }
        }
        Section::RefreshToken => {
            // msal-node's, today's and older (with the requested-claims hash).
            let node = [hid, env, "RefreshToken", family, realm, target];
            for tail in [&[""][..], &[claims_hash, ""][..]] {
                keys.push(join_lower(&[&node[..], tail].concat()));
            }
            keys.push(join_lower(&[hid, env, "RefreshToken", family, "", ""]));
            keys.push(join_lower(&[hid, env, "RefreshToken", family]));
        }
        Section::IdToken => {
            keys.push(join_lower(&[hid, env, "IdToken", cid, realm, "", ""]));
            keys.push(join_lower(&[hid, env, "IdToken", cid, realm, "", "", ""]));
            keys.push(join_lower(&[hid, env, "IdToken", cid, realm]));
        }
        Section::Account => {
            // msal-node names an account by its home tenant (the part of the home account id
            // after the dot), whichever tenant profile the entry describes.
            let home_tenant = hid.split_once('.').map_or(realm, |(_, tenant)| tenant);
            keys.push(join_lower(&[hid, env, home_tenant]));
        }
        Section::AppMetadata => {}
    }
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// MSAL Python's key with an access token's scopes sorted: two entries with the same
/// identity are the same token to an SDK that compares scopes as sets (MSAL .NET orders them
/// one way, MSAL Python another, old MSALs not at all).
pub(crate) fn identity(section: Section, entry: &Entry) -> String {
    if section != Section::AccessToken {
        return canonical_key(section, entry);
    }
    let target = entry
        .str_field(Field::Target)
        .unwrap_or_default()
        .to_lowercase();
    let mut scopes: Vec<&str> = target.split_ascii_whitespace().collect();
    scopes.sort_unstable();
    let s = |f: Field| entry.str_field(f).unwrap_or_default();
    access_token_key(
        s(Field::HomeAccountId),
        s(Field::Environment),
        s(Field::ClientId),
        s(Field::Realm),
        &scopes.join(" "),
        entry.str_field(Field::ExtCacheKey),
    )
}

/// Whether `key` is where some MSAL SDK would write `entry` (see [`native_keys`]).
pub fn is_native_key(section: Section, entry: &Entry, key: &str) -> bool {
    native_keys(section, entry).iter().any(|k| k == key)
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
