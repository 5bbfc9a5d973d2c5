//! The CLI on partitioned stores: migrate a cache file into SQLite, PostgreSQL, Redis and a
//! Redis Cluster and back without losing anything, and inspect, validate, prune and
//! remove-account on store URLs.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-store/tests/common/mod.rs"]
mod servers;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use tokencache_store::PartitionBackend;

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

/// Jane's home account id in the sample cache.
const JANE: &str = "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A SQLite store in `dir`.
fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("t.db").display())
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/caches/desktop.json")
        .display()
        .to_string()
}

/// Every entry of a cache file, secrets included, by section and key (the order of entries
/// may change when partitions are merged back into one file).
fn document(path: &str) -> std::collections::BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = tokencache::json::JsonObject::parse(&text).unwrap();
    let mut entries = std::collections::BTreeMap::new();
    for (section, value) in doc.iter() {
        let tokencache::json::JsonValue::Object(members) = value else {
            panic!("section {section} is not an object");
        };
        for (key, entry) in members.iter() {
            entries.insert(
                (section.to_owned(), key.to_owned()),
                tokencache::json::to_python_json(entry, false),
            );
        }
    }
    entries
}

/// File -> store -> file: the same document, every entry with every member (secrets
/// included), verified by the tool and by comparing both files.
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
    let (before, after) = (document(&sample()), document(back));
    assert!(
        before.values().any(|entry| entry.contains("\"secret\": ")),
        "the comparison covers secrets"
    );
    assert_eq!(before, after, "nothing lost or changed through {url}");
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
    // Each partition keeps its expiry from one store to the other.
    let until = unix_now() + 1000;
    set_expiries(&redis.url(), until);
    let out = ok(&["migrate", &redis.url(), &sqlite]);
    assert!(out.contains("3 partition(s)"), "{out}");
    assert_eq!(expiries(&sqlite), vec![Some(until); 3]);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn migrate_through_a_redis_cluster() {
    let cluster = servers::RedisCluster::start();
    round_trip(&cluster.url());
}

#[test]
fn prune_and_remove_account_on_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    ok(&["migrate", &sample(), &url]);
    // Each partition has 1,000 s left, as if its user had been away for a while.
    let until = unix_now() + 1000;
    set_expiries(&url, until);
    // The sample's access tokens expired in 2023.
    let out = ok(&["prune", &url]);
    assert!(out.contains("removed 4 expired"), "{out}");
    assert_eq!(
        expiries(&url),
        vec![Some(until); 3],
        "maintenance does not keep an idle user's tokens longer"
    );
    // Nothing left to prune: no partition is written again.
    let before = versions(&url);
    let out = ok(&["prune", &url]);
    assert!(out.contains("removed 0 expired"), "{out}");
    assert_eq!(versions(&url), before);
    // `inspect` lists the partitions with their expiry, in the table and in JSON.
    let shown = ok(&["inspect", &url, "--now", &(until - 1000).to_string()]);
    assert!(shown.contains("Partitions: 3"), "{shown}");
    assert!(
        shown.contains(&format!("{JANE}  ")) && shown.contains("in 16m"),
        "{shown}"
    );
    let listed = ok(&["inspect", "--json", &url]);
    let listed = tokencache::json::JsonObject::parse(&listed).unwrap();
    let Some(tokencache::json::JsonValue::Array(partitions)) = listed.get("partitions") else {
        panic!("no partitions in {listed:?}")
    };
    assert_eq!(partitions.len(), 3);
    for p in partitions.iter() {
        let tokencache::json::JsonValue::Object(p) = p else {
            panic!("{p:?}")
        };
        let expires_at = p.get("expires_at").and_then(|v| v.as_int_lenient());
        assert_eq!(expires_at, Some(until));
        assert_eq!(p.get("key_id"), Some(&tokencache::json::JsonValue::Null));
    }
    let key = dir.path().join("k.key");
    std::fs::write(&key, "33".repeat(32)).unwrap();
    let key = key.to_str().unwrap();
    ok(&["encrypt", &url, "--key-file", key, "--key-id", "k3"]);
    ok(&["decrypt", &url, "--key-file", key]);
    assert_eq!(expiries(&url), vec![Some(until); 3]);
    let out = ok(&["remove-account", &url, JANE]);
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

fn fails(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        !out.status.success(),
        "tokencache {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Runs `f` on the store at `url` the way an application would, on a runtime of its own.
fn with_store<T>(url: &str, f: impl AsyncFnOnce(Arc<dyn PartitionBackend>) -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { f(tokencache_store::open(url).await.unwrap()).await })
}

/// Every partition's expiry, by key.
fn expiries(url: &str) -> Vec<Option<i64>> {
    with_store(url, async |store| {
        let mut all = Vec::new();
        for key in store.keys().await.unwrap() {
            all.push(store.load(&key).await.unwrap().unwrap().expires_at);
        }
        all
    })
}

