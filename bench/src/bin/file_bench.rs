//! Desktop persistence, side by side: msal-extensions' `PersistedTokenCache` (MSAL Python) and
//! the tokencache file store, P processes each recording the same token responses into one
//! cache file pre-filled with 1,000 accounts. Prints throughput, lost writes and p50/p99 save
//! latency for both, and the ratio.
//!
//! ```text
//! cargo build --release -p tokencache-file --examples
//! cargo run --release -p tokencache-bench --bin file-bench -- --procs 1,4,8,16 --count 200
//! ```
//!
//! `--no-group-commit` runs the tokencache writers with `FileOptions::group_commit` off.

#[path = "../workload.rs"]
#[allow(dead_code)]
mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tokencache::TokenCache;

struct Run {
    acknowledged: usize,
    errors: usize,
    lost: usize,
    per_s: f64,
    kept_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[u64], p: usize) -> f64 {
    sorted
        .get(sorted.len().saturating_sub(1) * p / 100)
        .copied()
        .unwrap_or(0) as f64
        / 1000.0
}

fn run(file: &Path, procs: usize, count: usize, spawn: &dyn Fn(usize) -> Command) -> Run {
    let start = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|p| {
            spawn(p)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn writer")
        })
        .collect();
    let mut latencies = Vec::new();
    let mut acknowledged = 0;
    let mut errors = 0;
    let mut saved_ids = Vec::new();
    for (p, mut child) in children.into_iter().enumerate() {
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ok = 0;
        for line in out.lines().map_while(Result::ok) {
            let mut parts = line.split(' ');
            if parts.next() == Some("saved") {
                let i = parts.next().unwrap_or_default().to_owned();
                let micros: u64 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
                latencies.push(micros);
                saved_ids.push(format!("b{p}-{i}.tenant"));
                ok += 1;
            }
        }
        child.wait().expect("wait");
        acknowledged += ok;
        errors += count - ok;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let text = std::fs::read_to_string(file).expect("final file");
    let cache = TokenCache::from_json(&text).expect("the final file parses");
    let present: std::collections::HashSet<String> = cache
        .all_accounts()
        .iter()
        .filter_map(|a| a.home_account_id().map(str::to_owned))
        .collect();
    let lost = saved_ids.iter().filter(|id| !present.contains(*id)).count();
    Run {
        acknowledged,
        errors,
        lost,
        per_s: acknowledged as f64 / elapsed,
        kept_per_s: (acknowledged - lost) as f64 / elapsed,
        p50_ms: percentile(&latencies, 50),
        p99_ms: percentile(&latencies, 99),
    }
}

fn main() {
    let mut procs = vec![1, 4, 8, 16];
    let mut count = 200usize;
    let mut prefill = 1000usize;
    let mut python =
        std::env::var("TOKENCACHE_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let mut variant = String::from("portalocker");
    let mut skip_python = false;
    let mut group_commit = true;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--procs" => {
                procs = value()
                    .split(',')
                    .map(|p| p.trim().parse().expect("procs"))
                    .collect()
            }
            "--count" => count = value().parse().expect("count"),
            "--prefill" => prefill = value().parse().expect("prefill"),
            "--python" => python = value(),
            "--variant" => variant = value(),
            "--skip-python" => skip_python = true,
            "--no-group-commit" => group_commit = false,
            other => panic!("unknown flag {other}"),
        }
    }
    let exe = std::env::current_exe().expect("exe");
    let record = exe
        .parent()
        .expect("dir")
        .join("examples")
        .join("record_responses");
    assert!(
        record.exists(),
        "build it first: cargo build --release -p tokencache-file --examples"
    );
    let peer: PathBuf =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/ext_peer.py");

    let seed = TokenCache::new();
    for i in 0..prefill {
        seed.add_at(&workload::user_event(i, 200, 100), workload::NOW)
            .expect("prefill");
    }
    let seed = seed.serialize();
    let dir = std::env::temp_dir().join(format!("tokencache-file-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    println!(
        "Desktop persistence: msal-extensions 1.3.1 ({variant}) vs tokencache-file (group commit {}), P processes x {count} token responses, one file pre-filled with {prefill} accounts",
        if group_commit { "on" } else { "off" }
    );
    println!(
        "  {:>3}  {:>9} {:>7} {:>6} {:>6} {:>8} {:>8}   {:>9} {:>7} {:>6} {:>6} {:>8} {:>8}   {:>8}",
        "P",
        "py acked/s",
        "kept/s",
        "lost",
        "errors",
        "p50 ms",
        "p99 ms",
        "tc acked/s",
        "kept/s",
        "lost",
        "errors",
        "p50 ms",
        "p99 ms",
        "kept ratio"
    );
    for &p in &procs {
        let py_file = dir.join(format!("py-{p}.json"));
        std::fs::write(&py_file, &seed).expect("seed");
        let py_count = if skip_python { 0 } else { count };
        let py = run(&py_file, if skip_python { 0 } else { p }, py_count, &|i| {
            let mut c = Command::new(&python);
            c.arg(&peer).args([
                "write",
                py_file.to_str().expect("path"),
                &count.to_string(),
                &format!("b{i}"),
                &variant,
                "report",
            ]);
            c
        });
        let rs_file = dir.join(format!("rs-{p}.json"));
        std::fs::write(&rs_file, &seed).expect("seed");
        let rs = run(&rs_file, p, count, &|i| {
            let mut c = Command::new(&record);
            c.args([
                "--file",
                rs_file.to_str().expect("path"),
                "--count",
                &count.to_string(),
                "--prefix",
                &format!("b{i}"),
                "--report",
            ]);
            if !group_commit {
                c.arg("--no-group-commit");
            }
            c
        });
        println!(
            "  {:>3}  {:>9.1} {:>7.1} {:>6} {:>6} {:>8.1} {:>8.1}   {:>9.1} {:>7.1} {:>6} {:>6} {:>8.1} {:>8.1}   {:>7.1}x",
            p,
            py.per_s,
            py.kept_per_s,
            py.lost,
            py.errors,
            py.p50_ms,
            py.p99_ms,
            rs.per_s,
            rs.kept_per_s,
            rs.lost,
            rs.errors,
            rs.p50_ms,
            rs.p99_ms,
            rs.kept_per_s / py.kept_per_s
        );
        let _ = (py.acknowledged, rs.acknowledged);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\n(acked = saves that returned success; lost = acked saves whose account is missing from the final file; kept/s = (acked - lost) / wall time; errors = saves that failed)"
    );
}
