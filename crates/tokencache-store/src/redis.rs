//! Redis, standalone and Cluster: one hash per partition (`v` version, `d` document, `c`
//! creation time, `e` expiry in Unix milliseconds or empty for none) with the same expiry as
//! its TTL;
//! compare-and-set, delete and leases are Lua scripts, atomic on the server and single-key, so
//! they work on a cluster. Loads and version checks are plain commands; on a standalone
//! server, concurrent ones are sent together (`redis_batch.rs`). Connections reconnect after
//! an outage.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Script, Value};
use tokencache::access::BoxFuture;

use crate::backend::{IfChanged, Lease, PartitionBackend, SaveOutcome, Versioned, new_version};
use crate::error::{Result, StoreError, redact_url};
use crate::redis_batch::{Batcher, ReadBatches};

const SAVE: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if (ARGV[1] == '' and cur) or (ARGV[1] ~= '' and cur ~= ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3], 'e', ARGV[4])
if not cur then redis.call('HSET', KEYS[1], 'c', ARGV[5]) end
if ARGV[4] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
return 1";

const DELETE: &str = r"
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])";

const LEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

fn unavailable(backend: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |e| StoreError::Unavailable {
        backend,
        reason: e.to_string(),
    }
}

/// What both Redis stores share: key layout and the scripts.
#[derive(Clone)]
struct Keys {
    prefix: String,
    save: Script,
    delete: Script,
    lease: Script,
    release: Script,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            save: Script::new(SAVE),
            delete: Script::new(DELETE),
            lease: Script::new(LEASE),
            release: Script::new(RELEASE),
        }
    }

    fn partition(&self, key: &str) -> String {
        format!("{}p:{key}", self.prefix)
    }

    fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.prefix)
    }

    fn index(&self) -> String {
        format!("{}index", self.prefix)
    }
}

/// How a store sends the reads of the hot path (loads and version checks): batched with
/// concurrent ones on a standalone server, one by one on a cluster (where each goes to the
/// node owning its key).
trait Reads {
    fn read(&self, cmd: Cmd) -> impl Future<Output = Result<Value>> + Send;
}

impl Reads for RedisBackend {
    async fn read(&self, cmd: Cmd) -> Result<Value> {
        self.batcher
            .send(cmd)
            .await
            .map_err(|reason| StoreError::Unavailable {
                backend: "redis",
                reason,
            })
    }
}

impl Reads for RedisClusterBackend {
    async fn read(&self, cmd: Cmd) -> Result<Value> {
        let mut c = self.conn.clone();
        cmd.query_async(&mut c)
            .await
            .map_err(unavailable("redis-cluster"))
    }
}

/// A reply of the expected shape, or the store's error.
fn reply<T: FromRedisValue>(value: Value, backend: &'static str) -> Result<T> {
    T::from_redis_value(value).map_err(|e| StoreError::Unavailable {
        backend,
        reason: format!("unexpected reply: {e}"),
    })
}

/// The operations, generic over the connection kind.
async fn load<C: ConnectionLike + Clone + Send + Sync>(
    reads: &impl Reads,
    conn: &C,
    k: &Keys,
    key: &str,
    backend: &'static str,
) -> Result<Option<Versioned>> {
    // The hot path of every request: the command is sized up front (no regrowth).
    let partition = k.partition(key);
    let mut hmget = redis::Cmd::with_capacity(6, partition.len() + 10);
    hmget
        .arg("HMGET")
        .arg(&partition)
        .arg("v")
        .arg("d")
        .arg("c")
        .arg("e");
    type Fields = (
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
        Option<Vec<u8>>,
    );
    let (v, d, created, expires): Fields = reply(reads.read(hmget).await?, backend)?;
    let mut found = versioned(v, d, created);
    with_expiry(conn, &partition, &mut found, expires, backend).await?;
    Ok(found)
}

/// A partition from its hash fields `v`, `d` and `c` (`None` unless it has a version and a
/// document); its expiry is filled in by [`with_expiry`].
fn versioned(
    v: Option<Vec<u8>>,
    d: Option<Vec<u8>>,
    created: Option<Vec<u8>>,
) -> Option<Versioned> {
    match (number(v), d) {
        (Some(version), Some(document)) => Some(Versioned {
            document,
            version: version as u64,
            created_at: number(created),
            expires_at: None,
        }),
        _ => None,
    }
}

