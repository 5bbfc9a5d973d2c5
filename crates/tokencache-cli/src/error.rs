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
    #[error(transparent)]
    Store(#[from] tokencache_store::StoreError),
    /// The cache refused a document.
    #[error(transparent)]
    Cache(#[from] tokencache::Error),
}

impl CliError {
    /// The process exit code: 2 for files that cannot be read or written and for usage
    /// errors, 1 otherwise (invalid caches, refused paths, locks, keys).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Read { .. } | CliError::Write { .. } | CliError::Usage(_) => 2,
            CliError::File(tokencache_file::FileError::Io { .. }) => 2,
            _ => 1,
        }
    }
}
