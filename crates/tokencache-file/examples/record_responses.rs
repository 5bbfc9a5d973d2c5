//! Records K synthetic user token responses into a cache file through the store, one save per
//! response, and exits 0 only if every save succeeded. Multi-process tests, the benchmark and
//! outside scripts drive it.
//!
//! ```text
//! cargo run --release -p tokencache-file --example record_responses -- --file PATH --count K --prefix P
//!     [--key-file KEYFILE | --keyring NAME | --dpapi] [--report] [--no-group-commit]
//! ```
//!
//! Each response is auth-code shaped (`client_info`, an ID token, access and refresh tokens)
//! for a distinct account whose uid is `P-<i>`. With `--report`, prints `saved <i> <micros>`
//! after each save returns (the crash tests read it) and a JSON summary at the end (with the
//! group-commit counts of `FileStore::group_commit_stats`). `--no-group-commit` turns group
//! commit off (`FileOptions::group_commit`), to compare. `--dpapi` seals the file with Windows
//! DPAPI (`FileOptions::windows_data_protection`; Windows only).

use std::process::ExitCode;
use std::time::Instant;

use base64::Engine;
use tokencache::TokenEvent;
use tokencache_file::{FileOptions, FileStore, KeySource};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn event(prefix: &str, i: usize) -> TokenEvent {
    let uid = format!("{prefix}-{i}");
    let claims = format!(
        r#"{{"aud":"04b07795-8ddb-461a-bbee-02f9e1bf7b46","iss":"https://login.microsoftonline.com/tenant/v2.0","oid":"{uid}","sub":"sub-{uid}","preferred_username":"{uid}@contoso.com","tid":"tenant","name":"User {uid}"}}"#
    );
    let id_token = format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&claims)
    );
    let response = format!(
        r#"{{"token_type":"Bearer","scope":"User.Read openid profile","expires_in":3600,"ext_expires_in":3600,"access_token":"at-{uid}","refresh_token":"rt-{uid}","id_token":"{id_token}","client_info":"{}"}}"#,
        b64(&format!(r#"{{"uid":"{uid}","utid":"tenant"}}"#))
    );
    TokenEvent::new(
        "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
        ["User.Read", "openid", "profile"],
    )
    .token_endpoint("https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
    .environment("login.microsoftonline.com")
    .grant_type("authorization_code")
    .response_json(&response)
    .unwrap_or_default()
}

fn main() -> ExitCode {
    let mut file = None;
    let mut count = 1usize;
    let mut prefix = String::from("user");
    let mut key_file = None;
    let mut keyring = None;
    let mut report = false;
    let mut group_commit = true;
    let mut dpapi = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--file" => file = args.next(),
            "--count" => count = args.next().and_then(|c| c.parse().ok()).unwrap_or(0),
            "--prefix" => prefix = args.next().unwrap_or_default(),
            "--key-file" => key_file = args.next(),
            "--keyring" => keyring = args.next(),
            "--report" => report = true,
            "--no-group-commit" => group_commit = false,
            "--dpapi" => dpapi = true,
            other => {
                eprintln!("record_responses: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(file) = file else {
        eprintln!(
            "usage: record_responses --file PATH --count K --prefix P [--key-file KEY | --keyring NAME | --dpapi] [--report] [--no-group-commit]"
        );
        return ExitCode::from(2);
    };
    let options = FileOptions {
        encryption: match (key_file, keyring) {
            (Some(k), _) => Some(KeySource::File(k.into())),
            (None, Some(name)) => Some(KeySource::Keyring { name }),
            (None, None) => None,
        },
        group_commit,
        windows_data_protection: dpapi,
        ..FileOptions::default()
    };
    let store = match FileStore::open(&file, options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("record_responses: {e}");
            return ExitCode::from(1);
        }
    };
    let mut latencies = Vec::with_capacity(count);
    let mut failures = 0;
    for i in 0..count {
        let event = event(&prefix, i);
        let t = Instant::now();
        match store.add(&event) {
            Ok(()) => {
                let micros = t.elapsed().as_micros();
                latencies.push(micros);
                if report {
                    println!("saved {i} {micros}");
                }
            }
            Err(e) => {
                failures += 1;
                eprintln!("record_responses: save {i} failed: {e}");
            }
        }
    }
    if report {
        latencies.sort_unstable();
        let pct = |p: usize| {
            latencies
                .get(latencies.len().saturating_sub(1) * p / 100)
                .copied()
                .unwrap_or(0)
        };
        let stats = store.group_commit_stats();
        println!(
            r#"{{"saved": {}, "failed": {failures}, "p50_us": {}, "p99_us": {}, "handed_over": {}, "written_for_waiters": {}}}"#,
            latencies.len(),
            pct(50),
            pct(99),
            stats.handed_over,
            stats.written_for_waiters
        );
    }
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
