//! The two application kinds: [`PublicClientApplication`] (desktop, mobile, CLI: no secret)
//! and [`ConfidentialClientApplication`] (web apps, APIs, daemons: a credential).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokencache::{PartitionKey, decode_jwt_claims};

use crate::app::{AppBuilder, ClientCredential, Core, Recorded};
use crate::auth_code::{self, AuthCodeFlow, AuthCodeOptions, LoopbackListener};
use crate::authority::Authority;
use crate::device_code::{self, DeviceCodeFlow};
use crate::error::{ClientError, Result};
use crate::oauth::{decorate_scopes, undecorated};
use crate::result::{AccountInfo, AuthenticationResult};
use crate::silent::{self, Cached, SilentOptions, cached_access_token};

/// Marker for a public client's builder.
#[derive(Debug)]
pub enum Public {}

/// Marker for a confidential client's builder.
#[derive(Debug)]
pub enum Confidential {}

fn owned(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

/// Methods both application kinds have.
macro_rules! shared_methods {
    () => {
        /// The client id.
        pub fn client_id(&self) -> &str {
            &self.core.client_id
        }

        /// The authority.
        pub fn authority(&self) -> &Authority {
            &self.core.authority
        }

        /// The accounts signed in at this authority (and its aliases), one per home account.
        pub async fn accounts(&self) -> Result<Vec<AccountInfo>> {
            self.core.accounts(None).await
        }

        /// The accounts with this username (case-insensitive).
        pub async fn accounts_by_username(&self, username: &str) -> Result<Vec<AccountInfo>> {
            self.core.accounts(Some(username)).await
        }

        /// Signs the account out of this application: its refresh tokens (the app's and its
        /// family's), access tokens, ID tokens and account records are removed, as MSAL's
        /// `remove_account` does.
        pub async fn remove_account(&self, account: &AccountInfo) -> Result<()> {
            self.core.remove_account(account).await
        }

        /// A token for `account` without user interaction: from the cache, or by refreshing.
        /// [`ClientError::NoTokenInCache`] (or an `interaction_required` error) means an
        /// interactive flow is needed.
        pub async fn acquire_token_silent(
            &self,
            scopes: &[&str],
            account: &AccountInfo,
        ) -> Result<AuthenticationResult> {
            silent::acquire_silent(&self.core, scopes, account, &SilentOptions::default()).await
        }

        /// [`Self::acquire_token_silent`] with options (force refresh, claims challenge).
        pub async fn acquire_token_silent_with(
            &self,
            scopes: &[&str],
            account: &AccountInfo,
            options: &SilentOptions,
        ) -> Result<AuthenticationResult> {
            silent::acquire_silent(&self.core, scopes, account, options).await
        }

        /// Starts an authorization code flow with PKCE: send the user to the flow's
        /// `auth_uri`, keep the flow, and finish with the redirect's parameters.
        pub async fn start_auth_code_flow(
            &self,
            scopes: &[&str],
            redirect_uri: &str,
            options: &AuthCodeOptions,
        ) -> Result<AuthCodeFlow> {
            auth_code::start(&self.core, &owned(scopes), redirect_uri, options).await
        }

        /// Finishes an authorization code flow with the query parameters of the redirect:
        /// checks `state`, redeems the code with the PKCE verifier, checks the ID token's
        /// `nonce`, and caches the tokens.
        pub async fn finish_auth_code_flow(
            &self,
            flow: &AuthCodeFlow,
            redirect_params: &[(String, String)],
        ) -> Result<AuthenticationResult> {
            auth_code::finish(&self.core, flow, redirect_params).await
        }

        /// Redeems a refresh token obtained elsewhere (migration into this cache): the account,
        /// tokens and the refresh token are cached.
        pub async fn acquire_token_by_refresh_token(
            &self,
            refresh_token: &str,
            scopes: &[&str],
        ) -> Result<AuthenticationResult> {
            let core = &self.core;
            let meta = core.metadata().await?;
            let scopes = decorate_scopes(&owned(scopes));
            let post = core
                .token_post(&meta, "refresh_token")?
                .field("refresh_token", refresh_token)
                .field("scope", scopes.join(" "));
            let data = post.event_data();
            let response = post.send(&core.http).await?;
            core.record(
                &meta,
                response,
                Recorded {
                    grant_type: "refresh_token",
                    requested: scopes,
                    data,
                    refreshed: None,
                    partition: None,
                },
            )
            .await
        }
    };
}

/// An application that cannot keep a secret: desktop, mobile, command line. Its tokens live in
/// an in-memory cache unless it is given an accessor ([`AppBuilder::cache_accessor`]).
///
/// ```no_run
/// # async fn f() -> Result<(), tokencache_client::ClientError> {
/// use tokencache_client::PublicClientApplication;
/// let app = PublicClientApplication::builder("my-client-id")
///     .authority("https://login.microsoftonline.com/organizations")?
///     .build()?;
/// let scopes = ["User.Read"];
/// let result = match app.accounts().await?.first() {
///     Some(account) => app.acquire_token_silent(&scopes, account).await?,
///     None => {
///         let flow = app.initiate_device_flow(&scopes).await?;
///         eprintln!("{}", flow.message);
///         app.acquire_token_by_device_flow(&flow).await?
///     }
/// };
/// println!("token for {:?}, from {:?}", result.account.map(|a| a.username), result.token_source);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PublicClientApplication {
    core: Arc<Core>,
}

