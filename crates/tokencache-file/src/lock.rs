//! The cross-process lock, compatible with every MSAL extension library.
//!
//! The protocol is msal-extensions' and MSAL .NET's: a lock file `<cache>.lockfile` created
//! exclusively (`O_CREAT|O_EXCL`), holding `"<pid> <argv0>"`, with an exclusive OS lock
//! (`flock` on Unix, `LockFileEx` on Windows) on it for as long as it is held, deleted on
//! release. So a Python, .NET, Node, Java or Go MSAL app on the same cache waits for us, and we
//! wait for it.
//!
//! Fixes over the other implementations:
//! - **Stale locks recover.** A lock file whose owner process is dead (and which nobody holds
//!   an OS lock on) is removed at once, with a warning, instead of costing every caller the full
//!   timeout (Python, Node) or blocking forever.
//! - **No unlink race.** After taking the OS lock we check that the file at the path is still
//!   the one we locked; if a releasing holder deleted it meanwhile, we start over instead of
//!   entering the critical section on a deleted file (portalocker's bug).
//! - A timeout names the holder's pid and program.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::error::FileError;

/// Who holds a lock, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOwner {
    /// The process id.
    pub pid: u32,
    /// The program (`argv[0]`), possibly empty.
    pub program: String,
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.program.is_empty() {
            write!(f, "pid {}", self.pid)
        } else {
            write!(f, "pid {} ({})", self.pid, self.program)
        }
    }
}

/// The state of a cache's lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStatus {
    /// No lock file.
    Free,
    /// A lock file exists.
    Held {
        /// Its owner, if the file names one.
        owner: Option<LockOwner>,
        /// Whether the owner process is alive (`None` when unknown).
        alive: Option<bool>,
        /// Whether some process holds the OS lock on it.
        os_locked: bool,
        /// How long ago the file was last modified.
        age: Duration,
    },
}

impl LockStatus {
    /// True when the lock file is left over, so the next locker removes it. A lock file that
    /// some process holds with `flock` is never stale. One that nobody holds is stale when:
    ///
    /// - it names a process that is gone, and is older than a short grace (2 s: a holder in
    ///   another PID namespace, like a container sharing the file, looks gone from here; its
    ///   critical section is over by then);
    /// - it names a live process that started after the lock file was written: the holder is
    ///   gone and its PID was reused by an unrelated process;
    /// - it names no process and is older than 10 s (its creator writes its PID right away);
    /// - it is older than 20 s, whatever it names (PID 1, say): holders that do not use
    ///   `flock` (msal-extensions without portalocker) hold it for milliseconds.
    pub fn is_stale(&self) -> bool {
        match self {
            LockStatus::Free => false,
            LockStatus::Held {
                owner,
                alive,
                os_locked,
                age,
            } => {
                !os_locked
                    && ((*alive == Some(false) && *age > DEAD_OWNER_GRACE)
                        || (owner.is_none() && *age > EMPTY_LOCK_GRACE)
                        || *age > UNLOCKED_MAX_AGE)
            }
        }
    }
}

/// A lock file with no owner written yet is live for this long (its creator may be between
/// creating and writing it).
const EMPTY_LOCK_GRACE: Duration = Duration::from_secs(10);

/// A lock file naming a process that cannot be seen is live for this long.
const DEAD_OWNER_GRACE: Duration = Duration::from_secs(2);

/// A lock file nobody holds with `flock` is live for at most this long.
const UNLOCKED_MAX_AGE: Duration = Duration::from_secs(20);

/// The lock files this process holds. A lock file naming this process that is not in here is
/// a leftover of ours and is removed like a dead process's.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn held() -> MutexGuard<'static, Option<HashSet<PathBuf>>> {
    HELD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn held_by_us(path: &Path) -> bool {
    held().as_ref().is_some_and(|set| set.contains(path))
}

/// The lock file path for a cache file: `<cache>.lockfile`, as every MSAL library names it.
pub fn lock_path(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_owned();
    name.push(".lockfile");
    PathBuf::from(name)
}

fn parse_owner(content: &str) -> Option<LockOwner> {
    let mut parts = content.trim().splitn(2, ' ');
    let pid = parts.next()?.parse().ok()?;
    Some(LockOwner {
        pid,
        program: parts.next().unwrap_or_default().to_owned(),
    })
}

/// Whether a process exists (`None` when this platform cannot tell).
fn process_alive(pid: u32) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return Some(false);
        };
        // SAFETY: kill with signal 0 only checks for the existence of the process.
        #[allow(unsafe_code)]
        let r = unsafe { libc::kill(pid, 0) };
        Some(r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        None
    }
}

