//! [`FileStore`]: one cache file (or keyring item) shared by many processes.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokencache::{TokenCache, TokenEvent};
use zeroize::{Zeroize, Zeroizing};

use crate::atomic::{refuse_symlink, write_atomically};
use crate::crypto::{self, DataKey, KeySource};
use crate::dpapi::is_dpapi_protected;
use crate::error::FileError;
use crate::lock::{CacheLock, LockOptions, LockStatus, lock_path, lock_status};
use crate::pending::{self, Claim, Deposit, DepositState, pending_dir};

/// What to do with a cache file that cannot be parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CorruptPolicy {
    /// Fail every load and save with [`FileError::Corrupt`]; the file is never touched. The
    /// default: nothing is ever lost, and the user (or `tokencache validate`) decides.
    #[default]
    Fail,
    /// Rename the file to `<cache>.corrupt-<unix seconds>`, log an error, and carry on with an
    /// empty cache. [`FileStore::last_corrupt_backup`] tells where it went.
    MoveAside,
}

/// How a [`FileStore`] behaves.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// Waiting for the cross-process lock.
    pub lock: LockOptions,
    /// Unparseable files.
    pub corrupt: CorruptPolicy,
    /// Encrypt the file with this key. A plain file found at the path is then refused
    /// ([`FileError::NotEncrypted`]): encryption that accepts plaintext would let anyone who
    /// can write the file plant tokens in it. See `accept_plaintext` for a first encryption.
    pub encryption: Option<KeySource>,
    /// With `encryption`: read a plain file found at the path, and encrypt it at the next
    /// write. For the first encryption of an existing plain cache only (the CLI's
    /// `tokencache encrypt` does the same at once); off by default.
    pub accept_plaintext: bool,
    /// Windows only: the file is sealed with DPAPI for the current user (`CryptProtectData`,
    /// no entropy), the format msal-extensions' `FilePersistenceWithDataProtection`, MSAL
    /// .NET's and MSAL Node's extensions, the Azure CLI (`msal_token_cache.bin`) and
    /// azure-identity (`%LOCALAPPDATA%\.IdentityService\msal.cache*`) use, with the same lock
    /// protocol, so this store shares such a file with them. A plain file is refused (as with
    /// `encryption`; `accept_plaintext` applies). Not with `encryption`, and without group
    /// commit. On other systems [`FileStore::open`] fails with
    /// [`FileError::DataProtection`]; [`is_dpapi_protected`](crate::is_dpapi_protected)
    /// recognises such a file anywhere.
    pub windows_data_protection: bool,
    /// Lock-free reads retry a file that does not parse (a writer that truncates in place, as
    /// msal-extensions does, may be mid-write) this many times.
    pub read_retries: u32,
    /// Pause between those retries.
    pub read_retry_delay: Duration,
    /// Group commit (default on, cache files only): a token response that finds the cache
    /// locked by another tokencache process is handed to that process, which writes it with
    /// its own change, instead of waiting to rewrite the whole file itself. Each
    /// [`FileStore::add`] still returns only once its response is in the file, durably. See
    /// [`FileStore::add`].
    pub group_commit: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            lock: LockOptions::default(),
            corrupt: CorruptPolicy::default(),
            encryption: None,
            accept_plaintext: false,
            windows_data_protection: false,
            read_retries: 3,
            read_retry_delay: Duration::from_millis(100),
            group_commit: true,
        }
    }
}

#[derive(Debug)]
enum Backend {
    File(PathBuf),
    #[cfg(all(any(target_os = "linux", target_os = "macos"), feature = "keyring"))]
    Keyring {
        item: crate::keyring::KeyringItem,
        signal: PathBuf,
    },
}

#[derive(Default)]
struct Synced {
    /// What the storage holds as far as this store knows (the bytes it last read or wrote).
    known: Known,
    /// A buffer for the next read or write, so that a change does not allocate (and fault in)
    /// megabytes anew. Wiped when the store is dropped.
    spare: Zeroizing<Vec<u8>>,
    key: Option<DataKey>,
    corrupt_backup: Option<PathBuf>,
    /// Counts the changes of `known`: a read made outside the mutex is current only if no
    /// change happened since it started.
    generation: u64,
}

/// How much group commit (see [`FileStore::add`]) did for one store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// This store's token responses that another process wrote for it.
    pub handed_over: u64,
    /// Handed-over token responses this store wrote while holding the lock (its own included,
    /// when it got the lock before anyone wrote them).
    pub written_for_waiters: u64,
}