fn number(bytes: Option<Vec<u8>>) -> Option<i64> {
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<i64>().ok())
}

/// Sets the expiry of a loaded partition from its `e` field (Unix milliseconds, empty for
/// none). A partition saved before the field existed has none, and a garbled one is not
/// trusted: the key's TTL answers instead.
async fn with_expiry<C: ConnectionLike + Clone + Send + Sync>(
    conn: &C,
    partition: &str,
    found: &mut Option<Versioned>,
    expires: Option<Vec<u8>>,
    backend: &'static str,
) -> Result<()> {
    let Some(loaded) = found else {
        return Ok(());
    };
    let recorded = match expires {
        Some(e) if e.is_empty() => Some(None),
        e => number(e).map(|ms| Some(ms.div_euclid(1000))),
    };
    loaded.expires_at = match recorded {
        Some(expires_at) => expires_at,
        None => {
            let ttl_ms: i64 = redis::cmd("PTTL")
                .arg(partition)
                .query_async(&mut conn.clone())
                .await
                .map_err(unavailable(backend))?;
            (ttl_ms >= 0).then(|| (crate::unix_now_ms() + ttl_ms).div_euclid(1000))
        }
    };
    Ok(())
}

/// The version first (a small reply); the partition only when it changed, which for an L1
/// that this process keeps up to date is rare.
async fn load_if_changed<C: ConnectionLike + Clone + Send + Sync>(
    reads: &impl Reads,
    conn: &C,
    k: &Keys,
    key: &str,
    known: u64,
    backend: &'static str,
) -> Result<IfChanged> {
    match version(reads, k, key, backend).await? {
        Some(v) if v == known => Ok(IfChanged::Unchanged),
        None => Ok(IfChanged::Changed(None)),
        Some(_) => Ok(IfChanged::Changed(
            load(reads, conn, k, key, backend).await?,
        )),
    }
}

async fn version(
    reads: &impl Reads,
    k: &Keys,
    key: &str,
    backend: &'static str,
) -> Result<Option<u64>> {
    let mut hget = Cmd::new();
    hget.arg("HGET").arg(k.partition(key)).arg("v");
    let v: Option<String> = reply(reads.read(hget).await?, backend)?;
    Ok(v.and_then(|v| v.parse().ok()))
}

async fn save<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    key: &str,
    document: &[u8],
    expected: Option<u64>,
    expires_at: Option<i64>,
    backend: &'static str,
) -> Result<SaveOutcome> {
    let version = new_version();
    let saved: i64 = k
        .save
        .key(k.partition(key))
        .arg(expected.map(|v| v.to_string()).unwrap_or_default())
        .arg(version.to_string())
        .arg(document)
        .arg(
            expires_at
                .map(|e| (e * 1000).to_string())
                .unwrap_or_default(),
        )
        .arg(crate::unix_now().to_string())
        .invoke_async(c)
        .await
        .map_err(unavailable(backend))?;
    if saved != 1 {
        return Ok(SaveOutcome::Conflict);
    }
    if expected.is_some() {
        // Already indexed when it was created: updates cost one round trip.
        return Ok(SaveOutcome::Saved(version));
    }
    // The index only serves listing (migration, inspection); a stale member is filtered out.
    let _: i64 = redis::cmd("SADD")
        .arg(k.index())
        .arg(key)
        .query_async(c)
        .await
        .map_err(unavailable(backend))?;
    Ok(SaveOutcome::Saved(version))
}

async fn delete<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    key: &str,
    expected: Option<u64>,
    backend: &'static str,
) -> Result<bool> {
    let n: i64 = k
        .delete
        .key(k.partition(key))
        .arg(expected.map(|v| v.to_string()).unwrap_or_default())
        .invoke_async(c)
        .await
        .map_err(unavailable(backend))?;
    if n > 0 {
        let _: i64 = redis::cmd("SREM")
            .arg(k.index())
            .arg(key)
            .query_async(c)
            .await
            .map_err(unavailable(backend))?;
    }
    Ok(n > 0)
}

