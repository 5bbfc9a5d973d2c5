//! Many concurrent saves to one user's partition: each records a token response for a scope of
//! its own, so every save adds one access token. Several copies of this program sharing a store
//! must together leave one access token per save (the multi-process no-lost-update test);
//! prints a JSON line with the saves made and the compare-and-set conflicts met.
//!
//! ```text
//! cargo run -p tokencache-store --example concurrent_writes -- --store sqlite://tokens.db \
//!     --writer 1 --saves 40 --concurrency 8 [--start-at-ms UNIX_MS] [--max-attempts 32]
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use clap::Parser;
use tokencache::{PartitionKey, TokenCache, TokenEvent};
use tokencache_store::{PartitionOptions, PartitionedCache};

#[derive(Parser)]
struct Args {
    /// The store every copy shares.
    #[arg(long)]
    store: String,
    /// This copy's number: its scopes are `api://x/w{writer}-{n}`.
    #[arg(long)]
    writer: usize,
    /// Saves this copy makes.
    #[arg(long, default_value_t = 40)]
    saves: usize,
    /// Saves in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Start at this time (Unix milliseconds), so that copies started one after the other
    /// write at the same time.
    #[arg(long)]
    start_at_ms: Option<u64>,
    /// Compare-and-set attempts per save before it fails (the library's default is 32).
    #[arg(long, default_value_t = 32)]
    max_attempts: u32,
}

/// The user every copy writes for.
const USER: &str = "shared-user";

/// A token response for `USER` granting `scope`.
fn event(scope: &str) -> Result<TokenEvent, tokencache::Error> {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let response = format!(
        r#"{{"access_token":"AT for {scope}","expires_in":3600,"refresh_token":"RT","id_token":"{}.{}.sig","client_info":"{}","token_type":"Bearer"}}"#,
        b64(r#"{"alg":"none"}"#),
        b64(&format!(
            r#"{{"sub":"{USER}","oid":"{USER}","tid":"t","preferred_username":"{USER}@example.test"}}"#
        )),
        b64(&format!(r#"{{"uid":"{USER}","utid":"t"}}"#))
    );
    TokenEvent::new("web-app", [scope])
        .token_endpoint("https://login.example.test/t/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&response)
}

async fn run(args: Args) -> Result<(usize, u64), Box<dyn std::error::Error>> {
    let store = tokencache_store::open(&args.store).await?;
    let options = PartitionOptions {
        max_attempts: args.max_attempts,
        ..PartitionOptions::default()
    };
    let cache = Arc::new(PartitionedCache::new(store, options));
    if let Some(at) = args.start_at_ms {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let wait = std::time::Duration::from_millis(at).saturating_sub(now);
        tokio::time::sleep(wait).await;
    }
    let key = PartitionKey::for_account(&format!("{USER}.t"));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (cache, key, next) = (cache.clone(), key.clone(), next.clone());
            let (writer, saves) = (args.writer, args.saves);
            tokio::spawn(async move {
                let mut saved = 0;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= saves {
                        return Ok::<usize, String>(saved);
                    }
                    let ev = event(&format!("api://x/w{writer}-{n}")).map_err(|e| e.to_string())?;
                    cache
                        .update_partition(&key, &move |c: &TokenCache| c.add(&ev))
                        .await
                        .map_err(|e| e.to_string())?;
                    saved += 1;
                }
            })
        })
        .collect();
    let mut saved = 0;
    for w in workers {
        saved += w.await??;
    }
    Ok((saved, cache.metrics().conflicts))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok((saved, conflicts)) => {
            println!(r#"{{"saved": {saved}, "conflicts": {conflicts}}}"#);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
