//! Many concurrent silent acquisitions for one signed-in user through a shared partitioned
//! store: what a busy web app does. Used by the multi-process tests (several copies share one
//! Redis); prints a JSON line with the outcome counts.
//!
//! ```text
//! cargo run -p tokencache-integration --example silent_load -- --authority URL --client-id ID \
//!     --secret-env VAR --store redis://127.0.0.1:6379/ --home-account-id UID.UTID \
//!     --scopes "api://x/read" --concurrency 50
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokencache_client::{
    AccountInfo, ClientCredential, ConfidentialClientApplication, TokenSource,
};
use tokencache_store::{PartitionOptions, PartitionedCache};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    authority: String,
    #[arg(long)]
    client_id: String,
    #[arg(long, default_value = "TOKENCACHE_CLIENT_SECRET")]
    secret_env: String,
    #[arg(long)]
    store: String,
    #[arg(long)]
    home_account_id: String,
    #[arg(long)]
    scopes: String,
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
}

async fn run(args: Args) -> Result<(usize, usize, usize), Box<dyn std::error::Error>> {
    let secret = std::env::var(&args.secret_env)?;
    let store = tokencache_store::open(&args.store).await?;
    let app = ConfidentialClientApplication::builder(&args.client_id)
        .authority(&args.authority)?
        .credential(ClientCredential::secret(secret))
        .cache_accessor(Arc::new(PartitionedCache::new(
            store,
            PartitionOptions::default(),
        )))
        .build()?;
    let account = AccountInfo {
        home_account_id: args.home_account_id.clone(),
        environment: app.authority().environment().to_owned(),
        username: String::new(),
        local_account_id: None,
        realm: None,
        authority_type: None,
    };
    let scopes: Vec<String> = args.scopes.split_whitespace().map(str::to_owned).collect();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (app, account, scopes) = (app.clone(), account.clone(), scopes.clone());
            tokio::spawn(async move {
                let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
                app.acquire_token_silent(&refs, &account).await
            })
        })
        .collect();
    let (mut ok, mut from_provider, mut failed) = (0, 0, 0);
    for t in tasks {
        match t.await? {
            Ok(r) => {
                ok += 1;
                if r.token_source == TokenSource::IdentityProvider {
                    from_provider += 1;
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    Ok((ok, from_provider, failed))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok((ok, from_provider, failed)) => {
            println!(r#"{{"ok": {ok}, "identity_provider": {from_provider}, "failed": {failed}}}"#);
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
