//! Every flow end to end against a real OpenID provider (oidc-provider on loopback).

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Idp, Recording, device_sign_in};
use tokencache::{Clock, ManualClock, Section, SystemClock, TokenCache};
use tokencache_client::{
    AuthCodeOptions, ClientCredential, ClientError, ConfidentialClientApplication,
    PublicClientApplication, SilentOptions, TokenSource,
};

const API: &str = "api://test-api/read";

fn public(idp: &Idp, cache: &Arc<TokenCache>) -> PublicClientApplication {
    PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .cache(cache.clone())
        .build()
        .unwrap()
}

fn public_with(
    idp: &Idp,
    cache: &Arc<TokenCache>,
    clock: Arc<dyn Clock>,
) -> PublicClientApplication {
    PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .cache(cache.clone())
        .clock(clock)
        .build()
        .unwrap()
}

fn rt_secrets(cache: &TokenCache) -> Vec<String> {
    cache
        .all_refresh_tokens()
        .iter()
        .map(|rt| rt.secret().unwrap().expose().to_owned())
        .collect()
}

#[tokio::test]
async fn device_code_then_cache_hit_then_refresh_with_rotation() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let app = public(&idp, &cache);

    let first = device_sign_in(&idp, &app, "bob").await;
    assert_eq!(first.token_source, TokenSource::IdentityProvider);
    let account = first.account.clone().unwrap();
    assert_eq!(account.username, "bob@example.test");
    assert_eq!(
        account.home_account_id,
        format!("b0b00000-0000-4000-8000-000000000b0b.{}", idp.tenant)
    );
    assert_eq!(first.scopes, vec![API.to_owned()]);
    assert!(first.id_token_claims.is_some());
    let accounts = app.accounts().await.unwrap();
    assert_eq!(accounts, vec![account.clone()]);
    // What the cache holds: one of each, FOCI family from the response's `foci`.
    assert_eq!(cache.len(Section::AccessToken), 1);
    assert_eq!(cache.len(Section::IdToken), 1);
    let rts = cache.all_refresh_tokens();
    assert_eq!(rts.len(), 1);
    assert_eq!(rts[0].family_id(), Some("1"));
    let acct = &cache.all_accounts()[0];
    assert_eq!(
        acct.account_source(),
        Some("urn:ietf:params:oauth:grant-type:device_code")
    );

    let hit = app.acquire_token_silent(&[API], &account).await.unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
    assert_eq!(hit.access_token.expose(), first.access_token.expose());
    assert_eq!(idp.token_requests("refresh_token").await, 0);

    let before = rt_secrets(&cache);
    let refreshed = app
        .acquire_token_silent_with(&[API], &account, &SilentOptions::default().force_refresh())
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    assert_ne!(refreshed.access_token.expose(), first.access_token.expose());
    let after = rt_secrets(&cache);
    assert_eq!(
        after.len(),
        1,
        "the rotated refresh token replaces the old one in place"
    );
    assert_ne!(after, before);
    assert_eq!(cache.len(Section::Account), 1);
    assert_eq!(idp.token_requests("refresh_token").await, 1);
    assert_eq!(
        idp.token_requests("urn:ietf:params:oauth:grant-type:device_code")
            .await,
        1
    );

    // The rotated token keeps working: a second forced refresh succeeds.
    app.acquire_token_silent_with(&[API], &account, &SilentOptions::default().force_refresh())
        .await
        .unwrap();
    assert_eq!(idp.token_requests("refresh_token").await, 2);
}