/// A token cache persisted in one file, safe to share between threads, processes and other
/// MSAL applications.
///
/// Every change runs as: take the cross-process lock (`<cache>.lockfile`, the MSAL protocol),
/// re-read the file if its content changed (by content, not by modification time), apply the
/// change to the in-memory cache, write the file atomically if anything changed, release.
/// One lock acquisition per token response (msal-extensions takes five), and readers never
/// see a partial file. Under contention, [`FileStore::add`] hands its response to the lock
/// holder instead (group commit), so one rewrite of the file serves several processes.
///
/// ```no_run
/// use tokencache_file::{FileStore, FileOptions};
/// let store = FileStore::open("/home/me/.cache/myapp/msal_token_cache.json", FileOptions::default())?;
/// store.reload()?; // pick up what other processes wrote
/// let accounts = store.cache().accounts(&Default::default());
/// # Ok::<(), tokencache_file::FileError>(())
/// ```
pub struct FileStore {
    backend: Backend,
    lock_target: PathBuf,
    options: FileOptions,
    cache: Arc<TokenCache>,
    synced: Mutex<Synced>,
    handed_over: AtomicU64,
    written_for_waiters: AtomicU64,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("backend", &self.backend)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The content last read or written. A change by another process is detected by comparing
/// the content itself (modification times are too coarse, and skew on network file systems).
#[derive(Default)]
enum Known {
    /// Nothing known yet, or a write failed: the next read reloads.
    #[default]
    Unknown,
    /// There is no file (or item).
    Missing,
    /// These bytes (zeroized when replaced or dropped).
    Bytes(Zeroizing<Vec<u8>>),
    /// Nothing known (the next read reloads); the bytes are kept only as a buffer to reuse.
    Outdated(Zeroizing<Vec<u8>>),
}

impl Known {
    fn matches(&self, raw: Option<&[u8]>) -> bool {
        match (self, raw) {
            (Known::Missing, None) => true,
            (Known::Bytes(known), Some(raw)) => known.as_slice() == raw,
            _ => false,
        }
    }
}

impl Synced {
    /// Records `raw` as the known content; the buffer it replaces becomes the spare.
    fn remember(&mut self, raw: Option<Vec<u8>>) {
        self.generation = self.generation.wrapping_add(1);
        let previous = std::mem::replace(
            &mut self.known,
            match raw {
                Some(bytes) => Known::Bytes(Zeroizing::new(bytes)),
                None => Known::Missing,
            },
        );
        if let Known::Bytes(mut bytes) | Known::Outdated(mut bytes) = previous {
            self.recycle(std::mem::take(&mut *bytes));
        }
    }

    /// Forgets what the storage holds (another process changed it), keeping the buffer: the
    /// next read reloads, and neither wipes nor allocates megabytes anew.
    fn outdate(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.known = match std::mem::take(&mut self.known) {
            Known::Bytes(bytes) | Known::Outdated(bytes) => Known::Outdated(bytes),
            Known::Unknown | Known::Missing => Known::Unknown,
        };
    }

    /// Keeps a buffer for reuse. It is overwritten by the next use (wiping megabytes on
    /// every change would cost more than the rest of the change); the larger buffer is kept
    /// and wiped on drop, the smaller one wiped now.
    fn recycle(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() > self.spare.capacity() {
            std::mem::swap(&mut buffer, &mut *self.spare);
        }
        buffer.zeroize();
    }

    fn take_spare(&mut self) -> Vec<u8> {
        if self.spare.capacity() == 0
            && let Known::Outdated(bytes) = &mut self.known
        {
            return std::mem::take(&mut **bytes);
        }
        std::mem::take(&mut *self.spare)
    }
}

/// Cache text read from storage: borrowed when plain, a wiped copy when decrypted.
enum Text<'a> {
    Plain(&'a str),
    Decrypted(Zeroizing<String>),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Plain(text) => text,
            Text::Decrypted(text) => text,
        }
    }
}

/// A file closed on a helper thread when dropped: the last close of a file our write replaced
/// frees its blocks (a millisecond for a few megabytes on ext4 with `discard`), which neither
/// the critical section nor this process's next change should wait for.
struct ClosedInBackground(File);

impl Drop for ClosedInBackground {
    fn drop(&mut self) {
        static CLOSER: Mutex<Option<std::sync::mpsc::Sender<File>>> = Mutex::new(None);
        let Ok(file) = self.0.try_clone() else {
            return; // closed here, with `self.0`
        };
        let mut closer = CLOSER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if closer.is_none() {
            let (send, receive) = std::sync::mpsc::channel::<File>();
            let spawned = std::thread::Builder::new()
                .name("tokencache-file-closer".into())
                .spawn(move || receive.into_iter().for_each(drop));
            if spawned.is_ok() {
                *closer = Some(send);
            }
        }
        if let Some(send) = closer.as_ref() {
            let _ = send.send(file);
        }
    }
}

