//! Encryption at rest for cache files: where the data key comes from ([`KeySource`]: the
//! application, a key file, the environment, the OS keyring). The sealed format itself is the
//! core's ([`tokencache::seal::Envelope::FILE`], `TCENC` v1), shared with the partitioned
//! stores; the key id in a file's header says where its key lives (`keyring`, `file`, `env`,
//! `raw`), for error messages.

use std::path::{Path, PathBuf};

pub use tokencache::seal::DataKey;
use tokencache::seal::Envelope;
use zeroize::Zeroizing;

use crate::error::FileError;

/// A key error of the core's as this crate reports it.
fn key_error(e: tokencache::Error) -> FileError {
    FileError::Key {
        reason: match e {
            tokencache::Error::Key { reason }
            | tokencache::Error::Seal { reason }
            | tokencache::Error::Unseal { reason } => reason,
            other => other.to_string(),
        },
    }
}

/// Where the data key of an encrypted cache comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KeySource {
    /// A key the application holds.
    Key(DataKey),
    /// A key file (64 hex digits or base64); created with a new random key, mode 0600, if
    /// missing.
    File(PathBuf),
    /// An environment variable holding the key (64 hex digits or base64).
    Env(String),
    /// An item in the OS keyring (the Secret Service on Linux, the login Keychain on macOS,
    /// Credential Manager on Windows), created with a new random key if missing. `name` identifies the item (for example the cache file's path).
    #[cfg(all(
        any(target_os = "linux", target_os = "macos", target_os = "windows"),
        feature = "keyring"
    ))]
    Keyring {
        /// The item's name.
        name: String,
    },
}

impl KeySource {
    /// The id written in the file header.
    pub fn key_id(&self) -> &'static str {
        match self {
            KeySource::Key(_) => "raw",
            KeySource::File(_) => "file",
            KeySource::Env(_) => "env",
            #[cfg(all(
                any(target_os = "linux", target_os = "macos", target_os = "windows"),
                feature = "keyring"
            ))]
            KeySource::Keyring { .. } => "keyring",
        }
    }

    /// Obtains the key, creating it where the source allows when `create` is true.
    pub fn resolve(&self, create: bool) -> Result<DataKey, FileError> {
        match self {
            KeySource::Key(k) => Ok(k.clone()),
            KeySource::Env(var) => {
                let value = Zeroizing::new(std::env::var(var).map_err(|_| FileError::Key {
                    reason: format!("environment variable {var} is not set"),
                })?);
                DataKey::from_text(&value).map_err(key_error)
            }
            KeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => DataKey::from_text(&Zeroizing::new(text)).map_err(key_error),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    let key = DataKey::generate().map_err(key_error)?;
                    write_new_key_file(path, &key)?;
                    Ok(key)
                }
                Err(source) => Err(FileError::Io {
                    path: path.clone(),
                    source,
                }),
            },
            #[cfg(all(
                any(target_os = "linux", target_os = "macos", target_os = "windows"),
                feature = "keyring"
            ))]
            KeySource::Keyring { name } => keyring_data_key(name, create),
        }
    }
}

/// The data key stored in the OS keyring under `name`, created if missing and `create` is true.
#[cfg(all(
    any(target_os = "linux", target_os = "macos", target_os = "windows"),
    feature = "keyring"
))]
fn keyring_data_key(name: &str, create: bool) -> Result<DataKey, FileError> {
    let item = crate::keyring::data_key_item(name);
    if let Some(secret) = item.load()? {
        let secret = Zeroizing::new(secret);
        let text = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        return DataKey::from_text(&text).map_err(key_error);
    }
    if !create {
        return Err(FileError::Key {
            reason: format!("no data key for {name} in the keyring"),
        });
    }
    let key = DataKey::generate().map_err(key_error)?;
    item.store(key.to_base64().as_bytes())?;
    Ok(key)
}

fn write_new_key_file(path: &Path, key: &DataKey) -> Result<(), FileError> {
    let err = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(key.to_base64().as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// True when the bytes are an encrypted cache (the core's [`Envelope::FILE`]).
pub fn is_encrypted(bytes: &[u8]) -> bool {
    Envelope::FILE.is_sealed(bytes)
}

/// The key id of an encrypted cache's header.
pub fn header_key_id(bytes: &[u8]) -> Option<String> {
    Envelope::FILE
        .key_id(bytes)
        .map(|id| String::from_utf8_lossy(id).into_owned())
}

/// Encrypts a cache document.
pub(crate) fn encrypt(plain: &[u8], key: &DataKey, key_id: &str) -> Result<Vec<u8>, FileError> {
    Envelope::FILE
        .seal(key, key_id, b"", plain)
        .map_err(key_error)
}

/// Decrypts an encrypted cache document; `None` means a wrong key or damaged data.
pub(crate) fn decrypt(bytes: &[u8], key: &DataKey) -> Option<Zeroizing<Vec<u8>>> {
    Envelope::FILE.open(key, b"", bytes).ok()
}

/// Encrypts a hand-over record of the cache named `cache_name` (bound into the envelope, so a
/// record opens neither as a cache nor as another cache's record).
pub(crate) fn encrypt_record(
    plain: &[u8],
    key: &DataKey,
    key_id: &str,
    cache_name: &[u8],
) -> Result<Vec<u8>, FileError> {
    Envelope::HAND_OVER
        .seal(key, key_id, cache_name, plain)
        .map_err(key_error)
}

/// Decrypts a hand-over record of the cache named `cache_name`; `None`: a wrong key, damaged
/// data, or not a record of this cache.
pub(crate) fn decrypt_record(
    bytes: &[u8],
    key: &DataKey,
    cache_name: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    Envelope::HAND_OVER.open(key, cache_name, bytes).ok()
}

/// SHA-256 as lower-case hex (how msal-extensions names keyring items after a file location).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
