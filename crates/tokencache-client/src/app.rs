//! What public and confidential applications share: configuration, the builder, token
//! requests, and recording responses in the cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokencache::json::JsonObject;
use tokencache::{
    AccountQuery, Clock, PartitionKey, Secret, SystemClock, TokenCache, TokenEvent,
    decode_json_part, decode_jwt_claims,
};

use crate::authority::{Authority, AuthorityKind, ProviderMetadata, discover};
use crate::error::{ClientError, Result};
use crate::http::{Http, HttpClient, RetryPolicy};
use crate::oauth::{FormPost, int_member, lifetime_member};
use crate::result::{AccountInfo, AuthenticationResult, TokenSource};
use crate::store::InMemoryAccessor;
use tokencache::access::{CacheAccess, CacheAccessor, CacheChange};

/// How a confidential client proves its identity to the token endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientCredential {
    /// A client secret, sent as `client_secret` in the form body.
    Secret(Secret),
    /// A client assertion JWT the caller made (a signed certificate assertion, or a federated
    /// credential such as a workload identity token), sent as `client_assertion`.
    Assertion(Secret),
    /// A function returning a fresh assertion for each request (assertions expire).
    AssertionProvider(Arc<dyn Fn() -> Result<Secret> + Send + Sync>),
    /// A certificate: each request carries a fresh RS256 assertion signed with its key.
    #[cfg(feature = "certificate")]
    Certificate(crate::certificate::ClientCertificate),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientCredential::Secret(_) => "Secret(<redacted>)",
            ClientCredential::Assertion(_) => "Assertion(<redacted>)",
            ClientCredential::AssertionProvider(_) => "AssertionProvider(..)",
            #[cfg(feature = "certificate")]
            ClientCredential::Certificate(_) => "Certificate(..)",
        })
    }
}

impl ClientCredential {
    /// A client secret.
    pub fn secret(secret: impl Into<Box<str>>) -> ClientCredential {
        ClientCredential::Secret(Secret::new(secret))
    }

    fn form_fields(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
    ) -> Result<Vec<(String, String)>> {
        let _ = (client_id, audience, now);
        const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
        let assertion = |a: &Secret| {
            vec![
                ("client_assertion_type".to_owned(), JWT_BEARER.to_owned()),
                ("client_assertion".to_owned(), a.expose().to_owned()),
            ]
        };
        Ok(match self {
            ClientCredential::Secret(s) => {
                vec![("client_secret".to_owned(), s.expose().to_owned())]
            }
            ClientCredential::Assertion(a) => assertion(a),
            ClientCredential::AssertionProvider(f) => assertion(&f()?),
            #[cfg(feature = "certificate")]
            ClientCredential::Certificate(c) => assertion(&c.assertion(client_id, audience, now)?),
        })
    }
}

/// Configures a [`crate::PublicClientApplication`] or [`crate::ConfidentialClientApplication`].
///
/// ```
/// use tokencache_client::PublicClientApplication;
/// let app = PublicClientApplication::builder("00000000-0000-0000-0000-000000000001")
///     .authority("https://login.microsoftonline.com/organizations")
///     .unwrap()
///     .build()
///     .unwrap();
/// assert_eq!(app.authority().tenant(), "organizations");
/// ```
pub struct AppBuilder<A> {
    pub(crate) client_id: String,
    pub(crate) authority: Option<Authority>,
    pub(crate) credential: Option<ClientCredential>,
    pub(crate) accessor: Option<Arc<dyn CacheAccessor>>,
    pub(crate) http: Option<Arc<dyn HttpClient>>,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) instance_discovery: bool,
    pub(crate) instance_discovery_endpoint: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) _kind: std::marker::PhantomData<A>,
}

