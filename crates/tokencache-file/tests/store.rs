//! The file store in one process: atomic writes, permissions, symlinks, corrupt files,
//! encryption, locks.

mod common;

use std::time::{Duration, Instant};

use common::user_event;
use tokencache::Section;
use tokencache_file::{
    CacheLock, CorruptPolicy, DataKey, FileError, FileOptions, FileStore, KeySource, LockOptions,
    LockStatus, lock_path, lock_status,
};

/// Options whose lock wait ends in an error after a second: a test that must not wait a lock
/// out sees a timeout error instead of a slow success.
fn lock_timeout_of_a_second() -> FileOptions {
    FileOptions {
        lock: LockOptions {
            timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn store(path: &std::path::Path) -> FileStore {
    FileStore::open(path, FileOptions::default()).expect("open")
}

#[test]
fn changes_are_saved_and_seen_by_another_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let a = store(&path);
    let b = store(&path);
    a.add(&user_event("alice")).expect("add");
    b.add(&user_event("bob")).expect("add");
    assert!(a.reload().expect("reload"), "a sees b's write");
    assert_eq!(
        a.cache().len(Section::Account),
        2,
        "b merged with a's write, nothing lost"
    );
    assert!(
        !a.reload().expect("reload"),
        "unchanged file is not re-parsed"
    );
    assert!(
        !lock_path(&path).exists(),
        "the lock file is removed after each change"
    );
    // The file is what MSAL Python writes for the same content, byte for byte.
    let text = std::fs::read_to_string(&path).expect("read");
    let Some(python) = common::python() else {
        return;
    };
    let out = std::process::Command::new(python)
        .arg(common::repo_root().join("tests/interop/peer.py"))
        .arg("reserialize")
        .arg(&path)
        .output()
        .expect("run MSAL Python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text,
        String::from_utf8(out.stdout).expect("UTF-8"),
        "the file is what MSAL Python's serialize() writes"
    );
}

#[cfg(unix)]
#[test]
fn caches_are_never_readable_by_others_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sub/dir/cache.json");
    store(&path).add(&user_event("alice")).expect("add");
    assert_eq!(mode(&path), 0o600);
    // A rewrite keeps the owner's bits and drops group and other access.
    for (before, after) in [(0o644, 0o600), (0o640, 0o600), (0o700, 0o700)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(before)).expect("chmod");
        store(&path).add(&user_event("bob")).expect("add");
        assert_eq!(mode(&path), after, "{before:o}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("ls")
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");

    // The lock file, while held, is owner-only.
    let lock = tokencache_file::CacheLock::acquire(&path, Default::default()).expect("lock");
    assert_eq!(
        mode(&tokencache_file::lock_path(&path)),
        0o600,
        "the lock file"
    );
    drop(lock);

    // Under umask 000 (another process's), the directories made for a cache are owner-only.
    let nested = dir.path().join("open/to/all/cache.json");
    let script = format!(
        "umask 000; exec {} --file {} --count 1",
        common::record_responses().display(),
        nested.display(),
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(out.status.success(), "{out:?}");
    for d in ["open", "open/to", "open/to/all"] {
        assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&nested), 0o600);
}

#[cfg(unix)]
#[test]
fn a_symlinked_cache_path_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = dir.path().join("real.json");
    std::fs::write(&real, "{}").expect("write");
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert!(matches!(
        FileStore::open(&link, FileOptions::default()),
        Err(FileError::Symlink { .. })
    ));
}

#[test]
fn a_corrupt_file_is_never_overwritten_by_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let garbage = "{\"AccessToken\": {\"k\": {\"secret\": \"s\"}}, oops";
    std::fs::write(&path, garbage).expect("write");
    let s = store(&path);
    let err = s.add(&user_event("alice")).expect_err("corrupt");
    assert!(matches!(err, FileError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("left untouched"));
    assert!(!err.to_string().contains("\"s\""));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), garbage);
    assert!(matches!(s.reload(), Err(FileError::Corrupt { .. })));
}

