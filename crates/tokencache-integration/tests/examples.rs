//! The examples as a user runs them, against the loopback provider.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Idp;
use tokencache::json::JsonObject;

/// `cargo test` builds the examples next to the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} is not built", path.display());
    path
}

#[tokio::test]
async fn device_code_example_signs_in_then_is_silent_on_the_second_run() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.json");
    let run = || {
        Command::new(example("device_code"))
            .args(["--authority", &idp.authority(), "--client-id", "public-app"])
            .args(["--scopes", "api://test-api/read"])
            .arg("--cache")
            .arg(&cache)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = run();
    let mut stderr = BufReader::new(first.stderr.take().unwrap());
    let mut message = String::new();
    stderr.read_line(&mut message).unwrap();
    let code = message
        .split_whitespace()
        .find(|w| w.len() == 9 && w.as_bytes()[4] == b'-')
        .unwrap_or_else(|| panic!("no user code in {message:?}"));
    idp.approve_device(code, "alice").await;
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(summary.get_str("token_source"), Some("identity_provider"));
    assert_eq!(summary.get_str("account"), Some("alice@example.test"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("eyJ"),
        "no token on stdout"
    );

    let out = run().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "silent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(summary.get_str("token_source"), Some("cache"));
}

#[tokio::test]
async fn daemon_example_reuses_its_app_token() {
    let idp = Idp::start(&[]);
    let out = Command::new(example("daemon"))
        .args([
            "--authority",
            &idp.authority(),
            "--client-id",
            "confidential-app",
        ])
        .args(["--scopes", "api://test-api/.default", "--count", "3"])
        .env("TOKENCACHE_CLIENT_SECRET", "confidential-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sources: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            JsonObject::parse(l)
                .unwrap()
                .get_str("token_source")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sources, ["identity_provider", "cache", "cache"]);
    assert_eq!(idp.token_requests("client_credentials").await, 1);

    let out = Command::new(example("daemon"))
        .args([
            "--authority",
            &idp.authority(),
            "--client-id",
            "confidential-app",
        ])
        .args(["--scopes", "api://test-api/.default"])
        .env_remove("TOKENCACHE_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKENCACHE_CLIENT_SECRET"));
}
