//! `get_token` of tokencache-azure's `ClientSecretCredential`, side by side with
//! `azure_identity`'s `ClientSecretCredential` for the same token from the loopback OpenID
//! provider (HTTPS with a test CA): the first call (both ask the provider), a cache hit in the
//! same process, and tokencache's first call in a new process from a cache file another
//! process wrote (azure_identity keeps tokens in memory only, so its new process asks).
//!
//! ```text
//! cargo run --release -p tokencache-bench --bin azure-bench -- [--hits 200000] [--firsts 20] [--rounds 5]
//! ```

#[path = "../idp.rs"]
mod idp;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use idp::{TENANT, make_certs, start_idp};
use tokencache_azure::{ClientCredential, ClientSecretCredential, TokenSource, TokenStore};

const SCOPE: &str = "api://test-api/.default";
const CLIENT: &str = "confidential-app";
const SECRET: &str = "confidential-secret";

struct Options {
    hits: usize,
    firsts: usize,
    rounds: usize,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        hits: 200_000,
        firsts: 20,
        rounds: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match a.as_str() {
            "--hits" => o.hits = value("--hits")?,
            "--firsts" => o.firsts = value("--firsts")?,
            "--rounds" => o.rounds = value("--rounds")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn trusting(ca: &Path) -> Result<reqwest::Client, Box<dyn std::error::Error>> {
    let pem = std::fs::read(ca)?;
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem)?])
        .build()?)
}

fn ours(
    origin: &str,
    ca: &Path,
    store: TokenStore,
) -> Result<ClientSecretCredential, Box<dyn std::error::Error>> {
    let http = tokencache_client::http::ReqwestClient::from(trusting(ca)?);
    Ok(
        ClientSecretCredential::builder(TENANT, CLIENT, ClientCredential::secret(SECRET))
            .authority_host(origin)
            .http_client(Arc::new(http))
            .cache(store)
            .build()?,
    )
}

fn theirs(origin: &str, ca: &Path) -> Result<Arc<dyn TokenCredential>, Box<dyn std::error::Error>> {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = origin.to_owned();
    let options = azure_identity::ClientSecretCredentialOptions {
        client_options: ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            transport: Some(Transport::new(Arc::new(trusting(ca)?))),
            ..ClientOptions::default()
        },
    };
    Ok(azure_identity::ClientSecretCredential::new(
        TENANT,
        CLIENT.to_owned(),
        Secret::new(SECRET),
        Some(options),
    )?)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn best_per_call(
    rounds: usize,
    calls: usize,
    credential: &dyn TokenCredential,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(credential.get_token(&[SCOPE], None).await?);
        }
        best = best.min(t.elapsed() / u32::try_from(calls.max(1))?);
    }
    Ok(best)
}

