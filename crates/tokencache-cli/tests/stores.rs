//! The CLI on partitioned stores: migrate a cache file into SQLite, PostgreSQL, Redis and a
//! Redis Cluster and back without losing anything, and inspect, validate, prune and
//! remove-account on store URLs.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-store/tests/common/mod.rs"]
mod servers;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "tokencache {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/caches/desktop.json")
        .display()
        .to_string()
}

/// File -> store -> file: the same accounts and tokens, verified by the tool and by comparing
/// `inspect --json` of both files.
fn round_trip(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("back.json");
    let back = back.to_str().unwrap();
    let out = ok(&["migrate", &sample(), url]);
    assert!(
        out.contains("3 partition(s)") && out.contains("verified"),
        "{out}"
    );
    let shown = ok(&["inspect", url]);
    assert!(
        shown.contains("jane@contoso.com") && shown.contains("Accounts: 3"),
        "{shown}"
    );
    assert!(!shown.contains("secret"), "inspect redacts");
    ok(&["validate", url]);
    ok(&["migrate", url, back]);
    assert_eq!(
        ok(&["inspect", "--json", &sample()]),
        ok(&["inspect", "--json", back]),
        "nothing lost through {url}"
    );
}

#[test]
fn migrate_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&format!("sqlite://{}", dir.path().join("t.db").display()));
}

#[test]
fn migrate_through_postgres() {
    let db = servers::Postgres::create();
    round_trip(&db.url);
}

#[test]
fn migrate_through_redis_and_between_stores() {
    let redis = servers::Redis::start();
    round_trip(&redis.url());
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = ok(&["migrate", &redis.url(), &sqlite]);
    assert!(out.contains("3 partition(s)"), "{out}");
}

#[test]
fn migrate_through_a_redis_cluster() {
    let cluster = servers::RedisCluster::start();
    round_trip(&cluster.url());
}

#[test]
fn prune_and_remove_account_on_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    ok(&["migrate", &sample(), &url]);
    // The sample's access tokens expired in 2023.
    let out = ok(&["prune", &url]);
    assert!(out.contains("removed 4 expired"), "{out}");
    let home = "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47";
    let out = ok(&["remove-account", &url, home]);
    assert!(out.contains("deleted"), "{out}");
    let shown = ok(&["inspect", &url]);
    assert!(
        shown.contains("Accounts: 2") && !shown.contains("jane@"),
        "{shown}"
    );
    // Unknown schemes and unreachable stores are clear errors.
    let out = run(&["inspect", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("redis"),
        "{out:?}"
    );
}
