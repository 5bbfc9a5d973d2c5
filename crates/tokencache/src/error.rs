//! The core crate's error type.

/// Everything that can go wrong in the core. Messages never contain a token or secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// The JSON is valid but its top level is not an object.
    #[error("a token cache must be a JSON object")]
    NotAnObject,
    /// A known section holds something other than an object, so it cannot be written to.
    #[error(
        "section \"{section}\" is not a JSON object; it is kept as it is and cannot be modified"
    )]
    SectionNotAnObject {
        /// The section name.
        section: &'static str,
    },
    /// A token endpoint or authority URL MSAL would reject.
    #[error("invalid token endpoint: {reason}")]
    InvalidTokenEndpoint {
        /// Why.
        reason: String,
    },
    /// A token response that cannot be cached.
    #[error("invalid token response: {reason}")]
    InvalidResponse {
        /// Why (never includes token values).
        reason: String,
    },
    /// A partition document holds an entry of another partition.
    #[error("entry {key:?} of section {section} does not belong to partition {partition:?}")]
    ForeignPartitionEntry {
        /// The section.
        section: &'static str,
        /// The entry's key.
        key: String,
        /// The partition being replaced.
        partition: String,
    },
    /// A data key is missing, malformed or cannot be made (feature `crypto`).
    #[error("encryption key: {reason}")]
    Key {
        /// Why (never the key).
        reason: String,
    },
    /// Sealing a document failed (feature `crypto`). Nothing was written.
    #[error("encryption failed: {reason}")]
    Seal {
        /// Why.
        reason: String,
    },
    /// A sealed document could not be opened (feature `crypto`): not a whole envelope, a wrong
    /// key, or altered or moved.
    #[error("cannot decrypt: {reason}")]
    Unseal {
        /// Why (never content).
        reason: String,
    },
}
