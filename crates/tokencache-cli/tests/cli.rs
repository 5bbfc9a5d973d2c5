//! The `tokencache` binary, run as a user would.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokencache::{Section, TokenCache};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/caches")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(args)
        .output()
        .expect("run tokencache")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(examples().join(name), &dst).expect("copy");
    dst
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

const SECRETS: &[&str] = &[
    "eyJ0eXAi.FAKE-AT",
    "0.FAKE-RT",
    "ADFS-AT",
    "expired-token",
    "long-lived",
    "APP-AT-0",
    "ZmFrZXNpZ25hdHVyZQ",
];

#[test]
fn inspect_shows_accounts_and_tokens_but_no_secret() {
    let o = run(&[
        "inspect",
        path(&examples().join("desktop.json")),
        "--now",
        "1700001000",
    ]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("Accounts: 3"), "{text}");
    assert!(text.contains("jane@contoso.com"));
    assert!(
        text.contains("J\u{f6}rg@contoso.com"),
        "non-ASCII usernames shown decoded"
    );
    assert!(text.contains("User.Read email openid profile"));
    assert!(text.contains("in 59m"), "{text}");
    assert!(text.contains("family 1"));
    for s in SECRETS {
        assert!(!text.contains(s), "leaked {s}");
    }
}

#[test]
fn inspect_json_has_the_documented_schema_without_secrets() {
    let o = run(&["inspect", path(&examples().join("desktop.json")), "--json"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let v = tokencache::json::JsonObject::parse(&text).expect("one JSON object");
    let names: Vec<&str> = v.iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "accounts",
            "access_tokens",
            "refresh_tokens",
            "id_tokens",
            "app_metadata"
        ]
    );
    let cache = TokenCache::from_json(
        &std::fs::read_to_string(examples().join("desktop.json")).expect("read"),
    )
    .expect("parse");
    for (name, section) in [
        ("accounts", Section::Account),
        ("access_tokens", Section::AccessToken),
        ("refresh_tokens", Section::RefreshToken),
        ("id_tokens", Section::IdToken),
        ("app_metadata", Section::AppMetadata),
    ] {
        let Some(tokencache::json::JsonValue::Array(items)) = v.get(name) else {
            panic!("{name}")
        };
        assert_eq!(items.len(), cache.len(section), "{name}");
        for item in items.iter() {
            let tokencache::json::JsonValue::Object(o) = item else {
                panic!("element")
            };
            assert!(o.get_str("cache_key").is_some());
            assert!(!o.contains_key("secret"));
        }
    }
    assert!(text.contains("\"target\": \"User.Read email openid profile\""));
    for s in SECRETS {
        assert!(!text.contains(s), "leaked {s}");
    }
}

