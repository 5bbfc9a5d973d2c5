//! The error type of the desktop persistence crate.

use std::path::PathBuf;
use std::time::Duration;

use crate::lock::LockOwner;

/// What can go wrong with a cache file. Messages never include a secret or a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// An I/O error on a path.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process held the lock for longer than the timeout.
    #[error("timed out after {} waiting for the cache lock {} (held by {})", span(*waited), path.display(), holder.as_ref().map_or("an unknown process".to_owned(), ToString::to_string))]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// Who holds it, as the lock file says.
        holder: Option<LockOwner>,
    },
    /// The cache path is a symbolic link; refused so that a link cannot redirect where tokens
    /// are written.
    #[error("refusing to use {}: it is a symbolic link", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The file is not a valid cache. It was left untouched (or moved aside, by policy).
    #[error("{} is not a valid token cache and was left untouched: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: tokencache::Error,
    },
    /// The file is encrypted and no key was configured.
    #[error("{} is encrypted (key: {key_id}); configure its key to read it", path.display())]
    KeyRequired {
        /// The file.
        path: PathBuf,
        /// Which kind of key it was encrypted with.
        key_id: String,
    },
    /// The file is plain JSON although a key is configured: refused, since anyone who could
    /// write the file could have planted it (a downgrade, or tokens injected into the cache).
    /// Nothing was changed. A first encryption of an existing plain cache is explicit:
    /// `tokencache encrypt`, or `FileOptions::accept_plaintext`.
    #[error("{} is not encrypted, but a key is configured: refusing it (it may have been replaced); to encrypt an existing plain cache, run `tokencache encrypt` or open it once with FileOptions::accept_plaintext", path.display())]
    NotEncrypted {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be decrypted: a wrong key, or a damaged file. Nothing was changed.
    #[error("cannot decrypt {} (key: {key_id}): wrong key or damaged file; it was left untouched", path.display())]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// Which kind of key it was encrypted with.
        key_id: String,
    },
    /// Windows DPAPI (the whole file sealed with `CryptProtectData`, as the Azure CLI's
    /// `msal_token_cache.bin`): the file could not be opened or sealed (`reason` says why:
    /// another user's or machine's file, a damaged one, or a system other than Windows), or
    /// it is such a file and the store was not opened for it. Nothing was changed.
    #[error("{}: {reason}", path.display())]
    DataProtection {
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A key could not be obtained or has the wrong format.
    #[error("encryption key: {reason}")]
    Key {
        /// Why.
        reason: String,
    },
    /// The OS keyring failed or is unavailable.
    #[error("keyring: {reason}")]
    Keyring {
        /// Why.
        reason: String,
    },
    /// A token response handed to the process holding the lock (group commit, see
    /// `FileStore::add`) could not be read by it, typically because it uses another
    /// encryption key. The response was not saved.
    #[error("the process holding the lock of {} could not read the token response handed to it (does it use another encryption key?); the response was not saved", path.display())]
    HandOverRejected {
        /// The cache file.
        path: PathBuf,
    },
    /// The cache rejected the change (e.g. an invalid token response).
    #[error(transparent)]
    Cache(#[from] tokencache::Error),
}

/// A wait as a person reads it: `30 s`, `1.5 s`, `300 ms`.
pub(crate) fn span(waited: Duration) -> String {
    let ms = waited.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 < 50 || ms >= 10_000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        format!("{:.1} s", waited.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_people_write_them() {
        assert_eq!(span(Duration::from_nanos(30_000_469_226)), "30 s");
        assert_eq!(span(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(span(Duration::from_millis(300)), "300 ms");
        assert_eq!(span(Duration::from_millis(5004)), "5 s");
    }
}
