//! Silent acquisition, as MSAL Python 1.39 does it (spec §3.3): a cached access token with a
//! 5-minute expiry buffer; proactive refresh at `refresh_on` that serves the cached token if the
//! refresh fails; refresh tokens newest first, family (FOCI) tokens first, never deleted on
//! failure; and one refresh at a time for the same account and scopes.

use tokencache::{AccessTokenQuery, PartitionKey, RefreshToken, RefreshTokenQuery, TokenCache};

use crate::app::{Core, Recorded};
use crate::error::{ClientError, Result};
use crate::oauth::{RESERVED_SCOPES, decorate_scopes, undecorated};
use crate::result::{AccountInfo, AuthenticationResult, TokenSource};

/// An access token closer than this to its expiry is not served from the cache.
pub const EXPIRY_BUFFER_SECONDS: i64 = 300;

/// Options of a silent call.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SilentOptions {
    /// Skip the cached access token and refresh (the refresh token is still used).
    pub force_refresh: bool,
    /// A claims challenge from a resource (a JSON object as text): skips the cached access
    /// token and sends the claims with the refresh.
    pub claims_challenge: Option<String>,
}

impl SilentOptions {
    /// Forces a refresh.
    pub fn force_refresh(mut self) -> Self {
        self.force_refresh = true;
        self
    }

    /// Sends a claims challenge.
    pub fn claims_challenge(mut self, claims: impl Into<String>) -> Self {
        self.claims_challenge = Some(claims.into());
        self
    }
}

/// What the cache has for a request.
pub(crate) enum Cached {
    /// A token to serve.
    Fresh(AuthenticationResult),
    /// A token past its `refresh_on`: refresh, and serve it if the refresh fails.
    Aging(AuthenticationResult),
    /// Nothing usable.
    Missing,
}

impl Cached {
    /// A token to serve now, if any; an aging token is kept in `fallback` instead.
    fn serve(self, fallback: &mut Option<AuthenticationResult>) -> Option<AuthenticationResult> {
        match self {
            Cached::Fresh(r) => Some(r),
            Cached::Aging(r) => {
                *fallback = Some(r);
                None
            }
            Cached::Missing => None,
        }
    }
}

/// The refresh's result, or the aging cached token when the refresh failed at the provider or
/// on the network (MSAL serves the cached token then).
fn or_aging(
    outcome: Result<AuthenticationResult>,
    fallback: Option<AuthenticationResult>,
) -> Result<AuthenticationResult> {
    match (outcome, fallback) {
        (Ok(r), _) => Ok(r),
        (Err(e), Some(aging)) if matches!(e, ClientError::OAuth(_)) || e.is_network() => {
            tracing::warn!(error = %e, "proactive refresh failed; serving the cached token");
            Ok(aging)
        }
        (Err(e), _) => Err(e),
    }
}

/// Looks the access token up (the cache's indexed path).
pub(crate) fn cached_access_token(
    core: &Core,
    environments: &[String],
    cache: &TokenCache,
    account: Option<&AccountInfo>,
    realm: &str,
    scopes: &[&str],
) -> Cached {
    let now = core.now();
    let first = environments.first().map_or("", String::as_str);
    let many: Vec<&str>;
    let envs: &[&str] = if environments.len() == 1 {
        std::slice::from_ref(&first)
    } else {
        many = environments.iter().map(String::as_str).collect();
        &many
    };
    let mut query = AccessTokenQuery::new(&core.client_id, realm, scopes).environments(envs);
    if let Some(a) = account {
        query = query.account(&a.home_account_id);
    }
    for at in cache.access_tokens(&query) {
        let (Some(expires_on), Some(secret)) = (at.expires_on(), at.secret()) else {
            continue;
        };
        if expires_on - now < EXPIRY_BUFFER_SECONDS {
            continue;
        }
        let result = AuthenticationResult {
            access_token: secret,
            token_type: at.token_type().unwrap_or("Bearer").to_owned(),
            expires_on,
            refresh_on: at.refresh_on(),
            scopes: at.scopes().map(str::to_owned).collect(),
            account: account.cloned(),
            id_token: None,
            id_token_claims: None,
            token_source: TokenSource::Cache,
        };
        return match at.refresh_on() {
            Some(r) if r < now => Cached::Aging(result),
            _ => Cached::Fresh(result),
        };
    }
    Cached::Missing
}

