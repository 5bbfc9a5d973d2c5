//! The one rule every crate's tests follow for the MSAL Python peer (included with `#[path]`
//! by each crate's `tests/common/mod.rs`).
//!
//! - `TOKENCACHE_PYTHON` names the interpreter; else the repository's `.venv/bin/python`.
//! - Tests that need it fail, not skip, when it is missing.
//! - `TOKENCACHE_SKIP_PYTHON=1` skips them locally, saying so on stderr; any other value is an
//!   error, and under CI (`CI` set) skipping is refused.
//! - A Windows build (its tests run under Wine) skips them, saying so: the peers are Linux
//!   programs; the Linux run of the same tests covers them.

use std::path::PathBuf;

/// The Python with msal 1.39 and msal-extensions 1.3.1, or `None` when the developer asked to
/// skip the tests that need it.
pub fn python() -> Option<PathBuf> {
    if cfg!(windows) {
        // The Windows build's tests run under Wine here; the peers are Linux programs.
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        eprintln!(
            "SKIPPED the MSAL Python part of {test} (a Windows build: the peers run on Linux)"
        );
        return None;
    }
    if let Some(skip) = std::env::var_os("TOKENCACHE_SKIP_PYTHON") {
        assert!(
            std::env::var_os("CI").is_none_or(|ci| ci.is_empty()),
            "TOKENCACHE_SKIP_PYTHON is set under CI: CI runs every MSAL Python peer test"
        );
        assert_eq!(
            skip.to_str(),
            Some("1"),
            "TOKENCACHE_SKIP_PYTHON must be 1 to skip the MSAL Python peer tests"
        );
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        eprintln!("SKIPPED the MSAL Python part of {test} (TOKENCACHE_SKIP_PYTHON=1)");
        return None;
    }
    let path = std::env::var_os("TOKENCACHE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
        });
    assert!(
        path.exists(),
        "no Python with msal 1.39 at {}: run `bash .ci/setup-python`, set TOKENCACHE_PYTHON, or set TOKENCACHE_SKIP_PYTHON=1 to skip these tests locally",
        path.display()
    );
    Some(path)
}