#[test]
fn a_corrupt_file_is_moved_aside_when_asked() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    std::fs::write(&path, "not json").expect("write");
    let s = FileStore::open(
        &path,
        FileOptions {
            corrupt: CorruptPolicy::MoveAside,
            ..Default::default()
        },
    )
    .expect("open");
    s.add(&user_event("alice"))
        .expect("add succeeds on a fresh cache");
    let backup = s.last_corrupt_backup().expect("told where it went");
    assert_eq!(
        std::fs::read_to_string(&backup).expect("backup"),
        "not json"
    );
    assert!(
        backup
            .file_name()
            .expect("name")
            .to_string_lossy()
            .starts_with("cache.json.corrupt-")
    );
    assert_eq!(
        common::accounts_in(&std::fs::read_to_string(&path).expect("read")),
        ["alice.t"]
    );
}

#[test]
fn encrypted_files_need_the_right_key_and_lose_nothing_otherwise() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.bin");
    let key_file = dir.path().join("cache.key");
    let enc = FileOptions {
        encryption: Some(KeySource::File(key_file.clone())),
        ..Default::default()
    };
    FileStore::open(&path, enc.clone())
        .expect("open")
        .add(&user_event("alice"))
        .expect("add");
    let bytes = std::fs::read(&path).expect("read");
    assert!(tokencache_file::is_encrypted(&bytes));
    assert!(
        !String::from_utf8_lossy(&bytes).contains("alice"),
        "encrypted at rest"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file)
                .expect("key")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // Same key: readable.
    let again = FileStore::open(&path, enc.clone()).expect("open");
    again.reload().expect("reload");
    assert_eq!(again.cache().len(Section::Account), 1);
    // No key: a clear error.
    let plain = store(&path);
    assert!(
        matches!(plain.reload(), Err(FileError::KeyRequired { ref key_id, .. }) if key_id == "file")
    );
    // Wrong key: a clear error, and the file is untouched by a failed write.
    let wrong = FileOptions {
        encryption: Some(KeySource::Key(DataKey::generate().expect("key"))),
        ..Default::default()
    };
    let w = FileStore::open(&path, wrong).expect("open");
    let err = w.add(&user_event("mallory")).expect_err("wrong key");
    assert!(matches!(err, FileError::Decrypt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "nothing destroyed"
    );
}

#[test]
fn migration_from_plain_to_encrypted_and_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    store(&path).add(&user_event("alice")).expect("add");
    let key = KeySource::Key(DataKey::from_text(&"ab".repeat(32)).expect("hex key"));
    // A store with a key reads the plain file and encrypts it on the next write.
    let enc = FileStore::open(
        &path,
        FileOptions {
            encryption: Some(key.clone()),
            ..Default::default()
        },
    )
    .expect("open");
    enc.rewrite(None).expect("encrypt");
    assert!(tokencache_file::is_encrypted(
        &std::fs::read(&path).expect("read")
    ));
    enc.add(&user_event("bob")).expect("add");
    // Back to plain text.
    store(&path).rewrite(Some(&key)).expect("decrypt");
    let text = std::fs::read_to_string(&path).expect("plain again");
    let mut accounts = common::accounts_in(&text);
    accounts.sort();
    assert_eq!(accounts, ["alice.t", "bob.t"]);
}

#[test]
fn key_from_the_environment() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.bin");
    // SAFETY of the test: the variable name is unique to this test.
    unsafe_env_set("TOKENCACHE_TEST_KEY_ENV", &"0f".repeat(32));
    let opts = FileOptions {
        encryption: Some(KeySource::Env("TOKENCACHE_TEST_KEY_ENV".into())),
        ..Default::default()
    };
    FileStore::open(&path, opts.clone())
        .expect("open")
        .add(&user_event("alice"))
        .expect("add");
    let r = FileStore::open(&path, opts).expect("open");
    r.reload().expect("reload");
    assert_eq!(r.cache().len(Section::Account), 1);
    let missing = FileOptions {
        encryption: Some(KeySource::Env("TOKENCACHE_TEST_KEY_UNSET".into())),
        ..Default::default()
    };
    let err = FileStore::open(&path, missing)
        .expect("open")
        .reload()
        .expect_err("no key");
    assert!(
        err.to_string().contains("TOKENCACHE_TEST_KEY_UNSET"),
        "{err}"
    );
}

#[allow(unsafe_code)]
fn unsafe_env_set(k: &str, v: &str) {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var(k, v) }
}

