//! `tokencache inspect` on a large cache: the table against `--json`, which prints the same
//! entries without grouping them by account. The table must stay within 2x of `--json`; it
//! was quadratic in the number of accounts before it grouped tokens by account in one pass.
//!
//! ```text
//! cargo build --release -p tokencache-cli
//! cargo run --release -p tokencache-bench --bin inspect-bench -- --accounts 10000
//! ```

#[path = "../workload.rs"]
#[allow(dead_code)]
mod workload;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokencache::TokenCache;

/// The `tokencache` binary built beside this one (`target/release/tokencache`).
fn cli() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let path = exe.parent().expect("dir").join("tokencache");
    assert!(
        path.exists(),
        "{} is not built: cargo build --release -p tokencache-cli",
        path.display()
    );
    path
}

/// The best of `rounds` runs of `tokencache inspect [extra] FILE`.
fn best(file: &std::path::Path, extra: &[&str], rounds: usize) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(cli())
                .arg("inspect")
                .args(extra)
                .arg(file)
                .stdout(Stdio::null())
                .status()
                .expect("run tokencache");
            assert!(status.success(), "tokencache inspect failed");
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let mut accounts = 10_000;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--accounts" => accounts = value(),
            "--rounds" => rounds = value(),
            other => panic!("unknown argument {other} (--accounts N, --rounds N)"),
        }
    }
    let cache = TokenCache::new();
    for event in workload::events(accounts, 0, 1500, 800) {
        cache.add(&event).expect("add");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("cache.json");
    std::fs::write(&file, cache.serialize()).expect("write");
    let table = best(&file, &[], rounds);
    let json = best(&file, &["--json"], rounds);
    let ratio = table.as_secs_f64() / json.as_secs_f64().max(1e-9);
    println!(
        "inspect, {accounts} accounts (best of {rounds}): table {:.3} s, --json {:.3} s, table/json {ratio:.2}x (target <= 2x: {})",
        table.as_secs_f64(),
        json.as_secs_f64(),
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );
}