/// When process `pid` started (Linux: from `/proc`; `None` elsewhere or when unknown). Precise
/// to about a second (the boot time is in whole seconds).
fn process_start(pid: u32) -> Option<SystemTime> {
    #[cfg(target_os = "linux")]
    {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces and parentheses); the start
        // time is field 22 of the whole line, the 20th after the name.
        let after_name = &stat[stat.rfind(')')? + 1..];
        let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
        let boot: u64 = fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        // Clock ticks per second: USER_HZ, 100 on every Linux architecture in use.
        let since_boot = Duration::from_millis(ticks.checked_mul(10)?);
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(boot) + since_boot)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Reads the state of the lock file for `cache`.
pub fn lock_status(cache: &Path) -> Result<LockStatus, FileError> {
    let path = lock_path(cache);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(LockStatus::Free),
        Err(source) => return Err(FileError::Io { path, source }),
    };
    let os_locked = match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    };
    Ok(inspect(file, &path, os_locked))
}

/// What a lock file says about its holder. A lock file naming this process that this process
/// does not hold is reported as owned by a dead process: it is our own leftover.
fn inspect(mut file: File, path: &Path, os_locked: bool) -> LockStatus {
    let mut content = String::new();
    let _ = file.read_to_string(&mut content);
    let owner = parse_owner(&content);
    let written = file.metadata().and_then(|m| m.modified()).ok();
    let alive = owner.as_ref().and_then(|o| {
        if o.pid == std::process::id() {
            Some(held_by_us(path))
        } else {
            // A process that started after the lock file was written is not its owner: the
            // owner is gone and its PID was reused.
            process_alive(o.pid).map(|alive| {
                alive
                    && !written
                        .zip(process_start(o.pid))
                        .is_some_and(|(written, started)| {
                            started > written + Duration::from_secs(1)
                        })
            })
        }
    });
    let age = written
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    LockStatus::Held {
        owner,
        alive,
        os_locked,
        age,
    }
}

/// How long to wait for a lock and how often to look.
#[derive(Clone, Copy, Debug)]
pub struct LockOptions {
    /// Give up after this long (default 30 s).
    pub timeout: Duration,
    /// Pause between attempts (default 5 ms, plus up to as much again of jitter).
    pub retry_delay: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            timeout: Duration::from_secs(30),
            retry_delay: Duration::from_millis(5),
        }
    }
}

/// A held cache lock; released (lock file deleted, OS lock dropped) on drop.
#[derive(Debug)]
pub struct CacheLock {
    path: PathBuf,
    file: Option<File>,
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

/// True when `file` (open) is the file currently at `path`.
fn is_at_path(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => same_file(&a, &b),
        _ => false,
    }
}

/// When the lock file exists and its OS lock is held, blocks until that holder releases it
/// (or `deadline`), so that the lock is handed over at once instead of at the next poll.
/// Returns false when there was nothing to wait on (no file, or a holder that keeps no OS lock,
/// like msal-extensions without portalocker): the caller then polls.
///
/// `flock` has no timeout, so the blocking wait runs on a helper thread; on timeout the helper
/// is left to finish when the holder releases, and exits.
fn wait_for_holder(path: &Path, deadline: Instant) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    if file.try_lock().is_ok() {
        let _ = file.unlock();
        return false;
    }
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("tokencache-lock-wait".into())
        .spawn(move || {
            if file.lock().is_ok() {
                let _ = file.unlock();
            }
            let _ = done.send(());
        });
    if spawned.is_err() {
        return false;
    }
    let _ = wait.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    true
}

/// `base` plus a random extra of up to `base`, drawn anew each time so that no waiter is
/// systematically last.
fn jitter(base: Duration) -> Duration {
    let spread = getrandom::u64().unwrap_or(u64::from(std::process::id())) % 1000;
    base + base * spread as u32 / 1000
}

impl CacheLock {
    /// Takes the lock of the cache at `cache`, waiting up to `options.timeout`.
    pub fn acquire(cache: &Path, options: LockOptions) -> Result<CacheLock, FileError> {
        match Self::acquire_unless(cache, options, || None::<std::convert::Infallible>)? {
            Ok(lock) => Ok(lock),
            Err(never) => match never {},
        }
    }

    /// Takes the lock if it is free now; `None` when another process (or thread) holds it.
    pub(crate) fn try_acquire(
        cache: &Path,
        options: LockOptions,
    ) -> Result<Option<CacheLock>, FileError> {
        Self::try_once(&lock_path(cache), Instant::now() + options.timeout)
    }

