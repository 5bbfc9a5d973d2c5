//! [`PartitionedCache`]: the [`CacheAccessor`] a web app gives its client application. Each
//! request loads only its user's partition; a save re-reads the partition, applies the change
//! and compares-and-sets, retrying on conflict, so concurrent requests never lose a token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokencache::access::{
    AccessError, AccessErrorKind, BoxFuture, CacheAccess, CacheAccessor, CacheChange, RefreshLease,
    ReleaseLease,
};
use tokencache::{PartitionKey, Section, TokenCache};

use crate::backend::{IfChanged, PartitionBackend, SaveOutcome, Versioned};
use crate::crypto::{PartitionKeys, is_encrypted};
use crate::error::{Result, StoreError};
use crate::l1::L1;
use crate::recent::RecentLoads;
use tokencache::Clock;

/// What to do when the store (L2) cannot be reached while loading a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Answer as if the partition were empty: silent calls then ask for a sign-in.
    TreatAsMiss,
    /// Fail the request with the store's error.
    Fail,
    /// Retry for up to this long, then fail.
    RetryFor(Duration),
}

/// What a save does with a stored partition that cannot be used although it needs no key it
/// lacks: a document that does not parse, or (under keys) one stored in plain text, which
/// anyone able to write the row could have planted. A partition that cannot be *decrypted*
/// (a missing or wrong key) is never touched: that is a configuration problem, and every
/// operation on it fails with [`StoreError::Unreadable`] until the key is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptPartition {
    /// Copy the document to `<partition>#set-aside-<unix time>` (kept 30 days, for a person to
    /// look at), log an error, and save as if the partition were empty: the user signs in
    /// again instead of being locked out. Loads still report the partition as unreadable until
    /// a save replaces it.
    #[default]
    SetAside,
    /// Fail every save with [`StoreError::Unreadable`] until someone repairs or deletes it.
    Fail,
}

/// How long a set-aside copy of a corrupt partition is kept.
const SET_ASIDE_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a [`PartitionedCache`] behaves.
#[derive(Clone, Debug)]
pub struct PartitionOptions {
    /// Expiry of user partitions, renewed on every save (sliding). `None`: never. App-token
    /// partitions always expire with their last access token; empty partitions are deleted.
    pub user_expiry: Option<Duration>,
    /// A cap on a user partition's life, counted from its creation (absolute): the user signs
    /// in again after it, however active. `None`: no cap.
    pub user_absolute_expiry: Option<Duration>,
    /// The in-process L1: its size in bytes of cache documents (0 turns it off) and how long an
    /// entry lives. Every L1 hit is validated against the store's version first.
    pub l1_bytes: usize,
    /// L1 entry lifetime.
    pub l1_ttl: Duration,
    /// When the store cannot be reached on load.
    pub failure_policy: FailurePolicy,
    /// Encrypt stored partitions.
    pub encryption: Option<PartitionKeys>,
    /// How long a refresh lease lasts (a crashed holder frees it after this).
    pub lease_ttl: Duration,
    /// Compare-and-set attempts before giving up.
    pub max_attempts: u32,
    /// What a save does with a partition that does not parse (or is plain text under keys).
    pub corrupt: CorruptPartition,
    /// The time partition expiries are computed from (the core's [`Clock`]); tests use a
    /// [`tokencache::ManualClock`]. Give the backend the same clock
    /// ([`crate::MemoryBackend::with_clock`], [`crate::open_with_clock`]) so that it agrees on
    /// what has expired.
    pub clock: Arc<dyn Clock>,
}

impl Default for PartitionOptions {
    fn default() -> Self {
        PartitionOptions {
            user_expiry: Some(Duration::from_secs(90 * 24 * 3600)),
            user_absolute_expiry: None,
            l1_bytes: 0,
            l1_ttl: Duration::from_secs(300),
            failure_policy: FailurePolicy::Fail,
            encryption: None,
            lease_ttl: Duration::from_secs(10),
            max_attempts: 32,
            corrupt: CorruptPartition::SetAside,
            clock: Arc::new(tokencache::SystemClock),
        }
    }
}

