//! Property: whatever sequence of sign-ins, refreshes, sign-outs and cross-partition attempts
//! happens, loading a user's partition yields that user's tokens and nobody else's, and agrees
//! with a reference model.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use tokencache::{PartitionKey, TokenCache, TokenEvent};
use tokencache_store::{MemoryBackend, PartitionOptions, PartitionedCache, StoreError};

const USERS: usize = 4;

fn event(user: usize, scope: usize, n: u32) -> TokenEvent {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let response = format!(
        r#"{{"access_token":"AT-{user}-{scope}-{n}","expires_in":3600,"refresh_token":"RT-{user}-{n}","client_info":"{}"}}"#,
        b64(&format!(r#"{{"uid":"u{user}","utid":"t"}}"#)),
    );
    TokenEvent::new("web-app", [format!("api://x/s{scope}")])
        .token_endpoint("https://login.example.test/t/oauth2/v2.0/token")
        .grant_type("authorization_code")
        .response_json(&response)
        .unwrap()
}

fn key(user: usize) -> PartitionKey {
    PartitionKey::for_account(&format!("u{user}.t"))
}

#[derive(Clone, Debug)]
enum Op {
    /// A token response for `user` saved into `user`'s partition.
    SignIn { user: usize, scope: usize },
    /// A response for `other` offered to `user`'s partition: must be refused.
    CrossWrite {
        user: usize,
        other: usize,
        scope: usize,
    },
    /// Sign-out.
    SignOut { user: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..USERS, 0..3usize).prop_map(|(user, scope)| Op::SignIn { user, scope }),
        2 => (0..USERS, 0..USERS, 0..3usize)
            .prop_filter("another user", |(u, o, _)| u != o)
            .prop_map(|(user, other, scope)| Op::CrossWrite { user, other, scope }),
        1 => (0..USERS).prop_map(|user| Op::SignOut { user }),
    ]
}

fn secrets(cache: &TokenCache) -> BTreeSet<String> {
    cache
        .all_access_tokens()
        .iter()
        .map(|at| at.secret().unwrap().expose().to_owned())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_partition_only_ever_holds_its_own_user(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cache = PartitionedCache::new(Arc::new(MemoryBackend::new()), PartitionOptions {
                l1_bytes: 1 << 16,
                ..PartitionOptions::default()
            });
            // Reference model: user -> scope -> the access token secret cached for it.
            let mut model: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
            for (n, op) in ops.iter().enumerate() {
                let n = n as u32;
                match *op {
                    Op::SignIn { user, scope } => {
                        let ev = event(user, scope, n);
                        cache.update_partition(&key(user), &move |c: &TokenCache| c.add(&ev)).await.unwrap();
                        model.entry(user).or_default().insert(scope, format!("AT-{user}-{scope}-{n}"));
                    }
                    Op::CrossWrite { user, other, scope } => {
                        let ev = event(other, scope, n);
                        let e = cache.update_partition(&key(user), &move |c: &TokenCache| c.add(&ev)).await.unwrap_err();
                        prop_assert!(matches!(e, StoreError::Isolation { .. }), "{}", e);
                    }
                    Op::SignOut { user } => {
                        cache.delete_partition(&key(user)).await.unwrap();
                        model.remove(&user);
                    }
                }
                for user in 0..USERS {
                    let loaded = cache.load_partition(&key(user)).await.unwrap();
                    let keys = loaded.partition_keys();
                    prop_assert!(keys.iter().all(|k| *k == key(user)), "{:?} in {}", keys, user);
                    let expected: BTreeSet<String> = model.get(&user).map(|m| m.values().cloned().collect()).unwrap_or_default();
                    prop_assert_eq!(secrets(&loaded), expected);
                }
            }
            Ok(())
        })?;
    }
}
