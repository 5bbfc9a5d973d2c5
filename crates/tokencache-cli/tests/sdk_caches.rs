//! Every MSAL SDK's own cache is valid as it is: caches written by the real msal-node (driven
//! by `tests/interop/node/peer.mjs`), by MSAL Python (`tests/golden`) and in the documented
//! formats of MSAL .NET and Go (`tests/fixtures/sdk`) pass `validate`, `repair` leaves them
//! byte for byte, and a tokencache sign-in or refresh of the same account updates each SDK's
//! entries in place, leaving exactly one entry of each kind. msal-node then refreshes from the
//! cache tokencache wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokencache::json::{JsonObject, JsonValue};
use tokencache::{Section, TokenCache, TokenEvent};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tokencache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(args)
        .output()
        .expect("run tokencache")
}

/// Runs the msal-node peer; returns what it reported (the secrets it was handed).
fn msal_node(command: &str, file: &Path) -> JsonObject {
    let peer = repo().join("tests/interop/node");
    assert!(
        peer.join("node_modules/@azure/msal-node").exists(),
        "msal-node is not installed: run `bash .ci/setup-idp`"
    );
    let out = Command::new("node")
        .arg(peer.join("peer.mjs"))
        .arg(command)
        .arg(file)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "msal-node {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).expect("peer report")
}

fn reported<'a>(report: &'a JsonObject, name: &str) -> &'a str {
    report
        .get(name)
        .and_then(JsonValue::as_str)
        .unwrap_or_else(|| panic!("peer reported no {name}"))
}

fn assert_valid_and_left_alone_by_repair(file: &Path, who: &str) {
    let path = file.to_str().expect("utf8 path");
    let before = std::fs::read(file).expect("read");
    let validate = tokencache(&["validate", path]);
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{who}: validate\n{}",
        String::from_utf8_lossy(&validate.stdout)
    );
    let repair = tokencache(&["repair", path]);
    assert_eq!(repair.status.code(), Some(0), "{who}: repair");
    assert!(
        String::from_utf8_lossy(&repair.stdout).contains("nothing to repair"),
        "{who}: {}",
        String::from_utf8_lossy(&repair.stdout)
    );
    assert_eq!(
        std::fs::read(file).expect("read"),
        before,
        "{who}: repair changed the file"
    );
}

/// The keys of one section whose entries belong to `home_account_id`.
fn keys_of(cache: &TokenCache, section: Section, home_account_id: &str) -> Vec<String> {
    cache
        .entries(section)
        .into_iter()
        .filter(|(_, e)| {
            e.as_ref()
                .and_then(|e| e.str_field(tokencache::Field::HomeAccountId))
                == Some(home_account_id)
        })
        .map(|(k, _)| k)
        .collect()
}

fn secret_at(cache: &TokenCache, section: Section, key: &str) -> String {
    cache
        .entries(section)
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, e)| e?.str_field(tokencache::Field::Secret).map(str::to_owned))
        .unwrap_or_else(|| panic!("no entry at {key}"))
}

/// The scopes of the account's access token (a sign-in or refresh asks for the same ones).
fn scopes_of(cache: &TokenCache, home_account_id: &str) -> String {
    cache
        .all_access_tokens()
        .iter()
        .find(|at| at.home_account_id() == Some(home_account_id))
        .and_then(|at| at.target())
        .expect("the account's access token")
        .to_owned()
}

