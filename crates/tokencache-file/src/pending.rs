//! Group commit: token responses that find the cache locked are handed to the lock holder.
//!
//! Rewriting the cache file costs the same for one new token response as for eight, and with
//! many processes the lock, not the work, is the limit. So when [`FileStore::add`] finds the
//! cache locked, it leaves its response in `<cache>.pending/` and waits: the next tokencache
//! process that holds the lock applies every waiting response along with its own change,
//! writes the file once (atomically and durably, as always), and only then deletes the records
//! it wrote. A waiter whose record is gone returns success; one that gets the lock first
//! applies the waiting records itself. Other MSAL applications never see the directory: the
//! cache file and its lock are exactly as before.
//!
//! A record's state is its file name's extension (`<nanoseconds>-<pid>-<sequence>.<state>`):
//!
//! | name | meaning |
//! |---|---|
//! | `.tmp` | being written; ignored (removed when an hour old) |
//! | `.rec` | waiting for a lock holder |
//! | `.claimed` | a holder is applying it; one left by a holder that died is applied by the next |
//! | `.written` | in the cache file, durably; its waiter removes it (a holder, when an hour old) |
//! | `.rejected` | a holder could not read it (another encryption key?); its waiter reports an error |
//!
//! A record holds a token response (secrets included), so it is written 0600 in a 0700
//! directory and encrypted with the cache's key when the cache is encrypted. The directory is
//! used only when it is a real directory (not a symbolic link) owned by this user with no
//! access for anyone else; a record not owned by this user is ignored and logged. Anyone else
//! who could write there could otherwise plant token responses or fake a success.
//!
//! [`FileStore::add`]: crate::FileStore::add

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokencache::TokenEvent;
use tokencache::json::{JsonObject, JsonValue};
use zeroize::Zeroizing;

use crate::error::FileError;

/// The directory of waiting records for the cache at `cache`: `<cache>.pending`.
pub(crate) fn pending_dir(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_owned();
    name.push(".pending");
    PathBuf::from(name)
}

/// Leftover temporary and rejected records older than this are removed by lock holders.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The record text of a token response received at `now` (Unix seconds).
pub(crate) fn encode_record(event: &TokenEvent, now: i64) -> Zeroizing<String> {
    let mut record = JsonObject::new();
    record.insert("now", JsonValue::Number(now.to_string().into()));
    record.insert("event", JsonValue::Object(Box::new(event.to_msal_event())));
    Zeroizing::new(record.to_python_json(false))
}

/// A token response and its time, read back from a record.
pub(crate) fn decode_record(text: &str) -> Result<(TokenEvent, i64), tokencache::Error> {
    let record = JsonObject::parse(text)?;
    let invalid = |reason: &str| tokencache::Error::InvalidResponse {
        reason: format!("hand-over record: {reason}"),
    };
    let now = record
        .get("now")
        .and_then(JsonValue::as_int_lenient)
        .ok_or_else(|| invalid("no time"))?;
    let Some(JsonValue::Object(event)) = record.get("event") else {
        return Err(invalid("no event"));
    };
    Ok((TokenEvent::from_msal_event(event)?, now))
}

/// The token responses handed over to a cache's next lock holder (see `FileStore::add`), by
/// state, as `tokencache lock-status` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOvers {
    /// Waiting for a lock holder (left by a process that is waiting, or that died waiting:
    /// the next writer writes them either way).
    pub waiting: usize,
    /// Claimed by a lock holder that is writing them (or died doing so: the next writer
    /// writes them).
    pub being_written: usize,
    /// A holder could not read them (another encryption key); their processes were told.
    pub rejected: usize,
}

impl HandOvers {
    /// True when there is nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == HandOvers::default()
    }
}

/// Counts the token responses handed over to the next lock holder of the cache at `cache`.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let counts = tokencache_file::hand_overs(&dir.path().join("cache.json"))?;
/// assert!(counts.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn hand_overs(cache: &Path) -> Result<HandOvers, FileError> {
    let dir = pending_dir(cache);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(HandOvers::default()),
        Err(source) => return Err(FileError::Io { path: dir, source }),
    };
    let mut counts = HandOvers::default();
    for entry in entries.flatten() {
        match entry.path().extension().and_then(|e| e.to_str()) {
            Some("rec") => counts.waiting += 1,
            Some("claimed") => counts.being_written += 1,
            Some("rejected") => counts.rejected += 1,
            _ => {}
        }
    }
    Ok(counts)
}

