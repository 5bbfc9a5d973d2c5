//! Group commit: a token response that finds the cache locked is handed to the lock holder,
//! which writes it with its own change; the waiter returns only once it is in the file.
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{accounts_in, user_event};
use tokencache_file::{
    DataKey, FileError, FileOptions, FileStore, GroupCommitStats, KeySource, LockOptions,
};

fn pending(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pending", path.display()))
}

/// Names in the pending directory with the given extension.
fn records(path: &Path, extension: &str) -> usize {
    std::fs::read_dir(pending(path)).map_or(0, |entries| {
        entries
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == extension)
            })
            .count()
    })
}

/// A plain cache file in a fresh directory and a store on it.
/// How many processes or threads are blocked waiting for the OS lock (`flock`) on the cache's
/// lock file, as the kernel lists them in `/proc/locks` (`->` marks a waiter).
#[cfg(target_os = "linux")]
fn lock_waiters(path: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(tokencache_file::lock_path(path)) else {
        return 0;
    };
    let inode = format!(":{}", meta.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->") && l.split_whitespace().any(|f| f.ends_with(&inode)))
        .count()
}

fn plain_cache_and_holder() -> (tempfile::TempDir, PathBuf, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    let holder = FileStore::open(&path, FileOptions::default()).unwrap();
    (dir, path, holder)
}

/// The home account ids in the plain cache file at `path`, sorted.
fn sorted_accounts(path: &Path) -> Vec<String> {
    let mut accounts = accounts_in(&std::fs::read_to_string(path).unwrap());
    accounts.sort();
    accounts
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `waiter` on another thread while `holder` holds the cache lock (inside an update that
/// adds the account `holder.t`), releasing it once `release_when` holds or after `hold_at_most`.
fn while_locked<T: Send + 'static>(
    holder: &FileStore,
    waiter: impl FnOnce() -> T + Send + 'static,
    release_when: impl Fn() -> bool,
    hold_at_most: Duration,
) -> T {
    let (result_tx, result_rx) = mpsc::channel();
    let mut waiter = Some(waiter);
    holder
        .update(|cache| {
            let waiter = waiter.take().unwrap();
            std::thread::spawn(move || result_tx.send(waiter()).unwrap());
            let start = Instant::now();
            while !release_when() && start.elapsed() < hold_at_most {
                std::thread::sleep(Duration::from_millis(2));
            }
            cache.add(&user_event("holder"))
        })
        .unwrap();
    result_rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

#[test]
fn a_response_that_finds_the_cache_locked_is_written_by_the_holder() {
    let (_dir, path, holder) = plain_cache_and_holder();
    let waiter_path = path.clone();
    let (waiter_result, waiter_stats, waiter_sees_own) = while_locked(
        &holder,
        move || {
            let waiter = FileStore::open(&waiter_path, FileOptions::default()).unwrap();
            let result = waiter.add(&user_event("waiter"));
            let sees_own = waiter
                .cache()
                .all_accounts()
                .iter()
                .any(|a| a.home_account_id() == Some("waiter.t"));
            (result, waiter.group_commit_stats(), sees_own)
        },
        || records(&path, "rec") == 1,
        Duration::from_secs(20),
    );
    waiter_result.unwrap();
    let accounts = sorted_accounts(&path);
    assert_eq!(
        accounts,
        ["holder.t", "waiter.t"],
        "one write holds both responses"
    );
    assert_eq!(
        waiter_stats,
        GroupCommitStats {
            handed_over: 1,
            written_for_waiters: 0
        }
    );
    assert_eq!(holder.group_commit_stats().written_for_waiters, 1);
    assert!(waiter_sees_own, "the waiter's cache holds its own response");
    assert_eq!(
        std::fs::read_dir(pending(&path)).unwrap().count(),
        0,
        "the written record is gone"
    );
}

#[test]
fn a_waiter_that_gets_the_lock_first_writes_the_waiting_responses_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.json");
    // Two waiters queue behind a plain lock holder (like an MSAL Python app, which knows
    // nothing of hand-overs); whoever gets the lock next writes both.
    let lock = tokencache_file::CacheLock::acquire(&path, LockOptions::default()).unwrap();
    let waiters: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|name| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = FileStore::open(&path, FileOptions::default()).unwrap();
                store.add(&user_event(name)).unwrap();
                store.group_commit_stats()
            })
        })
        .collect();
    wait_until("both records", || records(&path, "rec") == 2);
    drop(lock);
    let stats: Vec<GroupCommitStats> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    let accounts = sorted_accounts(&path);
    assert_eq!(accounts, ["w1.t", "w2.t"]);
    let written: u64 = stats.iter().map(|s| s.written_for_waiters).sum();
    let handed: u64 = stats.iter().map(|s| s.handed_over).sum();
    assert_eq!(
        written, 2,
        "the first to get the lock wrote both: {stats:?}"
    );
    assert_eq!(handed, 1, "the other one's was written for it: {stats:?}");
    assert_eq!(std::fs::read_dir(pending(&path)).unwrap().count(), 0);
}