/// The store's cache: it rewrites the whole document on every change, so it keeps each
/// entry's serialized form between writes.
fn new_cache() -> Arc<TokenCache> {
    let cache = TokenCache::new();
    cache.retain_serialized_entries(true);
    Arc::new(cache)
}

impl FileStore {
    /// A store for the cache file at `path` (created on the first write, mode 0600). A path
    /// that is a symbolic link is refused.
    pub fn open(path: impl AsRef<Path>, options: FileOptions) -> Result<FileStore, FileError> {
        let path = path.as_ref().to_owned();
        refuse_symlink(&path)?;
        if options.windows_data_protection {
            let refuse = |reason: &str| {
                Err(FileError::DataProtection {
                    path: path.clone(),
                    reason: reason.to_owned(),
                })
            };
            if !cfg!(windows) {
                return refuse(
                    "Windows DPAPI protection is only available on Windows, where the file can be read by the user who wrote it",
                );
            }
            if options.encryption.is_some() {
                return refuse(
                    "choose either Windows DPAPI protection or an encryption key, not both",
                );
            }
        }
        Ok(FileStore {
            lock_target: path.clone(),
            backend: Backend::File(path),
            options,
            cache: new_cache(),
            synced: Mutex::new(Synced::default()),
            handed_over: AtomicU64::new(0),
            written_for_waiters: AtomicU64::new(0),
        })
    }

    /// A store whose whole cache lives in a keyring item (for small caches): a Secret Service
    /// item on Linux, shareable with msal-extensions' `LibsecretPersistence`, or a Keychain
    /// item on macOS, shareable with its `KeychainPersistence`, using the same item and signal
    /// file (see `KeyringItem::msal_extensions`). The lock is `<signal>.lockfile`. Not on
    /// Windows, whose Credential Manager holds at most 2,560 bytes per item.
    #[cfg(all(any(target_os = "linux", target_os = "macos"), feature = "keyring"))]
    pub fn keyring(
        item: crate::keyring::KeyringItem,
        signal_file: impl AsRef<Path>,
        options: FileOptions,
    ) -> Result<FileStore, FileError> {
        let signal = signal_file.as_ref().to_owned();
        Ok(FileStore {
            lock_target: signal.clone(),
            backend: Backend::Keyring { item, signal },
            options: FileOptions {
                encryption: None,
                ..options
            },
            cache: new_cache(),
            synced: Mutex::new(Synced::default()),
            handed_over: AtomicU64::new(0),
            written_for_waiters: AtomicU64::new(0),
        })
    }

    /// The in-memory cache, for lookups. Change it only through [`FileStore::update`] (or
    /// [`FileStore::add`]), or the change is not saved and is lost at the next reload.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// The cache file (or the signal file of a keyring store).
    pub fn path(&self) -> &Path {
        &self.lock_target
    }

    /// Where the last unparseable file was moved (with [`CorruptPolicy::MoveAside`]).
    pub fn last_corrupt_backup(&self) -> Option<PathBuf> {
        self.synced().corrupt_backup.clone()
    }

