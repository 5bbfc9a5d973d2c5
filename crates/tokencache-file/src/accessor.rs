//! [`FileAccessor`]: the file store as the core's [`CacheAccessor`], for client applications.

use std::sync::Arc;

use tokencache::TokenCache;
use tokencache::access::{
    AccessError, AccessErrorKind, BoxFuture, CacheAccess, CacheAccessor, CacheChange,
};

use crate::{FileError, FileStore};

/// A cache file shared with other processes and other MSAL apps, through a [`FileStore`]:
/// loads re-read the file when another process changed it; saves take the cross-process lock,
/// re-read, apply the change and write atomically; a token response that finds the file
/// locked is handed to the lock holder (group commit). The blocking file work runs on tokio's
/// blocking pool.
///
/// ```no_run
/// # fn f() -> Result<(), tokencache_file::FileError> {
/// use std::sync::Arc;
/// use tokencache_file::{FileAccessor, FileOptions, FileStore};
/// let file = FileStore::open("/home/me/.cache/myapp/msal_token_cache.json", FileOptions::default())?;
/// let accessor = Arc::new(FileAccessor::new(Arc::new(file)));
/// // Give it to an application: `PublicClientApplication::builder(..).cache_accessor(accessor)`.
/// # let _ = accessor; Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "accessor")))]
#[derive(Clone, Debug)]
pub struct FileAccessor {
    file: Arc<FileStore>,
}

impl FileAccessor {
    /// An accessor over a file store.
    pub fn new(file: Arc<FileStore>) -> FileAccessor {
        FileAccessor { file }
    }

    /// The file store.
    pub fn file(&self) -> &Arc<FileStore> {
        &self.file
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&FileStore) -> Result<T, FileError> + Send + 'static,
    ) -> Result<T, AccessError> {
        let file = self.file.clone();
        match tokio::task::spawn_blocking(move || work(&file)).await {
            Ok(result) => result.map_err(access_error),
            Err(join) => Err(AccessError::new(AccessErrorKind::Other, join)),
        }
    }
}

/// The largest cache file a load re-reads on the calling task (a read and a parse of this
/// much take tens of microseconds).
const INLINE_RELOAD_BYTES: u64 = 64 * 1024;

/// The kind a file store's failure is, for the client's questions about it.
fn access_error(e: FileError) -> AccessError {
    let kind = match &e {
        FileError::Cache(_) => AccessErrorKind::Cache,
        FileError::LockTimeout { .. } | FileError::Io { .. } | FileError::Keyring { .. } => {
            AccessErrorKind::Unavailable
        }
        FileError::Corrupt { .. } => AccessErrorKind::Unreadable,
        FileError::KeyRequired { .. } | FileError::Decrypt { .. } | FileError::Key { .. } => {
            AccessErrorKind::Encryption
        }
        _ => AccessErrorKind::Other,
    };
    AccessError::new(kind, e)
}

impl CacheAccessor for FileAccessor {
    fn load<'a>(
        &'a self,
        _: CacheAccess<'a>,
    ) -> BoxFuture<'a, Result<Arc<TokenCache>, AccessError>> {
        Box::pin(async move {
            // A small cache is re-read here, without a trip to the blocking pool (a thread
            // hand-off costs more than reading a few kilobytes); anything that could wait
            // (a larger file, another thread using the store, a key from the keyring, a file
            // to re-read after a failed parse) goes to the pool.
            match self.file.try_reload(INLINE_RELOAD_BYTES) {
                Some(done) => done.map(drop).map_err(access_error)?,
                None => self.blocking(|file| file.reload().map(drop)).await?,
            }
            Ok(self.file.cache().clone())
        })
    }

    fn save<'a>(
        &'a self,
        _: CacheAccess<'a>,
        change: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move {
            self.blocking(move |file| file.update(|cache| change(cache)))
                .await
        })
    }

    /// Records the response with [`FileStore::add_at`]: when another process holds the cache
    /// lock, the response is handed to it (group commit).
    fn save_token_response<'a>(
        &'a self,
        _: CacheAccess<'a>,
        event: Arc<tokencache::TokenEvent>,
        now: i64,
        _: CacheChange,
    ) -> BoxFuture<'a, Result<(), AccessError>> {
        Box::pin(async move { self.blocking(move |file| file.add_at(&event, now)).await })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;

    #[tokio::test]
    async fn a_corrupt_file_is_an_unreadable_error_that_keeps_the_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, "not json").unwrap();
        let file = FileStore::open(&path, crate::FileOptions::default()).unwrap();
        let accessor = FileAccessor::new(Arc::new(file));
        let access = CacheAccess {
            client_id: "app",
            partition_key: None,
        };
        let e = accessor.load(access).await.unwrap_err();
        assert_eq!(e.kind(), AccessErrorKind::Unreadable);
        let source = std::error::Error::source(&e).unwrap();
        assert!(matches!(
            source.downcast_ref::<FileError>(),
            Some(FileError::Corrupt { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }
}
