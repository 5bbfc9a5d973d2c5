//! Gets one token with a tokencache credential and prints one JSON line on stdout:
//! `{"credential": …, "source": "cache" | "identity_provider", "expires_on": <unix seconds>}`
//! (never the token). Exits 1 with the error's message on stderr.
//!
//! ```text
//! cargo run -p tokencache-azure --example get_token -- --credential azure-cli \
//!     --scope https://management.core.windows.net//.default
//! cargo run -p tokencache-azure --example get_token -- --credential device-code \
//!     --authority https://login.microsoftonline.com/organizations --client-id ID --cache FILE --scope …
//! AZURE_CLIENT_SECRET=… cargo run -p tokencache-azure --example get_token -- \
//!     --credential client-secret --tenant ID --client-id ID --store redis://127.0.0.1/ --scope …
//! ```
//!
//! `--concurrent N` makes N concurrent `get_token` calls on the one credential (they must
//! all succeed; the line reports the first). `--ca-file PEM` trusts that CA (a test provider).

use std::sync::Arc;

use clap::{Parser, ValueEnum};
use tokencache_azure::{
    AzureCliCredential, ClientCredential, ClientSecretCredential, DeviceCodeCredential, HttpClient,
    Token, TokenStore,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    AzureCli,
    DeviceCode,
    ClientSecret,
}

#[derive(Debug, Parser)]
#[command(about = "Get one token with a tokencache credential; prints where it came from")]
struct Args {
    /// Which credential.
    #[arg(long, value_enum)]
    credential: Kind,
    /// A scope (repeat for more); usually `<resource>/.default`.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// The authority (device-code).
    #[arg(long)]
    authority: Option<String>,
    /// The authority host (azure-cli, client-secret).
    #[arg(long)]
    authority_host: Option<String>,
    /// The application's client id (device-code, client-secret).
    #[arg(long)]
    client_id: Option<String>,
    /// The tenant (client-secret; azure-cli: instead of the profile's).
    #[arg(long)]
    tenant: Option<String>,
    /// The account (azure-cli, device-code).
    #[arg(long)]
    username: Option<String>,
    /// A cache file (device-code, client-secret).
    #[arg(long, conflicts_with = "store")]
    cache: Option<std::path::PathBuf>,
    /// A store URL: sqlite://PATH, postgres://…, redis://… (client-secret).
    #[arg(long)]
    store: Option<String>,
    /// A CA certificate (PEM) to trust, for a test identity provider.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Concurrent calls.
    #[arg(long, default_value_t = 1)]
    concurrent: usize,
}

fn http(args: &Args) -> Result<Option<Arc<dyn HttpClient>>, Box<dyn std::error::Error>> {
    let Some(path) = &args.ca_file else {
        return Ok(None);
    };
    let pem = std::fs::read(path)?;
    let client =
        tokencache_client::http::ReqwestClient::builder(std::time::Duration::from_secs(30))
            .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
            .build()?;
    Ok(Some(Arc::new(
        tokencache_client::http::ReqwestClient::from(client),
    )))
}

fn required<'a>(value: &'a Option<String>, flag: &str) -> Result<&'a str, String> {
    value
        .as_deref()
        .ok_or_else(|| format!("--{flag} is required for this credential"))
}

async fn store(args: &Args) -> Result<TokenStore, Box<dyn std::error::Error>> {
    Ok(match (&args.cache, &args.store) {
        (Some(path), _) => TokenStore::file(path)?,
        (None, Some(url)) => open_store(url).await?,
        (None, None) => TokenStore::memory(),
    })
}

#[cfg(feature = "store")]
async fn open_store(url: &str) -> Result<TokenStore, Box<dyn std::error::Error>> {
    Ok(TokenStore::open(url).await?)
}

#[cfg(not(feature = "store"))]
async fn open_store(_: &str) -> Result<TokenStore, Box<dyn std::error::Error>> {
    Err("--store needs tokencache-azure's `store` feature".into())
}

/// Runs `call` `n` times at once; all must succeed.
async fn concurrently<F, Fut>(n: usize, call: F) -> Result<Token, Box<dyn std::error::Error>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Token, tokencache_azure::CredentialError>>,
{
    let mut first = None;
    for r in futures::future::join_all((0..n.max(1)).map(|_| call())).await {
        first.get_or_insert(r?);
    }
    first.ok_or_else(|| "no call made".into())
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let refs: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let http = http(&args)?;
    let (name, token) = match args.credential {
        Kind::AzureCli => {
            let mut b = AzureCliCredential::builder();
            if let Some(u) = &args.username {
                b = b.username(u.clone());
            }
            if let Some(t) = &args.tenant {
                b = b.tenant_id(t.clone());
            }
            if let Some(h) = &args.authority_host {
                b = b.authority_host(h.clone());
            }
            if let Some(http) = http {
                b = b.http_client(http);
            }
            let c = b.build()?;
            (
                "azure-cli",
                concurrently(args.concurrent, || c.token(&refs)).await?,
            )
        }
        Kind::DeviceCode => {
            let mut b = DeviceCodeCredential::builder(required(&args.client_id, "client-id")?)
                .authority(required(&args.authority, "authority")?)
                .cache(store(&args).await?);
            if let Some(u) = &args.username {
                b = b.username(u.clone());
            }
            if let Some(http) = http {
                b = b.http_client(http);
            }
            let c = b.build()?;
            (
                "device-code",
                concurrently(args.concurrent, || c.token(&refs)).await?,
            )
        }
        Kind::ClientSecret => {
            let secret = std::env::var("AZURE_CLIENT_SECRET")
                .map_err(|_| "set AZURE_CLIENT_SECRET to the client secret")?;
            let mut b = ClientSecretCredential::builder(
                required(&args.tenant, "tenant")?,
                required(&args.client_id, "client-id")?,
                ClientCredential::secret(secret),
            )
            .cache(store(&args).await?);
            if let Some(h) = &args.authority_host {
                b = b.authority_host(h.clone());
            }
            if let Some(http) = http {
                b = b.http_client(http);
            }
            let c = b.build()?;
            (
                "client-secret",
                concurrently(args.concurrent, || c.token(&refs)).await?,
            )
        }
    };
    println!(
        "{{\"credential\": \"{name}\", \"source\": \"{}\", \"expires_on\": {}}}",
        token.source.as_str(),
        token.access_token.expires_on.unix_timestamp()
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        eprintln!("error: {text}");
        std::process::exit(1);
    }
}
