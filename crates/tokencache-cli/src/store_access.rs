//! A store URL opened with the key given on the command line. Applications name their keys
//! (`PartitionKeys::new("k2", key)`) and every encrypted partition carries its key's id; the
//! command line hands over one key, so each partition is read with that key under the id it
//! carries, and written back as the verb asks: unchanged, in plain text, or under one key id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokencache_file::DataKey;
use tokencache_store::{
    PartitionBackend, PartitionKeys, PartitionOptions, PartitionedCache, encrypted_key_id,
};

use crate::error::CliError;

/// What a verb does to the encryption of the partitions it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Each partition stays as it was: plain stays plain, encrypted stays under its key id.
    Keep,
    /// Encrypted partitions are written back in plain text (`decrypt`).
    Plain,
    /// Every partition written is encrypted under this key id (`encrypt`, `migrate --key-id`).
    Encrypted(String),
}

/// A partitioned store and the keys a verb reads and writes it with.
pub struct StoreAccess {
    store: Arc<dyn PartitionBackend>,
    key: Option<DataKey>,
    previous: Option<DataKey>,
    writes: Writes,
    /// One cache per key id found in the store (`None`: plain partitions).
    caches: Mutex<HashMap<Option<String>, Arc<PartitionedCache>>>,
}

impl StoreAccess {
    /// Opens `url`. `key` reads encrypted partitions (whatever their key id) and encrypts what
    /// is written under [`Writes::Encrypted`]; `previous` reads partitions under other key ids
    /// when re-encrypting (key rotation).
    pub async fn open(
        url: &str,
        key: Option<DataKey>,
        previous: Option<DataKey>,
        writes: Writes,
    ) -> Result<StoreAccess, CliError> {
        if writes != Writes::Keep && key.is_none() {
            return Err(CliError::Usage(
                "this needs a key: --key-file, --key-env or --keyring".into(),
            ));
        }
        Ok(StoreAccess {
            store: tokencache_store::open(url).await?,
            key,
            previous,
            writes,
            caches: Mutex::new(HashMap::new()),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn PartitionBackend> {
        &self.store
    }

    /// The id of the key partition `partition` is encrypted under (`None`: plain or absent).
    pub async fn key_id(&self, partition: &str) -> Result<Option<String>, CliError> {
        Ok(self
            .store
            .load(partition)
            .await?
            .and_then(|stored| encrypted_key_id(&stored.document)))
    }

    /// The cache that reads and writes `partition` the way this verb should.
    pub async fn cache_for(&self, partition: &str) -> Result<Arc<PartitionedCache>, CliError> {
        // Without a key nothing encrypted can be read or written: no need to look first.
        let id = if self.key.is_none() {
            None
        } else {
            self.key_id(partition).await?
        };
        self.cache_for_key_id(id)
    }

    /// The cache that reads a partition whose stored document is `document`.
    pub fn cache_for_document(&self, document: &[u8]) -> Result<Arc<PartitionedCache>, CliError> {
        // Without a key, the plain cache says which key id an encrypted partition needs.
        let id = self.key.as_ref().and_then(|_| encrypted_key_id(document));
        self.cache_for_key_id(id)
    }

    /// The cache for partitions stored under key id `id` (`None`: plain), when the caller has
    /// already looked ([`StoreAccess::key_id`]).
    pub fn cache_for_key_id(&self, id: Option<String>) -> Result<Arc<PartitionedCache>, CliError> {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cache) = caches.get(&id) {
            return Ok(cache.clone());
        }
        let options = PartitionOptions {
            encryption: self.keys_for(id.as_deref())?,
            // The CLI reports a partition it cannot use; it never sets one aside.
            corrupt: tokencache_store::CorruptPartition::Fail,
            ..PartitionOptions::default()
        };
        let cache = Arc::new(PartitionedCache::new(self.store.clone(), options));
        caches.insert(id, cache.clone());
        Ok(cache)
    }

    /// The keys for a partition stored under key id `id` (`None`: plain).
    fn keys_for(&self, id: Option<&str>) -> Result<Option<PartitionKeys>, CliError> {
        let key = |which: Option<&DataKey>| -> Result<[u8; 32], CliError> {
            match which.or(self.key.as_ref()) {
                Some(k) => Ok(*k.as_bytes()),
                None => Err(CliError::Usage(format!(
                    "the partition is encrypted under key id {:?}: give its key with --key-file, --key-env or --keyring",
                    id.unwrap_or_default()
                ))),
            }
        };
        Ok(match (&self.writes, id) {
            (Writes::Keep | Writes::Plain, None) => None,
            (Writes::Keep, Some(id)) => Some(PartitionKeys::new(id, key(None)?)?),
            (Writes::Plain, Some(id)) => {
                Some(PartitionKeys::new(id, key(None)?)?.writing_plain_text())
            }
            // Encrypting a plain partition: the one place plaintext is read under a key.
            (Writes::Encrypted(to), None) => {
                Some(PartitionKeys::new(to, key(None)?)?.accepting_plaintext())
            }
            (Writes::Encrypted(to), Some(id)) if id == to => {
                Some(PartitionKeys::new(to, key(None)?)?)
            }
            (Writes::Encrypted(to), Some(id)) => Some(
                PartitionKeys::new(to, key(None)?)?
                    .with_previous(id, key(self.previous.as_ref())?)?,
            ),
        })
    }
}
