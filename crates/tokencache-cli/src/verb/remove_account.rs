//! `tokencache remove-account`: every token and account entry of a home account.

use std::process::ExitCode;

use crate::error::CliError;
use crate::keys::KeyArgs;
use crate::target::Target;
use crate::{file, stores};

/// Removes `home_account_id`'s entries (in a store: deletes its partition).
pub fn run(target: &Target, home_account_id: &str, key: &KeyArgs) -> Result<ExitCode, CliError> {
    match target {
        Target::Store(url) => {
            let deleted = stores::block_on(async {
                stores::delete_partition(
                    &super::open_store(url, &KeyArgs::default()).await?,
                    home_account_id,
                )
                .await
            })??;
            println!(
                "{}",
                if deleted {
                    "deleted the account's partition"
                } else {
                    "no partition for that account"
                }
            );
        }
        Target::File(path) => {
            file::existing(path)?;
            let removed = file::open(path, key)?
                .update(|c| Ok(c.remove_account_everywhere(home_account_id)))?;
            println!(
                "removed {} access token(s), {} refresh token(s), {} ID token(s), {} account(s)",
                removed.access_tokens, removed.refresh_tokens, removed.id_tokens, removed.accounts
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
