//! The crate's one error type.

/// Everything that can go wrong in a partitioned store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend (database, Redis) could not be reached or failed; transient.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// `sqlite`, `postgres`, `redis`, ...
        backend: &'static str,
        /// What failed (never a token).
        reason: String,
    },
    /// The store URL is not understood.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// Options that cannot work together, such as more shared connections than the pool allows.
    #[error("invalid store options: {reason}")]
    InvalidOptions {
        /// Why.
        reason: String,
    },
    /// A stored partition could not be read: not a cache document, or encrypted with a key this
    /// store does not have. The partition is left as it is.
    #[error("partition {partition:?} is unreadable: {reason}")]
    Unreadable {
        /// The partition key.
        partition: String,
        /// Why.
        reason: String,
    },
    /// A change would have put another partition's entries into this one.
    #[error("refused: a change to partition {partition:?} touches entries of {other:?}")]
    Isolation {
        /// The partition being saved.
        partition: String,
        /// The foreign partition.
        other: String,
    },
    /// Saves kept conflicting with concurrent writers.
    #[error("partition {partition:?}: still conflicting after {attempts} attempts")]
    Contention {
        /// The partition key.
        partition: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Encrypting a partition failed (no system randomness, a cipher failure). Nothing was
    /// written.
    #[error("partition encryption failed: {reason}")]
    Encryption {
        /// Why (never a key or a token).
        reason: String,
    },
    /// A partition key configuration is invalid (an empty or too long key id, a key of the
    /// wrong length).
    #[error("invalid partition key: {reason}")]
    Key {
        /// Why (never the key itself).
        reason: String,
    },
    /// The cache rejected the change.
    #[error("token cache: {0}")]
    Cache(#[from] tokencache::Error),
}

impl StoreError {
    /// True for transient backend failures (retrying later may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl From<StoreError> for tokencache::AccessError {
    /// The kind the client asks about, with this error kept as the source.
    fn from(e: StoreError) -> Self {
        use tokencache::AccessErrorKind as Kind;
        if let StoreError::Cache(cache) = e {
            return tokencache::AccessError::from(cache);
        }
        let kind = match &e {
            StoreError::Unavailable { .. } => Kind::Unavailable,
            StoreError::Unreadable { .. } => Kind::Unreadable,
            StoreError::Encryption { .. } | StoreError::Key { .. } => Kind::Encryption,
            StoreError::Contention { .. } => Kind::Contention,
            StoreError::Cache(_) => Kind::Cache,
            StoreError::InvalidUrl { .. }
            | StoreError::InvalidOptions { .. }
            | StoreError::Isolation { .. } => Kind::Other,
        };
        tokencache::AccessError::new(kind, e)
    }
}

/// The crate's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A URL fit for messages: the core's one redaction (user info and password parameters
/// blanked, even when the URL does not parse).
pub(crate) fn redact_url(url: &str) -> String {
    tokencache::redact_url(url)
}
