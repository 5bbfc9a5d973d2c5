//! `NativeStore`: a partitioned store (SQLite, PostgreSQL, Redis, Redis Cluster, memory) for
//! the Python package's per-user caches, and `NativeLease`, a refresh lease held in it.
//!
//! The store's clients are async (tokio); every call here blocks on a runtime of the store's
//! own with the GIL released, driving its own I/O on the calling thread. The runtime and the
//! connections are made at the first call in each process: a store object created before
//! `fork` (gunicorn's preload) opens its own in every worker instead of using the parent's,
//! whose threads do not exist there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokencache::json::JsonObject;
use tokencache::{
    CacheAccess, CacheAccessor, Entry, PartitionKey, RefreshLease, Section, TokenCache, TokenEvent,
    partition_key,
};
use tokencache_file::KeySource;
use tokencache_store::{
    FailurePolicy, PartitionKeys, PartitionOptions, PartitionedCache, StoreError,
};
use tokio::runtime::Runtime;

use crate::{
    EncryptionError, NativeCache, StorageError, StoreUnavailableError, cache_error, file_error,
    object, section,
};

/// A store error as a Python exception.
fn store_error(e: StoreError) -> PyErr {
    let message = e.to_string();
    match e {
        StoreError::Unavailable { .. } => StoreUnavailableError::new_err(message),
        StoreError::Encryption { .. } | StoreError::Key { .. } => EncryptionError::new_err(message),
        StoreError::InvalidUrl { .. } | StoreError::InvalidOptions { .. } => {
            PyValueError::new_err(message)
        }
        _ => StorageError::new_err(message),
    }
}

/// An error of the cache-access contract (a refresh lease) as a Python exception.
fn access_error(e: tokencache::AccessError) -> PyErr {
    match e.kind() {
        tokencache::AccessErrorKind::Unavailable => StoreUnavailableError::new_err(e.to_string()),
        _ => StorageError::new_err(e.to_string()),
    }
}

/// Why the store could not be opened in this process.
enum Unopened {
    /// It cannot be reached (the failure policy decides).
    Unavailable(StoreError),
    /// Anything else (a bad URL, options).
    Other(PyErr),
}

impl From<Unopened> for PyErr {
    fn from(e: Unopened) -> PyErr {
        match e {
            Unopened::Unavailable(e) => store_error(e),
            Unopened::Other(e) => e,
        }
    }
}

/// The store in this process: its runtime and the partitioned cache over its connections.
struct Opened {
    pid: u32,
    runtime: Arc<Runtime>,
    cache: Arc<PartitionedCache>,
}

/// What this process's calls run on.
#[derive(Clone)]
struct Live {
    runtime: Arc<Runtime>,
    cache: Arc<PartitionedCache>,
}

impl Live {
    /// Runs `work` to completion on the calling thread (see [`NativeStore::live`]).
    fn block_on<F: std::future::Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }
}

/// A partitioned store, opened from a URL.
#[pyclass(frozen, module = "tokencache._native")]
pub(crate) struct NativeStore {
    url: String,
    options: PartitionOptions,
    opened: Mutex<Option<Opened>>,
}

impl NativeStore {
    /// This process's runtime and cache, opened at the first call (and again after a fork).
    /// Called with the GIL released: opening connects to the store.
    fn live(&self) -> Result<Live, Unopened> {
        let mut opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = std::process::id();
        if let Some(o) = opened.as_ref().filter(|o| o.pid == pid) {
            return Ok(Live {
                runtime: o.runtime.clone(),
                cache: o.cache.clone(),
            });
        }
        if let Some(inherited) = opened.take() {
            // The parent's runtime, inherited through fork: its threads do not exist here, so
            // it cannot be shut down; it is left alone (a little memory per worker).
            std::mem::forget(inherited);
        }
        // A runtime without worker threads: a call drives its own I/O on the calling thread
        // (Python's, the GIL released), as a blocking client would, instead of handing every
        // request and answer to a runtime thread and back (measured in a gunicorn worker: three
        // context switches and about 0.3 ms of CPU more per request). Calls from
        // several Python threads at once are supported: one drives the I/O for all; tasks the
        // clients spawn (a connection's driver, a lease given back in the background) run
        // while any call is in progress.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name("tokencache-store")
            .enable_all()
            .build()
            .map(Arc::new)
            .map_err(|e| {
                Unopened::Other(StorageError::new_err(format!(
                    "cannot start the store's runtime: {e}"
                )))
            })?;
        let store = runtime
            .block_on(tokencache_store::open(&self.url))
            .map_err(|e| match e {
                StoreError::Unavailable { .. } => Unopened::Unavailable(e),
                other => Unopened::Other(store_error(other)),
            })?;
        let cache = Arc::new(PartitionedCache::new(store, self.options.clone()));
        let live = Live {
            runtime: runtime.clone(),
            cache: cache.clone(),
        };
        *opened = Some(Opened {
            pid,
            runtime,
            cache,
        });
        Ok(live)
    }

