//! The cache-access contract: how a client application reaches the token cache, wherever the
//! cache lives.
//!
//! ## The contract
//!
//! MSAL's cache plugins have two moments, *before access* (load the cache) and *after access*
//! (save it if it changed). A [`CacheAccessor`] has the same two moments with one change that
//! prevents lost updates: the "after access" call receives the change itself
//! ([`CacheChange`]), so the accessor applies it under its own lock or compare-and-set, after
//! re-reading what other processes wrote, instead of writing back a copy that may be stale. A
//! change is idempotent, so an accessor may apply it again after a conflict.
//!
//! ## Who implements it
//!
//! The client crate keeps an in-memory accessor for every application built without one; the
//! file crate's `FileAccessor` shares one cache file between processes; the store crate's
//! `PartitionedCache` keeps one partition per user in SQLite, PostgreSQL or Redis. They all
//! depend on this module and on nothing of each other.
//!
//! ## Why futures, and no runtime
//!
//! Loading a partition is network I/O for a database-backed accessor, so the methods return a
//! boxed future ([`BoxFuture`]). The type is plain `std`: this crate still does no I/O and
//! needs no async runtime; the accessor that does I/O brings its own.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{PartitionKey, TokenCache, TokenEvent};

/// A boxed, sendable future: what the accessor's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error, kept as the source of an [`AccessError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A change to apply to a cache: a token response to add, a refresh token to update, an
/// account to remove. It can be applied more than once (after a conflict) with the same result.
pub type CacheChange = Arc<dyn Fn(&TokenCache) -> Result<(), crate::Error> + Send + Sync>;

/// What a cache access is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheAccess<'a> {
    /// The client id of the application.
    pub client_id: &'a str,
    /// The partition the access is about: the account's `home_account_id`, the app partition
    /// `{client_id}_{tenant}_AppTokenCache`, or the OBO assertion hash. `None` when the access
    /// spans accounts (listing accounts) or the account is not known yet.
    pub partition_key: Option<&'a PartitionKey>,
}

/// Where an application's token cache lives.
///
/// ```
/// use std::sync::Arc;
/// use tokencache::access::{AccessError, BoxFuture, CacheAccess, CacheAccessor, CacheChange};
/// use tokencache::TokenCache;
///
/// /// One cache for the life of the process.
/// #[derive(Debug, Default)]
/// struct Shared(Arc<TokenCache>);
///
/// impl CacheAccessor for Shared {
///     fn load<'a>(&'a self, _: CacheAccess<'a>) -> BoxFuture<'a, Result<Arc<TokenCache>, AccessError>> {
///         Box::pin(async move { Ok(self.0.clone()) })
///     }
///     fn save<'a>(&'a self, _: CacheAccess<'a>, change: CacheChange) -> BoxFuture<'a, Result<(), AccessError>> {
///         Box::pin(async move { Ok(change(&self.0)?) })
///     }
/// }
/// ```
pub trait CacheAccessor: Send + Sync + fmt::Debug {
    /// Before access: the cache to read, brought up to date (re-read from a file, or the
    /// partition loaded from a database).
    fn load<'a>(
        &'a self,
        access: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Arc<TokenCache>, AccessError>>;

    /// After access, when the cache changes: apply `change` and persist the result.
    fn save<'a>(
        &'a self,
        access: CacheAccess<'a>,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>>;

    /// After a token response that only adds to the cache (a sign-in, client credentials,
    /// on-behalf-of; not a refresh, which also rotates the old refresh token): `change` is
    /// `cache.add_at(event, now)`, and an accessor that can hand the response itself to another
    /// process does so (the file accessor's group commit). The default applies `change` like
    /// [`CacheAccessor::save`].
    fn save_token_response<'a>(
        &'a self,
        access: CacheAccess<'a>,
        event: Arc<TokenEvent>,
        now: i64,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        let _ = (event, now);
        self.save(access, change)
    }

    /// Called before a refresh of the partition's tokens: an accessor shared by several
    /// processes waits here until no other process is refreshing the same partition, so a
    /// rotating refresh token is never used twice, and returns the lease it took. The lease is
    /// released by [`RefreshLease::release`], or when it is dropped (a cancelled call). The
    /// default takes none: within one process the application already refreshes one at a time.
    fn refresh_lease<'a>(
        &'a self,
        access: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Option<RefreshLease>, AccessError>> {
        let _ = access;
        Box::pin(async { Ok(None) })
    }
}

/// How an accessor gives a refresh lease back; what a [`RefreshLease`] holds.
pub trait ReleaseLease: Send {
    /// Releases the lease now.
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<(), AccessError>>;

    /// Releases the lease without waiting: called when the [`RefreshLease`] is dropped
    /// without [`RefreshLease::release`] (the call holding it was cancelled). An accessor with
    /// an async runtime spawns the release there.
    fn release_in_background(self: Box<Self>);
}

