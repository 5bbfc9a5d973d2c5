//! [`AzureCliCredential`]: the Azure CLI's sign-in, from its MSAL cache, without running `az`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use tokencache::json::{JsonObject, JsonValue};
use tokencache_client::{AccountInfo, PublicClientApplication};
use tokencache_file::FileOptions;

use crate::error::{CredentialError, for_account};
use crate::memo::{Memo, Token};
use crate::scopes;
use crate::store::TokenStore;

/// The Azure CLI's public client id: its refresh tokens are issued to it (and to its family).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

const CACHE_FILE: &str = "msal_token_cache.json";
const DPAPI_FILE: &str = "msal_token_cache.bin";
const PROFILE_FILE: &str = "azureProfile.json";
const RUN_AZ_LOGIN: &str = "run `az login`";

/// Builds an [`AzureCliCredential`].
#[derive(Default)]
pub struct AzureCliCredentialBuilder {
    config_dir: Option<PathBuf>,
    username: Option<String>,
    tenant_id: Option<String>,
    authority_host: Option<String>,
    http: Option<Arc<dyn tokencache_client::http::HttpClient>>,
}

impl fmt::Debug for AzureCliCredentialBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCliCredentialBuilder")
            .field("config_dir", &self.config_dir)
            .field("username", &self.username)
            .field("tenant_id", &self.tenant_id)
            .field("authority_host", &self.authority_host)
            .finish_non_exhaustive()
    }
}

impl AzureCliCredentialBuilder {
    /// The Azure CLI's configuration directory (default: `$AZURE_CONFIG_DIR`, else `~/.azure`).
    pub fn config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// The account (default: the user of the CLI's default subscription).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The tenant to get tokens from (default: the default subscription's tenant).
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// The authority host (default: the default subscription's cloud, e.g.
    /// `https://login.microsoftonline.com` for `AzureCloud`).
    pub fn authority_host(mut self, url: impl Into<String>) -> Self {
        self.authority_host = Some(url.into());
        self
    }

    /// The HTTP client (default: reqwest with rustls and the system's roots).
    pub fn http_client(mut self, http: Arc<dyn tokencache_client::http::HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// Builds the credential. Nothing is read yet: the CLI's files are read at the first
    /// `get_token`, so a later `az login` is seen.
    pub fn build(self) -> Result<AzureCliCredential, CredentialError> {
        let dir = match self.config_dir {
            Some(dir) => dir,
            None => default_config_dir()?,
        };
        Ok(AzureCliCredential {
            dir,
            username: self.username,
            tenant_id: self.tenant_id,
            authority_host: self.authority_host,
            http: self.http,
            state: Mutex::new(None),
            memo: Memo::default(),
        })
    }
}

fn default_config_dir() -> Result<PathBuf, CredentialError> {
    if let Some(dir) = std::env::var_os("AZURE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = if cfg!(windows) {
        std::env::var_os("USERPROFILE")
    } else {
        std::env::var_os("HOME")
    };
    home.filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".azure"))
        .ok_or_else(|| {
            CredentialError::Configuration(
                "no home directory to find ~/.azure in; set AZURE_CONFIG_DIR".into(),
            )
        })
}

/// The user the Azure CLI's profile names, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProfileUser {
    username: Option<String>,
    tenant_id: Option<String>,
    cloud: Option<String>,
}

