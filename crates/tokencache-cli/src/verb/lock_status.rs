//! `tokencache lock-status`: who holds a cache file's lock; which refresh leases a store has.

use std::path::Path;
use std::process::ExitCode;

use tokencache_file::LockStatus;

use crate::error::CliError;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Prints the lock of the cache at `target`.
pub fn run(target: &Target) -> Result<ExitCode, CliError> {
    match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => store_leases(url)?,
        Target::File(path) => file_lock(path)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "stores")]
fn store_leases(url: &str) -> Result<(), CliError> {
    // A store has no cache-wide lock; what can be held is a partition's refresh lease.
    let held = stores::block_on(async {
        let store = tokencache_store::open(url).await?;
        Ok::<_, CliError>(store.leases().await?)
    })??;
    outln!(
        "{}: no cache-wide lock (each save compares and sets its partition's version); {} refresh lease(s) held",
        tokencache::redact_url(url),
        held.len()
    );
    for lease in held {
        outln!(
            "  partition {:?}: held by {} for {:.1}s more",
            lease.partition,
            lease.holder,
            lease.expires_in.as_secs_f64()
        );
    }
    Ok(())
}

fn file_lock(file: &Path) -> Result<(), CliError> {
    // The lock of a cache that is not there is not "free": say what is wrong with the path
    // (unless a lock file is there: its first writer may be creating the cache).
    if file.is_dir() || !tokencache_file::lock_path(file).exists() {
        crate::file::existing(file)?;
    }
    let status = tokencache_file::lock_status(file)?;
    match &status {
        LockStatus::Free => outln!("{}: not locked", file.display()),
        LockStatus::Held {
            owner,
            alive,
            os_locked,
            age,
        } => {
            let who = owner
                .as_ref()
                .map_or("an unknown process".to_owned(), ToString::to_string);
            let state = match alive {
                Some(true) => "alive",
                Some(false) => "dead",
                None => "unknown",
            };
            outln!(
                "{}: locked by {who} ({state}){}, for {}s{}",
                file.display(),
                if *os_locked {
                    ", holding the OS lock"
                } else {
                    ""
                },
                age.as_secs(),
                if status.is_stale() {
                    "; STALE: the next writer removes it"
                } else {
                    ""
                }
            );
        }
    }
    let handed = tokencache_file::hand_overs(file)?;
    if !handed.is_empty() {
        outln!(
            "{}: token responses handed over for the next writer (group commit): {} waiting, {} being written, {} rejected",
            file.display(),
            handed.waiting,
            handed.being_written,
            handed.rejected
        );
    }
    Ok(())
}