    /// Runs `work` against the store, the GIL released. A store that was down and is back
    /// fails the first call after its return (the connection is re-made then), so an
    /// unavailable store is tried once more before the error is reported. Every operation
    /// here may run twice: a load, a compare-and-set of the same change, a delete.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        work: impl Fn(&Live) -> Result<R, StoreError> + Send + Sync,
    ) -> PyResult<R> {
        py.detach(|| {
            let live = self.live()?;
            match work(&live) {
                Err(e) if e.is_unavailable() => {
                    std::thread::sleep(Duration::from_millis(50));
                    work(&live).map_err(store_error)
                }
                other => other.map_err(store_error),
            }
        })
    }
}

/// The partition a token response belongs to (`None`: it holds nothing of a user's or an
/// app's, only app metadata).
fn event_partition(event: &TokenEvent, now: i64) -> PyResult<Option<PartitionKey>> {
    let scratch = TokenCache::new();
    scratch.add_at(event, now).map_err(cache_error)?;
    let mut keys = scratch.partition_keys();
    match keys.len() {
        0 | 1 => Ok(keys.pop()),
        _ => Err(PyValueError::new_err(
            "a token response spanning several partitions cannot be stored per user",
        )),
    }
}

#[pymethods]
impl NativeStore {
    /// A store at `url` (`sqlite:///path`, `sqlite://path`, `postgres://…`, `redis://…`,
    /// `rediss://…`, `redis+cluster://…`, `memory://`); nothing is connected until the first
    /// call.
    #[staticmethod]
    #[pyo3(signature = (url, *, key_file=None, key_env=None, key_id="default", previous_key_file=None, previous_key_id=None, failure_policy="fail", user_expiry=None, lease_ttl=None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn open(
        url: String,
        key_file: Option<std::path::PathBuf>,
        key_env: Option<String>,
        key_id: &str,
        previous_key_file: Option<std::path::PathBuf>,
        previous_key_id: Option<String>,
        failure_policy: &str,
        user_expiry: Option<f64>,
        lease_ttl: Option<f64>,
    ) -> PyResult<NativeStore> {
        let seconds = |v: f64, what: &str| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| PyValueError::new_err(format!("{what} must be a number of seconds")))
        };
        let failure_policy = match failure_policy {
            "fail" => FailurePolicy::Fail,
            "treat_as_miss" => FailurePolicy::TreatAsMiss,
            other => {
                return Err(PyValueError::new_err(format!(
                    "failure_policy must be \"fail\" or \"treat_as_miss\", not {other:?}"
                )));
            }
        };
        let mut options = PartitionOptions {
            failure_policy,
            ..PartitionOptions::default()
        };
        if let Some(v) = user_expiry {
            options.user_expiry = Some(seconds(v, "user_expiry")?);
        }
        if let Some(v) = lease_ttl {
            options.lease_ttl = seconds(v, "lease_ttl")?;
        }
        let source = match (key_file, key_env) {
            (None, None) => None,
            (Some(file), None) => Some(KeySource::File(file)),
            (None, Some(var)) => Some(KeySource::Env(var)),
            _ => {
                return Err(PyValueError::new_err(
                    "give at most one of key_file and key_env",
                ));
            }
        };
        let previous = match (previous_key_file, previous_key_id) {
            (None, None) => None,
            (Some(file), Some(id)) => Some((file, id)),
            _ => {
                return Err(PyValueError::new_err(
                    "previous_key_file and previous_key_id go together",
                ));
            }
        };
        match (source, previous) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "a previous key needs the current one (key_file or key_env)",
                ));
            }
            (Some(source), previous) => {
                let key = source.resolve(true).map_err(file_error)?;
                let mut keys = PartitionKeys::new(key_id, *key.as_bytes()).map_err(store_error)?;
                if let Some((file, id)) = previous {
                    // The previous key must exist: making a new one would read nothing.
                    let old = KeySource::File(file).resolve(false).map_err(file_error)?;
                    keys = keys
                        .with_previous(&id, *old.as_bytes())
                        .map_err(store_error)?;
                }
                options.encryption = Some(keys);
            }
        }
        Ok(NativeStore {
            url,
            options,
            opened: Mutex::new(None),
        })
    }

    /// The backend's name (`sqlite`, `postgres`, `redis`, `redis-cluster`, `memory`).
    fn backend(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |live| Ok(live.cache.store().backend().to_owned()))
    }

    /// The URL with any password hidden.
    #[getter]
    fn url(&self) -> String {
        tokencache::redact_url(&self.url)
    }

    /// One partition's cache (empty when absent), read-only: one round trip.
    fn load(&self, py: Python<'_>, key: String) -> PyResult<NativeCache> {
        let key = PartitionKey::new(key);
        let lenient = self.options.failure_policy == FailurePolicy::TreatAsMiss;
        let cache = py.detach(|| {
            // Once open, the partitioned cache applies the failure policy itself; a store
            // that cannot even be opened is treated the same way.
            let live = match self.live() {
                Ok(live) => live,
                Err(Unopened::Unavailable(reason)) if lenient => {
                    tracing::warn!(error = %reason, partition = key.as_str(), "token store unavailable; treating the partition as empty");
                    return Ok(Arc::new(TokenCache::new()));
                }
                Err(e) => return Err(e.into()),
            };
            let load = || live.block_on(live.cache.load_partition(&key));
            match load() {
                Err(e) if e.is_unavailable() => {
                    std::thread::sleep(Duration::from_millis(50));
                    load().map_err(store_error)
                }
                other => other.map_err(store_error),
            }
        })?;
        Ok(NativeCache::snapshot(cache))
    }

    /// Saves a token response (MSAL's `add`) to the partition it belongs to, with
    /// compare-and-set; returns that partition's key (None: nothing to store).
    #[pyo3(signature = (event, now=None))]
    fn add(&self, py: Python<'_>, event: String, now: Option<i64>) -> PyResult<Option<String>> {
        let event = TokenEvent::from_msal_event(&object(&event, "event")?).map_err(cache_error)?;
        let now = now.unwrap_or_else(|| self.options.clock.now());
        let Some(key) = event_partition(&event, now)? else {
            return Ok(None);
        };
        self.with(py, |live| {
            let change = |c: &TokenCache| c.add_at(&event, now);
            live.block_on(live.cache.update_partition(&key, &change))
        })?;
        Ok(Some(key.as_str().to_owned()))
    }

    /// MSAL's `modify` on the partition the entry belongs to (nothing for app metadata, which
    /// every partition keeps its own copy of).
    #[pyo3(signature = (credential_type, old, new=None))]
    fn modify(
        &self,
        py: Python<'_>,
        credential_type: &str,
        old: String,
        new: Option<String>,
    ) -> PyResult<Option<String>> {
        let section: Section = section(credential_type)?;
        let old = Entry::from_object(&object(&old, "entry")?);
        let new: Option<JsonObject> = new.map(|n| object(&n, "new values")).transpose()?;
        let Some(key) = partition_key(section, &old) else {
            return Ok(None);
        };
        self.with(py, |live| {
            let change = |c: &TokenCache| c.modify(section, &old, new.as_ref());
            live.block_on(live.cache.update_partition(&key, &change))
        })?;
        Ok(Some(key.as_str().to_owned()))
    }

    /// Removes the partition's access tokens that expired before `now`; how many went.
    fn purge_expired(&self, py: Python<'_>, key: String, now: i64) -> PyResult<()> {
        let key = PartitionKey::new(key);
        self.with(py, |live| {
            let change = |c: &TokenCache| {
                c.purge_expired_access_tokens(now);
                Ok(())
            };
            live.block_on(live.cache.update_partition(&key, &change))
        })?;
        Ok(())
    }

    /// Deletes a partition (a user's sign-out); True when it was there.
    fn delete(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        let key = PartitionKey::new(key);
        self.with(py, |live| live.block_on(live.cache.delete_partition(&key)))
    }

    /// Waits until no other process refreshes the partition and takes the refresh lease.
    fn lease(&self, py: Python<'_>, client_id: String, key: String) -> PyResult<NativeLease> {
        let key = PartitionKey::new(key);
        let lenient = self.options.failure_policy == FailurePolicy::TreatAsMiss;
        let (runtime, lease) = py.detach(|| {
            let live = match self.live() {
                Ok(live) => live,
                Err(Unopened::Unavailable(reason)) if lenient => {
                    tracing::warn!(error = %reason, "no refresh lease (store unavailable); refreshing without one");
                    return Ok((None, None));
                }
                Err(e) => return Err(PyErr::from(e)),
            };
            let access = CacheAccess {
                client_id: &client_id,
                partition_key: Some(&key),
            };
            let lease = live
                .block_on(live.cache.refresh_lease(access))
                .map_err(access_error)?;
            Ok((Some(live.runtime.clone()), lease))
        })?;
        Ok(NativeLease {
            runtime,
            lease: Mutex::new(lease),
        })
    }

    fn __repr__(&self) -> String {
        format!("<tokencache.Store {}>", tokencache::redact_url(&self.url))
    }
}

/// A refresh lease: released by `release()`, or when garbage-collected.
#[pyclass(frozen, module = "tokencache._native")]
pub(crate) struct NativeLease {
    /// The runtime the lease is released on (`None`: no lease was taken).
    runtime: Option<Arc<Runtime>>,
    lease: Mutex<Option<RefreshLease>>,
}

impl NativeLease {
    fn take(&self) -> Option<RefreshLease> {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl NativeLease {
    /// Gives the lease back now (idempotent).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let (Some(lease), Some(runtime)) = (self.take(), self.runtime.as_ref()) else {
            return Ok(());
        };
        py.detach(|| runtime.block_on(lease.release()))
            .map_err(access_error)
    }
}

impl Drop for NativeLease {
    fn drop(&mut self) {
        if let (Some(lease), Some(runtime)) = (self.take(), self.runtime.as_ref()) {
            // A lease dropped unreleased (its `release` never called) is given back in the
            // background, on the runtime: during this process's next store call, or by its
            // expiry (`lease_ttl`) if none comes.
            let _inside = runtime.enter();
            drop(lease);
        }
    }
}