    /// What group commit did for this store so far.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            handed_over: self.handed_over.load(Ordering::Relaxed),
            written_for_waiters: self.written_for_waiters.load(Ordering::Relaxed),
        }
    }

    /// The state of this cache's lock.
    pub fn lock_status(&self) -> Result<LockStatus, FileError> {
        lock_status(&self.lock_target)
    }

    fn synced(&self) -> MutexGuard<'_, Synced> {
        self.synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_raw(&self) -> Result<Option<Vec<u8>>, FileError> {
        Ok(self.read_raw_keeping_handle(Vec::new())?.0)
    }

    /// Reads the content and, for a file, also returns the open file. Holding it until after
    /// the lock is released moves the cost of freeing the file's blocks when our write
    /// replaces it (the last close of an unlinked file, slow on file systems that discard
    /// freed blocks) out of the critical section.
    /// Reads into `buffer` (its allocation is reused).
    fn read_raw_keeping_handle(
        &self,
        mut buffer: Vec<u8>,
    ) -> Result<(Option<Vec<u8>>, Option<File>), FileError> {
        buffer.clear();
        match &self.backend {
            Backend::File(path) => {
                let err = |source| FileError::Io {
                    path: path.clone(),
                    source,
                };
                match File::open(path) {
                    Ok(mut file) => {
                        let size = file.metadata().map_or(0, |m| m.len());
                        buffer.reserve(usize::try_from(size).unwrap_or(0) + 1);
                        file.read_to_end(&mut buffer).map_err(err)?;
                        Ok((Some(buffer), Some(file)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
                    Err(source) => Err(err(source)),
                }
            }
            #[cfg(all(any(target_os = "linux", target_os = "macos"), feature = "keyring"))]
            Backend::Keyring { item, .. } => Ok((item.load()?.map(|s| s.to_vec()), None)),
        }
    }

    fn write_raw(&self, bytes: &[u8]) -> Result<(), FileError> {
        match &self.backend {
            Backend::File(path) => write_atomically(path, bytes),
            #[cfg(all(any(target_os = "linux", target_os = "macos"), feature = "keyring"))]
            Backend::Keyring { item, signal } => {
                item.store(bytes)?;
                touch(signal)
            }
        }
    }

    fn key(&self, synced: &mut Synced, create: bool) -> Result<Option<DataKey>, FileError> {
        let Some(source) = &self.options.encryption else {
            return Ok(None);
        };
        if synced.key.is_none() {
            synced.key = Some(source.resolve(create)?);
        }
        Ok(synced.key.clone())
    }

    /// Turns raw bytes into cache text: decrypts if encrypted.
    fn decode<'a>(&self, synced: &mut Synced, raw: &'a [u8]) -> Result<Text<'a>, FileError> {
        if is_dpapi_protected(raw) {
            return self.unprotect(raw, false).map(Text::Decrypted);
        }
        if crypto::is_encrypted(raw) {
            let key_id = crypto::header_key_id(raw).unwrap_or_default();
            let path = self.lock_target.clone();
            let Some(key) = self.key(synced, false)? else {
                return Err(FileError::KeyRequired { path, key_id });
            };
            let plain = crypto::decrypt(raw, &key).ok_or_else(|| FileError::Decrypt {
                path: path.clone(),
                key_id: key_id.clone(),
            })?;
            let text = String::from_utf8(plain.to_vec())
                .map_err(|_| FileError::Decrypt { path, key_id })?;
            return Ok(Text::Decrypted(Zeroizing::new(text)));
        }
        if (self.options.encryption.is_some() || self.options.windows_data_protection)
            && !self.options.accept_plaintext
            && !raw.iter().all(u8::is_ascii_whitespace)
        {
            return Err(FileError::NotEncrypted {
                path: self.lock_target.clone(),
            });
        }
        let text = std::str::from_utf8(raw).map_err(|_| FileError::Corrupt {
            path: self.lock_target.clone(),
            source: tokencache::Error::Json {
                line: 1,
                column: 1,
                message: "not UTF-8 text".into(),
            },
        })?;
        Ok(Text::Plain(text))
    }

    /// The name of the cache file, bound into its encrypted hand-over records.
    fn cache_name(&self) -> Vec<u8> {
        self.lock_target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned().into_bytes())
            .unwrap_or_default()
    }

    /// Opens a DPAPI-sealed file (on Windows, with `windows_data_protection` or for an
    /// `explicit` rewrite); anywhere else, a clear error.
    fn unprotect(&self, raw: &[u8], explicit: bool) -> Result<Zeroizing<String>, FileError> {
        let fail = |reason: String| FileError::DataProtection {
            path: self.lock_target.clone(),
            reason,
        };
        #[cfg(windows)]
        {
            if !self.options.windows_data_protection && !explicit {
                return Err(fail("the file is sealed with Windows DPAPI (as the Azure CLI's msal_token_cache.bin); open it with Windows data protection (FileOptions::windows_data_protection, or the CLI, which does so by itself)".into()));
            }
            let plain = crate::dpapi::unprotect(raw).map_err(|e| {
                fail(format!("cannot open the Windows DPAPI seal ({e}): a file of another user or machine, or a damaged one; it was left untouched"))
            })?;
            String::from_utf8(plain.to_vec())
                .map(Zeroizing::new)
                .map_err(|_| fail("the sealed content is not UTF-8 text".into()))
        }
        #[cfg(not(windows))]
        {
            let _ = (raw, explicit);
            Err(fail("the file is sealed with Windows DPAPI (as the Azure CLI's msal_token_cache.bin on Windows); only Windows, signed in as the user who wrote it, can read it".into()))
        }
    }

    fn encode(&self, synced: &mut Synced, text: String) -> Result<Vec<u8>, FileError> {
        if self.options.windows_data_protection {
            let text = Zeroizing::new(text);
            #[cfg(windows)]
            let sealed = crate::dpapi::protect(text.as_bytes())
                .map_err(|e| format!("cannot seal the cache with Windows DPAPI: {e}"));
            #[cfg(not(windows))]
            let sealed: Result<Vec<u8>, String> = {
                drop(text);
                Err("Windows DPAPI is only available on Windows".into())
            };
            return sealed.map_err(|reason| FileError::DataProtection {
                path: self.lock_target.clone(),
                reason,
            });
        }
        match (self.key(synced, true)?, &self.options.encryption) {
            (Some(key), Some(source)) => {
                let text = zeroize::Zeroizing::new(text);
                crypto::encrypt(text.as_bytes(), &key, source.key_id())
            }
            _ => Ok(text.into_bytes()),
        }
    }

    /// Loads `raw` into the in-memory cache if it differs from what was last synced.
    /// `retries`: how often to re-read a file that does not parse.
    fn sync_from(
        &self,
        synced: &mut Synced,
        mut raw: Option<Vec<u8>>,
        retries: u32,
        under_lock: bool,
    ) -> Result<bool, FileError> {
        let mut attempt = 0;
        loop {
            if synced.known.matches(raw.as_deref()) {
                if let Some(buffer) = raw {
                    synced.recycle(buffer);
                }
                return Ok(false);
            }
            let Some(bytes) = raw.as_deref() else {
                // The file is gone: the cache is empty.
                self.cache.deserialize("")?;
                synced.remember(None);
                return Ok(true);
            };
            let text = self.decode(synced, bytes)?;
            match self.cache.deserialize(text.as_str()) {
                Ok(()) => {
                    drop(text);
                    synced.remember(raw);
                    return Ok(true);
                }
                Err(source) if attempt < retries => {
                    tracing::debug!(path = %self.lock_target.display(), error = %source, "cache does not parse yet, retrying");
                    attempt += 1;
                    std::thread::sleep(self.options.read_retry_delay);
                    raw = self.read_raw()?;
                }
                Err(source) => return self.corrupt(synced, source, under_lock),
            }
        }
    }

    fn corrupt(
        &self,
        synced: &mut Synced,
        source: tokencache::Error,
        under_lock: bool,
    ) -> Result<bool, FileError> {
        let path = self.lock_target.clone();
        match (self.options.corrupt, &self.backend) {
            (CorruptPolicy::MoveAside, Backend::File(file)) if under_lock => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut backup = PathBuf::from(format!("{}.corrupt-{stamp}", file.display()));
                let mut n = 1;
                while backup.exists() {
                    backup = PathBuf::from(format!("{}.corrupt-{stamp}-{n}", file.display()));
                    n += 1;
                }
                std::fs::rename(file, &backup).map_err(|e| FileError::Io {
                    path: file.clone(),
                    source: e,
                })?;
                tracing::error!(path = %file.display(), backup = %backup.display(), error = %source, "cache file does not parse; moved it aside and started empty");
                self.cache.clear();
                synced.remember(None);
                synced.corrupt_backup = Some(backup);
                Ok(true)
            }
            _ => Err(FileError::Corrupt { path, source }),
        }
    }

    /// Reads the file without taking the lock and loads it if it changed (retrying a file
    /// that does not parse, in case a foreign writer is mid-write). Returns true when the
    /// in-memory cache changed.
    pub fn reload(&self) -> Result<bool, FileError> {
        // The file is read without waiting for this process's writers. What was read is
        // loaded only if no thread of this process changed what it knows meanwhile: a read
        // that started before another thread's write could be older than that write, and
        // loading it would take back tokens this process already holds. Then it reads again.
        let before = self.synced().generation;
        let raw = self.read_raw()?;
        let mut synced = self.synced();
        let raw = if synced.generation == before {
            raw
        } else {
            if let Some(buffer) = raw {
                synced.recycle(buffer);
            }
            self.read_raw()?
        };
        self.sync_from(&mut synced, raw, self.options.read_retries, false)
    }

    /// [`FileStore::reload`] done on the caller's thread only when that cannot block for
    /// long: a plain (or already-keyed) file of at most `max_bytes` that no other thread of
    /// this process is using, and that parses at the first read. `None` means "not done":
    /// call [`FileStore::reload`] (on a thread that may block). An async caller uses it to
    /// skip a trip to a blocking pool for the common small cache.
    pub fn try_reload(&self, max_bytes: u64) -> Option<Result<bool, FileError>> {
        #[allow(
            irrefutable_let_patterns,
            reason = "without the keyring feature (and on Windows) a file is the only backend"
        )]
        let Backend::File(path) = &self.backend else {
            return None;
        };
        if self.options.windows_data_protection {
            return None;
        }
        let mut synced = match self.synced.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if self.options.encryption.is_some() && synced.key.is_none() {
            return None; // the key may come from the OS keyring: a call that can wait
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > max_bytes => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return None,
        }
        let raw = match self.read_raw() {
            Ok(raw) => raw,
            Err(_) => return None,
        };
        match self.sync_from(&mut synced, raw, 0, false) {
            // Maybe a foreign writer's half-written file: the blocking path retries.
            Err(FileError::Corrupt { .. }) => None,
            other => Some(other),
        }
    }

    /// Applies a change under the cross-process lock: re-reads the file if another process
    /// changed it, runs `change` on the in-memory cache, and writes the file atomically if the
    /// cache changed. Threads of this process are serialized too. Token responses other
    /// processes handed over while waiting for the lock (see [`FileStore::add`]) are written
    /// with the change.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&TokenCache) -> Result<R, tokencache::Error>,
    ) -> Result<R, FileError> {
        let mut synced = self.synced();
        let lock = CacheLock::acquire(&self.lock_target, self.options.lock)?;
        self.update_locked(&mut synced, lock, None, change)
    }

    /// [`FileStore::update`] once the lock is taken. On failure, `own` (this call's handed-over
    /// record) is withdrawn while the lock is still held, so no later holder applies it.
    fn update_locked<R>(
        &self,
        synced: &mut Synced,
        lock: CacheLock,
        own: Option<&Deposit>,
        change: impl FnOnce(&TokenCache) -> Result<R, tokencache::Error>,
    ) -> Result<R, FileError> {
        let mut replaced = None;
        let result = self.change_locked(synced, &mut replaced, change);
        if result.is_err() {
            own.map(Deposit::withdraw);
        }
        drop(lock);
        // After the lock (see `read_raw_keeping_handle`).
        drop(replaced);
        result
    }

    fn change_locked<R>(
        &self,
        synced: &mut Synced,
        replaced: &mut Option<ClosedInBackground>,
        change: impl FnOnce(&TokenCache) -> Result<R, tokencache::Error>,
    ) -> Result<R, FileError> {
        let (raw, handle) = self.read_raw_keeping_handle(synced.take_spare())?;
        // Windows refuses to replace a file that is open, ours included: close it now there.
        *replaced = if cfg!(windows) {
            drop(handle);
            None
        } else {
            handle.map(ClosedInBackground)
        };
        self.sync_from(synced, raw, 2, true)?;
        let result = change(&self.cache);
        let handed_over = self.apply_handed_over(synced);
        if self.cache.has_state_changed() {
            let mut buffer = synced.take_spare();
            buffer.clear();
            let mut text = String::from_utf8(buffer).unwrap_or_default();
            self.cache.serialize_into(&mut text);
            let written =
                self.encode(synced, text)
                    .and_then(|bytes| match self.write_raw(&bytes) {
                        Ok(()) => Ok(bytes),
                        Err(e) => {
                            synced.recycle(bytes);
                            Err(e)
                        }
                    });
            match written {
                Ok(bytes) => synced.remember(Some(bytes)),
                Err(e) => {
                    // The file keeps its old content; so must our view of it. The handed-over
                    // responses go back to wait for the next holder.
                    synced.known = Known::Unknown;
                    synced.generation = synced.generation.wrapping_add(1);
                    handed_over.into_iter().for_each(Claim::release);
                    return Err(e);
                }
            }
        }
        // Deleting a record tells its waiter that its response is in the file.
        self.written_for_waiters
            .fetch_add(handed_over.len() as u64, Ordering::Relaxed);
        handed_over.into_iter().for_each(Claim::finish);
        Ok(result?)
    }

    fn groups_commits(&self) -> bool {
        // Hand-over records are sealed with the cache's key; a DPAPI cache has none.
        self.options.group_commit
            && !self.options.windows_data_protection
            && matches!(self.backend, Backend::File(_))
    }

    /// Claims and applies the token responses other processes handed over (lock held).
    fn apply_handed_over(&self, synced: &mut Synced) -> Vec<Claim> {
        if !self.groups_commits() {
            return Vec::new();
        }
        let claims = pending::claim_all(&pending_dir(&self.lock_target));
        let mut applied = Vec::with_capacity(claims.len());
        for claim in claims {
            let outcome = self
                .read_record(synced, &claim.bytes)
                .and_then(|(event, now)| self.cache.add_at(&event, now).map_err(FileError::from));
            match outcome {
                Ok(()) => applied.push(claim),
                Err(e) => {
                    tracing::warn!(path = %self.lock_target.display(), error = %e, "cannot apply a token response another process handed over; it is rejected and its process told");
                    claim.reject();
                }
            }
        }
        if !applied.is_empty() {
            tracing::debug!(path = %self.lock_target.display(), count = applied.len(), "writing token responses other processes handed over");
        }
        applied
    }

    /// A hand-over record's response. With a key configured, a record must be encrypted, for
    /// this cache: a plain one (which anyone who can write the directory could plant) is
    /// refused like a record sealed with another key.
    fn read_record(
        &self,
        synced: &mut Synced,
        bytes: &[u8],
    ) -> Result<(TokenEvent, i64), FileError> {
        let path = self.lock_target.clone();
        let text =
            match self.key(synced, false)? {
                Some(key) => {
                    let key_id = crypto::header_key_id(bytes).unwrap_or_default();
                    if !crypto::is_encrypted(bytes) {
                        return Err(FileError::NotEncrypted { path });
                    }
                    let plain = crypto::decrypt_record(bytes, &key, &self.cache_name())
                        .ok_or_else(|| FileError::Decrypt {
                            path: path.clone(),
                            key_id: key_id.clone(),
                        })?;
                    Zeroizing::new(
                        String::from_utf8(plain.to_vec())
                            .map_err(|_| FileError::Decrypt { path, key_id })?,
                    )
                }
                None if crypto::is_encrypted(bytes) => {
                    return Err(FileError::KeyRequired {
                        path,
                        key_id: crypto::header_key_id(bytes).unwrap_or_default(),
                    });
                }
                None => Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()),
            };
        Ok(pending::decode_record(text.as_str())?)
    }

    /// Records one token response: one lock acquisition, one write.
    ///
    /// With group commit (the default for cache files, [`FileOptions::group_commit`]), a
    /// response that finds the cache locked by another process is left for the lock holder
    /// in `<cache>.pending/` (0600, encrypted when the cache is) and this call waits: the next
    /// tokencache process to hold the lock writes every waiting response with its own change,
    /// in one write. Either way the call returns `Ok` only once the response is in the file,
    /// durably. Under contention this multiplies the throughput (one file rewrite serves
    /// several processes); other MSAL applications see the same file and lock as ever.
    ///
    /// A response that cannot be cached is refused before anything is written or handed over.
    /// If the lock cannot be had within the timeout, the waiting response is withdrawn and
    /// [`FileError::LockTimeout`] returned; only if a holder had already claimed it does the
    /// call wait once more for that holder, and a second timeout leaves the outcome to it.
    pub fn add(&self, event: &TokenEvent) -> Result<(), FileError> {
        self.add_at(event, self.cache.now())
    }

    /// [`FileStore::add`] for a response received at `now` (Unix seconds), for callers that
    /// keep their own clock.
    pub fn add_at(&self, event: &TokenEvent, now: i64) -> Result<(), FileError> {
        let add = |cache: &TokenCache| cache.add_at(event, now);
        let mut synced = self.synced();
        if !self.groups_commits() {
            let lock = CacheLock::acquire(&self.lock_target, self.options.lock)?;
            return self.update_locked(&mut synced, lock, None, add);
        }
        let mut free = CacheLock::try_acquire(&self.lock_target, self.options.lock)?;
        if free.is_none() && !lock_path(&self.lock_target).exists() {
            // The directory was just created, a stale lock removed, or the holder just left.
            free = CacheLock::try_acquire(&self.lock_target, self.options.lock)?;
        }
        if let Some(lock) = free {
            return self.update_locked(&mut synced, lock, None, add);
        }
        // Refused here, not handed over, if it cannot be cached (nothing is written).
        add(&TokenCache::new())?;
        let deposit = match self.deposit(&mut synced, event, now) {
            Ok(deposit) => deposit,
            Err(e) => {
                tracing::debug!(path = %self.lock_target.display(), error = %e, "cannot hand the token response over; waiting for the lock");
                let lock = CacheLock::acquire(&self.lock_target, self.options.lock)?;
                return self.update_locked(&mut synced, lock, None, add);
            }
        };
        let rejected = || FileError::HandOverRejected {
            path: self.lock_target.clone(),
        };
        let mut waited_for_claimant = false;
        loop {
            let waited = CacheLock::acquire_unless(&self.lock_target, self.options.lock, || {
                match deposit.state() {
                    state @ (DepositState::Written | DepositState::Rejected) => Some(state),
                    DepositState::Waiting | DepositState::Claimed | DepositState::Vanished => None,
                }
            });
            match waited {
                Ok(Ok(lock)) => {
                    if deposit.state() == DepositState::Vanished {
                        // Removed by someone else, with no mark that it was written: write
                        // the response here, now that the lock is ours.
                        tracing::warn!(path = %self.lock_target.display(), "a hand-over record vanished without being marked written; writing the response itself");
                        return self.update_locked(&mut synced, lock, None, add);
                    }
                    // This call holds the lock: it writes the waiting responses, its own too
                    // (unless a holder just did).
                    self.update_locked(&mut synced, lock, Some(&deposit), |_| Ok(()))?;
                    return match deposit.state() {
                        DepositState::Written => {
                            deposit.acknowledge();
                            Ok(())
                        }
                        DepositState::Rejected => {
                            deposit.discard_rejected();
                            Err(rejected())
                        }
                        DepositState::Waiting | DepositState::Claimed | DepositState::Vanished => {
                            // It could not be read back; it must not be written later.
                            deposit.abandon();
                            Err(rejected())
                        }
                    };
                }
                Ok(Err(DepositState::Written)) => {
                    deposit.acknowledge();
                    // Another process wrote it. Keep it in memory too (it is saved whatever
                    // happens here); the next change or reload reads the file again.
                    if let Err(e) = add(&self.cache) {
                        tracing::debug!(error = %e, "saved response not kept in memory");
                    }
                    synced.outdate();
                    self.handed_over.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Err(_)) => {
                    deposit.discard_rejected();
                    return Err(rejected());
                }
                Err(e @ FileError::LockTimeout { .. }) => {
                    if deposit.withdraw() || waited_for_claimant {
                        return Err(e);
                    }
                    // A holder has it: its outcome is ours; wait for it once more.
                    waited_for_claimant = true;
                }
                Err(e) => {
                    deposit.withdraw();
                    return Err(e);
                }
            }
        }
    }

    /// Leaves a token response for the lock holder.
    fn deposit(
        &self,
        synced: &mut Synced,
        event: &TokenEvent,
        now: i64,
    ) -> Result<Deposit, FileError> {
        let record = Zeroizing::new(pending::encode_record(event, now));
        let bytes = match (self.key(synced, true)?, &self.options.encryption) {
            (Some(key), Some(source)) => Zeroizing::new(crypto::encrypt_record(
                record.as_bytes(),
                &key,
                source.key_id(),
                &self.cache_name(),
            )?),
            _ => Zeroizing::new(record.as_bytes().to_vec()),
        };
        Deposit::create(&pending_dir(&self.lock_target), &bytes)
    }

    /// Rewrites the file with the configured encryption (encrypting a plain file, or
    /// re-encrypting with a new key); with no encryption configured, writes it in plain text
    /// (decrypting it, given its key via `decrypt_with`).
    pub fn rewrite(&self, decrypt_with: Option<&KeySource>) -> Result<(), FileError> {
        let mut synced = self.synced();
        let _lock = CacheLock::acquire(&self.lock_target, self.options.lock)?;
        let Some(raw) = self.read_raw()? else {
            return Ok(());
        };
        let text = if is_dpapi_protected(&raw) {
            self.unprotect(&raw, true)?
        } else if crypto::is_encrypted(&raw) {
            let key_id = crypto::header_key_id(&raw).unwrap_or_default();
            let key = match decrypt_with.or(self.options.encryption.as_ref()) {
                Some(source) => source.resolve(false)?,
                None => {
                    return Err(FileError::KeyRequired {
                        path: self.lock_target.clone(),
                        key_id,
                    });
                }
            };
            let plain = crypto::decrypt(&raw, &key).ok_or_else(|| FileError::Decrypt {
                path: self.lock_target.clone(),
                key_id,
            })?;
            zeroize::Zeroizing::new(String::from_utf8_lossy(&plain).into_owned())
        } else {
            zeroize::Zeroizing::new(String::from_utf8_lossy(&raw).into_owned())
        };
        // Never rewrite what does not parse.
        self.cache
            .deserialize(&text)
            .map_err(|source| FileError::Corrupt {
                path: self.lock_target.clone(),
                source,
            })?;
        let bytes = self.encode(&mut synced, self.cache.serialize())?;
        self.write_raw(&bytes)?;
        synced.remember(Some(bytes));
        Ok(())
    }
}

#[cfg(all(any(target_os = "linux", target_os = "macos"), feature = "keyring"))]
fn touch(path: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::atomic::create_private_dirs(dir).map_err(err)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.set_modified(std::time::SystemTime::now()).map_err(err)
}
