//! Encryption at rest, in one place: the data key and the sealed envelope that both the file
//! store (a whole cache file) and the partitioned stores (one partition) write.
//!
//! ## The envelope
//!
//! | bytes | content |
//! |---|---|
//! | 5 or 4 | the magic: `TCENC` (a cache file or a hand-over record) or `TCPE` (a partition) |
//! | 1 | the version: `0x02` (written), `0x01` (read, for documents of tokencache 0.1) |
//! | 1 | length `n` of the key id |
//! | n | the key id: which key sealed it (not secret; for error messages and rotation) |
//! | 24 | XChaCha20 nonce, random per seal |
//! | rest | XChaCha20-Poly1305 ciphertext of the UTF-8 JSON, with its 16-byte tag |
//!
//! Authenticated as associated data (version 2): the header, the envelope's *purpose*
//! (`cache`, `hand-over` or `partition`) and a *context* naming what the document belongs to
//! (a partition's key; the cache file a hand-over record is for). So a hand-over record copied
//! over a cache, or one user's partition copied into another's, fails to open. Version 1
//! authenticated the header and the context only (a cache file's context was empty); it is
//! still read, and each document moves to version 2 at its next save. A random 192-bit nonce
//! per seal makes nonce reuse a non-issue even though whole documents are rewritten every
//! time.
//!
//! ## Why by hand
//!
//! The format is tokencache's own and already on disk; the cipher itself is RustCrypto's
//! `chacha20poly1305`. This module is only the framing, kept in one implementation so that the
//! file and store formats cannot drift apart.
//!
//! ```
//! use tokencache::seal::{DataKey, Envelope};
//! let key = DataKey::from_bytes([7; 32]);
//! let sealed = Envelope::PARTITION.seal(&key, "k1", b"alice.tenant", b"{}")?;
//! assert_eq!(Envelope::PARTITION.key_id(&sealed), Some(&b"k1"[..]));
//! assert_eq!(&Envelope::PARTITION.open(&key, b"alice.tenant", &sealed)?[..], b"{}");
//! assert!(Envelope::PARTITION.open(&key, b"bob.tenant", &sealed).is_err(), "bound to alice");
//! # Ok::<(), tokencache::Error>(())
//! ```

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
pub use zeroize::Zeroizing;

use crate::Error;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

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
    pub fn generate() -> Result<DataKey, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| Error::Key {
            reason: format!("no randomness: {e}"),
        })?;
        Ok(DataKey(key))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(Zeroizing::new(bytes))
    }

    /// A key from text: 64 hex digits or base64 (standard or URL-safe) of 32 bytes; white
    /// space around it is ignored.
    ///
    /// ```
    /// use tokencache::seal::DataKey;
    /// let hex = DataKey::from_text(&"07".repeat(32))?;
    /// let b64 = DataKey::from_text("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")?;
    /// assert_eq!(hex.as_bytes(), b64.as_bytes());
    /// assert!(DataKey::from_text("too short").is_err());
    /// # Ok::<(), tokencache::Error>(())
    /// ```
    pub fn from_text(text: &str) -> Result<DataKey, Error> {
        let text = text.trim();
        let bad = || Error::Key {
            reason: "expected 32 bytes as 64 hex digits or base64".into(),
        };
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            return Ok(DataKey(key));
        }
        let normalized = Zeroizing::new(
            text.trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_"),
        );
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(normalized.as_bytes())
                .map_err(|_| bad())?,
        );
        if decoded.len() != 32 {
            return Err(bad());
        }
        key.copy_from_slice(&decoded);
        Ok(DataKey(key))
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as base64 (to keep it in a keyring or a file).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
    }
}

/// One sealed format: the magic that tells it apart, and the purpose bound into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    magic: &'static [u8],
    purpose: &'static [u8],
}

/// The version this code writes.
const CURRENT: u8 = 2;
/// The version of tokencache 0.1, still read.
const LEGACY: u8 = 1;

/// The parts of a sealed document.
struct Parts<'a> {
    version: u8,
    key_id: &'a [u8],
    nonce: &'a [u8],
    header: &'a [u8],
    ciphertext: &'a [u8],
}

impl Envelope {
    /// A whole cache file (`TCENC`), as the file store writes it.
    pub const FILE: Envelope = Envelope {
        magic: b"TCENC",
        purpose: b"cache",
    };

    /// A hand-over record of an encrypted cache file (`TCENC`, another purpose: it does not
    /// open as a cache, nor a cache as a record). Its context is the cache file's name.
    pub const HAND_OVER: Envelope = Envelope {
        magic: b"TCENC",
        purpose: b"hand-over",
    };

    /// One stored partition (`TCPE`), as the partitioned stores write it. Its context is the
    /// partition key.
    pub const PARTITION: Envelope = Envelope {
        magic: b"TCPE",
        purpose: b"partition",
    };

