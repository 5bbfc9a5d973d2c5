//! The real msal-extensions 1.3.1 (with and without portalocker) sharing one cache file with
//! tokencache: each waits for the other's lock, the file never corrupts, and both read what the
//! other wrote.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{accounts_in, python, record_responses, repo_root, user_event};
use tokencache_file::{FileOptions, FileStore};

fn peer() -> Option<Command> {
    let mut cmd = Command::new(python()?);
    cmd.arg(repo_root().join("tests/interop/ext_peer.py"));
    Some(cmd)
}

fn python_accounts(path: &std::path::Path) -> Vec<String> {
    let out = peer()
        .expect("python")
        .args(["accounts", path.to_str().expect("path")])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('"').to_owned())
        .collect()
}

#[test]
fn rust_waits_while_python_holds_the_lock_in_both_variants() {
    if python().is_none() {
        return;
    }
    for variant in ["portalocker", "filelock"] {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cache.json");
        let mut holder = peer()
            .expect("python")
            .args(["hold", path.to_str().expect("path"), "1.5", variant])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "locked", "{variant}");
        let start = Instant::now();
        FileStore::open(&path, FileOptions::default())
            .expect("open")
            .add(&user_event("rust"))
            .expect("add after Python releases");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1000),
            "{variant}: Rust did not wait for Python's lock ({waited:?})"
        );
        assert!(holder.wait().expect("holder").success());
        assert_eq!(
            python_accounts(&path),
            ["rust.t"],
            "{variant}: Python reads what Rust wrote"
        );
    }
}

/// What a `write` peer reported: its own count of acknowledged saves and of errors.
struct PeerReport {
    saved: usize,
    errors: usize,
}

/// Waits for a `write` peer, fails the test unless it exited 0 and reported its counts, and
/// returns them. Its standard error is shown on failure.
fn peer_report(child: std::process::Child, what: &str) -> PeerReport {
    let out = child.wait_with_output().expect("python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: the peer failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("{what}: no report from the peer: {stdout} {stderr}"));
    let json = tokencache::json::JsonObject::parse(summary).expect("the peer's JSON report");
    let count = |name: &str| {
        json.get(name)
            .and_then(tokencache::json::JsonValue::as_int_lenient)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or_else(|| panic!("{what}: no {name:?} in the peer's report {summary}"))
    };
    PeerReport {
        saved: count("saved"),
        errors: count("errors"),
    }
}

#[test]
fn python_waits_while_rust_holds_the_lock() {
    if python().is_none() {
        return;
    }
    for variant in ["portalocker", "filelock"] {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cache.json");
        let lock = tokencache_file::CacheLock::acquire(&path, Default::default()).expect("lock");
        let mut child = peer()
            .expect("python")
            .args(["write", path.to_str().expect("path"), "1", "py", variant])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The peer says when it starts its save; from then on it is waiting for our lock.
        let (lines, said) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let first = said
            .recv_timeout(Duration::from_secs(60))
            .expect("the peer starts");
        assert_eq!(first, "started", "{variant}");
        // While we hold the lock for a second, it finishes nothing and writes nothing.
        let meanwhile = said.recv_timeout(Duration::from_secs(1));
        assert!(
            meanwhile.is_err(),
            "{variant}: Python finished while Rust held the lock: {meanwhile:?}"
        );
        assert!(
            !path.exists(),
            "{variant}: Python wrote while Rust held the lock"
        );
        drop(lock);
        // portalocker gives up after 10 s, the filelock fallback after 5 s; we held about 1 s.
        let report = said
            .recv_timeout(Duration::from_secs(60))
            .expect("the peer reports after the lock is released");
        reader.join().expect("reader");
        let status = child.wait().expect("python");
        assert!(status.success(), "{variant}: the peer failed");
        assert!(
            report.contains("\"saved\": 1") && report.contains("\"errors\": 0"),
            "{variant}: {report}"
        );
        let store = FileStore::open(&path, FileOptions::default()).expect("open");
        store.reload().expect("Rust reads what Python wrote");
        assert_eq!(store.cache().all_accounts().len(), 1);
    }
}

#[test]
fn python_and_rust_writing_at_once_never_corrupt_the_file() {
    if python().is_none() {
        return;
    }
    let count = 30;
    for variant in ["portalocker", "filelock"] {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cache.json");
        let p = path.to_str().expect("path");
        let py: Vec<_> = (0..2)
            .map(|i| {
                peer()
                    .expect("python")
                    .args(["write", p, &count.to_string(), &format!("py{i}"), variant])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn python")
            })
            .collect();
        let rs: Vec<_> = (0..2)
            .map(|i| {
                Command::new(record_responses())
                    .args([
                        "--file",
                        p,
                        "--count",
                        &count.to_string(),
                        "--prefix",
                        &format!("rs{i}"),
                    ])
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn rust")
            })
            .collect();
        let (mut py_saved, mut py_errors) = (0, 0);
        for child in py {
            let report = peer_report(child, variant);
            py_saved += report.saved;
            py_errors += report.errors;
        }
        for child in rs {
            let out = child.wait_with_output().expect("rust");
            assert!(
                out.status.success(),
                "a Rust writer failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let mut ours = accounts_in(&text); // parses: never corrupt
        ours.sort();
        let theirs = python_accounts(&path);
        assert_eq!(
            ours, theirs,
            "{variant}: Python and Rust see the same accounts"
        );
        let rust_survived = ours.iter().filter(|a| a.starts_with("rs")).count();
        let py_survived = ours.iter().filter(|a| a.starts_with("py")).count();
        eprintln!(
            "msal-extensions ({variant}) + tokencache, 2+2 processes x {count}: tokencache acknowledged {} and kept {rust_survived}; msal-extensions acknowledged {py_saved} (errors {py_errors}) and kept {py_survived}, so lost {}",
            2 * count,
            py_saved.saturating_sub(py_survived)
        );
        // Our promise: every write tokencache acknowledged (each writer exited 0, so all of
        // them) is in the file. msal-extensions' losses are its own, reported above.
        assert_eq!(
            rust_survived,
            2 * count,
            "{variant}: a write tokencache acknowledged is missing"
        );
        assert_eq!(
            py_saved + py_errors,
            2 * count,
            "{variant}: the peers accounted for every save"
        );
    }
}
