//! PostgreSQL: one table with a version column (created or migrated on start), compare-and-set
//! saves by `UPDATE … WHERE version = $expected`, leases in a second table.
//!
//! Every operation on a partition is one statement, prepared once per connection. Those
//! statements go over a few connections that concurrent requests share (some for reads, as
//! many for writes): tokio-postgres pipelines the queries made on one connection, so requests
//! that arrive together share the connection's socket writes and reads instead of each taking
//! a connection (and a server process) of its own. The pool hands out the rest: the schema
//! migration and the listings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokencache::access::BoxFuture;
use tokio_postgres::config::SslMode;
use tokio_postgres::{NoTls, Row};

use crate::backend::{IfChanged, Lease, PartitionBackend, SaveOutcome, Versioned, new_version};
use crate::error::{Result, StoreError, redact_url};
use crate::memory::unix_now_ms;
use tokencache::{Clock, SystemClock};

/// The schema version this code writes; older schemas are migrated on start.
const SCHEMA_VERSION: i32 = 2;

const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS tokencache_partitions (
    key        TEXT PRIMARY KEY,
    document   BYTEA NOT NULL,
    version    BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX IF NOT EXISTS tokencache_partitions_expiry ON tokencache_partitions (expires_at);
CREATE TABLE IF NOT EXISTS tokencache_leases (
    key      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);",
    "ALTER TABLE tokencache_partitions ADD COLUMN IF NOT EXISTS created_at BIGINT;",
];

/// How [`PostgresBackend`] uses connections.
///
/// ```
/// use tokencache_store::PostgresOptions;
///
/// // A server behind a connection limit: 2 shared for reads, 2 for writes, 6 in all.
/// let options = PostgresOptions {
///     shared_connections: 2,
///     max_connections: 6,
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// How many connections the single-statement reads share, and as many the writes share
    /// (at least 1). Concurrent requests pipeline their statements on these. Reads and writes
    /// go over separate connections so that a read never waits behind a commit's flush to
    /// disk.
    pub shared_connections: usize,
    /// At most this many connections in all: twice the shared ones, plus at least one that
    /// the schema migration and the listings (`keys`, `leases`) take for themselves.
    pub max_connections: usize,
}

impl Default for PostgresOptions {
    /// 4 shared connections for reads and 4 for writes, at most 16 in all. On a 2-core
    /// machine 1, 2, 4 or 8 shared connections gave about the same peak and 4 the better tail
    /// (see the README's Web stores section).
    fn default() -> Self {
        PostgresOptions {
            shared_connections: 4,
            max_connections: 16,
        }
    }
}

impl PostgresOptions {
    fn check(&self) -> Result<()> {
        if self.shared_connections == 0 {
            return Err(StoreError::InvalidOptions {
                reason: "PostgreSQL needs at least 1 shared connection".into(),
            });
        }
        if self.max_connections <= 2 * self.shared_connections {
            return Err(StoreError::InvalidOptions {
                reason: format!(
                    "{} PostgreSQL connections in all leave none besides the {} shared ones \
                     (2 × {}); allow at least {}",
                    self.max_connections,
                    2 * self.shared_connections,
                    self.shared_connections,
                    2 * self.shared_connections + 1
                ),
            });
        }
        Ok(())
    }
}

/// Partitions in a PostgreSQL table, through a connection pool.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    shared: Arc<SharedConnections>,
    url: String,
    clock: Arc<dyn Clock>,
}

/// Connections that concurrent requests use at the same time, taken from the pool when first
/// needed and replaced when found closed (after a server restart, for instance).
struct SharedConnections {
    reads: Box<[Slot]>,
    writes: Box<[Slot]>,
    next: AtomicUsize,
}

impl SharedConnections {
    fn new(n: usize) -> Self {
        let slots = || (0..n).map(|_| Slot::default()).collect();
        SharedConnections {
            reads: slots(),
            writes: slots(),
            next: AtomicUsize::new(0),
        }
    }
}

