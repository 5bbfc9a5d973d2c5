//! The in-process front of every credential: the last token per scopes, served while it is
//! more than [`EXPIRY_BUFFER_SECONDS`] from expiring. A hit is a mutex and a hash lookup, no
//! file check and no task hop; only a miss goes to the cache (file or store) below.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::credentials::{AccessToken, Secret};
use azure_core::time::OffsetDateTime;
use tokencache_client::EXPIRY_BUFFER_SECONDS;

use crate::error::CredentialError;

/// Tokens by scopes key.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    tokens: Mutex<HashMap<String, (Secret, i64)>>,
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Memo {
    /// The token for `key` if it is not about to expire.
    pub(crate) fn get(&self, key: &str) -> Option<AccessToken> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (secret, expires_on) = tokens.get(key)?;
        if *expires_on - EXPIRY_BUFFER_SECONDS <= now() {
            return None;
        }
        access_token(secret.clone(), *expires_on).ok()
    }

    /// Remembers a token.
    pub(crate) fn put(&self, key: String, secret: Secret, expires_on: i64) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, (secret, expires_on));
    }
}

/// The Azure SDK's token for a secret and an expiry in Unix seconds.
pub(crate) fn access_token(
    secret: Secret,
    expires_on: i64,
) -> Result<AccessToken, CredentialError> {
    let at = OffsetDateTime::from_unix_timestamp(expires_on).map_err(|_| {
        CredentialError::Configuration(format!("expiry {expires_on} is out of range"))
    })?;
    Ok(AccessToken::new(secret, at))
}

/// A token and where it came from: the cache (this process's memory, the file or the store),
/// or the identity provider.
#[derive(Clone, Debug)]
pub struct Token {
    /// The token, as the Azure SDK takes it (its `Debug` hides the secret).
    pub access_token: AccessToken,
    /// Where it came from.
    pub source: tokencache_client::TokenSource,
}

impl Memo {
    /// The token for `key` as a cache hit, if it is not about to expire.
    pub(crate) fn hit(&self, key: &str) -> Option<Token> {
        self.get(key).map(|access_token| Token {
            access_token,
            source: tokencache_client::TokenSource::Cache,
        })
    }

    /// Remembers a client application's result and returns it as a [`Token`].
    pub(crate) fn keep(
        &self,
        key: String,
        r: &tokencache_client::AuthenticationResult,
    ) -> Result<Token, CredentialError> {
        let secret = Secret::new(r.access_token.expose().to_owned());
        self.put(key, secret.clone(), r.expires_on);
        Ok(Token {
            access_token: access_token(secret, r.expires_on)?,
            source: r.token_source,
        })
    }
}
