//! The file side of the verbs: opening a cache file through the file store, reading it
//! without a lock, keeping a copy.

use std::path::Path;
use std::sync::Arc;

use tokencache::TokenCache;
use tokencache_file::{FileOptions, FileStore};

use crate::error::CliError;
use crate::keys::KeyArgs;

/// The file store over `file`, with the key options given. On Windows, a file sealed with
/// DPAPI (the Azure CLI's `msal_token_cache.bin`, msal-extensions'
/// `FilePersistenceWithDataProtection`) is opened as one, and written back sealed, when no key
/// is given; elsewhere the store says that only Windows can read it.
pub fn open(file: &Path, key: &KeyArgs) -> Result<FileStore, CliError> {
    let encryption = key.source()?;
    let options = FileOptions {
        windows_data_protection: cfg!(windows) && encryption.is_none() && dpapi_protected(file),
        encryption,
        ..FileOptions::default()
    };
    Ok(FileStore::open(file, options)?)
}

/// True when `file` starts as a Windows DPAPI blob.
pub fn dpapi_protected(file: &Path) -> bool {
    use std::io::Read;
    let mut start = Vec::with_capacity(20);
    std::fs::File::open(file)
        .and_then(|f| f.take(20).read_to_end(&mut start))
        .is_ok_and(|_| tokencache_file::is_dpapi_protected(&start))
}

/// Opens a cache file for `migrate`, an explicit import: under a key, a plain file is read
/// (and, as a target, encrypted when written) instead of refused.
#[cfg(feature = "stores")]
pub fn open_for_import(file: &Path, key: &KeyArgs) -> Result<FileStore, CliError> {
    let options = FileOptions {
        encryption: key.source()?,
        accept_plaintext: true,
        ..FileOptions::default()
    };
    Ok(FileStore::open(file, options)?)
}

/// The error every verb gives for a cache file that is not there.
pub fn no_such_file(file: &Path) -> CliError {
    CliError::Read {
        path: file.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    }
}

/// Loads a cache read-only (no lock, as MSAL readers do).
pub fn load(file: &Path, key: &KeyArgs) -> Result<Arc<TokenCache>, CliError> {
    existing(file)?;
    let store = open(file, key)?;
    store.reload()?;
    Ok(store.cache().clone())
}

/// Fails unless `file` exists and is not a directory (a writing verb never creates the cache
/// it was asked to change).
pub fn existing(file: &Path) -> Result<(), CliError> {
    match std::fs::symlink_metadata(file) {
        Ok(meta) if meta.is_dir() => Err(CliError::Read {
            path: file.to_owned(),
            source: std::io::Error::other("a directory, not a cache file"),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_such_file(file)),
        Err(source) => Err(CliError::Read {
            path: file.to_owned(),
            source,
        }),
    }
}

/// Copies `file` byte for byte to a new file `to`, readable by its owner only.
pub fn keep_copy(file: &Path, to: &Path) -> Result<(), CliError> {
    use std::io::Write;
    let bytes = std::fs::read(file).map_err(|source| CliError::Read {
        path: file.to_owned(),
        source,
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut copy = options.open(to).map_err(|source| CliError::Write {
        path: to.to_owned(),
        source,
    })?;
    // A copy cut short (a full disk, a size limit) is no copy: remove it, and fail before the
    // cache is changed.
    let written = copy.write_all(&bytes).and_then(|()| copy.sync_all());
    drop(copy);
    written.map_err(|source| {
        let _ = std::fs::remove_file(to);
        CliError::Write {
            path: to.to_owned(),
            source,
        }
    })
}

/// Runs `work` (which may wait for the cache's lock) and, when it is still waiting after a
/// second, says on stderr who holds the lock and how long this process will wait.
pub fn noticing_waits<T>(file: &Path, work: impl FnOnce() -> T) -> T {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if finished
                .recv_timeout(std::time::Duration::from_secs(1))
                .is_ok()
            {
                return;
            }
            if let Ok(tokencache_file::LockStatus::Held {
                owner: Some(owner), ..
            }) = tokencache_file::lock_status(file)
                && owner.pid != std::process::id()
            {
                let timeout = tokencache_file::LockOptions::default().timeout.as_secs();
                eprintln!(
                    "tokencache: waiting for the lock of {}, held by {owner}; giving up after {timeout} s",
                    file.display()
                );
            }
        });
        let out = work();
        let _ = done.send(());
        out
    })
}