#[tokio::test]
async fn device_code_pending_denied_and_expired() {
    let idp = Idp::start(&[("IDP_DEVICE_TTL", "3")]);
    let app = public(&idp, &Arc::new(TokenCache::new()));

    let flow = app.initiate_device_flow(&[API]).await.unwrap();
    assert_eq!(flow.interval, 1);
    idp.approve_device(&flow.user_code, "deny").await;
    match app.acquire_token_by_device_flow(&flow).await {
        Err(ClientError::SignInFailed { error, .. }) => assert_eq!(error, "access_denied"),
        other => panic!("expected a declined sign-in, got {other:?}"),
    }

    let flow = app.initiate_device_flow(&[API]).await.unwrap();
    let started = std::time::Instant::now();
    match app.acquire_token_by_device_flow(&flow).await {
        Err(ClientError::DeviceCodeExpired) => {}
        other => panic!("expected expiry, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    // It polled while pending, about once a second.
    let polls = idp
        .token_requests("urn:ietf:params:oauth:grant-type:device_code")
        .await;
    assert!(polls >= 2, "{polls} polls");
}

/// An interactive sign-in of alice through the loopback listener; `browser` gets the
/// authorization URL and plays the browser (on its own task).
async fn sign_in_interactively<F, Fut>(
    app: &PublicClientApplication,
    browser: F,
) -> tokencache_client::AuthenticationResult
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let mut tx = Some(tx);
    let browser = tokio::spawn(async move { browser(rx.await.unwrap()).await });
    let result = app
        .acquire_token_interactive(
            &[API],
            "http://127.0.0.1/callback",
            &AuthCodeOptions::default().login_hint("alice"),
            Duration::from_secs(30),
            |url| {
                tx.take().unwrap().send(url.to_owned()).unwrap();
                Ok(())
            },
        )
        .await
        .unwrap();
    browser.await.unwrap();
    result
}

#[tokio::test]
async fn interactive_auth_code_with_pkce_through_the_loopback_listener() {
    let idp = Arc::new(Idp::start(&[]));
    let cache = Arc::new(TokenCache::new());
    let app = public(&idp, &cache);
    let provider = idp.clone();
    let result = sign_in_interactively(&app, move |url| async move {
        assert!(url.contains("code_challenge_method=S256"), "{url}");
        provider.browse_and_follow(&url, "alice").await;
    })
    .await;
    assert_eq!(result.token_source, TokenSource::IdentityProvider);
    assert_eq!(result.account.unwrap().username, "alice@example.test");
    assert_eq!(
        cache.all_accounts()[0].account_source(),
        Some("authorization_code")
    );
    assert_eq!(idp.token_requests("authorization_code").await, 1);
}

#[tokio::test]
async fn web_auth_code_flow_checks_state_and_survives_a_session_round_trip() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let app = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .cache(cache.clone())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:8400/callback";
    let flow = app
        .start_auth_code_flow(&[API], redirect, &AuthCodeOptions::default())
        .await
        .unwrap();
    let stored = flow.to_json();
    let flow = tokencache_client::AuthCodeFlow::from_json(&stored).unwrap();
    let mut params = idp.browse(&flow.auth_uri, "bob").await;

    let mut forged = params.clone();
    for (k, v) in &mut forged {
        if k == "state" {
            *v = "forged".into();
        }
    }
    assert!(matches!(
        app.finish_auth_code_flow(&flow, &forged).await,
        Err(ClientError::FlowMismatch(_))
    ));
    let result = app.finish_auth_code_flow(&flow, &params).await.unwrap();
    let account = result.account.unwrap();
    assert_eq!(account.username, "bob@example.test");
    // The code is single-use: replaying the redirect is refused by the provider.
    let replay = app.finish_auth_code_flow(&flow, &params).await.unwrap_err();
    assert_eq!(replay.oauth().unwrap().error, "invalid_grant");
    // An error on the redirect is a failed sign-in.
    params.retain(|(k, _)| k == "state");
    params.push(("error".into(), "access_denied".into()));
    assert!(matches!(
        app.finish_auth_code_flow(&flow, &params).await,
        Err(ClientError::SignInFailed { .. })
    ));
    let hit = app.acquire_token_silent(&[API], &account).await.unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
}

#[tokio::test]
async fn proactive_refresh_at_refresh_on_and_fallback_to_the_cached_token_when_it_fails() {
    // expires_in 7200 makes the provider send refresh_in 3600 (Entra's behaviour).
    let idp = Idp::start(&[("IDP_AT_TTL", "7200")]);
    let cache = Arc::new(TokenCache::new());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let http = Recording::new();
    let app = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .cache(cache.clone())
        .clock(clock.clone())
        .http_client(http.clone())
        .build()
        .unwrap();
    let first = device_sign_in(&idp, &app, "alice").await;
    let account = first.account.clone().unwrap();
    assert_eq!(first.refresh_on, Some(first.expires_on - 3600));

    clock.advance(3601); // past refresh_on, far from expiry
    let refreshed = app.acquire_token_silent(&[API], &account).await.unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    assert_eq!(idp.token_requests("refresh_token").await, 1);

    clock.advance(3601); // past the new refresh_on; the provider is unreachable
    http.offline
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let aging = app.acquire_token_silent(&[API], &account).await.unwrap();
    assert_eq!(aging.token_source, TokenSource::Cache);
    assert_eq!(aging.access_token.expose(), refreshed.access_token.expose());

    clock.advance(3400); // within 5 minutes of expiry: not served, and refresh fails
    let e = app
        .acquire_token_silent(&[API], &account)
        .await
        .unwrap_err();
    assert!(e.is_network(), "{e}");
    assert!(matches!(e, ClientError::Network { .. }));
    // Nothing was removed on failure.
    assert_eq!(cache.len(Section::RefreshToken), 1);
}

