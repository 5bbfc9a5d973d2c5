//! Encryption of stored partitions: the core's sealed envelope
//! ([`tokencache::seal::Envelope::PARTITION`], `TCPE` v2, XChaCha20-Poly1305; v1 still read)
//! under a named key, with the purpose and the partition key authenticated (a document cannot
//! be moved to another user's partition), and key rotation (decrypt with any known key,
//! encrypt with the current one). With keys configured, a plain partition is refused unless
//! [`PartitionKeys::accepting_plaintext`] says it is expected (a first encryption).

use std::fmt;

use tokencache::seal::{DataKey, Envelope, Zeroizing};

use crate::error::{Result, StoreError};

/// The keys that encrypt stored partitions: one current key (new writes) and any number of
/// older ones (still readable; rewritten under the current key at their next save).
#[derive(Clone)]
pub struct PartitionKeys {
    current: (String, DataKey),
    previous: Vec<(String, DataKey)>,
    write_plain: bool,
    accept_plain: bool,
}

impl fmt::Debug for PartitionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.previous.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("PartitionKeys")
            .field("current", &self.current.0)
            .field("previous", &ids)
            .field("write_plain", &self.write_plain)
            .field("accept_plain", &self.accept_plain)
            .finish()
    }
}

impl PartitionKeys {
    /// Encrypts with `key`, named `id` (1 to 255 bytes; stored in each document).
    pub fn new(id: &str, key: [u8; 32]) -> Result<PartitionKeys> {
        check_id(id)?;
        Ok(PartitionKeys {
            current: (id.to_owned(), DataKey::from_bytes(key)),
            previous: Vec::new(),
            write_plain: false,
            accept_plain: false,
        })
    }

    /// Also reads partitions stored in plain text (and encrypts them at their next save): for
    /// the first encryption of a store written without keys, what `tokencache encrypt URL`
    /// does. Without it a plain partition is refused ([`StoreError::Unreadable`]), since
    /// whoever can write a row could otherwise plant tokens in a user's partition.
    ///
    /// ```
    /// use tokencache_store::PartitionKeys;
    /// let keys = PartitionKeys::new("k1", [7; 32])?.accepting_plaintext();
    /// assert!(keys.accepts_plaintext());
    /// # Ok::<(), tokencache_store::StoreError>(())
    /// ```
    pub fn accepting_plaintext(mut self) -> PartitionKeys {
        self.accept_plain = true;
        self
    }

    /// True when plain partitions are read ([`PartitionKeys::accepting_plaintext`], or
    /// [`PartitionKeys::writing_plain_text`]).
    pub fn accepts_plaintext(&self) -> bool {
        self.accept_plain || self.write_plain
    }

    /// Also decrypts documents written under an older key.
    pub fn with_previous(mut self, id: &str, key: [u8; 32]) -> Result<PartitionKeys> {
        check_id(id)?;
        self.previous
            .push((id.to_owned(), DataKey::from_bytes(key)));
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
        Envelope::PARTITION
            .seal(key, id, partition.as_bytes(), plain)
            .map_err(|e| StoreError::Encryption {
                reason: e.to_string(),
            })
    }

    pub(crate) fn decrypt(&self, partition: &str, doc: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let unreadable = |reason: String| StoreError::Unreadable {
            partition: partition.to_owned(),
            reason,
        };
        let id = Envelope::PARTITION
            .key_id(doc)
            .ok_or_else(|| unreadable("not an encrypted partition".into()))?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(k, _)| k.as_bytes() == id)
            .map(|(_, key)| key)
            .ok_or_else(|| {
                unreadable(format!(
                    "encrypted with key {:?}, which this store does not have",
                    String::from_utf8_lossy(id)
                ))
            })?;
        Envelope::PARTITION
            .open(key, partition.as_bytes(), doc)
            .map_err(|_| {
                unreadable(
                    "authentication failed (wrong key, or the document was altered or moved)"
                        .into(),
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
    Envelope::PARTITION.is_sealed(doc)
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
    Envelope::PARTITION
        .key_id(document)
        .map(|id| String::from_utf8_lossy(id).into_owned())
}

/// True when `document` is encrypted under the key `id`.
/// Whether `document` is sealed under key `id` in the current format (an older format counts
/// as not yet: rewriting moves it to the current one).
pub(crate) fn is_encrypted_under(document: &[u8], id: &str) -> bool {
    Envelope::PARTITION.key_id(document) == Some(id.as_bytes())
        && Envelope::PARTITION.version(document) == Some(2)
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
        assert_eq!(
            &rotated.decrypt("alice", &doc).unwrap()[..],
            b"{\"AccessToken\": {}}",
            "the old document, read under the previous key"
        );
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
