//! Atomic, durable file replacement.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::FileError;

/// Refuses symbolic links.
pub(crate) fn refuse_symlink(path: &Path) -> Result<(), FileError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(FileError::Symlink {
            path: path.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The prefix of the temporary files that replace `path`: `.<file name>.tokencache-`. Named
/// after the cache, so that its lock holder knows every such file to be its own kind.
fn temporary_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!(".{name}.tokencache-")
}

/// Removes the temporary files a writer of `path` killed between creating and renaming one
/// left behind. Only the holder of the cache's lock writes them, so the caller must hold it.
fn remove_leftovers(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".tmp") {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed a temporary file an interrupted writer left")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "could not remove a temporary file an interrupted writer left")
                }
            }
        }
    }
}

/// How far ahead of the write a cache file's modification time is set (see
/// [`write_atomically`]): longer than a reader of msal-extensions takes between reading the
/// file and noting when it synced, even on a loaded machine.
const MSAL_RELOAD_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Renames the temporary file over `path`. On Windows the replace asks for POSIX semantics
/// first (see [`posix_replace`]), so that a reader holding the cache open (another
/// tokencache, an antivirus scanner) does not stop it; a reader that opened it without
/// `FILE_SHARE_DELETE` (msal-extensions, through Python's `open`), or a system without POSIX
/// renames, still makes the replace fail with a sharing violation, which is retried with a
/// short, bounded backoff (about 2 s in all), as well-known Windows tools do. Elsewhere a
/// rename replaces an open file at once.
fn persist(tmp: tempfile::TempPath, path: &Path) -> std::io::Result<()> {
    // Kept (no longer deleted on drop, and on Windows no longer marked temporary) before the
    // rename, so that the cache file is an ordinary one; removed below if the rename fails.
    let tmp = tmp.keep().map_err(|e| e.error)?;
    let mut delay = std::time::Duration::from_millis(1);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match replace(&tmp, path) {
            Ok(()) => return Ok(()),
            Err(e) if cfg!(windows) && is_sharing_violation(&e) && waited.as_secs() < 2 => {
                tracing::debug!(path = %path.display(), waited_ms = waited.as_millis() as u64, "the cache file is open elsewhere; retrying the replace");
                std::thread::sleep(delay);
                waited += delay;
                delay = (delay * 2).min(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
}

/// One attempt to rename `from` over `to`.
fn replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    match posix_replace(from, to) {
        Ok(PosixReplace::Done) => return Ok(()),
        Ok(PosixReplace::Unsupported) => {}
        Err(e) => return Err(e),
    }
    fs::rename(from, to)
}

/// What the POSIX-semantics rename did.
#[cfg(windows)]
enum PosixReplace {
    /// Replaced.
    Done,
    /// The system (before Windows 10 1607, some file systems, Wine 8) does not offer it: the
    /// caller falls back to an ordinary rename.
    Unsupported,
}

/// Renames `from` over `to` with `SetFileInformationByHandle(FileRenameInfoEx)` and
/// `FILE_RENAME_FLAG_POSIX_SEMANTICS | FILE_RENAME_FLAG_REPLACE_IF_EXISTS` (Windows 10 1607+):
/// the replaced file disappears from the directory at once even while others have it open
/// with `FILE_SHARE_DELETE`, and they keep reading the old content, as on Unix. Written by
/// hand because `MoveFileExW` (what `tempfile` and older standard libraries use) refuses to
/// replace an open file.
#[cfg(windows)]
#[allow(unsafe_code)]
fn posix_replace(from: &Path, to: &Path) -> std::io::Result<PosixReplace> {
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{
        DELETE, FILE_RENAME_INFO, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
        FileRenameInfoEx, SetFileInformationByHandle,
    };
    use windows_sys::Win32::System::WindowsProgramming::{
        FILE_RENAME_FLAG_POSIX_SEMANTICS, FILE_RENAME_FLAG_REPLACE_IF_EXISTS,
    };

    let target: Vec<u16> = std::path::absolute(to)?.as_os_str().encode_wide().collect();
    let file = fs::OpenOptions::new()
        .access_mode(DELETE)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .open(from)?;
    let name_bytes = target.len() * 2;
    let size = std::mem::offset_of!(FILE_RENAME_INFO, FileName) + name_bytes + 2;
    // u64 words: aligned for the structure (its handle member), zeroed (a terminating NUL).
    let mut buffer = vec![0u64; size.div_ceil(8)];
    let info = buffer.as_mut_ptr().cast::<FILE_RENAME_INFO>();
    // SAFETY: `buffer` is zeroed, aligned and large enough for the structure and the name.
    unsafe {
        (*info).Anonymous.Flags =
            FILE_RENAME_FLAG_REPLACE_IF_EXISTS | FILE_RENAME_FLAG_POSIX_SEMANTICS;
        (*info).FileNameLength = u32::try_from(name_bytes).map_err(std::io::Error::other)?;
        std::ptr::copy_nonoverlapping(
            target.as_ptr(),
            (&raw mut (*info).FileName).cast::<u16>(),
            target.len(),
        );
    }
    // SAFETY: a valid handle opened with DELETE access, and the buffer filled above.
    let ok = unsafe {
        SetFileInformationByHandle(
            file.as_raw_handle(),
            FileRenameInfoEx,
            info.cast(),
            u32::try_from(size).map_err(std::io::Error::other)?,
        )
    };
    if ok != 0 {
        return Ok(PosixReplace::Done);
    }
    let e = std::io::Error::last_os_error();
    // ERROR_INVALID_FUNCTION, ERROR_NOT_SUPPORTED, ERROR_INVALID_PARAMETER,
    // ERROR_CALL_NOT_IMPLEMENTED: not offered here.
    if matches!(e.raw_os_error(), Some(1 | 50 | 87 | 120)) {
        tracing::debug!(error = %e, "no POSIX-semantics rename here; using an ordinary one");
        return Ok(PosixReplace::Unsupported);
    }
    Err(e)
}

/// Windows' "in use" errors: ERROR_ACCESS_DENIED (5), ERROR_SHARING_VIOLATION (32),
/// ERROR_LOCK_VIOLATION (33).
fn is_sharing_violation(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(5 | 32 | 33))
}

/// Creates `dir` and any missing parents, each new one owner-only (0700 on Unix, whatever the
/// umask), since they hold token caches.
pub(crate) fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The original file's permissions without any group or other access (on Unix): a rewrite
/// never leaves a cache readable by others, even when the original was (`decrypt` of a 0644
/// encrypted file writes a 0600 plaintext one).
fn private(permissions: fs::Permissions) -> fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(permissions.mode() & 0o700)
    }
    #[cfg(not(unix))]
    permissions
}

