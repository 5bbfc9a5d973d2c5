//! Silent acquisition through the client, side by side with MSAL Python's
//! `acquire_token_silent` on the same cache: cache hits, and forced refreshes through the
//! loopback OpenID provider (served over HTTPS with a test CA, because MSAL requires https).
//! Also the raw core lookup, for the "client within 2x of the core" target.
//!
//! ```text
//! cargo run --release -p tokencache-bench --bin client-bench -- [--users 1000] [--hits 20000]
//!     [--refreshes 20] [--skip-python]
//! ```

#[path = "../workload.rs"]
#[allow(dead_code)]
mod workload;

#[path = "../idp.rs"]
mod idp;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokencache::json::JsonObject;
use tokencache::{AccessTokenQuery, Clock, SystemClock, TokenCache};
use tokencache_client::http::ReqwestClient;
use tokencache_client::{PublicClientApplication, SilentOptions, TokenSource};

const API: &str = "api://test-api/read";
use idp::{TENANT, make_certs, root, start_idp};

struct Options {
    users: usize,
    hits: usize,
    refreshes: usize,
    rounds: usize,
    skip_python: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        users: 1000,
        hits: 20_000,
        refreshes: 20,
        rounds: 5,
        skip_python: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--users" => o.users = value("--users")?,
            "--hits" => o.hits = value("--hits")?,
            "--refreshes" => o.refreshes = value("--refreshes")?,
            "--rounds" => o.rounds = value("--rounds")?,
            "--skip-python" => o.skip_python = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn best_per_call(rounds: usize, calls: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed() / calls as u32
        })
        .min()
        .unwrap_or_default()
}

fn per_s(d: Duration) -> f64 {
    1.0 / d.as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    let dir = tempfile::tempdir()?;
    make_certs(dir.path())?;
    let idp = start_idp(dir.path())?;
    let origin = idp
        .issuer
        .trim_end_matches(&format!("/{TENANT}/v2.0"))
        .to_owned();
    let authority = format!("{origin}/{TENANT}");
    let ca = std::fs::read(dir.path().join("ca.pem"))?;
    let cert = reqwest::Certificate::from_pem(&ca)?;
    let browser = reqwest::Client::builder()
        .tls_certs_only([cert.clone()])
        .build()?;

    // The same cache for both sides: N other users, then one signed-in user.
    let now = SystemClock.now();
    let cache = Arc::new(TokenCache::new());
    for i in 0..o.users {
        cache.add_at(&workload::user_event(i, 1500, 800), now)?;
    }
    let http = ReqwestClient::builder(Duration::from_secs(30))
        .tls_certs_only([cert])
        .build()?;
    let app = PublicClientApplication::builder("public-app")
        .authority(&authority)?
        .cache(cache.clone())
        .http_client(Arc::new(ReqwestClient::from(http)))
        .build()?;
    let flow = app.initiate_device_flow(&[API]).await?;
    browser
        .get(format!("{}/__test/device", idp.issuer))
        .query(&[
            ("user_code", flow.user_code.as_str()),
            ("login_hint", "alice"),
        ])
        .send()
        .await?;
    let account = app
        .acquire_token_by_device_flow(&flow)
        .await?
        .account
        .ok_or("no account")?;

    // Cache hits through the client, and the raw core lookup underneath, in alternating
    // rounds (best round of each), so both see the same machine state.
    let envs = ["127.0.0.1"];
    let scopes = [API];
    let query = AccessTokenQuery::new("public-app", TENANT, &scopes)
        .account(&account.home_account_id)
        .environments(&envs);
    let (mut t_client, mut t_core) = (Duration::MAX, Duration::MAX);
    for _ in 0..o.rounds {
        let t = Instant::now();
        for _ in 0..o.hits {
            let r = app.acquire_token_silent(&[API], &account).await?;
            if r.token_source != TokenSource::Cache {
                return Err("a silent call missed the cache".into());
            }
        }
        t_client = t_client.min(t.elapsed() / o.hits as u32);
        t_core = t_core.min(best_per_call(1, o.hits, || {
            assert!(cache.find_access_token(&query).is_some());
        }));
    }
    // Forced refreshes through the provider (each rotates the refresh token).
    let t = Instant::now();
    for _ in 0..o.refreshes {
        let r = app
            .acquire_token_silent_with(&[API], &account, &SilentOptions::default().force_refresh())
            .await?;
        if r.token_source != TokenSource::IdentityProvider {
            return Err("a forced refresh came from the cache".into());
        }
    }
    let t_refresh = t.elapsed() / o.refreshes.max(1) as u32;

    println!(
        "client-bench: {} other users in the cache; best of {} rounds",
        o.users, o.rounds
    );
    println!(
        "  core lookup (find_access_token)   {:>10.2} µs/call",
        t_core.as_secs_f64() * 1e6
    );
    println!(
        "  client cache hit                  {:>10.2} µs/call  ({:.0}/s; {:.2}x the core lookup, target <= 2x)",
        t_client.as_secs_f64() * 1e6,
        per_s(t_client),
        t_client.as_secs_f64() / t_core.as_secs_f64()
    );
    println!(
        "  client refresh via the provider   {:>10.2} ms/call  ({:.0}/s)",
        t_refresh.as_secs_f64() * 1e3,
        per_s(t_refresh)
    );
    if o.skip_python {
        return Ok(());
    }

    let cache_file = dir.path().join("cache.json");
    std::fs::write(&cache_file, cache.serialize())?;
    let python = std::env::var_os("TOKENCACHE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let out = Command::new(&python)
        .arg(root().join("bench/client_bench.py"))
        .args([&authority, "public-app", API])
        .arg(&cache_file)
        .args([
            o.hits.to_string(),
            o.refreshes.to_string(),
            o.rounds.to_string(),
        ])
        .arg(&account.home_account_id)
        .env("REQUESTS_CA_BUNDLE", dir.path().join("ca.pem"))
        .output()?;
    if !out.status.success() {
        return Err(format!("MSAL Python: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let py = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim())?;
    let num = |k: &str| {
        py.get(k)
            .and_then(|v| match v {
                tokencache::json::JsonValue::Number(n) => n.parse::<f64>().ok(),
                _ => None,
            })
            .unwrap_or(f64::NAN)
    };
    let (py_hit, py_refresh) = (num("hit_seconds"), num("refresh_seconds"));
    println!(
        "  MSAL Python cache hit             {:>10.2} µs/call  ({:.0}/s)  -> tokencache {:.1}x faster",
        py_hit * 1e6,
        1.0 / py_hit,
        py_hit / t_client.as_secs_f64()
    );
    println!(
        "  MSAL Python refresh               {:>10.2} ms/call  ({:.0}/s)  -> tokencache {:.2}x",
        py_refresh * 1e3,
        1.0 / py_refresh,
        py_refresh / t_refresh.as_secs_f64()
    );
    Ok(())
}