#[derive(Default)]
struct Slot {
    connection: Mutex<Option<Arc<deadpool_postgres::Object>>>,
    /// Held while the slot connects, so the requests that find it empty wait for one
    /// connection instead of each taking one from the pool.
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn open(&self) -> Option<Connection> {
        lock(&self.connection)
            .as_ref()
            .filter(|object| !object.is_closed())
            .map(|object| Connection(object.clone()))
    }

    /// The slot's connection, or a new one from the pool if it has none open.
    async fn connection(&self, pool: &Pool) -> Result<Connection> {
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        self.connect(pool).await
    }

    /// A new connection in place of `ended`, unless another request has replaced it already.
    async fn replace(&self, pool: &Pool, ended: Connection) -> Result<Connection> {
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open().filter(|c| !Arc::ptr_eq(&c.0, &ended.0)) {
            return Ok(connection);
        }
        self.connect(pool).await
    }

    /// Takes a connection from the pool into the slot; the caller holds `connecting`.
    async fn connect(&self, pool: &Pool) -> Result<Connection> {
        let object = Arc::new(pool.get().await.map_err(unavailable)?);
        *lock(&self.connection) = Some(object.clone());
        Ok(Connection(object))
    }
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.url)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: "postgres",
        reason: e.to_string(),
    }
}

impl PostgresBackend {
    /// Connects (`postgres://user:password@host:port/db`) and creates or migrates the schema,
    /// with the default [`PostgresOptions`].
    pub async fn connect(url: &str) -> Result<PostgresBackend> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`Self::connect`] with connection counts of your choosing.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tokencache_store::StoreError> {
    /// use tokencache_store::{PostgresOptions, PostgresBackend};
    ///
    /// let options = PostgresOptions {
    ///     shared_connections: 2,
    ///     max_connections: 6,
    /// };
    /// let store = PostgresBackend::connect_with("postgres://app@db/tokens", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<PostgresBackend> {
        options.check()?;
        let (config, ca_file) = parse_config(url)?;
        let manager_config = ManagerConfig {
            // A connection leaves the pool rarely now (to join a shared slot, or for a
            // listing), and one that replaces a connection the server ended must not be
            // another ended one that has not noticed yet: so the pool checks each with an
            // empty query first.
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, NoTls, manager_config)
        } else {
            let tls = crate::tls::client_config(crate::tls::roots(ca_file.as_deref())?)?;
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
            Manager::from_config(config, connector, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(unavailable)?;
        let store = PostgresBackend {
            pool,
            shared: Arc::new(SharedConnections::new(options.shared_connections)),
            url: redact_url(url),
            clock: Arc::new(SystemClock),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Judges partition expiry (and stamps creation) by `clock` instead of the system clock,
    /// as [`PartitionOptions::clock`](crate::PartitionOptions::clock) does for the cache.
    /// Refresh leases keep to real time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PostgresBackend {
        self.clock = clock;
        self
    }

    /// A connection of its own, for a transaction or a long listing.
    async fn client(&self) -> Result<Connection> {
        let object = self.pool.get().await.map_err(unavailable)?;
        Ok(Connection(Arc::new(object)))
    }

    /// The next shared slot in turn, for reads or for writes.
    fn slot(&self, write: bool) -> &Slot {
        let slots = if write {
            &self.shared.writes
        } else {
            &self.shared.reads
        };
        &slots[self.shared.next.fetch_add(1, Ordering::Relaxed) % slots.len()]
    }

    /// Runs one statement on a shared connection, for reads or for writes. If that connection
    /// turns out to be gone (the server restarted or ended it, or a proxy dropped it while
    /// idle), the slot connects again and the statement runs once more: either it never ran,
    /// or it was a write whose outcome is lost, and every write here tolerates running twice
    /// (a compare-and-set save or delete then reports a conflict, and a lease is renewed by its
    /// own holder).
    async fn on_shared<T, Run>(&self, write: bool, run: impl Fn(Connection) -> Run) -> Result<T>
    where
        Run: Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        let slot = self.slot(write);
        let connection = slot.connection(&self.pool).await?;
        match run(connection.clone()).await {
            Err(e) if connection_ended(&e) => {
                tracing::debug!(error = %e, "a shared PostgreSQL connection ended; running again");
                let connection = slot.replace(&self.pool, connection).await?;
                run(connection).await.map_err(unavailable)
            }
            outcome => outcome.map_err(unavailable),
        }
    }

    /// A read on a shared connection (see [`Self::on_shared`]).
    async fn query_opt_shared(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        self.on_shared(false, |c| async move { c.query_opt(sql, params).await })
            .await
    }

    /// A write on a shared connection (see [`Self::on_shared`]); the number of rows changed.
    async fn execute_shared(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        self.on_shared(true, |c| async move { c.execute(sql, params).await })
            .await
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        // One migrator at a time, across processes.
        tx.execute("SELECT pg_advisory_xact_lock(7463616368)", &[])
            .await
            .map_err(unavailable)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tokencache_schema (version INT NOT NULL)")
            .await
            .map_err(unavailable)?;
        let current: i32 = tx
            .query_opt("SELECT version FROM tokencache_schema", &[])
            .await
            .map_err(unavailable)?
            .map_or(0, |r| r.get(0));
        for (i, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(step).await.map_err(unavailable)?;
            tracing::info!(to = i + 1, "migrated the tokencache schema");
        }
        tx.execute("DELETE FROM tokencache_schema", &[])
            .await
            .map_err(unavailable)?;
        tx.execute(
            "INSERT INTO tokencache_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION.max(current)],
        )
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }
}

