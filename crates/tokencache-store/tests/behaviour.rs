//! One behaviour suite, run against every backend: memory (the session backend), SQLite,
//! PostgreSQL, Redis and Redis Cluster, all real.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokencache::{Clock, ManualClock, PartitionKey, Section, SystemClock, TokenCache, TokenEvent};
use tokencache_store::{
    IfChanged, PartitionBackend, PartitionKeys, PartitionOptions, PartitionedCache, SaveExpiry,
    SaveOutcome, StoreError, Updated, encrypted_key_id,
};

/// A store, how time passes for it, and whatever keeps its server alive.
struct Fixture {
    store: Arc<dyn PartitionBackend>,
    time: Time,
    _guard: Box<dyn Any + Send>,
}

/// How an expiry test lets time pass.
#[derive(Clone, Debug)]
enum Time {
    /// The backend judges expiry in this process: a manual clock (started at the real time),
    /// moved forward without sleeping.
    Manual(Arc<ManualClock>),
    /// The server expires keys by its own clock (Redis): real time passes.
    Server,
}

impl Time {
    fn manual() -> Time {
        Time::Manual(Arc::new(ManualClock::new(SystemClock.now())))
    }

    fn clock(&self) -> Arc<dyn Clock> {
        match self {
            Time::Manual(clock) => clock.clone(),
            Time::Server => Arc::new(SystemClock),
        }
    }

    fn now(&self) -> i64 {
        self.clock().now()
    }

    /// Lets `seconds` pass (and a little more on a real clock, whose expiry is in whole
    /// seconds too).
    async fn pass(&self, seconds: u64) {
        match self {
            Time::Manual(clock) => clock.advance(seconds as i64),
            Time::Server => tokio::time::sleep(Duration::from_millis(seconds * 1000 + 100)).await,
        }
    }

    /// Default options, on this time.
    fn options(&self) -> PartitionOptions {
        PartitionOptions {
            clock: self.clock(),
            ..PartitionOptions::default()
        }
    }
}

async fn memory() -> Fixture {
    let time = Time::manual();
    Fixture {
        store: tokencache_store::open_with_clock("memory://", time.clock())
            .await
            .unwrap(),
        time,
        _guard: Box::new(()),
    }
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let time = Time::manual();
    Fixture {
        store: tokencache_store::open_with_clock(&url, time.clock())
            .await
            .unwrap(),
        time,
        _guard: Box::new(dir),
    }
}

async fn postgres() -> Fixture {
    let db = common::Postgres::create();
    let time = Time::manual();
    Fixture {
        store: tokencache_store::open_with_clock(&db.url, time.clock())
            .await
            .unwrap(),
        time,
        _guard: Box::new(db),
    }
}

async fn redis() -> Fixture {
    let server = common::Redis::start();
    Fixture {
        store: tokencache_store::open(&server.url()).await.unwrap(),
        time: Time::Server,
        _guard: Box::new(server),
    }
}

