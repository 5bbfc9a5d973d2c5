//! [`DeviceCodeCredential`] and [`InteractiveBrowserCredential`]: a user signs in once, and the
//! tokens in the [`TokenStore`] serve every later run and every process sharing it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use tokencache_client::{
    AccountInfo, AuthCodeOptions, AuthenticationResult, ClientError, PublicClientApplication,
};

pub use tokencache_client::DeviceCodeFlow;

use crate::error::{CredentialError, for_account};
use crate::memo::{Memo, Token};
use crate::scopes;
use crate::store::TokenStore;

/// Shows a device code to the user: its `message` says where to go and what to enter.
pub type DeviceCodePrompt = Arc<dyn Fn(&DeviceCodeFlow) + Send + Sync>;

/// Opens the sign-in page (a URL) in the user's browser.
pub type OpenBrowser = Arc<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// The builder of a public-client credential: [`DeviceCodeCredential::builder`] or
/// [`InteractiveBrowserCredential::builder`]. Errors are reported by `build()`.
pub struct PublicCredentialBuilder<C> {
    client_id: String,
    authority: String,
    store: Option<TokenStore>,
    username: Option<String>,
    http: Option<Arc<dyn tokencache_client::http::HttpClient>>,
    prompt: DeviceCodePrompt,
    open_browser: OpenBrowser,
    redirect_uri: String,
    timeout: Duration,
    kind: PhantomData<C>,
}

impl<C> fmt::Debug for PublicCredentialBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicCredentialBuilder")
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn print_prompt(flow: &DeviceCodeFlow) {
    eprintln!("{}", flow.message);
}