impl PublicClientApplication {
    /// A builder for the app with this client id.
    pub fn builder(client_id: &str) -> AppBuilder<Public> {
        AppBuilder::new(client_id)
    }

    shared_methods!();

    /// Starts a device code sign-in: show the flow's `message` to the user.
    pub async fn initiate_device_flow(&self, scopes: &[&str]) -> Result<DeviceCodeFlow> {
        device_code::initiate(&self.core, &owned(scopes)).await
    }

    /// Polls until the user completes the device code sign-in (honouring `interval` and
    /// `slow_down`), declines ([`ClientError::SignInFailed`]) or the code expires
    /// ([`ClientError::DeviceCodeExpired`]). Drop the future to cancel.
    pub async fn acquire_token_by_device_flow(
        &self,
        flow: &DeviceCodeFlow,
    ) -> Result<AuthenticationResult> {
        device_code::poll(&self.core, flow).await
    }

    /// Signs in with the system browser and a loopback redirect listener (RFC 8252):
    /// `redirect_uri` is `http://localhost` or `http://127.0.0.1`, with a port or without one
    /// (a free port is picked); `open_browser` gets the URL to open. Waits at most `timeout`.
    pub async fn acquire_token_interactive(
        &self,
        scopes: &[&str],
        redirect_uri: &str,
        options: &AuthCodeOptions,
        timeout: Duration,
        open_browser: impl FnOnce(&str) -> Result<()>,
    ) -> Result<AuthenticationResult> {
        let listener = LoopbackListener::bind(redirect_uri).await?;
        let flow =
            auth_code::start(&self.core, &owned(scopes), &listener.redirect_uri, options).await?;
        open_browser(&flow.auth_uri)?;
        let params = listener.wait(&flow.state, timeout).await?;
        auth_code::finish(&self.core, &flow, &params).await
    }
}

impl AppBuilder<Public> {
    /// Builds the application.
    pub fn build(self) -> Result<PublicClientApplication> {
        Ok(PublicClientApplication {
            core: Arc::new(self.build_core()?),
        })
    }
}

/// An application that keeps a credential: web apps, web APIs, daemons. App tokens (client
/// credentials) and users' tokens share its cache store, in separate partitions.
///
/// ```no_run
/// # async fn f() -> Result<(), tokencache_client::ClientError> {
/// use tokencache_client::{ClientCredential, ConfidentialClientApplication};
/// let app = ConfidentialClientApplication::builder("my-daemon-id")
///     .authority("https://login.microsoftonline.com/contoso.onmicrosoft.com")?
///     .credential(ClientCredential::secret("from-a-vault"))
///     .build()?;
/// let token = app.acquire_token_for_client(&["https://graph.microsoft.com/.default"]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ConfidentialClientApplication {
    core: Arc<Core>,
}

