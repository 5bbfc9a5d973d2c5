//! A Redis outage in the middle of work: no panic, each failure policy does what it says and
//! counts it, service resumes when Redis is back, and nothing saved before the outage is lost.
//! PostgreSQL connections that the server ends, even with statements on them, cost no request
//! an error.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokencache::{PartitionKey, Section, TokenCache, TokenEvent};
use tokencache_store::{FailurePolicy, PartitionOptions, PartitionedCache, StoreError};

fn event(user: &str) -> TokenEvent {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let response = format!(
        r#"{{"access_token":"AT-{user}","expires_in":3600,"refresh_token":"RT-{user}","client_info":"{}","id_token":"{}.{}.s"}}"#,
        b64(&format!(r#"{{"uid":"{user}","utid":"t"}}"#)),
        b64(r#"{"alg":"none"}"#),
        b64(&format!(
            r#"{{"sub":"{user}","preferred_username":"{user}@x"}}"#
        )),
    );
    TokenEvent::new("web-app", ["api://x/read"])
        .token_endpoint("https://login.example.test/t/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&response)
        .unwrap()
}

fn key(i: usize) -> PartitionKey {
    PartitionKey::for_account(&format!("user{i}.t"))
}

async fn save(cache: &PartitionedCache, i: usize) -> Result<(), StoreError> {
    let ev = event(&format!("user{i}"));
    cache
        .update_partition(&key(i), &move |c: &TokenCache| c.add(&ev))
        .await?;
    Ok(())
}

/// `n` concurrent loads of the first 20 users' partitions; each finds its access token.
async fn load_all_at_once(cache: &Arc<PartitionedCache>, n: usize) {
    let loads: Vec<_> = (0..n)
        .map(|n| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.load_partition(&key(n % 20)).await })
        })
        .collect();
    for load in loads {
        assert_eq!(load.await.unwrap().unwrap().len(Section::AccessToken), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_is_survived_by_policy_and_loses_nothing() {
    let mut redis = common::Redis::start_persistent();
    let store = tokencache_store::open(&redis.url()).await.unwrap();
    let with = |policy| {
        Arc::new(PartitionedCache::new(
            store.clone(),
            PartitionOptions {
                failure_policy: policy,
                ..PartitionOptions::default()
            },
        ))
    };
    let strict = with(FailurePolicy::Fail);
    let lenient = with(FailurePolicy::TreatAsMiss);
    let patient = with(FailurePolicy::RetryFor(Duration::from_secs(20)));
    for i in 0..20 {
        save(&strict, i).await.unwrap();
    }

    // A load run in the background, before, during and after the outage.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load_run = {
        let (cache, stop) = (strict.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match cache.load_partition(&key(i % 20)).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        assert!(e.is_unavailable(), "{e}");
                        failed += 1;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    redis.stop();
    let e = strict.load_partition(&key(0)).await.unwrap_err();
    assert!(
        e.is_unavailable(),
        "Fail: the error reaches the caller: {e}"
    );
    let empty = lenient.load_partition(&key(0)).await.unwrap();
    assert_eq!(
        empty.len(Section::AccessToken),
        0,
        "TreatAsMiss: an empty partition"
    );
    assert!(lenient.metrics().treated_as_miss >= 1 && lenient.metrics().l2_failures >= 1);
    assert!(strict.metrics().l2_failures >= 1);
    // A save during the outage fails loudly; it is never dropped silently.
    assert!(save(&strict, 99).await.unwrap_err().is_unavailable());
    // RetryFor: a load that starts during the outage completes once Redis is back.
    let waiting = {
        let patient = patient.clone();
        tokio::spawn(async move { patient.load_partition(&key(3)).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;

    redis.restart();
    let recovered = waiting.await.unwrap().unwrap();
    assert_eq!(recovered.len(Section::AccessToken), 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while strict.load_partition(&key(0)).await.is_err() {
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load_run.await.unwrap();
    assert!(
        ok > 0 && failed > 0,
        "the load run saw the outage ({ok} ok, {failed} failed)"
    );
    // Everything saved before the outage is still there.
    for i in 0..20 {
        let part = strict.load_partition(&key(i)).await.unwrap();
        assert_eq!(part.len(Section::AccessToken), 1, "user{i}");
        assert_eq!(part.len(Section::RefreshToken), 1, "user{i}");
    }
    save(&strict, 99).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_requests_share_connections_and_see_no_error_when_the_server_ends_them() {
    let db = common::Postgres::create();
    let store = tokencache_store::open(&db.url).await.unwrap();
    let cache = Arc::new(PartitionedCache::new(
        store,
        PartitionOptions {
            failure_policy: FailurePolicy::Fail,
            ..PartitionOptions::default()
        },
    ));
    for i in 0..20 {
        save(&cache, i).await.unwrap();
    }

    // 64 concurrent loads go over the few shared connections (4 for reads; with the 4 the
    // saves used and the one the schema migration used, idle in the pool, 9 at most), not a
    // connection each up to the pool's 16.
    load_all_at_once(&cache, 64).await;
    let connections = db.connections();
    assert!(
        (1..=9).contains(&connections),
        "{connections} server connections"
    );

    // The server ends them all, as a restart or a proxy's idle timeout would. No request sees
    // an error: a statement that finds its connection closed runs again on a new one. Nothing
    // saved is lost.
    db.terminate_connections();
    for i in 0..20 {
        let part = cache.load_partition(&key(i)).await.unwrap();
        assert_eq!(part.len(Section::RefreshToken), 1, "user{i}");
    }
    // Again while 8 tasks load and save without pause, so that statements are on the
    // connections when the server ends them.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|n| {
            let (cache, stop) = (cache.clone(), stop.clone());
            tokio::spawn(async move {
                let mut done = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let i = (n + done) % 20;
                    if done.is_multiple_of(5) {
                        save(&cache, i).await.unwrap();
                    } else {
                        let part = cache.load_partition(&key(i)).await.unwrap();
                        assert_eq!(part.len(Section::RefreshToken), 1, "user{i}");
                    }
                    done += 1;
                }
                done
            })
        })
        .collect();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        db.terminate_connections();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut requests = 0;
    for worker in workers {
        requests += worker.await.unwrap();
    }
    assert!(requests > 100, "only {requests} requests");
    save(&cache, 20).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_counts_follow_the_options() {
    use tokencache_store::{PostgresBackend, PostgresOptions};
    let db = common::Postgres::create();
    for (shared, max) in [(0, 4), (2, 4), (3, 6)] {
        let options = PostgresOptions {
            shared_connections: shared,
            max_connections: max,
        };
        let e = PostgresBackend::connect_with(&db.url, options)
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::InvalidOptions { .. }),
            "{shared} shared, {max} in all: {e}"
        );
    }
    let options = PostgresOptions {
        shared_connections: 1,
        max_connections: 3,
    };
    let store = PostgresBackend::connect_with(&db.url, options)
        .await
        .unwrap();
    let cache = Arc::new(PartitionedCache::new(
        Arc::new(store),
        PartitionOptions::default(),
    ));
    for i in 0..20 {
        save(&cache, i).await.unwrap();
    }
    load_all_at_once(&cache, 64).await;
    // One for reads and one for writes; the first of them is the one the migration used.
    assert_eq!(db.connections(), 2);
}
