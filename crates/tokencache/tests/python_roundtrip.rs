//! Live round trips with the real MSAL Python 1.39 (`tests/interop/peer.py`): Python reads
//! what Rust wrote and finds every token; Python adds and removes, and Rust's queries agree
//! with Python's on the result.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{apply, python, repo_root, scenarios};
use tokencache::json::{JsonObject, JsonValue};
use tokencache::{
    AccessTokenQuery, AccountQuery, ManualClock, RefreshTokenQuery, Section, TokenCache, TokenEvent,
};

const NOW: i64 = 1_700_000_000;

fn peer(args: &[&str]) -> Option<JsonObject> {
    let python = python()?;
    let out = Command::new(python)
        .arg(repo_root().join("tests/interop/peer.py"))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "peer.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(JsonObject::parse(&String::from_utf8(out.stdout).expect("utf8")).expect("peer output"))
}

/// All scenarios' events in one cache.
fn combined() -> TokenCache {
    let events: Vec<(TokenEvent, i64)> = scenarios().into_iter().flat_map(|(_, e)| e).collect();
    apply(&events)
}

fn int(o: &JsonObject, k: &str) -> usize {
    o.get(k).and_then(JsonValue::as_int_lenient).expect(k) as usize
}

#[test]
fn python_finds_every_token_rust_wrote() {
    let cache = combined();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache.json");
    std::fs::write(&path, cache.serialize()).expect("write");
    let Some(report) = peer(&["search", path.to_str().expect("path"), &NOW.to_string()]) else {
        return;
    };
    let Some(JsonValue::Object(found)) = report.get("found") else {
        panic!("report: {report:?}")
    };
    assert_eq!(
        report.get("missing"),
        Some(&JsonValue::Array(Box::new([]))),
        "{report:?}"
    );
    for (section, name) in [
        (Section::AccessToken, "AccessToken"),
        (Section::RefreshToken, "RefreshToken"),
        (Section::IdToken, "IdToken"),
        (Section::Account, "Account"),
    ] {
        assert_eq!(int(found, name), cache.len(section), "{name}");
        assert!(cache.len(section) > 0, "{name} exercised");
    }
    assert_eq!(
        report.get("serialized_equal"),
        Some(&JsonValue::Bool(true)),
        "Python re-serializes our bytes unchanged"
    );
}

#[test]
fn rust_agrees_with_python_after_python_adds_and_removes() {
    let cache = combined();
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&src, cache.serialize()).expect("write");
    let Some(report) = peer(&[
        "mutate",
        src.to_str().expect("path"),
        dst.to_str().expect("path"),
        &NOW.to_string(),
    ]) else {
        return;
    };
    let text = std::fs::read_to_string(&dst).expect("python output");
    let ours = TokenCache::with_clock(Arc::new(ManualClock::new(NOW)));
    ours.deserialize(&text).expect("parse python output");
    assert_eq!(
        ours.serialize(),
        text,
        "byte-identical re-serialization of Python's file"
    );
    // The only problem is one MSAL itself creates: a float `refresh_on` written for a fractional
    // `refresh_in` (scenario refresh_with_refresh_in), which MSAL's own `int()` cannot read back.
    let problems = ours.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, tokencache::ProblemKind::BadValue);
    assert!(problems[0].message.contains("refresh_on"));

    // Accounts
    let mut accounts: Vec<String> = ours
        .accounts(&AccountQuery::default())
        .iter()
        .filter_map(|a| a.home_account_id().map(str::to_owned))
        .collect();
    accounts.sort();
    let want: Vec<String> = match report.get("accounts") {
        Some(JsonValue::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => panic!("accounts"),
    };
    assert_eq!(accounts, want);
    assert!(
        accounts.contains(&"py-uid.py-tenant".to_owned()),
        "Python's new account is visible"
    );

    // Every probe Python answered, Rust answers the same.
    let Some(JsonValue::Array(probes)) = report.get("probes") else {
        panic!("probes")
    };
    let mut checked = (0, 0);
    for probe in probes.iter() {
        let JsonValue::Object(p) = probe else {
            continue;
        };
        let secrets = |v: Option<&JsonValue>| -> Vec<String> {
            match v {
                Some(JsonValue::Array(a)) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let want = secrets(p.get("secrets"));
        match p.get_str("kind") {
            Some("rt") => {
                let hid = p.get_str("home_account_id").expect("hid");
                let env = [p.get_str("environment").expect("env")];
                let mut got: Vec<String> = ours
                    .refresh_tokens(&RefreshTokenQuery::new(hid).environments(&env))
                    .iter()
                    .filter_map(|t| t.secret().map(|s| s.expose().to_owned()))
                    .collect();
                got.sort();
                assert_eq!(got, want, "RTs of {hid}");
                checked.0 += 1;
            }
            Some("at") => {
                let Some(JsonValue::Object(q)) = p.get("query") else {
                    panic!("query")
                };
                let scope = [p.get_str("scope").expect("scope")];
                let env = [q.get_str("environment").expect("env")];
                let mut query = AccessTokenQuery::new(
                    q.get_str("client_id").expect("client"),
                    q.get_str("realm").unwrap_or_default(),
                    &scope,
                )
                .environments(&env);
                if let Some(hid) = q.get_str("home_account_id") {
                    query = query.account(hid);
                }
                let mut got: Vec<String> = ours
                    .access_tokens(&query)
                    .iter()
                    .filter_map(|t| t.secret().map(|s| s.expose().to_owned()))
                    .collect();
                got.sort();
                assert_eq!(got, want, "ATs for {q:?} {scope:?}");
                checked.1 += 1;
            }
            _ => panic!("probe kind"),
        }
    }
    assert!(
        checked.0 >= 5 && checked.1 >= 20,
        "probes checked: {checked:?}"
    );
    let victim = report.get_str("removed_rts_of").expect("victim");
    assert!(
        ours.refresh_tokens(&RefreshTokenQuery::new(victim))
            .is_empty(),
        "Python's removal is visible"
    );
    let removed_at = report.get_str("removed_at").expect("removed");
    assert!(
        ours.all_access_tokens()
            .iter()
            .all(|t| t.secret().is_some_and(|s| s.expose() != removed_at))
    );
}