impl ConfidentialClientApplication {
    /// A builder for the app with this client id; give it a credential.
    pub fn builder(client_id: &str) -> AppBuilder<Confidential> {
        AppBuilder::new(client_id)
    }

    shared_methods!();

    /// An app token (client credentials grant), from the cache when it has a valid one.
    pub async fn acquire_token_for_client(&self, scopes: &[&str]) -> Result<AuthenticationResult> {
        silent::acquire_for_client(&self.core, &owned(scopes), false).await
    }

    /// An app token from the provider, skipping the cache (the new token is cached).
    pub async fn acquire_token_for_client_force_refresh(
        &self,
        scopes: &[&str],
    ) -> Result<AuthenticationResult> {
        silent::acquire_for_client(&self.core, &owned(scopes), true).await
    }

    /// On-behalf-of: exchanges the access token a web API received (`user_assertion`) for a
    /// token to call a downstream API as that user. A cached token for the same user and scopes
    /// is reused; concurrent calls for the same assertion and scopes make one request.
    pub async fn acquire_token_on_behalf_of(
        &self,
        user_assertion: &str,
        scopes: &[&str],
    ) -> Result<AuthenticationResult> {
        const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
        let core = &self.core;
        let scopes = owned(scopes);
        let wanted = undecorated(&scopes);
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let realm = core.cache_realm().await?;
        let environments = core.environments().await?;
        // The user's home account, as the response's client_info will name it.
        let claims = decode_jwt_claims(user_assertion).ok();
        let home = claims
            .as_ref()
            .and_then(|c| match (c.get_str("oid"), c.get_str("tid")) {
                (Some(oid), Some(tid)) => Some(format!("{oid}.{tid}")),
                _ => c.get_str("sub").map(str::to_owned),
            });
        let account = home.as_ref().map(|h| AccountInfo {
            home_account_id: h.clone(),
            environment: core.authority.environment().to_owned(),
            username: String::new(),
            local_account_id: None,
            realm: None,
            authority_type: None,
        });
        let assertion_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(user_assertion.as_bytes()));
        let partition = home.as_deref().map_or_else(
            || PartitionKey::for_assertion_hash(&assertion_hash),
            PartitionKey::for_account,
        );
        let lookup = |cache: &tokencache::TokenCache| match &account {
            Some(a) => cached_access_token(core, environments, cache, Some(a), realm, &refs),
            None => Cached::Missing,
        };
        if let Cached::Fresh(r) = lookup(&*core.load(Some(&partition)).await?) {
            return Ok(r);
        }
        let _flight = core
            .single_flight(format!(
                "obo\u{1f}{assertion_hash}\u{1f}{}",
                wanted.join(" ")
            ))
            .await;
        if let Cached::Fresh(r) = lookup(&*core.load(Some(&partition)).await?) {
            return Ok(r);
        }
        let meta = core.metadata().await?;
        let decorated = decorate_scopes(&scopes);
        let post = core
            .token_post(&meta, GRANT)?
            .field("assertion", user_assertion)
            .field("requested_token_use", "on_behalf_of")
            .field("scope", decorated.join(" "));
        let data = post.event_data();
        let response = post.send(&core.http).await?;
        core.record(
            &meta,
            response,
            Recorded {
                grant_type: GRANT,
                requested: decorated,
                data,
                refreshed: None,
                partition: Some(partition),
            },
        )
        .await
    }
}

impl AppBuilder<Confidential> {
    /// The credential (required).
    pub fn credential(mut self, credential: ClientCredential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Builds the application; fails without a credential.
    pub fn build(self) -> Result<ConfidentialClientApplication> {
        if self.credential.is_none() {
            return Err(ClientError::Configuration(
                "a confidential client needs a credential (secret or assertion)".into(),
            ));
        }
        Ok(ConfidentialClientApplication {
            core: Arc::new(self.build_core()?),
        })
    }
}
