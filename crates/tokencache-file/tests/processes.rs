//! Many processes on one cache file: nothing lost, every intermediate read parses, and kill -9
//! at any moment leaves a file that parses and holds every save that returned.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{accounts_in, record_responses};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn concurrent_processes_lose_no_write_and_readers_never_see_a_torn_file() {
    // The full run (16 x 200) is in the benchmark; CI runs this size by default.
    let procs = env_usize("TOKENCACHE_CONTENTION_PROCS", 8);
    let count = env_usize("TOKENCACHE_CONTENTION_COUNT", 50);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (path, done, reads) = (path.clone(), done.clone(), reads.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    tokencache::TokenCache::from_json(&text)
                        .expect("every intermediate read parses");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let children: Vec<_> = (0..procs)
        .map(|p| {
            Command::new(record_responses())
                .args([
                    "--file",
                    path.to_str().expect("path"),
                    "--count",
                    &count.to_string(),
                    "--prefix",
                    &format!("p{p}"),
                ])
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn writer")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("writer");
        assert!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    done.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    let accounts = accounts_in(&std::fs::read_to_string(&path).expect("read"));
    assert_eq!(
        accounts.len(),
        procs * count,
        "all {} responses present",
        procs * count
    );
    assert!(
        reads.load(Ordering::Relaxed) > 0,
        "the reader read while writers wrote"
    );
}

#[test]
fn kill_dash_nine_never_corrupts_and_never_loses_an_acknowledged_save() {
    let kills = env_usize("TOKENCACHE_CRASH_KILLS", 100);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..kills {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(5 + (seed >> 33) % 60);
        let mut child = Command::new(record_responses())
            .args([
                "--file",
                path.to_str().expect("path"),
                "--count",
                "100000",
                "--prefix",
                &format!("r{round}"),
                "--report",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(delay);
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        for line in lines.join().expect("lines") {
            if let Some(i) = line
                .strip_prefix("saved ")
                .and_then(|rest| rest.split(' ').next())
            {
                acknowledged.push(format!("r{round}-{i}.tenant"));
            }
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            let present = accounts_in(&text);
            let present: std::collections::HashSet<&String> = present.iter().collect();
            for a in &acknowledged {
                assert!(
                    present.contains(a),
                    "round {round}: acknowledged save {a} lost"
                );
            }
        }
    }
    assert!(
        acknowledged.len() >= kills / 4,
        "writers made progress between kills ({})",
        acknowledged.len()
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    // A temporary file can survive a kill between create and rename; it is never the cache.
    assert!(leftovers.len() <= kills, "{leftovers:?}");
}
