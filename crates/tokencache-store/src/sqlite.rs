//! SQLite, the embedded default: one file in WAL mode, created on first use, shared safely by
//! the threads and processes of one machine.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokencache::access::BoxFuture;

use crate::backend::{Lease, PartitionBackend, SaveOutcome, Versioned, new_version};
use crate::error::{Result, StoreError};
use crate::memory::unix_now_ms;
use tokencache::{Clock, SystemClock};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokencache_partitions (
    key        TEXT PRIMARY KEY,
    document   BLOB NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER,
    created_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokencache_partitions_expiry ON tokencache_partitions (expires_at);
CREATE TABLE IF NOT EXISTS tokencache_leases (
    key      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);";

/// At most this many statements run at once, each on a connection of its own; the others wait
/// for a turn. Connections are opened as needed, up to this many, and kept.
const MAX_CONNECTIONS: usize = 8;

/// Partitions in a SQLite file (WAL mode, 5-second busy timeout). Blocking calls run on tokio's
/// blocking pool over a small pool of connections, each with its prepared statements.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
    turns: Arc<tokio::sync::Semaphore>,
    clock: Arc<dyn Clock>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: "sqlite",
        reason: e.to_string(),
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(unavailable)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(unavailable)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(unavailable)?;
    Ok(conn)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and its tables. New files are 0600.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteBackend> {
        let path = path.as_ref().to_owned();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            #[cfg(unix)]
            if !p.exists() {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(&p)
                    .map_err(unavailable)?;
            }
            let conn = connect(&p)?;
            conn.execute_batch(SCHEMA).map_err(unavailable)?;
            // Migrate files from before `created_at`.
            let has_created: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info('tokencache_partitions') WHERE name = 'created_at'")
                .and_then(|mut st| st.exists([]))
                .map_err(unavailable)?;
            if !has_created {
                conn.execute_batch("ALTER TABLE tokencache_partitions ADD COLUMN created_at INTEGER")
                    .map_err(unavailable)?;
            }
            conn.execute(
                "DELETE FROM tokencache_partitions WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                params![SystemClock.now()],
            )
            .map_err(unavailable)?;
            Ok(conn)
        })
        .await
        .map_err(unavailable)??;
        Ok(SqliteBackend {
            path,
            pool: Arc::new(Mutex::new(vec![conn])),
            turns: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            clock: Arc::new(SystemClock),
        })
    }

    /// Judges partition expiry (and stamps creation) by `clock` instead of the system clock,
    /// as [`PartitionOptions::clock`](crate::PartitionOptions::clock) does for the cache.
    /// Refresh leases keep to real time, and opening the file drops the partitions that had
    /// expired by the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteBackend {
        self.clock = clock;
        self
    }

    /// Runs `f` on a pooled connection on the blocking pool, once one of the
    /// [`MAX_CONNECTIONS`] turns is free. Without that bound, each of many concurrent requests
    /// took a blocking thread, and those beyond the pool opened (and closed) a connection of
    /// their own.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.pool.clone();
        let path = self.path.clone();
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let taken = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match taken {
                Some(c) => c,
                None => connect(&path)?,
            };
            let out = f(&conn).map_err(unavailable);
            let mut pool = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.len() < MAX_CONNECTIONS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(unavailable)?
    }
}

impl PartitionBackend for SqliteBackend {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        let (key, now) = (key.to_owned(), self.clock.now());
        Box::pin(self.with(move |c| {
            c.prepare_cached(
                "SELECT document, version, created_at, expires_at FROM tokencache_partitions
                 WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .query_row(params![key, now], |row| {
                Ok(Versioned {
                    document: row.get(0)?,
                    version: row.get::<_, i64>(1)? as u64,
                    created_at: row.get(2)?,
                    expires_at: row.get(3)?,
                })
            })
            .optional()
        }))
    }

    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        let (key, now) = (key.to_owned(), self.clock.now());
        Box::pin(self.with(move |c| {
            c.prepare_cached(
                "SELECT version FROM tokencache_partitions
                 WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .query_row(params![key, now], |row| Ok(row.get::<_, i64>(0)? as u64))
            .optional()
        }))
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        document: &'a [u8],
        expected: Option<u64>,
        expires_at: Option<i64>,
    ) -> BoxFuture<'a, Result<SaveOutcome>> {
        let (key, document, now) = (key.to_owned(), document.to_vec(), self.clock.now());
        Box::pin(self.with(move |c| {
            let version = new_version();
            let changed = match expected {
                Some(old) => c.prepare_cached("UPDATE tokencache_partitions SET document = ?1, version = ?2, expires_at = ?3
                     WHERE key = ?4 AND version = ?5 AND (expires_at IS NULL OR expires_at > ?6)")?.execute(
                    params![document, version as i64, expires_at, key, old as i64, now],
                )?,
                None => c.prepare_cached("INSERT INTO tokencache_partitions (key, document, version, expires_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (key) DO UPDATE SET document = excluded.document,
                         version = excluded.version, expires_at = excluded.expires_at,
                         created_at = excluded.created_at
                     WHERE tokencache_partitions.expires_at IS NOT NULL
                       AND tokencache_partitions.expires_at <= ?5")?.execute(
                    params![key, document, version as i64, expires_at, now],
                )?,
            };
            Ok(if changed == 1 {
                SaveOutcome::Saved(version)
            } else {
                SaveOutcome::Conflict
            })
        }))
    }

    fn delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool>> {
        let key = key.to_owned();
        Box::pin(self.with(move |c| {
            let n = match expected {
                Some(v) => c
                    .prepare_cached(
                        "DELETE FROM tokencache_partitions WHERE key = ?1 AND version = ?2",
                    )?
                    .execute(params![key, v as i64])?,
                None => c
                    .prepare_cached("DELETE FROM tokencache_partitions WHERE key = ?1")?
                    .execute(params![key])?,
            };
            Ok(n > 0)
        }))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        Box::pin(self.with(move |c| {
            let now = unix_now_ms();
            let n = c.prepare_cached("INSERT INTO tokencache_leases (key, holder, until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                 WHERE tokencache_leases.until_ms <= ?4 OR tokencache_leases.holder = excluded.holder")?.execute(
                params![key, holder, now + ttl.as_millis() as i64, now],
            )?;
            Ok(n == 1)
        }))
    }

    fn release_lease<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        Box::pin(self.with(move |c| {
            c.prepare_cached("DELETE FROM tokencache_leases WHERE key = ?1 AND holder = ?2")?
                .execute(params![key, holder])?;
            Ok(())
        }))
    }

    fn leases(&self) -> BoxFuture<'_, Result<Vec<Lease>>> {
        Box::pin(self.with(|c| {
            let now = unix_now_ms();
            let mut stmt = c.prepare_cached(
                "SELECT key, holder, until_ms FROM tokencache_leases WHERE until_ms > ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![now], |r| {
                Ok(Lease {
                    partition: r.get(0)?,
                    holder: r.get(1)?,
                    expires_in: Duration::from_millis(
                        u64::try_from(r.get::<_, i64>(2)? - now).unwrap_or(0),
                    ),
                })
            })?;
            rows.collect()
        }))
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        let now = self.clock.now();
        Box::pin(self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT key FROM tokencache_partitions
                 WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![now], |r| r.get::<_, String>(0))?;
            rows.collect()
        }))
    }
}
