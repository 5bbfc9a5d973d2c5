//! [`ClientSecretCredential`]: an application's own tokens (client credentials), kept in a
//! [`TokenStore`] so that every process sharing it reuses one token per tenant and scope.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use tokencache_client::{ClientCredential, ConfidentialClientApplication};

use crate::error::CredentialError;
use crate::memo::{Memo, Token};
use crate::scopes;
use crate::store::TokenStore;

/// Builds a [`ClientSecretCredential`]; errors are reported by [`build`](Self::build).
pub struct ConfidentialCredentialBuilder {
    tenant_id: String,
    client_id: String,
    credential: ClientCredential,
    authority_host: String,
    store: Option<TokenStore>,
    http: Option<Arc<dyn tokencache_client::http::HttpClient>>,
}

impl fmt::Debug for ConfidentialCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfidentialCredentialBuilder")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("authority_host", &self.authority_host)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ConfidentialCredentialBuilder {
    /// The authority host (default `https://login.microsoftonline.com`; national clouds and
    /// other providers have their own). The authority is `<host>/<tenant_id>`.
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.authority_host = url.into();
        self
    }

    /// Where the app tokens are kept (default: this process's memory).
    pub fn cache(mut self, store: TokenStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The HTTP client (default: reqwest with rustls and the system's roots).
    pub fn http_client(mut self, http: Arc<dyn tokencache_client::http::HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the credential; an invalid authority or tenant is reported here.
    pub fn build(self) -> Result<ClientSecretCredential, CredentialError> {
        if self.tenant_id.is_empty() || self.tenant_id.contains(['/', '?', '#']) {
            return Err(CredentialError::Configuration(format!(
                "{:?} is not a tenant id",
                self.tenant_id
            )));
        }
        let authority = format!(
            "{}/{}",
            self.authority_host.trim_end_matches('/'),
            self.tenant_id
        );
        let mut app = ConfidentialClientApplication::builder(&self.client_id)
            .authority(&authority)?
            .credential(self.credential);
        if let Some(store) = &self.store {
            app = app.cache_accessor(store.accessor().clone());
        }
        if let Some(http) = self.http {
            app = app.http_client(http);
        }
        Ok(ClientSecretCredential {
            app: app.build()?,
            memo: Memo::default(),
            store: self.store,
        })
    }
}

/// A confidential client's own tokens (the client credentials grant), proven with a client
/// secret, a certificate ([`ClientCredential::Certificate`]) or an assertion the caller makes
/// ([`ClientCredential::Assertion`], [`ClientCredential::AssertionProvider`]: a workload
/// identity's federated token, for one). Given a shared [`TokenStore`], processes reuse one
/// token per tenant and scope: a store's lease makes the processes that miss together ask the
/// identity provider once.
///
/// ```no_run
/// # async fn f() -> azure_core::Result<()> {
/// use azure_core::credentials::TokenCredential;
/// use tokencache_azure::{ClientCredential, ClientSecretCredential, TokenStore};
/// let secret = std::env::var("AZURE_CLIENT_SECRET").unwrap_or_default();
/// let credential = ClientSecretCredential::builder("my-tenant-id", "my-client-id", ClientCredential::secret(secret))
///     .cache(TokenStore::file("/var/lib/my-job/app-tokens.json")?) // or TokenStore::open("redis://…")
///     .build()?;
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct ClientSecretCredential {
    app: ConfidentialClientApplication,
    memo: Memo,
    store: Option<TokenStore>,
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredential")
            .field("client_id", &self.app.client_id())
            .field("authority", &self.app.authority().url())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ClientSecretCredential {
    /// A builder for the application `client_id` in `tenant_id`, proven by `credential`.
    pub fn builder(
        tenant_id: &str,
        client_id: &str,
        credential: ClientCredential,
    ) -> ConfidentialCredentialBuilder {
        ConfidentialCredentialBuilder {
            tenant_id: tenant_id.to_owned(),
            client_id: client_id.to_owned(),
            credential,
            authority_host: "https://login.microsoftonline.com".into(),
            store: None,
            http: None,
        }
    }

    /// A credential with a client secret and the tokens in memory, like `azure_identity`'s.
    pub fn new(tenant_id: &str, client_id: &str, secret: &str) -> Result<Self, CredentialError> {
        ClientSecretCredential::builder(tenant_id, client_id, ClientCredential::secret(secret))
            .build()
    }
}

impl ClientSecretCredential {
    /// A token and where it came from; [`TokenCredential::get_token`] is this without the
    /// source.
    pub async fn token(&self, scopes: &[&str]) -> Result<Token, CredentialError> {
        let wanted = scopes::checked(scopes)?;
        let key = scopes::key(&wanted);
        if let Some(hit) = self.memo.hit(&key) {
            return Ok(hit);
        }
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let r = self.app.acquire_token_for_client(&refs).await?;
        tracing::debug!(source = r.token_source.as_str(), "app token");
        self.memo.keep(key, &r)
    }
}

#[async_trait]
impl TokenCredential for ClientSecretCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(self.token(scopes).await?.access_token)
    }
}
