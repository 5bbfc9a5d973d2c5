//! The OS keyring on macOS (the login Keychain) and Windows (Credential Manager), for data keys,
//! and on macOS also for whole caches, through `keyring-core` and its platform stores.
//!
//! An item is a generic password named by a service and an account. On macOS whole caches use
//! msal-extensions' `KeychainPersistence` identifiers (service `msal-extensions`, account the
//! SHA-256 hex of the signal file's location as passed), so an MSAL Python app and a tokencache
//! app share one item; after each write the signal file is touched, as msal-extensions does.
//! Windows Credential Manager holds at most 2,560 bytes per item, so there it keeps data keys
//! only (the cache itself goes to an encrypted file).

use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use zeroize::Zeroizing;

use crate::error::FileError;

fn err(e: impl std::fmt::Display) -> FileError {
    FileError::Keyring {
        reason: e.to_string(),
    }
}

fn platform_store() -> Result<Arc<CredentialStore>, FileError> {
    #[cfg(target_os = "macos")]
    let store = apple_native_keyring_store::keychain::Store::new();
    #[cfg(target_os = "windows")]
    let store = windows_native_keyring_store::Store::new();
    let store: Arc<CredentialStore> = store.map_err(err)?;
    Ok(store)
}

/// The identity of a keyring item: a generic password's service and account. On Windows the
/// Credential Manager target is `account.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringItem {
    /// The service name.
    pub service: String,
    /// The account name.
    pub account: String,
}

impl KeyringItem {
    /// msal-extensions' default for `KeychainPersistence(signal_location)`: service
    /// `msal-extensions`, account the SHA-256 hex of the location string as passed.
    #[cfg(target_os = "macos")]
    pub fn msal_extensions(signal_location: &str) -> KeyringItem {
        KeyringItem {
            service: "msal-extensions".into(),
            account: crate::crypto::sha256_hex(signal_location),
        }
    }

    /// Azure Identity's item (`azure-identity`'s persistent cache on macOS): service
    /// `Microsoft.Developer.IdentityService`, account `MSALCache`.
    #[cfg(target_os = "macos")]
    pub fn azure_identity() -> KeyringItem {
        KeyringItem {
            service: "Microsoft.Developer.IdentityService".into(),
            account: "MSALCache".into(),
        }
    }

    fn entry(&self) -> Result<Entry, FileError> {
        Entry::new_in_store(&platform_store()?, &self.service, &self.account).map_err(err)
    }

    /// Reads the item's secret; `None` when there is no such item.
    pub fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>, FileError> {
        match self.entry()?.get_secret() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Creates or replaces the item.
    pub fn store(&self, secret: &[u8]) -> Result<(), FileError> {
        self.entry()?.set_secret(secret).map_err(err)
    }

    /// Deletes the item if present.
    pub fn delete(&self) -> Result<(), FileError> {
        match self.entry()?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}

/// The item holding the data key stored under `name`.
pub(crate) fn data_key_item(name: &str) -> KeyringItem {
    KeyringItem {
        service: "dev.tokencache.DataKey".into(),
        account: name.into(),
    }
}