#[tokio::test]
async fn tokens_within_the_expiry_buffer_are_refreshed_every_time() {
    let idp = Idp::start(&[("IDP_AT_TTL", "200")]);
    let cache = Arc::new(TokenCache::new());
    let app = public(&idp, &cache);
    let account = device_sign_in(&idp, &app, "alice").await.account.unwrap();
    for _ in 0..2 {
        let r = app.acquire_token_silent(&[API], &account).await.unwrap();
        assert_eq!(r.token_source, TokenSource::IdentityProvider);
    }
    assert_eq!(idp.token_requests("refresh_token").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_silent_calls_make_exactly_one_refresh() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = public_with(&idp, &cache, clock.clone());
    let account = device_sign_in(&idp, &app, "alice").await.account.unwrap();
    clock.advance(3400); // 200 s left: inside the 5-minute buffer
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let app = app.clone();
            let account = account.clone();
            tokio::spawn(async move { app.acquire_token_silent(&[API], &account).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for c in calls {
        tokens.push(c.await.unwrap().unwrap().access_token.expose().to_owned());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every call got the one refreshed token");
    assert_eq!(idp.token_requests("refresh_token").await, 1);
    assert_eq!(cache.len(Section::RefreshToken), 1);
}

#[tokio::test]
async fn client_credentials_are_cached_and_bad_secrets_are_clear_errors() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let app = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .cache(cache.clone())
        .build()
        .unwrap();
    let scopes = ["api://test-api/.default"];
    let first = app.acquire_token_for_client(&scopes).await.unwrap();
    assert_eq!(first.token_source, TokenSource::IdentityProvider);
    assert!(first.account.is_none());
    let second = app.acquire_token_for_client(&scopes).await.unwrap();
    assert_eq!(second.token_source, TokenSource::Cache);
    assert_eq!(idp.token_requests("client_credentials").await, 1);
    let at = &cache.all_access_tokens()[0];
    assert_eq!(at.home_account_id(), None);
    assert_eq!(
        at.partition_key().unwrap().as_str(),
        format!("confidential-app_{}_AppTokenCache", idp.tenant)
    );
    assert_eq!(cache.len(Section::Account), 0);

    let bad = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("wrong"))
        .build()
        .unwrap();
    let e = bad.acquire_token_for_client(&scopes).await.unwrap_err();
    let o = e.oauth().expect("an OAuth error");
    assert_eq!((o.error.as_str(), o.status), ("invalid_client", 401));
    assert!(!e.is_interaction_required() && !e.is_network());
    assert!(!e.to_string().contains("wrong"), "{e}");
    assert!(!format!("{bad:?}").contains("confidential-secret"));
}

#[tokio::test]
async fn on_behalf_of_exchanges_a_user_token_and_caches_the_result() {
    let idp = Idp::start(&[]);
    let user_app = public(&idp, &Arc::new(TokenCache::new()));
    let flow = user_app
        .start_auth_code_flow(
            &["api://confidential-app/access_as_user"],
            "http://127.0.0.1:53682/callback",
            &AuthCodeOptions::default(),
        )
        .await
        .unwrap();
    let params = idp.browse(&flow.auth_uri, "alice").await;
    let user_token = user_app
        .finish_auth_code_flow(&flow, &params)
        .await
        .unwrap();

    let cache = Arc::new(TokenCache::new());
    let api = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .cache(cache.clone())
        .build()
        .unwrap();
    let assertion = user_token.access_token.expose();
    let obo = api
        .acquire_token_on_behalf_of(assertion, &["api://downstream/.default"])
        .await
        .unwrap();
    assert_eq!(obo.token_source, TokenSource::IdentityProvider);
    assert_eq!(
        obo.account.as_ref().unwrap().home_account_id,
        format!("a11ce000-0000-4000-8000-00000000a11c.{}", idp.tenant)
    );
    let again = api
        .acquire_token_on_behalf_of(assertion, &["api://downstream/.default"])
        .await
        .unwrap();
    assert_eq!(again.token_source, TokenSource::Cache);
    assert_eq!(
        idp.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer")
            .await,
        1
    );
    // An app-only token is not a user assertion.
    let app_token = api
        .acquire_token_for_client(&["api://confidential-app/.default"])
        .await
        .unwrap();
    let e = api
        .acquire_token_on_behalf_of(app_token.access_token.expose(), &["api://other/.default"])
        .await
        .unwrap_err();
    assert_eq!(e.oauth().unwrap().error, "invalid_grant");
}

#[tokio::test]
async fn refresh_token_migration_invalid_grant_and_network_errors() {
    let idp = Idp::start(&[]);
    let source = Arc::new(TokenCache::new());
    let app = public(&idp, &source);
    device_sign_in(&idp, &app, "alice").await;
    let rt = rt_secrets(&source).remove(0);

    // Migration into another cache: account, tokens and a new refresh token.
    let target = Arc::new(TokenCache::new());
    let migrated = public(&idp, &target)
        .acquire_token_by_refresh_token(&rt, &[API])
        .await
        .unwrap();
    assert_eq!(migrated.account.unwrap().username, "alice@example.test");
    assert_eq!(target.len(Section::RefreshToken), 1);
    assert_eq!(target.len(Section::Account), 1);

    // The old token was rotated away: invalid_grant, which needs interaction.
    let e = public(&idp, &Arc::new(TokenCache::new()))
        .acquire_token_by_refresh_token(&rt, &[API])
        .await
        .unwrap_err();
    assert_eq!(e.oauth().unwrap().error, "invalid_grant");
    assert!(e.is_interaction_required());

    // No provider at all: a network error, not a protocol error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let offline = PublicClientApplication::builder("public-app")
        .authority(&format!("http://127.0.0.1:{port}/common"))
        .unwrap()
        .retry_policy(tokencache_client::http::RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    let e = offline.initiate_device_flow(&[API]).await.unwrap_err();
    assert!(e.is_network(), "{e}");
}

#[tokio::test]
async fn remove_account_signs_out_and_silent_then_needs_interaction() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let app = public(&idp, &cache);
    let account = device_sign_in(&idp, &app, "alice").await.account.unwrap();
    app.remove_account(&account).await.unwrap();
    assert!(app.accounts().await.unwrap().is_empty());
    assert_eq!(cache.len(Section::RefreshToken), 0);
    let e = app
        .acquire_token_silent(&[API], &account)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NoTokenInCache));
    assert!(e.is_interaction_required());
}

