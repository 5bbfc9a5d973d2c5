//! Query descriptions for the cache's lookups.

/// What an access-token lookup knows: the account (or none, for app tokens), the client, the
/// authority's environment (with its aliases) and tenant, and the scopes wanted.
///
/// An entry matches when its `home_account_id`, `client_id` and `realm` equal the query's, its
/// `environment` equals one of the query's (case-insensitively), its `target` holds every
/// requested scope (case-insensitively, as Entra treats scopes; MSAL Python's O(1) path does
/// the same), a `key_id` in the query equals the entry's, and its `ext_cache_key` equals the
/// query's. An entry with an `ext_cache_key` never answers a query without one (MSAL's isolation
/// rule), and a query for an app token (`home_account_id` `None`) matches only `null`.
///
/// ```
/// use tokencache::AccessTokenQuery;
/// let q = AccessTokenQuery::new("my-client", "organizations", &["User.Read"])
///     .account("uid.utid")
///     .environments(&["login.microsoftonline.com", "login.windows.net"]);
/// assert_eq!(q.home_account_id, Some("uid.utid"));
/// ```
#[derive(Clone, Debug)]
pub struct AccessTokenQuery<'a> {
    /// The account's home account id; `None` for app (client-credential) tokens.
    pub home_account_id: Option<&'a str>,
    /// The environment and its aliases, most preferred first.
    pub environments: &'a [&'a str],
    /// The client id.
    pub client_id: &'a str,
    /// The tenant of the authority (`common`, `organizations`, a GUID, a domain).
    pub realm: &'a str,
    /// The scopes wanted; a cached token matches when it holds all of them.
    pub scopes: &'a [&'a str],
    /// A proof-of-possession key id the token must carry.
    pub key_id: Option<&'a str>,
    /// The extended cache key the token must carry.
    pub ext_cache_key: Option<&'a str>,
}

const DEFAULT_ENVIRONMENTS: &[&str] = &["login.microsoftonline.com"];

impl<'a> AccessTokenQuery<'a> {
    /// An app-token query in the public cloud; refine with the builder methods.
    pub fn new(client_id: &'a str, realm: &'a str, scopes: &'a [&'a str]) -> Self {
        AccessTokenQuery {
            home_account_id: None,
            environments: DEFAULT_ENVIRONMENTS,
            client_id,
            realm,
            scopes,
            key_id: None,
            ext_cache_key: None,
        }
    }

    /// For a user's token.
    pub fn account(mut self, home_account_id: &'a str) -> Self {
        self.home_account_id = Some(home_account_id);
        self
    }

    /// The environment and its aliases.
    pub fn environments(mut self, environments: &'a [&'a str]) -> Self {
        self.environments = environments;
        self
    }

    /// Requires a key id.
    pub fn key_id(mut self, key_id: &'a str) -> Self {
        self.key_id = Some(key_id);
        self
    }

    /// Requires an extended cache key (empty means none).
    pub fn ext_cache_key(mut self, ext_cache_key: &'a str) -> Self {
        self.ext_cache_key = Some(ext_cache_key).filter(|e| !e.is_empty());
        self
    }
}

/// What a refresh-token lookup knows. Refresh tokens are per account and environment, across
/// tenants and scopes; `client_id` and `family_id` narrow them (MSAL's own-RT and FOCI
/// lookups).
#[derive(Clone, Debug)]
pub struct RefreshTokenQuery<'a> {
    /// The account's home account id.
    pub home_account_id: &'a str,
    /// The environment and its aliases.
    pub environments: &'a [&'a str],
    /// Only this client's tokens.
    pub client_id: Option<&'a str>,
    /// Only tokens of this FOCI family.
    pub family_id: Option<&'a str>,
}

impl<'a> RefreshTokenQuery<'a> {
    /// All refresh tokens of an account in the public cloud.
    pub fn new(home_account_id: &'a str) -> Self {
        RefreshTokenQuery {
            home_account_id,
            environments: DEFAULT_ENVIRONMENTS,
            client_id: None,
            family_id: None,
        }
    }

    /// The environment and its aliases.
    pub fn environments(mut self, environments: &'a [&'a str]) -> Self {
        self.environments = environments;
        self
    }

    /// Only this client's tokens.
    pub fn client_id(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Only this family's tokens.
    pub fn family_id(mut self, family_id: &'a str) -> Self {
        self.family_id = Some(family_id);
        self
    }
}

/// Which accounts to list. Empty `environments` means any environment.
#[derive(Clone, Debug, Default)]
pub struct AccountQuery<'a> {
    /// The environments to include; empty for all.
    pub environments: &'a [&'a str],
    /// Only this username (case-insensitive).
    pub username: Option<&'a str>,
    /// Only this home account.
    pub home_account_id: Option<&'a str>,
}

pub(crate) fn env_matches(entry_env: Option<&str>, environments: &[&str]) -> bool {
    let Some(env) = entry_env else { return false };
    environments.iter().any(|q| {
        q.eq_ignore_ascii_case(env)
            || ((!q.is_ascii() || !env.is_ascii()) && q.to_lowercase() == env.to_lowercase())
    })
}

/// True when `target` holds every scope in `wanted` (case-insensitively).
pub(crate) fn target_covers(target: &str, wanted: &[&str]) -> bool {
    wanted.iter().all(|w| {
        target
            .split_ascii_whitespace()
            .any(|t| t.eq_ignore_ascii_case(w))
    })
}
