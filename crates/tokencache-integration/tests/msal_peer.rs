//! MSAL Python 1.39 as the reference: the cache our client writes for a sequence of real
//! provider responses is byte-identical to what MSAL Python writes for the same responses, and
//! MSAL Python and tokencache take turns on one cache file against a provider served over HTTPS
//! with a test CA.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{Idp, Recording, client_trusting, python, repo_root, test_ca};
use tokencache::json::{JsonObject, JsonValue};
use tokencache::{Clock, ManualClock, Section, SystemClock, TokenCache};
use tokencache_client::{
    AuthCodeOptions, ClientCredential, ConfidentialClientApplication, PublicClientApplication,
    SilentOptions, TokenSource,
};
use tokencache_file::FileAccessor;

const API: &str = "api://test-api/read";
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
    "assertion",
];

fn peer() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    Some((python()?, repo_root().join("tests/interop/client_peer.py")))
}

fn strings(items: impl IntoIterator<Item = String>) -> JsonValue {
    JsonValue::Array(items.into_iter().map(|s| JsonValue::string(&s)).collect())
}

/// The MSAL event for a recorded exchange, assembled as MSAL Python's application layer does
/// (spec §2): the response's scopes (else the requested ones), the authority's host as the
/// environment, the request as `data`; a refresh pops the refresh token and updates it in place.
fn msal_step(ex: &common::Exchange, now: i64) -> JsonObject {
    let form = |k: &str| ex.form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut response = JsonObject::parse(&ex.body).unwrap();
    let grant = form("grant_type").unwrap();
    let scopes: Vec<String> = response
        .get_str("scope")
        .map(str::to_owned)
        .or_else(|| form("scope"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut step = JsonObject::new();
    let mut data = JsonObject::new();
    for (k, v) in &ex.form {
        if !SECRET_FIELDS.contains(&k.as_str()) {
            data.insert(k, JsonValue::string(v));
        }
    }
    let mut event = JsonObject::new();
    if grant == "refresh_token" {
        let new_rt = response.remove("refresh_token").unwrap();
        step.insert(
            "old_refresh_token",
            JsonValue::string(&form("refresh_token").unwrap()),
        );
        step.insert("new_refresh_token", new_rt);
        event.insert("skip_account_creation", JsonValue::Bool(true));
    }
    event.insert("client_id", JsonValue::string(&form("client_id").unwrap()));
    event.insert("scope", strings(scopes));
    // MSAL requires https; the host, tenant and everything else are unchanged.
    event.insert(
        "token_endpoint",
        JsonValue::string(&ex.url.replacen("http://", "https://", 1)),
    );
    event.insert("grant_type", JsonValue::string(&grant));
    event.insert("response", JsonValue::Object(Box::new(response)));
    event.insert("data", JsonValue::Object(Box::new(data)));
    event.insert("environment", JsonValue::string("127.0.0.1"));
    step.insert("event", JsonValue::Object(Box::new(event)));
    step.insert("now", JsonValue::Number(now.to_string().into()));
    step
}

#[tokio::test]
async fn the_cache_after_every_flow_equals_what_msal_python_writes_for_the_same_responses() {
    let Some((py, script)) = peer() else { return };
    // refresh_in appears for tokens living 2 hours or more.
    let idp = Idp::start(&[("IDP_AT_TTL", "7200")]);
    let cache = Arc::new(TokenCache::new());
    let now = SystemClock.now();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let http = Recording::new();
    let public = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .cache(cache.clone())
        .clock(clock.clone())
        .http_client(http.clone())
        .build()
        .unwrap();
    let confidential = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .cache(cache.clone())
        .clock(clock.clone())
        .http_client(http.clone())
        .build()
        .unwrap();

    // Device code (bob), then a refresh that rotates bob's refresh token.
    let flow = public.initiate_device_flow(&[API]).await.unwrap();
    idp.approve_device(&flow.user_code, "bob").await;
    let bob = public
        .acquire_token_by_device_flow(&flow)
        .await
        .unwrap()
        .account
        .unwrap();
    public
        .acquire_token_silent_with(&[API], &bob, &SilentOptions::default().force_refresh())
        .await
        .unwrap();
    // Auth code (alice), for a token to the confidential app's API; then on-behalf-of.
    let flow = public
        .start_auth_code_flow(
            &["api://confidential-app/access_as_user"],
            "http://127.0.0.1:53682/callback",
            &AuthCodeOptions::default(),
        )
        .await
        .unwrap();
    let params = idp.browse(&flow.auth_uri, "alice").await;
    let alice = public.finish_auth_code_flow(&flow, &params).await.unwrap();
    confidential
        .acquire_token_on_behalf_of(alice.access_token.expose(), &["api://downstream/.default"])
        .await
        .unwrap();
    // Client credentials.
    confidential
        .acquire_token_for_client(&["api://test-api/.default"])
        .await
        .unwrap();

    let exchanges: Vec<_> = http
        .exchanges
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.status == 200)
        .cloned()
        .collect();
    let grants: Vec<String> = exchanges
        .iter()
        .map(|e| {
            e.form
                .iter()
                .find(|(k, _)| k == "grant_type")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert_eq!(
        grants,
        [
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "client_credentials"
        ]
    );
    let steps = JsonValue::Array(
        exchanges
            .iter()
            .map(|e| JsonValue::Object(Box::new(msal_step(e, now))))
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let steps_file = dir.path().join("steps.json");
    std::fs::write(&steps_file, tokencache::json::to_python_json(&steps, false)).unwrap();
    let out = Command::new(&py)
        .arg(&script)
        .arg("replay")
        .arg(&steps_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python_cache = String::from_utf8(out.stdout).unwrap();
    let ours = cache.serialize();
    assert_eq!(
        cache.len(Section::RefreshToken),
        3,
        "bob, alice and the OBO grant"
    );
    assert!(ours.contains("\"refresh_on\""), "refresh_in was exercised");
    assert!(ours.contains("\"family_id\": \"1\""), "foci was exercised");
    assert_eq!(ours, python_cache, "byte-identical to MSAL Python 1.39");
}

fn spawn_python_device(
    py: &std::path::Path,
    script: &std::path::Path,
    authority: &str,
    cache: &std::path::Path,
    ca: &std::path::Path,
) -> std::process::Child {
    Command::new(py)
        .arg(script)
        .args(["device", authority, "public-app", API])
        .arg(cache)
        .env("REQUESTS_CA_BUNDLE", ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// MSAL Python signs `user` in with the device code flow into `cache` (approved through the
/// provider's helper); returns its result line.
async fn python_device_sign_in(
    idp: &Idp,
    py: &std::path::Path,
    script: &std::path::Path,
    cache: &std::path::Path,
    ca: &std::path::Path,
    user: &str,
) -> String {
    let mut child = spawn_python_device(py, script, &idp.authority(), cache, ca);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let flow = JsonObject::parse(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    idp.approve_device(flow.get_str("user_code").unwrap(), user)
        .await;
    line.clear();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "MSAL Python device flow failed: {line}"
    );
    line
}

fn python_silent(
    py: &std::path::Path,
    script: &std::path::Path,
    authority: &str,
    cache: &std::path::Path,
    ca: &std::path::Path,
    force: bool,
) -> JsonObject {
    let mut cmd = Command::new(py);
    cmd.arg(script)
        .args(["silent", authority, "public-app", API])
        .arg(cache)
        .env("REQUESTS_CA_BUNDLE", ca);
    if force {
        cmd.arg("force");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

/// The provider, Entra-shaped, over HTTPS with a throw-away CA in `dir` (MSAL Python requires
/// https); returns it and the CA certificate to trust.
fn https_idp(dir: &std::path::Path) -> (Idp, std::path::PathBuf) {
    let (ca, cert, key) = test_ca(dir);
    let idp = Idp::start_raw(
        &[
            ("IDP_ENTRA_COMPAT", "1"),
            (
                "IDP_ISSUER_PATH",
                "/7e57a000-0000-4000-8000-000000000001/v2.0",
            ),
            ("IDP_TLS_CERT", cert.to_str().unwrap()),
            ("IDP_TLS_KEY", key.to_str().unwrap()),
        ],
        Some(&ca),
    );
    (idp, ca)
}

/// The accessor of the cache file at `path`.
fn file_accessor(path: &std::path::Path) -> Arc<FileAccessor> {
    let file = tokencache_file::FileStore::open(path, Default::default()).unwrap();
    Arc::new(FileAccessor::new(Arc::new(file)))
}

/// The provider's public client over the cache file at `path`, trusting the test CA `ca`.
fn public_app_over_file(
    authority: &str,
    ca: &std::path::Path,
    path: &std::path::Path,
) -> PublicClientApplication {
    PublicClientApplication::builder("public-app")
        .authority(authority)
        .unwrap()
        .http_client(Arc::new(client_trusting(ca)))
        .cache_accessor(file_accessor(path))
        .build()
        .unwrap()
}

#[tokio::test]
async fn msal_python_and_tokencache_share_one_cache_file_over_https() {
    let Some((py, script)) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (idp, ca) = https_idp(dir.path());
    let authority = idp.authority();
    assert!(authority.starts_with("https://"), "{authority}");
    let app_for = |path: &std::path::Path| public_app_over_file(&authority, &ca, path);

    // 1. MSAL Python signs bob in with the device code flow and saves the cache.
    let python_file = dir.path().join("from-python.json");
    let line = python_device_sign_in(&idp, &py, &script, &python_file, &ca, "bob").await;
    let result = JsonObject::parse(line.trim()).unwrap();
    assert_eq!(
        result.get_str("token_source"),
        Some("identity_provider"),
        "{line}"
    );

    // tokencache loads it and acquires silently: from the cache, then by refreshing.
    let app = app_for(&python_file);
    let accounts = app.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].username, "bob@example.test");
    let hit = app
        .acquire_token_silent(&[API], &accounts[0])
        .await
        .unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
    let refreshed = app
        .acquire_token_silent_with(
            &[API],
            &accounts[0],
            &SilentOptions::default().force_refresh(),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    // ... and MSAL Python continues with the refresh token tokencache rotated.
    let r = python_silent(&py, &script, &authority, &python_file, &ca, true);
    assert_eq!(
        r.get_str("token_source"),
        Some("identity_provider"),
        "{r:?}"
    );

    // 2. The reverse: tokencache signs alice in; MSAL Python reads the file.
    let rust_file = dir.path().join("from-rust.json");
    let app = app_for(&rust_file);
    let flow = app.initiate_device_flow(&[API]).await.unwrap();
    idp.approve_device(&flow.user_code, "alice").await;
    let signed_in = app.acquire_token_by_device_flow(&flow).await.unwrap();
    let r = python_silent(&py, &script, &authority, &rust_file, &ca, false);
    assert_eq!(r.get_str("token_source"), Some("cache"), "{r:?}");
    let r = python_silent(&py, &script, &authority, &rust_file, &ca, true);
    assert_eq!(
        r.get_str("token_source"),
        Some("identity_provider"),
        "{r:?}"
    );
    // MSAL Python rotated the refresh token; tokencache picks the new one up from the file.
    let account = signed_in.account.unwrap();
    let again = app
        .acquire_token_silent_with(&[API], &account, &SilentOptions::default().force_refresh())
        .await
        .unwrap();
    assert_eq!(again.token_source, TokenSource::IdentityProvider);
}

/// Members whose values the provider issues differently on each run: the tokens and the times.
const ISSUED_MEMBERS: &[&str] = &[
    "secret",
    "cached_at",
    "expires_on",
    "extended_expires_on",
    "ext_expires_on",
    "refresh_on",
    "last_modification_time",
];

/// A cache file with the values the provider issues differently replaced by their name, so two
/// caches left by the same flows compare equal: every section, key and other member as written.
fn normalised(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut doc = JsonObject::parse(&text).unwrap();
    let sections: Vec<String> = doc.iter().map(|(k, _)| k.to_owned()).collect();
    for section in sections {
        let Some(JsonValue::Object(entries)) = doc.remove(&section) else {
            panic!("section {section} is not an object");
        };
        let mut out = JsonObject::new();
        for (key, entry) in entries.iter() {
            let JsonValue::Object(members) = entry else {
                panic!("{section}/{key} is not an object");
            };
            let mut members = (**members).clone();
            for name in ISSUED_MEMBERS {
                if members.contains_key(name) {
                    members.insert(name, JsonValue::string(&format!("<{name}>")));
                }
            }
            out.insert(key, JsonValue::Object(Box::new(members)));
        }
        doc.insert(&section, JsonValue::Object(Box::new(out)));
    }
    tokencache::json::to_python_json(&JsonValue::Object(Box::new(doc)), true)
}

/// MSAL Python's own applications (not just its cache) and tokencache's run the same flows
/// against the same provider; the caches they leave are the same but for the tokens and times
/// the provider issues each time.
#[tokio::test]
async fn msal_python_apps_and_tokencache_apps_leave_the_same_cache_after_the_same_flows() {
    let Some((py, script)) = peer() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (idp, ca) = https_idp(dir.path());
    let authority = idp.authority();

    // A public client: device code sign-in, then a refresh.
    let python_public = dir.path().join("python-public.json");
    python_device_sign_in(&idp, &py, &script, &python_public, &ca, "alice").await;
    let r = python_silent(&py, &script, &authority, &python_public, &ca, true);
    assert_eq!(
        r.get_str("token_source"),
        Some("identity_provider"),
        "{r:?}"
    );

    let rust_public = dir.path().join("rust-public.json");
    let app = public_app_over_file(&authority, &ca, &rust_public);
    let flow = app.initiate_device_flow(&[API]).await.unwrap();
    idp.approve_device(&flow.user_code, "alice").await;
    let signed_in = app.acquire_token_by_device_flow(&flow).await.unwrap();
    let refreshed = app
        .acquire_token_silent_with(
            &[API],
            &signed_in.account.unwrap(),
            &SilentOptions::default().force_refresh(),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    let public = TokenCache::from_json(&std::fs::read_to_string(&rust_public).unwrap()).unwrap();
    assert_eq!(
        [
            public.len(Section::Account),
            public.len(Section::RefreshToken),
            public.len(Section::IdToken)
        ],
        [1, 1, 1],
        "alice, once"
    );
    assert!(public.len(Section::AccessToken) >= 1);
    assert_eq!(
        normalised(&rust_public),
        normalised(&python_public),
        "public client: device code, then a refresh"
    );

    // A confidential client: a user signs in with the auth code flow, then an app token.
    let redirect = "http://127.0.0.1:8400/callback";
    let python_web = dir.path().join("python-web.json");
    let out = Command::new(&py)
        .arg(&script)
        .args([
            "web",
            &authority,
            "confidential-app",
            "confidential-secret",
            API,
            redirect,
            "bob",
        ])
        .arg(&python_web)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(!format!("{report:?}").contains("error"), "{report:?}");

    let rust_web = dir.path().join("rust-web.json");
    let web = ConfidentialClientApplication::builder("confidential-app")
        .authority(&authority)
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .http_client(Arc::new(client_trusting(&ca)))
        .cache_accessor(file_accessor(&rust_web))
        .build()
        .unwrap();
    let flow = web
        .start_auth_code_flow(&[API], redirect, &AuthCodeOptions::default())
        .await
        .unwrap();
    let params = idp.browse(&flow.auth_uri, "bob").await;
    web.finish_auth_code_flow(&flow, &params).await.unwrap();
    web.acquire_token_for_client(&["api://test-api/.default"])
        .await
        .unwrap();
    let confidential = TokenCache::from_json(&std::fs::read_to_string(&rust_web).unwrap()).unwrap();
    assert_eq!(
        confidential.len(Section::AccessToken),
        2,
        "bob's token and the app token"
    );
    assert_eq!(confidential.len(Section::Account), 1);
    assert_eq!(
        normalised(&rust_web),
        normalised(&python_web),
        "confidential client: auth code, then client credentials"
    );
}
