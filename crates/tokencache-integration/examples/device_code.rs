//! Signs in with the device code flow and keeps the cache in a file, so the second run is
//! silent. The provider's message goes to stderr; stdout gets a JSON summary (never a token).
//!
//! ```text
//! cargo run -p tokencache-integration --example device_code -- \
//!     --authority https://login.microsoftonline.com/organizations \
//!     --client-id <your app id> --scopes "User.Read" --cache ~/.cache/myapp/msal_token_cache.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokencache::json::{JsonObject, JsonValue};
use tokencache_client::{
    AuthenticationResult, ClientError, PublicClientApplication, http::ReqwestClient,
};
use tokencache_file::{FileAccessor, FileOptions, FileStore};

#[derive(Parser)]
#[command(about = "Sign in with the device code flow; the second run is silent")]
struct Args {
    /// The authority (https://login.microsoftonline.com/<tenant>, or an Entra-shaped
    /// http://127.0.0.1:PORT/<tenant> for the loopback provider).
    #[arg(long)]
    authority: String,
    /// Treat --authority as the issuer of a generic OpenID provider.
    #[arg(long)]
    oidc: bool,
    /// The application (client) id.
    #[arg(long)]
    client_id: String,
    /// Space-separated scopes.
    #[arg(long)]
    scopes: String,
    /// The cache file (shared with other processes and MSAL apps).
    #[arg(long)]
    cache: PathBuf,
    /// A PEM file of extra root certificates to trust (a test CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

fn summary(result: &AuthenticationResult) -> String {
    let mut o = JsonObject::new();
    o.insert(
        "token_source",
        JsonValue::string(result.token_source.as_str()),
    );
    if let Some(a) = &result.account {
        o.insert("account", JsonValue::string(&a.username));
        o.insert("home_account_id", JsonValue::string(&a.home_account_id));
    }
    let scopes: Vec<JsonValue> = result.scopes.iter().map(|s| JsonValue::string(s)).collect();
    o.insert("scopes", JsonValue::Array(scopes.into()));
    o.insert(
        "expires_on",
        JsonValue::Number(result.expires_on.to_string().into()),
    );
    o.to_python_json(false)
}

async fn run(args: Args) -> Result<AuthenticationResult, Box<dyn std::error::Error>> {
    let file = FileStore::open(&args.cache, FileOptions::default())?;
    let mut builder = PublicClientApplication::builder(&args.client_id)
        .cache_accessor(Arc::new(FileAccessor::new(Arc::new(file))));
    builder = if args.oidc {
        builder.oidc_authority(&args.authority)?
    } else {
        builder.authority(&args.authority)?
    };
    if let Some(ca) = &args.ca_file {
        let mut http = ReqwestClient::builder(std::time::Duration::from_secs(30));
        for cert in reqwest::Certificate::from_pem_bundle(&std::fs::read(ca)?)? {
            http = http.add_root_certificate(cert);
        }
        builder = builder.http_client(Arc::new(ReqwestClient::from(http.build()?)));
    }
    let app = builder.build()?;
    let scopes: Vec<&str> = args.scopes.split_whitespace().collect();
    if let Some(account) = app.accounts().await?.into_iter().next() {
        match app.acquire_token_silent(&scopes, &account).await {
            Ok(result) => return Ok(result),
            Err(e) if e.is_interaction_required() => eprintln!("sign-in needed: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    let flow = app.initiate_device_flow(&scopes).await?;
    eprintln!("{}", flow.message);
    match app.acquire_token_by_device_flow(&flow).await {
        Ok(result) => Ok(result),
        Err(ClientError::DeviceCodeExpired) => Err("the code expired; run again".into()),
        Err(e) => Err(e.into()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(result) => {
            println!("{}", summary(&result));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