/// What an app's sign-in or refresh of the account in `cache` gets from the provider: the
/// account's own ID token and client info back, new access and refresh tokens for the same
/// scopes.
fn response_for(cache: &TokenCache, home_account_id: &str, tag: &str) -> JsonObject {
    let (_, id_token) = cache
        .entries(Section::IdToken)
        .into_iter()
        .find(|(_, e)| {
            e.as_ref()
                .and_then(|e| e.str_field(tokencache::Field::HomeAccountId))
                == Some(home_account_id)
        })
        .expect("an ID token");
    let id_token = id_token.expect("entry");
    let (uid, utid) = home_account_id.split_once('.').expect("uid.utid");
    let client_info = format!(r#"{{"uid":"{uid}","utid":"{utid}"}}"#);
    let client_info = base64_url(client_info.as_bytes());
    let mut response = JsonObject::new();
    for (name, value) in [
        ("token_type", "Bearer"),
        ("scope", &scopes_of(cache, home_account_id)),
        ("access_token", &format!("tokencache-at-{tag}")),
        ("refresh_token", &format!("tokencache-rt-{tag}")),
        (
            "id_token",
            id_token
                .str_field(tokencache::Field::Secret)
                .expect("id token"),
        ),
        ("client_info", &client_info),
    ] {
        response.insert(name, JsonValue::string(value));
    }
    // The provider answers with the family the account's refresh token is in, if any.
    if let Some(family) = cache.all_refresh_tokens().iter().find_map(|rt| {
        (rt.home_account_id() == Some(home_account_id))
            .then(|| rt.entry().str_field(tokencache::Field::FamilyId))?
    }) {
        response.insert("foci", JsonValue::string(family));
    }
    response.insert("expires_in", JsonValue::Number("3599".into()));
    response
}

/// Base64url without padding (the alphabet is short enough not to need a crate here).
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Records a sign-in (`authorization_code`) or refresh (`refresh_token`) the way a tokencache
/// client does, against the account's own environment and tenant.
fn tokencache_signs_in(file: &Path, client_id: &str, home_account_id: &str, grant: &str) {
    let cache =
        TokenCache::from_json(&std::fs::read_to_string(file).expect("read")).expect("parse");
    let account = cache
        .all_accounts()
        .into_iter()
        .find(|a| a.home_account_id() == Some(home_account_id))
        .expect("the account");
    let environment = account.environment().expect("environment").to_owned();
    let realm = account.realm().expect("realm").to_owned();
    // A client records the scopes the provider granted (the response's `scope`).
    let scopes = scopes_of(&cache, home_account_id);
    let event = TokenEvent::new(client_id, scopes.split_ascii_whitespace())
        .token_endpoint(format!("https://{environment}/{realm}/oauth2/v2.0/token"))
        .environment(environment)
        .grant_type(grant)
        .response(response_for(&cache, home_account_id, grant));
    let event = TokenEvent {
        skip_account_creation: grant == "refresh_token",
        ..event
    };
    cache.add(&event).expect("add");
    std::fs::write(file, cache.serialize()).expect("write");
}

fn assert_one_of_each(file: &Path, home_account_id: &str, who: &str) -> TokenCache {
    let cache =
        TokenCache::from_json(&std::fs::read_to_string(file).expect("read")).expect("parse");
    for section in [
        Section::AccessToken,
        Section::RefreshToken,
        Section::IdToken,
        Section::Account,
    ] {
        let keys = keys_of(&cache, section, home_account_id);
        assert_eq!(keys.len(), 1, "{who}: {section:?} {keys:#?}");
    }
    cache
}

#[test]
fn msal_node_cache_is_valid_and_shared_both_ways_without_duplicates() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("node.json");
    msal_node("sign-in", &file);
    assert_valid_and_left_alone_by_repair(&file, "msal-node sign-in");

    let cache =
        TokenCache::from_json(&std::fs::read_to_string(&file).expect("read")).expect("parse");
    let account = &cache.all_accounts()[0];
    let hid = account.home_account_id().expect("hid").to_owned();
    let client_id = cache.all_refresh_tokens()[0]
        .entry()
        .str_field(tokencache::Field::ClientId)
        .expect("client id")
        .to_owned();
    let family_key = keys_of(&cache, Section::RefreshToken, &hid).remove(0);
    assert!(
        family_key.ends_with("-refreshtoken-1---"),
        "msal-node keys its family refresh token by the family id: {family_key}"
    );

    // A tokencache refresh and a tokencache sign-in update msal-node's entries in place.
    for grant in ["refresh_token", "authorization_code"] {
        tokencache_signs_in(&file, &client_id, &hid, grant);
        let cache = assert_one_of_each(&file, &hid, &format!("after tokencache's {grant}"));
        assert_eq!(
            secret_at(&cache, Section::RefreshToken, &family_key),
            format!("tokencache-rt-{grant}"),
            "the family refresh token was updated under msal-node's key"
        );
        assert_valid_and_left_alone_by_repair(&file, &format!("after tokencache's {grant}"));
    }

    // msal-node finds the refresh token tokencache wrote and refreshes with it, in place.
    let report = msal_node("refresh", &file);
    assert_eq!(reported(&report, "home_account_id"), hid);
    assert_eq!(
        reported(&report, "refresh_token_used"),
        "tokencache-rt-authorization_code"
    );
    let cache = assert_one_of_each(&file, &hid, "after msal-node's refresh");
    assert_eq!(
        secret_at(&cache, Section::RefreshToken, &family_key),
        reported(&report, "refresh_token")
    );
    assert_valid_and_left_alone_by_repair(&file, "after msal-node's refresh");
}

#[test]
fn dotnet_go_and_python_caches_are_valid_and_updated_in_place() {
    let dir = tempfile::tempdir().expect("tmp");
    let fixtures = [
        ("MSAL .NET", repo().join("tests/fixtures/sdk/dotnet.json")),
        ("MSAL Go", repo().join("tests/fixtures/sdk/go.json")),
        (
            "MSAL Python",
            repo().join("tests/golden/auth_code_foci.json"),
        ),
    ];
    for (who, fixture) in fixtures {
        let file = dir.path().join("cache.json");
        std::fs::copy(&fixture, &file).expect("copy");
        assert_valid_and_left_alone_by_repair(&file, who);
        let cache =
            TokenCache::from_json(&std::fs::read_to_string(&file).expect("read")).expect("parse");
        let rt = cache.all_refresh_tokens().remove(0);
        let hid = rt.home_account_id().expect("hid").to_owned();
        let client_id = rt
            .entry()
            .str_field(tokencache::Field::ClientId)
            .expect("client id")
            .to_owned();
        let keys_before: Vec<Vec<String>> = [Section::RefreshToken, Section::IdToken]
            .into_iter()
            .map(|s| keys_of(&cache, s, &hid))
            .collect();
        tokencache_signs_in(&file, &client_id, &hid, "refresh_token");
        let cache = assert_one_of_each(&file, &hid, who);
        let keys_after: Vec<Vec<String>> = [Section::RefreshToken, Section::IdToken]
            .into_iter()
            .map(|s| keys_of(&cache, s, &hid))
            .collect();
        assert_eq!(
            keys_after, keys_before,
            "{who}: entries stay under their keys"
        );
        assert_eq!(
            secret_at(&cache, Section::RefreshToken, &keys_after[0][0]),
            "tokencache-rt-refresh_token",
            "{who}"
        );
        assert_valid_and_left_alone_by_repair(&file, &format!("{who} after a refresh"));
    }
}