/// Where a handed-over record stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DepositState {
    /// Waiting for a lock holder.
    Waiting,
    /// A holder is applying it.
    Claimed,
    /// A holder marked it written: in the cache file, durably.
    Written,
    /// A holder could not read it.
    Rejected,
    /// Gone without a mark (removed by someone else): its fate is unknown.
    Vanished,
}

/// A record this process left for a lock holder.
#[derive(Debug)]
pub(crate) struct Deposit {
    /// The record's path without its state extension.
    stem: PathBuf,
}

impl Deposit {
    /// Writes `bytes` as a waiting record in `dir` (created 0700 if missing). The record
    /// appears whole: it is written under a temporary name and renamed.
    pub(crate) fn create(dir: &Path, bytes: &[u8]) -> Result<Deposit, FileError> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        create_private_dir(dir)?;
        check_private_dir(dir)?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let deposit = Deposit {
            stem: dir.join(format!("{nanos:020}-{}-{sequence}", std::process::id())),
        };
        let tmp = deposit.path("tmp");
        let written = private_file(&tmp).and_then(|mut file| file.write_all(bytes));
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(FileError::Io { path: tmp, source });
        }
        fs::rename(&tmp, deposit.path("rec")).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            FileError::Io {
                path: deposit.path("rec"),
                source,
            }
        })?;
        Ok(deposit)
    }

    fn path(&self, state: &str) -> PathBuf {
        self.stem.with_extension(state)
    }

    /// Where the record stands. The names are looked at in the order a holder moves the
    /// record through them, so a record in transit is never mistaken for a written one.
    pub(crate) fn state(&self) -> DepositState {
        if self.path("rec").exists() {
            DepositState::Waiting
        } else if self.path("claimed").exists() {
            DepositState::Claimed
        } else if self.path("written").exists() {
            DepositState::Written
        } else if self.path("rejected").exists() {
            DepositState::Rejected
        } else {
            DepositState::Vanished
        }
    }

    /// Removes the written mark, once its waiter has seen it.
    pub(crate) fn acknowledge(&self) {
        let _ = fs::remove_file(self.path("written"));
    }

    /// Takes the record back before any holder claimed it. False when a holder has it (or
    /// had it): then its outcome is that holder's.
    pub(crate) fn withdraw(&self) -> bool {
        fs::remove_file(self.path("rec")).is_ok()
    }

    /// Removes the record in whatever state it waits, after this process held the lock and
    /// could not write it (its caller reports the failure).
    pub(crate) fn abandon(&self) {
        let _ = fs::remove_file(self.path("rec"));
        let _ = fs::remove_file(self.path("claimed"));
    }

    /// Removes a rejected record (its waiter has seen the rejection).
    pub(crate) fn discard_rejected(&self) {
        let _ = fs::remove_file(self.path("rejected"));
    }
}

/// A record a lock holder took from the directory.
pub(crate) struct Claim {
    path: PathBuf,
    /// The record's content (wiped when dropped).
    pub(crate) bytes: Zeroizing<Vec<u8>>,
}

impl Claim {
    /// The record is in the cache file, durably: mark it written, which tells its waiter (who
    /// removes the mark). The content goes; only the name is needed.
    pub(crate) fn finish(self) {
        let written = self.path.with_extension("written");
        let marked = fs::rename(&self.path, &written)
            .and_then(|()| fs::OpenOptions::new().write(true).open(&written))
            .and_then(|file| file.set_len(0));
        if let Err(e) = marked {
            tracing::warn!(record = %self.path.display(), error = %e, "cannot mark a hand-over record written");
        }
    }

    /// The write failed: put the record back for the next holder.
    pub(crate) fn release(self) {
        let _ = fs::rename(&self.path, self.path.with_extension("rec"));
    }

    /// The record cannot be applied: mark it so, which tells its waiter.
    pub(crate) fn reject(self) {
        let _ = fs::rename(&self.path, self.path.with_extension("rejected"));
    }
}

/// Claims every waiting record in `dir` (and those a holder that died had claimed), oldest
/// first. Call only while holding the cache lock.
pub(crate) fn claim_all(dir: &Path) -> Vec<Claim> {
    if let Err(e) = check_private_dir(dir) {
        if !matches!(&e, FileError::Io { source, .. } if source.kind() == ErrorKind::NotFound) {
            tracing::warn!(dir = %dir.display(), error = %e, "ignoring the hand-over records of an unsafe directory");
        }
        return Vec::new();
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list hand-over records");
            }
            return Vec::new();
        }
    };
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !owned_regular_file(&path) {
            tracing::warn!(record = %path.display(), "ignoring a hand-over record that is not a regular file of this user");
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("rec") => {
                let claimed = path.with_extension("claimed");
                if fs::rename(&path, &claimed).is_ok() {
                    names.push(claimed);
                }
            }
            // Left by a holder that died before writing it; the lock is ours now.
            Some("claimed") => names.push(path),
            Some("tmp" | "rejected" | "written") => remove_if_old(&path),
            _ => {}
        }
    }
    names.sort_unstable();
    names
        .into_iter()
        .filter_map(|path| match fs::read(&path) {
            Ok(bytes) => Some(Claim {
                path,
                bytes: Zeroizing::new(bytes),
            }),
            Err(e) => {
                tracing::warn!(record = %path.display(), error = %e, "cannot read a hand-over record");
                None
            }
        })
        .collect()
}

