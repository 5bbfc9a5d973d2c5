//! The core of tokencache: an MSAL-compatible token cache.
//!
//! This crate owns the data model of the MSAL "unified" cache (access tokens, refresh tokens,
//! ID tokens, accounts, app metadata), its JSON (de)serialization byte-identical to MSAL Python
//! 1.39 and readable in every MSAL dialect, the indexed in-memory [`TokenCache`], ingestion of
//! token responses with MSAL's semantics, lookups, removals, and the partition keys that
//! per-user stores are built on. It is synchronous and does no I/O: files, keyrings, databases
//! and HTTP live in the other tokencache crates.
//!
//! ```
//! use tokencache::{AccessTokenQuery, RefreshTokenQuery, TokenCache};
//!
//! // A cache file written by MSAL Python, .NET, Node, Java or Go (or the Azure CLI).
//! let text = r#"{"AccessToken": {}, "RefreshToken": {"uid.utid-login.microsoftonline.com-refreshtoken-cid--openid": {
//!     "credential_type": "RefreshToken", "secret": "RT", "home_account_id": "uid.utid",
//!     "environment": "login.microsoftonline.com", "client_id": "cid", "target": "openid"}}}"#;
//! let cache = TokenCache::from_json(text)?;
//!
//! let rts = cache.refresh_tokens(&RefreshTokenQuery::new("uid.utid").client_id("cid"));
//! assert_eq!(rts.len(), 1);
//! assert_eq!(format!("{:?}", rts[0].secret().unwrap()), "Secret(***)");
//! # Ok::<(), tokencache::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod access;
pub mod claims;
pub mod json;
pub mod keys;
#[cfg(feature = "crypto")]
#[cfg_attr(docsrs, doc(cfg(feature = "crypto")))]
pub mod seal;

mod cache;
mod clock;
mod entry;
mod error;
mod index;
mod ingest;
mod load;
mod partition;
mod problems;
mod query;
mod repair;
mod search;
mod secret;
mod section;
mod state;

pub use access::{
    AccessError, AccessErrorKind, CacheAccess, CacheAccessor, CacheChange, RefreshLease,
};
pub use cache::{Removed, TokenCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use entry::{
    AccessToken, Account, AppMetadata, Entry, Field, IdToken, RefreshToken, Section, scopes_of,
};
pub use error::Error;
pub use ingest::{
    CanonicalAuthority, GRANT_TYPES_THAT_ESTABLISH_AN_ACCOUNT, MAX_LIFETIME_SECS, TokenEvent,
    canonicalize, clamp_lifetime, decode_json_part, decode_jwt_claims, expiry_after,
    is_loopback_host,
};
pub use partition::{PartitionKey, partition_key};
pub use problems::{Problem, ProblemKind};
pub use query::{AccessTokenQuery, AccountQuery, RefreshTokenQuery};
pub use repair::{Repair, RepairAction};
pub use search::SearchResult;
pub use secret::{Secret, is_sensitive_member, redact_url};