#[tokio::test]
async fn any_openid_provider_by_issuer_url() {
    // No Entra extras, issuer at the root: accounts are keyed by `sub`.
    let idp = Idp::start_raw(&[], None);
    let cache = Arc::new(TokenCache::new());
    let app = PublicClientApplication::builder("public-app")
        .oidc_authority(&idp.issuer)
        .unwrap()
        .cache(cache.clone())
        .build()
        .unwrap();
    let first = device_sign_in(&idp, &app, "bob").await;
    let account = first.account.unwrap();
    assert_eq!(
        account.home_account_id,
        "b0b00000-0000-4000-8000-000000000b0b"
    );
    let hit = app.acquire_token_silent(&[API], &account).await.unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
    let refreshed = app
        .acquire_token_silent_with(&[API], &account, &SilentOptions::default().force_refresh())
        .await
        .unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
}

/// An RSA key and a self-signed certificate (PEM), and the key's modulus as base64url.
fn certificate(dir: &std::path::Path, name: &str) -> (Vec<u8>, Vec<u8>, String) {
    use base64::Engine;
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap(), n)
}

#[tokio::test]
async fn client_credentials_with_a_certificate_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, n) = certificate(dir.path(), "daemon");
    let clients = format!(
        r#"[{{"client_id":"cert-app","token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_signing_alg":"RS256","grant_types":["client_credentials"],"response_types":[],"redirect_uris":[],"jwks":{{"keys":[{{"kty":"RSA","e":"AQAB","n":"{n}","alg":"RS256","use":"sig"}}]}}}}]"#
    );
    let clients_file = dir.path().join("clients.json");
    std::fs::write(&clients_file, clients).unwrap();
    let idp = Idp::start(&[("IDP_CLIENTS_FILE", clients_file.to_str().unwrap())]);
    let credential = tokencache_client::ClientCertificate::from_pem(&cert, &key, false).unwrap();
    assert_eq!(credential.thumbprint_s256().len(), 43);
    assert!(!format!("{credential:?}").contains("PRIVATE"));
    let app = ConfidentialClientApplication::builder("cert-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::Certificate(credential))
        .build()
        .unwrap();
    let first = app
        .acquire_token_for_client(&["api://test-api/.default"])
        .await
        .unwrap();
    assert_eq!(first.token_source, TokenSource::IdentityProvider);
    // Each request signs a fresh assertion (a replayed jti would be refused).
    let forced = app
        .acquire_token_for_client_force_refresh(&["api://test-api/.default"])
        .await
        .unwrap();
    assert_eq!(forced.token_source, TokenSource::IdentityProvider);

    // A certificate the provider does not know is refused as invalid_client.
    let (other_cert, other_key, _) = certificate(dir.path(), "stranger");
    let stranger = ConfidentialClientApplication::builder("cert-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::Certificate(
            tokencache_client::ClientCertificate::from_pem(&other_cert, &other_key, true).unwrap(),
        ))
        .build()
        .unwrap();
    let e = stranger
        .acquire_token_for_client(&["api://test-api/.default"])
        .await
        .unwrap_err();
    assert_eq!(e.oauth().unwrap().error, "invalid_client");
    // Bad PEM is a configuration error, not a panic.
    assert!(matches!(
        tokencache_client::ClientCertificate::from_pem(b"nope", &key, false),
        Err(ClientError::Configuration(_))
    ));
}

