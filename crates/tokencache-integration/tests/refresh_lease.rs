//! A silent call cancelled in the middle of a refresh gives its refresh lease back at once, so
//! the next call (here, in another "process": a second `PartitionedCache` over the same store)
//! refreshes without waiting for the lease to expire.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Idp;
use tokencache::json::JsonValue;
use tokencache::{PartitionKey, Section, TokenCache};
use tokencache_client::http::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, ReqwestClient, TransportError,
};
use tokencache_client::{
    AccountInfo, AuthCodeOptions, ClientCredential, ConfidentialClientApplication, TokenSource,
};
use tokencache_store::{PartitionBackend, PartitionOptions, PartitionedCache};

const API: &str = "api://test-api/read";
const REDIRECT: &str = "http://127.0.0.1:8400/callback";

/// Fault injection: while `stall` is on, a refresh-token request never gets an answer, and
/// `stalled` is notified when one starts waiting.
#[derive(Debug)]
struct Stalling {
    inner: ReqwestClient,
    stall: AtomicBool,
    stalled: tokio::sync::Notify,
}

impl HttpClient for Stalling {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let refresh = request
                .form
                .iter()
                .any(|(k, v)| k == "grant_type" && v == "refresh_token");
            if refresh && self.stall.load(Ordering::SeqCst) {
                self.stalled.notify_one();
                std::future::pending::<()>().await;
            }
            self.inner.send(request).await
        })
    }
}

fn web_app(
    idp: &Idp,
    cache: Arc<PartitionedCache>,
    http: Arc<dyn HttpClient>,
) -> ConfidentialClientApplication {
    ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .unwrap()
        .credential(ClientCredential::secret("confidential-secret"))
        .http_client(http)
        .cache_accessor(cache)
        .build()
        .unwrap()
}

async fn sign_in(idp: &Idp, app: &ConfidentialClientApplication, user: &str) -> AccountInfo {
    let flow = app
        .start_auth_code_flow(&[API], REDIRECT, &AuthCodeOptions::default())
        .await
        .unwrap();
    let params = idp.browse(&flow.auth_uri, user).await;
    app.finish_auth_code_flow(&flow, &params)
        .await
        .unwrap()
        .account
        .unwrap()
}

async fn expire_access_tokens(cache: &PartitionedCache, key: &PartitionKey) {
    cache
        .update_partition(key, &|c: &TokenCache| {
            for at in c.all_access_tokens() {
                let mut e = at.entry().clone();
                e.set("expires_on", JsonValue::string("1000"));
                c.put_entry_at(Section::AccessToken, at.key(), e)?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_refresh_gives_its_lease_back_at_once() {
    let idp = Idp::start(&[]);
    let store: Arc<dyn PartitionBackend> = tokencache_store::open("memory://").await.unwrap();
    // A lease far longer than the test: only an explicit release can free it in time.
    let options = PartitionOptions {
        lease_ttl: Duration::from_secs(600),
        ..PartitionOptions::default()
    };
    let first = Arc::new(PartitionedCache::new(store.clone(), options.clone()));
    let stalling = Arc::new(Stalling {
        inner: ReqwestClient::new().unwrap(),
        stall: AtomicBool::new(false),
        stalled: tokio::sync::Notify::new(),
    });
    let app = web_app(&idp, first.clone(), stalling.clone());
    let alice = sign_in(&idp, &app, "alice").await;
    let key = PartitionKey::for_account(&alice.home_account_id);
    expire_access_tokens(&first, &key).await;

    // The refresh starts, takes the lease, and hangs at the identity provider; the caller gives
    // up (a client disconnect, a request timeout) and the call's future is dropped.
    stalling.stall.store(true, Ordering::SeqCst);
    let mut silent = Box::pin(app.acquire_token_silent(&[API], &alice));
    tokio::select! {
        result = &mut silent => panic!("the refresh was to hang: {result:?}"),
        () = stalling.stalled.notified() => {}
    }
    assert_eq!(
        store.leases().await.unwrap().len(),
        1,
        "the refresh holds the lease"
    );
    drop(silent);

    // The lease is given back without waiting for its 600 s to pass.
    let mut held = store.leases().await.unwrap().len();
    for _ in 0..500 {
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        held = store.leases().await.unwrap().len();
    }
    assert_eq!(held, 0, "the cancelled call still holds the refresh lease");

    // Another process refreshes, without waiting for a lease.
    let second = Arc::new(PartitionedCache::new(store.clone(), options));
    let other = web_app(
        &idp,
        second.clone(),
        Arc::new(ReqwestClient::new().unwrap()),
    );
    let refreshed = other.acquire_token_silent(&[API], &alice).await.unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    assert_eq!(second.metrics().lease_waits, 0);
    assert_eq!(idp.token_requests("refresh_token").await, 1);
}