/// Replaces `path` with `content`: a temporary file in the same directory (created 0600),
/// written and fsynced, given the original's owner permissions if there is one (never group or
/// other access), renamed over the
/// original, then the directory fsynced. Readers see the old file or the new one, never a
/// mix; a crash leaves one of the two, and a temporary file that the next writer removes.
/// The caller holds the cache's lock.
pub(crate) fn write_atomically(path: &Path, content: &[u8]) -> Result<(), FileError> {
    let err = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    refuse_symlink(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    create_private_dirs(dir).map_err(err)?;
    let prefix = temporary_prefix(path);
    remove_leftovers(dir, &prefix);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(content).map_err(err)?;
    if let Ok(meta) = fs::metadata(path) {
        tmp.as_file()
            .set_permissions(private(meta.permissions()))
            .map_err(err)?;
    }
    // msal-extensions (and so the Azure CLI) re-reads the file before a change only when its
    // modification time is later than the moment it last read it. That moment is taken with a
    // precise clock, and after parsing what it read (milliseconds later; its readers do not
    // take the lock), while file systems stamp writes with a coarse clock: a write of ours
    // made soon after or during its read could look already seen, and its next save would
    // overwrite it. The stamp is therefore set, while we hold the lock, a little ahead of now:
    // its readers re-read until the stamp has passed, which costs them a parse, never a token.
    tmp.as_file()
        .set_modified(std::time::SystemTime::now() + MSAL_RELOAD_MARGIN)
        .map_err(err)?;
    // The data and the size must be on disk before the rename; the rename itself is made
    // durable by the directory fsync below.
    tmp.as_file().sync_data().map_err(err)?;
    // Closed before the rename: Windows (and Wine) may refuse to rename a file that is open.
    persist(tmp.into_temp_path(), path).map_err(err)?;
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}