/// Opens `url` with the desktop's opener (`xdg-open`, `open`, or `start`); the URL is also
/// printed on stderr in case no browser comes up.
fn system_browser(url: &str) -> std::io::Result<()> {
    eprintln!("Opening your browser to sign in; if it does not open, visit:\n{url}");
    let mut command = if cfg!(target_os = "windows") {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else {
        std::process::Command::new("xdg-open")
    };
    command
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
}

impl<C> PublicCredentialBuilder<C> {
    fn new(client_id: &str) -> Self {
        PublicCredentialBuilder {
            client_id: client_id.to_owned(),
            authority: "https://login.microsoftonline.com/organizations".into(),
            store: None,
            username: None,
            http: None,
            prompt: Arc::new(print_prompt),
            open_browser: Arc::new(system_browser),
            redirect_uri: "http://localhost".into(),
            timeout: Duration::from_secs(300),
            kind: PhantomData,
        }
    }

    /// The authority (default `https://login.microsoftonline.com/organizations`): an Entra
    /// tenant URL, B2C, CIAM, ADFS, or any OpenID provider's issuer.
    pub fn authority(mut self, url: impl Into<String>) -> Self {
        self.authority = url.into();
        self
    }

    /// Where the tokens are kept (default: memory only, which signs in again in every
    /// process; give a file or a store to stay signed in).
    pub fn cache(mut self, store: TokenStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The account to use when the cache holds several (and the login hint of a sign-in).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The HTTP client (default: reqwest with rustls and the system's roots).
    pub fn http_client(mut self, http: Arc<dyn tokencache_client::http::HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    fn core(self) -> Result<(PublicCore, Self), CredentialError> {
        let mut app =
            PublicClientApplication::builder(&self.client_id).authority(&self.authority)?;
        if let Some(store) = &self.store {
            app = app.cache_accessor(store.accessor().clone());
        }
        if let Some(http) = &self.http {
            app = app.http_client(http.clone());
        }
        let core = PublicCore {
            app: app.build()?,
            username: self.username.clone(),
            memo: Memo::default(),
            signing_in: tokio::sync::Mutex::new(()),
        };
        Ok((core, self))
    }
}

/// What both public credentials share: the application over the store, and the silent path.
struct PublicCore {
    app: PublicClientApplication,
    username: Option<String>,
    memo: Memo,
    /// One interactive sign-in at a time; the others wait for it and then find its tokens.
    signing_in: tokio::sync::Mutex<()>,
}

impl fmt::Debug for PublicCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicCredential")
            .field("client_id", &self.app.client_id())
            .field("authority", &self.app.authority().url())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the cache can do for a request.
enum Silent {
    /// A token (cached, or refreshed).
    Token(Box<AuthenticationResult>),
    /// No account, or its refresh token is no longer accepted: sign in.
    SignInNeeded,
}

impl PublicCore {
    async fn account(&self) -> Result<Option<AccountInfo>, CredentialError> {
        let mut accounts = match &self.username {
            Some(u) => self.app.accounts_by_username(u).await?,
            None => self.app.accounts().await?,
        };
        match accounts.len() {
            0 => Ok(None),
            1 => Ok(accounts.pop()),
            count if self.username.is_none() => Err(CredentialError::AmbiguousAccount { count }),
            _ => Ok(Some(accounts.swap_remove(0))),
        }
    }

    async fn silent(&self, scopes: &[&str]) -> Result<Silent, CredentialError> {
        let Some(account) = self.account().await? else {
            return Ok(Silent::SignInNeeded);
        };
        match self.app.acquire_token_silent(scopes, &account).await {
            Ok(r) => Ok(Silent::Token(Box::new(r))),
            Err(e) if e.is_interaction_required() || matches!(e, ClientError::NoTokenInCache) => {
                tracing::info!(account = %account.username, "the cached sign-in cannot be refreshed; signing in again");
                Ok(Silent::SignInNeeded)
            }
            Err(e) => Err(for_account(e, &account.username, "sign in interactively")),
        }
    }

    /// The memo, then the cache, then `sign_in` (one at a time).
    async fn token<F, Fut>(&self, scopes: &[&str], sign_in: F) -> Result<Token, CredentialError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<AuthenticationResult, ClientError>>,
    {
        let wanted = scopes::checked(scopes)?;
        let key = scopes::key(&wanted);
        if let Some(hit) = self.memo.hit(&key) {
            return Ok(hit);
        }
        let result = match self.silent(scopes).await? {
            Silent::Token(r) => *r,
            Silent::SignInNeeded => {
                let _one = self.signing_in.lock().await;
                match self.silent(scopes).await? {
                    Silent::Token(r) => *r,
                    Silent::SignInNeeded => sign_in(wanted).await?,
                }
            }
        };
        self.memo.keep(key, &result)
    }
}

/// A public client that signs the user in with the device code flow (RFC 8628) the first
/// time, showing the code through a prompt callback (default: stderr), and silently from the
/// [`TokenStore`] afterwards, in this process and in every other one using the same store.
///
/// ```no_run
/// # async fn f() -> azure_core::Result<()> {
/// use azure_core::credentials::TokenCredential;
/// use tokencache_azure::{DeviceCodeCredential, TokenStore};
/// let credential = DeviceCodeCredential::builder("my-client-id")
///     .authority("https://login.microsoftonline.com/organizations")
///     .cache(TokenStore::file("/home/me/.cache/myapp/msal_token_cache.json")?)
///     .build()?;
/// let token = credential.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct DeviceCodeCredential {
    core: PublicCore,
    prompt: DeviceCodePrompt,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl DeviceCodeCredential {
    /// A builder for the application `client_id` (a public client registration).
    pub fn builder(client_id: &str) -> PublicCredentialBuilder<DeviceCodeCredential> {
        PublicCredentialBuilder::new(client_id)
    }
}

impl PublicCredentialBuilder<DeviceCodeCredential> {
    /// Where the device code is shown (default: its message on stderr).
    pub fn prompt(mut self, prompt: impl Fn(&DeviceCodeFlow) + Send + Sync + 'static) -> Self {
        self.prompt = Arc::new(prompt);
        self
    }

    /// Builds the credential; an invalid authority is reported here.
    pub fn build(self) -> Result<DeviceCodeCredential, CredentialError> {
        let (core, builder) = self.core()?;
        Ok(DeviceCodeCredential {
            core,
            prompt: builder.prompt,
        })
    }
}

impl DeviceCodeCredential {
    /// A token and where it came from; [`TokenCredential::get_token`] is this without the
    /// source.
    pub async fn token(&self, scopes: &[&str]) -> Result<Token, CredentialError> {
        self.core
            .token(scopes, |wanted| async move {
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                let flow = self.core.app.initiate_device_flow(&refs).await?;
                (self.prompt)(&flow);
                self.core.app.acquire_token_by_device_flow(&flow).await
            })
            .await
    }
}

#[async_trait]
impl TokenCredential for DeviceCodeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(self.token(scopes).await?.access_token)
    }
}

/// A public client that signs the user in with the system browser and a loopback redirect
/// (authorization code with PKCE, RFC 8252) the first time, and silently from the
/// [`TokenStore`] afterwards.
pub struct InteractiveBrowserCredential {
    core: PublicCore,
    open_browser: OpenBrowser,
    redirect_uri: String,
    timeout: Duration,
}

impl fmt::Debug for InteractiveBrowserCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl InteractiveBrowserCredential {
    /// A builder for the application `client_id` (a public client registration with the
    /// redirect URI `http://localhost`).
    pub fn builder(client_id: &str) -> PublicCredentialBuilder<InteractiveBrowserCredential> {
        PublicCredentialBuilder::new(client_id)
    }
}

impl PublicCredentialBuilder<InteractiveBrowserCredential> {
    /// How the sign-in page is opened (default: the desktop's opener, and the URL on stderr).
    pub fn open_browser(
        mut self,
        open: impl Fn(&str) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.open_browser = Arc::new(open);
        self
    }

    /// The loopback redirect URI (default `http://localhost`, any free port).
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = uri.into();
        self
    }

    /// How long to wait for the user to finish signing in (default 5 minutes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the credential; an invalid authority is reported here.
    pub fn build(self) -> Result<InteractiveBrowserCredential, CredentialError> {
        let (core, builder) = self.core()?;
        Ok(InteractiveBrowserCredential {
            core,
            open_browser: builder.open_browser,
            redirect_uri: builder.redirect_uri,
            timeout: builder.timeout,
        })
    }
}

impl InteractiveBrowserCredential {
    /// A token and where it came from; [`TokenCredential::get_token`] is this without the
    /// source.
    pub async fn token(&self, scopes: &[&str]) -> Result<Token, CredentialError> {
        self.core
            .token(scopes, |wanted| async move {
                let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
                let mut options = AuthCodeOptions::default();
                if let Some(u) = &self.core.username {
                    options = options.login_hint(u.clone());
                }
                let open = self.open_browser.clone();
                self.core
                    .app
                    .acquire_token_interactive(
                        &refs,
                        &self.redirect_uri,
                        &options,
                        self.timeout,
                        |url| {
                            open(url).map_err(|source| ClientError::Io {
                                context: "opening the browser".into(),
                                source,
                            })
                        },
                    )
                    .await
            })
            .await
    }
}

#[async_trait]
impl TokenCredential for InteractiveBrowserCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(self.token(scopes).await?.access_token)
    }
}