impl<A> fmt::Debug for AppBuilder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppBuilder")
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl<A> AppBuilder<A> {
    pub(crate) fn new(client_id: &str) -> AppBuilder<A> {
        AppBuilder {
            client_id: client_id.to_owned(),
            authority: None,
            credential: None,
            accessor: None,
            http: None,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            instance_discovery: true,
            instance_discovery_endpoint: crate::authority::DEFAULT_INSTANCE_DISCOVERY.to_owned(),
            clock: Arc::new(SystemClock),
            _kind: std::marker::PhantomData,
        }
    }

    /// The authority URL (Entra, sovereign cloud, B2C, CIAM, ADFS, or an Entra-shaped
    /// `https://host/<tenant>`). Default: `https://login.microsoftonline.com/common`.
    pub fn authority(mut self, url: &str) -> Result<Self> {
        self.authority = Some(Authority::parse(url)?);
        Ok(self)
    }

    /// Any OpenID provider, by issuer URL.
    pub fn oidc_authority(mut self, issuer: &str) -> Result<Self> {
        self.authority = Some(Authority::oidc(issuer)?);
        Ok(self)
    }

    /// Where the token cache lives: a [`CacheAccessor`] such as the file crate's
    /// `FileAccessor` or the store crate's `PartitionedCache`. Default: a new in-memory cache
    /// for this application.
    pub fn cache_accessor(mut self, accessor: Arc<dyn CacheAccessor>) -> Self {
        self.accessor = Some(accessor);
        self
    }

    /// Uses this in-memory cache (for example one shared with another application).
    pub fn cache(mut self, cache: Arc<TokenCache>) -> Self {
        self.accessor = Some(Arc::new(InMemoryAccessor::with_cache(cache)));
        self
    }

    /// Brings your own HTTP client; default: reqwest with rustls.
    pub fn http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http = Some(client);
        self
    }

    /// The timeout of each request to the provider (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries on 429 and 5xx (default: 2 retries, `Retry-After` honoured up to 10 s).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Entra instance discovery: host aliases (login.windows.net for
    /// login.microsoftonline.com, ...) in cache lookups, and validation of Entra-shaped
    /// authorities on other hosts. On by default. The known clouds' aliases come from a
    /// built-in table; another host is looked up once, on first use, at the instance discovery
    /// endpoint (an unreachable endpoint only costs the aliases, never the request). Turn it off
    /// for providers that are not Entra.
    pub fn instance_discovery(mut self, enabled: bool) -> Self {
        self.instance_discovery = enabled;
        self
    }

    /// Where instance discovery asks (default Entra's
    /// `https://login.microsoftonline.com/common/discovery/instance`). Setting it also enables
    /// the lookup for loopback authorities, which the default skips.
    pub fn instance_discovery_endpoint(mut self, url: &str) -> Self {
        self.instance_discovery_endpoint = url.to_owned();
        self
    }

    /// The clock used for expiry decisions (tests inject a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn build_core(self) -> Result<Core> {
        if self.client_id.trim().is_empty() {
            return Err(ClientError::Configuration("the client id is empty".into()));
        }
        let authority = match self.authority {
            Some(a) => a,
            None => Authority::parse("https://login.microsoftonline.com/common")?,
        };
        let client: Arc<dyn HttpClient> = match self.http {
            Some(c) => c,
            None => default_http_client(self.timeout)?,
        };
        let host = authority.environment().to_owned();
        let default_endpoint =
            self.instance_discovery_endpoint == crate::authority::DEFAULT_INSTANCE_DISCOVERY;
        let needs_instance_discovery = self.instance_discovery
            && authority.kind() == AuthorityKind::Entra
            && !crate::authority::is_known_entra_host(&host)
            && !(default_endpoint && crate::authority::is_loopback(&host));
        Ok(Core {
            envs: authority.environments(self.instance_discovery),
            needs_instance_discovery,
            instance_discovery_endpoint: self.instance_discovery_endpoint,
            discovered_envs: tokio::sync::OnceCell::new(),
            oidc_realm: std::sync::OnceLock::new(),
            client_id: self.client_id,
            authority,
            credential: self.credential,
            accessor: self
                .accessor
                .unwrap_or_else(|| Arc::new(InMemoryAccessor::default())),
            http: Http {
                client,
                retry: self.retry,
                timeout: self.timeout,
            },
            clock: self.clock,
            inflight: Mutex::new(HashMap::new()),
        })
    }
}

