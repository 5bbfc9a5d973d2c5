//! Redis specifics: the key layout across versions (a partition hash written before the `e`
//! (expiry) field existed, or with a garbled one, still reports its expiry, from the key's
//! TTL), and concurrent loads sharing round trips without mixing up their replies.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::process::Command;

use tokencache_store::PartitionBackend;

fn redis_cli(port: u16, args: &[&str]) {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_partition_without_an_expiry_field_reports_its_ttl() {
    let redis = common::Redis::start();
    let store = tokencache_store::RedisBackend::connect(&redis.url())
        .await
        .unwrap();
    let hash = ["v", "5", "d", "{}", "c", "1700000000"];
    redis_cli(
        redis.port,
        &[&["HSET", "tokencache:p:old"], &hash[..]].concat(),
    );
    redis_cli(redis.port, &["PEXPIRE", "tokencache:p:old", "600000"]);
    redis_cli(
        redis.port,
        &[&["HSET", "tokencache:p:kept"], &hash[..]].concat(),
    );

    let before = now();
    let old = store.load("old").await.unwrap().unwrap();
    assert_eq!((old.version, old.created_at), (5, Some(1_700_000_000)));
    let expires_at = old.expires_at.unwrap();
    assert!(
        (before + 599..=now() + 600).contains(&expires_at),
        "{expires_at} is not 600 s from {before}"
    );
    // A garbled expiry field is not trusted either.
    redis_cli(
        redis.port,
        &[&["HSET", "tokencache:p:garbled"], &hash[..], &["e", "soon"]].concat(),
    );
    redis_cli(redis.port, &["PEXPIRE", "tokencache:p:garbled", "600000"]);
    let garbled = store.load("garbled").await.unwrap().unwrap();
    assert!(
        garbled.expires_at.is_some_and(|e| e >= before + 599),
        "{garbled:?}"
    );
    let kept = store.load("kept").await.unwrap().unwrap();
    assert_eq!(kept.expires_at, None, "no TTL: it never expires");
    // The same through the L1's validation path.
    match store.load_if_changed("old", 4).await.unwrap() {
        tokencache_store::IfChanged::Changed(Some(p)) => assert_eq!(p.expires_at, Some(expires_at)),
        other => panic!("version 5 is not 4: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_share_round_trips_and_keep_their_own_replies() {
    let redis = common::Redis::start();
    let store = std::sync::Arc::new(
        tokencache_store::RedisBackend::connect(&redis.url())
            .await
            .unwrap(),
    );
    for i in 0..64 {
        let doc = format!("{{\"n\": {i}}}");
        store
            .save(&format!("u{i}"), doc.as_bytes(), None, None)
            .await
            .unwrap();
    }
    // A key of the wrong type: its load fails, the loads batched with it do not.
    redis_cli(redis.port, &["SET", "tokencache:p:wrong", "a string"]);
    let before = store.read_batches();
    let loads: Vec<_> = (0..64)
        .map(|i| format!("u{i}"))
        .chain(["wrong".to_owned(), "absent".to_owned()])
        .map(|key| {
            let store = store.clone();
            tokio::spawn(async move { (store.load(&key).await, key) })
        })
        .collect();
    for load in loads {
        let (loaded, key) = load.await.unwrap();
        match key.as_str() {
            "wrong" => {
                let e = loaded.unwrap_err();
                assert!(e.to_string().contains("WRONGTYPE"), "{e}");
            }
            "absent" => assert_eq!(loaded.unwrap(), None),
            _ => {
                let doc = loaded.unwrap().unwrap().document;
                assert_eq!(
                    doc,
                    format!("{{\"n\": {}}}", &key[1..]).into_bytes(),
                    "{key}"
                );
            }
        }
    }
    let after = store.read_batches();
    let (reads, batches) = (after.reads - before.reads, after.batches - before.batches);
    assert_eq!(reads, 66);
    assert!(
        batches <= 16,
        "66 concurrent loads took {batches} round trips"
    );
    // One load on its own goes out at once, alone.
    store.load("u1").await.unwrap().unwrap();
    assert_eq!(store.read_batches().batches, after.batches + 1);
}