    /// Like [`CacheLock::acquire`], but before each attempt asks `settled` whether the wait is
    /// still needed: `Err(outcome)` as soon as it says no.
    pub(crate) fn acquire_unless<T>(
        cache: &Path,
        options: LockOptions,
        mut settled: impl FnMut() -> Option<T>,
    ) -> Result<Result<CacheLock, T>, FileError> {
        let path = lock_path(cache);
        let start = Instant::now();
        loop {
            if let Some(outcome) = settled() {
                return Ok(Err(outcome));
            }
            match Self::try_once(&path, start + options.timeout)? {
                Some(lock) => return Ok(Ok(lock)),
                None => {
                    if start.elapsed() >= options.timeout {
                        let holder = match lock_status(cache)? {
                            LockStatus::Held { owner, .. } => owner,
                            LockStatus::Free => None,
                        };
                        return Err(FileError::LockTimeout {
                            path,
                            waited: start.elapsed(),
                            holder,
                        });
                    }
                    let deadline = start + options.timeout;
                    if wait_for_holder(&path, deadline) {
                        // Every waiter wakes at once; spread them at random so that one gets in
                        // cleanly, and let those that have waited long go first.
                        if start.elapsed() < Duration::from_millis(500) {
                            std::thread::sleep(jitter(Duration::from_micros(50)));
                        }
                    } else {
                        std::thread::sleep(jitter(options.retry_delay));
                    }
                }
            }
        }
    }

    /// One attempt: `Some` when the lock is ours.
    fn try_once(path: &Path, deadline: Instant) -> Result<Option<CacheLock>, FileError> {
        let io = |source| FileError::Io {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // Owner-only, whatever the umask: the lock file names this process and its program.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let program = std::env::args().next().unwrap_or_default();
                let _ = write!(file, "{} {}", std::process::id(), program);
                let _ = file.flush();
                // Exclude portalocker-based peers, which rely on the OS lock alone. The OS lock
                // can be briefly held by a peer inspecting the file for staleness, or by a
                // portalocker peer in its critical section (which deletes the file when done):
                // keep trying until ours, or the file is gone, or time is up.
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        Err(_) => {
                            if is_at_path(&file, path) {
                                let _ = fs::remove_file(path);
                            }
                            return Ok(None);
                        }
                    }
                }
                // Still the file at the path? (A peer may have removed it as stale.)
                let ours = file.metadata().map_err(io)?;
                match fs::metadata(path) {
                    Ok(now) if same_file(&ours, &now) => {
                        held()
                            .get_or_insert_with(HashSet::new)
                            .insert(path.to_owned());
                        Ok(Some(CacheLock {
                            path: path.to_owned(),
                            file: Some(file),
                        }))
                    }
                    _ => Ok(None),
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Self::break_if_stale(path)?;
                Ok(None)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    crate::atomic::create_private_dirs(dir).map_err(|source| FileError::Io {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                Ok(None)
            }
            // Windows reports a file being deleted by its holder as access denied.
            Err(e) if e.kind() == ErrorKind::PermissionDenied && cfg!(windows) => Ok(None),
            Err(source) => Err(io(source)),
        }
    }

    /// Removes the lock file if its owner is dead and nobody holds the OS lock on it.
    fn break_if_stale(path: &Path) -> Result<(), FileError> {
        let Ok(file) = File::open(path) else {
            return Ok(());
        };
        if file.try_lock().is_err() {
            return Ok(()); // a live holder (us, Python with portalocker, .NET)
        }
        let Ok(probe) = file.try_clone() else {
            return Ok(());
        };
        let status = inspect(probe, path, false);
        // A lock file naming this process that this process does not hold is certainly a
        // leftover of ours: no grace is needed.
        let ours_left_over = matches!(
            &status,
            LockStatus::Held { owner: Some(o), alive: Some(false), .. } if o.pid == std::process::id()
        );
        if (ours_left_over || status.is_stale()) && is_at_path(&file, path) {
            tracing::warn!(lock = %path.display(), status = ?status, "removing a stale cache lock (its owner is gone)");
            let _ = fs::remove_file(path);
        }
        let _ = file.unlock();
        Ok(())
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Delete while still holding the OS lock, so that no one can take over a file
            // that is about to disappear; waiters re-check the path after locking.
            if is_at_path(&file, &self.path) {
                let _ = fs::remove_file(&self.path);
            }
            let _ = file.unlock();
            if let Some(set) = held().as_mut() {
                set.remove(&self.path);
            }
        }
    }
}