#[test]
fn validate_exit_codes() {
    assert_eq!(
        run(&["validate", path(&examples().join("desktop.json"))])
            .status
            .code(),
        Some(0)
    );
    let messy = run(&["validate", path(&examples().join("messy.json"))]);
    assert_eq!(messy.status.code(), Some(1));
    let text = stdout(&messy);
    assert!(
        text.contains("3 problem(s)")
            && text.contains("broken-entry")
            && text.contains("non-canonical"),
        "{text}"
    );
    assert!(!text.contains("expired-token"));
    let dir = tempfile::tempdir().expect("tmp");
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"AccessToken\": {").expect("write");
    let o = run(&["validate", path(&garbage)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "cannot read is not a list of problems"
    );
    assert!(stdout(&o).contains("invalid JSON at line 1"));
    // Binary, truncated and not-an-object files cannot be read either.
    for (name, content) in [
        ("binary.json", &b"\x00\x9f\xff\x10binary"[..]),
        (
            "truncated.json",
            &b"{\"AccessToken\": {\"k\": {\"secret\": \"s"[..],
        ),
        ("array.json", &b"[1, 2]"[..]),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, content).expect("write");
        assert_eq!(
            run(&["validate", path(&file)]).status.code(),
            Some(2),
            "{name}"
        );
    }
    assert_eq!(
        run(&["validate", path(&dir.path().join("missing.json"))])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn prune_drops_expired_tokens_and_keeps_everything_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("messy.json", dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    let o = run(&["prune", path(&file), "--now", "1700000000"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("removed 1 expired"));
    let after = std::fs::read_to_string(&file).expect("read");
    assert!(!after.contains("expired-token"));
    for kept in [
        "long-lived",
        "broken-entry",
        "x_written_by",
        "\"x_vendor_field\": {\n                \"nested\": [\n                    1,\n                    2.50",
        "\"last_modification_time\": \"soon\"",
    ] {
        assert!(after.contains(kept), "lost {kept}:\n{after}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
            0o600,
            "the owner's permissions kept, group access dropped"
        );
    }
    // Nothing left to prune: the file is not rewritten.
    let before = std::fs::metadata(&file)
        .expect("meta")
        .modified()
        .expect("mtime");
    assert!(
        run(&["prune", path(&file), "--now", "1700000000"])
            .status
            .success()
    );
    assert_eq!(
        std::fs::metadata(&file)
            .expect("meta")
            .modified()
            .expect("mtime"),
        before
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        1,
        "no temporary files left behind"
    );
}

#[test]
fn remove_account_removes_every_client_s_tokens_and_keeps_app_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let hid = "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47";
    let o = run(&["remove-account", path(&file), hid]);
    assert!(o.status.success());
    assert!(
        stdout(&o)
            .contains("removed 2 access token(s), 2 refresh token(s), 2 ID token(s), 1 account(s)"),
        "{}",
        stdout(&o)
    );
    let cache =
        TokenCache::from_json(&std::fs::read_to_string(&file).expect("read")).expect("parse");
    assert!(
        cache
            .all_accounts()
            .iter()
            .all(|a| a.home_account_id() != Some(hid))
    );
    assert_eq!(cache.all_accounts().len(), 2, "the other accounts stay");
    assert!(cache.len(Section::AppMetadata) > 0);
}

#[test]
fn unparseable_files_are_never_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.json");
    let garbage = "{\"AccessToken\": {\"k\": {\"secret\": \"s\", \"expires_on\": \"1\"}}, oops";
    std::fs::write(&file, garbage).expect("write");
    for args in [
        vec!["prune", path(&file)],
        vec!["remove-account", path(&file), "x"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("left untouched"));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), garbage);
    }
}

#[cfg(unix)]
#[test]
fn symlinked_cache_files_are_refused_for_writing() {
    let dir = tempfile::tempdir().expect("tmp");
    let real = copy("messy.json", dir.path());
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let o = run(&["prune", path(&link), "--now", "1700000000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
}

/// Writes a lock file at `lock` naming `pid` (program `/usr/bin/az`), as if written `age_secs`
/// ago; nobody holds its OS lock.
fn plant_lock(lock: &Path, pid: u32, age_secs: u64) {
    std::fs::write(lock, format!("{pid} /usr/bin/az")).expect("lock file");
    std::fs::File::options()
        .write(true)
        .open(lock)
        .expect("open")
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs))
        .expect("mtime");
}

// Whether the owner is gone is known on Unix only (Windows, under Wine in CI, reports it as
// unknown).
#[cfg(unix)]
#[test]
fn lock_status_reports_free_held_and_stale_locks() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    assert!(stdout(&run(&["lock-status", path(&file)])).contains("not locked"));
    let mut child = Command::new("true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    let lock = dir.path().join("desktop.json.lockfile");
    // Written 3 s ago: past the grace a lock of a vanished process gets.
    plant_lock(&lock, dead, 3);
    let text = stdout(&run(&["lock-status", path(&file)]));
    assert!(
        text.contains(&format!("pid {dead} (/usr/bin/az) (dead)")) && text.contains("STALE"),
        "{text}"
    );
    // The dead process had handed a token response over (group commit) before it died.
    let pending = dir.path().join("desktop.json.pending");
    std::fs::create_dir(&pending).expect("pending dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pending, std::fs::Permissions::from_mode(0o700))
            .expect("owner-only, as tokencache makes it");
    }
    std::fs::write(
        pending.join("00000000000000000001-1-0.rec"),
        r#"{"now": 1700000000, "event": {"client_id": "cid", "scope": ["User.Read"], "token_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/token", "grant_type": "authorization_code", "response": {"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "client_info": "eyJ1aWQiOiJsZWZ0b3ZlciIsInV0aWQiOiJ0In0"}}}"#,
    )
    .expect("record");
    let text = stdout(&run(&["lock-status", path(&file)]));
    assert!(
        text.contains("1 waiting, 0 being written, 0 rejected"),
        "{text}"
    );
    // A writing verb breaks the stale lock instead of waiting, and writes what was waiting.
    assert!(run(&["prune", path(&file), "--now", "1"]).status.success());
    assert!(!lock.exists());
    let cache = tokencache::TokenCache::from_json(&std::fs::read_to_string(&file).expect("read"))
        .expect("parses");
    assert!(
        cache
            .all_accounts()
            .iter()
            .any(|a| a.home_account_id() == Some("leftover.t")),
        "the waiting response was written"
    );
    // What is left is the record's written mark, for a waiter that is gone (holders remove
    // such marks when an hour old).
    let left: Vec<String> = std::fs::read_dir(&pending)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["00000000000000000001-1-0.written"]);
    assert!(!stdout(&run(&["lock-status", path(&file)])).contains("handed over"));
}

