//! Input from whoever is on the other side: a token response is bounded before any arithmetic.
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[test]
fn provider_numbers_are_clamped_never_overflowed() {
    use tokencache::MAX_LIFETIME_SECS as MAX;
    let now = 1_700_000_000;
    for (expires_in, refresh_in, want_expiry) in [
        ("9223372036854775807", "9223372036854775807", now + MAX),
        ("1e300", "1e300", now + MAX),
        ("-9223372036854775808", "-5", now),
        ("99999999999999999999999", "2400.0", now + MAX),
    ] {
        let event = tokencache::TokenEvent::new("cid", ["User.Read"])
            .token_endpoint("https://login.example/t/oauth2/v2.0/token")
            .response_json(&format!(
                r#"{{"access_token":"at","token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":{expires_in},"refresh_in":{refresh_in}}}"#
            ))
            .unwrap();
        let cache = tokencache::TokenCache::new();
        cache.add_at(&event, now).unwrap();
        let at = &cache.all_access_tokens()[0];
        assert_eq!(at.expires_on(), Some(want_expiry), "{expires_in}");
        assert_eq!(at.extended_expires_on(), Some(want_expiry), "{expires_in}");
        let refresh_on = at.entry().str_field(tokencache::Field::RefreshOn).unwrap();
        let refresh_on: f64 = refresh_on.parse().unwrap();
        assert!(
            (now as f64..=(now + MAX) as f64).contains(&refresh_on),
            "{refresh_in}: {refresh_on}"
        );
    }
    // expires_on instead of expires_in, far in the past or future.
    for expires_on in ["-9223372036854775808", "9223372036854775807"] {
        let event = tokencache::TokenEvent::new("cid", ["User.Read"])
            .token_endpoint("https://login.example/t/oauth2/v2.0/token")
            .response_json(&format!(
                r#"{{"access_token":"at","token_type":"Bearer","expires_on":{expires_on}}}"#
            ))
            .unwrap();
        let cache = tokencache::TokenCache::new();
        cache.add_at(&event, now).unwrap();
        let expiry = cache.all_access_tokens()[0].expires_on().unwrap();
        assert!(
            (now..=now + MAX).contains(&expiry),
            "{expires_on}: {expiry}"
        );
    }
}
