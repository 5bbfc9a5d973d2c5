//! `tokencache migrate`: copy every partition from one cache to another, then verify.

use std::process::ExitCode;

use crate::error::CliError;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::store_access::Writes;
use crate::target::Target;
#[cfg(feature = "stores")]
use crate::{file, stores};

/// Copies `from` into `to` (a file into a store splits it per account; a store into a file
/// merges it); `key_id` encrypts a target store's partitions with `key`.
#[cfg(feature = "stores")]
pub fn run(
    from: &Target,
    to: &Target,
    key: &KeyArgs,
    new_key: bool,
    key_id: Option<String>,
) -> Result<ExitCode, CliError> {
    if from == to {
        return Err(CliError::Usage("FROM and TO are the same".into()));
    }
    if let Target::File(path) = from {
        file::existing(path)?;
    }
    if key_id.is_some() && !to.is_store() {
        return Err(CliError::Usage(
            "--key-id encrypts a target store; TO is a cache file".into(),
        ));
    }
    // A key that will encrypt a target store may be new, when asked for with --new-key.
    let data_key = match &key_id {
        Some(_) => Some(key.key_to_encrypt_with(new_key)?),
        None if new_key => {
            return Err(CliError::Usage(
                "--new-key makes a key to encrypt a target store with; give --key-id too".into(),
            ));
        }
        None => key.key()?,
    };
    let target_writes = key_id.map_or(Writes::Keep, Writes::Encrypted);
    let (from, to) = (from.location(), to.location());
    let ok = stores::block_on(async {
        let source = stores::endpoint(&from, data_key.clone(), Writes::Keep, |p| {
            file::open_for_import(&p, key)
        })
        .await?;
        let target = stores::endpoint(&to, data_key, target_writes, |p| {
            file::open_for_import(&p, key)
        })
        .await?;
        stores::migrate(source, target).await
    })??;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Without store URLs there is nothing to migrate to or from.
#[cfg(not(feature = "stores"))]
pub fn run(
    _: &Target,
    _: &Target,
    _: &KeyArgs,
    _: bool,
    _: Option<String>,
) -> Result<ExitCode, CliError> {
    Err(CliError::Usage(
        "migrate moves caches to and from stores; this tokencache was built without store URLs (cargo features `sqlite`, `postgres`, `redis`)".into(),
    ))
}