    /// True when `bytes` start like this format (whatever follows).
    pub fn is_sealed(&self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.magic)
    }

    /// The format version of sealed `bytes` (`Some(2)` as written today, `Some(1)` as written by
    /// tokencache 0.1), or `None` when they are not an envelope of this format.
    pub fn version(&self, bytes: &[u8]) -> Option<u8> {
        self.parse(bytes).map(|p| p.version)
    }

    /// The associated data a version authenticates.
    fn associated_data(&self, version: u8, header: &[u8], context: &[u8]) -> Vec<u8> {
        match version {
            LEGACY => [header, context].concat(),
            _ => [header, self.purpose, b"\0", context].concat(),
        }
    }

    /// The id of the key that sealed `bytes`, or `None` when they are not a whole envelope of
    /// this format.
    pub fn key_id<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.parse(bytes).map(|p| p.key_id)
    }

    fn parse<'a>(&self, bytes: &'a [u8]) -> Option<Parts<'a>> {
        let rest = bytes.strip_prefix(self.magic)?;
        let (&version, rest) = rest.split_first()?;
        if version != CURRENT && version != LEGACY {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if rest.len() < len + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (key_id, rest) = rest.split_at(len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let header_len = self.magic.len() + 2 + len + NONCE_LEN;
        Some(Parts {
            version,
            key_id,
            nonce,
            header: &bytes[..header_len],
            ciphertext,
        })
    }

    /// Seals `plain` under `key`, recording `key_id` (1 to 255 bytes) in the header, and binds
    /// `context` (authenticated, not stored).
    pub fn seal(
        &self,
        key: &DataKey,
        key_id: &str,
        context: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let id = key_id.as_bytes();
        let id_len = u8::try_from(id.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::Key {
                reason: "a key id is 1 to 255 bytes".into(),
            })?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Seal {
            reason: format!("no system randomness: {e}"),
        })?;
        let mut out =
            Vec::with_capacity(self.magic.len() + 2 + id.len() + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(self.magic);
        out.push(CURRENT);
        out.push(id_len);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let aad = self.associated_data(CURRENT, &out, context);
        let failed = || Error::Seal {
            reason: "encryption failed".into(),
        };
        let cipher = XChaCha20Poly1305::new_from_slice(key.0.as_ref()).map_err(|_| failed())?;
        let nonce = XNonce::try_from(&nonce[..]).map_err(|_| failed())?;
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| failed())?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens `sealed` with `key` and the `context` it was sealed with. Fails, saying why but
    /// never showing content, when it is not an envelope of this format, or when the key is
    /// wrong, the context differs or a byte was changed.
    pub fn open(
        &self,
        key: &DataKey,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let parts = self.parse(sealed).ok_or_else(|| Error::Unseal {
            reason: "not a whole encrypted document of this format".into(),
        })?;
        let aad = self.associated_data(parts.version, parts.header, context);
        let cipher =
            XChaCha20Poly1305::new_from_slice(key.0.as_ref()).map_err(|_| Error::Unseal {
                reason: "a key of the wrong length".into(),
            })?;
        let nonce = XNonce::try_from(parts.nonce).map_err(|_| Error::Unseal {
            reason: "a malformed nonce".into(),
        })?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: parts.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Unseal {
                reason: "authentication failed (wrong key, or the document was altered or moved)"
                    .into(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;

    #[test]
    fn the_formats_do_not_open_each_other() {
        let key = DataKey::from_bytes([1; 32]);
        let file = Envelope::FILE.seal(&key, "file", b"", b"{}").unwrap();
        assert!(Envelope::FILE.is_sealed(&file));
        assert!(!Envelope::PARTITION.is_sealed(&file));
        assert!(Envelope::PARTITION.open(&key, b"", &file).is_err());
        assert_eq!(&Envelope::FILE.open(&key, b"", &file).unwrap()[..], b"{}");
    }

    #[test]
    fn tampering_a_wrong_key_and_truncation_are_refused() {
        let key = DataKey::from_bytes([1; 32]);
        let sealed = Envelope::PARTITION
            .seal(&key, "k1", b"p", b"secret")
            .unwrap();
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(Envelope::PARTITION.open(&key, b"p", &bad).is_err());
        let other = DataKey::from_bytes([2; 32]);
        let e = Envelope::PARTITION.open(&other, b"p", &sealed).unwrap_err();
        assert!(!e.to_string().contains("secret"));
        assert_eq!(Envelope::PARTITION.key_id(&sealed[..10]), None);
        assert!(Envelope::PARTITION.open(&key, b"p", &sealed[..10]).is_err());
        assert!(Envelope::PARTITION.seal(&key, "", b"p", b"x").is_err());
        assert!(
            Envelope::PARTITION
                .seal(&key, &"x".repeat(256), b"p", b"x")
                .is_err()
        );
    }

    #[test]
    fn a_document_opens_only_for_its_purpose_and_context() {
        let key = DataKey::from_bytes([1; 32]);
        let record = Envelope::HAND_OVER
            .seal(&key, "file", b"cache.json", b"{}")
            .unwrap();
        assert_eq!(Envelope::HAND_OVER.version(&record), Some(2));
        assert!(
            Envelope::FILE.is_sealed(&record),
            "one magic for files and records"
        );
        assert!(
            Envelope::FILE.open(&key, b"", &record).is_err(),
            "not a cache"
        );
        assert!(Envelope::FILE.open(&key, b"cache.json", &record).is_err());
        assert!(
            Envelope::HAND_OVER
                .open(&key, b"other.json", &record)
                .is_err()
        );
        assert_eq!(
            &Envelope::HAND_OVER
                .open(&key, b"cache.json", &record)
                .unwrap()[..],
            b"{}"
        );
        let cache = Envelope::FILE.seal(&key, "file", b"", b"{}").unwrap();
        assert!(
            Envelope::HAND_OVER.open(&key, b"", &cache).is_err(),
            "not a record"
        );
    }

    #[test]
    fn a_key_never_shows_in_debug() {
        let key = DataKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "DataKey(***)");
    }
}