/// The default subscription's user, tenant and cloud from `azureProfile.json` (which the CLI
/// writes with a UTF-8 byte order mark). A missing profile names nobody.
fn read_profile(dir: &Path) -> Result<ProfileUser, CredentialError> {
    let path = dir.join(PROFILE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileUser::default()),
        Err(e) => {
            return Err(CredentialError::Profile {
                path,
                reason: e.to_string(),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let profile = JsonObject::parse(text).map_err(|e| CredentialError::Profile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let Some(JsonValue::Array(subscriptions)) = profile.get("subscriptions") else {
        return Ok(ProfileUser::default());
    };
    let default = subscriptions.iter().find_map(|s| match s {
        JsonValue::Object(s) if s.get("isDefault").is_some_and(JsonValue::is_truthy) => Some(s),
        _ => None,
    });
    let Some(subscription) = default else {
        return Ok(ProfileUser::default());
    };
    let user = match subscription.get("user") {
        Some(JsonValue::Object(user)) => Some(user),
        _ => None,
    };
    if let Some(kind) = user.and_then(|u| u.get_str("type"))
        && kind != "user"
    {
        return Err(CredentialError::Configuration(format!(
            "the Azure CLI's default subscription is signed in as a {kind}, whose secret the CLI keeps outside its token cache; use ClientSecretCredential for it, or `az login` as a user"
        )));
    }
    Ok(ProfileUser {
        username: user.and_then(|u| u.get_str("name")).map(str::to_owned),
        tenant_id: subscription.get_str("tenantId").map(str::to_owned),
        cloud: subscription.get_str("environmentName").map(str::to_owned),
    })
}

/// The authority host of an Azure CLI cloud name.
fn cloud_host(cloud: Option<&str>) -> &'static str {
    match cloud {
        Some("AzureChinaCloud") => "https://login.chinacloudapi.cn",
        Some("AzureUSGovernment") => "https://login.microsoftonline.us",
        _ => "https://login.microsoftonline.com",
    }
}

/// What the first successful look at the CLI's files found.
struct Resolved {
    store: TokenStore,
    app: Arc<PublicClientApplication>,
    account: AccountInfo,
}

/// The Azure CLI's sign-in, reused without running `az`: reads the CLI's MSAL token cache
/// (`msal_token_cache.json` in `$AZURE_CONFIG_DIR`, default `~/.azure`) under the lock the CLI
/// itself takes (`msal_token_cache.json.lockfile`), picks the account the CLI would (its
/// default subscription's user in `azureProfile.json`, or the username and tenant given),
/// serves cached access tokens, and refreshes silently with the CLI's client id and MSAL's
/// rules (family refresh tokens, the tenant's authority), writing the new tokens back so `az`
/// sees them. Errors say what to do: no sign-in ("run `az login`"), a cache only Windows can
/// decrypt, a refresh token that was revoked.
///
/// ```no_run
/// # async fn f() -> azure_core::Result<()> {
/// use azure_core::credentials::TokenCredential;
/// let credential = tokencache_azure::AzureCliCredential::new()?;
/// let token = credential.get_token(&["https://management.azure.com/.default"], None).await?;
/// # let _ = token; Ok(()) }
/// ```
pub struct AzureCliCredential {
    dir: PathBuf,
    username: Option<String>,
    tenant_id: Option<String>,
    authority_host: Option<String>,
    http: Option<Arc<dyn tokencache_client::http::HttpClient>>,
    state: Mutex<Option<Arc<Resolved>>>,
    memo: Memo,
}

impl fmt::Debug for AzureCliCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureCliCredential")
            .field("config_dir", &self.dir)
            .field("username", &self.username)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl AzureCliCredential {
    /// The credential for the CLI's default sign-in.
    pub fn new() -> Result<AzureCliCredential, CredentialError> {
        AzureCliCredential::builder().build()
    }

    /// A builder (configuration directory, username, tenant, authority host).
    pub fn builder() -> AzureCliCredentialBuilder {
        AzureCliCredentialBuilder::default()
    }

    /// The Azure CLI's configuration directory this credential reads.
    pub fn config_dir(&self) -> &Path {
        &self.dir
    }

    fn not_signed_in(&self, username: Option<&str>) -> CredentialError {
        CredentialError::NotSignedIn {
            dir: self.dir.clone(),
            what: username.map(|u| format!("for {u}")).unwrap_or_default(),
        }
    }

    /// The CLI's cache file as a store: the JSON file, or on Windows its DPAPI form.
    fn open_store(&self) -> Result<TokenStore, CredentialError> {
        let plain = self.dir.join(CACHE_FILE);
        if plain.exists() {
            return TokenStore::file(&plain);
        }
        let protected = self.dir.join(DPAPI_FILE);
        if protected.exists() {
            if cfg!(windows) {
                let options = FileOptions {
                    windows_data_protection: true,
                    ..FileOptions::default()
                };
                return TokenStore::file_with(&protected, options);
            }
            return Err(CredentialError::EncryptedCache { path: protected });
        }
        Err(self.not_signed_in(self.username.as_deref()))
    }

    async fn resolve(&self) -> Result<Arc<Resolved>, CredentialError> {
        if let Some(state) = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            return Ok(state);
        }
        let store = self.open_store()?;
        let profile = read_profile(&self.dir)?;
        let username = self.username.clone().or(profile.username);
        let tenant = self
            .tenant_id
            .clone()
            .or(profile.tenant_id)
            .unwrap_or_else(|| "organizations".into());
        let host = self
            .authority_host
            .clone()
            .unwrap_or_else(|| cloud_host(profile.cloud.as_deref()).to_owned());
        let authority = format!("{}/{tenant}", host.trim_end_matches('/'));
        let mut builder = PublicClientApplication::builder(AZURE_CLI_CLIENT_ID)
            .authority(&authority)?
            .cache_accessor(store.accessor().clone());
        if let Some(http) = &self.http {
            builder = builder.http_client(http.clone());
        }
        let app = Arc::new(builder.build()?);
        let mut accounts = match &username {
            Some(u) => app.accounts_by_username(u).await?,
            None => app.accounts().await?,
        };
        let account = match accounts.len() {
            0 => return Err(self.not_signed_in(username.as_deref())),
            1 => accounts.swap_remove(0),
            count if username.is_none() => {
                return Err(CredentialError::AmbiguousAccount { count });
            }
            _ => accounts.swap_remove(0),
        };
        let resolved = Arc::new(Resolved {
            store,
            app,
            account,
        });
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(resolved.clone());
        Ok(resolved)
    }

    /// A token and where it came from; [`TokenCredential::get_token`] is this without the
    /// source.
    pub async fn token(&self, scopes: &[&str]) -> Result<Token, CredentialError> {
        let wanted = scopes::checked(scopes)?;
        let key = scopes::key(&wanted);
        if let Some(hit) = self.memo.hit(&key) {
            return Ok(hit);
        }
        let resolved = self.resolve().await?;
        let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
        match resolved
            .app
            .acquire_token_silent(&refs, &resolved.account)
            .await
        {
            Ok(r) => self.memo.keep(key, &r),
            Err(e) => {
                // A sign-out (`az logout`, `az login` as someone else) invalidates what was
                // resolved: look again next time.
                self.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                Err(for_account(e, &resolved.account.username, RUN_AZ_LOGIN))
            }
        }
    }

    /// Where the tokens are read and written (the CLI's cache file), once resolved.
    pub fn store(&self) -> Option<TokenStore> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|r| r.store.clone())
    }
}

