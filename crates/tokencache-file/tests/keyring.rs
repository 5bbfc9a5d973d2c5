//! The real Secret Service (gnome-keyring under `dbus-run-session`, as `.ci/run` starts it):
//! data keys in the keyring, and whole caches under msal-extensions' identifiers, visible to
//! libsecret clients such as `secret-tool` and msal-extensions' `LibsecretPersistence`.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

use common::user_event;
use tokencache::Section;
use tokencache_file::{FileOptions, FileStore, KeySource, KeyringItem, sha256_hex};

/// True when a session bus is there; without one the test fails, unless
/// `TOKENCACHE_SKIP_KEYRING=1`.
fn keyring_available() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return true;
    }
    if std::env::var("TOKENCACHE_SKIP_KEYRING").as_deref() == Ok("1") {
        eprintln!("skipping: no session bus (TOKENCACHE_SKIP_KEYRING=1)");
        return false;
    }
    panic!(
        "no D-Bus session: run under `dbus-run-session` with gnome-keyring unlocked (see .ci/run), or set TOKENCACHE_SKIP_KEYRING=1"
    );
}

fn secret_tool_lookup(attributes: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new("secret-tool");
    cmd.arg("lookup");
    for (k, v) in attributes {
        cmd.args([k, v]);
    }
    let out = cmd.output().expect("secret-tool (apt: libsecret-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn data_key_in_the_keyring_encrypts_the_file() {
    if !keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.bin");
    let name = path.display().to_string();
    let opts = FileOptions {
        encryption: Some(KeySource::Keyring { name: name.clone() }),
        ..Default::default()
    };
    FileStore::open(&path, opts.clone())
        .expect("open")
        .add(&user_event("alice"))
        .expect("add");
    let bytes = std::fs::read(&path).expect("read");
    assert!(tokencache_file::is_encrypted(&bytes));
    assert_eq!(
        tokencache_file::header_key_id(&bytes).as_deref(),
        Some("keyring")
    );
    let stored = secret_tool_lookup(&[
        ("xdg:schema", "dev.tokencache.DataKey"),
        ("tokencache_cache", &name),
    ])
    .expect("key item");
    assert_eq!(stored.trim().len(), 44, "a base64 32-byte key");
    let again = FileStore::open(&path, opts).expect("open");
    again
        .reload()
        .expect("decrypt with the key from the keyring");
    assert_eq!(again.cache().len(Section::Account), 1);
    KeyringItem {
        schema: "dev.tokencache.DataKey".into(),
        attributes: vec![("tokencache_cache".into(), name)],
        label: String::new(),
    }
    .delete()
    .expect("cleanup");
}

#[test]
fn whole_cache_in_the_keyring_with_msal_extensions_identifiers() {
    if !keyring_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let signal = dir.path().join("msal.cache");
    let location = signal.display().to_string();
    let item = KeyringItem::msal_extensions(&location);
    assert_eq!(item.schema, sha256_hex(&location));
    let store = FileStore::keyring(item.clone(), &signal, FileOptions::default()).expect("open");
    store.add(&user_event("alice")).expect("add");
    assert!(
        signal.exists(),
        "the signal file is touched after a write, as msal-extensions does"
    );
    // A libsecret client finds the item by msal-extensions' attributes alone.
    let found =
        secret_tool_lookup(&[("xdg:schema", &item.schema)]).expect("item visible to libsecret");
    assert_eq!(found, store.cache().serialize());
    let other = FileStore::keyring(item.clone(), &signal, FileOptions::default()).expect("open");
    other.add(&user_event("bob")).expect("add");
    store.reload().expect("reload");
    assert_eq!(
        store.cache().len(Section::Account),
        2,
        "nothing lost between two stores"
    );
    item.delete().expect("cleanup");
    assert!(secret_tool_lookup(&[("xdg:schema", &item.schema)]).is_none());
}