/// Writes a lock file for `path` naming `pid`, as if written `ago` (nobody holds its OS lock).
fn planted_lock(path: &std::path::Path, pid: u32, ago: Duration) {
    std::fs::write(lock_path(path), format!("{pid} /usr/bin/az")).expect("lock file");
    let file = std::fs::File::options()
        .write(true)
        .open(lock_path(path))
        .expect("open");
    file.set_modified(std::time::SystemTime::now() - ago)
        .expect("set mtime");
}

/// Whether a save gets through the lock at `path` within `wait`.
fn saves_within(path: &std::path::Path, wait: Duration) -> bool {
    let options = FileOptions {
        lock: LockOptions {
            timeout: wait,
            ..Default::default()
        },
        ..Default::default()
    };
    match FileStore::open(path, options)
        .expect("open")
        .add(&user_event("alice"))
    {
        Ok(()) => true,
        Err(FileError::LockTimeout { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

/// A lock that should hold is tried briefly (a stalled machine must not age it past its grace
/// meanwhile); one that should be broken gets time to be.
fn is_respected(path: &std::path::Path) -> bool {
    !saves_within(path, Duration::from_millis(300))
}

fn is_broken(path: &std::path::Path) -> bool {
    saves_within(path, Duration::from_secs(5))
}

#[test]
fn an_unheld_lock_is_respected_while_recent_and_broken_once_old_on_every_platform() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    // A holder that does not use `flock` (msal-extensions without portalocker) holds the lock
    // for milliseconds; this one is recent, then 25 s old.
    planted_lock(&path, std::process::id() + 1, Duration::ZERO);
    assert!(is_respected(&path), "a recent lock is respected");
    planted_lock(&path, std::process::id() + 1, Duration::from_secs(25));
    assert!(is_broken(&path), "an old unheld lock is broken");
}

// Whether a process is gone is known on Unix only; on Windows an unheld lock is broken by age.
#[cfg(unix)]
#[test]
fn a_lock_of_a_dead_process_is_broken_after_a_short_grace() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let dead_pid = child.id();
    child.wait().expect("wait");
    // Just written: its holder may be alive in another PID namespace, where this process
    // cannot see it. Not broken yet.
    planted_lock(&path, dead_pid, Duration::ZERO);
    assert!(!lock_status(&path).expect("status").is_stale());
    assert!(is_respected(&path), "a fresh lock is respected");
    // Older than the grace: broken, and the save goes through.
    planted_lock(&path, dead_pid, Duration::from_secs(3));
    let status = lock_status(&path).expect("status");
    assert!(status.is_stale(), "{status:?}");
    assert!(is_broken(&path));
    assert_eq!(lock_status(&path).expect("status"), LockStatus::Free);
}

#[cfg(target_os = "linux")]
#[test]
fn a_lock_naming_a_reused_pid_or_pid_1_is_broken() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    // A live process that started after the lock file was written is not its owner.
    let mut unrelated = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn");
    planted_lock(&path, unrelated.id(), Duration::from_secs(5));
    let status = lock_status(&path).expect("status");
    assert!(
        matches!(
            status,
            LockStatus::Held {
                alive: Some(false),
                ..
            }
        ),
        "{status:?}"
    );
    assert!(is_broken(&path), "the reused PID's lock is broken");
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    // PID 1 is alive and older than any lock file; a lock nobody holds with flock for longer
    // than a holder ever needs is broken anyway.
    planted_lock(&path, 1, Duration::from_secs(5));
    assert!(
        is_respected(&path),
        "a recent lock of a live process is respected"
    );
    planted_lock(&path, 1, Duration::from_secs(25));
    assert!(is_broken(&path), "an old unheld lock is broken");
}

#[test]
fn a_live_holder_makes_us_wait_then_fail_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let held = CacheLock::acquire(&path, LockOptions::default()).expect("hold");
    let content = std::fs::read_to_string(held.path()).expect("lock content");
    assert!(
        content.starts_with(&format!("{} ", std::process::id())),
        "\"<pid> <argv0>\": {content}"
    );
    match lock_status(&path).expect("status") {
        LockStatus::Held {
            owner,
            alive,
            os_locked,
            ..
        } => {
            assert_eq!(owner.map(|o| o.pid), Some(std::process::id()));
            assert_eq!(alive, Some(true));
            assert!(os_locked);
        }
        other => panic!("{other:?}"),
    }
    let opts = FileOptions {
        lock: LockOptions {
            timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let start = Instant::now();
    let err = FileStore::open(&path, opts)
        .expect("open")
        .add(&user_event("alice"))
        .expect_err("timeout");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // "timed out after 300 ms" (a slower machine may say 304 ms): whole units, not
    // `0.300469226s`.
    let message = err.to_string();
    let waited = message
        .strip_prefix("timed out after ")
        .and_then(|rest| rest.split(" ms ").next())
        .and_then(|ms| ms.parse::<u64>().ok());
    assert!(waited.is_some_and(|ms| ms >= 300), "{err}");
    // Released: the waiter gets in.
    let waiter = std::thread::spawn({
        let path = path.clone();
        move || store(&path).add(&user_event("bob"))
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    waiter.join().expect("join").expect("add after release");
    assert_eq!(
        common::accounts_in(&std::fs::read_to_string(&path).expect("read")),
        ["bob.t"]
    );
}

#[test]
fn threads_sharing_one_store_lose_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let shared = std::sync::Arc::new(store(&path));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = shared.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    s.add(&user_event(&format!("t{t}-{i}"))).expect("add");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("join");
    }
    assert_eq!(
        common::accounts_in(&std::fs::read_to_string(&path).expect("read")).len(),
        200
    );
}

/// msal-extensions re-reads the cache before a change only if the file's modification time is
/// later than its last read (a precise clock); a write must never be stamped earlier than the
/// moment it started, or msal-extensions overwrites it (seen as adds lost under contention).
#[test]
fn a_write_is_never_stamped_earlier_than_it_started() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let store = store(&path);
    for i in 0..100 {
        let started = std::time::SystemTime::now();
        store.add(&user_event(&format!("u{i}"))).expect("add");
        let stamped = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(
            stamped >= started,
            "write {i} stamped {:?} before it started",
            started.duration_since(stamped).unwrap_or_default()
        );
    }
}

/// A thread's read must never bring back an older file than this process already holds: a
/// reader that read the file just before another thread replaced it, then applied what it
/// read after that thread's write, made just-added tokens disappear until the next change.
#[test]
fn a_thread_reading_while_others_write_never_goes_back_to_an_older_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let shared = std::sync::Arc::new(store(&path));
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let s = shared.clone();
            std::thread::spawn(move || {
                let mut missing = 0;
                for i in 0..20 {
                    let uid = format!("t{t}-{i}");
                    s.add(&user_event(&uid)).expect("add");
                    for _ in 0..3 {
                        s.reload().expect("reload");
                        let home = format!("{uid}.t");
                        let query = tokencache::AccountQuery {
                            environments: &[],
                            username: None,
                            home_account_id: Some(&home),
                        };
                        if s.cache().accounts(&query).is_empty() {
                            missing += 1;
                        }
                    }
                }
                missing
            })
        })
        .collect();
    let missing: usize = handles.into_iter().map(|h| h.join().expect("join")).sum();
    assert_eq!(missing, 0, "reads that lost a token this process had added");
    assert_eq!(shared.cache().len(Section::Account), 16 * 20);
}

