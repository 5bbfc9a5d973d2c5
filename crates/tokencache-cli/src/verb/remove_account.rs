//! `tokencache remove-account`: every token and account entry of a home account.

use std::process::ExitCode;

use crate::error::CliError;
use crate::file;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Removes `home_account_id`'s entries (in a store: deletes its partition). Exit 1, naming
/// the accounts there are, when there is no such account.
pub fn run(target: &Target, home_account_id: &str, key: &KeyArgs) -> Result<ExitCode, CliError> {
    match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let (deleted, partitions) = stores::block_on(async {
                let access = super::open_store(url, &KeyArgs::default()).await?;
                let deleted = stores::delete_partition(&access, home_account_id).await?;
                let partitions = if deleted {
                    Vec::new()
                } else {
                    access.store().keys().await?
                };
                Ok::<_, CliError>((deleted, partitions))
            })??;
            if !deleted {
                return Ok(no_such_account(target, home_account_id, &partitions));
            }
            outln!("deleted the partition of {home_account_id}");
        }
        Target::File(path) => {
            file::existing(path)?;
            let mut others = Vec::new();
            let store = file::open(path, key)?;
            let removed = file::noticing_waits(path, || {
                store.update(|c| {
                    let removed = c.remove_account_everywhere(home_account_id);
                    if removed.total() == 0 {
                        others = known_accounts(c);
                    }
                    Ok(removed)
                })
            })?;
            if removed.total() == 0 {
                return Ok(no_such_account(target, home_account_id, &others));
            }
            outln!(
                "removed {} access token(s), {} refresh token(s), {} ID token(s), {} account(s)",
                removed.access_tokens,
                removed.refresh_tokens,
                removed.id_tokens,
                removed.accounts
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The home account ids a cache holds entries of, sorted.
fn known_accounts(cache: &tokencache::TokenCache) -> Vec<String> {
    let mut homes: Vec<String> = cache
        .all_accounts()
        .iter()
        .filter_map(|a| a.home_account_id().map(str::to_owned))
        .chain(
            cache
                .all_refresh_tokens()
                .iter()
                .filter_map(|t| t.home_account_id().map(str::to_owned)),
        )
        .filter(|h| !h.is_empty())
        .collect();
    homes.sort();
    homes.dedup();
    homes
}

fn no_such_account(target: &Target, home_account_id: &str, there: &[String]) -> ExitCode {
    let listed = if there.is_empty() {
        "none".to_owned()
    } else {
        there
            .iter()
            .map(|h| crate::report::shown(h))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!("tokencache: no account {home_account_id:?} in {target} (accounts: {listed})");
    ExitCode::from(crate::error::PROBLEMS)
}