fn flight_key(kind: &str, who: &str, realm: &str, scopes: &[String]) -> String {
    let mut s: Vec<String> = scopes.iter().map(|s| s.to_lowercase()).collect();
    s.sort();
    format!("{kind}\u{1f}{who}\u{1f}{realm}\u{1f}{}", s.join(" "))
}

/// A user's token, silently.
pub(crate) async fn acquire_silent(
    core: &Core,
    scopes: &[&str],
    account: &AccountInfo,
    options: &SilentOptions,
) -> Result<AuthenticationResult> {
    let realm = core.cache_realm().await?;
    let environments = core.environments().await?;
    let partition = PartitionKey::for_account(&account.home_account_id);
    // The hit path allocates nothing it does not return.
    let wanted_refs: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| !RESERVED_SCOPES.contains(s))
        .collect();
    let forced = options.force_refresh || options.claims_challenge.is_some();
    let mut fallback = None;
    if !forced {
        let cache = core.load(Some(&partition)).await?;
        if let Some(r) = cached_access_token(
            core,
            environments,
            &cache,
            Some(account),
            realm,
            &wanted_refs,
        )
        .serve(&mut fallback)
        {
            return Ok(r);
        }
    }
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let wanted = undecorated(&scopes);
    let _flight = core
        .single_flight(flight_key("user", &account.home_account_id, realm, &wanted))
        .await;
    let access = core.access(Some(&partition));
    // Released below, or when this future is dropped (a cancelled call).
    let lease = core.accessor.refresh_lease(access).await?;
    let outcome = async {
        let cache = core.load(Some(&partition)).await?;
        if !forced {
            // Another call (or process) may have refreshed while this one waited.
            if let Some(r) = cached_access_token(
                core,
                environments,
                &cache,
                Some(account),
                realm,
                &wanted_refs,
            )
            .serve(&mut fallback)
            {
                return Ok(r);
            }
        }
        refresh_from_cache(core, &cache, account, &scopes, options, partition.clone()).await
    }
    .await;
    if let Some(lease) = lease
        && let Err(e) = lease.release().await
    {
        tracing::warn!(error = %e, "could not release the refresh lease; it expires on its own");
    }
    or_aging(outcome, fallback)
}

/// Steps 3–5 of MSAL's algorithm: family refresh tokens, then the app's own.
async fn refresh_from_cache(
    core: &Core,
    cache: &TokenCache,
    account: &AccountInfo,
    scopes: &[String],
    options: &SilentOptions,
    partition: PartitionKey,
) -> Result<AuthenticationResult> {
    let envs: Vec<&str> = core
        .environments()
        .await?
        .iter()
        .map(String::as_str)
        .collect();
    let rts = |q: RefreshTokenQuery<'_>| cache.refresh_tokens(&q.environments(&envs));
    let base = || RefreshTokenQuery::new(&account.home_account_id);
    let family = envs
        .iter()
        .find_map(|e| cache.app_metadata(e, &core.client_id))
        .map(|m| m.family_id().unwrap_or_default().to_owned());
    let mut last_error = None;
    match family.as_deref() {
        None => {
            // An app this cache has not seen: try the family's tokens, keep no error.
            let candidates = rts(base().family_id("1"));
            if !candidates.is_empty() {
                match try_refresh_tokens(core, candidates, scopes, options, &partition).await {
                    Ok(r) => return Ok(r),
                    Err(e) => tracing::info!(error = %e, "family refresh token not usable"),
                }
            }
        }
        Some(f) if !f.is_empty() => {
            let candidates = rts(base().family_id(f));
            if !candidates.is_empty() {
                match try_refresh_tokens(core, candidates, scopes, options, &partition).await {
                    Ok(r) => return Ok(r),
                    Err(e) => last_error = Some(e),
                }
            }
        }
        Some(_) => {}
    }
    let own = rts(base().client_id(&core.client_id));
    if own.is_empty() {
        return Err(last_error.unwrap_or(ClientError::NoTokenInCache));
    }
    try_refresh_tokens(core, own, scopes, options, &partition).await
}

