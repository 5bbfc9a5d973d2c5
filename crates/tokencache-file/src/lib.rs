//! Desktop persistence for tokencache: one MSAL token cache file shared safely by many
//! processes and by other MSAL applications (MSAL Python with msal-extensions, MSAL .NET,
//! Node, Java and Go, the Azure CLI), with the MSAL lock-file protocol (plus stale-lock
//! recovery), one lock per change, atomic and durable writes, group commit (token responses
//! that find the cache locked are handed to the lock holder, which writes them all in one
//! rewrite of the file), a never-lose-data policy for unparseable files, encryption at rest
//! (XChaCha20-Poly1305) with keys from the OS keyring, a key file or the environment, and
//! whole caches in the Secret Service (Linux) or the Keychain (macOS) under msal-extensions'
//! identifiers. Keys in the keyring work on Linux (the
//! Secret Service), macOS (the login Keychain) and Windows (Credential Manager).
//!
//! ```no_run
//! use tokencache_file::{FileStore, KeySource, FileOptions};
//! let options = FileOptions { encryption: Some(KeySource::File("cache.key".into())), ..Default::default() };
//! let store = FileStore::open("msal_token_cache.bin", options)?;
//! # let event = tokencache::TokenEvent::default();
//! store.add(&event)?; // locked, merged with other processes' writes, written atomically
//! # Ok::<(), tokencache_file::FileError>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "accessor")]
mod accessor;
mod atomic;
mod crypto;
mod dpapi;
mod error;
#[cfg(all(target_os = "linux", feature = "keyring"))]
mod keyring;
#[cfg(all(any(target_os = "macos", target_os = "windows"), feature = "keyring"))]
#[path = "native_keyring.rs"]
mod keyring;
mod lock;
mod pending;
mod store;

#[cfg(feature = "accessor")]
#[cfg_attr(docsrs, doc(cfg(feature = "accessor")))]
pub use accessor::FileAccessor;
pub use crypto::{DataKey, KeySource, header_key_id, is_encrypted, sha256_hex};
pub use dpapi::is_dpapi_protected;
pub use error::FileError;
#[cfg(all(
    any(target_os = "linux", target_os = "macos", target_os = "windows"),
    feature = "keyring"
))]
#[cfg_attr(docsrs, doc(cfg(feature = "keyring")))]
pub use keyring::KeyringItem;
pub use lock::{CacheLock, LockOptions, LockOwner, LockStatus, lock_path, lock_status};
pub use pending::{HandOvers, hand_overs};
pub use store::{CorruptPolicy, FileOptions, FileStore, GroupCommitStats};
