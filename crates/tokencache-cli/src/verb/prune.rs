//! `tokencache prune`: remove expired access tokens.

use std::process::ExitCode;

use crate::error::CliError;
use crate::file;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Removes the access tokens expired at `now`.
pub fn run(target: &Target, now: i64, key: &KeyArgs) -> Result<ExitCode, CliError> {
    let removed = match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let pruned = stores::block_on(async {
                stores::prune(&super::open_store(url, key).await?, now).await
            })??;
            outln!("removed {} expired access token(s)", pruned.removed);
            if pruned.skipped.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            for (partition, why) in &pruned.skipped {
                eprintln!("warning: partition {partition:?} skipped: {why}");
            }
            return Ok(ExitCode::from(crate::error::PROBLEMS));
        }
        Target::File(path) => {
            file::existing(path)?;
            let store = file::open(path, key)?;
            file::noticing_waits(path, || {
                store.update(|c| Ok(c.purge_expired_access_tokens(now)))
            })?
        }
    };
    outln!("removed {removed} expired access token(s)");
    Ok(ExitCode::SUCCESS)
}