/// Tries refresh tokens newest first; none is ever removed (an `invalid_grant` may be
/// specific to MFA or scopes). Returns the first success or the last error.
async fn try_refresh_tokens(
    core: &Core,
    mut candidates: Vec<RefreshToken>,
    scopes: &[String],
    options: &SilentOptions,
    partition: &PartitionKey,
) -> Result<AuthenticationResult> {
    candidates.sort_by_key(|rt| std::cmp::Reverse(rt.last_modification_time().unwrap_or(0)));
    let meta = core.metadata().await?;
    let mut last_error = ClientError::NoTokenInCache;
    for rt in candidates {
        let Some(secret) = rt.secret() else { continue };
        let mut post = core
            .token_post(&meta, "refresh_token")?
            .field("refresh_token", secret.expose())
            .field("scope", decorate_scopes(scopes).join(" "));
        if let Some(claims) = &options.claims_challenge {
            post = post.field("claims", claims.as_str());
        }
        if let Some((uid, utid)) = rt.home_account_id().and_then(|h| h.split_once('.')) {
            post = post.header("x-anchormailbox", format!("Oid:{uid}@{utid}"));
        }
        let data = post.event_data();
        match post.send(&core.http).await {
            Ok(response) => {
                tracing::debug!("refreshed a token");
                return core
                    .record(
                        &meta,
                        response,
                        Recorded {
                            grant_type: "refresh_token",
                            requested: decorate_scopes(scopes),
                            data,
                            refreshed: Some(rt),
                            partition: Some(partition.clone()),
                        },
                    )
                    .await;
            }
            Err(e) => {
                tracing::info!(error = %e, "a refresh token was refused; trying the next one");
                let mismatch = e
                    .oauth()
                    .is_some_and(|o| o.suberror.as_deref() == Some("client_mismatch"));
                last_error = e;
                if mismatch {
                    break;
                }
            }
        }
    }
    Err(last_error)
}

/// An app token (client credentials), from the cache or the provider.
pub(crate) async fn acquire_for_client(
    core: &Core,
    scopes: &[String],
    force_refresh: bool,
) -> Result<AuthenticationResult> {
    let realm = core.cache_realm().await?;
    let environments = core.environments().await?;
    let partition = PartitionKey::for_app(&core.client_id, realm);
    let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let mut fallback = None;
    let check =
        |cache: &TokenCache| cached_access_token(core, environments, cache, None, realm, &refs);
    if !force_refresh
        && let Some(r) = check(&*core.load(Some(&partition)).await?).serve(&mut fallback)
    {
        return Ok(r);
    }
    let _flight = core
        .single_flight(flight_key("app", "", realm, scopes))
        .await;
    // Processes sharing a store ask the provider one at a time per tenant: the lease is taken
    // before the second look at the cache, so a process that waited finds the token another
    // one just saved. Released below, or when this future is dropped (a cancelled call).
    let lease = core
        .accessor
        .refresh_lease(core.access(Some(&partition)))
        .await?;
    let outcome = async {
        if !force_refresh
            && let Some(r) = check(&*core.load(Some(&partition)).await?).serve(&mut fallback)
        {
            return Ok(r);
        }
        let meta = core.metadata().await?;
        let post = core
            .token_post(&meta, "client_credentials")?
            .field("scope", scopes.join(" "));
        let data = post.event_data();
        let response = post.send(&core.http).await?;
        core.record(
            &meta,
            response,
            Recorded {
                grant_type: "client_credentials",
                requested: scopes.to_vec(),
                data,
                refreshed: None,
                partition: Some(partition.clone()),
            },
        )
        .await
    }
    .await;
    if let Some(lease) = lease
        && let Err(e) = lease.release().await
    {
        tracing::warn!(error = %e, "could not release the refresh lease; it expires on its own");
    }
    or_aging(outcome, fallback)
}
