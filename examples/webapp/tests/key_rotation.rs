//! The sample web app's store-key flags: partitions written under one key are read after a
//! restart with a new key only when the old one is given as the previous key, and the next
//! save moves them to the new key. Driven over HTTP (the provider's browse helper plays the
//! browser).

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod support;

use std::path::Path;

use support::{provider, sign_in, start};

/// The key id of every stored partition.
async fn key_ids(store: &str) -> Vec<Option<String>> {
    let backend = tokencache_store::open(store).await.unwrap();
    let mut ids = Vec::new();
    for key in backend.keys().await.unwrap() {
        let stored = backend.load(&key).await.unwrap().unwrap();
        ids.push(tokencache_store::encrypted_key_id(&stored.document));
    }
    ids
}

fn key_file(dir: &Path, name: &str, byte: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, byte.repeat(32)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_new_key_reads_old_partitions_only_with_the_previous_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let idp = provider(dir.path(), &format!("http://127.0.0.1:{port}/callback"));
    let store = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let k1 = key_file(dir.path(), "k1.key", "11");
    let k2 = key_file(dir.path(), "k2.key", "22");

    // Under k1: alice signs in; her partition is encrypted under k1.
    let app = start(
        &idp,
        port,
        &store,
        &["--store-key-file", &k1, "--store-key-id", "k1"],
    );
    assert!(sign_in(&idp, port, "alice").await.is_redirection());
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k1".to_owned())]);

    // Restarted with k2 alone: alice's partition cannot be read, so her sign-in fails and the
    // partition is left as it was.
    let app = start(
        &idp,
        port,
        &store,
        &["--store-key-file", &k2, "--store-key-id", "k2"],
    );
    let refused = sign_in(&idp, port, "alice").await;
    assert!(
        !refused.is_redirection() && !refused.is_success(),
        "{refused}"
    );
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k1".to_owned())]);

    // With k1 as the previous key, the sign-in reads the partition and saves it under k2.
    let app = start(
        &idp,
        port,
        &store,
        &[
            "--store-key-file",
            &k2,
            "--store-key-id",
            "k2",
            "--previous-store-key-file",
            &k1,
            "--previous-store-key-id",
            "k1",
        ],
    );
    assert!(sign_in(&idp, port, "alice").await.is_redirection());
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k2".to_owned())]);
}
