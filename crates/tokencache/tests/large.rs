//! Large documents (parsed by two threads, see `load.rs`) give exactly what one sequential
//! parse gives: the generic JSON parser, which is always sequential, is the reference.

use base64::Engine;
use tokencache::json::{parse_value, to_python_json};
use tokencache::{Error, Section, TokenCache, TokenEvent};

fn big_cache(users: usize) -> String {
    let cache = TokenCache::new();
    for i in 0..users {
        let info = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"uid":"u{i}","utid":"t"}}"#));
        let event = TokenEvent::new("cid", ["User.Read", "openid"])
            .token_endpoint("https://login.microsoftonline.com/t/oauth2/v2.0/token")
            .grant_type("authorization_code")
            .response_json(&format!(
                r#"{{"access_token":"{}","refresh_token":"rt-{i}","expires_in":3600,"client_info":"{info}"}}"#,
                "a".repeat(600)
            ))
            .expect("response");
        cache.add_at(&event, 1_700_000_000).expect("add");
    }
    let text = cache.serialize();
    assert!(
        text.len() > 5 << 20,
        "large enough for the two-thread path: {}",
        text.len()
    );
    text
}

fn reference(text: &str) -> String {
    to_python_json(&parse_value(text).expect("generic parse"), true)
}

#[test]
fn large_documents_round_trip_exactly() {
    let text = big_cache(5000);
    let cache = TokenCache::from_json(&text).expect("parse");
    assert_eq!(cache.serialize(), text);
    assert_eq!(cache.len(Section::AccessToken), 5000);
    assert_eq!(cache.len(Section::Account), 5000);
    assert!(cache.problems().is_empty());
}

#[test]
fn duplicates_across_the_split_keep_python_semantics() {
    let text = big_cache(5000);
    // Repeat the first access token (new value) at the end of its section, and the whole
    // Account section at the end of the document.
    let first_key_start = text.find("\"AccessToken\": {\n        \"").expect("AT")
        + "\"AccessToken\": {\n        ".len();
    let first_key_end =
        text[first_key_start + 1..].find('"').expect("key end") + first_key_start + 2;
    let key = &text[first_key_start..first_key_end];
    let at_end = text
        .find("\n    },\n    \"Account\"")
        .expect("end of AT section");
    let mut doc = String::new();
    doc.push_str(&text[..at_end]);
    doc.push_str(&format!(
        ",\n        {key}: {{\"secret\": \"replaced\", \"x\": 1}}"
    ));
    doc.push_str(&text[at_end..text.len() - 2]);
    doc.push_str(",\n    \"Account\": {\n        \"only\": {\"home_account_id\": \"h\", \"environment\": \"e\", \"realm\": \"r\", \"authority_type\": \"MSSTS\"}\n    }\n}");
    let cache = TokenCache::from_json(&doc).expect("parse");
    assert_eq!(cache.serialize(), reference(&doc));
    assert_eq!(
        cache.len(Section::Account),
        1,
        "the later Account section replaced the first"
    );
    assert_eq!(
        cache.entries(Section::AccessToken)[0].0,
        key.trim_matches('"'),
        "first position kept"
    );
}

#[test]
fn errors_after_the_split_are_reported_where_they_are() {
    let text = big_cache(5000);
    let at = text.len() * 3 / 4;
    let at = at + text[at..].find("\"secret\"").expect("a secret member");
    let mut doc = text.clone();
    doc.replace_range(at..at + 1, "?");
    let ours = TokenCache::from_json(&doc).expect_err("corrupt");
    let generic = parse_value(&doc).expect_err("corrupt");
    let (
        Error::Json {
            line: l1,
            column: c1,
            ..
        },
        Error::Json {
            line: l2,
            column: c2,
            ..
        },
    ) = (&ours, &generic)
    else {
        panic!("{ours} / {generic}");
    };
    assert_eq!((l1, c1), (l2, c2), "{ours} / {generic}");
    let line = doc[..at].matches('\n').count() + 1;
    assert_eq!(*l1, line);
}

#[test]
fn a_split_inside_a_foreign_member_falls_back_to_one_parse() {
    let mut doc = String::from("{\n    \"x_foreign\": {\n");
    for i in 0..200_000 {
        doc.push_str(&format!(
            "        \"member-{i}\": \"{}\",\n",
            "v".repeat(20)
        ));
    }
    doc.push_str("        \"last\": 1\n    },\n    \"AccessToken\": {}\n}");
    let cache = TokenCache::from_json(&doc).expect("parse");
    assert_eq!(cache.serialize(), reference(&doc));
}

#[test]
fn indexes_built_by_two_threads_find_every_token_and_miss_the_rest() {
    let text = big_cache(5000);
    let clock = std::sync::Arc::new(tokencache::ManualClock::new(1_700_000_100));
    let cache = TokenCache::with_clock(clock);
    cache.deserialize(&text).expect("parse");
    let scopes = ["User.Read"];
    for i in (0..5000).step_by(7) {
        let home = format!("u{i}.t");
        let query = tokencache::AccessTokenQuery::new("cid", "t", &scopes).account(&home);
        let found = cache
            .find_access_token(&query)
            .expect("every user's token is found");
        assert_eq!(found.home_account_id(), Some(home.as_str()));
        let other_client = tokencache::AccessTokenQuery::new("other", "t", &scopes).account(&home);
        assert!(cache.find_access_token(&other_client).is_none());
    }
    let stranger = tokencache::AccessTokenQuery::new("cid", "t", &scopes).account("u5000.t");
    assert!(cache.find_access_token(&stranger).is_none());
}