/// A fault injector around the real client: every request goes through, and `rewrite` may
/// change its answer. It records where requests went and when.
struct Injected<F> {
    inner: tokencache_client::http::ReqwestClient,
    rewrite: F,
    sent: std::sync::Mutex<Vec<(String, std::time::Instant)>>,
}

impl<F> Injected<F>
where
    F: Fn(&tokencache_client::http::HttpRequest, &mut tokencache_client::http::HttpResponse)
        + Send
        + Sync,
{
    fn new(rewrite: F) -> Arc<Injected<F>> {
        Arc::new(Injected {
            inner: tokencache_client::http::ReqwestClient::new().unwrap(),
            rewrite,
            sent: Default::default(),
        })
    }

    /// The URLs requested so far.
    fn urls(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }
}

impl<F> std::fmt::Debug for Injected<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Injected")
    }
}

impl<F> tokencache_client::http::HttpClient for Injected<F>
where
    F: Fn(&tokencache_client::http::HttpRequest, &mut tokencache_client::http::HttpResponse)
        + Send
        + Sync,
{
    fn send(
        &self,
        request: tokencache_client::http::HttpRequest,
    ) -> tokencache_client::http::BoxFuture<
        '_,
        Result<tokencache_client::http::HttpResponse, tokencache_client::http::TransportError>,
    > {
        Box::pin(async move {
            self.sent
                .lock()
                .unwrap()
                .push((request.url.clone(), std::time::Instant::now()));
            let mut response = self.inner.send(request.clone()).await?;
            (self.rewrite)(&request, &mut response);
            Ok(response)
        })
    }
}

/// Rewrites members of a JSON response body.
fn set_members(
    response: &mut tokencache_client::http::HttpResponse,
    members: &[(&str, tokencache::json::JsonValue)],
) {
    let body = String::from_utf8_lossy(&response.body).into_owned();
    let Ok(mut o) = tokencache::json::JsonObject::parse(&body) else {
        return;
    };
    for (name, value) in members {
        o.insert(name, value.clone());
    }
    response.body =
        tokencache::json::to_python_json(&tokencache::json::JsonValue::Object(Box::new(o)), false)
            .into_bytes();
}

