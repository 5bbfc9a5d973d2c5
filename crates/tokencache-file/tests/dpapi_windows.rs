//! The DPAPI-sealed cache file MSAL apps share on Windows (run under Wine in CI,
//! `.ci/setup-wine`): the file is the bare blob that msal-extensions'
//! `FilePersistenceWithDataProtection` writes (`CryptProtectData`, current user, no entropy,
//! description `python_data`, UI forbidden), both ways: a file sealed exactly as the peer seals
//! it is read and updated, and what the store writes opens exactly as the peer opens it. A plain
//! file, a damaged blob and a second process are covered too.
#![cfg(target_os = "windows")]
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
// The peer's two DPAPI calls, made here the way msal-extensions makes them.
#![allow(unsafe_code)]

mod common;

use tokencache::Section;
use tokencache_file::{FileError, FileOptions, FileStore, is_dpapi_protected};
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Cryptography::{
    CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData, CryptUnprotectData,
};

fn dpapi() -> FileOptions {
    FileOptions {
        windows_data_protection: true,
        ..FileOptions::default()
    }
}

/// Copies and frees a blob DPAPI allocated.
fn take(blob: CRYPT_INTEGER_BLOB) -> Vec<u8> {
    let bytes = unsafe { std::slice::from_raw_parts(blob.pbData, blob.cbData as usize) }.to_vec();
    unsafe { LocalFree(blob.pbData.cast()) };
    bytes
}

/// `FilePersistenceWithDataProtection.save` (msal-extensions' windows.py, per the reference
/// spec §5.4): description "python_data", no entropy, CRYPTPROTECT_UI_FORBIDDEN.
fn seal_as_msal_extensions(json: &str) -> Vec<u8> {
    let input = CRYPT_INTEGER_BLOB {
        cbData: json.len() as u32,
        pbData: json.as_ptr().cast_mut(),
    };
    let description: Vec<u16> = "python_data".encode_utf16().chain([0]).collect();
    let mut out = CRYPT_INTEGER_BLOB::default();
    let ok = unsafe {
        CryptProtectData(
            &input,
            description.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    assert_ne!(
        ok,
        0,
        "CryptProtectData: {}",
        std::io::Error::last_os_error()
    );
    take(out)
}

/// `FilePersistenceWithDataProtection.load`: the JSON and the blob's description.
fn open_as_msal_extensions(blob: &[u8]) -> (String, String) {
    let input = CRYPT_INTEGER_BLOB {
        cbData: blob.len() as u32,
        pbData: blob.as_ptr().cast_mut(),
    };
    let mut description: *mut u16 = std::ptr::null_mut();
    let mut out = CRYPT_INTEGER_BLOB::default();
    let ok = unsafe {
        CryptUnprotectData(
            &input,
            &mut description,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    assert_ne!(
        ok,
        0,
        "CryptUnprotectData: {}",
        std::io::Error::last_os_error()
    );
    let described = if description.is_null() {
        String::new()
    } else {
        let len = (0..)
            .take_while(|&i| unsafe { *description.add(i) } != 0)
            .count();
        let text =
            String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(description, len) });
        unsafe { LocalFree(description.cast()) };
        text
    };
    (String::from_utf8(take(out)).unwrap(), described)
}

fn golden() -> String {
    std::fs::read_to_string(common::repo_root().join("tests/golden/auth_code_foci.json")).unwrap()
}

#[test]
fn a_file_msal_extensions_sealed_is_read_updated_and_still_opens_as_it_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msal_token_cache.bin");
    let original = golden();
    std::fs::write(&path, seal_as_msal_extensions(&original)).unwrap();

    let store = FileStore::open(&path, dpapi()).unwrap();
    store.reload().unwrap();
    let before = tokencache::TokenCache::from_json(&original).unwrap();
    assert_eq!(
        store.cache().len(Section::Account),
        before.len(Section::Account)
    );
    store.add(&common::user_event("added")).unwrap();

    let written = std::fs::read(&path).unwrap();
    assert!(
        is_dpapi_protected(&written),
        "the bare DPAPI blob, no header"
    );
    assert!(
        !written.windows(9).any(|w| w == b"at-added"),
        "no token in the clear"
    );
    let (json, description) = open_as_msal_extensions(&written);
    assert_eq!(
        description, "python_data",
        "described as msal-extensions does"
    );
    let accounts = common::accounts_in(&json);
    assert!(accounts.contains(&"added.t".to_owned()), "{accounts:?}");
    assert_eq!(accounts.len(), before.len(Section::Account) + 1);
}

#[test]
fn a_second_process_reads_and_adds_to_what_the_first_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msal.cache");
    FileStore::open(&path, dpapi())
        .unwrap()
        .add(&common::user_event("first"))
        .unwrap();
    let sealed = std::fs::read(&path).unwrap();
    assert!(
        is_dpapi_protected(&sealed),
        "{:02x?}",
        &sealed[..sealed.len().min(24)]
    );
    let status = std::process::Command::new(common::record_responses())
        .args(["--file", path.to_str().unwrap(), "--count", "3"])
        .args(["--prefix", "other", "--dpapi"])
        .status()
        .unwrap();
    assert!(status.success());
    let (json, _) = open_as_msal_extensions(&std::fs::read(&path).unwrap());
    let mut accounts = common::accounts_in(&json);
    accounts.sort();
    assert_eq!(
        accounts,
        [
            "first.t",
            "other-0.tenant",
            "other-1.tenant",
            "other-2.tenant"
        ]
    );
}

