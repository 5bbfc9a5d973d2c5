//! The native half of the Python package `tokencache` (`tokencache._native`).
//!
//! ## What it owns
//!
//! One class, `NativeCache`, that the package's `TokenCache` and `PersistedTokenCache` (subclasses
//! of `msal.SerializableTokenCache`, in `tokencache/__init__.py`) delegate every cache method
//! MSAL Python calls to: an in-memory indexed [`TokenCache`], or a [`FileStore`] (the MSAL lock
//! protocol, one lock and one atomic write per token response, group commit, encryption). Entries
//! cross the boundary as JSON text, which Python's C `json` module turns into dicts.
//!
//! ## Threads and the GIL
//!
//! Every call that may wait for the cross-process lock or the disk releases the GIL; the
//! in-memory cache is safe to share between threads (its own lock), so Flask and Django worker
//! threads can share one object.
//!
//! ## Errors
//!
//! One hierarchy under `tokencache.Error`: `CorruptCacheError`, `LockTimeoutError`,
//! `EncryptionError`, `InvalidResponseError`, `StorageError`. Messages never hold a token or
//! a key (the crates' errors do not).

use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use tokencache::json::JsonObject;
use tokencache::{Entry, Section, TokenCache, TokenEvent};
use tokencache_file::{FileError, FileOptions, FileStore, KeySource, LockOptions};

mod store;

create_exception!(
    tokencache,
    Error,
    PyException,
    "The base of every error tokencache raises."
);
create_exception!(
    tokencache,
    CorruptCacheError,
    Error,
    "The cache is not a valid MSAL token cache. It was left untouched."
);
create_exception!(
    tokencache,
    LockTimeoutError,
    Error,
    "Another process held the cache's lock for longer than the timeout."
);
create_exception!(
    tokencache,
    EncryptionError,
    Error,
    "The cache could not be decrypted or encrypted: a missing or wrong key, a plain file where an encrypted one belongs, a keyring that failed."
);
create_exception!(
    tokencache,
    InvalidResponseError,
    Error,
    "A token response that cannot be cached (for example a token endpoint that is not https)."
);
create_exception!(
    tokencache,
    StoreUnavailableError,
    Error,
    "The token store (database, Redis) could not be reached or failed; transient."
);
create_exception!(
    tokencache,
    StorageError,
    Error,
    "The cache's storage failed (an I/O error, a refused path)."
);

/// A core error as a Python exception.
pub(crate) fn cache_error(e: tokencache::Error) -> PyErr {
    let message = e.to_string();
    match e {
        tokencache::Error::Json { .. }
        | tokencache::Error::NotAnObject
        | tokencache::Error::SectionNotAnObject { .. } => CorruptCacheError::new_err(message),
        tokencache::Error::InvalidResponse { .. }
        | tokencache::Error::InvalidTokenEndpoint { .. } => InvalidResponseError::new_err(message),
        _ => Error::new_err(message),
    }
}

/// A file store error as a Python exception.
pub(crate) fn file_error(e: FileError) -> PyErr {
    let message = e.to_string();
    match e {
        FileError::Corrupt { .. } => CorruptCacheError::new_err(message),
        FileError::LockTimeout { .. } => LockTimeoutError::new_err(message),
        FileError::KeyRequired { .. }
        | FileError::NotEncrypted { .. }
        | FileError::Decrypt { .. }
        | FileError::DataProtection { .. }
        | FileError::Key { .. }
        | FileError::Keyring { .. }
        | FileError::HandOverRejected { .. } => EncryptionError::new_err(message),
        FileError::Cache(inner) => cache_error(inner),
        _ => StorageError::new_err(message),
    }
}

pub(crate) fn section(name: &str) -> PyResult<Section> {
    Section::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown credential type {name:?}")))
}

