//! A daemon: app tokens with the client credentials grant, reused from the cache until they
//! near expiry. Prints one JSON line per acquisition (never the token).
//!
//! ```text
//! TOKENCACHE_CLIENT_SECRET=... cargo run -p tokencache-integration --example daemon -- \
//!     --authority https://login.microsoftonline.com/<tenant> --client-id <app id> \
//!     --scopes https://graph.microsoft.com/.default --count 2
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokencache::json::{JsonObject, JsonValue};
use tokencache_client::{ClientCredential, ConfidentialClientApplication};
use tokencache_file::{FileAccessor, FileOptions, FileStore};

#[derive(Parser)]
#[command(about = "Acquire app tokens with client credentials; repeats come from the cache")]
struct Args {
    /// The authority, with the tenant.
    #[arg(long)]
    authority: String,
    /// The application (client) id.
    #[arg(long)]
    client_id: String,
    /// The environment variable holding the client secret.
    #[arg(long, default_value = "TOKENCACHE_CLIENT_SECRET")]
    secret_env: String,
    /// Space-separated scopes (usually `<resource>/.default`).
    #[arg(long)]
    scopes: String,
    /// Acquisitions to make.
    #[arg(long, default_value_t = 2)]
    count: u32,
    /// Keep the cache in this file (default: in memory, for this run only).
    #[arg(long)]
    cache: Option<PathBuf>,
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var(&args.secret_env)
        .map_err(|_| format!("set the client secret in ${}", args.secret_env))?;
    let mut builder = ConfidentialClientApplication::builder(&args.client_id)
        .authority(&args.authority)?
        .credential(ClientCredential::secret(secret));
    if let Some(path) = &args.cache {
        let file = FileStore::open(path, FileOptions::default())?;
        builder = builder.cache_accessor(Arc::new(FileAccessor::new(Arc::new(file))));
    }
    let app = builder.build()?;
    let scopes: Vec<&str> = args.scopes.split_whitespace().collect();
    for _ in 0..args.count {
        let result = app.acquire_token_for_client(&scopes).await?;
        let mut o = JsonObject::new();
        o.insert(
            "token_source",
            JsonValue::string(result.token_source.as_str()),
        );
        o.insert(
            "expires_on",
            JsonValue::Number(result.expires_on.to_string().into()),
        );
        println!("{}", o.to_python_json(false));
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
