//! [`CredentialError`]: what can go wrong, as the source of the [`azure_core::Error`] a
//! credential returns.

use std::path::PathBuf;

use tokencache_client::ClientError;

/// Why a credential could not give a token. Returned to the Azure SDK inside an
/// [`azure_core::Error`] of kind [`Credential`](azure_core::error::ErrorKind::Credential);
/// get it back with `error.downcast_ref::<CredentialError>()`. No variant's text holds a token
/// or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The Azure CLI has no sign-in here (no cache file, no account, or not the account asked
    /// for).
    #[error("no Azure CLI sign-in {what} in {dir}: run `az login`")]
    NotSignedIn {
        /// The Azure CLI's configuration directory.
        dir: PathBuf,
        /// Which sign-in was looked for (`for alice@contoso.com`, or empty).
        what: String,
    },
    /// The Azure CLI keeps its tokens encrypted with Windows DPAPI, which only Windows (as the
    /// same user) can read.
    #[error(
        "the Azure CLI's tokens are in {path}, encrypted with Windows DPAPI, which only Windows can read for the user who signed in; run this on that Windows account, or run `az login` here"
    )]
    EncryptedCache {
        /// The encrypted file.
        path: PathBuf,
    },
    /// The account's sign-in can no longer be used silently (the refresh token expired or was
    /// revoked, or new consent is required). The OAuth error is the source.
    #[error("{account} must sign in again ({hint}): the identity provider refused the refresh")]
    InteractionRequired {
        /// The account's username.
        account: String,
        /// What to do (`run \`az login\``, or `sign in interactively`).
        hint: &'static str,
        /// The provider's answer.
        #[source]
        source: ClientError,
    },
    /// The Azure CLI's profile (`azureProfile.json`) could not be read.
    #[error("the Azure CLI profile {path} is not readable: {reason}")]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The scopes cannot be served: none, or more than one resource in one request.
    #[error("invalid scopes: {0}")]
    Scopes(String),
    /// Several accounts are signed in and none was named.
    #[error("{count} accounts are signed in to this cache; name one with `.username(..)`")]
    AmbiguousAccount {
        /// How many accounts.
        count: usize,
    },
    /// The credential is configured wrongly.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// The cache file could not be opened.
    #[error("the token cache file {path} could not be opened")]
    File {
        /// The file.
        path: PathBuf,
        /// The file store's error.
        #[source]
        source: tokencache_file::FileError,
    },
    /// The partitioned store could not be opened.
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    #[error("the token store {url} could not be opened")]
    Store {
        /// The store's URL without credentials.
        url: String,
        /// The store's error.
        #[source]
        source: tokencache_store::StoreError,
    },
    /// The wrapped credential failed (see [`crate::Persistent`]).
    #[error("the wrapped credential failed")]
    Inner(#[source] azure_core::Error),
    /// The client application failed (network, provider, cache).
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl From<CredentialError> for azure_core::Error {
    fn from(e: CredentialError) -> azure_core::Error {
        azure_core::Error::new(azure_core::error::ErrorKind::Credential, e)
    }
}

/// A client error seen by a credential for `account`: interaction-required errors say what to
/// do.
pub(crate) fn for_account(e: ClientError, account: &str, hint: &'static str) -> CredentialError {
    if e.is_interaction_required() || matches!(e, ClientError::NoTokenInCache) {
        CredentialError::InteractionRequired {
            account: account.to_owned(),
            hint,
            source: e,
        }
    } else {
        CredentialError::Client(e)
    }
}
