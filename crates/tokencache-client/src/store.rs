//! The cache-access hook: where an application's token cache lives.
//!
//! MSAL's `ICachePlugin` has two callbacks, *before access* (load the cache) and *after access*
//! (save it if it changed). [`CacheStore`] has the same two moments, with one change that
//! prevents lost updates: the "after access" call receives the change itself
//! ([`CacheChange`]), so a store applies it under its own lock or compare-and-set, after
//! re-reading what other processes wrote, instead of writing back a copy that may be stale.
//! A change is idempotent, so a store may apply it again after a conflict.

use std::fmt;
use std::sync::Arc;

use tokencache::{PartitionKey, TokenCache};

use crate::error::Result;
use crate::http::BoxFuture;

/// A change to apply to a cache: a token response to add, a refresh token to update, an
/// account to remove. It can be applied more than once (after a conflict) with the same result.
pub type CacheChange = Arc<dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync>;

/// What a cache access is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheAccess<'a> {
    /// The client id of the application.
    pub client_id: &'a str,
    /// The partition the access is about: the account's `home_account_id`, the app partition
    /// `{client_id}_{tenant}_AppTokenCache`, or the OBO assertion hash. `None` when the access
    /// spans accounts (listing accounts) or the account is not known yet (a sign-in response
    /// whose account is computed by the store).
    pub partition_key: Option<&'a PartitionKey>,
}

/// Where an application's token cache lives. Implemented by [`InMemoryStore`] (the default),
/// [`FileCacheStore`] (feature `file`) and the partitioned stores of `tokencache-store`.
pub trait CacheStore: Send + Sync + fmt::Debug {
    /// Before access: the cache to read, brought up to date (e.g. re-read from a file, or the
    /// partition loaded from a database).
    fn load<'a>(&'a self, access: CacheAccess<'a>) -> BoxFuture<'a, Result<Arc<TokenCache>>>;

    /// After access, when the cache changes: apply `change` and persist the result.
    fn save<'a>(
        &'a self,
        access: CacheAccess<'a>,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<()>>;

    /// After a token response that only adds to the cache (a sign-in, client credentials,
    /// on-behalf-of; not a refresh, which also rotates the old refresh token): `change` is
    /// `cache.add_at(event, now)`, and a store that can hand the response itself to another
    /// process does so ([`FileCacheStore`] uses the file store's group commit). The default
    /// applies `change` like [`CacheStore::save`].
    fn save_token_response<'a>(
        &'a self,
        access: CacheAccess<'a>,
        event: Arc<tokencache::TokenEvent>,
        now: i64,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (event, now);
        self.save(access, change)
    }

    /// Called before a refresh of the partition's tokens: a store shared by several processes
    /// waits here until no other process is refreshing the same partition (a short lease), so
    /// a rotating refresh token is never used twice. Returns whether a lease was taken (then
    /// [`CacheStore::end_refresh`] follows). The default takes none: within one process the
    /// application already makes one refresh at a time.
    fn begin_refresh<'a>(&'a self, access: CacheAccess<'a>) -> BoxFuture<'a, Result<bool>> {
        let _ = access;
        Box::pin(async { Ok(false) })
    }

    /// Releases the lease [`CacheStore::begin_refresh`] took.
    fn end_refresh<'a>(&'a self, access: CacheAccess<'a>) -> BoxFuture<'a, Result<()>> {
        let _ = access;
        Box::pin(async { Ok(()) })
    }
}

/// An in-memory cache for the life of the application: what every application gets when it is
/// built without a store, as in MSAL. Share one between applications with
/// [`InMemoryStore::with_cache`].
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    cache: Arc<TokenCache>,
}

impl InMemoryStore {
    /// A new, empty cache.
    pub fn new() -> InMemoryStore {
        InMemoryStore::default()
    }

    /// A store over an existing cache (for example one deserialized from elsewhere).
    pub fn with_cache(cache: Arc<TokenCache>) -> InMemoryStore {
        InMemoryStore { cache }
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }
}

impl CacheStore for InMemoryStore {
    fn load<'a>(&'a self, _: CacheAccess<'a>) -> BoxFuture<'a, Result<Arc<TokenCache>>> {
        Box::pin(async move { Ok(self.cache.clone()) })
    }

    fn save<'a>(&'a self, _: CacheAccess<'a>, change: CacheChange) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Ok(change(&self.cache)?) })
    }
}

/// A cache file shared with other processes and other MSAL apps, through
/// [`tokencache_file::FileStore`]: loads re-read the file when another process changed it;
/// saves take the cross-process lock, re-read, apply the change and write atomically. The
/// blocking file work runs on tokio's blocking pool.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tokencache_client::{FileCacheStore, PublicClientApplication};
/// use tokencache_file::{FileStore, StoreOptions};
/// let file = FileStore::open("/home/me/.cache/myapp/msal_token_cache.json", StoreOptions::default())?;
/// let app = PublicClientApplication::builder("my-client-id")
///     .authority("https://login.microsoftonline.com/organizations")?
///     .cache_store(Arc::new(FileCacheStore::new(Arc::new(file))))
///     .build()?;
/// # Ok(()) }
/// ```
#[cfg(feature = "file")]
#[derive(Clone, Debug)]
pub struct FileCacheStore {
    file: Arc<tokencache_file::FileStore>,
}

#[cfg(feature = "file")]
impl FileCacheStore {
    /// A hook over a file store.
    pub fn new(file: Arc<tokencache_file::FileStore>) -> FileCacheStore {
        FileCacheStore { file }
    }

    /// The file store.
    pub fn file(&self) -> &Arc<tokencache_file::FileStore> {
        &self.file
    }
}

#[cfg(feature = "file")]
fn store_error(e: impl fmt::Display) -> crate::ClientError {
    crate::ClientError::Store(e.to_string())
}

#[cfg(feature = "file")]
impl CacheStore for FileCacheStore {
    fn load<'a>(&'a self, _: CacheAccess<'a>) -> BoxFuture<'a, Result<Arc<TokenCache>>> {
        Box::pin(async move {
            let file = self.file.clone();
            tokio::task::spawn_blocking(move || file.reload())
                .await
                .map_err(store_error)?
                .map_err(store_error)?;
            Ok(self.file.cache().clone())
        })
    }

    fn save<'a>(&'a self, _: CacheAccess<'a>, change: CacheChange) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let file = self.file.clone();
            tokio::task::spawn_blocking(move || file.update(|cache| change(cache)))
                .await
                .map_err(store_error)?
                .map_err(store_error)
        })
    }

    /// Records the response with [`tokencache_file::FileStore::add_at`]: when another process
    /// holds the cache lock, the response is handed to it (group commit).
    fn save_token_response<'a>(
        &'a self,
        _: CacheAccess<'a>,
        event: Arc<tokencache::TokenEvent>,
        now: i64,
        _: CacheChange,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let file = self.file.clone();
            tokio::task::spawn_blocking(move || file.add_at(&event, now))
                .await
                .map_err(store_error)?
                .map_err(store_error)
        })
    }
}
