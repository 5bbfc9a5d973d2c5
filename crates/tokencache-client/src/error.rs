//! The crate's one error type.

use std::fmt;
use std::time::Duration;

/// An OAuth error answered by the identity provider (RFC 6749 §5.2, with Entra's extras).
///
/// Nothing in it is secret: providers put no tokens in error responses, and the request that
/// caused it is not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// The HTTP status of the response.
    pub status: u16,
    /// The OAuth `error` code, e.g. `invalid_grant`.
    pub error: String,
    /// `error_description`, when given.
    pub description: Option<String>,
    /// Entra's `suberror`, e.g. `consent_required`, `bad_token`.
    pub suberror: Option<String>,
    /// Entra's `error_codes` (AADSTS numbers).
    pub error_codes: Vec<i64>,
    /// Entra's `correlation_id` (also from the `client-request-id` header), for support.
    pub correlation_id: Option<String>,
    /// Entra's `trace_id`.
    pub trace_id: Option<String>,
    /// The claims challenge to pass to the next interactive request, when given.
    pub claims: Option<String>,
}

/// Suberrors that do not need a user's attention (MSAL maps them to an empty classification).
const SILENT_SUBERRORS: &[&str] = &[
    "bad_token",
    "token_expired",
    "protection_policy_required",
    "client_mismatch",
    "device_authentication_failed",
];

impl OAuthError {
    /// True when only an interactive sign-in can fix this (`interaction_required`,
    /// `login_required`, `consent_required`, or an `invalid_grant`, which means the refresh
    /// token no longer works).
    pub fn is_interaction_required(&self) -> bool {
        matches!(
            self.error.as_str(),
            "interaction_required" | "login_required" | "consent_required" | "invalid_grant"
        )
    }

    /// MSAL's classification of the suberror: `None` without one, `Some("")` for suberrors
    /// that need no user action, the suberror itself otherwise (e.g. `consent_required`).
    pub fn classification(&self) -> Option<&str> {
        let sub = self.suberror.as_deref()?;
        Some(if SILENT_SUBERRORS.contains(&sub) {
            ""
        } else {
            sub
        })
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.error, self.status)?;
        if let Some(d) = &self.description {
            write!(f, ": {}", d.lines().next().unwrap_or_default())?;
        }
        if let Some(s) = &self.suberror {
            write!(f, " [suberror {s}]")?;
        }
        if let Some(c) = &self.correlation_id {
            write!(f, " [correlation id {c}]")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The identity provider answered with an OAuth error.
    #[error("the identity provider refused the request: {0}")]
    OAuth(Box<OAuthError>),
    /// The provider could not be reached (connection, TLS, DNS), after the bounded retries.
    #[error("could not reach {url}: {reason}")]
    Network {
        /// The endpoint (without query).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The provider did not answer in time.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The endpoint (without query).
        url: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The provider answered something that is not a valid response.
    #[error("unexpected response from {url}: {reason}")]
    InvalidResponse {
        /// The endpoint (without query).
        url: String,
        /// What was wrong (never the body of a successful token response).
        reason: String,
    },
    /// The authority URL is not usable.
    #[error("invalid authority {authority:?}: {reason}")]
    InvalidAuthority {
        /// The authority as given.
        authority: String,
        /// Why.
        reason: String,
    },
    /// The application was configured wrongly (missing credential, bad redirect URI, ...).
    #[error("configuration error: {0}")]
    Configuration(String),
    /// An authorization response did not belong to the flow: wrong `state`, wrong `nonce`, or
    /// an ID token for another client.
    #[error("the authorization response does not match the flow: {0}")]
    FlowMismatch(String),
    /// The user (or the provider) ended an interactive flow: `access_denied`, a declined
    /// device code, or an `error` on the redirect.
    #[error("the sign-in was not completed: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    SignInFailed {
        /// The OAuth error code (`access_denied`, `authorization_declined`, ...).
        error: String,
        /// The description, when given.
        description: Option<String>,
    },
    /// A device code expired before the user approved it.
    #[error("the device code expired before the sign-in was completed")]
    DeviceCodeExpired,
    /// No token in the cache and no refresh token to get one silently: an interactive flow is
    /// needed.
    #[error("no cached token or refresh token for this account and scopes; sign in interactively")]
    NoTokenInCache,
    /// The cache could not be read or updated.
    #[error("token cache: {0}")]
    Cache(#[from] tokencache::Error),
    /// The cache accessor failed (a file, a database, ...). The accessor's error is the
    /// [source](std::error::Error::source), and its own source is the file or store crate's
    /// error, so a caller can downcast it.
    #[error("{0}")]
    Store(#[source] tokencache::AccessError),
    /// A local I/O error (the loopback redirect listener).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// True when an interactive sign-in is needed: an `interaction_required`-class OAuth error
    /// or nothing usable in the cache.
    ///
    /// ```
    /// use tokencache_client::ClientError;
    /// assert!(ClientError::NoTokenInCache.is_interaction_required());
    /// ```
    pub fn is_interaction_required(&self) -> bool {
        match self {
            ClientError::OAuth(e) => e.is_interaction_required(),
            ClientError::NoTokenInCache => true,
            _ => false,
        }
    }

    /// True for failures of the network (unreachable, timed out, 5xx after retries), as opposed
    /// to a refusal by the provider.
    pub fn is_network(&self) -> bool {
        match self {
            ClientError::Network { .. } | ClientError::Timeout { .. } => true,
            ClientError::OAuth(e) => e.status >= 500,
            _ => false,
        }
    }

    /// True when the place the cache lives could not be reached (a database down, a file
    /// lock not acquired in time): retrying later may succeed.
    ///
    /// ```
    /// use tokencache::{AccessError, AccessErrorKind};
    /// use tokencache_client::ClientError;
    /// let down = AccessError::new(AccessErrorKind::Unavailable, std::io::Error::other("refused"));
    /// assert!(ClientError::from(down).is_store_unavailable());
    /// ```
    pub fn is_store_unavailable(&self) -> bool {
        matches!(self, ClientError::Store(e) if e.is_unavailable())
    }

    /// The OAuth error, when the provider answered with one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            ClientError::OAuth(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tokencache::AccessError> for ClientError {
    /// A change the cache itself rejected stays a [`ClientError::Cache`]; every other failure
    /// of the accessor is a [`ClientError::Store`].
    fn from(e: tokencache::AccessError) -> Self {
        if e.kind() == tokencache::AccessErrorKind::Cache {
            match e.into_inner().downcast::<tokencache::Error>() {
                Ok(cache) => ClientError::Cache(*cache),
                Err(other) => ClientError::Store(tokencache::AccessError::new(
                    tokencache::AccessErrorKind::Cache,
                    other,
                )),
            }
        } else {
            ClientError::Store(e)
        }
    }
}

/// The crate's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
