//! Atomic file replacement: readers see the old file or the new one, never a mix.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::CliError;

/// Replaces `path` with `content`: a temporary file in the same directory, written and
/// fsynced, given the original's permissions (0600 for a new file), renamed over the original,
/// then the directory fsynced. A symbolic link is refused rather than replaced by a file.
pub fn replace(path: &Path, content: &str) -> Result<(), CliError> {
    let err = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(CliError::Refused {
            path: path.to_owned(),
            reason: "it is a symbolic link",
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokencache-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(content.as_bytes()).map_err(err)?;
    if let Ok(meta) = fs::metadata(path) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}
