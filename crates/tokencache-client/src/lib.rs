//! Public and confidential OAuth 2.0 / OpenID Connect client applications that acquire tokens
//! from Microsoft Entra ID (any cloud, B2C, CIAM, ADFS) or any OpenID provider, record them in a
//! [`tokencache::TokenCache`] exactly as MSAL does, and reuse them silently. This crate owns
//! the protocol (authorities and discovery, the authorization code flow with PKCE, device code,
//! client credentials, on-behalf-of, refresh), MSAL's silent-acquisition algorithm with one
//! refresh at a time per account and scopes, the HTTP seam ([`http::HttpClient`], reqwest with
//! rustls by default, bounded retries). The cache is reached through the core's contract,
//! [`CacheAccessor`]: a file (`tokencache_file::FileAccessor`) or a database
//! (`tokencache_store::PartitionedCache`) keeps it. Every application gets its own in-memory
//! cache ([`InMemoryAccessor`]) unless it is given an accessor. This crate depends on the core
//! only, not on the file or store crates.
//!
//! ```no_run
//! # async fn f() -> Result<(), tokencache_client::ClientError> {
//! use tokencache_client::PublicClientApplication;
//! let app = PublicClientApplication::builder("my-client-id")
//!     .authority("https://login.microsoftonline.com/organizations")?
//!     .build()?;
//! let flow = app.initiate_device_flow(&["User.Read"]).await?;
//! eprintln!("{}", flow.message);
//! let first = app.acquire_token_by_device_flow(&flow).await?;
//! let account = first.account.expect("a user token has an account");
//! let again = app.acquire_token_silent(&["User.Read"], &account).await?; // from the cache
//! assert_eq!(again.token_source.as_str(), "cache");
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod app;
mod apps;
mod auth_code;
mod authority;
#[cfg(feature = "certificate")]
mod certificate;
mod device_code;
mod error;
pub mod http;
mod oauth;
mod pkce;
mod result;
mod silent;
mod store;

pub use app::{AppBuilder, ClientCredential};
pub use apps::{Confidential, ConfidentialClientApplication, Public, PublicClientApplication};
pub use auth_code::{AuthCodeFlow, AuthCodeOptions};
pub use authority::{Authority, AuthorityKind, ProviderMetadata};
#[cfg(feature = "certificate")]
#[cfg_attr(docsrs, doc(cfg(feature = "certificate")))]
pub use certificate::ClientCertificate;
pub use device_code::DeviceCodeFlow;
pub use error::{ClientError, OAuthError, Result};
pub use result::{AccountInfo, AuthenticationResult, TokenSource};
pub use silent::{EXPIRY_BUFFER_SECONDS, SilentOptions};
pub use store::InMemoryAccessor;
pub use tokencache::access::{CacheAccess, CacheAccessor, CacheChange};