#[test]
fn a_record_the_holder_cannot_read_is_rejected_and_its_waiter_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let with_key = |key: &DataKey| FileOptions {
        encryption: Some(KeySource::Key(key.clone())),
        ..FileOptions::default()
    };
    let holder = FileStore::open(&path, with_key(&DataKey::generate().unwrap())).unwrap();
    holder.add(&user_event("first")).unwrap();
    let other_key = with_key(&DataKey::generate().unwrap());
    let waiter_path = path.clone();
    let result = while_locked(
        &holder,
        move || {
            FileStore::open(&waiter_path, other_key)
                .unwrap()
                .add(&user_event("stranger"))
        },
        || records(&path, "rec") == 1,
        Duration::from_secs(20),
    );
    assert!(
        matches!(result, Err(FileError::HandOverRejected { .. })),
        "{result:?}"
    );
    let text = holder.cache().serialize();
    let mut accounts = accounts_in(&text);
    accounts.sort();
    assert_eq!(
        accounts,
        ["first.t", "holder.t"],
        "the stranger is not written"
    );
    assert_eq!(
        std::fs::read_dir(pending(&path)).unwrap().count(),
        0,
        "the waiter removed its rejected record"
    );
}

#[test]
fn a_waiter_that_times_out_withdraws_its_response() {
    let (_dir, path, holder) = plain_cache_and_holder();
    let waiter_path = path.clone();
    let result = while_locked(
        &holder,
        move || {
            let options = FileOptions {
                lock: LockOptions {
                    timeout: Duration::from_millis(300),
                    ..LockOptions::default()
                },
                ..FileOptions::default()
            };
            FileStore::open(&waiter_path, options)
                .unwrap()
                .add(&user_event("impatient"))
        },
        // Hold the lock until the waiter has given up and withdrawn its record.
        {
            let path = path.clone();
            let seen = std::cell::Cell::new(false);
            move || {
                let now = records(&path, "rec");
                if now == 1 {
                    seen.set(true);
                }
                seen.get() && now == 0
            }
        },
        Duration::from_secs(20),
    );
    assert!(
        matches!(result, Err(FileError::LockTimeout { .. })),
        "{result:?}"
    );
    assert_eq!(
        accounts_in(&std::fs::read_to_string(&path).unwrap()),
        ["holder.t"],
        "a withdrawn response is not written"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn without_group_commit_a_waiter_writes_for_itself() {
    let (_dir, path, holder) = plain_cache_and_holder();
    let waiter_path = path.clone();
    let lock_file = path.clone();
    let stats = while_locked(
        &holder,
        move || {
            let options = FileOptions {
                group_commit: false,
                ..FileOptions::default()
            };
            let waiter = FileStore::open(&waiter_path, options).unwrap();
            waiter.add(&user_event("alone")).unwrap();
            waiter.group_commit_stats()
        },
        // The holder lets go only once the waiter is blocked on its lock: contention for sure.
        move || lock_waiters(&lock_file) >= 1,
        Duration::from_secs(20),
    );
    assert_eq!(stats, GroupCommitStats::default());
    assert!(!pending(&path).exists(), "no records without group commit");
    let accounts = sorted_accounts(&path);
    assert_eq!(accounts, ["alone.t", "holder.t"]);
}

#[test]
fn a_response_that_cannot_be_cached_is_refused_before_it_is_handed_over() {
    let (_dir, path, holder) = plain_cache_and_holder();
    let waiter_path = path.clone();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waiter_answered = answered.clone();
    let (result, answered_while_locked) = while_locked(
        &holder,
        move || {
            let bad = tokencache::TokenEvent::new("cid", ["User.Read"])
                .token_endpoint("not a url")
                .response_json(r#"{"access_token":"at","expires_in":3600}"#)
                .unwrap();
            let result = FileStore::open(&waiter_path, FileOptions::default())
                .unwrap()
                .add(&bad);
            let locked = matches!(
                tokencache_file::lock_status(&waiter_path),
                Ok(tokencache_file::LockStatus::Held { .. })
            );
            waiter_answered.store(true, std::sync::atomic::Ordering::SeqCst);
            (result, locked)
        },
        // The holder keeps the lock until the waiter has its answer: it got it without waiting.
        move || answered.load(std::sync::atomic::Ordering::SeqCst),
        Duration::from_secs(20),
    );
    assert!(
        answered_while_locked,
        "the refusal came while another process held the lock"
    );
    assert!(matches!(result, Err(FileError::Cache(_))), "{result:?}");
    assert_eq!(records(&path, "rec") + records(&path, "rejected"), 0);
}

#[test]
fn a_record_of_an_encrypted_cache_is_encrypted_and_written_by_a_holder_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.bin");
    let key = DataKey::generate().unwrap();
    let options = FileOptions {
        encryption: Some(KeySource::Key(key)),
        ..FileOptions::default()
    };
    let holder = FileStore::open(&path, options.clone()).unwrap();
    let (waiter_path, waiter_options) = (path.clone(), options.clone());
    let seen_record = std::cell::RefCell::new(None::<Vec<u8>>);
    let result = while_locked(
        &holder,
        move || {
            FileStore::open(&waiter_path, waiter_options)
                .unwrap()
                .add(&user_event("secretive"))
        },
        || {
            let record = std::fs::read_dir(pending(&path)).ok().and_then(|entries| {
                entries
                    .filter_map(Result::ok)
                    .find(|e| e.path().extension().is_some_and(|x| x == "rec"))
                    .and_then(|e| std::fs::read(e.path()).ok())
            });
            let found = record.is_some();
            if found {
                *seen_record.borrow_mut() = record;
            }
            found
        },
        Duration::from_secs(20),
    );
    result.unwrap();
    let record = seen_record.into_inner().expect("the waiter left a record");
    assert!(
        tokencache_file::is_encrypted(&record),
        "the record is encrypted"
    );
    let needle = b"at-secretive";
    assert!(
        !record.windows(needle.len()).any(|w| w == needle),
        "no token in the clear"
    );
    let reader = FileStore::open(&path, options).unwrap();
    reader.reload().unwrap();
    let mut accounts: Vec<String> = reader
        .cache()
        .all_accounts()
        .iter()
        .filter_map(|a| a.home_account_id().map(str::to_owned))
        .collect();
    accounts.sort();
    assert_eq!(accounts, ["holder.t", "secretive.t"]);
}

#[test]
fn a_record_removed_by_someone_else_is_not_taken_for_written() {
    let (_dir, path, holder) = plain_cache_and_holder();
    let waiter_path = path.clone();
    // While the holder holds the lock, someone deletes the waiting record. That is no proof
    // the response was written: the waiter must not report success until it is in the file.
    let removed = std::sync::atomic::AtomicBool::new(false);
    let result = while_locked(
        &holder,
        move || {
            let waiter = FileStore::open(&waiter_path, FileOptions::default()).unwrap();
            waiter.add(&user_event("waiter"))
        },
        || {
            if let Ok(entries) = std::fs::read_dir(pending(&path)) {
                for entry in entries.flatten() {
                    if entry.path().extension().is_some_and(|x| x == "rec") {
                        std::fs::remove_file(entry.path()).unwrap();
                        removed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
            // Keep holding a little after the removal: a waiter that took the removal for
            // success would return now, before anything is written.
            removed.load(std::sync::atomic::Ordering::SeqCst) && {
                std::thread::sleep(Duration::from_millis(300));
                true
            }
        },
        Duration::from_secs(20),
    );
    result.unwrap();
    assert_eq!(
        sorted_accounts(&path),
        ["holder.t", "waiter.t"],
        "the waiter wrote its response itself"
    );
}

#[cfg(unix)]
#[test]
fn records_in_an_unsafe_directory_or_of_another_user_are_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let planted = |dir: &Path, name: &str| {
        let event = user_event("mallory").to_msal_event().to_python_json(false);
        std::fs::write(
            dir.join(format!("{name}.rec")),
            format!(r#"{{"now": 1700000000, "event": {event}}}"#),
        )
        .unwrap();
    };
    // A directory others can write, and a symbolic link to one.
    let (dir, path, holder) = plain_cache_and_holder();
    std::fs::create_dir(pending(&path)).unwrap();
    std::fs::set_permissions(pending(&path), std::fs::Permissions::from_mode(0o777)).unwrap();
    planted(&pending(&path), "00000000000000000001-1-0");
    holder.update(|c| c.add(&user_event("holder"))).unwrap();
    assert_eq!(
        sorted_accounts(&path),
        ["holder.t"],
        "0777 directory ignored"
    );
    // A waiter does not hand over through it either: it waits for the lock instead.
    let waiter_path = path.clone();
    let result = while_locked(
        &holder,
        move || {
            FileStore::open(&waiter_path, FileOptions::default())
                .unwrap()
                .add(&user_event("waiter"))
        },
        || false,
        Duration::from_millis(300),
    );
    result.unwrap();
    assert_eq!(sorted_accounts(&path), ["holder.t", "waiter.t"]);

    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    planted(&elsewhere, "00000000000000000001-1-0");
    let other = dir.path().join("other.json");
    std::os::unix::fs::symlink(&elsewhere, pending(&other)).unwrap();
    let store = FileStore::open(&other, FileOptions::default()).unwrap();
    store.update(|c| c.add(&user_event("holder"))).unwrap();
    assert_eq!(
        sorted_accounts(&other),
        ["holder.t"],
        "symlinked directory ignored"
    );

    // A record another user owns, in a proper directory (only root can make one).
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        let third = dir.path().join("third.json");
        std::fs::create_dir(pending(&third)).unwrap();
        std::fs::set_permissions(pending(&third), std::fs::Permissions::from_mode(0o700)).unwrap();
        planted(&pending(&third), "00000000000000000001-1-0");
        std::os::unix::fs::chown(
            pending(&third).join("00000000000000000001-1-0.rec"),
            Some(65534),
            Some(65534),
        )
        .unwrap();
        let store = FileStore::open(&third, FileOptions::default()).unwrap();
        store.update(|c| c.add(&user_event("holder"))).unwrap();
        assert_eq!(
            sorted_accounts(&third),
            ["holder.t"],
            "foreign record ignored"
        );
    } else {
        eprintln!("not root: the foreign-owner case needs chown; the other cases ran");
    }
}