#[tokio::test]
async fn device_code_polling_honours_slow_down() {
    let idp = Idp::start(&[]);
    // The first `authorization_pending` answer becomes `slow_down` (the loopback provider never
    // sends it); every device-code poll is timestamped.
    let polls: Arc<std::sync::Mutex<Vec<std::time::Instant>>> = Default::default();
    let seen = polls.clone();
    let http = Injected::new(move |request, response| {
        if !request.form.iter().any(|(k, _)| k == "device_code") {
            return;
        }
        let mut polls = seen.lock().unwrap();
        polls.push(std::time::Instant::now());
        if polls.len() == 1
            && String::from_utf8_lossy(&response.body).contains("authorization_pending")
        {
            response.body = br#"{"error":"slow_down"}"#.to_vec();
        }
    });
    let app = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .http_client(http.clone())
        .build()
        .unwrap();
    let flow = app.initiate_device_flow(&[API]).await.unwrap();
    let approve = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        idp.approve_device(&flow.user_code, "alice").await;
    };
    let (result, ()) = tokio::join!(app.acquire_token_by_device_flow(&flow), approve);
    assert_eq!(result.unwrap().token_source, TokenSource::IdentityProvider);
    let polls = polls.lock().unwrap().clone();
    assert_eq!(polls.len(), 2, "one slowed-down poll, then success");
    let gap = polls[1] - polls[0];
    assert!(
        gap >= Duration::from_millis(5900),
        "interval 1 s + 5 s after slow_down, got {gap:?}"
    );
}

#[tokio::test]
async fn instance_discovery_finds_aliases_and_rejects_unknown_hosts() {
    let idp = Idp::start(&[]);
    let port = idp.origin.rsplit(':').next().unwrap().to_owned();
    let discovery = format!("http://127.0.0.1:{port}/common/discovery/instance");
    let cache = Arc::new(TokenCache::new());
    let app_on = |host: &str, discovery_on: bool| {
        PublicClientApplication::builder("public-app")
            .authority(&format!("http://{host}:{port}/{}", idp.tenant))
            .unwrap()
            .instance_discovery(discovery_on)
            .instance_discovery_endpoint(&discovery)
            .cache(cache.clone())
            .build()
            .unwrap()
    };
    // Signed in through "localhost": the cache records that environment.
    let via_localhost = app_on("localhost", true);
    let account = device_sign_in(&idp, &via_localhost, "alice")
        .await
        .account
        .unwrap();
    assert_eq!(account.environment, "localhost");
    assert_eq!(cache.all_accounts()[0].environment(), Some("localhost"));
    // An app on the alias 127.0.0.1 finds the account and the token through instance discovery.
    let via_ip = app_on("127.0.0.1", true);
    let accounts = via_ip.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    let hit = via_ip
        .acquire_token_silent(&[API], &accounts[0])
        .await
        .unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
    // Turned off: no aliases, so nothing for 127.0.0.1.
    assert!(
        app_on("127.0.0.1", false)
            .accounts()
            .await
            .unwrap()
            .is_empty()
    );
    // Looked up once per application, not per call.
    let before = idp.token_requests("instance_discovery").await;
    via_ip
        .acquire_token_silent(&[API], &accounts[0])
        .await
        .unwrap();
    assert_eq!(idp.token_requests("instance_discovery").await, before);
    // A host instance discovery does not know is an invalid authority.
    let unknown = app_on("127.0.0.2", true);
    let e = unknown.initiate_device_flow(&[API]).await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidAuthority { .. }), "{e}");
    // An unreachable discovery endpoint costs only the aliases.
    let dead = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .instance_discovery_endpoint("http://127.0.0.1:1/common/discovery/instance")
        .retry_policy(tokencache_client::http::RetryPolicy {
            max_retries: 0,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        })
        .build()
        .unwrap();
    assert!(dead.initiate_device_flow(&[API]).await.is_ok());
}