#[test]
fn encrypt_and_decrypt_round_trip_and_a_wrong_key_destroys_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let original = std::fs::read_to_string(&file).expect("read");
    let key = dir.path().join("cache.key");
    let o = run(&[
        "encrypt",
        path(&file),
        "--key-file",
        path(&key),
        "--new-key",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("a new key was written to {}", path(&key))),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let encrypted = std::fs::read(&file).expect("read");
    assert!(encrypted.starts_with(b"TCENC"));
    // Reading needs the key, and the error says how to give it; with it, every verb works.
    let o = run(&["inspect", path(&file)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("--key-file PATH, --key-env VAR or --keyring NAME"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&["inspect", path(&file), "--key-file", path(&key)]);
    assert!(stdout(&o).contains("jane@contoso.com"));
    // A wrong key is a clear error and leaves the file as it was.
    let other = dir.path().join("other.key");
    std::fs::write(&other, "cd".repeat(32)).expect("key");
    let o = run(&["prune", path(&file), "--key-file", path(&other)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong key"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&file).expect("read"), encrypted);
    // Back to the original bytes.
    assert!(
        run(&["decrypt", path(&file), "--key-file", path(&key)])
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), original);
}

#[test]
fn re_encrypting_a_file_with_another_key_reads_it_with_the_previous_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let (old, new) = (dir.path().join("old.key"), dir.path().join("new.key"));
    std::fs::write(&old, "ab".repeat(32)).expect("key");
    std::fs::write(&new, "cd".repeat(32)).expect("key");
    let encrypt = |args: &[&str]| run(&[&["encrypt", path(&file)], args].concat());
    assert!(encrypt(&["--key-file", path(&old)]).status.success());
    // With only the new key the file cannot be read: refused, and the file is unchanged.
    let before = std::fs::read(&file).expect("read");
    assert_eq!(encrypt(&["--key-file", path(&new)]).status.code(), Some(2));
    assert_eq!(std::fs::read(&file).expect("read"), before);
    let o = encrypt(&["--key-file", path(&new), "--previous-key-file", path(&old)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["inspect", path(&file), "--key-file", path(&new)]);
    assert!(stdout(&o).contains("jane@contoso.com"));
    assert_eq!(
        run(&["inspect", path(&file), "--key-file", path(&old)])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn repair_fixes_what_validate_reports_and_keeps_a_copy_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("messy.json", dir.path());
    let original = std::fs::read(&file).expect("read");
    assert_eq!(run(&["validate", path(&file)]).status.code(), Some(1));
    // A dry run says what it would do and writes nothing.
    let o = run(&["repair", path(&file), "--dry-run"]);
    assert!(o.status.success());
    let said = stdout(&o);
    assert!(said.contains("3 change(s) planned"), "{said}");
    assert!(
        said.contains("moved to its canonical key") && said.contains("removed (not a JSON object)"),
        "{said}"
    );
    assert_eq!(std::fs::read(&file).expect("read"), original);
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    // The repair: the copy holds the original bytes, owner-only; the cache validates.
    let backup = dir.path().join("before.json");
    let o = run(&["repair", path(&file), "--backup", path(&backup)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("3 change(s) made"));
    assert_eq!(std::fs::read(&backup).expect("backup"), original);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(run(&["validate", path(&file)]).status.success());
    let o = run(&["repair", path(&file)]);
    assert!(stdout(&o).contains("nothing to repair"));
    // The refresh token survived (only its unreadable time was dropped).
    let o = run(&["inspect", "--json", path(&file)]);
    assert!(
        stdout(&o).contains("-refreshtoken-cid--user.read"),
        "{}",
        stdout(&o)
    );
    // A file that is not JSON is refused and left as it was.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"AccessToken\": {").expect("write");
    assert_eq!(run(&["repair", path(&bad)]).status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&bad).expect("read"),
        "{\"AccessToken\": {"
    );
}

#[test]
fn a_mistyped_key_path_makes_no_key_and_encrypts_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let original = std::fs::read(&file).expect("read");
    let typo = dir.path().join("cahce.key");
    let o = run(&["encrypt", path(&file), "--key-file", path(&typo)]);
    assert_eq!(o.status.code(), Some(2));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("no key file") && said.contains("--new-key"),
        "{said}"
    );
    assert!(!typo.exists(), "no key was made");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        original,
        "nothing encrypted"
    );
    // --new-key never replaces a key.
    let key = dir.path().join("cache.key");
    std::fs::write(&key, "ab".repeat(32)).expect("key");
    let o = run(&[
        "encrypt",
        path(&file),
        "--key-file",
        path(&key),
        "--new-key",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("never replaces"));
    assert_eq!(std::fs::read_to_string(&key).expect("key"), "ab".repeat(32));
    assert_eq!(std::fs::read(&file).expect("read"), original);
    // A missing cache is reported before any key is made.
    let missing = dir.path().join("missing.json");
    let fresh = dir.path().join("fresh.key");
    let o = run(&[
        "encrypt",
        path(&missing),
        "--key-file",
        path(&fresh),
        "--new-key",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!fresh.exists());
}

#[test]
fn quiet_successes_that_hide_a_mistake_are_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let original = std::fs::read(&file).expect("read");
    let o = run(&["remove-account", path(&file), "unknown-id"]);
    assert_eq!(o.status.code(), Some(1));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("no account \"unknown-id\"")
            && said.contains(
                "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47"
            ),
        "{said}"
    );
    assert_eq!(std::fs::read(&file).expect("read"), original);
    // A path that is not there, or a directory, is not "not locked".
    let missing = dir.path().join("missing.json");
    let o = run(&["lock-status", path(&missing)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such file"));
    let o = run(&["lock-status", path(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a directory"));
    // Every verb words a missing file the same way.
    for verb in ["inspect", "validate", "prune", "repair", "lock-status"] {
        let o = run(&[verb, path(&missing)]);
        assert_eq!(o.status.code(), Some(2), "{verb}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim(),
            format!("tokencache: cannot read {}: no such file", path(&missing)),
            "{verb}"
        );
    }
}

#[test]
fn a_verb_that_waits_for_a_lock_says_who_holds_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    let held = tokencache_file::CacheLock::acquire(&file, Default::default()).expect("lock");
    let child = Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["prune", path(&file), "--now", "1"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Held past the one-second notice, then released: the verb then completes.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    drop(held);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("waiting for the lock of")
            && said.contains(&format!("pid {}", std::process::id()))
            && said.contains("giving up after 30 s"),
        "{said}"
    );
}

#[test]
fn the_library_logs_show_with_verbose_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = copy("desktop.json", dir.path());
    // A lock file nobody holds, written 25 s ago: stale on every platform, whoever it names.
    let stale = || {
        plant_lock(
            &tokencache_file::lock_path(&file),
            std::process::id() + 1,
            25,
        )
    };
    stale();
    let quiet = run(&["prune", path(&file), "--now", "1"]);
    assert!(quiet.status.success());
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("stale"));
    stale();
    let verbose = run(&["-v", "prune", path(&file), "--now", "1"]);
    assert!(verbose.status.success());
    assert!(
        String::from_utf8_lossy(&verbose.stderr).contains("removing a stale cache lock"),
        "{}",
        String::from_utf8_lossy(&verbose.stderr)
    );
}

/// A cache with one account whose entries carry `extra` members (JSON text) besides their own.
fn cache_with(username: &str, extra: &str) -> String {
    let account = format!(
        r#""home_account_id": "h.t", "environment": "login.example", "realm": "t", "local_account_id": "h", "username": {username}, "authority_type": "MSSTS""#,
        username =
            tokencache::json::to_python_json(&tokencache::json::JsonValue::string(username), false)
    );
    format!(
        r#"{{"AccessToken": {{"h.t-login.example-accesstoken-cid-t-user.read": {{"credential_type": "AccessToken", "secret": "AT-SECRET", "home_account_id": "h.t", "environment": "login.example", "client_id": "cid", "realm": "t", "target": "User.Read", "expires_on": "4102444800", "cached_at": "1700000000"{extra}}}}},
        "RefreshToken": {{"h.t-login.example-refreshtoken-cid--": {{"credential_type": "RefreshToken", "secret": "RT-SECRET", "home_account_id": "h.t", "environment": "login.example", "client_id": "cid"{extra}}}}},
        "Account": {{"h.t-login.example-t": {{{account}{extra}}}}}}}"#
    )
}

#[test]
fn inspect_never_shows_a_secret_hidden_in_any_member() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let extra = r#", "refresh_token": "HIDDEN-RT", "client_secret": "HIDDEN-CS", "id_token": "HIDDEN-IDT", "Access_Token": "HIDDEN-CASE", "nested": {"deeper": [{"access_token": "HIDDEN-NESTED"}], "kept": "visible"}"#;
    std::fs::write(&file, cache_with("ada@example.test", extra)).unwrap();
    for args in [vec!["inspect", "--json"], vec!["inspect"]] {
        let o = run(&[args.as_slice(), &[path(&file)]].concat());
        assert!(o.status.success(), "{o:?}");
        let text = stdout(&o);
        for secret in ["HIDDEN", "AT-SECRET", "RT-SECRET"] {
            assert!(!text.contains(secret), "{args:?} showed {secret}:\n{text}");
        }
        if args.contains(&"--json") {
            assert!(text.contains("visible"), "other members stay: {text}");
        }
    }
}

