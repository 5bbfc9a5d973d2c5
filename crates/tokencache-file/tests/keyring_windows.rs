//! Windows Credential Manager (run under Wine in CI, `.ci/setup-wine`): items round-trip binary
//! secrets, are replaced and deleted, refuse more than 2,560 bytes, and a data key kept there
//! by one process decrypts the cache file another process wrote with it.
#![cfg(target_os = "windows")]
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use tokencache::Section;
use tokencache_file::{FileOptions, FileStore, KeySource, KeyringItem};

fn item(name: &str) -> KeyringItem {
    KeyringItem {
        service: "dev.tokencache.test".into(),
        account: format!("{name}-{}", std::process::id()),
    }
}

#[test]
fn items_round_trip_replace_and_delete() {
    let item = item("round-trip");
    assert_eq!(item.load().unwrap(), None, "missing item");
    let secret: Vec<u8> = (0..=255u8).collect();
    item.store(&secret).unwrap();
    assert_eq!(item.load().unwrap().unwrap().as_slice(), secret.as_slice());
    item.store(b"replaced").unwrap();
    assert_eq!(item.load().unwrap().unwrap().as_slice(), b"replaced");
    item.delete().unwrap();
    assert_eq!(item.load().unwrap(), None);
    item.delete().unwrap();
}

#[test]
fn an_item_holds_at_most_2560_bytes() {
    let item = item("size");
    item.store(&[7u8; 2560]).unwrap();
    assert_eq!(item.load().unwrap().unwrap().len(), 2560);
    assert!(
        item.store(&[7u8; 2561]).is_err(),
        "over Credential Manager's limit"
    );
    item.delete().unwrap();
}

#[test]
fn a_key_in_credential_manager_is_shared_by_processes() {
    let name = format!("shared-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    // Another process makes the key, keeps it in Credential Manager and writes the file.
    let status = std::process::Command::new(common::record_responses())
        .args(["--file", path.to_str().unwrap(), "--count", "3"])
        .args(["--prefix", "other", "--keyring", &name])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(tokencache_file::is_encrypted(
        &std::fs::read(&path).unwrap()
    ));
    // This one reads it with the key from there.
    let store = FileStore::open(
        &path,
        FileOptions {
            encryption: Some(KeySource::Keyring { name: name.clone() }),
            ..FileOptions::default()
        },
    )
    .unwrap();
    store.reload().unwrap();
    assert_eq!(store.cache().len(Section::Account), 3);
    KeyringItem {
        service: "dev.tokencache.DataKey".into(),
        account: name,
    }
    .delete()
    .unwrap();
}
