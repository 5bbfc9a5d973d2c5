//! One module per verb. Each takes its parsed arguments and the [`Target`] it works on, and
//! returns the exit code its `--help` documents.

pub mod decrypt;
pub mod encrypt;
pub mod inspect;
pub mod lock_status;
pub mod migrate;
pub mod prune;
pub mod remove_account;
pub mod repair;
pub mod validate;

#[cfg(feature = "stores")]
use crate::error::CliError;
#[cfg(feature = "stores")]
use crate::keys::KeyArgs;
#[cfg(feature = "stores")]
use crate::store_access::{StoreAccess, Writes};

/// Opens a store URL for a verb that reads, or writes each partition back as it was.
#[cfg(feature = "stores")]
pub(crate) async fn open_store(url: &str, key: &KeyArgs) -> Result<StoreAccess, CliError> {
    StoreAccess::open(url, key.key()?, None, Writes::Keep).await
}
