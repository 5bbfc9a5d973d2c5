//! `tokencache inspect`: the accounts and tokens of a cache, never a secret.

use std::process::ExitCode;
use std::sync::Arc;

use crate::error::CliError;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;
use crate::{file, report};

/// Prints the cache at `target` as tables, or as one JSON object with `json`; expiry is
/// measured against `now`.
pub fn run(target: &Target, json: bool, now: i64, key: &KeyArgs) -> Result<ExitCode, CliError> {
    let (cache, partitions): (
        Arc<tokencache::TokenCache>,
        Option<Vec<report::PartitionRow>>,
    ) = match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let loaded = stores::block_on(async {
                stores::load_all(&super::open_store(url, key).await?).await
            })??;
            for (k, why) in loaded.unreadable {
                eprintln!("warning: partition {k:?}: {why}");
            }
            (Arc::new(loaded.whole), Some(loaded.partitions))
        }
        Target::File(path) => (file::load(path, key)?, None),
    };
    let out = match (json, &partitions) {
        (true, _) => report::json(&cache, partitions.as_deref()),
        (false, None) => report::table(&cache, now),
        (false, Some(rows)) => format!(
            "{}\n\n{}",
            report::table(&cache, now),
            report::partitions_table(rows, now)
        ),
    };
    outln!("{out}");
    Ok(ExitCode::SUCCESS)
}
