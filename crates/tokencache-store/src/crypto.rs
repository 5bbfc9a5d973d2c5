//! Encryption of stored partitions: XChaCha20-Poly1305 under a named key, the header and the
//! partition key authenticated (a document cannot be moved to another user's partition), and
//! key rotation (decrypt with any known key, encrypt with the current one).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{Result, StoreError};

const MAGIC: &[u8; 4] = b"TCPE";
const FORMAT: u8 = 1;

/// The keys that encrypt stored partitions: one current key (new writes) and any number of
/// older ones (still readable; rewritten under the current key at their next save).
#[derive(Clone)]
pub struct PartitionKeys {
    current: (String, Zeroizing<[u8; 32]>),
    previous: Vec<(String, Zeroizing<[u8; 32]>)>,
    write_plain: bool,
}

impl fmt::Debug for PartitionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.previous.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("PartitionKeys")
            .field("current", &self.current.0)
            .field("previous", &ids)
            .field("write_plain", &self.write_plain)
            .finish()
    }
}

impl PartitionKeys {
    /// Encrypts with `key`, named `id` (1 to 255 bytes; stored in each document).
    pub fn new(id: &str, key: [u8; 32]) -> Result<PartitionKeys> {
        check_id(id)?;
        Ok(PartitionKeys {
            current: (id.to_owned(), Zeroizing::new(key)),
            previous: Vec::new(),
            write_plain: false,
        })
    }

    /// Also decrypts documents written under an older key.
    pub fn with_previous(mut self, id: &str, key: [u8; 32]) -> Result<PartitionKeys> {
        check_id(id)?;
        self.previous.push((id.to_owned(), Zeroizing::new(key)));
        Ok(self)
    }

    /// Still reads documents encrypted under these keys, but writes plain text: for taking
    /// encryption off a store (what `tokencache decrypt URL` does), one save at a time.
    ///
    /// ```
    /// use tokencache_store::PartitionKeys;
    /// let keys = PartitionKeys::new("k1", [7; 32])?.writing_plain_text();
    /// assert!(keys.writes_plain_text());
    /// # Ok::<(), tokencache_store::StoreError>(())
    /// ```
    pub fn writing_plain_text(mut self) -> PartitionKeys {
        self.write_plain = true;
        self
    }

    /// True when saves write plain text ([`PartitionKeys::writing_plain_text`]).
    pub fn writes_plain_text(&self) -> bool {
        self.write_plain
    }

    /// The id of the key new documents are written with.
    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    pub(crate) fn encrypt(&self, partition: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let (id, key) = &self.current;
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Encryption {
            reason: format!("no system randomness: {e}"),
        })?;
        let mut out = Vec::with_capacity(plain.len() + 64);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&nonce);
        let aad = [&out[..], partition.as_bytes()].concat();
        let failed = || StoreError::Encryption {
            reason: "encryption failed".into(),
        };
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|_| failed())?;
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

    pub(crate) fn decrypt(&self, partition: &str, doc: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let unreadable = |reason: &str| StoreError::Unreadable {
            partition: partition.to_owned(),
            reason: reason.to_owned(),
        };
        let Parts {
            key_id: id,
            nonce,
            sealed,
            header_len,
        } = parse(doc).ok_or_else(|| unreadable("not an encrypted partition"))?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(k, _)| k.as_bytes() == id)
            .map(|(_, key)| key)
            .ok_or_else(|| {
                unreadable(&format!(
                    "encrypted with key {:?}, which this store does not have",
                    String::from_utf8_lossy(id)
                ))
            })?;
        let aad = [&doc[..header_len], partition.as_bytes()].concat();
        let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref())
            .map_err(|_| unreadable("a key of the wrong length"))?;
        let nonce = XNonce::try_from(nonce).map_err(|_| unreadable("a malformed nonce"))?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                unreadable(
                    "authentication failed (wrong key, or the document was altered or moved)",
                )
            })
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 255 {
        return Err(StoreError::Key {
            reason: "a key id is 1 to 255 bytes".into(),
        });
    }
    Ok(())
}

/// True when `doc` is in the encrypted format.
pub(crate) fn is_encrypted(doc: &[u8]) -> bool {
    doc.starts_with(MAGIC)
}

/// The id of the key a stored document ([`crate::Versioned::document`]) is encrypted under, or
/// `None` for a plain (or unrecognisable) document. The id is not secret; it tells an operator
/// which key a partition needs.
///
/// ```
/// use tokencache_store::encrypted_key_id;
/// assert_eq!(encrypted_key_id(br#"{"AccessToken": {}}"#), None);
/// ```
pub fn encrypted_key_id(document: &[u8]) -> Option<String> {
    parse(document).map(|p| String::from_utf8_lossy(p.key_id).into_owned())
}

/// True when `document` is encrypted under the key `id`.
pub(crate) fn is_encrypted_under(document: &[u8], id: &str) -> bool {
    parse(document).is_some_and(|p| p.key_id == id.as_bytes())
}

/// The parts of an encrypted document.
struct Parts<'a> {
    key_id: &'a [u8],
    nonce: &'a [u8],
    sealed: &'a [u8],
    header_len: usize,
}

fn parse(doc: &[u8]) -> Option<Parts<'_>> {
    let rest = doc.strip_prefix(MAGIC)?;
    let (&format, rest) = rest.split_first()?;
    if format != FORMAT {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if rest.len() < len + 24 + 16 {
        return None;
    }
    let (id, rest) = rest.split_at(len);
    let (nonce, sealed) = rest.split_at(24);
    Some(Parts {
        key_id: id,
        nonce,
        sealed,
        header_len: MAGIC.len() + 2 + len + 24,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rotation_and_binding_to_the_partition() {
        let old = PartitionKeys::new("k1", [1; 32]).unwrap();
        let doc = old.encrypt("alice", b"{\"AccessToken\": {}}").unwrap();
        assert!(is_encrypted(&doc));
        assert_eq!(
            &old.decrypt("alice", &doc).unwrap()[..],
            b"{\"AccessToken\": {}}"
        );
        // Moved to another partition: refused.
        assert!(matches!(
            old.decrypt("bob", &doc),
            Err(StoreError::Unreadable { .. })
        ));
        // Rotated: the new key set reads old documents and writes with the new key.
        let rotated = PartitionKeys::new("k2", [2; 32])
            .unwrap()
            .with_previous("k1", [1; 32])
            .unwrap();
        assert!(rotated.decrypt("alice", &doc).is_ok());
        let new_doc = rotated.encrypt("alice", b"x").unwrap();
        let e = old.decrypt("alice", &new_doc).unwrap_err();
        assert!(e.to_string().contains("k2"), "{e}");
        // Tampering is detected.
        let mut bad = doc.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(old.decrypt("alice", &bad).is_err());
        assert!(!format!("{old:?}").contains("[1"));
        // The key id is readable without a key; plain documents have none.
        assert_eq!(encrypted_key_id(&doc).as_deref(), Some("k1"));
        assert_eq!(encrypted_key_id(&new_doc).as_deref(), Some("k2"));
        assert_eq!(encrypted_key_id(b"{}"), None);
        assert_eq!(encrypted_key_id(b"TCPE"), None, "truncated header");
    }
}
