//! A partition encrypted by tokencache 0.1.0, before the envelope moved into the core, still
//! decrypts, only under its own partition key, and is rewritten in the same format.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::path::PathBuf;

use tokencache::{PartitionKey, Section, TokenCache};
use tokencache_store::{
    PartitionKeys, PartitionOptions, PartitionedCache, SaveExpiry, StoreError, Updated,
    encrypted_key_id,
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/encrypted")
            .join(name),
    )
    .unwrap()
}

fn keys() -> PartitionKeys {
    let text = String::from_utf8(fixture("key.hex")).unwrap();
    let key = tokencache::seal::DataKey::from_text(&text).unwrap();
    PartitionKeys::new("k1", *key.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_partition_encrypted_by_0_1_0_opens_under_its_key_and_its_partition_only() {
    let document = fixture("partition-adfs-sub-v1.tcpe");
    assert_eq!(encrypted_key_id(&document).as_deref(), Some("k1"));
    let store = tokencache_store::open("memory://").await.unwrap();
    assert!(matches!(
        store.save("adfs-sub", &document, None, None).await.unwrap(),
        tokencache_store::SaveOutcome::Saved(_)
    ));
    // Copied into another user's partition, it does not open.
    store
        .save("someone-else", &document, None, None)
        .await
        .unwrap();
    let cache = PartitionedCache::new(
        store.clone(),
        PartitionOptions {
            encryption: Some(keys()),
            ..PartitionOptions::default()
        },
    );
    let adfs = PartitionKey::new("adfs-sub");
    let partition = cache.load_partition(&adfs).await.unwrap();
    assert_eq!(partition.len(Section::Account), 1);
    assert_eq!(partition.len(Section::RefreshToken), 1);
    let moved = cache
        .load_partition(&PartitionKey::new("someone-else"))
        .await
        .unwrap_err();
    assert!(matches!(moved, StoreError::Unreadable { .. }), "{moved}");

    // Written again: even a no-op change moves it to the current format (v2, purpose bound),
    // under the same key; after that a no-op change leaves it.
    assert_eq!(
        tokencache::seal::Envelope::PARTITION.version(&document),
        Some(1)
    );
    let upgraded = cache
        .update_partition_with(&adfs, &|_: &TokenCache| Ok(()), SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(upgraded, Updated::Saved);
    let current = store.load("adfs-sub").await.unwrap().unwrap().document;
    assert_eq!(
        tokencache::seal::Envelope::PARTITION.version(&current),
        Some(2)
    );
    assert_eq!(encrypted_key_id(&current).as_deref(), Some("k1"));
    let noop = cache
        .update_partition_with(&adfs, &|_: &TokenCache| Ok(()), SaveExpiry::Keep)
        .await
        .unwrap();
    assert_eq!(noop, Updated::Unchanged);
    let purged = cache
        .update_partition(&adfs, &|c: &TokenCache| {
            c.purge_expired_access_tokens(i64::MAX);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(purged, Updated::Saved, "its access token went");
    let rewritten = store.load("adfs-sub").await.unwrap().unwrap().document;
    assert_ne!(rewritten, document);
    assert_eq!(encrypted_key_id(&rewritten).as_deref(), Some("k1"));
    assert_eq!(
        cache
            .load_partition(&adfs)
            .await
            .unwrap()
            .len(Section::RefreshToken),
        1
    );
}