/// The child process: one credential over `file` (with the default HTTP client, as an
/// application has it), its construction and first `get_token` timed; prints µs, the source,
/// and the µs of the construction.
async fn child(file: &Path, origin: &str, ca: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let _ = ca; // served from the file: the default HTTP client (built on first use) is never built
    let started = Instant::now();
    let credential =
        ClientSecretCredential::builder(TENANT, CLIENT, ClientCredential::secret(SECRET))
            .authority_host(origin)
            .cache(TokenStore::file(file)?)
            .build()?;
    let built = started.elapsed();
    let token = credential.token(&[SCOPE]).await?;
    let elapsed = started.elapsed();
    println!(
        "{} {} {}",
        elapsed.as_micros(),
        token.source.as_str(),
        built.as_micros()
    );
    Ok(())
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let [_, file, origin, ca] = args.as_slice() else {
            return Err("--child FILE ORIGIN CA".into());
        };
        return child(Path::new(file), origin, Path::new(ca)).await;
    }
    let keep = match args.first().map(String::as_str) {
        // `--write FILE`: leave a cache file with a token (for profiling `--child` by hand).
        Some("--write") => Some(PathBuf::from(args.get(1).ok_or("--write FILE")?)),
        _ => None,
    };
    let o = parse_args(if keep.is_some() { &[] } else { &args })?;
    let dir = tempfile::tempdir()?;
    make_certs(dir.path())?;
    let idp = start_idp(dir.path())?;
    let origin = idp
        .issuer
        .trim_end_matches(&format!("/{TENANT}/v2.0"))
        .to_owned();
    let ca = dir.path().join("ca.pem");

    // 1. The first call: a new credential asks the provider (ours also discovers the
    //    authority's metadata first, as MSAL does; azure_identity posts to a fixed path).
    let mut our_first = Vec::new();
    let mut their_first = Vec::new();
    for _ in 0..o.firsts {
        let c = ours(&origin, &ca, TokenStore::memory())?;
        let t = Instant::now();
        let token = c.token(&[SCOPE]).await?;
        our_first.push(t.elapsed());
        assert_eq!(token.source, TokenSource::IdentityProvider);
        let c = theirs(&origin, &ca)?;
        let t = Instant::now();
        c.get_token(&[SCOPE], None).await?;
        their_first.push(t.elapsed());
    }
    let (our_first, their_first) = (median(our_first), median(their_first));

    // 2. A cache hit in the same process.
    let our_credential = ours(&origin, &ca, TokenStore::memory())?;
    let their_credential = theirs(&origin, &ca)?;
    let our_hit = best_per_call(o.rounds, o.hits, &our_credential).await?;
    let their_hit = best_per_call(o.rounds, o.hits, their_credential.as_ref()).await?;

    // 3. A new process's first get_token from a cache file another process wrote.
    let file = dir.path().join("shared.json");
    ours(&origin, &ca, TokenStore::file(&file)?)?
        .token(&[SCOPE])
        .await?;
    if let Some(keep) = keep {
        std::fs::copy(&file, &keep)?;
        println!("{} {}", origin, keep.display());
        return Ok(());
    }
    let exe: PathBuf = std::env::current_exe()?;
    let mut from_file = Vec::new();
    let mut building = Vec::new();
    for _ in 0..o.firsts {
        let out = Command::new(&exe)
            .arg("--child")
            .arg(&file)
            .arg(&origin)
            .arg(&ca)
            .output()?;
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = line.split_whitespace();
        let micros: u64 = parts
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("child: {line:?} {}", String::from_utf8_lossy(&out.stderr)))?;
        if parts.next() != Some("cache") {
            return Err(format!("the child asked the provider: {line:?}").into());
        }
        let built: u64 = parts
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or_default();
        from_file.push(Duration::from_micros(micros));
        building.push(Duration::from_micros(built));
    }
    let from_file = median(from_file);
    let building = median(building);

    println!(
        "get_token, client secret, loopback provider over HTTPS (medians of {} first calls; best of {} rounds of {} hits)",
        o.firsts, o.rounds, o.hits
    );
    println!("| Workload | azure_identity 1.0 | tokencache-azure | Ratio |");
    println!("|---|---:|---:|---:|");
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
    println!(
        "| First call (asks the provider) | {} | {} | {:.2}× |",
        us(their_first),
        us(our_first),
        ratio(their_first, our_first)
    );
    println!(
        "| Cache hit, same process | {} | {} | {:.1}× |",
        us(their_hit),
        us(our_hit),
        ratio(their_hit, our_hit)
    );
    println!(
        "| New process's first call | {} (asks the provider) | {} (from the file) | {:.1}× |",
        us(their_first),
        us(from_file),
        ratio(their_first, from_file)
    );
    println!(
        "(the new process's first call: {} building the credential, {} the get_token)",
        us(building),
        us(from_file.saturating_sub(building))
    );
    println!(
        "targets: hit under 5 µs: {}; new process from the file ≥ 20× faster than asking the provider (ours: {:.1}×): {}",
        if our_hit < Duration::from_micros(5) {
            "met"
        } else {
            "NOT met"
        },
        ratio(our_first, from_file),
        if ratio(our_first, from_file) >= 20.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(idp);
    Ok(())
}