async fn try_lease<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    key: &str,
    holder: &str,
    ttl: Duration,
    backend: &'static str,
) -> Result<bool> {
    let n: i64 = k
        .lease
        .key(k.lease_key(key))
        .arg(holder)
        .arg(ttl.as_millis().max(1) as u64)
        .invoke_async(c)
        .await
        .map_err(unavailable(backend))?;
    Ok(n == 1)
}

async fn release<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    key: &str,
    holder: &str,
    backend: &'static str,
) -> Result<()> {
    let _: i64 = k
        .release
        .key(k.lease_key(key))
        .arg(holder)
        .invoke_async(c)
        .await
        .map_err(unavailable(backend))?;
    Ok(())
}

async fn keys<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    backend: &'static str,
) -> Result<Vec<String>> {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(k.index())
        .query_async(c)
        .await
        .map_err(unavailable(backend))?;
    let mut live = Vec::with_capacity(members.len());
    for m in members {
        let exists: bool = redis::cmd("EXISTS")
            .arg(k.partition(&m))
            .query_async(c)
            .await
            .map_err(unavailable(backend))?;
        if exists {
            live.push(m);
        }
    }
    live.sort();
    Ok(live)
}

/// The leases held on the indexed partitions (a lease is only taken on a partition that holds
/// a refresh token, so the partition index covers them).
async fn leases<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    backend: &'static str,
) -> Result<Vec<Lease>> {
    let mut held = Vec::new();
    for partition in keys(c, k, backend).await? {
        let (holder, ttl_ms): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(k.lease_key(&partition))
            .cmd("PTTL")
            .arg(k.lease_key(&partition))
            .query_async(c)
            .await
            .map_err(unavailable(backend))?;
        if let (Some(holder), Ok(ms)) = (holder, u64::try_from(ttl_ms)) {
            held.push(Lease {
                partition,
                holder,
                expires_in: Duration::from_millis(ms),
            });
        }
    }
    Ok(held)
}

macro_rules! impl_store {
    ($ty:ty, $name:literal) => {
        impl PartitionBackend for $ty {
            fn backend(&self) -> &'static str {
                $name
            }

            fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
                Box::pin(async move { load(self, &self.conn, &self.keys, key, $name).await })
            }

            fn load_if_changed<'a>(
                &'a self,
                key: &'a str,
                known: u64,
            ) -> BoxFuture<'a, Result<IfChanged>> {
                Box::pin(async move {
                    load_if_changed(self, &self.conn, &self.keys, key, known, $name).await
                })
            }

            fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
                Box::pin(async move { version(self, &self.keys, key, $name).await })
            }

            fn save<'a>(
                &'a self,
                key: &'a str,
                document: &'a [u8],
                expected: Option<u64>,
                expires_at: Option<i64>,
            ) -> BoxFuture<'a, Result<SaveOutcome>> {
                let mut c = self.conn.clone();
                Box::pin(async move {
                    save(
                        &mut c, &self.keys, key, document, expected, expires_at, $name,
                    )
                    .await
                })
            }

            fn delete<'a>(
                &'a self,
                key: &'a str,
                expected: Option<u64>,
            ) -> BoxFuture<'a, Result<bool>> {
                let mut c = self.conn.clone();
                Box::pin(async move { delete(&mut c, &self.keys, key, expected, $name).await })
            }

            fn try_lease<'a>(
                &'a self,
                key: &'a str,
                holder: &'a str,
                ttl: Duration,
            ) -> BoxFuture<'a, Result<bool>> {
                let mut c = self.conn.clone();
                Box::pin(
                    async move { try_lease(&mut c, &self.keys, key, holder, ttl, $name).await },
                )
            }

            fn release_lease<'a>(
                &'a self,
                key: &'a str,
                holder: &'a str,
            ) -> BoxFuture<'a, Result<()>> {
                let mut c = self.conn.clone();
                Box::pin(async move { release(&mut c, &self.keys, key, holder, $name).await })
            }

            fn keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
                let mut c = self.conn.clone();
                Box::pin(async move { keys(&mut c, &self.keys, $name).await })
            }

            fn leases(&self) -> BoxFuture<'_, Result<Vec<Lease>>> {
                let mut c = self.conn.clone();
                Box::pin(async move { leases(&mut c, &self.keys, $name).await })
            }
        }
    };
}

