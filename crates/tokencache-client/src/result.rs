//! What a successful acquisition returns, and the signed-in accounts.

use std::fmt;

use tokencache::json::JsonObject;
use tokencache::{Account, Secret};

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The cache: no network call was made.
    Cache,
    /// The identity provider (a flow, or a refresh).
    IdentityProvider,
}

impl TokenSource {
    /// `"cache"` or `"identity_provider"`, as MSAL names them.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Cache => "cache",
            TokenSource::IdentityProvider => "identity_provider",
        }
    }
}

/// A signed-in account, as [`crate::PublicClientApplication::accounts`] lists it and silent
/// calls take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// `<uid>.<utid>` for Entra, the `sub` otherwise: the account's identity in the cache.
    pub home_account_id: String,
    /// The authority host the account signed in at.
    pub environment: String,
    /// The username (`preferred_username`), or `""`.
    pub username: String,
    /// The account's object id in its tenant (`oid`), when known.
    pub local_account_id: Option<String>,
    /// The tenant of the account record.
    pub realm: Option<String>,
    /// `MSSTS`, `ADFS`, ...
    pub authority_type: Option<String>,
}

impl AccountInfo {
    pub(crate) fn from_entry(account: &Account) -> Option<AccountInfo> {
        Some(AccountInfo {
            home_account_id: account.home_account_id()?.to_owned(),
            environment: account.environment()?.to_owned(),
            username: account.username().unwrap_or_default().to_owned(),
            local_account_id: account.local_account_id().map(str::to_owned),
            realm: account.realm().map(str::to_owned),
            authority_type: account.authority_type().map(str::to_owned),
        })
    }
}

/// A token acquired by a client application. `Debug` never shows the tokens.
#[derive(Clone)]
pub struct AuthenticationResult {
    /// The access token.
    pub access_token: Secret,
    /// `Bearer` (or the provider's `token_type`).
    pub token_type: String,
    /// When the access token expires, Unix seconds.
    pub expires_on: i64,
    /// When a proactive refresh is due, Unix seconds (Entra's `refresh_in`).
    pub refresh_on: Option<i64>,
    /// The scopes the access token holds.
    pub scopes: Vec<String>,
    /// The account (none for app tokens).
    pub account: Option<AccountInfo>,
    /// The ID token, when the provider returned one (not on cache hits, as in MSAL).
    pub id_token: Option<Secret>,
    /// The ID token's claims (decoded, not validated), with the ID token.
    pub id_token_claims: Option<JsonObject>,
    /// Cache or identity provider.
    pub token_source: TokenSource,
}

impl fmt::Debug for AuthenticationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationResult")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_on", &self.expires_on)
            .field("refresh_on", &self.refresh_on)
            .field("scopes", &self.scopes)
            .field("account", &self.account)
            .field("token_source", &self.token_source)
            .finish_non_exhaustive()
    }
}
