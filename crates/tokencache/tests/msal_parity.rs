//! Every cache behaviour asserted by MSAL Python 1.39's `tests/test_token_cache.py` (spec §6.1),
//! ported, plus the cache-level parts of `test_application.py`.

use base64::Engine;
use tokencache::claims::{merge_claims, parse_claims};
use tokencache::json::{JsonObject, JsonValue};
use tokencache::keys::{access_token_key, ext_cache_key};
use tokencache::{
    AccessTokenQuery, AccountQuery, Entry, RefreshTokenQuery, Section, TokenCache, TokenEvent,
};

fn b64(json: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn id_token(claims: &str) -> String {
    format!("{}.{}.sig", b64(r#"{"alg":"none"}"#), b64(claims))
}

fn obj(pairs: &[(&str, &str)]) -> JsonObject {
    let mut o = JsonObject::new();
    for (k, v) in pairs {
        o.insert(k, JsonValue::string(v));
    }
    o
}

fn aad_event(scopes: &[&str]) -> TokenEvent {
    let response = format!(
        r#"{{"access_token":"an access token","token_type":"some type","expires_in":3600,"refresh_token":"a refresh token",
        "client_info":"{}","id_token":"{}","scope":"s2 s1 s3","ext_expires_in":7200}}"#,
        b64(r#"{"uid":"uid","utid":"utid"}"#),
        id_token(
            r#"{"sub":"subject","oid":"object1234","preferred_username":"John Doe","aud":"my_client_id"}"#
        )
    );
    TokenEvent::new("my_client_id", scopes.iter().copied())
        .token_endpoint("https://login.example.com/contoso/v2/token")
        .response_json(&response)
        .expect("response")
}

#[test]
fn add_by_aad_writes_the_exact_entries_and_keys() {
    let cache = TokenCache::new();
    cache
        .add_at(&aad_event(&["s2", "s1", "s3"]), 1000)
        .expect("add");
    let at_key = "uid.utid-login.example.com-accesstoken-my_client_id-contoso-s1 s2 s3";
    let entries = cache.entries(Section::AccessToken);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, at_key);
    let at = entries[0].1.clone().expect("entry");
    let expect = [
        ("cached_at", "1000"),
        ("client_id", "my_client_id"),
        ("credential_type", "AccessToken"),
        ("environment", "login.example.com"),
        ("expires_on", "4600"),
        ("extended_expires_on", "8200"),
        ("home_account_id", "uid.utid"),
        ("realm", "contoso"),
        ("secret", "an access token"),
        ("target", "s1 s2 s3"),
        ("token_type", "some type"),
    ];
    for (k, v) in expect {
        assert_eq!(at.get(k).and_then(JsonValue::as_str), Some(v), "{k}");
    }
    assert_eq!(at.len(), expect.len());

    let rt = cache.entries(Section::RefreshToken);
    assert_eq!(
        rt[0].0,
        "uid.utid-login.example.com-refreshtoken-my_client_id--s1 s2 s3"
    );
    let acct = cache.entries(Section::Account);
    assert_eq!(acct[0].0, "uid.utid-login.example.com-contoso");
    let a = acct[0].1.clone().expect("account");
    assert_eq!(
        a.get("local_account_id").and_then(JsonValue::as_str),
        Some("object1234")
    );
    assert_eq!(
        a.get("username").and_then(JsonValue::as_str),
        Some("John Doe")
    );
    assert_eq!(
        a.get("authority_type").and_then(JsonValue::as_str),
        Some("MSSTS")
    );
    assert_eq!(
        cache.entries(Section::IdToken)[0].0,
        "uid.utid-login.example.com-idtoken-my_client_id-contoso-"
    );
    let meta = cache.entries(Section::AppMetadata);
    assert_eq!(meta[0].0, "appmetadata-login.example.com-my_client_id");
    // find with no constraints works
    assert_eq!(cache.all_access_tokens().len(), 1);
}

#[test]
fn add_by_adfs_uses_sub_and_upn() {
    let response = format!(
        r#"{{"access_token":"AT","token_type":"Bearer","expires_in":3600,"refresh_token":"RT","id_token":"{}"}}"#,
        id_token(r#"{"sub":"subject","upn":"JaneDoe@example.com","aud":"my_client_id"}"#)
    );
    let event = TokenEvent::new("my_client_id", ["s1"])
        .token_endpoint("https://fs.msidlab8.com/adfs/oauth2/token")
        .response_json(&response)
        .expect("response");
    let cache = TokenCache::new();
    cache.add_at(&event, 1000).expect("add");
    let acct = cache.all_accounts();
    assert_eq!(acct[0].key(), "subject-fs.msidlab8.com-adfs");
    assert_eq!(acct[0].home_account_id(), Some("subject"));
    assert_eq!(acct[0].realm(), Some("adfs"));
    assert_eq!(acct[0].authority_type(), Some("ADFS"));
    assert_eq!(acct[0].username(), Some("JaneDoe@example.com"));
    assert_eq!(
        cache.all_access_tokens()[0].key(),
        "subject-fs.msidlab8.com-accesstoken-my_client_id-adfs-s1"
    );
}

fn app_event(data: JsonObject, token: &str) -> TokenEvent {
    TokenEvent::new("my_client_id", ["s1"])
        .token_endpoint("https://login.example.com/contoso/v2/token")
        .data(data)
        .response_json(&format!(
            r#"{{"access_token":"{token}","expires_in":3600}}"#
        ))
        .expect("response")
}

#[test]
fn key_id_is_recorded_and_searchable() {
    let cache = TokenCache::new();
    cache
        .add_at(&app_event(obj(&[("key_id", "test_key_id")]), "AT"), 1000)
        .expect("add");
    let at = &cache.all_access_tokens()[0];
    assert_eq!(at.key_id(), Some("test_key_id"));
    let scopes = ["s1"];
    let env = ["login.example.com"];
    let q = AccessTokenQuery::new("my_client_id", "contoso", &scopes).environments(&env);
    let clock_now_independent =
        TokenCache::with_clock(std::sync::Arc::new(tokencache::ManualClock::new(1000)));
    clock_now_independent
        .deserialize(&cache.serialize())
        .expect("reload");
    assert!(
        clock_now_independent
            .find_access_token(&q.clone().key_id("test_key_id"))
            .is_some()
    );
    assert!(
        clock_now_independent
            .find_access_token(&q.key_id("other"))
            .is_none()
    );
}

#[test]
fn access_tokens_with_different_key_id_share_one_key() {
    let cache = TokenCache::new();
    cache
        .add_at(&app_event(obj(&[("key_id", "1")]), "AT1"), 1000)
        .expect("add");
    cache
        .add_at(&app_event(obj(&[("key_id", "2")]), "AT2"), 1000)
        .expect("add");
    let ats = cache.all_access_tokens();
    assert_eq!(ats.len(), 1, "key_id is not part of the key");
    assert_eq!(ats[0].key_id(), Some("2"));
}

#[test]
fn refresh_in_is_recorded_as_refresh_on() {
    let cache = TokenCache::new();
    let event = app_event(JsonObject::new(), "AT")
        .response_json(r#"{"access_token":"AT","expires_in":3600,"refresh_in":1800}"#)
        .expect("response");
    cache.add_at(&event, 1000).expect("add");
    let at = &cache.all_access_tokens()[0];
    assert_eq!(
        at.entry().get("refresh_on").and_then(JsonValue::as_str),
        Some("2800")
    );
    assert_eq!(at.refresh_on(), Some(2800));
}

#[test]
fn rt_under_a_wrong_key_is_salvaged_into_the_canonical_key() {
    let cache = TokenCache::new();
    let mut rt = Entry::new();
    for (k, v) in [
        ("credential_type", "RefreshToken"),
        ("secret", "old"),
        ("home_account_id", "uid.utid"),
        ("environment", "login.example.com"),
        ("client_id", "my_client_id"),
        ("target", "s1"),
    ] {
        rt.set(k, JsonValue::string(v));
    }
    cache
        .put_entry_at(Section::RefreshToken, "an arbitrary, wrong key", rt)
        .expect("put");
    let env = ["login.example.com"];
    let found = cache.refresh_tokens(&RefreshTokenQuery::new("uid.utid").environments(&env));
    assert_eq!(found.len(), 1, "found although its key is not canonical");
    let mut updated = found[0].entry().clone();
    updated.set("secret", JsonValue::string("new"));
    cache
        .put_entry(Section::RefreshToken, updated)
        .expect("modify");
    let all = cache.entries(Section::RefreshToken);
    // MSAL Python leaves the old entry behind as a duplicate; tokencache replaces it.
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].0,
        "uid.utid-login.example.com-refreshtoken-my_client_id--s1"
    );
    assert_eq!(
        all[0]
            .1
            .as_ref()
            .and_then(|e| e.get("secret"))
            .and_then(JsonValue::as_str),
        Some("new")
    );
}

#[test]
fn has_state_changed_follows_add_and_serialize() {
    let cache = TokenCache::new();
    assert!(!cache.has_state_changed());
    cache
        .add_at(&TokenEvent::default(), 1000)
        .expect("empty add");
    assert!(
        cache.has_state_changed(),
        "even a no-op add counts, as in MSAL"
    );
    cache.serialize();
    assert!(!cache.has_state_changed());
    cache.deserialize("{}").expect("deserialize");
    assert!(!cache.has_state_changed());
}

#[test]
fn unknown_top_level_members_and_entries_survive() {
    let cache = TokenCache::new();
    cache.add_at(&aad_event(&["s1"]), 1000).expect("add");
    let mut text = cache.serialize();
    text.insert_str(1, "\n    \"customized\": \"whatever\",");
    let text = text.replacen(
        "\"AccessToken\": {",
        "\"AccessToken\": {\n        \"an-entry\": \"hello, world\",",
        1,
    );
    let reloaded = TokenCache::from_json(&text).expect("parse");
    assert_eq!(reloaded.serialize(), text);
    reloaded.add_at(&aad_event(&["s9"]), 2000).expect("add");
    let after = reloaded.serialize();
    assert!(after.contains("\"customized\": \"whatever\""));
    assert!(after.contains("\"an-entry\": \"hello, world\""));
}

// ----- _compute_ext_cache_key -------------------------------------------------------------

#[test]
fn ext_cache_key_of_empty_or_excluded_data_is_empty() {
    assert_eq!(ext_cache_key(&JsonObject::new()), "");
    let excluded = obj(&[
        ("key_id", "k"),
        ("token_type", "pop"),
        ("req_cnf", "r"),
        ("claims", "{}"),
    ]);
    assert_eq!(ext_cache_key(&excluded), "");
    assert_eq!(
        ext_cache_key(&obj(&[("fmi_path", "")])),
        "",
        "an empty value is ignored"
    );
    assert_eq!(ext_cache_key(&obj(&[("client_claims", "")])), "");
}

#[test]
fn ext_cache_key_hashes_non_excluded_fields_deterministically() {
    let a = ext_cache_key(&obj(&[("fmi_path", "path/a")]));
    assert!(!a.is_empty());
    assert_eq!(a, ext_cache_key(&obj(&[("fmi_path", "path/a")])));
    assert_ne!(a, ext_cache_key(&obj(&[("fmi_path", "path/b")])));
    assert_eq!(
        a,
        ext_cache_key(&obj(&[
            ("fmi_path", "path/a"),
            ("client_id", "x"),
            ("scope", "y"),
            ("password", "z")
        ]))
    );
    assert_ne!(
        a,
        ext_cache_key(&obj(&[("fmi_path", "path/a"), ("custom_param", "v")]))
    );
    let cc = ext_cache_key(&obj(&[("client_claims", r#"{"a":1}"#)]));
    assert!(!cc.is_empty());
    assert_eq!(ext_cache_key(&obj(&[("claims", r#"{"a":1}"#)])), "");
    assert_ne!(cc, ext_cache_key(&obj(&[("client_claims", r#"{"a":2}"#)])));
}

#[test]
fn ext_cache_key_golden_vectors() {
    let vectors: &[(&[(&str, &str)], &str)] = &[
        (
            &[("fmi_path", "SomeFmiPath/Cred")],
            "2e_axlhg1h9qjyopcsi_evuplq057p6i8mslc940gxc",
        ),
        (
            &[("key1", "value1"), ("key2", "value2")],
            "latlwkpewb_a0rcsmjvkecqt0_huumkw4sflzociike",
        ),
        (
            &[("key3", "value3"), ("key4", "value4")],
            "jjoe9jgfmdtnj0rzuetsqy7kzs2m1xfnjjxwsfxsrxq",
        ),
        (
            &[("fmi_path", "agent-app-id")],
            "a0ry_zl4gccsdp7gnw927x8s0mrmnodv6tyilt0u07m",
        ),
        (
            &[("a", "b"), ("cd", "e")],
            "cybgactkrvlzlen1aiwzwl3ay5krkyixommrobc-ri4",
        ),
        (&[("é", "é")], "xskzaoz4ibr3mznftyxctvg1ptuh-0fuzpty7ndbfls"),
    ];
    for (data, want) in vectors {
        assert_eq!(ext_cache_key(&obj(data)), *want, "{data:?}");
        let reversed: Vec<_> = data.iter().rev().copied().collect();
        assert_eq!(ext_cache_key(&obj(&reversed)), *want, "order independence");
    }
}

#[test]
fn ext_cache_key_resists_boundary_collisions() {
    let k = |d: &[(&str, &str)]| ext_cache_key(&obj(d));
    assert_ne!(k(&[("fmi_path", "value")]), k(&[("fmi_pat", "hvalue")]));
    assert_ne!(k(&[("a", "b"), ("cd", "e")]), k(&[("ab", "c"), ("d", "e")]));
    assert_ne!(k(&[("a", "1:b")]), k(&[("a1", ":b")]));
    assert_ne!(
        k(&[("k", "e\u{301}")]),
        k(&[("k", "\u{e9}")]),
        "UTF-8 byte lengths, not code points"
    );
    let alphabet = ["", "a", "1", ":", "1:", "a1:", ":a"];
    let mut seen = std::collections::HashMap::new();
    for k1 in &alphabet[1..] {
        for v1 in &alphabet[1..] {
            for v2 in &alphabet[1..] {
                let d = [(*k1, *v1), ("zz", *v2)];
                let h = k(&d);
                if let Some(prev) = seen.insert(h, format!("{d:?}")) {
                    panic!("collision: {prev} vs {d:?}");
                }
            }
        }
    }
    assert!(seen.len() > 100);
}

// ----- claims helpers ---------------------------------------------------------------------

#[test]
fn claims_parse_accepts_objects_only_and_never_echoes_input() {
    assert!(parse_claims(r#"{"id_token":{"auth_time":{"essential":true}}}"#).is_ok());
    for bad in ["[1]", "null", "1", "\"s\"", "{not json", "secret-value-xyz"] {
        let err = parse_claims(bad).expect_err(bad).to_string();
        assert!(
            !err.contains("secret-value-xyz") && !err.contains("not json"),
            "{err}"
        );
    }
}

#[test]
fn claims_merge_deep_merges_with_the_second_winning() {
    assert_eq!(
        merge_claims(None, Some("{\"a\":1}"))
            .expect("ok")
            .as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(
        merge_claims(Some("{\"a\":1}"), Some(""))
            .expect("ok")
            .as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(merge_claims(None, Some("")).expect("ok"), None);
    let merged = merge_claims(
        Some(r#"{"access_token":{"xms_cc":{"values":["cp1"]},"keep":1}}"#),
        Some(r#"{"access_token":{"xms_cc":{"values":["cp2"]},"other":2},"id_token":{}}"#),
    )
    .expect("ok")
    .expect("some");
    assert_eq!(
        merged,
        r#"{"access_token": {"xms_cc": {"values": ["cp2"]}, "keep": 1, "other": 2}, "id_token": {}}"#
    );
}

// ----- ext_cache_key isolation ------------------------------------------------------------

#[test]
fn ext_cache_key_isolates_access_tokens() {
    let plain = access_token_key("", "env", "cid", "realm", "s", None);
    let fmi = access_token_key("", "env", "cid", "realm", "s", Some("hash"));
    assert_eq!(plain, "-env-accesstoken-cid-realm-s");
    assert_eq!(fmi, "-env-atext-cid-realm-s-hash");
    assert_ne!(
        fmi,
        access_token_key("", "env", "cid", "realm", "s", Some("other"))
    );
    assert_eq!(
        access_token_key(
            "testHid",
            "env",
            "clientId",
            "realm",
            "User.Read",
            Some("h")
        ),
        "testhid-env-atext-clientid-realm-user.read-h"
    );

    let cache = TokenCache::with_clock(std::sync::Arc::new(tokencache::ManualClock::new(1000)));
    cache
        .add_at(&app_event(obj(&[("fmi_path", "p1")]), "FMI"), 1000)
        .expect("add");
    let scopes = ["s1"];
    let env = ["login.example.com"];
    let q = AccessTokenQuery::new("my_client_id", "contoso", &scopes).environments(&env);
    assert!(
        cache.find_access_token(&q).is_none(),
        "not returned to a query without ext_cache_key"
    );
    let hash = ext_cache_key(&obj(&[("fmi_path", "p1")]));
    assert_eq!(
        cache
            .find_access_token(&q.clone().ext_cache_key(&hash))
            .and_then(|t| t.secret())
            .map(|s| s.expose().to_owned()),
        Some("FMI".to_owned())
    );
    cache
        .add_at(&app_event(JsonObject::new(), "PLAIN"), 1000)
        .expect("add");
    let plain_hit = cache.access_tokens(&q);
    assert_eq!(plain_hit.len(), 1);
    assert_eq!(plain_hit[0].secret().expect("secret").expose(), "PLAIN");
    // remove_tokens_for_client keeps atext tokens, as MSAL does
    assert_eq!(cache.remove_app_tokens("my_client_id", &env), 1);
    assert_eq!(cache.all_access_tokens().len(), 1);
}

// ----- application-level cache behaviours -------------------------------------------------

#[test]
fn access_token_is_cached_under_the_response_scope() {
    let cache = TokenCache::with_clock(std::sync::Arc::new(tokencache::ManualClock::new(1000)));
    let event =
        TokenEvent::new("cid", ["s1", "s2"]) // the response's scope, as MSAL records it
            .token_endpoint("https://login.microsoftonline.com/common/oauth2/v2.0/token")
            .response_json(r#"{"access_token":"AT","expires_in":3600,"scope":"s1 s2"}"#)
            .expect("response");
    cache.add_at(&event, 1000).expect("add");
    let hit = |scopes: &[&str]| {
        cache
            .find_access_token(&AccessTokenQuery::new("cid", "common", scopes))
            .is_some()
    };
    assert!(!hit(&["s3"]), "the originally requested scope misses");
    assert!(hit(&["s1"]) && hit(&["s2"]) && hit(&["s2", "s1"]));
}

#[test]
fn accounts_of_two_tenants_share_a_home_account() {
    let cache = TokenCache::new();
    for tenant in ["tenant1", "tenant2"] {
        let event = aad_event(&["s1"])
            .token_endpoint(format!("https://login.example.com/{tenant}/v2/token"));
        cache.add_at(&event, 1000).expect("add");
    }
    let accounts = cache.accounts(&AccountQuery {
        environments: &["login.example.com"],
        ..Default::default()
    });
    assert_eq!(accounts.len(), 2);
    assert!(
        accounts
            .iter()
            .all(|a| a.home_account_id() == Some("uid.utid"))
    );
    let by_name = cache.accounts(&AccountQuery {
        username: Some("JOHN DOE"),
        ..Default::default()
    });
    assert_eq!(by_name.len(), 2, "usernames compare case-insensitively");
}

#[test]
fn family_app_remove_account_forgets_the_home_account() {
    let cache = TokenCache::new();
    let foci = |client: &str| {
        let response = format!(
            r#"{{"access_token":"AT-{client}","expires_in":3600,"refresh_token":"RT-{client}","foci":"1",
            "client_info":"{}","id_token":"{}"}}"#,
            b64(r#"{"uid":"uid","utid":"utid"}"#),
            id_token(r#"{"sub":"s","oid":"o","preferred_username":"u"}"#)
        );
        TokenEvent::new(client, ["s1"])
            .token_endpoint("https://login.microsoftonline.com/common/oauth2/v2.0/token")
            .grant_type("authorization_code")
            .response_json(&response)
            .expect("response")
    };
    cache.add_at(&foci("family_app"), 1000).expect("add");
    cache
        .add_at(&foci("another_family_app"), 1000)
        .expect("add");
    let removed = cache.forget_account("uid.utid", &["login.microsoftonline.com"], "family_app");
    assert_eq!(removed.refresh_tokens, 2, "own RT and the family's");
    assert_eq!(removed.access_tokens, 2);
    assert_eq!(removed.id_tokens, 2);
    assert_eq!(removed.accounts, 1);
    assert_eq!(cache.len(Section::AppMetadata), 2, "app metadata stays");
}

#[test]
fn authority_aliases_find_tokens_cached_under_another_host() {
    let cache = TokenCache::with_clock(std::sync::Arc::new(tokencache::ManualClock::new(1000)));
    let event = aad_event(&["s1"]).token_endpoint("https://sts.windows.net/contoso/v2/token");
    cache.add_at(&event, 1000).expect("add");
    let scopes = ["s1"];
    let aliases = ["login.microsoftonline.com", "sts.windows.net"];
    let q = AccessTokenQuery::new("my_client_id", "contoso", &scopes)
        .account("uid.utid")
        .environments(&aliases);
    assert!(cache.find_access_token(&q).is_some());
    assert_eq!(
        cache
            .refresh_tokens(&RefreshTokenQuery::new("uid.utid").environments(&aliases))
            .len(),
        1
    );
    assert_eq!(
        cache
            .accounts(&AccountQuery {
                environments: &aliases,
                ..Default::default()
            })
            .len(),
        1
    );
}

#[test]
fn expired_access_tokens_are_not_served_and_can_be_purged() {
    let clock = std::sync::Arc::new(tokencache::ManualClock::new(1000));
    let cache = TokenCache::with_clock(clock.clone());
    cache
        .add_at(&app_event(JsonObject::new(), "AT"), 1000)
        .expect("add");
    let scopes = ["s1"];
    let env = ["login.example.com"];
    let q = AccessTokenQuery::new("my_client_id", "contoso", &scopes).environments(&env);
    clock.set(4600);
    assert!(
        cache.find_access_token(&q).is_some(),
        "expires_on == now is kept (strict <)"
    );
    clock.set(4601);
    assert!(cache.find_access_token(&q).is_none());
    assert_eq!(cache.purge_expired_access_tokens(4600), 0);
    assert_eq!(cache.purge_expired_access_tokens(4601), 1);
    assert_eq!(cache.len(Section::AccessToken), 0);
}

#[test]
fn removal_creates_empty_sections_like_msal() {
    let cache = TokenCache::new();
    cache
        .remove_entry(Section::RefreshToken, "nope")
        .expect("remove");
    assert_eq!(cache.serialize(), "{\n    \"RefreshToken\": {}\n}");
}

#[test]
fn update_refresh_token_keeps_key_position_and_foreign_fields() {
    let cache = TokenCache::new();
    cache.add_at(&aad_event(&["s1"]), 1000).expect("add");
    let text = cache.serialize().replace(
        "\"last_modification_time\"",
        "\"x_foreign\": 1.0,\n            \"last_modification_time\"",
    );
    cache.deserialize(&text).expect("parse");
    let rt = cache.all_refresh_tokens().remove(0);
    assert!(cache.update_refresh_token(&rt, "rotated", 5000));
    let after = cache.all_refresh_tokens().remove(0);
    assert_eq!(after.key(), rt.key());
    assert_eq!(after.secret().expect("secret").expose(), "rotated");
    assert_eq!(after.last_modification_time(), Some(5000));
    assert!(cache.serialize().contains("\"x_foreign\": 1.0,"));
}