async fn redis_cluster() -> Fixture {
    let cluster = common::RedisCluster::start();
    Fixture {
        store: tokencache_store::open(&cluster.url()).await.unwrap(),
        time: Time::Server,
        _guard: Box::new(cluster),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn compare_and_set(store: Arc<dyn PartitionBackend>) {
    assert_eq!(store.load("alice").await.unwrap(), None);
    assert_eq!(store.version("alice").await.unwrap(), None);
    let SaveOutcome::Saved(v1) = store.save("alice", b"one", None, None).await.unwrap() else {
        panic!("the first save must succeed")
    };
    let loaded = store.load("alice").await.unwrap().unwrap();
    assert_eq!(
        (loaded.document.as_slice(), loaded.version),
        (&b"one"[..], v1)
    );
    let created = loaded.created_at.expect("the creation time is recorded");
    assert!((created - now()).abs() <= 2, "{created}");
    assert_eq!(store.version("alice").await.unwrap(), Some(v1));
    // Creating what exists, or updating from a stale version, conflicts.
    assert_eq!(
        store.save("alice", b"x", None, None).await.unwrap(),
        SaveOutcome::Conflict
    );
    assert_eq!(
        store.save("alice", b"x", Some(v1 ^ 1), None).await.unwrap(),
        SaveOutcome::Conflict
    );
    let SaveOutcome::Saved(v2) = store.save("alice", b"two", Some(v1), None).await.unwrap() else {
        panic!("a save from the current version must succeed")
    };
    assert_ne!(v1, v2);
    assert_eq!(
        store.save("alice", b"x", Some(v1), None).await.unwrap(),
        SaveOutcome::Conflict
    );
    let updated = store.load("alice").await.unwrap().unwrap();
    assert_eq!(updated.document, b"two");
    assert_eq!(
        updated.created_at,
        Some(created),
        "an update keeps the creation time"
    );
    // Another key is another partition.
    assert_eq!(store.load("bob").await.unwrap(), None);
}

async fn load_if_changed(store: Arc<dyn PartitionBackend>) {
    // How an L1 copy is validated: nothing comes back while the version is the known one.
    assert!(matches!(
        store.load_if_changed("alice", 7).await.unwrap(),
        IfChanged::Changed(None)
    ));
    let SaveOutcome::Saved(v1) = store.save("alice", b"one", None, None).await.unwrap() else {
        panic!("the first save must succeed")
    };
    assert!(matches!(
        store.load_if_changed("alice", v1).await.unwrap(),
        IfChanged::Unchanged
    ));
    let SaveOutcome::Saved(v2) = store.save("alice", b"two", Some(v1), None).await.unwrap() else {
        panic!("a save from the current version must succeed")
    };
    match store.load_if_changed("alice", v1).await.unwrap() {
        IfChanged::Changed(Some(now)) => {
            assert_eq!((now.document.as_slice(), now.version), (&b"two"[..], v2));
            assert!(now.created_at.is_some(), "the creation time comes along");
        }
        other => panic!("a newer save must come back: {other:?}"),
    }
    assert!(store.delete("alice", None).await.unwrap());
    assert!(matches!(
        store.load_if_changed("alice", v2).await.unwrap(),
        IfChanged::Changed(None)
    ));
}

async fn delete_and_recreate(store: Arc<dyn PartitionBackend>) {
    let SaveOutcome::Saved(v1) = store.save("k", b"a", None, None).await.unwrap() else {
        panic!()
    };
    assert!(
        !store.delete("k", Some(v1 ^ 1)).await.unwrap(),
        "wrong version"
    );
    assert!(store.delete("k", Some(v1)).await.unwrap());
    assert!(!store.delete("k", None).await.unwrap(), "already gone");
    assert_eq!(store.load("k").await.unwrap(), None);
    let SaveOutcome::Saved(v2) = store.save("k", b"b", None, None).await.unwrap() else {
        panic!()
    };
    assert_ne!(v1, v2, "a re-created partition never repeats a version");
    assert!(store.delete("k", None).await.unwrap());
}

async fn expiry(store: Arc<dyn PartitionBackend>, time: Time) {
    // Expiry is in whole seconds: `now + 5` leaves the partition at least four seconds to
    // live on a server's real clock (room for a pause of a loaded machine before the next
    // calls) and at most five.
    store
        .save("short", b"a", None, Some(time.now() + 5))
        .await
        .unwrap();
    let long_until = time.now() + 3600;
    store
        .save("long", b"b", None, Some(long_until))
        .await
        .unwrap();
    store.save("forever", b"c", None, None).await.unwrap();
    assert!(store.load("short").await.unwrap().is_some());
    // A load tells when the partition expires.
    let long = store.load("long").await.unwrap().unwrap();
    assert_eq!(long.expires_at, Some(long_until));
    assert_eq!(
        store.load("forever").await.unwrap().unwrap().expires_at,
        None
    );
    match store
        .load_if_changed("long", long.version ^ 1)
        .await
        .unwrap()
    {
        IfChanged::Changed(Some(changed)) => assert_eq!(changed.expires_at, Some(long_until)),
        other => panic!("another version must come back: {other:?}"),
    }
    time.pass(5).await;
    assert_eq!(store.load("short").await.unwrap(), None);
    assert_eq!(store.version("short").await.unwrap(), None);
    assert!(store.load("long").await.unwrap().is_some());
    // An expired partition counts as absent for a create.
    assert!(matches!(
        store.save("short", b"c", None, None).await.unwrap(),
        SaveOutcome::Saved(_)
    ));
    assert_eq!(
        store.keys().await.unwrap(),
        vec!["forever".to_owned(), "long".to_owned(), "short".to_owned()]
    );
}

/// When the stored partition `key` expires (it must exist and expire).
async fn expires_at(store: &Arc<dyn PartitionBackend>, key: &str) -> i64 {
    store.load(key).await.unwrap().unwrap().expires_at.unwrap()
}

async fn maintenance_keeps_expiry(store: Arc<dyn PartitionBackend>) {
    // A request saved the partition with 100 s to live. A maintenance rewrite by a process
    // whose policy is an hour keeps the 100 s; a request's save starts the hour.
    let request = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            user_expiry: Some(Duration::from_secs(100)),
            ..PartitionOptions::default()
        },
    );
    let key = PartitionKey::new("alice.t");
    let ev = user_event("alice", "one");
    let before = now();
    request
        .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    let saved = expires_at(&store, "alice.t").await;
    assert!((before + 100..=now() + 100).contains(&saved), "{saved}");
    let tool = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            user_expiry: Some(Duration::from_secs(3600)),
            ..PartitionOptions::default()
        },
    );
    let prune = |c: &TokenCache| {
        c.purge_expired_access_tokens(now());
        Ok(())
    };
    let version = store.load("alice.t").await.unwrap().unwrap().version;
    let updated = tool
        .update_partition_with(&key, &prune, SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(updated, Updated::Unchanged, "nothing had expired");
    assert_eq!(
        store.load("alice.t").await.unwrap().unwrap().version,
        version,
        "so nothing was written"
    );
    // A change that changes something is written, with the expiry kept.
    let ev = user_event("alice", "two");
    let updated = tool
        .update_partition_with(&key, &move |c: &TokenCache| c.add(&ev), SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(updated, Updated::Saved);
    let rewritten = store.load("alice.t").await.unwrap().unwrap();
    assert_ne!(rewritten.version, version);
    assert_eq!(
        rewritten.expires_at,
        Some(saved),
        "maintenance kept the expiry"
    );
    assert_eq!(
        PartitionedCache::new(store.clone(), PartitionOptions::default())
            .load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        1,
        "and the tokens"
    );
    let ev = user_event("alice", "three");
    tool.update_partition(&key, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    let renewed = expires_at(&store, "alice.t").await;
    assert!(
        renewed >= before + 3600,
        "a request's save renews it: {renewed}"
    );
    // A rewrite of a partition that is not there creates nothing.
    let nobody = PartitionKey::new("nobody.t");
    let updated = tool
        .update_partition_with(&nobody, &|_: &TokenCache| Ok(()), SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(updated, Updated::Unchanged);
    assert_eq!(store.load("nobody.t").await.unwrap(), None);
    // A migration sets the expiry the partition had in the other store.
    let ev = user_event("alice", "four");
    let carried = before + 500;
    tool.update_partition_with(
        &key,
        &move |c: &TokenCache| c.add(&ev),
        SaveExpiry::At(Some(carried)),
    )
    .await
    .unwrap();
    assert_eq!(
        store.load("alice.t").await.unwrap().unwrap().expires_at,
        Some(carried)
    );
}

async fn leases(store: Arc<dyn PartitionBackend>) {
    // Leases that must not expire during the test are long, so a pause of the machine cannot
    // change an outcome; the one that must expire is short, and the test only waits for it.
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(300);
    for key in ["p", "q"] {
        store.save(key, b"{}", None, None).await.unwrap();
    }
    assert!(store.leases().await.unwrap().is_empty());
    assert!(store.try_lease("p", "a", long).await.unwrap());
    assert!(!store.try_lease("p", "b", long).await.unwrap());
    assert!(
        store.try_lease("p", "a", long).await.unwrap(),
        "the holder may renew"
    );
    store.release_lease("p", "b").await.unwrap();
    assert!(
        !store.try_lease("p", "b", long).await.unwrap(),
        "only the holder releases"
    );
    store.release_lease("p", "a").await.unwrap();
    assert!(store.try_lease("p", "b", long).await.unwrap());
    // Operators can see who holds which lease, and for how long yet.
    let held = store.leases().await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0].partition.as_str(), held[0].holder.as_str()),
        ("p", "b")
    );
    assert!(held[0].expires_in <= long && held[0].expires_in > Duration::ZERO);
    // A lease nobody renews expires by itself.
    store.release_lease("p", "b").await.unwrap();
    assert!(store.try_lease("p", "b", short).await.unwrap());
    tokio::time::sleep(short * 2).await;
    assert!(
        store.leases().await.unwrap().is_empty(),
        "expired leases are not listed"
    );
    assert!(
        store.try_lease("p", "c", long).await.unwrap(),
        "an expired lease is free"
    );
    assert!(
        store.try_lease("q", "a", long).await.unwrap(),
        "leases are per key"
    );
    let held: Vec<_> = store
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.partition, l.holder))
        .collect();
    assert_eq!(held, [("p".into(), "c".into()), ("q".into(), "a".into())]);
}

