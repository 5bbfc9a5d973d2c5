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
        Target::Store(url) => stores::block_on(async {
            stores::prune(&super::open_store(url, key).await?, now).await
        })??,
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