#[cfg(feature = "reqwest")]
fn default_http_client(timeout: Duration) -> Result<Arc<dyn HttpClient>> {
    Ok(Arc::new(crate::http::LazyReqwest::new(timeout)))
}

#[cfg(not(feature = "reqwest"))]
fn default_http_client(_: Duration) -> Result<Arc<dyn HttpClient>> {
    Err(ClientError::Configuration(
        "no HTTP client: enable the `reqwest` feature or call http_client()".into(),
    ))
}

/// The state shared by both application kinds.
pub(crate) struct Core {
    pub client_id: String,
    pub authority: Authority,
    pub credential: Option<ClientCredential>,
    pub accessor: Arc<dyn CacheAccessor>,
    pub http: Http,
    pub clock: Arc<dyn Clock>,
    pub inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The environment and its aliases from the built-in table, most preferred first.
    pub envs: Vec<String>,
    /// Whether the aliases come from the instance discovery endpoint instead.
    pub needs_instance_discovery: bool,
    pub instance_discovery_endpoint: String,
    pub discovered_envs: tokio::sync::OnceCell<Vec<String>>,
    /// The cache realm of a generic OpenID provider, once discovered.
    pub oidc_realm: std::sync::OnceLock<String>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientApplication")
            .field("client_id", &self.client_id)
            .field("authority", &self.authority.url())
            .field("credential", &self.credential)
            .field("accessor", &self.accessor)
            .finish_non_exhaustive()
    }
}

/// What a response-recording call needs to know.
pub(crate) struct Recorded {
    pub grant_type: &'static str,
    /// The scopes asked for (used when the response has no `scope`).
    pub requested: Vec<String>,
    /// The request, for the event's `data`.
    pub data: JsonObject,
    /// For refresh grants: do not touch the account, and write the new refresh token over this
    /// one (MSAL's `update_rt`).
    pub refreshed: Option<tokencache::RefreshToken>,
    /// The partition the response belongs to, when known before the response.
    pub partition: Option<PartitionKey>,
}

