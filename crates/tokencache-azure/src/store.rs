//! [`TokenStore`]: where a credential keeps its tokens.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokencache::access::CacheAccessor;
use tokencache_client::InMemoryAccessor;
use tokencache_file::{FileAccessor, FileOptions, FileStore};

use crate::error::CredentialError;

/// Where a credential keeps its tokens: a cache file in MSAL's format (shared with other
/// processes and other MSAL apps, under the `<file>.lockfile` lock), a partitioned store
/// (SQLite, PostgreSQL, Redis; with the `store` feature), or this process's memory. Cheap to
/// clone; clones share the cache.
#[derive(Clone)]
pub struct TokenStore {
    accessor: Arc<dyn CacheAccessor>,
    place: String,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("place", &self.place)
            .finish()
    }
}

impl TokenStore {
    /// A cache file with the default options (plain MSAL JSON, as MSAL Python and the Azure
    /// CLI keep it on Linux and macOS). The file is created at the first write.
    pub fn file(path: impl AsRef<Path>) -> Result<TokenStore, CredentialError> {
        TokenStore::file_with(path, FileOptions::default())
    }

    /// A cache file with options: encryption (a key file, a key from the environment or the
    /// OS keyring), Windows DPAPI, lock timeouts.
    pub fn file_with(
        path: impl AsRef<Path>,
        options: FileOptions,
    ) -> Result<TokenStore, CredentialError> {
        let path = path.as_ref();
        let file = FileStore::open(path, options).map_err(|source| CredentialError::File {
            path: path.to_owned(),
            source,
        })?;
        Ok(TokenStore::from_file(Arc::new(file)))
    }

    /// An opened file store.
    pub fn from_file(file: Arc<FileStore>) -> TokenStore {
        let place = format!("file {}", file.path().display());
        TokenStore {
            accessor: Arc::new(FileAccessor::new(file)),
            place,
        }
    }

    /// This process's memory: nothing outlives the process.
    pub fn memory() -> TokenStore {
        TokenStore {
            accessor: Arc::new(InMemoryAccessor::default()),
            place: "memory".into(),
        }
    }

    /// A partitioned store by URL, as the CLI spells it: `sqlite://PATH`, `postgres://…`,
    /// `redis://…`, `redis+cluster://…` or `memory://`. Each user's tokens and each tenant's
    /// app tokens are a partition, saved with compare-and-set, and refreshed under a lease so
    /// that processes sharing the store ask the identity provider once.
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub async fn open(url: &str) -> Result<TokenStore, CredentialError> {
        TokenStore::open_with(url, tokencache_store::PartitionOptions::default()).await
    }

    /// [`TokenStore::open`] with options (encryption keys, expiry, the failure policy).
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    pub async fn open_with(
        url: &str,
        options: tokencache_store::PartitionOptions,
    ) -> Result<TokenStore, CredentialError> {
        let redacted = tokencache::redact_url(url);
        let backend =
            tokencache_store::open(url)
                .await
                .map_err(|source| CredentialError::Store {
                    url: redacted.clone(),
                    source,
                })?;
        Ok(TokenStore {
            accessor: Arc::new(tokencache_store::PartitionedCache::new(backend, options)),
            place: redacted,
        })
    }

    /// Any accessor of the core's contract.
    pub fn from_accessor(accessor: Arc<dyn CacheAccessor>, place: impl Into<String>) -> TokenStore {
        TokenStore {
            accessor,
            place: place.into(),
        }
    }

    /// The accessor, for a `tokencache-client` application.
    pub fn accessor(&self) -> &Arc<dyn CacheAccessor> {
        &self.accessor
    }

    /// Where the tokens are (a path, a URL without credentials, or `memory`).
    pub fn place(&self) -> &str {
        &self.place
    }
}
