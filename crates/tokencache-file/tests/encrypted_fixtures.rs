//! Cache files encrypted by tokencache 0.1.0, before the envelope moved into the core, still
//! decrypt, and stay in the same format when they are written again.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::path::PathBuf;

use tokencache::Section;
use tokencache_file::{FileOptions, FileStore, KeySource, header_key_id, is_encrypted};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/encrypted")
        .join(name)
}

#[test]
fn a_file_encrypted_by_0_1_0_opens_and_is_rewritten_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    std::fs::copy(fixture("cache-v1.tcenc"), &path).unwrap();
    assert_eq!(
        tokencache::seal::Envelope::FILE.version(&std::fs::read(&path).unwrap()),
        Some(1)
    );
    let options = FileOptions {
        encryption: Some(KeySource::File(fixture("key.hex"))),
        ..FileOptions::default()
    };
    let store = FileStore::open(&path, options).unwrap();
    store.reload().unwrap();
    let plain = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/caches/desktop.json"),
    )
    .unwrap();
    assert_eq!(
        store.cache().serialize(),
        plain,
        "the same document, byte for byte"
    );
    assert_eq!(store.cache().len(Section::Account), 3);

    store
        .update(|c| Ok(c.purge_expired_access_tokens(0)))
        .unwrap();
    store
        .update(|c| Ok(c.remove_account_everywhere("adfs-sub")))
        .unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert!(is_encrypted(&raw));
    assert_eq!(header_key_id(&raw).as_deref(), Some("file"));
    assert_eq!(
        tokencache::seal::Envelope::FILE.version(&raw),
        Some(2),
        "moved to the current format at its next save"
    );
    assert!(!String::from_utf8_lossy(&raw).contains("AccessToken"));
    let reread = FileStore::open(
        &path,
        FileOptions {
            encryption: Some(KeySource::File(fixture("key.hex"))),
            ..FileOptions::default()
        },
    )
    .unwrap();
    reread.reload().unwrap();
    assert_eq!(reread.cache().len(Section::Account), 2);
}

#[test]
fn the_wrong_key_leaves_a_0_1_0_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    std::fs::copy(fixture("cache-v1.tcenc"), &path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let options = FileOptions {
        encryption: Some(KeySource::Key(tokencache_file::DataKey::from_bytes(
            [9; 32],
        ))),
        ..FileOptions::default()
    };
    let store = FileStore::open(&path, options).unwrap();
    let e = store.reload().unwrap_err();
    assert!(e.to_string().contains("cannot decrypt"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
