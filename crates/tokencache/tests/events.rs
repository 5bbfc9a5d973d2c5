//! `TokenEvent::to_msal_event` is the exact inverse of `from_msal_event`: an event handed to
//! another process (group commit in `tokencache-file`) is applied there exactly as here.
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use tokencache::json::JsonObject;
use tokencache::{TokenCache, TokenEvent};

fn round_trip(event: &TokenEvent) -> TokenEvent {
    let text = event.to_msal_event().to_python_json(false);
    TokenEvent::from_msal_event(&JsonObject::parse(&text).unwrap()).unwrap()
}

#[test]
fn every_field_survives_the_round_trip() {
    let full = TokenEvent {
        client_id: "client".into(),
        scopes: vec!["b".into(), "A".into(), "https://x/.default".into()],
        token_endpoint: Some("https://login.example/tenant/oauth2/v2.0/token".into()),
        environment: Some("login.example".into()),
        grant_type: Some("authorization_code".into()),
        response: JsonObject::parse(r#"{"access_token":"FAKE","expires_in":3600,"n":1.50}"#)
            .unwrap(),
        data: JsonObject::parse(r#"{"key_id":"k1","claims":"{}"}"#).unwrap(),
        skip_account_creation: true,
        account_id: Some(Some("broker-account".into())),
        username: Some("user@example.com".into()),
        authority_type: Some("ADFS".into()),
    };
    assert_eq!(round_trip(&full), full);
    for account_id in [None, Some(None)] {
        let event = TokenEvent {
            account_id,
            ..full.clone()
        };
        assert_eq!(round_trip(&event), event);
    }
    assert_eq!(
        round_trip(&TokenEvent::default()),
        TokenEvent::default(),
        "an empty event"
    );
}

#[test]
fn scenario_events_apply_identically_after_the_round_trip() {
    let mut checked = 0;
    for (name, events) in common::scenarios() {
        let direct = TokenCache::new();
        let handed_over = TokenCache::new();
        for (event, now) in &events {
            let copy = round_trip(event);
            assert_eq!(&copy, event, "{name}");
            let a = direct.add_at(event, *now);
            let b = handed_over.add_at(&copy, *now);
            assert_eq!(a.is_ok(), b.is_ok(), "{name}");
            checked += 1;
        }
        assert_eq!(direct.serialize(), handed_over.serialize(), "{name}");
    }
    assert!(checked > 10, "the scenarios hold events ({checked})");
}