/// A refresh lease held by this process: released when [`released`](RefreshLease::release)
/// or dropped, so a cancelled call never keeps other processes waiting for the lease to
/// expire.
pub struct RefreshLease {
    holder: Option<Box<dyn ReleaseLease>>,
}

impl RefreshLease {
    /// A lease that `holder` gives back.
    pub fn new(holder: Box<dyn ReleaseLease>) -> RefreshLease {
        RefreshLease {
            holder: Some(holder),
        }
    }

    /// Gives the lease back and waits until it is.
    pub async fn release(mut self) -> Result<(), AccessError> {
        match self.holder.take() {
            Some(holder) => holder.release().await,
            None => Ok(()),
        }
    }
}

impl Drop for RefreshLease {
    fn drop(&mut self) {
        if let Some(holder) = self.holder.take() {
            holder.release_in_background();
        }
    }
}

impl fmt::Debug for RefreshLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshLease")
            .field("held", &self.holder.is_some())
            .finish()
    }
}

/// What kind of failure an [`AccessError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessErrorKind {
    /// The cache rejected the change (the source is a [`crate::Error`]).
    Cache,
    /// The place the cache lives could not be reached or failed (a database down, a lock
    /// not acquired in time); retrying later may succeed.
    Unavailable,
    /// What is stored could not be read: not a cache document, or damaged. It is left as it is.
    Unreadable,
    /// Encryption or decryption failed, or a key is missing or invalid.
    Encryption,
    /// Saves kept conflicting with concurrent writers.
    Contention,
    /// The access needs a partition key the call did not give (a partitioned accessor asked
    /// to list accounts across users).
    NeedsPartition,
    /// Anything else.
    Other,
}

/// An accessor's failure: its [kind](AccessErrorKind) and the error that caused it, kept as
/// the [source](std::error::Error::source) so callers can walk the chain or downcast it.
///
/// ```
/// use tokencache::access::{AccessError, AccessErrorKind};
/// let e = AccessError::new(AccessErrorKind::Unavailable, std::io::Error::other("connection refused"));
/// assert!(e.is_unavailable());
/// assert!(std::error::Error::source(&e).unwrap().downcast_ref::<std::io::Error>().is_some());
/// assert_eq!(e.to_string(), "token cache unavailable: connection refused");
/// ```
#[derive(Debug)]
pub struct AccessError {
    kind: AccessErrorKind,
    source: BoxError,
}

impl AccessError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: AccessErrorKind, source: impl Into<BoxError>) -> AccessError {
        AccessError {
            kind,
            source: source.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> AccessErrorKind {
        self.kind
    }

    /// True for transient failures of the place the cache lives.
    pub fn is_unavailable(&self) -> bool {
        self.kind == AccessErrorKind::Unavailable
    }

    /// The error that caused this one.
    pub fn inner(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.source
    }

    /// The cause, as its own type (for example the store crate's error), or this error back.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            AccessErrorKind::Cache => "token cache",
            AccessErrorKind::Unavailable => "token cache unavailable",
            AccessErrorKind::Unreadable => "stored token cache unreadable",
            AccessErrorKind::Encryption => "token cache encryption",
            AccessErrorKind::Contention => "token cache contention",
            AccessErrorKind::NeedsPartition => "token cache access",
            AccessErrorKind::Other => "token cache accessor",
        };
        write!(f, "{what}: {}", self.source)
    }
}

impl StdError for AccessError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

impl From<crate::Error> for AccessError {
    fn from(e: crate::Error) -> Self {
        AccessError::new(AccessErrorKind::Cache, e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);

    impl ReleaseLease for Counted {
        fn release(self: Box<Self>) -> BoxFuture<'static, Result<(), AccessError>> {
            let released = self.0.clone();
            Box::pin(async move {
                released.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
        fn release_in_background(self: Box<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The futures here complete on their first poll.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the future was expected to complete at once"),
        }
    }

    #[test]
    fn a_lease_is_given_back_once_whether_released_or_dropped() {
        let (released, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let lease = RefreshLease::new(Box::new(Counted(released.clone(), dropped.clone())));
        block_on(lease.release()).unwrap();
        assert_eq!(
            (
                released.load(Ordering::SeqCst),
                dropped.load(Ordering::SeqCst)
            ),
            (1, 0)
        );

        let lease = RefreshLease::new(Box::new(Counted(released.clone(), dropped.clone())));
        drop(lease);
        assert_eq!(
            (
                released.load(Ordering::SeqCst),
                dropped.load(Ordering::SeqCst)
            ),
            (1, 1)
        );
    }

    #[test]
    fn an_access_error_keeps_its_source() {
        let e = AccessError::from(crate::Error::NotAnObject);
        assert_eq!(e.kind(), AccessErrorKind::Cache);
        let source = StdError::source(&e).unwrap();
        assert!(matches!(
            source.downcast_ref::<crate::Error>(),
            Some(crate::Error::NotAnObject)
        ));
        let inner = e.into_inner().downcast::<crate::Error>().unwrap();
        assert!(matches!(*inner, crate::Error::NotAnObject));
    }
}
