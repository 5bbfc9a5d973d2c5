//! The reader tolerates every MSAL dialect, keeps what it does not understand, reports
//! malformed entries without dropping them, and never lets a secret reach `Debug` or an error.

use std::sync::Arc;

use tokencache::json::{JsonValue, parse_value, to_python_json};
use tokencache::{
    AccessTokenQuery, AccountQuery, Error, ManualClock, PartitionKey, ProblemKind,
    RefreshTokenQuery, Section, TokenCache, TokenEvent,
};

fn at_clock(now: i64) -> TokenCache {
    TokenCache::with_clock(Arc::new(ManualClock::new(now)))
}

/// A .NET-style cache: compact JSON, integer times, `kid`, `ext_expires_on`, extra account
/// fields, `user_assertion_hash`.
const DOTNET: &str = r#"{"AccessToken":{"uid.utid-login.microsoftonline.com-accesstoken-cid-contoso-user.read openid":{"home_account_id":"uid.utid","environment":"login.microsoftonline.com","client_id":"cid","secret":"DOTNET-AT","credential_type":"AccessToken","realm":"contoso","target":"user.read openid","cached_at":1700000000,"expires_on":1700003600,"extended_expires_on":"1700007200","ext_expires_on":"1700007200","kid":"pop-kid","user_assertion_hash":"h4sh"}},"RefreshToken":{},"IdToken":{},"Account":{"uid.utid-login.microsoftonline.com-contoso":{"home_account_id":"uid.utid","environment":"login.microsoftonline.com","realm":"contoso","local_account_id":"uid","username":"jane@contoso.com","authority_type":"MSSTS","client_info":"eyJ1aWQiOiJ1aWQiLCJ1dGlkIjoidXRpZCJ9","name":"Jane","last_modification_time":"1700000000","tenant_profiles":[{"tenant_id":"utid","is_home_tenant":true}]}},"AppMetadata":{}}"#;

#[test]
fn dotnet_dialect_loads_and_searches() {
    let cache = TokenCache::from_json(DOTNET).expect("parse");
    let at = &cache.all_access_tokens()[0];
    assert_eq!(at.expires_on(), Some(1_700_003_600), "integer time");
    assert_eq!(at.extended_expires_on(), Some(1_700_007_200));
    assert_eq!(at.key_id(), Some("pop-kid"));
    assert_eq!(at.user_assertion_hash(), Some("h4sh"));
    assert_eq!(at.partition_key(), Some(PartitionKey::new("h4sh")));
    let scopes = ["User.Read"];
    let q = AccessTokenQuery::new("cid", "contoso", &scopes).account("uid.utid");
    let clocked = at_clock(1_700_000_100);
    clocked.deserialize(DOTNET).expect("parse");
    assert!(
        clocked.find_access_token(&q).is_some(),
        "scopes compare case-insensitively"
    );
    assert!(
        clocked
            .find_access_token(&q.clone().key_id("pop-kid"))
            .is_some(),
        "kid answers key_id"
    );
    let acct = &cache.all_accounts()[0];
    assert_eq!(acct.name(), Some("Jane"));
    // Lossless: every foreign field and the integer times come back unchanged.
    let again = TokenCache::from_json(&cache.serialize())
        .expect("reparse")
        .serialize();
    assert_eq!(again, cache.serialize());
    assert!(again.contains("\"cached_at\": 1700000000,"));
    assert!(again.contains("\"is_home_tenant\": true"));
    assert!(cache.problems().is_empty(), "{:?}", cache.problems());
}

#[test]
fn node_camel_case_fields_are_understood() {
    let text = r#"{"AccessToken":{"k":{"homeAccountId":"x","home_account_id":"","environment":"login.microsoftonline.com","credential_type":"AccessToken","client_id":"cid","secret":"S","realm":"r","target":"a","expires_on":"99","userAssertionHash":"obo-hash","requestedClaims":"{\"a\":1}","requestedClaimsHash":"q"}}}"#;
    let cache = TokenCache::from_json(text).expect("parse");
    let at = &cache.all_access_tokens()[0];
    assert_eq!(at.user_assertion_hash(), Some("obo-hash"));
    assert_eq!(at.requested_claims(), Some("{\"a\":1}"));
    assert_eq!(
        at.partition_key(),
        Some(PartitionKey::for_assertion_hash("obo-hash"))
    );
    assert!(cache.serialize().contains("\"homeAccountId\": \"x\""));
}

