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

/// Replaces `path` with `content`: a temporary file in the same directory (created 0600),
/// written and fsynced, given the original's permissions if there is one, renamed over the
/// original, then the directory fsynced. Readers see the old file or the new one, never a
/// mix; a crash leaves one of the two.
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
    fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokencache-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(content).map_err(err)?;
    if let Ok(meta) = fs::metadata(path) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(err)?;
    }
    // The data and the size must be on disk before the rename; the rename itself is made
    // durable by the directory fsync below.
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}
