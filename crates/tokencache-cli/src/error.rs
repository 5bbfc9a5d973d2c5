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
    /// The file is not a token cache; it was left untouched.
    #[error("{} is not a valid token cache (left untouched): {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: tokencache::Error,
    },
    /// The file could not be written; the original is unchanged.
    #[error("cannot write {} (the original is unchanged): {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command refuses to act on this path.
    #[error("refusing to write {}: {reason}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
}

impl CliError {
    /// The process exit code: 2 for files that cannot be read or written, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Read { .. } | CliError::Write { .. } => 2,
            CliError::Parse { .. } | CliError::Refused { .. } => 1,
        }
    }
}
