//! [`Persistent`]: another credential's access tokens, kept in a [`TokenStore`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use tokencache::access::{CacheAccess, CacheChange};
use tokencache::json::{JsonObject, JsonValue};
use tokencache::{AccessTokenQuery, PartitionKey, TokenEvent};
use tokencache_client::{EXPIRY_BUFFER_SECONDS, TokenSource};

use crate::error::CredentialError;
use crate::memo::{Memo, Token, access_token, now};
use crate::scopes;
use crate::store::TokenStore;

/// The environment the wrapped credential's tokens are filed under in MSAL's format (a
/// reserved name: no identity provider lives there).
const ENVIRONMENT: &str = "persistent.tokencache.invalid";
/// The realm they are filed under.
const REALM: &str = "persistent";

/// Caches another [`TokenCredential`]'s access tokens in a [`TokenStore`] shared by processes,
/// so that short-lived processes (CLIs, jobs, tests) stop asking the wrapped credential again
/// while a token it gave is valid. A token within five minutes of its expiry is not served.
/// Processes that miss together on a partitioned store ask the wrapped credential once (the
/// store's lease); on a file, each process that misses asks.
///
/// The tokens are filed in MSAL's format as app tokens of the client id `name` (choose a name
/// per identity: two different identities must not share one).
///
/// ```no_run
/// # async fn f(inner: std::sync::Arc<dyn azure_core::credentials::TokenCredential>) -> azure_core::Result<()> {
/// use azure_core::credentials::TokenCredential;
/// use tokencache_azure::{Persistent, TokenStore};
/// let credential = Persistent::new(inner, TokenStore::file("/tmp/my-tool-tokens.json")?, "my-tool");
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct Persistent {
    inner: Arc<dyn TokenCredential>,
    store: TokenStore,
    name: String,
    partition: PartitionKey,
    memo: Memo,
    asking: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Persistent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persistent")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Persistent {
    /// Wraps `inner`, keeping its tokens in `store` under `name`.
    pub fn new(inner: Arc<dyn TokenCredential>, store: TokenStore, name: &str) -> Persistent {
        Persistent {
            inner,
            store,
            name: name.to_owned(),
            partition: PartitionKey::for_app(name, REALM),
            memo: Memo::default(),
            asking: tokio::sync::Mutex::new(()),
        }
    }

    fn access(&self) -> CacheAccess<'_> {
        CacheAccess {
            client_id: &self.name,
            partition_key: Some(&self.partition),
        }
    }

    /// The stored token for `scopes`, if it is valid for more than the expiry buffer.
    async fn stored(&self, scopes: &[String]) -> Result<Option<(Secret, i64)>, CredentialError> {
        let cache = self
            .store
            .accessor()
            .load(self.access())
            .await
            .map_err(|e| CredentialError::Client(e.into()))?;
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let environments = [ENVIRONMENT];
        let query = AccessTokenQuery::new(&self.name, REALM, &refs).environments(&environments);
        let found = cache.find_access_token(&query).and_then(|at| {
            let expires_on = at.expires_on()?;
            let secret = at.secret()?;
            (expires_on - EXPIRY_BUFFER_SECONDS > now())
                .then(|| (Secret::new(secret.expose().to_owned()), expires_on))
        });
        Ok(found)
    }

    /// Files `token` for `scopes` in the store.
    async fn save(&self, scopes: &[String], token: &AccessToken) -> Result<(), CredentialError> {
        let now = now();
        let expires_in = token.expires_on.unix_timestamp() - now;
        let mut response = JsonObject::new();
        response.insert("token_type", JsonValue::string("Bearer"));
        response.insert("access_token", JsonValue::string(token.token.secret()));
        response.insert(
            "expires_in",
            JsonValue::Number(expires_in.to_string().into()),
        );
        let event = TokenEvent::new(self.name.clone(), scopes.to_vec())
            .token_endpoint(format!("https://{ENVIRONMENT}/{REALM}/oauth2/v2.0/token"))
            .grant_type("client_credentials")
            .response(response);
        let event = Arc::new(event);
        let change: CacheChange = {
            let event = event.clone();
            Arc::new(move |cache| cache.add_at(&event, now))
        };
        self.store
            .accessor()
            .save_token_response(self.access(), event, now, change)
            .await
            .map_err(|e| CredentialError::Client(e.into()))
    }

    /// A token and where it came from (`identity_provider` when `inner` was asked).
    pub async fn token(&self, scopes: &[&str]) -> Result<Token, CredentialError> {
        let wanted = scopes::checked(scopes)?;
        let key = scopes::key(&wanted);
        if let Some(hit) = self.memo.hit(&key) {
            return Ok(hit);
        }
        let cached = |(secret, expires_on): (Secret, i64)| -> Result<Token, CredentialError> {
            self.memo.put(key.clone(), secret.clone(), expires_on);
            Ok(Token {
                access_token: access_token(secret, expires_on)?,
                source: TokenSource::Cache,
            })
        };
        if let Some(found) = self.stored(&wanted).await? {
            return cached(found);
        }
        let _one = self.asking.lock().await;
        let lease = self
            .store
            .accessor()
            .refresh_lease(self.access())
            .await
            .map_err(|e| CredentialError::Client(e.into()))?;
        let outcome = async {
            if let Some(found) = self.stored(&wanted).await? {
                return cached(found);
            }
            let token = self
                .inner
                .get_token(scopes, None)
                .await
                .map_err(CredentialError::Inner)?;
            if let Err(e) = self.save(&wanted, &token).await {
                tracing::warn!(error = %e, "could not keep the token in the store; serving it anyway");
            }
            self.memo.put(
                key.clone(),
                token.token.clone(),
                token.expires_on.unix_timestamp(),
            );
            Ok(Token {
                access_token: token,
                source: TokenSource::IdentityProvider,
            })
        }
        .await;
        if let Some(lease) = lease
            && let Err(e) = lease.release().await
        {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
        outcome
    }
}

#[async_trait]
impl TokenCredential for Persistent {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(self.token(scopes).await?.access_token)
    }
}
