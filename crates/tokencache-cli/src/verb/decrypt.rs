//! `tokencache decrypt`: back to MSAL's plain JSON.

use std::process::ExitCode;

use crate::error::CliError;
use crate::file;
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::store_access::{StoreAccess, Writes};
#[cfg(feature = "stores")]
use crate::stores;
use crate::target::Target;

/// Decrypts the cache file, or every partition of the store, at `target` with `key`.
pub fn run(target: &Target, key: &KeyArgs) -> Result<ExitCode, CliError> {
    match target {
        #[cfg(feature = "stores")]
        Target::Store(url) => {
            let done = stores::block_on(async {
                let access = StoreAccess::open(url, key.key()?, None, Writes::Plain).await?;
                stores::rewrite_all(&access, &Writes::Plain).await
            })??;
            Ok(super::encrypt::report_rewrite(url, &done, "decrypted"))
        }
        Target::File(path) => {
            file::existing(path)?;
            if file::dpapi_protected(path) {
                // Sealed for the Windows user: no key to give.
                let store = tokencache_file::FileStore::open(path, Default::default())?;
                file::noticing_waits(path, || store.rewrite(None))?;
                outln!(
                    "{}: decrypted (it was sealed with Windows DPAPI)",
                    path.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let source = key.source()?.ok_or_else(|| {
                CliError::Usage("decrypt needs --key-file, --key-env or --keyring".into())
            })?;
            let store = file::open(path, &KeyArgs::default())?;
            file::noticing_waits(path, || store.rewrite(Some(&source)))?;
            outln!("{}: decrypted", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