/// Counters, for dashboards and tests ([`PartitionedCache::metrics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    /// Loads answered from the L1 (after a version check).
    pub l1_hits: u64,
    /// Loads that read the partition from the store.
    pub l2_loads: u64,
    /// Successful saves (including deletes of emptied partitions).
    pub saves: u64,
    /// Compare-and-set conflicts (each was retried).
    pub conflicts: u64,
    /// Store failures, whatever the policy did with them.
    pub l2_failures: u64,
    /// Loads answered as empty because of [`FailurePolicy::TreatAsMiss`].
    pub treated_as_miss: u64,
    /// Refresh leases that had to wait for another holder.
    pub lease_waits: u64,
}

#[derive(Debug, Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_loads: AtomicU64,
    saves: AtomicU64,
    conflicts: AtomicU64,
    l2_failures: AtomicU64,
    treated_as_miss: AtomicU64,
    lease_waits: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A token cache kept as one partition per user (and per app, per OBO assertion) in a
/// [`PartitionBackend`]: the core's [`CacheAccessor`], so give it to a client application
/// (`tokencache_client`'s `AppBuilder::cache_accessor`).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// use std::sync::Arc;
/// use tokencache::{CacheAccess, CacheAccessor, PartitionKey, TokenCache};
/// use tokencache_store::{PartitionOptions, PartitionedCache};
/// let store = tokencache_store::open("memory://").await?;
/// let cache: Arc<dyn CacheAccessor> = Arc::new(PartitionedCache::new(store, PartitionOptions::default()));
/// // What a client application does on a request for alice:
/// let alice = PartitionKey::for_account("alice.tenant");
/// let access = CacheAccess { client_id: "my-web-app", partition_key: Some(&alice) };
/// let partition = cache.load(access).await?;
/// assert_eq!(partition.len(tokencache::Section::AccessToken), 0, "alice has not signed in");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }) }
/// ```
#[derive(Debug)]
pub struct PartitionedCache {
    store: Arc<dyn PartitionBackend>,
    options: PartitionOptions,
    l1: Option<L1>,
    counters: Counters,
    instance: String,
    next_holder: AtomicU64,
    recent: RecentLoads,
    /// One turn at a time per partition for this process's saves (see [`WriterTurn`]).
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PartitionedCache {
    /// A cache over `store`.
    pub fn new(store: Arc<dyn PartitionBackend>, options: PartitionOptions) -> PartitionedCache {
        let l1 = (options.l1_bytes > 0).then(|| L1::new(options.l1_bytes, options.l1_ttl));
        PartitionedCache {
            store,
            options,
            l1,
            counters: Counters::default(),
            instance: format!("{:016x}", crate::backend::new_version()),
            next_holder: AtomicU64::new(0),
            recent: RecentLoads::default(),
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Now, by the options' clock (Unix seconds).
    fn now(&self) -> i64 {
        self.options.clock.now()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn PartitionBackend> {
        &self.store
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> StoreMetrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreMetrics {
            l1_hits: get(&c.l1_hits),
            l2_loads: get(&c.l2_loads),
            saves: get(&c.saves),
            conflicts: get(&c.conflicts),
            l2_failures: get(&c.l2_failures),
            treated_as_miss: get(&c.treated_as_miss),
            lease_waits: get(&c.lease_waits),
        }
    }

    /// The cache of one partition (empty when absent), through the L1 and the failure policy.
    pub async fn load_partition(&self, key: &PartitionKey) -> Result<Arc<TokenCache>> {
        let started = Instant::now();
        loop {
            match self.try_load(key.as_str()).await {
                Ok(cache) => return Ok(cache),
                Err(e) if e.is_unavailable() => {
                    bump(&self.counters.l2_failures);
                    match self.options.failure_policy {
                        FailurePolicy::TreatAsMiss => {
                            bump(&self.counters.treated_as_miss);
                            tracing::warn!(error = %e, partition = key.as_str(), "token store unavailable; treating the partition as empty");
                            return Ok(Arc::new(TokenCache::new()));
                        }
                        FailurePolicy::RetryFor(budget) if started.elapsed() < budget => {
                            tracing::warn!(error = %e, "token store unavailable; retrying");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        _ => {
                            tracing::error!(error = %e, partition = key.as_str(), "token store unavailable");
                            return Err(e);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_load(&self, key: &str) -> Result<Arc<TokenCache>> {
        let stored = match self.l1.as_ref().and_then(|l1| l1.get(key)) {
            Some((version, cache)) => {
                // Coherent by version, in one round trip: a sign-out elsewhere (deleted
                // partition) or a newer save elsewhere replaces the copy.
                match self.store.load_if_changed(key, version).await? {
                    IfChanged::Unchanged => {
                        bump(&self.counters.l1_hits);
                        return Ok(cache);
                    }
                    IfChanged::Changed(stored) => {
                        if let Some(l1) = &self.l1 {
                            l1.remove(key);
                        }
                        stored
                    }
                }
            }
            None => self.store.load(key).await?,
        };
        bump(&self.counters.l2_loads);
        let Some(stored) = stored else {
            return Ok(Arc::new(TokenCache::new()));
        };
        let cache = Arc::new(self.decode(key, &stored)?);
        if let Some(l1) = &self.l1 {
            l1.put(key, stored.version, cache.clone(), stored.document.len());
        }
        // The starting point of a save that may follow in the same request.
        drop(self.recent.remember(key, stored));
        Ok(cache)
    }

    /// A stored partition as this cache reads it: decrypted with its keys, without entries of
    /// other partitions. For tools that walk a store ([`PartitionBackend::keys`], then
    /// [`PartitionBackend::load`]) and want each partition as the application sees it, from
    /// the one read.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// use tokencache::PartitionKey;
    /// use tokencache_store::{PartitionOptions, PartitionedCache};
    /// let store = tokencache_store::open("memory://").await?;
    /// let cache = PartitionedCache::new(store.clone(), PartitionOptions::default());
    /// for key in store.keys().await? {
    ///     if let Some(stored) = store.load(&key).await? {
    ///         let partition = cache.decode_partition(&PartitionKey::new(key), &stored)?;
    ///         println!("{} access tokens", partition.len(tokencache::Section::AccessToken));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }) }
    /// ```
    pub fn decode_partition(&self, key: &PartitionKey, stored: &Versioned) -> Result<TokenCache> {
        self.decode(key.as_str(), stored)
    }

    fn decode(&self, key: &str, stored: &Versioned) -> Result<TokenCache> {
        Ok(self.decode_stored(key, stored)?.0)
    }

    /// The partition's cache, and whether the stored document held nothing but the
    /// partition's entries.
    fn decode_stored(&self, key: &str, stored: &Versioned) -> Result<(TokenCache, bool)> {
        let unreadable = |reason: String| StoreError::Unreadable {
            partition: key.to_owned(),
            reason,
        };
        let plain;
        let bytes: &[u8] = if is_encrypted(&stored.document) {
            let keys = self.options.encryption.as_ref().ok_or_else(|| {
                unreadable(format!(
                    "the partition is encrypted (key id {:?}) and no keys are configured",
                    crate::crypto::encrypted_key_id(&stored.document).unwrap_or_default()
                ))
            })?;
            plain = keys.decrypt(key, &stored.document)?;
            &plain
        } else {
            if let Some(keys) = &self.options.encryption
                && !keys.accepts_plaintext()
            {
                return Err(unreadable(
                    "stored in plain text, but keys are configured: refusing it (it may have been planted); to encrypt a store written without keys, run `tokencache encrypt URL --key-id ID`".into(),
                ));
            }
            &stored.document
        };
        let text = std::str::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
        let cache = TokenCache::from_json(text).map_err(|e| unreadable(e.to_string()))?;
        // Only this partition's entries ever reach a request.
        let own = PartitionKey::new(key);
        if !cache.holds_only(&own) {
            tracing::warn!(
                partition = key,
                "a stored partition held other partitions' entries; ignoring them"
            );
            let own_only = TokenCache::from_json(&cache.serialize_partition(&own))
                .map_err(|e| unreadable(e.to_string()))?;
            return Ok((own_only, false));
        }
        Ok((cache, true))
    }

    /// True when `document` is encrypted under the key saves use, or plain when they write
    /// plain text.
    fn encrypted_as_configured(&self, document: &[u8]) -> bool {
        match &self.options.encryption {
            Some(keys) if !keys.writes_plain_text() => {
                crate::crypto::is_encrypted_under(document, keys.current_id())
            }
            _ => !is_encrypted(document),
        }
    }

    /// Whether a stored document that did not decode is corrupt (it needs no key this cache
    /// lacks) rather than locked by a key.
    fn is_corrupt(&self, key: &str, stored: &Versioned) -> bool {
        if !is_encrypted(&stored.document) {
            return true;
        }
        self.options
            .encryption
            .as_ref()
            .is_some_and(|keys| keys.decrypt(key, &stored.document).is_ok())
    }

    /// Keeps a copy of a corrupt partition's document beside it, for 30 days.
    async fn set_aside(&self, key: &str, stored: &Versioned, why: &StoreError) -> Result<()> {
        let now = self.now();
        let mut copy = format!("{key}#set-aside-{now}");
        for n in 1.. {
            let until = now.saturating_add(SET_ASIDE_KEPT.as_secs() as i64);
            match self
                .store
                .save(&copy, &stored.document, None, Some(until))
                .await?
            {
                SaveOutcome::Saved(_) => break,
                SaveOutcome::Conflict if n < 10 => copy = format!("{key}#set-aside-{now}-{n}"),
                SaveOutcome::Conflict => {
                    return Err(StoreError::Contention {
                        partition: key.to_owned(),
                        attempts: n,
                    });
                }
            }
        }
        tracing::error!(partition = key, copy = %copy, error = %why, "a stored partition cannot be used; set it aside and starting it empty");
        Ok(())
    }

    fn encode(&self, key: &str, cache: &TokenCache) -> Result<Vec<u8>> {
        let text = cache.serialize();
        match &self.options.encryption {
            Some(keys) if !keys.writes_plain_text() => {
                // The plaintext copy is wiped once sealed.
                let text = tokencache::seal::Zeroizing::new(text);
                keys.encrypt(key, text.as_bytes())
            }
            _ => Ok(text.into_bytes()),
        }
    }

    /// The expiry a save sets: an app-token partition's last access token's; a user
    /// partition's as `expiry` says.
    fn expires_at(
        &self,
        key: &str,
        cache: &TokenCache,
        current: Option<&Versioned>,
        expiry: SaveExpiry,
    ) -> Option<i64> {
        if key.ends_with("_AppTokenCache") {
            return cache
                .all_access_tokens()
                .iter()
                .filter_map(|at| at.expires_on())
                .max();
        }
        match (expiry, current) {
            (SaveExpiry::At(at), _) => return at,
            (SaveExpiry::Keep, Some(current)) => return current.expires_at,
            (SaveExpiry::Keep | SaveExpiry::Renew, _) => {}
        }
        let now = self.now();
        let sliding = self.options.user_expiry.map(|d| now + d.as_secs() as i64);
        let absolute = self
            .options
            .user_absolute_expiry
            .map(|d| current.and_then(|c| c.created_at).unwrap_or(now) + d.as_secs() as i64);
        match (sliding, absolute) {
            (Some(s), Some(a)) => Some(s.min(a)),
            (s, a) => s.or(a),
        }
    }

    /// Applies `change` to the partition `key` with compare-and-set, retrying on conflict;
    /// deletes the partition when it ends up empty. A user partition's sliding expiry starts
    /// again, as with every save a request makes. Writes nothing when the change changed
    /// nothing and the expiry stays as it was ([`Updated::Unchanged`]).
    pub async fn update_partition(
        &self,
        key: &PartitionKey,
        change: &(dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync),
    ) -> Result<Updated> {
        self.update(key, change, SaveExpiry::Renew).await
    }

    /// [`update_partition`](Self::update_partition) with a say in a user partition's expiry:
    /// [`SaveExpiry::Keep`] for maintenance (pruning, re-encrypting, repairing), so that it
    /// never keeps an idle user's tokens longer, or [`SaveExpiry::At`] to carry a partition's
    /// expiry over from another store (migration). An app-token partition still expires with
    /// its last access token.
    ///
    /// A change that changes nothing writes nothing, unless the stored document is not as
    /// these options would write it: encrypted under another key (or not at all), or holding
    /// entries of other partitions. So a no-op change re-encrypts a partition after a key
    /// rotation, and a prune that finds nothing to remove leaves the partition alone.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// use tokencache::{PartitionKey, TokenCache};
    /// use tokencache_store::{PartitionOptions, PartitionedCache, SaveExpiry};
    /// let cache = PartitionedCache::new(tokencache_store::open("memory://").await?, PartitionOptions::default());
    /// let key = PartitionKey::for_account("uid.utid");
    /// let prune = |c: &TokenCache| {
    ///     c.purge_expired_access_tokens(1_700_000_000);
    ///     Ok(())
    /// };
    /// let updated = cache.update_partition_with(&key, &prune, SaveExpiry::Keep).await?;
    /// assert_eq!(updated, tokencache_store::Updated::Unchanged, "nothing was there");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }) }
    /// ```
    pub async fn update_partition_with(
        &self,
        key: &PartitionKey,
        change: &(dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync),
        expiry: SaveExpiry,
    ) -> Result<Updated> {
        self.update(key, change, expiry).await
    }

    async fn update(
        &self,
        key: &PartitionKey,
        change: &(dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync),
        expiry: SaveExpiry,
    ) -> Result<Updated> {
        // Saves of this process to one partition take turns: they would only conflict with
        // each other, and each starts from the document the one before it saved. Saves of
        // other processes are still settled by compare-and-set.
        let turn = WriterTurn::new(&self.writers, key.as_str());
        let _mine = turn.lock.lock().await;
        self.update_in_turn(key, change, expiry).await
    }

    async fn update_in_turn(
        &self,
        key: &PartitionKey,
        change: &(dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync),
        expiry: SaveExpiry,
    ) -> Result<Updated> {
        let key_str = key.as_str();
        // The first attempt starts from the document this process loaded moments ago, if any
        // (see `recent.rs`); a conflict then reloads.
        let mut remembered = self.recent.take(key_str);
        // A start from memory that turns out stale does not count as an attempt.
        let attempts = self.options.max_attempts + u32::from(remembered.is_some());
        for attempt in 0..attempts {
            let from_memory = remembered.is_some();
            let current = match remembered.take() {
                Some(loaded) => Some(loaded),
                None => self.store.load(key_str).await?,
            };
            match self.attempt(key, change, expiry, current).await? {
                Attempt::Saved {
                    version,
                    len,
                    cache,
                } => {
                    bump(&self.counters.saves);
                    if let Some(l1) = &self.l1 {
                        l1.put(key_str, version, cache, len);
                    }
                    return Ok(Updated::Saved);
                }
                Attempt::Deleted => {
                    bump(&self.counters.saves);
                    if let Some(l1) = &self.l1 {
                        l1.remove(key_str);
                    }
                    self.recent.forget(key_str);
                    return Ok(Updated::Deleted);
                }
                Attempt::Unchanged if from_memory => {
                    // Nothing to write from this process's copy; the store's may be newer.
                }
                Attempt::Unchanged => return Ok(Updated::Unchanged),
                Attempt::Conflict if from_memory => {
                    tracing::debug!(
                        partition = key_str,
                        "the partition changed since this process loaded it; reloading"
                    );
                }
                Attempt::Conflict => {
                    bump(&self.counters.conflicts);
                    tracing::debug!(partition = key_str, attempt, "save conflicted; reloading");
                    // Spread the retries of concurrent writers.
                    let jitter = crate::backend::new_version() % (2 + u64::from(attempt) * 3);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
        }
        Err(StoreError::Contention {
            partition: key_str.to_owned(),
            attempts: self.options.max_attempts,
        })
    }

    /// One compare-and-set attempt: `change` applied to `current` (the stored partition, or
    /// `None` when there is none), written if it changed anything.
    async fn attempt(
        &self,
        key: &PartitionKey,
        change: &(dyn Fn(&TokenCache) -> Result<(), tokencache::Error> + Send + Sync),
        expiry: SaveExpiry,
        current: Option<Versioned>,
    ) -> Result<Attempt> {
        let key_str = key.as_str();
        // Whether the stored document is as this save would write it again: only the
        // partition's entries, encrypted as the options say.
        let (cache, stored_as_written) = match &current {
            Some(stored) => match self.decode_stored(key_str, stored) {
                Ok((cache, own_only)) => {
                    let as_written = own_only && self.encrypted_as_configured(&stored.document);
                    (cache, as_written)
                }
                Err(e)
                    if self.options.corrupt == CorruptPartition::SetAside
                        && self.is_corrupt(key_str, stored) =>
                {
                    self.set_aside(key_str, stored, &e).await?;
                    (TokenCache::new(), false)
                }
                Err(e) => return Err(e),
            },
            None => (TokenCache::new(), true),
        };
        change(&cache)?;
        if !cache.holds_only(key)
            && let Some(other) = cache.partition_keys().into_iter().find(|k| k != key)
        {
            return Err(StoreError::Isolation {
                partition: key_str.to_owned(),
                other: other.as_str().to_owned(),
            });
        }
        let expected = current.as_ref().map(|c| c.version);
        if is_empty(&cache) {
            return Ok(match expected {
                None => Attempt::Unchanged,
                Some(v) if self.store.delete(key_str, Some(v)).await? => Attempt::Deleted,
                Some(_) => Attempt::Conflict,
            });
        }
        let expires_at = self.expires_at(key_str, &cache, current.as_ref(), expiry);
        let unchanged = stored_as_written
            && !cache.has_state_changed()
            && current.as_ref().is_some_and(|c| c.expires_at == expires_at);
        if unchanged {
            return Ok(Attempt::Unchanged);
        }
        let document = self.encode(key_str, &cache)?;
        match self
            .store
            .save(key_str, &document, expected, expires_at)
            .await?
        {
            SaveOutcome::Saved(version) => {
                let created_at = current.as_ref().map_or(Some(self.now()), |c| c.created_at);
                let len = document.len();
                drop(self.recent.remember(
                    key_str,
                    Versioned {
                        document,
                        version,
                        created_at,
                        expires_at,
                    },
                ));
                Ok(Attempt::Saved {
                    version,
                    len,
                    cache: Arc::new(cache),
                })
            }
            SaveOutcome::Conflict => Ok(Attempt::Conflict),
        }
    }

    /// Deletes a partition (sign-out).
    pub async fn delete_partition(&self, key: &PartitionKey) -> Result<bool> {
        self.recent.forget(key.as_str());
        let deleted = self.store.delete(key.as_str(), None).await?;
        if let Some(l1) = &self.l1 {
            l1.remove(key.as_str());
        }
        Ok(deleted)
    }

    async fn acquire_lease(&self, key: &str) -> Result<HeldLease> {
        let holder = format!(
            "{}-{}",
            self.instance,
            self.next_holder.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + self.options.lease_ttl * 2;
        let mut waited = false;
        loop {
            if self
                .store
                .try_lease(key, &holder, self.options.lease_ttl)
                .await?
            {
                return Ok(HeldLease {
                    store: self.store.clone(),
                    key: key.to_owned(),
                    holder,
                });
            }
            if !waited {
                waited = true;
                bump(&self.counters.lease_waits);
            }
            if Instant::now() > deadline {
                return Err(StoreError::Contention {
                    partition: key.to_owned(),
                    attempts: 0,
                });
            }
            let jitter = crate::backend::new_version() % 20;
            tokio::time::sleep(Duration::from_millis(10 + jitter)).await;
        }
    }
}

/// A place in the queue of this process's saves to one partition. The queue's entry is
/// removed when the last save waiting on it is done (or dropped), so the map holds only
/// partitions being saved.
struct WriterTurn<'a> {
    writers: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    key: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> WriterTurn<'a> {
    fn new(
        writers: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
        key: &'a str,
    ) -> WriterTurn<'a> {
        let lock = writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone();
        WriterTurn { writers, key, lock }
    }
}

impl Drop for WriterTurn<'_> {
    fn drop(&mut self) {
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Clones are only made under this lock: two means the map's and ours.
        if Arc::strong_count(&self.lock) == 2 {
            writers.remove(self.key);
        }
    }
}

/// What one compare-and-set attempt of an update came to.
enum Attempt {
    /// The partition was written at `version`.
    Saved {
        version: u64,
        len: usize,
        cache: Arc<TokenCache>,
    },
    /// The change emptied the partition, and it was deleted.
    Deleted,
    /// Nothing to write: the change left the partition as stored (or absent and empty).
    Unchanged,
    /// Another writer saved first.
    Conflict,
}

/// True when `cache` holds no token and no account (app metadata alone is not kept).
fn is_empty(cache: &TokenCache) -> bool {
    [
        Section::AccessToken,
        Section::RefreshToken,
        Section::IdToken,
        Section::Account,
    ]
    .iter()
    .all(|s| cache.len(*s) == 0)
}

/// What [`PartitionedCache::update_partition`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Updated {
    /// The partition was written (created or replaced).
    Saved,
    /// The change left the partition empty, so it was deleted.
    Deleted,
    /// Nothing was written: the change left the partition as it was stored (same entries,
    /// same expiry, same encryption), or left a partition that did not exist empty.
    Unchanged,
}

/// How a save sets a user partition's expiry
/// ([`PartitionedCache::update_partition_with`]). An app-token partition always expires with
/// its last access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveExpiry {
    /// From the options: the sliding expiry starts again (capped by the absolute one). What
    /// every save a request makes does.
    Renew,
    /// The expiry the partition has (as [`Renew`](Self::Renew) when it does not exist yet).
    Keep,
    /// This one (Unix seconds; `None`: never).
    At(Option<i64>),
}

fn missing_partition() -> AccessError {
    AccessError::new(
        AccessErrorKind::NeedsPartition,
        "a partitioned store needs a partition key (sign the user in first; listing accounts across partitions is not supported)",
    )
}

impl CacheAccessor for PartitionedCache {
    fn load<'a>(
        &'a self,
        access: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Arc<TokenCache>, AccessError>> {
        Box::pin(async move {
            match access.partition_key {
                Some(key) => Ok(self.load_partition(key).await?),
                // Listing accounts across users is not a per-request operation.
                None => Ok(Arc::new(TokenCache::new())),
            }
        })
    }

    fn save<'a>(
        &'a self,
        access: CacheAccess<'a>,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move {
            let key = access.partition_key.ok_or_else(missing_partition)?;
            self.update_partition(key, &*change).await?;
            Ok(())
        })
    }

    fn refresh_lease<'a>(
        &'a self,
        access: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Option<RefreshLease>, AccessError>> {
        Box::pin(async move {
            let Some(key) = access.partition_key else {
                return Ok(None);
            };
            match self.acquire_lease(key.as_str()).await {
                Ok(held) => Ok(Some(RefreshLease::new(Box::new(held)))),
                Err(e)
                    if e.is_unavailable()
                        && self.options.failure_policy == FailurePolicy::TreatAsMiss =>
                {
                    bump(&self.counters.l2_failures);
                    tracing::warn!(error = %e, "no refresh lease (store unavailable); refreshing without one");
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}

/// A refresh lease this process holds in the store, given back by [`RefreshLease`].
struct HeldLease {
    store: Arc<dyn PartitionBackend>,
    key: String,
    holder: String,
}

impl ReleaseLease for HeldLease {
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<(), AccessError>> {
        Box::pin(async move {
            self.store.release_lease(&self.key, &self.holder).await?;
            Ok(())
        })
    }

    fn release_in_background(self: Box<Self>) {
        // A cancelled call: give the lease back on the runtime it was taken on. Without one
        // (the runtime is shutting down) the lease expires after its TTL.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = self.store.release_lease(&self.key, &self.holder).await {
                        tracing::warn!(error = %e, partition = self.key, "could not release an abandoned refresh lease; it expires on its own");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    partition = self.key,
                    "a refresh lease was abandoned outside a runtime; it expires on its own"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;

    fn waiting(cache: &PartitionedCache) -> usize {
        cache.writers.lock().unwrap().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_of_a_partition_goes_when_its_saves_are_done_or_dropped() {
        let cache = Arc::new(PartitionedCache::new(
            Arc::new(crate::MemoryBackend::new()),
            PartitionOptions::default(),
        ));
        let key = PartitionKey::new("alice.t");
        let saves: Vec<_> = (0..8)
            .map(|_| {
                let (cache, key) = (cache.clone(), key.clone());
                tokio::spawn(async move { cache.update_partition(&key, &|_| Ok(())).await })
            })
            .collect();
        for save in saves {
            save.await.unwrap().unwrap();
        }
        assert_eq!(waiting(&cache), 0);

        // A save abandoned while it waits for its turn leaves nothing behind either.
        let turn = WriterTurn::new(&cache.writers, key.as_str());
        let held = turn.lock.lock().await;
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            cache.update_partition(&key, &|_| Ok(())),
        )
        .await;
        assert!(abandoned.is_err(), "it waited for the turn held above");
        assert_eq!(waiting(&cache), 1, "the held turn is still queued");
        drop(held);
        drop(turn);
        assert_eq!(waiting(&cache), 0);
    }
}
