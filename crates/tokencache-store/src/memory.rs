//! An in-process backend: for a single-process app, for tests, and as the server-side session
//! backend of small apps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokencache::access::BoxFuture;

use crate::backend::{Lease, PartitionBackend, SaveOutcome, Versioned, new_version};
use crate::error::Result;
use tokencache::{Clock, SystemClock};

#[derive(Debug)]
struct Slot {
    document: Vec<u8>,
    version: u64,
    expires_at: Option<i64>,
    created_at: i64,
}

/// Partitions in process memory. Nothing survives a restart and nothing is shared between
/// processes: use it for one-process apps (the web session case) and tests.
#[derive(Debug)]
pub struct MemoryBackend {
    partitions: Mutex<HashMap<String, Slot>>,
    leases: Mutex<HashMap<String, (String, i64)>>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            partitions: Mutex::default(),
            leases: Mutex::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Judges partition expiry (and stamps creation) by `clock` instead of the system clock,
    /// as [`PartitionOptions::clock`](crate::PartitionOptions::clock) does for the cache.
    /// Refresh leases keep to real time.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokencache::ManualClock;
    /// let clock = Arc::new(ManualClock::new(1_700_000_000));
    /// let store = tokencache_store::MemoryBackend::new().with_clock(clock.clone());
    /// ```
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MemoryBackend {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn partitions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn live(slot: &Slot, now: i64) -> bool {
    slot.expires_at.is_none_or(|e| e > now)
}

impl PartitionBackend for MemoryBackend {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        Box::pin(async move {
            let map = self.partitions();
            Ok(map
                .get(key)
                .filter(|s| live(s, self.now()))
                .map(|s| Versioned {
                    document: s.document.clone(),
                    version: s.version,
                    created_at: Some(s.created_at),
                    expires_at: s.expires_at,
                }))
        })
    }

    fn version<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let map = self.partitions();
            Ok(map
                .get(key)
                .filter(|s| live(s, self.now()))
                .map(|s| s.version))
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
            let mut map = self.partitions();
            let current = map
                .get(key)
                .filter(|s| live(s, self.now()))
                .map(|s| (s.version, s.created_at));
            if current.map(|c| c.0) != expected {
                return Ok(SaveOutcome::Conflict);
            }
            let created_at = current.map_or_else(|| self.now(), |c| c.1);
            let version = new_version();
            map.insert(
                key.to_owned(),
                Slot {
                    document: document.to_vec(),
                    version,
                    expires_at,
                    created_at,
                },
            );
            Ok(SaveOutcome::Saved(version))
        })
    }

    fn delete<'a>(&'a self, key: &'a str, expected: Option<u64>) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut map = self.partitions();
            let matches = map
                .get(key)
                .is_some_and(|s| expected.is_none_or(|v| v == s.version));
            Ok(matches && map.remove(key).is_some())
        })
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let now_ms = unix_now_ms();
            let mut leases = self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let free = leases
                .get(key)
                .is_none_or(|(h, until)| *until <= now_ms || h == holder);
            if free {
                leases.insert(
                    key.to_owned(),
                    (holder.to_owned(), now_ms + ttl.as_millis() as i64),
                );
            }
            Ok(free)
        })
    }

    fn release_lease<'a>(&'a self, key: &'a str, holder: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut leases = self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if leases.get(key).is_some_and(|(h, _)| h == holder) {
                leases.remove(key);
            }
            Ok(())
        })
    }

    fn leases(&self) -> BoxFuture<'_, Result<Vec<Lease>>> {
        Box::pin(async move {
            let now_ms = unix_now_ms();
            let leases = self
                .leases
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut held: Vec<Lease> = leases
                .iter()
                .filter(|(_, (_, until))| *until > now_ms)
                .map(|(key, (holder, until))| Lease {
                    partition: key.clone(),
                    holder: holder.clone(),
                    expires_in: Duration::from_millis(u64::try_from(until - now_ms).unwrap_or(0)),
                })
                .collect();
            held.sort_by(|a, b| a.partition.cmp(&b.partition));
            Ok(held)
        })
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let now = self.now();
            let mut keys: Vec<String> = self
                .partitions()
                .iter()
                .filter(|(_, s)| live(s, now))
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            Ok(keys)
        })
    }
}

pub(crate) fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
