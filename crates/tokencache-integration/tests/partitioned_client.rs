//! The partitioned stores under a real web-app client: sign-ins by several users against the
//! loopback OpenID provider, isolation, sign-out, one refresh for 50 concurrent requests in one
//! process and in three processes sharing Redis, SQLite or PostgreSQL.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-store/tests/common/mod.rs"]
mod common;
#[path = "../../tokencache-client/tests/common/mod.rs"]
mod idp;
mod web;

use std::sync::Arc;

use idp::Idp;
use tokencache::PartitionKey;
use tokencache::json::JsonValue;
use tokencache_client::TokenSource;
use tokencache_store::{PartitionOptions, PartitionedCache};
use web::{API, expire_access_tokens, sign_in, web_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_gets_a_partition_and_sign_out_deletes_it() {
    let idp = Idp::start(&[]);
    let redis = common::Redis::start();
    let store = tokencache_store::open(&redis.url()).await.unwrap();
    let cache = Arc::new(PartitionedCache::new(
        store.clone(),
        PartitionOptions::default(),
    ));
    let app = web_app(&idp, cache.clone(), None);
    let alice = sign_in(&idp, &app, "alice").await;
    let bob = sign_in(&idp, &app, "bob").await;
    let mut keys = store.keys().await.unwrap();
    keys.sort();
    let mut expected = vec![alice.home_account_id.clone(), bob.home_account_id.clone()];
    expected.sort();
    assert_eq!(keys, expected);
    for a in [&alice, &bob] {
        let key = PartitionKey::for_account(&a.home_account_id);
        let part = cache.load_partition(&key).await.unwrap();
        assert_eq!(part.partition_keys(), vec![key]);
        assert_eq!(part.all_accounts()[0].username(), Some(a.username.as_str()));
        let hit = app.acquire_token_silent(&[API], a).await.unwrap();
        assert_eq!(hit.token_source, TokenSource::Cache);
    }
    app.remove_account(&alice).await.unwrap();
    assert_eq!(store.load(&alice.home_account_id).await.unwrap(), None);
    assert!(
        app.acquire_token_silent(&[API], &alice)
            .await
            .unwrap_err()
            .is_interaction_required()
    );
    let hit = app.acquire_token_silent(&[API], &bob).await.unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_requests_with_an_expired_token_make_one_refresh() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let store = tokencache_store::open(&url).await.unwrap();
    let cache = Arc::new(PartitionedCache::new(store, PartitionOptions::default()));
    let app = web_app(&idp, cache.clone(), None);
    let alice = sign_in(&idp, &app, "alice").await;
    expire_access_tokens(&cache, &PartitionKey::for_account(&alice.home_account_id)).await;
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (app, alice) = (app.clone(), alice.clone());
            tokio::spawn(async move { app.acquire_token_silent(&[API], &alice).await })
        })
        .collect();
    let mut from_provider = 0;
    for c in calls {
        if c.await.unwrap().unwrap().token_source == TokenSource::IdentityProvider {
            from_provider += 1;
        }
    }
    assert_eq!(from_provider, 1);
    assert_eq!(idp.token_requests("refresh_token").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sharing_redis_make_one_refresh() {
    let redis = common::Redis::start();
    three_processes_make_one_refresh(&redis.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sharing_sqlite_make_one_refresh() {
    let dir = tempfile::tempdir().unwrap();
    three_processes_make_one_refresh(&format!(
        "sqlite://{}",
        dir.path().join("tokens.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_sharing_postgres_make_one_refresh() {
    let db = common::Postgres::create();
    three_processes_make_one_refresh(&db.url).await;
}

/// 50 concurrent silent requests in each of three processes sharing the store at `url`, for a
/// user whose access token expired: exactly one refresh at the provider (the store's lease).
async fn three_processes_make_one_refresh(url: &str) {
    let idp = Idp::start(&[]);
    let store = tokencache_store::open(url).await.unwrap();
    let cache = Arc::new(PartitionedCache::new(store, PartitionOptions::default()));
    let app = web_app(&idp, cache.clone(), None);
    let alice = sign_in(&idp, &app, "alice").await;
    expire_access_tokens(&cache, &PartitionKey::for_account(&alice.home_account_id)).await;
    let example = common::example_binary("silent_load");
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(&example)
                .args([
                    "--authority",
                    &idp.authority(),
                    "--client-id",
                    "confidential-app",
                ])
                .args(["--store", url, "--home-account-id", &alice.home_account_id])
                .args(["--scopes", API, "--concurrency", "50"])
                .env("TOKENCACHE_CLIENT_SECRET", "confidential-secret")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut ok, mut from_provider) = (0, 0);
    for child in children {
        let o = common::json_report(child);
        ok += o.get("ok").and_then(JsonValue::as_int_lenient).unwrap();
        from_provider += o
            .get("identity_provider")
            .and_then(JsonValue::as_int_lenient)
            .unwrap();
    }
    assert_eq!(ok, 150);
    assert_eq!(from_provider, 1, "one request in three processes refreshed");
    assert_eq!(idp.token_requests("refresh_token").await, 1);
}

/// A store that goes down reaches the caller of `acquire_token_silent` as a typed error: the
/// client's `Store` variant, whose source is the core's `AccessError`, whose source is the
/// store's own `StoreError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_reaches_the_caller_as_a_typed_error_with_its_source() {
    use std::error::Error as _;
    use tokencache::{AccessError, AccessErrorKind};
    use tokencache_client::ClientError;
    use tokencache_store::StoreError;

    let idp = Idp::start(&[]);
    let mut redis = common::Redis::start();
    let store = tokencache_store::open(&redis.url()).await.unwrap();
    let cache = Arc::new(PartitionedCache::new(store, PartitionOptions::default()));
    let app = web_app(&idp, cache, None);
    let alice = sign_in(&idp, &app, "alice").await;
    redis.stop();

    let e = app.acquire_token_silent(&[API], &alice).await.unwrap_err();
    assert!(e.is_store_unavailable(), "{e:?}");
    assert!(!e.is_interaction_required());
    let ClientError::Store(access) = &e else {
        panic!("expected ClientError::Store, got {e:?}");
    };
    assert_eq!(access.kind(), AccessErrorKind::Unavailable);
    let source = e.source().unwrap();
    assert!(source.downcast_ref::<AccessError>().is_some());
    let store_error = source.source().unwrap().downcast_ref::<StoreError>();
    assert!(
        matches!(
            store_error,
            Some(StoreError::Unavailable {
                backend: "redis",
                ..
            })
        ),
        "{store_error:?}"
    );
}
