//! A silent call cancelled in the middle of a refresh gives its refresh lease back at once, so
//! the next call (here, in another "process": a second `PartitionedCache` over the same store)
//! refreshes without waiting for the lease to expire.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod idp;
mod web;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idp::Idp;
use tokencache::PartitionKey;
use tokencache_client::TokenSource;
use tokencache_client::http::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, ReqwestClient, TransportError,
};
use tokencache_store::{PartitionBackend, PartitionOptions, PartitionedCache};
use web::{API, expire_access_tokens, sign_in, web_app};

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
    let app = web_app(&idp, first.clone(), Some(stalling.clone()));
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
    let other = web_app(&idp, second.clone(), None);
    let refreshed = other.acquire_token_silent(&[API], &alice).await.unwrap();
    assert_eq!(refreshed.token_source, TokenSource::IdentityProvider);
    assert_eq!(second.metrics().lease_waits, 0);
    assert_eq!(idp.token_requests("refresh_token").await, 1);
}