#[test]
fn a_leftover_lock_file_of_this_process_does_not_block_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    // A lock file naming this (live) process, which holds no lock: our own leftover.
    std::fs::write(lock_path(&path), format!("{} leftover", std::process::id())).expect("write");
    // Blocking on it would end in a timeout error.
    let opts = lock_timeout_of_a_second();
    FileStore::open(&path, opts)
        .expect("open")
        .add(&user_event("alice"))
        .expect("our own leftover lock file does not block us");
    assert_eq!(lock_status(&path).expect("status"), LockStatus::Free);
}

#[test]
fn an_empty_lock_file_nobody_holds_is_respected_while_young_and_broken_once_old() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let lock = lock_path(&path);
    // Created, but its owner not written yet (a locker between creating and writing it).
    std::fs::write(&lock, "").expect("empty lock file");
    let opts = lock_timeout_of_a_second;
    let status = lock_status(&path).expect("status");
    assert!(
        !status.is_stale(),
        "young: its creator may be writing it; {status:?}"
    );
    let young = FileStore::open(&path, opts())
        .expect("open")
        .add(&user_event("alice"));
    assert!(
        matches!(young, Err(tokencache_file::FileError::LockTimeout { .. })),
        "{young:?}"
    );
    // Eleven seconds later (past the ten-second grace) and still empty and unheld: stale.
    let eleven_seconds_ago = std::time::SystemTime::now() - Duration::from_secs(11);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_modified(eleven_seconds_ago))
        .expect("age the lock file");
    let status = lock_status(&path).expect("status");
    assert!(status.is_stale(), "old: {status:?}");
    FileStore::open(&path, opts())
        .expect("open")
        .add(&user_event("alice"))
        .expect("the abandoned lock file is broken");
    assert_eq!(lock_status(&path).expect("status"), LockStatus::Free);
    assert_eq!(
        common::accounts_in(&std::fs::read_to_string(&path).expect("read")).len(),
        1
    );
}

