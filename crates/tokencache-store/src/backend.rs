//! The backend interface: a versioned key-value store of partition documents with
//! compare-and-set, expiry and leases; and opening a backend by URL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokencache::access::BoxFuture;

use crate::error::{Result, StoreError, redact_url};

/// A stored partition: its document (the serialized cache partition, possibly encrypted) and
/// its version.
#[derive(Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The document's bytes.
    pub document: Vec<u8>,
    /// The version: random and non-zero, new on every save, so a deleted and re-created
    /// partition never repeats a version another process remembers.
    pub version: u64,
    /// When the partition was created (Unix seconds): kept by updates, set again when a
    /// deleted or expired partition is re-created. Absolute expiry counts from it.
    pub created_at: Option<i64>,
    /// When the partition expires (Unix seconds), as the last save set it; `None` when it
    /// never does. Maintenance rewrites and migrations keep it
    /// ([`PartitionedCache::update_partition_with`](crate::PartitionedCache::update_partition_with)).
    pub expires_at: Option<i64>,
}

impl fmt::Debug for Versioned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("bytes", &self.document.len())
            .finish()
    }
}

/// The outcome of a compare-and-set save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Saved under this new version.
    Saved(u64),
    /// The stored version was not the expected one: reload, merge, retry.
    Conflict,
}

/// What [`PartitionBackend::load_if_changed`] found.
#[derive(Debug)]
pub enum IfChanged {
    /// The stored version is still the known one.
    Unchanged,
    /// It is not: the partition as [`PartitionBackend::load`] returns it (`None`: absent).
    Changed(Option<Versioned>),
}

/// A new random, non-zero version.
pub fn new_version() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No system randomness: fall back to the clock (still unique per save in practice).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        return nanos | 1;
    }
    // Keep it within i64 for SQL columns, and non-zero.
    (u64::from_le_bytes(b) >> 1).max(1)
}

/// A versioned key-value store of partitions. Every backend passes the same behaviour suite
/// (`tests/behaviour.rs`).
pub trait PartitionBackend: Send + Sync + fmt::Debug {
    /// The backend's name (`sqlite`, `postgres`, `redis`, `redis-cluster`, `memory`).
    fn backend(&self) -> &'static str;

    /// The partition's document, version, creation time and expiry, or `None` (absent or
    /// expired).
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>>;

    /// Only the version (cheap; used to validate an L1 copy).
    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>>>;

    /// Loads the partition unless its stored version is `known` (how an L1 copy is validated
    /// and, when stale, replaced). Redis and PostgreSQL answer in one round trip; the default
    /// asks for the version, then loads.
    fn load_if_changed<'a>(&'a self, key: &'a str, known: u64) -> BoxFuture<'a, Result<IfChanged>> {
        Box::pin(async move {
            if self.version(key).await? == Some(known) {
                return Ok(IfChanged::Unchanged);
            }
            Ok(IfChanged::Changed(self.load(key).await?))
        })
    }

    /// Saves `document` if the stored version is `expected` (`None`: only if absent or
    /// expired), with an absolute expiry (Unix seconds; `None` for none). A create records
    /// the creation time; an update keeps it.
    fn save<'a>(
        &'a self,
        key: &'a str,
        document: &'a [u8],
        expected: Option<u64>,
        expires_at: Option<i64>,
    ) -> BoxFuture<'a, Result<SaveOutcome>>;

    /// Deletes the partition if its version is `expected` (`None`: whatever it is). Returns
    /// whether something was deleted.
    fn delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool>>;

    /// Takes the lease `key` for `holder` for `ttl` if nobody else holds it. Returns whether
    /// it was taken.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Releases the lease if `holder` still holds it.
    fn release_lease<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Every stored partition key (for migration and inspection; not for request paths).
    fn keys(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// The refresh leases held now, by partition key (for operators: `tokencache lock-status
    /// URL`; not for request paths). Expired leases are not listed. Redis finds leases through
    /// its partition index, so it lists those of stored partitions only (a refresh needs a
    /// stored refresh token, so that is every lease a client takes).
    fn leases(&self) -> BoxFuture<'_, Result<Vec<Lease>>>;
}

/// A refresh lease held on a partition ([`PartitionBackend::leases`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The partition key.
    pub partition: String,
    /// Who holds it: a process instance and a counter (not secret).
    pub holder: String,
    /// How long until it expires by itself.
    pub expires_in: Duration,
}

/// Opens a backend by URL: `sqlite://PATH` (or a bare path ending in `.db`/`.sqlite`),
/// `postgres://…`, `redis://HOST:PORT/[DB]`, `redis+cluster://HOST:PORT[,HOST:PORT…]`,
/// `memory://`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let store = tokencache_store::open("memory://").await?;
/// assert_eq!(store.backend(), "memory");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }) }
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn PartitionBackend>> {
    open_with_clock(url, Arc::new(tokencache::SystemClock)).await
}

/// [`open`], with partition expiry judged by `clock` (give the cache the same one,
/// [`PartitionOptions::clock`](crate::PartitionOptions::clock)). The in-process, SQLite and
/// PostgreSQL backends compute expiry in this process and follow the clock; Redis and Redis
/// Cluster expire keys on the server, by the server's clock.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// use std::sync::Arc;
/// use tokencache::ManualClock;
/// let clock = Arc::new(ManualClock::new(1_700_000_000));
/// let store = tokencache_store::open_with_clock("memory://", clock.clone()).await?;
/// store.save("alice.t", b"{}", None, Some(1_700_000_060)).await?;
/// clock.advance(61);
/// assert!(store.load("alice.t").await?.is_none(), "expired a minute later");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }) }
/// ```
pub async fn open_with_clock(
    url: &str,
    clock: Arc<dyn tokencache::Clock>,
) -> Result<Arc<dyn PartitionBackend>> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("memory") => Ok(Arc::new(
            crate::memory::MemoryBackend::new().with_clock(clock),
        )),
        #[cfg(feature = "sqlite")]
        Some("sqlite") => {
            let path = url.split_once("://").map(|(_, p)| p).unwrap_or_default();
            if path.is_empty() {
                return Err(invalid("no path; use sqlite://PATH"));
            }
            Ok(Arc::new(
                crate::sqlite::SqliteBackend::open(path)
                    .await?
                    .with_clock(clock),
            ))
        }
        #[cfg(feature = "postgres")]
        Some("postgres" | "postgresql") => Ok(Arc::new(
            crate::postgres::PostgresBackend::connect(url)
                .await?
                .with_clock(clock),
        )),
        #[cfg(feature = "redis")]
        Some("redis" | "rediss") => Ok(Arc::new(crate::redis::RedisBackend::connect(url).await?)),
        #[cfg(feature = "redis")]
        Some("redis+cluster") => Ok(Arc::new(
            crate::redis::RedisClusterBackend::connect(url).await?,
        )),
        Some(other) => Err(invalid(&format!(
            "unknown scheme {other:?} (or its feature is off); expected sqlite, postgres, redis, redis+cluster or memory"
        ))),
        None => Err(invalid("no scheme; expected e.g. sqlite://tokens.db")),
    }
}
