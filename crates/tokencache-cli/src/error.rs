//! The CLI's error type.

use std::path::PathBuf;

/// What can stop a command. Messages never include secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cache file store failed (lock, corrupt file, encryption, keyring).
    #[error(transparent)]
    File(#[from] tokencache_file::FileError),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// A partitioned store failed (unreachable, unreadable partition, ...).
    #[cfg(feature = "stores")]
    #[error(transparent)]
    Store(#[from] tokencache_store::StoreError),
    /// The cache refused a document.
    #[error(transparent)]
    Cache(#[from] tokencache::Error),
}

/// The exit code of a cache that cannot be read or written (and of a usage error).
pub const CANNOT_READ: u8 = 2;

/// The exit code of a verb that found problems or could not do what it was asked.
pub const PROBLEMS: u8 = 1;

impl CliError {
    /// The process exit code, as every verb's `--help` documents it: 2 when the cache cannot
    /// be read or written (missing, not a cache, encrypted without its key or with another,
    /// a refused path, a store that cannot be reached) or the arguments are wrong; 1 when the
    /// verb could not complete for another reason (a lock held too long, a partition that
    /// conflicts).
    pub fn exit_code(&self) -> u8 {
        use tokencache_file::FileError as F;
        #[cfg(feature = "stores")]
        use tokencache_store::StoreError as S;
        match self {
            CliError::Read { .. } | CliError::Write { .. } | CliError::Usage(_) => CANNOT_READ,
            CliError::File(
                F::Io { .. }
                | F::Corrupt { .. }
                | F::KeyRequired { .. }
                | F::NotEncrypted { .. }
                | F::Decrypt { .. }
                | F::DataProtection { .. }
                | F::Key { .. }
                | F::Keyring { .. }
                | F::Symlink { .. },
            ) => CANNOT_READ,
            #[cfg(feature = "stores")]
            CliError::Store(S::Unavailable { .. } | S::InvalidUrl { .. } | S::Key { .. }) => {
                CANNOT_READ
            }
            _ => PROBLEMS,
        }
    }

    /// What to do about it, when the message alone does not say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CliError::File(tokencache_file::FileError::KeyRequired { .. }) => {
                Some("pass its key with --key-file PATH, --key-env VAR or --keyring NAME")
            }
            CliError::File(tokencache_file::FileError::NotEncrypted { .. }) => Some(
                "if you know the plain file is yours, encrypt it with `tokencache encrypt FILE --key-file PATH`; otherwise restore it from a copy you trust",
            ),
            CliError::File(tokencache_file::FileError::Decrypt { .. }) => Some(
                "pass the key it was encrypted with (--key-file, --key-env or --keyring); to re-encrypt, the old one with --previous-key-file",
            ),
            _ => None,
        }
    }
}