#[test]
fn a_reader_holding_the_cache_open_does_not_fail_a_write() {
    // Windows refuses to replace a file another process has open (a reader, msal-extensions,
    // an antivirus scanner); the write waits for it briefly instead of failing.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    store(&path).add(&user_event("alice")).expect("first write");
    let reader = std::fs::File::open(&path).expect("open for reading");
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(reader);
    });
    store(&path)
        .add(&user_event("bob"))
        .expect("written once the reader lets go");
    closer.join().expect("join");
    let again = store(&path);
    again.reload().expect("reload");
    assert_eq!(again.cache().len(Section::Account), 2);
}

/// Wine's `wine_get_version`, exported by its ntdll only.
#[cfg(windows)]
#[allow(
    unsafe_code,
    reason = "two loader calls with constant, NUL-terminated names"
)]
fn running_under_wine() -> bool {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: constant NUL-terminated names; ntdll is always loaded.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        !ntdll.is_null() && GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

#[test]
fn a_reader_holding_the_cache_open_does_not_stop_a_write() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let store = store(&path);
    store.add(&user_event("before")).expect("add");
    // Rust opens files sharing read, write and delete, as another tokencache or a scanner
    // that shares delete would; on Windows the replace uses POSIX semantics for it.
    let mut held = std::fs::File::open(&path).expect("open");
    let written = store.add(&user_event("after"));
    #[cfg(windows)]
    if let Err(e) = &written {
        // Wine 8 has no POSIX-semantics rename (FileRenameInfoEx is an invalid parameter
        // there), so the ordinary rename is refused while the file is open. What must hold
        // is that the bounded retry gives up cleanly: the file as it was, no temporary file
        // left, and the write goes through once the reader lets go.
        assert!(running_under_wine(), "Windows replaces an open file: {e}");
        assert!(
            matches!(e, FileError::Io { source, .. } if source.raw_os_error() == Some(5)),
            "{e}"
        );
        assert_eq!(
            common::accounts_in(&std::fs::read_to_string(&path).expect("read")),
            ["before.t"]
        );
        let leftovers = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .count();
        assert_eq!(
            leftovers, 0,
            "the failed replace removed its temporary file"
        );
        drop(held);
        store
            .add(&user_event("after"))
            .expect("written once the reader let go");
        let mut now = common::accounts_in(&std::fs::read_to_string(&path).expect("read"));
        now.sort();
        assert_eq!(now, ["after.t", "before.t"]);
        return;
    }
    written.expect("replaced while another handle has the file open");
    let mut old = String::new();
    held.read_to_string(&mut old).expect("read the held handle");
    assert_eq!(
        common::accounts_in(&old),
        ["before.t"],
        "the holder reads the file it opened, whole"
    );
    let mut now = common::accounts_in(&std::fs::read_to_string(&path).expect("read"));
    now.sort();
    assert_eq!(now, ["after.t", "before.t"]);
}

/// A reader that does not share delete (Python's `open`, so msal-extensions) blocks a replace
/// on Windows even with POSIX semantics: the writer retries until it lets go.
#[cfg(windows)]
#[test]
fn a_windows_reader_that_does_not_share_delete_delays_a_write_but_does_not_fail_it() {
    use std::os::windows::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let store = store(&path);
    store.add(&user_event("before")).expect("add");
    // FILE_SHARE_READ | FILE_SHARE_WRITE, as the C runtime's _wopen shares.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .share_mode(1 | 2)
        .open(&path)
        .expect("open");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let started = Instant::now();
    store
        .add(&user_event("after"))
        .expect("written once the reader let go");
    release.join().expect("reader");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the write waited for the reader"
    );
    let mut now = common::accounts_in(&std::fs::read_to_string(&path).expect("read"));
    now.sort();
    assert_eq!(now, ["after.t", "before.t"]);
}
