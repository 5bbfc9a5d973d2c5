//! Credentials for the Azure SDK for Rust that keep their tokens in a tokencache: on disk,
//! shared between processes and with the other MSAL apps, or in a database every worker of a
//! fleet shares. Every type here implements [`azure_core::credentials::TokenCredential`], so
//! it goes wherever an Azure SDK client takes a credential
//! (`SecretClient::new(url, credential, None)` and the like).
//!
//! ## What it owns
//!
//! - [`AzureCliCredential`]: the Azure CLI's sign-in, read from its MSAL cache
//!   (`~/.azure/msal_token_cache.json`) under the CLI's own lock, refreshed silently with the
//!   CLI's client id and written back so `az` sees the new tokens. It never runs `az`.
//! - [`DeviceCodeCredential`] and [`InteractiveBrowserCredential`]: a user signs in once; every
//!   later run, and every other process on the same cache file, is silent until the refresh
//!   token expires.
//! - [`ClientSecretCredential`] (and its certificate and assertion forms): app tokens kept in a
//!   [`TokenStore`] (a file, or with the `store` feature a SQLite, PostgreSQL or Redis URL),
//!   so many processes reuse one token per tenant and scope.
//! - [`Persistent`]: any other credential's access tokens, kept in a [`TokenStore`].
//!
//! ## What it reuses
//!
//! The protocol, MSAL's silent-acquisition rules and the one-refresh-at-a-time guarantee are
//! `tokencache-client`'s; the file and its lock are `tokencache-file`'s; the partitioned
//! stores are `tokencache-store`'s. This crate maps them to the Azure SDK's contract: scopes as
//! the SDK passes them (one resource, usually `<resource>/.default`), [`AccessToken`]s with
//! their real expiry, and [`azure_core::Error`]s of kind
//! [`Credential`](azure_core::error::ErrorKind::Credential) whose source is a [`CredentialError`]
//! (and, under it, the OAuth error). No `Debug` or error text shows a token or a secret.
//!
//! ## Example
//!
//! ```no_run
//! # async fn f() -> azure_core::Result<()> {
//! use azure_core::credentials::TokenCredential;
//! use tokencache_azure::AzureCliCredential;
//!
//! let credential = AzureCliCredential::new()?;
//! let token = credential
//!     .get_token(&["https://management.azure.com/.default"], None)
//!     .await?;
//! println!("valid until {}", token.expires_on);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! - `store` (default): [`TokenStore::open`] for `sqlite://`, `postgres://`, `redis://` and
//!   `redis+cluster://` URLs. Without it only files and memory are available, and the database
//!   drivers are not built.
//!
//! [`AccessToken`]: azure_core::credentials::AccessToken

#![cfg_attr(docsrs, feature(doc_cfg))]

mod azure_cli;
mod confidential;
mod error;
mod memo;
mod persistent;
mod public;
mod scopes;
mod store;

pub use azure_cli::{AZURE_CLI_CLIENT_ID, AzureCliCredential, AzureCliCredentialBuilder};
pub use confidential::{ClientSecretCredential, ConfidentialCredentialBuilder};
pub use error::CredentialError;
pub use memo::Token;
pub use persistent::Persistent;
pub use public::{
    DeviceCodeCredential, DeviceCodePrompt, InteractiveBrowserCredential, OpenBrowser,
    PublicCredentialBuilder,
};
pub use store::TokenStore;
pub use tokencache_client::ClientCredential;
pub use tokencache_client::TokenSource;
pub use tokencache_client::http::HttpClient;
