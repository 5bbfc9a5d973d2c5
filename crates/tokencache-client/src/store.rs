//! The accessor every application gets when it is built without one: an in-memory cache.
//!
//! The contract itself ([`CacheAccessor`], [`CacheAccess`], [`CacheChange`]) lives in the
//! core crate, [`tokencache::access`], so that the file store and the partitioned stores
//! implement it without depending on this crate.

use std::sync::Arc;

use tokencache::TokenCache;
use tokencache::access::{AccessError, BoxFuture, CacheAccess, CacheAccessor, CacheChange};

/// An in-memory cache for the life of the application: what every application gets when it is
/// built without an accessor, as in MSAL. Share one between applications with
/// [`InMemoryAccessor::with_cache`].
#[derive(Clone, Debug, Default)]
pub struct InMemoryAccessor {
    cache: Arc<TokenCache>,
}

impl InMemoryAccessor {
    /// A new, empty cache.
    pub fn new() -> InMemoryAccessor {
        InMemoryAccessor::default()
    }

    /// An accessor over an existing cache (for example one deserialized from elsewhere).
    pub fn with_cache(cache: Arc<TokenCache>) -> InMemoryAccessor {
        InMemoryAccessor { cache }
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }
}

impl CacheAccessor for InMemoryAccessor {
    fn load<'a>(
        &'a self,
        _: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Arc<TokenCache>, AccessError>> {
        Box::pin(async move { Ok(self.cache.clone()) })
    }

    fn save<'a>(
        &'a self,
        _: CacheAccess<'a>,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move { Ok(change(&self.cache)?) })
    }
}
