//! `TokenCache` is `Send + Sync` and loses nothing when many threads add and look up at once.

use std::sync::Arc;
use std::thread;

use base64::Engine;
use tokencache::{
    AccessTokenQuery, AccountQuery, ManualClock, RefreshTokenQuery, TokenCache, TokenEvent,
};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn token_cache_is_send_and_sync() {
    assert_send_sync::<TokenCache>();
    assert_send_sync::<tokencache::AccessToken>();
    assert_send_sync::<tokencache::Secret>();
}

fn event(thread: usize, i: usize) -> TokenEvent {
    let info = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!(r#"{{"uid":"t{thread}-u{i}","utid":"tenant"}}"#));
    TokenEvent::new("cid", ["User.Read", "openid"])
        .token_endpoint("https://login.microsoftonline.com/tenant/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&format!(
            r#"{{"access_token":"at-{thread}-{i}","refresh_token":"rt-{thread}-{i}","expires_in":3600,"client_info":"{info}"}}"#
        ))
        .expect("response")
}

#[test]
fn concurrent_adds_and_lookups_lose_nothing() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 400;
    let cache = Arc::new(TokenCache::with_clock(Arc::new(ManualClock::new(1_000))));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    cache.add_at(&event(t, i), 1_000).expect("add");
                    // Read our own write back at once, while others write.
                    let hid = format!("t{t}-u{i}.tenant");
                    let scopes = ["User.Read"];
                    let q = AccessTokenQuery::new("cid", "tenant", &scopes).account(&hid);
                    let at = cache.find_access_token(&q).expect("own write visible");
                    assert_eq!(at.secret().expect("secret").expose(), format!("at-{t}-{i}"));
                }
            })
        })
        .collect();
    let reader = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            let mut serialized = 0;
            while serialized < 20 {
                let text = cache.serialize();
                TokenCache::from_json(&text).expect("every snapshot parses");
                serialized += 1;
            }
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    reader.join().expect("reader");
    let accounts = cache.accounts(&AccountQuery::default());
    assert_eq!(accounts.len(), THREADS * PER_THREAD);
    for t in 0..THREADS {
        for i in (0..PER_THREAD).step_by(37) {
            let rts = cache.refresh_tokens(&RefreshTokenQuery::new(&format!("t{t}-u{i}.tenant")));
            assert_eq!(rts.len(), 1);
        }
    }
}
