//! The Secret Service (GNOME Keyring, KWallet) on Linux, for data keys and for whole caches.
//!
//! Whole caches use msal-extensions' `LibsecretPersistence` identifiers, so an MSAL Python app
//! and a tokencache app can share one item: an item in the default collection whose attributes
//! are the application's attributes plus `xdg:schema` = the schema name (by default the
//! SHA-256 hex of the signal file's location, exactly as passed), with the cache JSON as its
//! secret. After each write the signal file is touched, as msal-extensions does.

use std::collections::HashMap;

use secret_service::EncryptionType;
use secret_service::blocking::{Collection, SecretService};
use zeroize::Zeroizing;

use crate::error::FileError;

fn err(e: impl std::fmt::Display) -> FileError {
    FileError::Keyring {
        reason: e.to_string(),
    }
}

fn with_collection<R>(
    f: impl FnOnce(&Collection<'_>) -> Result<R, FileError>,
) -> Result<R, FileError> {
    let service = SecretService::connect(EncryptionType::Dh).map_err(|e| FileError::Keyring {
        reason: format!("no Secret Service on the session bus ({e}); is a keyring daemon running?"),
    })?;
    let collection = service.get_default_collection().map_err(err)?;
    if collection.is_locked().map_err(err)? {
        collection.unlock().map_err(err)?;
    }
    f(&collection)
}

/// The identity of a keyring item: its `xdg:schema` and other attributes, and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringItem {
    /// The schema name (the `xdg:schema` attribute).
    pub schema: String,
    /// Further attributes.
    pub attributes: Vec<(String, String)>,
    /// The item's label.
    pub label: String,
}

impl KeyringItem {
    /// msal-extensions' default for `LibsecretPersistence(signal_location)`: schema = SHA-256
    /// hex of the location string as passed, no other attribute, empty label.
    pub fn msal_extensions(signal_location: &str) -> KeyringItem {
        KeyringItem {
            schema: crate::crypto::sha256_hex(signal_location),
            attributes: Vec::new(),
            label: String::new(),
        }
    }

    /// Azure Identity's item (`azure-identity`'s persistent cache): schema `msal.cache.nocae`
    /// (or `msal.cache.cae`), attribute `MsalClientID=Microsoft.Developer.IdentityService`,
    /// label `MSALCache`.
    pub fn azure_identity(cae: bool) -> KeyringItem {
        KeyringItem {
            schema: if cae {
                "msal.cache.cae"
            } else {
                "msal.cache.nocae"
            }
            .to_owned(),
            attributes: vec![(
                "MsalClientID".into(),
                "Microsoft.Developer.IdentityService".into(),
            )],
            label: "MSALCache".into(),
        }
    }

    fn attribute_map(&self) -> HashMap<&str, &str> {
        let mut map: HashMap<&str, &str> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        map.insert("xdg:schema", &self.schema);
        map
    }

    /// Reads the item's secret; `None` when there is no such item.
    pub fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>, FileError> {
        with_collection(|c| {
            let items = c.search_items(self.attribute_map()).map_err(err)?;
            match items.first() {
                Some(item) => Ok(Some(Zeroizing::new(item.get_secret().map_err(err)?))),
                None => Ok(None),
            }
        })
    }

    /// Creates or replaces the item.
    pub fn store(&self, secret: &[u8]) -> Result<(), FileError> {
        with_collection(|c| {
            c.create_item(
                &self.label,
                self.attribute_map(),
                secret,
                true,
                "text/plain",
            )
            .map(|_| ())
            .map_err(err)
        })
    }

    /// Deletes the item if present.
    pub fn delete(&self) -> Result<(), FileError> {
        with_collection(|c| {
            for item in c.search_items(self.attribute_map()).map_err(err)? {
                item.delete().map_err(err)?;
            }
            Ok(())
        })
    }
}

/// The item holding the data key stored under `name`.
pub(crate) fn data_key_item(name: &str) -> KeyringItem {
    KeyringItem {
        schema: "dev.tokencache.DataKey".into(),
        attributes: vec![("tokencache_cache".into(), name.into())],
        label: format!("tokencache data key for {name}"),
    }
}
