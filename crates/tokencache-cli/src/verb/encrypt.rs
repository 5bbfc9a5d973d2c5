//! `tokencache encrypt`: encrypt a cache file or every partition of a store, or re-encrypt
//! them under another key.

use std::process::ExitCode;

use crate::error::CliError;
use crate::file;
use crate::keys::{KeyArgs, PreviousKeyArgs};
#[cfg(feature = "stores")]
use crate::store_access::{StoreAccess, Writes};
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Encrypts `target` with `key` (under `key_id` for a store), reading it with `previous`;
/// `new_key` makes the key first.
pub fn run(
    target: &Target,
    key: &KeyArgs,
    new_key: bool,
    key_id: Option<String>,
    previous: &PreviousKeyArgs,
) -> Result<ExitCode, CliError> {
    // Usage mistakes are reported before a key is made for them.
    match target {
        Target::File(path) => file::existing(path)?,
        #[cfg(feature = "stores")]
        Target::Store(_) if key_id.is_none() => {
            return Err(CliError::Usage(
                "encrypting a store needs --key-id: the id the application gives this key".into(),
            ));
        }
        #[cfg(feature = "stores")]
        Target::Store(_) => {}
    }
    let data_key = key.key_to_encrypt_with(new_key)?;
    match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let key_id = key_id.unwrap_or_default();
            let writes = Writes::Encrypted(key_id);
            let done = stores::block_on(async {
                let access = StoreAccess::open(
                    url,
                    Some(data_key),
                    previous.as_key_args().key()?,
                    writes.clone(),
                )
                .await?;
                stores::rewrite_all(&access, &writes).await
            })??;
            Ok(report_rewrite(url, &done, "encrypted"))
        }
        Target::File(path) => {
            if key_id.is_some() {
                return Err(CliError::Usage(
                    "--key-id names a key for a store; a cache file records where its key comes from".into(),
                ));
            }
            let _ = data_key;
            let previous = previous.as_key_args().source()?;
            let store = file::open(path, key)?;
            file::noticing_waits(path, || store.rewrite(previous.as_ref()))?;
            outln!("{}: encrypted", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints what `encrypt` or `decrypt` did to a store; exit 1 if a partition could not be read.
#[cfg(feature = "stores")]
pub(crate) fn report_rewrite(url: &str, done: &stores::Rewritten, verb: &str) -> ExitCode {
    outln!(
        "{}: {verb} {} partition(s); {} already were",
        tokencache::redact_url(url),
        done.rewritten,
        done.unchanged
    );
    for (key, why) in &done.failed {
        outln!("  partition {key:?} left as it was: {why}");
    }
    if done.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