pub(crate) fn object(text: &str, what: &str) -> PyResult<JsonObject> {
    JsonObject::parse(text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Where the cache lives.
enum Backend {
    /// In this process only (`tokencache.TokenCache`).
    Memory(Arc<TokenCache>),
    /// In a file shared with other processes (`tokencache.PersistedTokenCache`).
    File(Box<FileStore>),
    /// A partition as loaded from a store: read-only (changes go to the store).
    Snapshot(Arc<TokenCache>),
}

/// The cache behind `tokencache.TokenCache` and `tokencache.PersistedTokenCache`.
#[pyclass(frozen, module = "tokencache._native")]
pub(crate) struct NativeCache {
    backend: Backend,
}

impl NativeCache {
    /// A read-only view of a partition loaded from a store.
    pub(crate) fn snapshot(cache: Arc<TokenCache>) -> NativeCache {
        NativeCache {
            backend: Backend::Snapshot(cache),
        }
    }

    /// The in-memory cache, brought up to date with the file first (without the lock, as
    /// MSAL's readers do; only what changed is parsed).
    fn current(&self, py: Python<'_>) -> PyResult<&TokenCache> {
        match &self.backend {
            Backend::Memory(cache) | Backend::Snapshot(cache) => Ok(cache),
            Backend::File(store) => {
                py.detach(|| store.reload()).map_err(file_error)?;
                Ok(store.cache())
            }
        }
    }

    /// Runs a change: directly in memory, or under the file's lock with the file re-read
    /// first and written after (the GIL released meanwhile).
    fn change<R: Send>(
        &self,
        py: Python<'_>,
        change: impl FnOnce(&TokenCache) -> Result<R, tokencache::Error> + Send,
    ) -> PyResult<R> {
        match &self.backend {
            Backend::Memory(cache) => change(cache).map_err(cache_error),
            Backend::File(store) => py.detach(|| store.update(change)).map_err(file_error),
            Backend::Snapshot(_) => Err(read_only()),
        }
    }
}

fn read_only() -> PyErr {
    pyo3::exceptions::PyTypeError::new_err(
        "a partition loaded from a store is read-only; change it through the store",
    )
}

/// An entry as a JSON object.
fn entry_json(entry: &Entry) -> String {
    entry.to_object().to_python_json(false)
}

/// Entries as a JSON array of objects.
fn entries_json(entries: impl ExactSizeIterator<Item = Entry>) -> String {
    let mut out = String::with_capacity(entries.len() * 512 + 2);
    out.push('[');
    for (i, entry) in entries.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&entry_json(&entry));
    }
    out.push(']');
    out
}

#[pymethods]
impl NativeCache {
    /// An empty in-memory cache.
    #[staticmethod]
    fn memory() -> NativeCache {
        NativeCache {
            backend: Backend::Memory(Arc::new(TokenCache::new())),
        }
    }

