//! A client application over the file store's accessor: a second run is silent, and a
//! sign-in that finds the file locked hands its response to the lock holder (group commit).

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Idp, device_sign_in};
use tokencache::{Section, TokenCache};
use tokencache_client::{PublicClientApplication, SilentOptions, TokenSource};
use tokencache_file::FileAccessor;

const API: &str = "api://test-api/read";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_finds_the_cache_file_locked_hands_its_response_over() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let file = Arc::new(tokencache_file::FileStore::open(&path, Default::default()).unwrap());
    let app = PublicClientApplication::builder("public-app")
        .authority(&idp.authority())
        .unwrap()
        .cache_accessor(Arc::new(FileAccessor::new(file.clone())))
        .build()
        .unwrap();
    // Another process holds the lock (an MSAL Python app, say) until the response waits.
    let lock = tokencache_file::CacheLock::acquire(&path, Default::default()).unwrap();
    let pending = dir.path().join("cache.json.pending");
    let releaser = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            let waiting = std::fs::read_dir(&pending).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "rec"))
            });
            if waiting {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(lock);
    });
    let result = device_sign_in(&idp, &app, "bob").await;
    releaser.join().unwrap();
    assert_eq!(result.token_source, TokenSource::IdentityProvider);
    // The response went through the hand-over path; the first lock holder (this store) wrote it.
    assert_eq!(file.group_commit_stats().written_for_waiters, 1);
    let accounts = tokencache_file::FileStore::open(&path, Default::default())
        .and_then(|reader| reader.reload().map(|_| reader.cache().all_accounts()))
        .unwrap();
    assert_eq!(accounts.len(), 1);
}

#[tokio::test]
async fn a_file_store_makes_the_second_run_silent() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let run = || {
        let file = tokencache_file::FileStore::open(&path, Default::default()).unwrap();
        PublicClientApplication::builder("public-app")
            .authority(&idp.authority())
            .unwrap()
            .cache_accessor(Arc::new(FileAccessor::new(Arc::new(file))))
            .build()
            .unwrap()
    };
    let first_run = run();
    device_sign_in(&idp, &first_run, "alice").await;
    drop(first_run);
    let second_run = run();
    let accounts = second_run.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    let hit = second_run
        .acquire_token_silent(&[API], &accounts[0])
        .await
        .unwrap();
    assert_eq!(hit.token_source, TokenSource::Cache);
    // A refresh through the store rewrites the file with the rotated token.
    let before = std::fs::read_to_string(&path).unwrap();
    second_run
        .acquire_token_silent_with(
            &[API],
            &accounts[0],
            &SilentOptions::default().force_refresh(),
        )
        .await
        .unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert_ne!(before, after);
    let reread = TokenCache::from_json(&after).unwrap();
    assert_eq!(reread.len(Section::RefreshToken), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