#[test]
fn control_characters_from_a_cache_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let username = "eve\u{1b}[2J\u{1b}[1;1H\nAccounts: 0\u{202e}gnp.exe\u{7}";
    std::fs::write(&file, cache_with(username, "")).unwrap();
    let o = run(&["inspect", path(&file)]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    for c in ['\u{1b}', '\u{202e}', '\u{7}'] {
        assert!(!text.contains(c), "{c:?} printed raw:\n{text}");
    }
    assert!(text.contains("eve\\u{1b}[2J"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("Accounts:")).count(),
        1,
        "a line break in a username cannot forge a line:\n{text}"
    );
}

#[test]
fn inspect_into_a_pipe_closed_early_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    let cache = TokenCache::new();
    for i in 0..3000 {
        let mut response = tokencache::json::JsonObject::new();
        let client_info = format!("{{\"uid\":\"u{i}\",\"utid\":\"t\"}}");
        use base64::Engine;
        response.insert("access_token", tokencache::json::JsonValue::string("at"));
        response.insert("token_type", tokencache::json::JsonValue::string("Bearer"));
        response.insert(
            "expires_in",
            tokencache::json::JsonValue::Number("3600".into()),
        );
        response.insert(
            "client_info",
            tokencache::json::JsonValue::string(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(client_info),
            ),
        );
        let event = tokencache::TokenEvent::new("cid", ["User.Read"])
            .token_endpoint("https://login.example/t/oauth2/v2.0/token")
            .response(response);
        cache.add_at(&event, 1_700_000_000).unwrap();
    }
    std::fs::write(&file, cache.serialize()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokencache"))
        .args(["inspect", path(&file)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("Accounts:"), "{first}");
    // The reader is gone (like `| head -1`); the rest cannot be written.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_backup_cut_short_is_removed_and_the_cache_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    // A cache with work for repair: an entry under a key no SDK writes.
    let text = std::fs::read_to_string(examples().join("desktop.json")).unwrap();
    let key = "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47-login.microsoftonline.com-idtoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46-organizations-";
    assert!(text.contains(key));
    let text = text.replace(key, &key.to_uppercase());
    std::fs::write(&file, &text).unwrap();
    // A file size limit smaller than the cache: the copy fails part way (as on a full disk).
    let script = format!(
        "trap '' XFSZ; ulimit -f 4; exec {} repair {}",
        env!("CARGO_BIN_EXE_tokencache"),
        file.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot write"),
        "{out:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["cache.json"], "no partial backup");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "nothing changed"
    );
}

/// A plain cache holding one account, `mallory`, with a refresh token an attacker controls.
fn planted_cache() -> String {
    cache_with("mallory@attacker.example", "")
        .replace("RT-SECRET", "PLANTED-RT")
        .replace("h.t", "mallory.t")
}

#[test]
fn plaintext_is_never_accepted_under_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = copy("desktop.json", dir.path());
    let key = dir.path().join("k");
    let (file_arg, key_arg) = (path(&file), path(&key));
    let o = run(&["encrypt", "--new-key", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");

    // 1. The encrypted file replaced by a plain one: refused by every verb, and left alone.
    std::fs::write(&file, planted_cache()).unwrap();
    for verb in ["validate", "inspect", "prune", "repair"] {
        let o = run(&[verb, "--key-file", key_arg, file_arg]);
        assert_eq!(o.status.code(), Some(2), "{verb}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not encrypted"),
            "{verb}: {o:?}"
        );
        assert!(!stdout(&o).contains("mallory"), "{verb}: {o:?}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), planted_cache());
    // The explicit way to encrypt a plain cache still works.
    let o = run(&["encrypt", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");
    assert!(tokencache_file::is_encrypted(
        &std::fs::read(&file).unwrap()
    ));

    // 2. A plain hand-over record planted beside an encrypted cache is never applied.
    let file = copy("daemon.json", dir.path());
    let file_arg = path(&file);
    let o = run(&["encrypt", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");
    let pending = dir.path().join("daemon.json.pending");
    std::fs::create_dir(&pending).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pending, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let event = r#"{"client_id": "cid", "scope": ["User.Read"], "token_endpoint": "https://login.example/t/oauth2/v2.0/token", "grant_type": "refresh_token", "response": {"access_token": "PLANTED-AT", "refresh_token": "PLANTED-RT", "token_type": "Bearer", "expires_in": 3600, "client_info": "eyJ1aWQiOiJtYWxsb3J5IiwidXRpZCI6InQifQ"}, "data": {}}"#;
    std::fs::write(
        pending.join("1700000000000000000-1-0.rec"),
        format!(r#"{{"now": 1700000000, "event": {event}}}"#),
    )
    .unwrap();
    let o = run(&["prune", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");
    let o = run(&["inspect", "--json", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");
    assert!(!stdout(&o).contains("mallory"), "{}", stdout(&o));
    let o = run(&["decrypt", "--key-file", key_arg, file_arg]);
    assert!(o.status.success(), "{o:?}");
    assert!(!std::fs::read_to_string(&file).unwrap().contains("PLANTED"));
}

/// The start of a Windows DPAPI blob (version 1, Windows' provider GUID).
#[cfg(not(windows))]
const DPAPI_START: [u8; 20] = [
    0x01, 0x00, 0x00, 0x00, 0xd0, 0x8c, 0x9d, 0xdf, 0x01, 0x15, 0xd1, 0x11, 0x8c, 0x7a, 0x00, 0xc0,
    0x4f, 0xc2, 0x97, 0xeb,
];

#[cfg(not(windows))]
#[test]
fn a_windows_dpapi_file_is_named_for_what_it_is_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msal_token_cache.bin");
    let mut blob = DPAPI_START.to_vec();
    blob.extend((0..200u8).map(|b| b.wrapping_mul(37)));
    std::fs::write(&file, &blob).unwrap();
    for verb in ["inspect", "validate", "prune", "decrypt"] {
        let o = run(&[verb, path(&file)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{verb}: {err}");
        assert!(err.contains("Windows DPAPI"), "{verb}: {err}");
        assert!(err.contains("only Windows"), "{verb}: {err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), blob, "left as it was");
}

/// On Windows (under Wine in CI) the CLI reads a DPAPI-sealed cache with no key, writes it
/// back sealed, and `decrypt` turns it into MSAL's plain JSON.
#[cfg(windows)]
#[test]
fn a_windows_dpapi_file_is_read_written_back_sealed_and_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msal_token_cache.bin");
    let sealed = tokencache_file::FileStore::open(
        &file,
        tokencache_file::FileOptions {
            windows_data_protection: true,
            accept_plaintext: true,
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::copy(examples().join("desktop.json"), &file).unwrap();
    sealed.rewrite(None).unwrap();
    assert!(tokencache_file::is_dpapi_protected(
        &std::fs::read(&file).unwrap()
    ));

    let o = run(&["inspect", path(&file), "--now", "1700001000"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("Accounts: 3"), "{}", stdout(&o));

    let o = run(&["prune", path(&file), "--now", "1900000000"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        tokencache_file::is_dpapi_protected(&std::fs::read(&file).unwrap()),
        "written back sealed"
    );

    let o = run(&["decrypt", path(&file)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = std::fs::read_to_string(&file).unwrap();
    let cache = TokenCache::from_json(&plain).unwrap();
    assert_eq!(cache.len(Section::Account), 3);
    assert_eq!(cache.len(Section::AccessToken), 0, "pruned while sealed");
}
