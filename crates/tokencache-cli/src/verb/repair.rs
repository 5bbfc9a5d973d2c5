//! `tokencache repair`: fix what `validate` reports, keeping a copy first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokencache::{Repair, TokenCache};

use crate::error::CliError;
use crate::file;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Repairs the cache at `target` (or only lists the repairs with `dry_run`); the copy goes to
/// `backup`, or beside the file.
pub fn run(
    target: &Target,
    dry_run: bool,
    backup: Option<PathBuf>,
    now: i64,
    key: &KeyArgs,
) -> Result<ExitCode, CliError> {
    let repairs = match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let backup = backup.unwrap_or_else(|| format!("tokencache-repair-{now}.json").into());
            stores::block_on(async {
                let access = super::open_store(url, key).await?;
                stores::repair(&access, dry_run, || file::open(&backup, key)).await
            })??
        }
        Target::File(path) => repair_file(path, dry_run, backup, now, key)?,
    };
    if repairs.is_empty() {
        outln!("{target}: nothing to repair");
    }
    for r in &repairs {
        outln!("  {r}");
    }
    if dry_run && !repairs.is_empty() {
        outln!(
            "{target}: {} change(s) planned; nothing written (--dry-run)",
            repairs.len()
        );
    } else if !repairs.is_empty() {
        outln!("{target}: {} change(s) made", repairs.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn repair_file(
    path: &Path,
    dry_run: bool,
    backup: Option<PathBuf>,
    now: i64,
    key: &KeyArgs,
) -> Result<Vec<Repair>, CliError> {
    let cache = file::load(path, key)?;
    let planned = TokenCache::from_json(&cache.serialize())?.repair();
    if dry_run || planned.is_empty() {
        return Ok(planned);
    }
    let backup =
        backup.unwrap_or_else(|| PathBuf::from(format!("{}.before-repair-{now}", path.display())));
    file::keep_copy(path, &backup)?;
    outln!("a copy of the cache as it was: {}", backup.display());
    let store = file::open(path, key)?;
    Ok(file::noticing_waits(path, || {
        store.update(|c| Ok(c.repair()))
    })?)
}