async fn no_lost_updates(store: Arc<dyn PartitionBackend>) {
    // 16 writers increment one counter by compare-and-set; every increment must land.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    loop {
                        let current = store.load("counter").await.unwrap();
                        let (n, expected) = match &current {
                            Some(v) => (
                                std::str::from_utf8(&v.document)
                                    .unwrap()
                                    .parse::<u64>()
                                    .unwrap(),
                                Some(v.version),
                            ),
                            None => (0, None),
                        };
                        let next = (n + 1).to_string();
                        if let SaveOutcome::Saved(_) = store
                            .save("counter", next.as_bytes(), expected, None)
                            .await
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let doc = store.load("counter").await.unwrap().unwrap().document;
    assert_eq!(std::str::from_utf8(&doc).unwrap(), "320");
}

fn user_event(user: &str, secret: &str) -> TokenEvent {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = format!(
        r#"{{"sub":"{user}","oid":"{user}","tid":"t","preferred_username":"{user}@example.test"}}"#
    );
    let response = format!(
        r#"{{"access_token":"AT-{secret}","expires_in":3600,"refresh_token":"RT-{secret}","id_token":"{}.{}.sig","client_info":"{}","token_type":"Bearer"}}"#,
        b64(r#"{"alg":"none"}"#),
        b64(&claims),
        b64(&format!(r#"{{"uid":"{user}","utid":"t"}}"#))
    );
    TokenEvent::new("web-app", ["api://x/read"])
        .token_endpoint("https://login.example.test/t/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&response)
        .unwrap()
}

async fn partitioned_cache(store: Arc<dyn PartitionBackend>, time: Time) {
    let keys = PartitionKeys::new("k1", [7; 32]).unwrap();
    let cache = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            encryption: Some(keys),
            l1_bytes: 1 << 20,
            ..time.options()
        },
    );
    let (alice, bob) = (PartitionKey::new("alice.t"), PartitionKey::new("bob.t"));
    let ev = user_event("alice", "alice-secret");
    cache
        .update_partition(&alice, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    let ev = user_event("bob", "bob-secret");
    cache
        .update_partition(&bob, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    // Each partition holds its own user only; stored encrypted.
    let a = cache.load_partition(&alice).await.unwrap();
    assert_eq!(a.len(Section::AccessToken), 1);
    assert_eq!(a.partition_keys(), vec![alice.clone()]);
    let raw = store.load("alice.t").await.unwrap().unwrap().document;
    assert!(!String::from_utf8_lossy(&raw).contains("alice-secret"));
    assert_eq!(encrypted_key_id(&raw).as_deref(), Some("k1"));
    // Rotation: a rewrite under the new key set moves bob to k2; writing plain text takes the
    // encryption off again.
    let rewrite = |keys: PartitionKeys| {
        let store = store.clone();
        let bob = bob.clone();
        async move {
            let cache = PartitionedCache::new(
                store.clone(),
                PartitionOptions {
                    encryption: Some(keys),
                    ..PartitionOptions::default()
                },
            );
            let updated = cache
                .update_partition(&bob, &|_: &TokenCache| Ok(()))
                .await
                .unwrap();
            assert_eq!(updated, Updated::Saved, "written under the new keys");
            let again = cache
                .update_partition_with(&bob, &|_: &TokenCache| Ok(()), SaveExpiry::Keep)
                .await
                .unwrap();
            assert_eq!(again, Updated::Unchanged, "already as these keys write it");
            let doc = store.load(bob.as_str()).await.unwrap().unwrap().document;
            assert_eq!(
                cache
                    .load_partition(&bob)
                    .await
                    .unwrap()
                    .len(Section::AccessToken),
                1
            );
            encrypted_key_id(&doc)
        }
    };
    let k2 = || PartitionKeys::new("k2", [8; 32]).unwrap();
    let rotated = k2().with_previous("k1", [7; 32]).unwrap();
    assert_eq!(rewrite(rotated).await.as_deref(), Some("k2"));
    assert_eq!(rewrite(k2().writing_plain_text()).await, None);
    // Under keys, a plain partition is refused (it could have been planted)...
    let strict = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            encryption: Some(PartitionKeys::new("k1", [7; 32]).unwrap()),
            ..PartitionOptions::default()
        },
    );
    let e = strict.load_partition(&bob).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Unreadable { reason, .. } if reason.contains("plain text")),
        "{e}"
    );
    // ... unless plain text is expected (a first encryption): then it is encrypted at its
    // next save.
    let k1 = PartitionKeys::new("k1", [7; 32])
        .unwrap()
        .accepting_plaintext();
    assert_eq!(rewrite(k1).await.as_deref(), Some("k1"));
    // A change that would write bob's tokens into alice's partition is refused.
    let ev = user_event("bob", "sneaky");
    let e = cache
        .update_partition(&alice, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Isolation { .. }), "{e}");
    // The L1 answers repeated loads, validated by version.
    let before = cache.metrics();
    cache.load_partition(&alice).await.unwrap();
    assert_eq!(cache.metrics().l1_hits, before.l1_hits + 1);
    // Sign-out elsewhere (another process deletes the partition): the L1 never serves it.
    assert!(store.delete("alice.t", None).await.unwrap());
    assert_eq!(
        cache
            .load_partition(&alice)
            .await
            .unwrap()
            .len(Section::AccessToken),
        0
    );
    // Removing everything deletes the partition instead of storing an empty one.
    let updated = cache
        .update_partition(&bob, &|c: &TokenCache| {
            c.remove_account_everywhere("bob.t");
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(updated, Updated::Deleted);
    assert_eq!(store.load("bob.t").await.unwrap(), None);
    // App partitions expire with their last token.
    let app = PartitionKey::for_app("daemon", "t");
    let event = TokenEvent::new("daemon", ["api://x/.default"])
        .token_endpoint("https://login.example.test/t/oauth2/v2.0/token")
        .grant_type("client_credentials")
        .response_json(r#"{"access_token":"APP","expires_in":5,"token_type":"Bearer"}"#)
        .unwrap();
    cache
        .update_partition(&app, &move |c: &TokenCache| c.add(&event))
        .await
        .unwrap();
    assert!(store.load(app.as_str()).await.unwrap().is_some());
    time.pass(6).await;
    assert_eq!(store.load(app.as_str()).await.unwrap(), None);
    // A store without the key cannot read the partition, and says so.
    let ev = user_event("carol", "carol-secret");
    let carol = PartitionKey::new("carol.t");
    cache
        .update_partition(&carol, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    let keyless = PartitionedCache::new(store, PartitionOptions::default());
    let e = keyless.load_partition(&carol).await.unwrap_err();
    assert!(matches!(e, StoreError::Unreadable { .. }), "{e}");
}

async fn absolute_expiry(store: Arc<dyn PartitionBackend>, time: Time) {
    // Sliding for an hour, but never longer than 6 s after the sign-in. Times are whole
    // seconds, so on a server's real clock the partition lives between 5 and 6 s: still there
    // after 1 s (with room for a pause), gone after 7.
    let cache = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            user_expiry: Some(Duration::from_secs(3600)),
            user_absolute_expiry: Some(Duration::from_secs(6)),
            ..time.options()
        },
    );
    let key = PartitionKey::new("alice.t");
    let ev = user_event("alice", "one");
    cache
        .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    time.pass(1).await;
    // Activity does not extend it past the cap.
    let ev = user_event("alice", "two");
    cache
        .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    assert!(store.load("alice.t").await.unwrap().is_some());
    time.pass(6).await;
    assert_eq!(store.load("alice.t").await.unwrap(), None);
    // A new sign-in starts a new life.
    let ev = user_event("alice", "three");
    cache
        .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
        .await
        .unwrap();
    assert!(store.load("alice.t").await.unwrap().is_some());
}

async fn concurrent_partition_updates(store: Arc<dyn PartitionBackend>) {
    // 8 concurrent requests for one user, each recording a response for another scope: all
    // eight access tokens survive.
    let cache = Arc::new(PartitionedCache::new(store, PartitionOptions::default()));
    let key = PartitionKey::new("alice.t");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let ev = user_event("alice", &format!("s{i}"));
                let mut ev = ev;
                ev.scopes = vec![format!("api://x/scope{i}")];
                cache
                    .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let loaded = cache.load_partition(&key).await.unwrap();
    assert_eq!(loaded.len(Section::AccessToken), 8);
    assert_eq!(
        cache.metrics().conflicts,
        0,
        "the saves of one process to one partition take turns instead of conflicting"
    );
}

async fn save_after_load_with_a_writer_in_between(store: Arc<dyn PartitionBackend>) {
    // A request loads the partition (this instance remembers the document as the start of a
    // save); another instance (another web server) saves the same partition; then the request
    // saves. Its compare-and-set starts from the stale document, fails, reloads: both tokens
    // survive. Then a load-and-save with nobody in between starts from the remembered document
    // and also keeps everything.
    let web1 = PartitionedCache::new(store.clone(), PartitionOptions::default());
    let web2 = PartitionedCache::new(store.clone(), PartitionOptions::default());
    let key = PartitionKey::new("alice.t");
    let with_scope = |secret: &str, scope: &str| {
        let mut ev = user_event("alice", secret);
        ev.scopes = vec![scope.to_owned()];
        ev
    };
    let first = with_scope("s1", "api://x/one");
    web1.update_partition(&key, &move |c: &TokenCache| c.add(&first))
        .await
        .unwrap();
    assert_eq!(
        web1.load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        1
    );
    let second = with_scope("s2", "api://x/two");
    web2.update_partition(&key, &move |c: &TokenCache| c.add(&second))
        .await
        .unwrap();
    let third = with_scope("s3", "api://x/three");
    web1.update_partition(&key, &move |c: &TokenCache| c.add(&third))
        .await
        .unwrap();
    let stored = web2.load_partition(&key).await.unwrap();
    assert_eq!(
        stored.len(Section::AccessToken),
        3,
        "no token lost to the stale start"
    );

    assert_eq!(
        web1.load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        3
    );
    let fourth = with_scope("s4", "api://x/four");
    web1.update_partition(&key, &move |c: &TokenCache| c.add(&fourth))
        .await
        .unwrap();
    assert_eq!(
        web2.load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        4
    );
    // A sign-out in between: the request's save re-creates only what it adds.
    let _ = web1.load_partition(&key).await.unwrap();
    assert!(web2.delete_partition(&key).await.unwrap());
    let fifth = with_scope("s5", "api://x/five");
    web1.update_partition(&key, &move |c: &TokenCache| c.add(&fifth))
        .await
        .unwrap();
    assert_eq!(
        web2.load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        1,
        "the signed-out tokens do not come back from the remembered document"
    );
    // A change that changes nothing in the remembered document is not taken as "unchanged"
    // before the store's document had its turn: here the other instance's save gives the
    // change something to do.
    let _ = web1.load_partition(&key).await.unwrap();
    let sixth = with_scope("s6", "api://x/six");
    web2.update_partition(&key, &move |c: &TokenCache| c.add(&sixth))
        .await
        .unwrap();
    let keep_one = |c: &TokenCache| {
        for at in c.all_access_tokens().iter().skip(1) {
            c.remove_entry(Section::AccessToken, at.key())?;
        }
        Ok(())
    };
    let updated = web1
        .update_partition_with(&key, &keep_one, SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(updated, Updated::Saved);
    assert_eq!(
        web2.load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken),
        1
    );
}

async fn corrupt_partitions(store: Arc<dyn PartitionBackend>) {
    // A row that does not parse, and (under keys) a row in plain text: by default the save
    // sets the row aside (a copy kept for 30 days) and starts the partition empty, so the user
    // is not locked out; with `CorruptPartition::Fail` every save fails and the row stays.
    let keys = || PartitionKeys::new("k1", [7; 32]).unwrap();
    let cases: [(&str, &[u8], Option<PartitionKeys>); 2] = [
        ("garbled.t", b"{not json", None),
        (
            "planted.t",
            br#"{"RefreshToken": {}, "AccessToken": {}}"#,
            Some(keys()),
        ),
    ];
    for (key, document, encryption) in cases {
        store.save(key, document, None, None).await.unwrap();
        let failing = PartitionedCache::new(
            store.clone(),
            PartitionOptions {
                encryption: encryption.clone(),
                corrupt: tokencache_store::CorruptPartition::Fail,
                ..PartitionOptions::default()
            },
        );
        let pk = PartitionKey::new(key);
        let ev = user_event(key.trim_end_matches(".t"), "fresh");
        let e = failing
            .update_partition(&pk, &move |c: &TokenCache| c.add(&ev))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Unreadable { .. }), "{key}: {e}");
        assert_eq!(store.load(key).await.unwrap().unwrap().document, document);

        let setting_aside = PartitionedCache::new(
            store.clone(),
            PartitionOptions {
                encryption,
                ..PartitionOptions::default()
            },
        );
        let ev = user_event(key.trim_end_matches(".t"), "fresh");
        setting_aside
            .update_partition(&pk, &move |c: &TokenCache| c.add(&ev))
            .await
            .unwrap();
        let partition = setting_aside.load_partition(&pk).await.unwrap();
        assert_eq!(partition.len(Section::AccessToken), 1, "{key}");
        let keys_now = store.keys().await.unwrap();
        let copy = keys_now
            .iter()
            .find(|k| k.starts_with(&format!("{key}#set-aside-")))
            .unwrap_or_else(|| panic!("{key}: no set-aside copy in {keys_now:?}"));
        let kept = store.load(copy).await.unwrap().unwrap();
        assert_eq!(kept.document, document, "the copy is the row as it was");
        assert!(kept.expires_at.is_some(), "the copy expires");
    }
    // A partition sealed under a key this cache does not have is never set aside.
    let sealed = tokencache::seal::Envelope::PARTITION
        .seal(
            &tokencache::seal::DataKey::from_bytes([9; 32]),
            "k9",
            b"locked.t",
            b"{}",
        )
        .unwrap();
    store.save("locked.t", &sealed, None, None).await.unwrap();
    let cache = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            encryption: Some(keys()),
            ..PartitionOptions::default()
        },
    );
    let ev = user_event("locked", "fresh");
    let e = cache
        .update_partition(&PartitionKey::new("locked.t"), &move |c: &TokenCache| {
            c.add(&ev)
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unreadable { .. }), "{e}");
    assert_eq!(
        store.load("locked.t").await.unwrap().unwrap().document,
        sealed
    );
}

macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn compare_and_set() {
                super::compare_and_set(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn load_if_changed() {
                super::load_if_changed(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delete_and_recreate() {
                super::delete_and_recreate(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiry() {
                let fixture = super::$backend().await;
                super::expiry(fixture.store, fixture.time).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn leases() {
                super::leases(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn no_lost_updates() {
                super::no_lost_updates(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn partitioned_cache() {
                let fixture = super::$backend().await;
                super::partitioned_cache(fixture.store, fixture.time).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn maintenance_keeps_expiry() {
                super::maintenance_keeps_expiry(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn absolute_expiry() {
                let fixture = super::$backend().await;
                super::absolute_expiry(fixture.store, fixture.time).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn save_after_load_with_a_writer_in_between() {
                super::save_after_load_with_a_writer_in_between(super::$backend().await.store)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn corrupt_partitions() {
                super::corrupt_partitions(super::$backend().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_partition_updates() {
                super::concurrent_partition_updates(super::$backend().await.store).await;
            }
        }
    };
}

suite!(memory);
suite!(sqlite);
suite!(postgres);
suite!(redis);
suite!(redis_cluster);