#[test]
fn go_v1_mixed_case_keys_are_found_and_upgraded_on_write() {
    let key = "UID.UTID-login.microsoftonline.com-RefreshToken-CID--Openid";
    let text = format!(
        r#"{{"RefreshToken":{{"{key}":{{"credential_type":"RefreshToken","secret":"OLD","home_account_id":"uid.utid","environment":"login.microsoftonline.com","client_id":"cid","target":"openid"}}}}}}"#
    );
    let cache = TokenCache::from_json(&text).expect("parse");
    assert!(
        cache
            .problems()
            .iter()
            .any(|p| p.kind == ProblemKind::NonCanonicalKey)
    );
    let rts = cache.refresh_tokens(&RefreshTokenQuery::new("uid.utid").client_id("cid"));
    assert_eq!(rts.len(), 1);
    let mut updated = rts[0].entry().clone();
    updated.set("secret", JsonValue::string("NEW"));
    cache
        .put_entry(Section::RefreshToken, updated)
        .expect("write");
    let keys: Vec<String> = cache
        .entries(Section::RefreshToken)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["uid.utid-login.microsoftonline.com-refreshtoken-cid--openid"]
    );
}

#[test]
fn unsorted_targets_from_old_msals_still_match() {
    let text = r#"{"AccessToken":{"old":{"credential_type":"AccessToken","secret":"S","home_account_id":"h","environment":"login.microsoftonline.com","client_id":"cid","realm":"r","target":"profile User.Read openid","expires_on":"2000000000"}}}"#;
    let cache = at_clock(1_000_000_000);
    cache.deserialize(text).expect("parse");
    let scopes = ["openid", "User.Read"];
    assert!(
        cache
            .find_access_token(&AccessTokenQuery::new("cid", "r", &scopes).account("h"))
            .is_some()
    );
}

#[test]
fn malformed_entries_are_reported_kept_and_do_not_break_the_rest() {
    let text = r#"{
    "AccessToken": {
        "bad-not-object": "just a string",
        "bad-no-expiry": {"credential_type": "AccessToken", "secret": "S1", "environment": "e", "client_id": "c", "home_account_id": null, "realm": "r", "target": "t"},
        "bad-time": {"credential_type": "AccessToken", "secret": "S2", "environment": "e", "client_id": "c", "home_account_id": null, "realm": "r", "target": "t", "expires_on": "soon"},
        "-e-accesstoken-c-r-t": {"credential_type": "AccessToken", "secret": "GOOD", "environment": "e", "client_id": "c", "home_account_id": null, "realm": "r", "target": "t", "expires_on": "9999999999"}
    },
    "Account": [1, 2, 3]
}"#;
    let cache = at_clock(1000);
    cache
        .deserialize(text)
        .expect("a malformed entry is not fatal");
    let problems = cache.problems();
    let keys: Vec<(&str, ProblemKind)> =
        problems.iter().map(|p| (p.key.as_str(), p.kind)).collect();
    assert!(keys.contains(&("bad-not-object", ProblemKind::EntryNotAnObject)));
    assert!(keys.contains(&("bad-no-expiry", ProblemKind::MissingField)));
    assert!(keys.contains(&("bad-time", ProblemKind::BadValue)));
    assert!(
        problems
            .iter()
            .any(|p| p.section == "Account" && p.kind == ProblemKind::SectionNotAnObject)
    );
    for p in &problems {
        let shown = p.to_string();
        assert!(
            !shown.contains("S1") && !shown.contains("S2") && !shown.contains("GOOD"),
            "{shown}"
        );
    }
    let env = ["e"];
    let scopes = ["t"];
    let found = cache.access_tokens(&AccessTokenQuery::new("c", "r", &scopes).environments(&env));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].secret().expect("secret").expose(), "GOOD");
    // Nothing is lost on the way back out.
    let out = cache.serialize();
    assert_eq!(
        TokenCache::from_json(&out).expect("reparse").serialize(),
        out
    );
    assert!(out.contains("\"bad-not-object\": \"just a string\""));
    assert!(out.contains("\"Account\": [\n        1,"));
    // Writing to a section that is not an object is refused, not destructive.
    let event = TokenEvent::new("c", ["t"])
        .token_endpoint("https://e.example/r")
        .response_json(r#"{"access_token":"A","client_info":"eyJ1aWQiOiJ1IiwidXRpZCI6InQifQ"}"#)
        .expect("response");
    let before = cache.serialize();
    assert!(matches!(
        cache.add_at(&event, 1000),
        Err(Error::SectionNotAnObject { section: "Account" })
    ));
    assert_eq!(cache.serialize(), before, "the failed add changed nothing");
}