#[tokio::test]
async fn numbers_from_the_provider_are_bounded_not_overflowed() {
    let idp = Idp::start(&[]);
    let cache = Arc::new(TokenCache::new());
    let app = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        // The provider's numbers become hostile ones: `i64::MAX`, `1e300`, `-1e300`.
        .http_client(Injected::new(|_, response| {
            let body = String::from_utf8_lossy(&response.body).into_owned();
            let number = |n: &str| tokencache::json::JsonValue::Number(n.into());
            let mut members = vec![];
            for (name, value) in [
                ("expires_in", "9223372036854775807"),
                ("interval", "9223372036854775807"),
                ("ext_expires_in", "-1e300"),
            ] {
                if body.contains(&format!("\"{name}\"")) {
                    members.push((name, number(value)));
                }
            }
            if body.contains("\"access_token\"") {
                members.push(("refresh_in", number("1e300")));
            }
            set_members(response, &members);
        }))
        .cache(cache.clone())
        .build()
        .unwrap();
    let now = SystemClock.now();
    let max = tokencache::MAX_LIFETIME_SECS;
    let mut flow = app.initiate_device_flow(&[API]).await.unwrap();
    assert!(flow.interval <= 60, "interval {}", flow.interval);
    assert!(
        (now..=now + max + 5).contains(&flow.expires_at),
        "{}",
        flow.expires_at
    );
    flow.interval = 1;
    idp.approve_device(&flow.user_code, "alice").await;
    let result = app.acquire_token_by_device_flow(&flow).await.unwrap();
    assert!(
        (now + max..=now + max + 60).contains(&result.expires_on),
        "expires_on {}",
        result.expires_on
    );
    assert!(result.refresh_on.is_some_and(|r| r <= now + max + 60));
    let at = &cache.all_access_tokens()[0];
    let expires_on = at.expires_on().unwrap();
    assert!(
        (now + max..=now + max + 60).contains(&expires_on),
        "{expires_on}"
    );
    let extended = at.extended_expires_on().unwrap();
    assert!(
        (now..=now + 60).contains(&extended),
        "negative: expired now, {extended}"
    );
}

#[tokio::test]
async fn a_discovery_document_cannot_send_credentials_elsewhere() {
    let idp = Idp::start(&[]);
    let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        (
            "a plain-http token endpoint off this machine",
            vec![("token_endpoint", "http://attacker.example/steal".into())],
        ),
        (
            "a token endpoint on a host that only looks like loopback",
            vec![(
                "token_endpoint",
                "http://127.0.0.1.attacker.example/steal".into(),
            )],
        ),
        (
            "an issuer that is not the authority's",
            vec![("issuer", "https://attacker.example/7e57a000/v2.0".into())],
        ),
    ];
    for (what, members) in cases {
        // A malicious or tampered discovery document.
        let http = Injected::new(move |request, response| {
            if request.url.contains("openid-configuration") {
                let members: Vec<(&str, tokencache::json::JsonValue)> = members
                    .iter()
                    .map(|(k, v)| (*k, tokencache::json::JsonValue::string(v)))
                    .collect();
                set_members(response, &members);
            }
        });
        // Refused documents are not cached, so each case discovers afresh.
        let app = ConfidentialClientApplication::builder("confidential-app")
            .authority(&idp.authority())
            .unwrap()
            .credential(ClientCredential::secret("confidential-secret"))
            .http_client(http.clone())
            .build()
            .unwrap();
        let result = app.acquire_token_for_client(&[API]).await;
        assert!(
            matches!(result, Err(ClientError::InvalidResponse { .. })),
            "{what}: {result:?}"
        );
        let sent = http.urls();
        assert!(
            sent.iter().all(|url| url.contains("openid-configuration")),
            "{what}: the client sent a request after a refused discovery: {sent:?}"
        );
    }
}

#[tokio::test]
async fn an_endless_response_body_is_cut_off() {
    use std::io::{Read, Write};
    // A "provider" that answers discovery with a body far larger than any real document.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body_len = 64 << 20;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n"
            );
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..64 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    });
    let app = ConfidentialClientApplication::builder("confidential-app")
        .oidc_authority(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .build()
        .unwrap();
    let err = app.acquire_token_for_client(&[API]).await.unwrap_err();
    assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
}

#[tokio::test]
async fn the_loopback_listener_outlasts_idle_connections_and_forged_redirects() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idp = Arc::new(Idp::start(&[]));
    let cache = Arc::new(TokenCache::new());
    let app = public(&idp, &cache);
    let provider = idp.clone();
    let result = sign_in_interactively(&app, move |url| async move {
        let redirect = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| url::Url::parse(&v).unwrap())
            .unwrap();
        let addr = format!("127.0.0.1:{}", redirect.port().unwrap());
        // A preconnect that never sends anything, and one that sends half a request.
        let idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
        partial.write_all(b"GET /callback?co").await.unwrap();
        // A forged redirect: someone else's code, a state that is not ours.
        let mut forged = tokio::net::TcpStream::connect(&addr).await.unwrap();
        forged
            .write_all(b"GET /callback?code=forged&state=not-yours HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        forged.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // The real redirect still gets through.
        provider.browse_and_follow(&url, "alice").await;
        drop((idle, partial));
    })
    .await;
    assert_eq!(result.account.unwrap().username, "alice@example.test");
    assert_eq!(idp.token_requests("authorization_code").await, 1);
}