/// Every partition's version, in key order.
fn versions(url: &str) -> Vec<u64> {
    with_store(url, async |store| {
        let mut keys = store.keys().await.unwrap();
        keys.sort();
        let mut all = Vec::new();
        for key in keys {
            all.push(store.load(&key).await.unwrap().unwrap().version);
        }
        all
    })
}

/// Gives every partition the expiry `until`, changing nothing else.
fn set_expiries(url: &str, until: i64) {
    with_store(url, async |store| {
        for key in store.keys().await.unwrap() {
            let p = store.load(&key).await.unwrap().unwrap();
            let saved = store
                .save(&key, &p.document, Some(p.version), Some(until))
                .await
                .unwrap();
            assert!(matches!(saved, tokencache_store::SaveOutcome::Saved(_)));
        }
    })
}

/// The key id of every partition, read from the raw documents (`None`: plain text).
fn key_ids(url: &str) -> Vec<Option<String>> {
    with_store(url, async |store| {
        let mut ids = Vec::new();
        for key in store.keys().await.unwrap() {
            let doc = store.load(&key).await.unwrap().unwrap().document;
            assert!(
                tokencache_store::encrypted_key_id(&doc).is_none()
                    || !String::from_utf8_lossy(&doc).contains("secret"),
                "an encrypted partition shows no secret"
            );
            ids.push(tokencache_store::encrypted_key_id(&doc));
        }
        ids
    })
}

/// What an application configured with `PartitionKeys::new(id, key)` reads from the store:
/// the number of refresh tokens over all partitions.
fn app_reads(url: &str, id: &str, key: [u8; 32]) -> usize {
    use tokencache_store::{PartitionKeys, PartitionOptions, PartitionedCache};
    with_store(url, async |store| {
        let cache = PartitionedCache::new(
            store.clone(),
            PartitionOptions {
                encryption: Some(PartitionKeys::new(id, key).unwrap()),
                ..PartitionOptions::default()
            },
        );
        let mut refresh_tokens = 0;
        for key in store.keys().await.unwrap() {
            let part = cache
                .load_partition(&tokencache::PartitionKey::new(key))
                .await
                .unwrap();
            refresh_tokens += part.len(tokencache::Section::RefreshToken);
        }
        refresh_tokens
    })
}

#[test]
fn encrypted_stores_take_keys_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let key1 = dir.path().join("k1.key");
    let key2 = dir.path().join("k2.key");
    std::fs::write(&key1, "11".repeat(32)).unwrap();
    std::fs::write(&key2, "22".repeat(32)).unwrap();
    let (k1, k2) = (key1.to_str().unwrap(), key2.to_str().unwrap());
    let sample = sample();

    // Into a store, encrypted under the id the application uses.
    let out = ok(&["migrate", &sample, &url, "--key-file", k1, "--key-id", "k1"]);
    assert!(
        out.contains("3 partition(s)") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(key_ids(&url), vec![Some("k1".to_owned()); 3]);
    // Which key each partition needs shows without the key.
    let out = run(&["inspect", &url]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Partitions: 3") && shown.matches("  k1  ").count() == 3,
        "{shown}"
    );
    let refresh_tokens = app_reads(&url, "k1", [0x11; 32]);
    assert!(
        refresh_tokens > 0,
        "the application reads what the CLI wrote"
    );

    // Without the key: each partition is reported with its key id; with it, every verb works.
    let out = fails(&["validate", &url]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("encrypted (key id \"k1\")"), "{said}");
    let shown = ok(&["inspect", &url, "--key-file", k1]);
    assert!(
        shown.contains("jane@contoso.com") && shown.contains("Accounts: 3"),
        "{shown}"
    );
    ok(&["validate", &url, "--key-file", k1]);
    let out = ok(&["prune", &url, "--key-file", k1]);
    assert!(out.contains("removed 4 expired"), "{out}");
    assert_eq!(
        key_ids(&url),
        vec![Some("k1".to_owned()); 3],
        "prune keeps the encryption"
    );

    // Rotation: re-encrypted under k2, read with the previous key.
    let out = ok(&[
        "encrypt",
        &url,
        "--key-file",
        k2,
        "--key-id",
        "k2",
        "--previous-key-file",
        k1,
    ]);
    assert!(out.contains("encrypted 3 partition(s)"), "{out}");
    assert_eq!(key_ids(&url), vec![Some("k2".to_owned()); 3]);
    assert_eq!(app_reads(&url, "k2", [0x22; 32]), refresh_tokens);
    let out = ok(&["encrypt", &url, "--key-file", k2, "--key-id", "k2"]);
    assert!(
        out.contains("encrypted 0 partition(s); 3 already were"),
        "{out}"
    );

    // A wrong key changes nothing and says which partitions it could not read.
    let out = fails(&["decrypt", &url, "--key-file", k1]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("left as it was") && said.contains("authentication failed"),
        "{said}"
    );
    assert_eq!(key_ids(&url), vec![Some("k2".to_owned()); 3]);
    // Encrypting a store needs the key id.
    let out = fails(&["encrypt", &url, "--key-file", k2]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-id"));

    // Back to plain text: readable without a key, and nothing lost on the way back to a file.
    let out = ok(&["decrypt", &url, "--key-file", k2]);
    assert!(out.contains("decrypted 3 partition(s)"), "{out}");
    assert_eq!(key_ids(&url), vec![None; 3]);
    let back = dir.path().join("back.json");
    ok(&["migrate", &url, back.to_str().unwrap()]);
    let shown = ok(&["inspect", back.to_str().unwrap()]);
    assert!(
        shown.contains("jane@contoso.com") && shown.contains("Accounts: 3"),
        "{shown}"
    );
}

#[test]
fn repair_on_a_store_keeps_a_copy_and_fixes_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let messy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/caches/messy.json")
        .display()
        .to_string();
    ok(&["migrate", &messy, &url]);
    fails(&["validate", &url]);
    // An existing file is never overwritten by the copy, and nothing is repaired then.
    let taken = dir.path().join("taken.json");
    std::fs::write(&taken, "mine").unwrap();
    fails(&["repair", &url, "--backup", taken.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "mine");
    fails(&["validate", &url]);
    let backup = dir.path().join("copy.json");
    let backup = backup.to_str().unwrap();
    let out = ok(&["repair", &url, "--backup", backup]);
    assert!(out.contains("2 change(s) made"), "{out}");
    ok(&["validate", &url]);
    // The copy is a cache file holding the store as it was: it still has the problems.
    let out = fails(&["validate", backup]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("non-canonical"));
    assert!(ok(&["repair", &url]).contains("nothing to repair"));
}

#[test]
fn lock_status_on_a_store_lists_the_refresh_leases_held() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    ok(&["migrate", &sample(), &url]);
    let out = ok(&["lock-status", &url]);
    assert!(out.contains("0 refresh lease(s) held"), "{out}");
    with_store(&url, async |store| {
        let ttl = std::time::Duration::from_secs(30);
        assert!(store.try_lease(JANE, "web-1", ttl).await.unwrap());
    });
    let out = ok(&["lock-status", &url]);
    assert!(out.contains("1 refresh lease(s) held"), "{out}");
    assert!(out.contains(JANE) && out.contains("held by web-1"), "{out}");
}

