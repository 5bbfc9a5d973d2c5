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

/// A writer recording responses for accounts `<prefix>-<i>` until it is killed, reporting
/// each save that returned.
struct Writer {
    prefix: String,
    child: std::process::Child,
    lines: std::thread::JoinHandle<Vec<String>>,
    saves: Arc<AtomicUsize>,
}

impl Writer {
    fn spawn(path: &std::path::Path, prefix: String) -> Writer {
        let mut child = Command::new(record_responses())
            .args([
                "--file",
                path.to_str().expect("path"),
                "--count",
                "100000",
                "--prefix",
                &prefix,
                "--report",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let saves = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&saves);
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .inspect(|line| {
                    if line.starts_with("saved ") {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .collect::<Vec<_>>()
        });
        Writer {
            prefix,
            child,
            lines,
            saves,
        }
    }

    /// Waits until the writer has acknowledged a save, so that a round is sure to make
    /// progress however slow the machine is. A writer that never acknowledges one within a
    /// minute is a failure, not slowness.
    fn await_first_save(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.saves.load(Ordering::SeqCst) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no save acknowledged within 60 s",
                self.prefix
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `kill -9`, then the accounts of the saves it acknowledged before dying.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
        self.lines
            .join()
            .expect("lines")
            .iter()
            .filter_map(|line| line.strip_prefix("saved ")?.split(' ').next())
            .map(|i| format!("{}-{i}.tenant", self.prefix))
            .collect()
    }
}

/// Records one response for `<prefix>-0` in a process of its own, as the next writer after
/// the dead would.
fn write_one(path: &std::path::Path, prefix: &str) {
    let status = Command::new(record_responses())
        .args(["--file", path.to_str().expect("path"), "--count", "1"])
        .args(["--prefix", prefix])
        .status()
        .expect("the next writer");
    assert!(status.success());
}

/// Asserts that every acknowledged save is in the cache file.
fn assert_all_present(path: &std::path::Path, acknowledged: &[String], round: usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        assert!(acknowledged.is_empty(), "round {round}: the cache is gone");
        return;
    };
    let present = accounts_in(&text);
    let present: std::collections::HashSet<&String> = present.iter().collect();
    for a in acknowledged {
        assert!(
            present.contains(a),
            "round {round}: acknowledged save {a} lost"
        );
    }
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
                    "--report",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn writer")
        })
        .collect();
    let (mut handed_over, mut written_for_waiters) = (0, 0);
    for child in children {
        let out = child.wait_with_output().expect("writer");
        assert!(
            out.status.success(),
            "a writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = tokencache::json::JsonObject::parse(stdout.lines().last().expect("summary"))
            .expect("summary JSON");
        let count = |name: &str| {
            summary
                .get(name)
                .and_then(tokencache::json::JsonValue::as_int_lenient)
                .expect(name)
        };
        handed_over += count("handed_over");
        written_for_waiters += count("written_for_waiters");
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
    // Group commit happened, and every handed-over response was written by some process.
    assert!(
        procs < 2 || handed_over > 0,
        "with {procs} writers some responses were handed over"
    );
    assert!(
        written_for_waiters >= handed_over,
        "{written_for_waiters} written for waiters, {handed_over} handed over"
    );
    assert_eq!(
        pending_records(&path),
        Vec::<String>::new(),
        "no response is left waiting"
    );
}

/// Waiting or claimed hand-over records of the cache at `path`.
fn pending_records(path: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(format!("{}.pending", path.display())).map_or(Vec::new(), |entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".rec") || n.ends_with(".claimed"))
            .collect()
    })
}

#[test]
fn kill_dash_nine_among_contending_writers_never_loses_an_acknowledged_save() {
    // Several writers hand responses to each other; each round kills them all at a random
    // moment (a holder mid-write, a waiter mid-hand-over). Every save that returned is in the
    // file; responses left waiting by the dead are written by the next holder.
    let rounds = env_usize("TOKENCACHE_CRASH_KILLS", 100) / 4;
    let writers = 4;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("cache.json");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |modulo: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % modulo
    };
    for round in 0..rounds {
        let mut children: Vec<Writer> = (0..writers)
            .map(|w| Writer::spawn(&path, format!("k{round}w{w}")))
            .collect();
        // One writer of the round (chosen by the round) acknowledges a save before the kills
        // start, so progress does not depend on how fast this machine starts processes.
        children[round % writers].await_first_save();
        std::thread::sleep(Duration::from_millis(next(80)));
        // Kill them one after another, in an order and with gaps that vary by round.
        while !children.is_empty() {
            let writer = children.remove(next(children.len() as u64) as usize);
            acknowledged.extend(writer.kill());
            std::thread::sleep(Duration::from_micros(next(3000)));
        }
        assert_all_present(&path, &acknowledged, round);
    }
    assert!(
        acknowledged.len() >= rounds,
        "writers made progress ({})",
        acknowledged.len()
    );
    // The next writer writes whatever the dead left waiting.
    write_one(&path, "last");
    assert_eq!(pending_records(&path), Vec::<String>::new());
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
        let writer = Writer::spawn(&path, format!("r{round}"));
        // Every fourth round waits for a first save; the others die at a random moment,
        // possibly before their first one.
        if round % 4 == 0 {
            writer.await_first_save();
        }
        std::thread::sleep(delay);
        acknowledged.extend(writer.kill());
        assert_all_present(&path, &acknowledged, round);
    }
    assert!(
        acknowledged.len() >= kills / 4,
        "writers made progress between kills ({})",
        acknowledged.len()
    );
    // A temporary file can survive a kill between create and rename; the next writer removes
    // every one.
    write_one(&path, "after");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "left by killed writers");
}