    /// A cache in the file at `path` (created at the first write, 0600), shared with other
    /// processes through `<path>.lockfile`.
    #[staticmethod]
    #[pyo3(signature = (path, *, key_file=None, key_env=None, keyring=None, windows_data_protection=false, accept_plaintext=false, lock_timeout=None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn file(
        path: std::path::PathBuf,
        key_file: Option<std::path::PathBuf>,
        key_env: Option<String>,
        keyring: Option<String>,
        windows_data_protection: bool,
        accept_plaintext: bool,
        lock_timeout: Option<f64>,
    ) -> PyResult<NativeCache> {
        let encryption = match (key_file, key_env, keyring) {
            (None, None, None) => None,
            (Some(file), None, None) => Some(KeySource::File(file)),
            (None, Some(var), None) => Some(KeySource::Env(var)),
            (None, None, Some(name)) => keyring_source(name)?,
            _ => {
                return Err(PyValueError::new_err(
                    "give at most one of key_file, key_env and keyring",
                ));
            }
        };
        let options = FileOptions {
            lock: lock_options(lock_timeout)?,
            encryption,
            accept_plaintext,
            windows_data_protection,
            ..FileOptions::default()
        };
        let store = FileStore::open(path, options).map_err(file_error)?;
        Ok(NativeCache {
            backend: Backend::File(Box::new(store)),
        })
    }

    /// A cache whose whole content lives in one OS keyring item (a Secret Service item on
    /// Linux, a Keychain item on macOS), with `signal` as the signal file and its
    /// `.lockfile` as the lock: msal-extensions' `LibsecretPersistence` layout.
    #[staticmethod]
    #[pyo3(signature = (signal, schema, attributes, label, lock_timeout=None))]
    fn keyring_item(
        signal: std::path::PathBuf,
        schema: String,
        attributes: Vec<(String, String)>,
        label: String,
        lock_timeout: Option<f64>,
    ) -> PyResult<NativeCache> {
        let options = FileOptions {
            lock: lock_options(lock_timeout)?,
            ..FileOptions::default()
        };
        keyring_item_store(signal, schema, attributes, label, options)
    }

    /// MSAL's `add(event, now)`: the event dict as JSON. For a file, one lock and one write.
    #[pyo3(signature = (event, now=None))]
    fn add(&self, py: Python<'_>, event: String, now: Option<i64>) -> PyResult<()> {
        let event = TokenEvent::from_msal_event(&object(&event, "event")?).map_err(cache_error)?;
        match &self.backend {
            Backend::Memory(cache) => {
                let now = now.unwrap_or_else(|| cache.now());
                cache.add_at(&event, now).map_err(cache_error)
            }
            Backend::File(store) => {
                let now = now.unwrap_or_else(|| store.cache().now());
                py.detach(|| store.add_at(&event, now)).map_err(file_error)
            }
            Backend::Snapshot(_) => Err(read_only()),
        }
    }

    /// MSAL's `search` without the purge: matching entries as a JSON array.
    #[pyo3(signature = (credential_type, target, query, now))]
    fn search(
        &self,
        py: Python<'_>,
        credential_type: &str,
        target: Vec<String>,
        query: Option<String>,
        now: i64,
    ) -> PyResult<String> {
        let section = section(credential_type)?;
        let query = match query {
            Some(text) => object(&text, "query")?,
            None => JsonObject::new(),
        };
        let target: Vec<&str> = target.iter().map(String::as_str).collect();
        let found = self.current(py)?.search(section, &target, &query, now);
        Ok(entries_json(found.entries.into_iter().map(|(_, e)| e)))
    }

    /// Removes every access token that expired before `now`; how many went.
    fn purge_expired(&self, py: Python<'_>, now: i64) -> PyResult<usize> {
        // Cheap test first: a purge that finds nothing must not take the file's lock.
        let cache = self.current(py)?;
        let any = cache
            .all_access_tokens()
            .iter()
            .any(|t| t.expires_on().is_some_and(|e| e < now));
        if !any {
            return Ok(0);
        }
        self.change(py, |cache| Ok(cache.purge_expired_access_tokens(now)))
    }

    /// True when an access token expired before `now` (what a purge would remove).
    fn any_expired(&self, py: Python<'_>, now: i64) -> PyResult<bool> {
        Ok(self
            .current(py)?
            .all_access_tokens()
            .iter()
            .any(|t| t.expires_on().is_some_and(|e| e < now)))
    }

    /// MSAL's `modify(credential_type, old_entry, new_key_value_pairs)`, entries as JSON.
    #[pyo3(signature = (credential_type, old, new=None))]
    fn modify(
        &self,
        py: Python<'_>,
        credential_type: &str,
        old: String,
        new: Option<String>,
    ) -> PyResult<()> {
        let section = section(credential_type)?;
        let old = Entry::from_object(&object(&old, "entry")?);
        let new = new.map(|n| object(&n, "new values")).transpose()?;
        self.change(py, |cache| cache.modify(section, &old, new.as_ref()))
    }

    /// The entry stored under `key`, as JSON, or None.
    fn get(&self, py: Python<'_>, credential_type: &str, key: &str) -> PyResult<Option<String>> {
        let section = section(credential_type)?;
        Ok(self
            .current(py)?
            .entry_at(section, key)
            .map(|(_, e)| entry_json(&e)))
    }

    /// The whole cache as MSAL Python writes it (`json.dumps(cache, indent=4)`).
    fn serialize(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.current(py)?.serialize())
    }

    /// Replaces the whole content (for a file: under its lock, then written).
    fn deserialize(&self, py: Python<'_>, state: String) -> PyResult<()> {
        self.change(py, |cache| cache.deserialize(&state))
    }

    /// The number of entries of a credential type.
    fn count(&self, py: Python<'_>, credential_type: &str) -> PyResult<usize> {
        Ok(self.current(py)?.len(section(credential_type)?))
    }

    /// The cache file, or None in memory.
    #[getter]
    fn path(&self) -> Option<std::path::PathBuf> {
        match &self.backend {
            Backend::Memory(_) | Backend::Snapshot(_) => None,
            Backend::File(store) => Some(store.path().to_owned()),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
fn keyring_source(name: String) -> PyResult<Option<KeySource>> {
    Ok(Some(KeySource::Keyring { name }))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn keyring_source(_name: String) -> PyResult<Option<KeySource>> {
    Err(EncryptionError::new_err("no OS keyring on this system"))
}

/// Lock options with this timeout (seconds), or the default.
fn lock_options(timeout: Option<f64>) -> PyResult<LockOptions> {
    let mut lock = LockOptions::default();
    if let Some(seconds) = timeout {
        lock.timeout = Duration::try_from_secs_f64(seconds)
            .map_err(|_| PyValueError::new_err("lock_timeout must be a number of seconds"))?;
    }
    Ok(lock)
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
fn keyring_item_store(
    signal: std::path::PathBuf,
    schema: String,
    attributes: Vec<(String, String)>,
    label: String,
    options: FileOptions,
) -> PyResult<NativeCache> {
    let item = tokencache_file::KeyringItem {
        schema,
        attributes,
        label,
    };
    let store = FileStore::keyring(item, signal, options).map_err(file_error)?;
    Ok(NativeCache {
        backend: Backend::File(Box::new(store)),
    })
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn keyring_item_store(
    _: std::path::PathBuf,
    _: String,
    _: Vec<(String, String)>,
    _: String,
    _: FileOptions,
) -> PyResult<NativeCache> {
    Err(EncryptionError::new_err(
        "a whole cache in a keyring item needs the Secret Service (Linux) or the Keychain (macOS); on Windows use windows_data_protection",
    ))
}

/// The handle that clears pyo3-log's cache of Python logger levels.
static LOGGING: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

/// Forgets the cached levels of the Python loggers the crates log to, so that a level set
/// since (`logging.getLogger("tokencache_file").setLevel(...)`) takes effect.
#[pyfunction]
fn reset_logging() {
    if let Some(handle) = LOGGING.get() {
        handle.reset();
    }
}

/// The module `tokencache._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The crates log through `tracing`, which forwards to `log` with no subscriber installed;
    // pyo3-log hands those records to Python's `logging` (logger names `tokencache_file::…`).
    // Levels are cached on the Rust side so that a disabled level costs no GIL; Python code
    // that changes a level at run time calls `tokencache.reset_logging()`.
    if let Ok(handle) = pyo3_log::try_init() {
        let _ = LOGGING.set(handle);
    }
    m.add_function(wrap_pyfunction!(reset_logging, m)?)?;
    let py = m.py();
    m.add_class::<NativeCache>()?;
    m.add_class::<store::NativeStore>()?;
    m.add_class::<store::NativeLease>()?;
    m.add(
        "StoreUnavailableError",
        py.get_type::<StoreUnavailableError>(),
    )?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("CorruptCacheError", py.get_type::<CorruptCacheError>())?;
    m.add("LockTimeoutError", py.get_type::<LockTimeoutError>())?;
    m.add("EncryptionError", py.get_type::<EncryptionError>())?;
    m.add(
        "InvalidResponseError",
        py.get_type::<InvalidResponseError>(),
    )?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    Ok(())
}