#[test]
fn invalid_json_is_a_clear_error_with_a_position() {
    let err = TokenCache::from_json("{\n    \"AccessToken\": {,}\n}").expect_err("invalid");
    assert!(
        matches!(
            err,
            Error::Json {
                line: 2,
                column: 21,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        TokenCache::from_json("[]"),
        Err(Error::NotAnObject)
    ));
    assert!(TokenCache::from_json("{} extra").is_err());
    assert!(
        TokenCache::from_json("{\"a\": 01}").is_err(),
        "leading zero, as Python"
    );
    assert!(
        TokenCache::from_json("{\"a\": \"tab\there\"}").is_err(),
        "raw control character"
    );
    // Long strings are scanned in stretches: a control character is caught wherever it is.
    for at in [0, 31, 63, 64, 65, 95, 96, 200, 299] {
        let mut value = "x".repeat(300);
        value.replace_range(at..=at, "\u{1}");
        let doc = format!("{{\"a\": \"{value}\"}}");
        let err = TokenCache::from_json(&doc).expect_err("control character");
        assert!(
            matches!(&err, Error::Json { column, .. } if *column == 8 + at),
            "at {at}: {err}"
        );
        let clean = format!("{{\"a\": \"{}\"}}", "x".repeat(300));
        assert!(TokenCache::from_json(&clean).is_ok());
    }
    let cache = TokenCache::from_json(r#"{"AccessToken": {}}"#).expect("ok");
    assert!(cache.deserialize("{").is_err());
    assert_eq!(
        cache.serialize(),
        "{\n    \"AccessToken\": {}\n}",
        "a failed deserialize changes nothing"
    );
}

#[test]
fn empty_text_and_bom_are_accepted() {
    assert_eq!(TokenCache::from_json("").expect("empty").serialize(), "{}");
    assert_eq!(
        TokenCache::from_json("  \n").expect("blank").serialize(),
        "{}"
    );
    assert_eq!(
        TokenCache::from_json("\u{feff}{}")
            .expect("bom")
            .serialize(),
        "{}"
    );
}

#[test]
fn json_follows_python_for_numbers_strings_and_duplicates() {
    let v = parse_value(r#"{"f": 1.0, "e": 1E5, "big": 123456789012345678901234567890, "n": NaN, "i": -Infinity,
        "s": "\u00e9\ud83d\ude00\n\u007f/", "lone": "\ud800x", "d": 1, "d": 2, "nested": {"a": [], "b": {}}}"#)
    .expect("parse");
    assert_eq!(
        to_python_json(&v, false),
        r#"{"f": 1.0, "e": 1E5, "big": 123456789012345678901234567890, "n": NaN, "i": -Infinity, "s": "\u00e9\ud83d\ude00\n\u007f/", "lone": "\ud800x", "d": 2, "nested": {"a": [], "b": {}}}"#
    );
    // Duplicate entries in a section: the first position, the last value.
    let cache = TokenCache::from_json(
        r#"{"AppMetadata": {"a": {"client_id": "1"}, "b": {}, "a": {"client_id": "2"}}}"#,
    )
    .expect("parse");
    let keys: Vec<(String, Option<String>)> = cache
        .entries(Section::AppMetadata)
        .into_iter()
        .map(|(k, e)| {
            (
                k,
                e.and_then(|e| {
                    e.get("client_id")
                        .and_then(JsonValue::as_str)
                        .map(str::to_owned)
                }),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("a".to_owned(), Some("2".to_owned())),
            ("b".to_owned(), None)
        ]
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{{\"x\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(TokenCache::from_json(&deep).is_err());
}

#[test]
fn secrets_never_show_in_debug() {
    let cache = TokenCache::from_json(DOTNET).expect("parse");
    let at = &cache.all_access_tokens()[0];
    for shown in [
        format!("{at:?}"),
        format!("{:?}", at.entry()),
        format!("{:?}", at.secret()),
        format!("{cache:?}"),
    ] {
        assert!(!shown.contains("DOTNET-AT"), "{shown}");
    }
    let event = TokenEvent::new("c", ["s"])
        .response_json(r#"{"access_token":"TOP-SECRET-AT","refresh_token":"TOP-SECRET-RT","id_token":"a.b.c"}"#)
        .expect("response");
    let shown = format!("{event:?}");
    assert!(!shown.contains("TOP-SECRET"), "{shown}");
}

#[test]
fn bad_responses_are_refused_before_anything_is_written() {
    let cache = TokenCache::new();
    let cases = [
        ("http://login.example.com/t", r#"{"access_token":"A"}"#),
        ("https://login.example.com/", r#"{"access_token":"A"}"#),
        (
            "https://login.example.com/t",
            r#"{"access_token":"A","id_token":"not-a-jwt","refresh_token":"R"}"#,
        ),
        (
            "https://login.example.com/t",
            r#"{"access_token":"A","client_info":"%%%"}"#,
        ),
        (
            "https://login.example.com/t",
            r#"{"access_token":"A","expires_in":"soon"}"#,
        ),
    ];
    for (endpoint, response) in cases {
        let event = TokenEvent::new("c", ["s"])
            .token_endpoint(endpoint)
            .response_json(response)
            .expect("json");
        let err = cache.add_at(&event, 1000).expect_err(endpoint);
        assert!(
            !err.to_string().contains("not-a-jwt") || err.to_string().contains("JWT"),
            "{err}"
        );
        assert!(
            cache.is_empty(),
            "nothing written for {endpoint} {response}"
        );
    }
    // Loopback http is accepted (local test providers); CIAM without a tenant segment works.
    let ok = TokenEvent::new("c", ["s"])
        .token_endpoint("http://127.0.0.1:3000/t/token")
        .response_json(r#"{"access_token":"A"}"#)
        .expect("json");
    cache.add_at(&ok, 1000).expect("loopback");
    assert_eq!(
        tokencache::canonicalize("https://contoso.ciamlogin.com/")
            .expect("ciam")
            .realm,
        "contoso.onmicrosoft.com"
    );
}

#[test]
fn partitions_split_and_replace() {
    let mut cache_text = String::new();
    for (name, events) in common_scenarios() {
        if name == "spec_example" {
            let cache = TokenCache::new();
            for (e, now) in events {
                cache.add_at(&e, now).expect("add");
            }
            cache_text = cache.serialize();
        }
    }
    let cache = TokenCache::from_json(&cache_text).expect("parse");
    let keys = cache.partition_keys();
    let user = PartitionKey::for_account(
        "00000000-0000-0000-aaaa-111111111111.72f988bf-86f1-41af-91ab-2d7cd011db47",
    );
    let app = PartitionKey::for_app("my-daemon-app", "contoso.onmicrosoft.com");
    assert_eq!(keys, [user.clone(), app.clone()]);

    let user_doc = cache.serialize_partition(&user);
    let user_cache = TokenCache::from_json(&user_doc).expect("partition parses");
    assert_eq!(user_cache.len(Section::AccessToken), 1);
    assert_eq!(user_cache.len(Section::Account), 1);
    assert_eq!(
        user_cache.len(Section::AppMetadata),
        1,
        "only its own client's metadata"
    );
    let app_doc = cache.serialize_partition(&app);
    let app_cache = TokenCache::from_json(&app_doc).expect("parse");
    assert_eq!(app_cache.len(Section::AccessToken), 1);
    assert_eq!(app_cache.len(Section::RefreshToken), 0);

    let split = cache.split_partitions();
    assert_eq!(
        split,
        [
            (user.clone(), user_doc.clone()),
            (app.clone(), app_doc.clone())
        ]
    );

    // Re-assembling the partitions gives the whole cache back (entries and order per section).
    let whole = TokenCache::new();
    for (key, doc) in &split {
        whole.replace_partition(key, doc).expect("replace");
    }
    for s in Section::ALL {
        assert_eq!(whole.entries(s), cache.entries(s), "{s}");
    }

    // Replacing a partition drops its old entries and keeps everyone else's.
    let emptied = r#"{"AccessToken": {}}"#;
    cache.replace_partition(&user, emptied).expect("replace");
    assert_eq!(cache.all_accounts().len(), 0);
    assert_eq!(
        cache.all_access_tokens().len(),
        1,
        "the app partition stays"
    );
    assert!(matches!(
        cache.replace_partition(&user, &app_doc),
        Err(Error::ForeignPartitionEntry { .. })
    ));
}

#[test]
fn account_listing_by_username_and_home_id() {
    let cache = TokenCache::from_json(DOTNET).expect("parse");
    let q = AccountQuery {
        username: Some("JANE@contoso.COM"),
        ..Default::default()
    };
    assert_eq!(cache.accounts(&q).len(), 1);
    let q = AccountQuery {
        home_account_id: Some("uid.utid"),
        environments: &["LOGIN.microsoftonline.com"],
        ..Default::default()
    };
    assert_eq!(cache.accounts(&q).len(), 1);
    let q = AccountQuery {
        home_account_id: Some("other"),
        ..Default::default()
    };
    assert!(cache.accounts(&q).is_empty());
}

mod common;
fn common_scenarios() -> Vec<(String, Vec<(TokenEvent, i64)>)> {
    common::scenarios()
}

#[test]
fn each_sdks_own_keys_are_valid_and_updated_in_place() {
    // msal-node's keys: a trailing scheme part, a family refresh token keyed by its family id.
    let text = r#"{"RefreshToken":{"h.t-env-refreshtoken-1---":{"home_account_id":"h.t","environment":"env","credential_type":"RefreshToken","client_id":"cid","secret":"NODE-RT","family_id":"1"}},
        "IdToken":{"h.t-env-idtoken-cid-t--":{"home_account_id":"h.t","environment":"env","credential_type":"IdToken","client_id":"cid","secret":"x.e30.","realm":"t"}},
        "AccessToken":{"h.t-env-accesstoken-cid-t-user.read openid-":{"home_account_id":"h.t","environment":"env","credential_type":"AccessToken","client_id":"cid","secret":"NODE-AT","realm":"t","target":"User.Read openid","expires_on":"2000000000","token_type":"Bearer"}}}"#;
    let cache = TokenCache::from_json(text).expect("parse");
    assert!(cache.problems().is_empty(), "{:?}", cache.problems());
    assert!(cache.repair().is_empty());
    let rt = cache.all_refresh_tokens().remove(0);
    let mut refreshed = rt.entry().clone();
    refreshed.set("secret", JsonValue::string("NEW-RT"));
    refreshed.set("target", JsonValue::string("User.Read openid"));
    cache
        .put_entry(Section::RefreshToken, refreshed)
        .expect("write");
    let rts = cache.entries(Section::RefreshToken);
    assert_eq!(rts.len(), 1, "{rts:?}");
    assert_eq!(rts[0].0, "h.t-env-refreshtoken-1---", "updated in place");
    let rt = rts[0].1.as_ref().expect("entry");
    assert_eq!(rt.str_field(tokencache::Field::Secret), Some("NEW-RT"));
    assert_eq!(
        rt.str_field(tokencache::Field::Target),
        None,
        "msal-node's refresh tokens have no target"
    );
    assert!(cache.problems().is_empty(), "{:?}", cache.problems());

    // A key no SDK writes is still reported, and repair moves it.
    let odd = r#"{"IdToken":{"h.t-env-idtoken-cid":{"home_account_id":"h.t","environment":"env","credential_type":"IdToken","client_id":"cid","secret":"x.e30.","realm":"t"}}}"#;
    let cache = TokenCache::from_json(odd).expect("parse");
    assert!(
        cache
            .problems()
            .iter()
            .any(|p| p.kind == ProblemKind::NonCanonicalKey)
    );
}
