//! No lost update across processes: three copies of `examples/concurrent_writes` save to one
//! user's partition at once (8 concurrent saves each, which take turns within their process)
//! in a shared SQLite file, PostgreSQL database, Redis or Redis Cluster; every save's access
//! token must be there at the end.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::process::{Command, Stdio};

use tokencache::json::JsonValue;
use tokencache::{PartitionKey, Section};
use tokencache_store::{PartitionOptions, PartitionedCache};

const COPIES: usize = 3;
const SAVES: usize = 40;

/// Runs the copies against `url`, numbered from `first_writer`; returns the conflicts they
/// met.
fn run_copies(url: &str, first_writer: usize) -> i64 {
    // All copies start writing at the same moment, a second from now.
    let start_at_ms = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1000)
        .to_string();
    let children: Vec<_> = (first_writer..first_writer + COPIES)
        .map(|writer| {
            Command::new(common::example_binary("concurrent_writes"))
                .args(["--store", url, "--writer", &writer.to_string()])
                .args(["--start-at-ms", &start_at_ms])
                .args(["--saves", &SAVES.to_string(), "--concurrency", "8"])
                // 24 writers on one partition, on 2 cores: a descheduled copy can lose the
                // compare-and-set race dozens of times in a row (a liveness limit of optimistic
                // saves, not a lost update: the save fails loudly). What this test proves is
                // that no save is lost, so each may retry longer than the default 32 times.
                .args(["--max-attempts", "400"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut conflicts = 0;
    for child in children {
        let report = common::json_report(child);
        let count = |k: &str| report.get(k).and_then(JsonValue::as_int_lenient).unwrap();
        assert_eq!(
            count("saved"),
            SAVES as i64,
            "every save of a copy succeeded"
        );
        conflicts += count("conflicts");
    }
    conflicts
}

async fn no_lost_update_across_processes(url: &str) {
    let conflicts = run_copies(url, 0);
    let cache = PartitionedCache::new(
        tokencache_store::open(url).await.unwrap(),
        PartitionOptions::default(),
    );
    let partition = cache
        .load_partition(&PartitionKey::for_account("shared-user.t"))
        .await
        .unwrap();
    let mut scopes: Vec<String> = partition
        .all_access_tokens()
        .iter()
        .filter_map(|at| at.target().map(str::to_owned))
        .collect();
    scopes.sort();
    let mut expected: Vec<String> = (0..COPIES)
        .flat_map(|w| (0..SAVES).map(move |n| format!("api://x/w{w}-{n}")))
        .collect();
    expected.sort();
    assert_eq!(
        partition.len(Section::AccessToken),
        COPIES * SAVES,
        "one access token per save ({conflicts} conflicts were retried)"
    );
    assert_eq!(scopes, expected);
    assert!(
        conflicts > 0,
        "three processes writing at once must have collided; the test did not exercise contention"
    );
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    // Created once before the copies race to create the schema.
    drop(tokencache_store::open(&url).await.unwrap());
    no_lost_update_across_processes(&url).await;
}

#[tokio::test]
async fn postgres() {
    let db = common::Postgres::create();
    no_lost_update_across_processes(&db.url).await;
}

#[tokio::test]
async fn redis() {
    let server = common::Redis::start();
    no_lost_update_across_processes(&server.url()).await;
}

#[tokio::test]
async fn redis_cluster() {
    let cluster = common::RedisCluster::start();
    no_lost_update_across_processes(&cluster.url()).await;
}

/// A process with an L1 sees every save the other processes make.
#[tokio::test]
async fn an_l1_sees_every_save_of_other_processes() {
    let server = common::Redis::start();
    let url = server.url();
    let cache = PartitionedCache::new(
        tokencache_store::open(&url).await.unwrap(),
        PartitionOptions {
            l1_bytes: 1 << 20,
            ..PartitionOptions::default()
        },
    );
    let key = PartitionKey::for_account("shared-user.t");
    let tokens = async || {
        cache
            .load_partition(&key)
            .await
            .unwrap()
            .len(Section::AccessToken)
    };
    run_copies(&url, 0);
    assert_eq!(tokens().await, COPIES * SAVES);
    assert_eq!(tokens().await, COPIES * SAVES);
    assert_eq!(
        cache.metrics().l1_hits,
        1,
        "the second read came from the L1"
    );
    run_copies(&url, COPIES);
    assert_eq!(
        tokens().await,
        2 * COPIES * SAVES,
        "the L1 copy was stale and replaced"
    );
}
