//! Partitioned token cache stores for web apps, web APIs and daemons: one MSAL cache partition
//! per user (by `home_account_id`), per app (`{client_id}_{tenant}_AppTokenCache`) or per
//! on-behalf-of assertion, in SQLite (the embedded default), PostgreSQL, Redis or Redis Cluster.
//! This crate owns the backend interface ([`PartitionBackend`]: versioned documents,
//! compare-and-set, expiry, leases), the backends, opening one by URL ([`open`]), and
//! [`PartitionedCache`], the core's [`tokencache::CacheAccessor`] that a client application uses:
//! it loads only the requesting user's partition, saves with compare-and-set and retries so
//! concurrent requests never lose a token, takes a short lease so one process at a time
//! refreshes a partition, expires and deletes partitions, optionally keeps an L1 validated by
//! version, and optionally encrypts partitions with rotating keys.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("tokens.db");
//! # let path = path.display();
//! use tokencache_store::{PartitionOptions, PartitionedCache};
//! let store = tokencache_store::open(&format!("sqlite://{path}")).await?;
//! let cache = PartitionedCache::new(store, PartitionOptions::default());
//! assert_eq!(cache.store().backend(), "sqlite");
//! # Ok::<(), Box<dyn std::error::Error>>(()) }) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod crypto;
mod error;
mod l1;
mod memory;
mod partitioned;
#[cfg(feature = "postgres")]
mod postgres;
mod recent;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_batch;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "tls")]
mod tls;

pub use backend::{
    IfChanged, Lease, PartitionBackend, SaveOutcome, Versioned, new_version, open, open_with_clock,
};
pub use crypto::{PartitionKeys, encrypted_key_id};
pub use error::{Result, StoreError};
pub use memory::MemoryBackend;
pub use partitioned::{
    CorruptPartition, FailurePolicy, PartitionOptions, PartitionedCache, SaveExpiry, StoreMetrics,
    Updated,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresBackend, PostgresOptions};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisBackend, RedisClusterBackend};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_batch::ReadBatches;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteBackend;

/// Now, in Unix seconds.
#[cfg(feature = "redis")]
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(feature = "redis")]
pub(crate) fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