fn remove_if_old(path: &Path) {
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > LEFTOVER_AGE);
    if old {
        let _ = fs::remove_file(path);
    }
}

fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    crate::atomic::create_private_dirs(dir).map_err(io_error(dir))
}

/// Fails unless `dir` is a real directory (not a symbolic link), owned by this user, with no
/// access for group or others.
fn check_private_dir(dir: &Path) -> Result<(), FileError> {
    let meta = fs::symlink_metadata(dir).map_err(io_error(dir))?;
    let unsafe_dir = |reason: &str| FileError::Io {
        path: dir.to_owned(),
        source: std::io::Error::new(ErrorKind::PermissionDenied, reason.to_owned()),
    };
    if !meta.is_dir() {
        return Err(unsafe_dir(
            "the hand-over directory is not a directory (a symbolic link?)",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != current_uid() {
            return Err(unsafe_dir(
                "the hand-over directory belongs to another user",
            ));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(unsafe_dir(
                "the hand-over directory is open to other users (not 0700)",
            ));
        }
    }
    Ok(())
}

/// True for a regular file (not a symbolic link) owned by this user.
fn owned_regular_file(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.is_file() && meta.uid() == current_uid()
    }
    #[cfg(not(unix))]
    meta.is_file()
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

fn private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use super::*;

    fn event() -> TokenEvent {
        TokenEvent::new("client", ["User.Read"])
            .token_endpoint("https://login.example/tenant/oauth2/v2.0/token")
            .response_json(r#"{"access_token":"FAKE-AT","expires_in":3600}"#)
            .unwrap()
    }

    #[test]
    fn a_record_reads_back_as_its_event_and_time() {
        let text = encode_record(&event(), 1_700_000_000);
        assert_eq!(decode_record(&text).unwrap(), (event(), 1_700_000_000));
        assert!(decode_record(r#"{"event":{}}"#).is_err(), "no time");
        assert!(decode_record(r#"{"now":1}"#).is_err(), "no event");
        assert!(decode_record("{").is_err());
    }

    #[test]
    fn a_deposit_moves_through_its_states() {
        let dir = tempfile::tempdir().unwrap();
        let pending = pending_dir(&dir.path().join("cache.json"));
        let deposit = Deposit::create(&pending, b"one").unwrap();
        assert_eq!(deposit.state(), DepositState::Waiting);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&pending), 0o700);
            assert_eq!(mode(&deposit.path("rec")), 0o600);
        }
        let second = Deposit::create(&pending, b"two").unwrap();

        let claims = claim_all(&pending);
        assert_eq!(
            claims
                .iter()
                .map(|c| c.bytes.as_slice())
                .collect::<Vec<_>>(),
            [b"one".as_slice(), b"two"],
            "oldest first"
        );
        assert_eq!(deposit.state(), DepositState::Claimed);
        assert!(!deposit.withdraw(), "a claimed record cannot be withdrawn");
        let mut claims = claims.into_iter();
        claims.next().unwrap().finish();
        assert_eq!(deposit.state(), DepositState::Written);
        deposit.acknowledge();
        assert_eq!(
            deposit.state(),
            DepositState::Vanished,
            "acknowledged: gone"
        );
        claims.next().unwrap().release();
        assert_eq!(second.state(), DepositState::Waiting);

        // A holder that dies after claiming leaves the record to the next holder.
        let orphan = claim_all(&pending);
        assert_eq!(orphan.len(), 1);
        drop(orphan);
        let again = claim_all(&pending);
        assert_eq!(again.len(), 1, "a claimed record is taken over");
        again.into_iter().for_each(Claim::reject);
        assert_eq!(second.state(), DepositState::Rejected);
        second.discard_rejected();
        assert_eq!(fs::read_dir(&pending).unwrap().count(), 0);

        let third = Deposit::create(&pending, b"three").unwrap();
        assert!(third.withdraw());
        assert!(claim_all(&pending).is_empty(), "a withdrawn record is gone");
    }
}