#[test]
fn no_verb_prints_a_store_password() {
    const PASSWORD: &str = "s3cret-pw";
    let redis = servers::Redis::start_with_password(PASSWORD);
    let url = redis.url();
    assert!(url.contains(PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("store.key");
    let key = key.to_str().unwrap();
    ok(&["migrate", &sample(), &url]);
    let mut outputs = Vec::new();
    for args in [
        vec!["validate", &url],
        vec!["inspect", &url],
        vec!["inspect", "--json", &url],
        vec!["lock-status", &url],
        vec!["repair", "--dry-run", &url],
        vec!["prune", &url],
        vec![
            "encrypt",
            "--new-key",
            "--key-file",
            key,
            "--key-id",
            "k1",
            &url,
        ],
        vec!["decrypt", "--key-file", key, &url],
        vec!["-vv", "validate", &url],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        outputs.push((args.join(" "), out));
    }
    // Failures print the URL too: a wrong password, one that does not parse, a query password.
    let wrong = url.replace(PASSWORD, &format!("{PASSWORD}-wrong"));
    let cluster = format!("redis+cluster://:{PASSWORD}@h1:1,h2:2");
    let query = format!("postgres://u@127.0.0.1:1/db?password={PASSWORD}");
    for bad in [&wrong, &cluster, &query] {
        for verb in ["validate", "lock-status", "inspect"] {
            let out = run(&[verb, bad]);
            assert_eq!(out.status.code(), Some(2), "{verb} {bad}: {out:?}");
            outputs.push((format!("{verb} {bad}"), out));
        }
    }
    for (what, out) in outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(PASSWORD),
            "{what} printed the password:\n{text}"
        );
    }
}

#[test]
fn prune_skips_and_reports_a_partition_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    ok(&["migrate", &sample(), &url]);
    // A row that does not parse sorts before the others, so a prune that stopped at it would
    // prune nothing.
    with_store(&url, async |store| {
        store
            .save("0-garbled", b"{not json", None, None)
            .await
            .unwrap();
    });
    let out = run(&["prune", &url]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("removed 4 expired"),
        "the rest is pruned: {stdout}"
    );
    assert!(
        stderr.contains("partition \"0-garbled\" skipped"),
        "reported: {stderr}"
    );
    let kept = with_store(&url, async |store| {
        store.load("0-garbled").await.unwrap().unwrap().document
    });
    assert_eq!(kept, b"{not json", "left as it was");
}