impl Core {
    /// The environment and its aliases, most preferred first (instance discovery on first use
    /// for hosts outside Entra's known clouds).
    pub async fn environments(&self) -> Result<&[String]> {
        if !self.needs_instance_discovery {
            return Ok(&self.envs);
        }
        let discovered = self
            .discovered_envs
            .get_or_try_init(|| {
                crate::authority::instance_aliases(
                    &self.http,
                    &self.instance_discovery_endpoint,
                    &self.authority,
                )
            })
            .await;
        match discovered {
            Ok(envs) => Ok(envs),
            Err(e @ ClientError::InvalidAuthority { .. }) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "instance discovery failed; using no aliases this time");
                Ok(&self.envs)
            }
        }
    }

    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>> {
        // An authority that instance discovery rejects is not used.
        self.environments().await?;
        discover(&self.http, &self.authority).await
    }

    /// The realm tokens are cached under: the authority's tenant, or for a generic OpenID
    /// provider the first path segment of its token endpoint (what MSAL records).
    pub async fn cache_realm(&self) -> Result<&str> {
        if self.authority.kind() != AuthorityKind::Oidc {
            return Ok(self.authority.tenant());
        }
        if let Some(realm) = self.oidc_realm.get() {
            return Ok(realm);
        }
        let meta = self.metadata().await?;
        let realm = tokencache::canonicalize(&meta.token_endpoint)
            .map(|a| a.realm)
            .unwrap_or_default();
        Ok(self.oidc_realm.get_or_init(|| realm))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn access<'a>(&'a self, partition: Option<&'a PartitionKey>) -> CacheAccess<'a> {
        CacheAccess {
            client_id: &self.client_id,
            partition_key: partition,
        }
    }

    pub async fn load(&self, partition: Option<&PartitionKey>) -> Result<Arc<TokenCache>> {
        Ok(self.accessor.load(self.access(partition)).await?)
    }

    /// A token-endpoint POST with the client's authentication and `client_info=1`.
    pub fn token_post(&self, meta: &ProviderMetadata, grant_type: &str) -> Result<FormPost> {
        let mut post = FormPost::new(&meta.token_endpoint)
            .field("client_id", &self.client_id)
            .field("grant_type", grant_type);
        if self.authority.kind() != AuthorityKind::Adfs && grant_type != "client_credentials" {
            post = post.field("client_info", "1");
        }
        if let Some(c) = &self.credential {
            post =
                post.fields(&c.form_fields(&self.client_id, &meta.token_endpoint, self.now())?);
        }
        Ok(post)
    }

    /// Records a token response in the cache through the store and builds the result.
    pub async fn record(
        &self,
        meta: &ProviderMetadata,
        mut response: JsonObject,
        recorded: Recorded,
    ) -> Result<AuthenticationResult> {
        let now = self.now();
        if response.get_str("access_token").is_none_or(str::is_empty) {
            return Err(ClientError::InvalidResponse {
                url: meta.token_endpoint.clone(),
                reason: "a successful token response without access_token".into(),
            });
        }
        let new_rt = if recorded.refreshed.is_some() {
            response
                .remove("refresh_token")
                .and_then(|v| v.as_str().map(str::to_owned))
        } else {
            None
        };
        let scopes: Vec<String> = match response.get_str("scope") {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            None => recorded.requested.clone(),
        };
        let mut event = TokenEvent::new(&self.client_id, scopes.iter().cloned())
            .token_endpoint(&meta.token_endpoint)
            .environment(self.authority.environment())
            .grant_type(recorded.grant_type)
            .response(response.clone())
            .data(recorded.data);
        event.skip_account_creation = recorded.refreshed.is_some();
        let account = account_of(&response, &self.authority, &meta.token_endpoint)?;
        let partition = recorded.partition.or_else(|| {
            account
                .as_ref()
                .map(|a| PartitionKey::for_account(&a.home_account_id))
        });
        let refreshed = recorded.refreshed;
        // Without a rotated refresh token the change only adds the response, which a store
        // can hand to another process as data (the file store's group commit).
        let adds_only = refreshed.is_none() || new_rt.is_none();
        let event = Arc::new(event);
        let shared = event.clone();
        let change: CacheChange = Arc::new(move |cache: &TokenCache| {
            cache.add_at(&shared, now)?;
            if let (Some(old), Some(new)) = (&refreshed, &new_rt) {
                cache.update_refresh_token(old, new, now);
            }
            Ok(())
        });
        let access = self.access(partition.as_ref());
        if adds_only {
            self.accessor
                .save_token_response(access, event, now, change)
                .await?;
        } else {
            self.accessor.save(access, change).await?;
        }
        let expires_in = lifetime_member(&response, "expires_in")
            .or_else(|| int_member(&response, "expires_on").map(|on| on.saturating_sub(now)))
            .unwrap_or(600);
        let id_token = response.get_str("id_token").filter(|t| !t.is_empty());
        Ok(AuthenticationResult {
            access_token: Secret::new(response.get_str("access_token").unwrap_or_default()),
            token_type: response
                .get_str("token_type")
                .unwrap_or("Bearer")
                .to_owned(),
            expires_on: tokencache::expiry_after(now, expires_in),
            refresh_on: lifetime_member(&response, "refresh_in")
                .map(|r| tokencache::expiry_after(now, r)),
            scopes,
            account,
            id_token: id_token.map(Secret::new),
            id_token_claims: id_token.and_then(|t| decode_jwt_claims(t).ok()),
            token_source: TokenSource::IdentityProvider,
        })
    }

    /// Accounts in the cache for this authority's environment (and aliases), one per home
    /// account, as MSAL's `get_accounts`.
    pub async fn accounts(&self, username: Option<&str>) -> Result<Vec<AccountInfo>> {
        let cache = self.load(None).await?;
        for env in self.environments().await? {
            let found = cache.accounts(&AccountQuery {
                environments: &[env.as_str()],
                username,
                home_account_id: None,
            });
            let mut out: Vec<AccountInfo> = Vec::new();
            for a in found
                .iter()
                .filter(|a| matches!(a.authority_type(), Some("MSSTS" | "ADFS")))
            {
                let Some(info) = AccountInfo::from_entry(a) else {
                    continue;
                };
                match out
                    .iter_mut()
                    .find(|o| o.home_account_id == info.home_account_id)
                {
                    Some(existing) => *existing = info,
                    None => out.push(info),
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        Ok(Vec::new())
    }

    /// Signs an account out of this application (MSAL's "forget me").
    pub async fn remove_account(&self, account: &AccountInfo) -> Result<()> {
        let envs = self.environments().await?.to_vec();
        let home = account.home_account_id.clone();
        let client = self.client_id.clone();
        let change: CacheChange = Arc::new(move |cache: &TokenCache| {
            let env_refs: Vec<&str> = envs.iter().map(String::as_str).collect();
            let removed = cache.forget_account(&home, &env_refs, &client);
            tracing::info!(removed = removed.total(), "signed an account out");
            Ok(())
        });
        let partition = Some(PartitionKey::for_account(&account.home_account_id));
        self.accessor
            .save(self.access(partition.as_ref()), change)
            .await?;
        Ok(())
    }

    /// A per-key lock so that concurrent calls for the same tokens make one request.
    pub async fn single_flight(&self, key: String) -> SingleFlightGuard<'_> {
        let lock = {
            let mut map = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        SingleFlightGuard {
            core: self,
            key,
            lock,
            _guard: guard,
        }
    }
}

/// Held while one call refreshes; dropping it lets the waiting calls re-check the cache.
pub(crate) struct SingleFlightGuard<'a> {
    core: &'a Core,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for SingleFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self
            .core
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Three owners: the map, this guard's `lock`, and the owned guard itself.
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.key);
        }
    }
}