/// Whether `e` says the connection is gone (closed, or ended by the server while the statement
/// was on it) rather than that the statement failed.
fn connection_ended(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.is_closed()
        || e.code()
            .is_some_and(|c| *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The slot holds no invariant a panic elsewhere could break.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A pooled connection, shared or not. Its statements are prepared once and kept with it, so
/// a query takes one round trip instead of two (parse, then bind and execute).
#[derive(Clone)]
struct Connection(Arc<deadpool_postgres::Object>);

impl std::ops::Deref for Connection {
    type Target = deadpool_postgres::Object;

    fn deref(&self) -> &deadpool_postgres::Object {
        &self.0
    }
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

impl Connection {
    async fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        (**self).query_opt(&statement, params).await
    }

    async fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        (**self).query(&statement, params).await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> std::result::Result<u64, tokio_postgres::Error> {
        let statement = self.prepare_cached(sql).await?;
        (**self).execute(&statement, params).await
    }
}

impl PartitionBackend for PostgresBackend {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        Box::pin(async move {
            let row = self
                .query_opt_shared(
                    "SELECT document, version, created_at, expires_at FROM tokencache_partitions
                     WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
                    &[&key, &self.clock.now()],
                )
                .await?;
            Ok(row.map(|r| Versioned {
                document: r.get(0),
                version: r.get::<_, i64>(1) as u64,
                created_at: r.get(2),
                expires_at: r.get(3),
            }))
        })
    }

    fn load_if_changed<'a>(&'a self, key: &'a str, known: u64) -> BoxFuture<'a, Result<IfChanged>> {
        Box::pin(async move {
            let row = self.query_opt_shared(
                    "SELECT CASE WHEN version = $3 THEN NULL ELSE document END, version, created_at, expires_at
                     FROM tokencache_partitions
                     WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
                    &[&key, &self.clock.now(), &(known as i64)],
                )
                .await?;
            let Some(r) = row else {
                return Ok(IfChanged::Changed(None));
            };
            let version = r.get::<_, i64>(1) as u64;
            match r.get::<_, Option<Vec<u8>>>(0) {
                None if version == known => Ok(IfChanged::Unchanged),
                document => Ok(IfChanged::Changed(Some(Versioned {
                    document: document.unwrap_or_default(),
                    version,
                    created_at: r.get(2),
                    expires_at: r.get(3),
                }))),
            }
        })
    }

    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let row = self
                .query_opt_shared(
                    "SELECT version FROM tokencache_partitions
                     WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
                    &[&key, &self.clock.now()],
                )
                .await?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        document: &'a [u8],
        expected: Option<u64>,
        expires_at: Option<i64>,
    ) -> BoxFuture<'a, Result<SaveOutcome>> {
        Box::pin(async move {
            let version = new_version() as i64;
            let now = self.clock.now();
            let n = match expected {
                Some(old) => self.execute_shared(
                        "UPDATE tokencache_partitions SET document = $1, version = $2, expires_at = $3
                         WHERE key = $4 AND version = $5 AND (expires_at IS NULL OR expires_at > $6)",
                        &[&document, &version, &expires_at, &key, &(old as i64), &now],
                    )
                    .await,
                None => self.execute_shared(
                        "INSERT INTO tokencache_partitions AS p (key, document, version, expires_at, created_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (key) DO UPDATE SET document = excluded.document,
                             version = excluded.version, expires_at = excluded.expires_at,
                             created_at = excluded.created_at
                         WHERE p.expires_at IS NOT NULL AND p.expires_at <= $5",
                        &[&key, &document, &version, &expires_at, &now],
                    )
                    .await,
            }?;
            Ok(if n == 1 {
                SaveOutcome::Saved(version as u64)
            } else {
                SaveOutcome::Conflict
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let n = match expected {
                Some(v) => {
                    self.execute_shared(
                        "DELETE FROM tokencache_partitions WHERE key = $1 AND version = $2",
                        &[&key, &(v as i64)],
                    )
                    .await
                }
                None => {
                    self.execute_shared("DELETE FROM tokencache_partitions WHERE key = $1", &[&key])
                        .await
                }
            }?;
            Ok(n > 0)
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let now = unix_now_ms();
            let until = now + ttl.as_millis() as i64;
            let n = self
                .execute_shared(
                    "INSERT INTO tokencache_leases AS l (key, holder, until_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                     WHERE l.until_ms <= $4 OR l.holder = excluded.holder",
                    &[&key, &holder, &until, &now],
                )
                .await?;
            Ok(n == 1)
        })
    }

    fn release_lease<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.execute_shared(
                "DELETE FROM tokencache_leases WHERE key = $1 AND holder = $2",
                &[&key, &holder],
            )
            .await?;
            Ok(())
        })
    }

    fn leases(&self) -> BoxFuture<'_, Result<Vec<Lease>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let now = unix_now_ms();
            let rows = c
                .query(
                    "SELECT key, holder, until_ms FROM tokencache_leases WHERE until_ms > $1 ORDER BY key",
                    &[&now],
                )
                .await
                .map_err(unavailable)?;
            Ok(rows
                .iter()
                .map(|r| Lease {
                    partition: r.get(0),
                    holder: r.get(1),
                    expires_in: Duration::from_millis(
                        u64::try_from(r.get::<_, i64>(2) - now).unwrap_or(0),
                    ),
                })
                .collect())
        })
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let rows = c
                .query(
                    "SELECT key FROM tokencache_partitions
                     WHERE expires_at IS NULL OR expires_at > $1 ORDER BY key",
                    &[&self.clock.now()],
                )
                .await
                .map_err(unavailable)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}
/// The connection settings of `url`, and the CA file its `sslrootcert` names.
///
/// TLS follows `sslmode`: `require`, `verify-ca` and `verify-full` connect with TLS only, and
/// `prefer` with TLS when the server offers it; the server's certificate and host name are
/// always verified (against `sslrootcert`, else the system's roots), whatever the mode, since a
/// TLS connection that accepts any certificate protects against nothing. Without `sslmode`, or
/// with `disable`, the connection is plain, as before.
fn parse_config(url: &str) -> Result<(tokio_postgres::Config, Option<String>)> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let (rest, ca_file) = crate::tls::take_parameter(url, "sslrootcert");
    let (rest, mode) = crate::tls::take_parameter(&rest, "sslmode");
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| invalid(format!("{e}")))?;
    let mode = match mode.as_deref() {
        None | Some("disable") => SslMode::Disable,
        Some("prefer" | "allow") => SslMode::Prefer,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => return Err(invalid(format!("unknown sslmode {other:?}"))),
    };
    config.ssl_mode(mode);
    if ca_file.is_some() && mode == SslMode::Disable {
        return Err(invalid(
            "sslrootcert without an sslmode that uses TLS".into(),
        ));
    }
    Ok((config, ca_file))
}