/// Partitions in a standalone Redis (`redis://host:port/db`), through a connection manager
/// that reconnects after an outage. Loads and version checks made while others are on the
/// wire are sent together as one pipeline ([`RedisBackend::read_batches`] counts them).
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    batcher: Batcher,
    keys: Keys,
    url: String,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .finish()
    }
}

fn invalid(url: &str) -> impl Fn(redis::RedisError) -> StoreError + '_ {
    move |e| StoreError::InvalidUrl {
        url: redact_url(url),
        reason: e.to_string(),
    }
}

/// `TCP_NODELAY` on (the client library's default is off): requests are small and
/// latency-bound, and with Nagle's algorithm a request written while an earlier one is
/// unacknowledged may wait for that acknowledgement.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

impl RedisBackend {
    /// Connects; keys are prefixed `tokencache:`.
    ///
    /// `rediss://` connects with TLS, verifying the server's certificate and host name against
    /// the system's roots, or the CA in the PEM file a `tls_ca=PATH` parameter names.
    pub async fn connect(url: &str) -> Result<RedisBackend> {
        use redis::IntoConnectionInfo;
        let (plain_url, ca_file) = crate::tls::take_parameter(url, "tls_ca");
        let tls = plain_url.to_ascii_lowercase().starts_with("rediss://");
        if ca_file.is_some() && !tls {
            return Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: "tls_ca needs a rediss:// URL".into(),
            });
        }
        let info = plain_url
            .as_str()
            .into_connection_info()
            .map_err(invalid(url))?
            .set_tcp_settings(tcp_settings());
        let client = match ca_file {
            Some(path) if tls => {
                crate::tls::provider();
                // Read and checked here, so a bad file is named in the error.
                crate::tls::read_pem_certificates(&path)?;
                let pem = std::fs::read(&path).map_err(|e| StoreError::InvalidOptions {
                    reason: format!("cannot read the CA file {path}: {e}"),
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            _ => {
                if tls {
                    crate::tls::provider();
                }
                redis::Client::open(info)
            }
        }
        .map_err(invalid(url))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable("redis"))?;
        Ok(RedisBackend {
            batcher: Batcher::spawn(conn.clone()),
            conn,
            keys: Keys::new("tokencache:"),
            url: redact_url(url),
        })
    }
}

impl RedisBackend {
    /// How the loads and version checks went out so far: concurrent ones share a round trip.
    ///
    /// ```no_run
    /// # async fn f() -> tokencache_store::Result<()> {
    /// let store = tokencache_store::RedisBackend::connect("redis://127.0.0.1:6379/").await?;
    /// let sent = store.read_batches();
    /// println!("{} reads in {} round trips", sent.reads, sent.batches);
    /// # Ok(()) }
    /// ```
    pub fn read_batches(&self) -> ReadBatches {
        self.batcher.counts()
    }
}

impl_store!(RedisBackend, "redis");

/// Partitions in a Redis Cluster (`redis+cluster://host:port[,host:port…]`). Every operation
/// touches one key, so it runs on the node that owns it.
#[derive(Clone)]
pub struct RedisClusterBackend {
    conn: ClusterConnection,
    keys: Keys,
    url: String,
}

impl fmt::Debug for RedisClusterBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterBackend")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisClusterBackend {
    /// Connects to the cluster through any of its nodes.
    pub async fn connect(url: &str) -> Result<RedisClusterBackend> {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let nodes: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| format!("redis://{n}"))
            .collect();
        if nodes.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: "no nodes; expected redis+cluster://host:port[,host:port...]".into(),
            });
        }
        let client = redis::cluster::ClusterClientBuilder::new(nodes)
            .tcp_settings(tcp_settings())
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(5))
            .build()
            .map_err(invalid(url))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(unavailable("redis-cluster"))?;
        Ok(RedisClusterBackend {
            conn,
            keys: Keys::new("tokencache:"),
            url: redact_url(url),
        })
    }
}

impl_store!(RedisClusterBackend, "redis-cluster");