#[async_trait]
impl TokenCredential for AzureCliCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(self.token(scopes).await?.access_token)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn the_profile_names_the_default_subscriptions_user_even_with_a_byte_order_mark() {
        let dir = tempfile::tempdir().unwrap();
        let profile = "\u{feff}{\"installationId\": \"x\", \"subscriptions\": [\
            {\"id\": \"s1\", \"isDefault\": false, \"tenantId\": \"t1\", \"user\": {\"name\": \"bob@x\", \"type\": \"user\"}},\
            {\"id\": \"s2\", \"isDefault\": true, \"tenantId\": \"t2\", \"environmentName\": \"AzureChinaCloud\", \"user\": {\"name\": \"alice@x\", \"type\": \"user\"}}]}";
        std::fs::write(dir.path().join(PROFILE_FILE), profile).unwrap();
        let user = read_profile(dir.path()).unwrap();
        assert_eq!(user.username.as_deref(), Some("alice@x"));
        assert_eq!(user.tenant_id.as_deref(), Some("t2"));
        assert_eq!(
            cloud_host(user.cloud.as_deref()),
            "https://login.chinacloudapi.cn"
        );
    }

    #[test]
    fn a_service_principal_profile_and_a_damaged_profile_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROFILE_FILE),
            r#"{"subscriptions": [{"isDefault": true, "tenantId": "t", "user": {"name": "app-id", "type": "servicePrincipal"}}]}"#,
        )
        .unwrap();
        let e = read_profile(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("servicePrincipal") && e.contains("ClientSecretCredential"),
            "{e}"
        );
        std::fs::write(dir.path().join(PROFILE_FILE), "{not json").unwrap();
        let e = read_profile(dir.path()).unwrap_err();
        assert!(matches!(e, CredentialError::Profile { .. }), "{e}");
        std::fs::remove_file(dir.path().join(PROFILE_FILE)).unwrap();
        assert_eq!(read_profile(dir.path()).unwrap(), ProfileUser::default());
    }
}