#[test]
fn plain_damaged_and_unexpected_files_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msal_token_cache.bin");

    // A plain file where a sealed one belongs: anyone could have planted it.
    std::fs::write(&path, golden()).unwrap();
    let err = FileStore::open(&path, dpapi())
        .unwrap()
        .reload()
        .unwrap_err();
    assert!(matches!(err, FileError::NotEncrypted { .. }), "{err}");

    // A damaged blob.
    let mut blob = seal_as_msal_extensions(&golden());
    let last = blob.len() - 1;
    blob[last] ^= 0x55;
    std::fs::write(&path, &blob).unwrap();
    let store = FileStore::open(&path, dpapi()).unwrap();
    let err = store.add(&common::user_event("x")).unwrap_err();
    assert!(matches!(err, FileError::DataProtection { .. }), "{err}");
    assert!(err.to_string().contains("left untouched"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), blob, "nothing overwritten");

    // A sealed file opened without DPAPI says what it is.
    std::fs::write(&path, seal_as_msal_extensions(&golden())).unwrap();
    let err = FileStore::open(&path, FileOptions::default())
        .unwrap()
        .reload()
        .unwrap_err();
    assert!(err.to_string().contains("Windows DPAPI"), "{err}");

    // DPAPI and a key together are a configuration error.
    let both = FileOptions {
        encryption: Some(tokencache_file::KeySource::Key(
            tokencache_file::DataKey::generate().unwrap(),
        )),
        ..dpapi()
    };
    assert!(matches!(
        FileStore::open(&path, both),
        Err(FileError::DataProtection { .. })
    ));
}

#[test]
fn rewrite_turns_a_sealed_file_plain_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    std::fs::write(&path, seal_as_msal_extensions(&golden())).unwrap();
    FileStore::open(&path, FileOptions::default())
        .unwrap()
        .rewrite(None)
        .unwrap();
    let plain = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        common::accounts_in(&plain).len(),
        common::accounts_in(&golden()).len()
    );
    let sealing = FileOptions {
        accept_plaintext: true,
        ..dpapi()
    };
    FileStore::open(&path, sealing)
        .unwrap()
        .rewrite(None)
        .unwrap();
    assert!(is_dpapi_protected(&std::fs::read(&path).unwrap()));
}
