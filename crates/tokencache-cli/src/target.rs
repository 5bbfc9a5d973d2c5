//! What a verb works on: a cache file or a partitioned store, named on the command line.

use std::fmt;
use std::path::PathBuf;

use crate::error::CliError;

/// The schemes of store URLs.
const SCHEMES: &[&str] = &[
    "sqlite://",
    "postgres://",
    "postgresql://",
    "redis://",
    "rediss://",
    "redis+cluster://",
    "memory://",
];

/// True when `location` is a store URL rather than a cache file path.
pub fn is_store_url(location: &str) -> bool {
    let lower = location.to_ascii_lowercase();
    SCHEMES.iter().any(|s| lower.starts_with(s))
}

/// A cache file (a plain path) or a store URL (`sqlite://`, `postgres://`, `redis://`,
/// `redis+cluster://`, `memory://`).
/// Printed (`Display` and `Debug`) with any password blanked ([`tokencache::redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A cache file in MSAL's JSON format (maybe encrypted).
    File(PathBuf),
    /// A partitioned store, by URL.
    #[cfg(feature = "stores")]
    Store(String),
}

impl Target {
    /// What `location` names. A store URL needs a CLI built with store support.
    pub fn parse(location: &str) -> Result<Target, CliError> {
        if !is_store_url(location) {
            return Ok(Target::File(PathBuf::from(location)));
        }
        #[cfg(feature = "stores")]
        return Ok(Target::Store(location.to_owned()));
        #[cfg(not(feature = "stores"))]
        return Err(CliError::Usage(format!(
            "{}: this tokencache was built without store URLs (cargo features `sqlite`, `postgres`, `redis`)",
            tokencache::redact_url(location)
        )));
    }

    /// The location as given, password included: for opening it, never for printing (the
    /// `Display` form blanks passwords).
    #[cfg(feature = "stores")]
    pub fn location(&self) -> String {
        match self {
            Target::File(path) => path.to_string_lossy().into_owned(),
            #[cfg(feature = "stores")]
            Target::Store(url) => url.clone(),
        }
    }

    /// True for a store URL.
    #[cfg(feature = "stores")]
    pub fn is_store(&self) -> bool {
        !matches!(self, Target::File(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "stores")]
            Target::Store(url) => f.write_str(&tokencache::redact_url(url)),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(path) => f.debug_tuple("File").field(path).finish(),
            #[cfg(feature = "stores")]
            Target::Store(url) => f
                .debug_tuple("Store")
                .field(&tokencache::redact_url(url))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_a_file_and_a_url_is_a_store() {
        assert_eq!(
            Target::parse("cache.json").ok(),
            Some(Target::File("cache.json".into()))
        );
        assert!(is_store_url("REDIS://h:1/"));
        #[cfg(feature = "stores")]
        {
            assert_eq!(
                Target::parse("sqlite://tokens.db").ok(),
                Some(Target::Store("sqlite://tokens.db".into()))
            );
            assert!(Target::parse("REDIS://h:1/").is_ok_and(|t| t.is_store()));
        }
        #[cfg(not(feature = "stores"))]
        assert!(Target::parse("sqlite://tokens.db").is_err());
    }
}
