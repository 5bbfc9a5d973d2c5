//! What a verb works on: a cache file or a partitioned store, named on the command line.

use std::fmt;
use std::path::PathBuf;

/// A cache file (a plain path) or a store URL (`sqlite://`, `postgres://`, `redis://`,
/// `redis+cluster://`, `memory://`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A cache file in MSAL's JSON format (maybe encrypted).
    File(PathBuf),
    /// A partitioned store, by URL.
    Store(String),
}

impl Target {
    /// What `location` names.
    pub fn parse(location: &str) -> Target {
        if crate::stores::is_store_url(location) {
            Target::Store(location.to_owned())
        } else {
            Target::File(PathBuf::from(location))
        }
    }

    /// True for a store URL.
    pub fn is_store(&self) -> bool {
        matches!(self, Target::Store(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(path) => write!(f, "{}", path.display()),
            Target::Store(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_a_file_and_a_url_is_a_store() {
        assert_eq!(
            Target::parse("cache.json"),
            Target::File("cache.json".into())
        );
        assert_eq!(
            Target::parse("sqlite://tokens.db"),
            Target::Store("sqlite://tokens.db".into())
        );
        assert!(Target::parse("REDIS://h:1/").is_store());
    }
}