/// The account a response is for, as the cache records it (none for app tokens).
pub(crate) fn account_of(
    response: &JsonObject,
    authority: &Authority,
    token_endpoint: &str,
) -> Result<Option<AccountInfo>> {
    let claims = match response.get_str("id_token").filter(|t| !t.is_empty()) {
        Some(t) => decode_jwt_claims(t)?,
        None => JsonObject::new(),
    };
    let from_client_info = response
        .get_str("client_info")
        .and_then(|ci| decode_json_part(ci).ok())
        .and_then(|ci| {
            Some(format!(
                "{}.{}",
                ci.get_str("uid")?.to_owned(),
                ci.get_str("utid")?
            ))
        });
    let home = match from_client_info.or_else(|| claims.get_str("sub").map(str::to_owned)) {
        Some(h) => h,
        None => return Ok(None),
    };
    let claim = |k: &str| claims.get_str(k).map(str::to_owned);
    let realm = tokencache::canonicalize(token_endpoint)
        .map(|a| a.realm)
        .ok();
    Ok(Some(AccountInfo {
        home_account_id: home,
        environment: authority.environment().to_owned(),
        username: claim("preferred_username")
            .or_else(|| claim("upn"))
            .unwrap_or_default(),
        local_account_id: claim("oid").or_else(|| claim("sub")),
        authority_type: Some(
            if realm.as_deref() == Some("adfs") {
                "ADFS"
            } else {
                "MSSTS"
            }
            .to_owned(),
        ),
        realm,
    }))
}
