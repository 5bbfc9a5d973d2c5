//! Encryption at rest: the encrypted file format and where its key comes from.
//!
//! Format (all of the header is authenticated as associated data):
//!
//! | bytes | content |
//! |---|---|
//! | 6 | magic and version: `TCENC` `0x01` |
//! | 1 | length `n` of the key id |
//! | n | key id: where the key lives (`keyring`, `file`, `env`, `raw`), for error messages |
//! | 24 | XChaCha20 nonce, random per write |
//! | rest | XChaCha20-Poly1305 ciphertext of the UTF-8 cache JSON, with its 16-byte tag |
//!
//! A random 192-bit nonce per write makes nonce reuse a non-issue even though the whole file is
//! rewritten every time. The key is 32 random bytes.

use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::FileError;

const MAGIC: &[u8; 6] = b"TCENC\x01";
const NONCE_LEN: usize = 24;

/// A 32-byte data key. Zeroed when dropped; never shown by `Debug`.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    /// A new random key from the OS.
    pub fn generate() -> Result<DataKey, FileError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| FileError::Key {
            reason: format!("no randomness: {e}"),
        })?;
        Ok(DataKey(key))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(Zeroizing::new(bytes))
    }

    /// A key from text: 64 hex digits or base64 (standard or URL-safe) of 32 bytes.
    pub fn from_text(text: &str) -> Result<DataKey, FileError> {
        let text = text.trim();
        let bad = || FileError::Key {
            reason: "expected 32 bytes as 64 hex digits or base64".into(),
        };
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            return Ok(DataKey(key));
        }
        let normalized: String = text
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(normalized)
                .map_err(|_| bad())?,
        );
        if decoded.len() != 32 {
            return Err(bad());
        }
        key.copy_from_slice(&decoded);
        Ok(DataKey(key))
    }

    /// The key's 32 bytes, to hand it to another component (for example
    /// `tokencache_store::PartitionKeys`, when one key file serves a desktop cache and a store).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as base64 (to store it in a keyring or a file).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
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
                DataKey::from_text(&value)
            }
            KeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => DataKey::from_text(&Zeroizing::new(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    let key = DataKey::generate()?;
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
        let text = String::from_utf8_lossy(&secret).into_owned();
        return DataKey::from_text(&Zeroizing::new(text));
    }
    if !create {
        return Err(FileError::Key {
            reason: format!("no data key for {name} in the keyring"),
        });
    }
    let key = DataKey::generate()?;
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

/// True when the bytes are an encrypted cache.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The key id of an encrypted cache's header.
pub fn header_key_id(bytes: &[u8]) -> Option<String> {
    let n = *bytes.get(MAGIC.len())? as usize;
    let id = bytes.get(MAGIC.len() + 1..MAGIC.len() + 1 + n)?;
    Some(String::from_utf8_lossy(id).into_owned())
}

/// Encrypts a cache document.
pub fn encrypt(plain: &[u8], key: &DataKey, key_id: &str) -> Result<Vec<u8>, FileError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| FileError::Key {
        reason: format!("no randomness: {e}"),
    })?;
    let id = key_id.as_bytes();
    let id = &id[..id.len().min(255)];
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + id.len() + NONCE_LEN + plain.len() + 16);
    out.extend_from_slice(MAGIC);
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    let failed = || FileError::Key {
        reason: "encryption failed".into(),
    };
    let cipher = XChaCha20Poly1305::new_from_slice(key.0.as_ref()).map_err(|_| failed())?;
    let nonce = XNonce::try_from(&nonce[..]).map_err(|_| failed())?;
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain,
                aad: &out,
            },
        )
        .map_err(|_| failed())?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts an encrypted cache document; `None` means a wrong key or damaged data.
pub fn decrypt(bytes: &[u8], key: &DataKey) -> Option<Zeroizing<Vec<u8>>> {
    let n = *bytes.get(MAGIC.len())? as usize;
    let header_len = MAGIC.len() + 1 + n + NONCE_LEN;
    let header = bytes.get(..header_len)?;
    let nonce = &header[header_len - NONCE_LEN..];
    let cipher = XChaCha20Poly1305::new_from_slice(key.0.as_ref()).ok()?;
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &bytes[header_len..],
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .ok()
}

/// SHA-256 as lower-case hex (how msal-extensions names keyring items after a file location).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
