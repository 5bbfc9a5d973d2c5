//! Property tests: round trips on arbitrary caches, the indexes against a naive reference
//! model under random mutation sequences, and no panic on any input.

use std::sync::Arc;

use proptest::prelude::*;
use tokencache::json::{JsonValue, parse_value, to_python_json};
use tokencache::keys::{access_token_key, account_key, app_metadata_key, refresh_token_key};
use tokencache::{
    AccessTokenQuery, AccountQuery, ManualClock, RefreshTokenQuery, Section, TokenCache, TokenEvent,
};

// ----- arbitrary JSON and caches ----------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._:/-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        Just("J\u{f6}rg \u{1f600} \"q\" \\ \n\t\u{7f}".to_owned()),
    ]
}

fn arb_scalar() -> impl Strategy<Value = JsonValue> {
    prop_oneof![
        Just(JsonValue::Null),
        any::<bool>().prop_map(JsonValue::Bool),
        any::<i64>().prop_map(|n| JsonValue::Number(n.to_string().into())),
        prop_oneof![
            Just("1.0"),
            Just("-0.5e-3"),
            Just("1E5"),
            Just("NaN"),
            Just("-Infinity"),
            Just("0")
        ]
        .prop_map(|n| JsonValue::Number(n.into())),
        arb_string().prop_map(|s| JsonValue::string(&s)),
    ]
}

fn arb_value() -> impl Strategy<Value = JsonValue> {
    arb_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| JsonValue::Array(v.into())),
            prop::collection::vec((arb_string(), inner), 0..4)
                .prop_map(|m| JsonValue::Object(Box::new(m.into_iter().collect()))),
        ]
    })
}

const SECTIONS: [&str; 6] = [
    "AccessToken",
    "RefreshToken",
    "IdToken",
    "Account",
    "AppMetadata",
    "foreign",
];
const FIELDS: [&str; 10] = [
    "credential_type",
    "secret",
    "home_account_id",
    "environment",
    "client_id",
    "target",
    "realm",
    "expires_on",
    "family_id",
    "x_unknown",
];

/// An arbitrary cache document: known and unknown sections, entries with known, unknown and
/// repeated fields of any type, some entries that are not objects.
fn arb_cache_text() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        4 => prop::collection::vec((prop::sample::select(&FIELDS[..]), prop_oneof![arb_scalar(), arb_value()]), 0..8)
            .prop_map(|fields| {
                let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {}", to_python_json(v, false))).collect();
                format!("{{{}}}", members.join(", "))
            }),
        1 => arb_value().prop_map(|v| to_python_json(&v, false)),
    ];
    let section = prop::collection::vec((arb_string(), entry), 0..5).prop_map(|entries| {
        let members: Vec<String> = entries
            .iter()
            .map(|(k, e)| format!("{}: {e}", to_python_json(&JsonValue::string(k), false)))
            .collect();
        format!("{{{}}}", members.join(", "))
    });
    prop::collection::vec((prop::sample::select(&SECTIONS[..]), section), 0..6).prop_map(
        |sections| {
            let members: Vec<String> = sections
                .iter()
                .map(|(k, s)| format!("\"{k}\": {s}"))
                .collect();
            format!("{{{}}}", members.join(", "))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn json_values_round_trip(v in arb_value()) {
        for indent in [false, true] {
            let text = to_python_json(&v, indent);
            prop_assert!(text.is_ascii());
            let back = parse_value(&text).expect("own output parses");
            prop_assert_eq!(to_python_json(&back, indent), text);
        }
    }

    #[test]
    fn deserialize_then_serialize_is_the_identity(text in arb_cache_text()) {
        let cache = TokenCache::from_json(&text).expect("valid JSON object");
        let once = cache.serialize();
        let again = TokenCache::from_json(&once).expect("reparse").serialize();
        prop_assert_eq!(&again, &once);
        // Dict semantics: parsing the compact input and re-dumping it equals the generic
        // JSON model's view of the same text.
        let generic = parse_value(&text).expect("generic parse");
        prop_assert_eq!(once, to_python_json(&generic, true));
    }

    #[test]
    fn repair_leaves_no_problem_and_keeps_every_sound_entry(text in arb_cache_text()) {
        let cache = TokenCache::from_json(&text).expect("valid JSON object");
        let flagged: std::collections::HashSet<(String, String)> = cache
            .problems()
            .into_iter()
            .map(|p| (p.section, p.key))
            .collect();
        let sections = [Section::AccessToken, Section::RefreshToken, Section::IdToken, Section::Account, Section::AppMetadata];
        let sound: Vec<(Section, String)> = sections
            .iter()
            .flat_map(|&s| cache.entries(s).into_iter().map(move |(k, _)| (s, k)))
            .filter(|(s, k)| !flagged.contains(&(s.name().to_owned(), k.clone())))
            .collect();
        let repairs = cache.repair();
        prop_assert_eq!(repairs.is_empty(), flagged.is_empty());
        prop_assert!(cache.problems().is_empty(), "{:?}", cache.problems());
        prop_assert!(cache.repair().is_empty(), "a second repair changes nothing");
        let reread = TokenCache::from_json(&cache.serialize()).expect("reparse");
        prop_assert!(reread.problems().is_empty());
        for (s, key) in sound {
            prop_assert!(cache.entries(s).iter().any(|(k, e)| *k == key && e.is_some()), "{} {:?} kept", s.name(), key);
        }
    }

    #[test]
    fn no_input_makes_the_reader_panic(text in any::<String>()) {
        let _ = TokenCache::from_json(&text);
        let _ = parse_value(&text);
    }

    #[test]
    fn corrupted_caches_never_panic(cut in 0usize..5000, flips in prop::collection::vec((0usize..5000, any::<u8>()), 0..4)) {
        let golden = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/golden/spec_example.json")).expect("golden");
        let mut bytes = golden[..cut.min(golden.len())].to_vec();
        for (at, b) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = b;
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(cache) = TokenCache::from_json(&text) {
            let _ = cache.problems();
            let _ = cache.serialize();
            let _ = cache.split_partitions();
            for t in cache.all_access_tokens() {
                let _ = (t.expires_on(), t.refresh_on(), t.scopes().count());
            }
            let _ = cache.purge_expired_access_tokens(1_700_000_000);
        }
    }
}

// ----- random operations against a reference model ----------------------------------------

#[derive(Clone, Debug)]
enum Op {
    AddUser {
        user: u8,
        client: u8,
        tenant: u8,
        scopes: Vec<u8>,
        life: i64,
        foci: bool,
    },
    AddApp {
        client: u8,
        tenant: u8,
        resource: u8,
        life: i64,
    },
    RemoveEverywhere {
        user: u8,
    },
    Forget {
        user: u8,
        client: u8,
    },
    Purge,
    Tick(i64),
    Reload,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u8..4, 0u8..3, 0u8..2, prop::collection::vec(0u8..4, 1..3), 1i64..200, any::<bool>())
            .prop_map(|(user, client, tenant, scopes, life, foci)| Op::AddUser { user, client, tenant, scopes, life, foci }),
        3 => (0u8..3, 0u8..3, 0u8..3, 1i64..200).prop_map(|(client, tenant, resource, life)| Op::AddApp { client, tenant, resource, life }),
        1 => (0u8..4).prop_map(|user| Op::RemoveEverywhere { user }),
        1 => (0u8..4, 0u8..3).prop_map(|(user, client)| Op::Forget { user, client }),
        1 => Just(Op::Purge),
        2 => (1i64..120).prop_map(Op::Tick),
        1 => Just(Op::Reload),
    ]
}

const ENV: &str = "login.microsoftonline.com";
const SCOPES: [&str; 4] = ["User.Read", "Mail.Read", "openid", "Files.Read"];

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// One entry in the naive model.
#[derive(Clone, Debug)]
struct Row {
    section: Section,
    key: String,
    home: String,
    client: String,
    family: Option<String>,
    expires_on: i64,
}

/// The naive model: every entry, in insertion order, updated with plain `Vec` operations and
/// MSAL's key formulas.
#[derive(Default, Debug)]
struct Model {
    entries: Vec<Row>,
}

impl Model {
    fn put(&mut self, row: Row) {
        match self
            .entries
            .iter_mut()
            .find(|e| e.section == row.section && e.key == row.key)
        {
            Some(e) => *e = row,
            None => self.entries.push(row),
        }
    }
    fn keys(&self, s: Section) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.section == s)
            .map(|e| e.key.clone())
            .collect()
    }
}

fn row(
    section: Section,
    key: String,
    home: &str,
    client: &str,
    family: Option<String>,
    expires_on: i64,
) -> Row {
    Row {
        section,
        key,
        home: home.to_owned(),
        client: client.to_owned(),
        family,
        expires_on,
    }
}

fn apply(cache: &TokenCache, model: &mut Model, op: &Op, now: &mut i64, clock: &ManualClock) {
    match op {
        Op::AddUser {
            user,
            client,
            tenant,
            scopes,
            life,
            foci,
        } => {
            let (uid, utid, cid, tenant) = (
                format!("u{user}"),
                "tid",
                format!("c{client}"),
                format!("t{tenant}"),
            );
            let hid = format!("{uid}.{utid}");
            let mut requested: Vec<&str> = scopes.iter().map(|&i| SCOPES[i as usize]).collect();
            let response = format!(
                r#"{{"access_token":"at-{}","expires_in":{life},"refresh_token":"rt-{}","client_info":"{}"{}}}"#,
                *now,
                *now,
                b64(&format!(r#"{{"uid":"{uid}","utid":"{utid}"}}"#)),
                if *foci { r#","foci":"1""# } else { "" }
            );
            let event = TokenEvent::new(cid.clone(), requested.clone())
                .token_endpoint(format!("https://{ENV}/{tenant}/oauth2/v2.0/token"))
                .grant_type("authorization_code")
                .response_json(&response)
                .expect("response");
            cache.add_at(&event, *now).expect("add");
            requested.sort_unstable();
            let target = requested.join(" ");
            let fam = foci.then(|| "1".to_owned());
            model.put(row(
                Section::AccessToken,
                access_token_key(&hid, ENV, &cid, &tenant, &target, None),
                &hid,
                &cid,
                None,
                *now + life,
            ));
            model.put(row(
                Section::Account,
                account_key(&hid, ENV, &tenant),
                &hid,
                "",
                None,
                0,
            ));
            model.put(row(
                Section::RefreshToken,
                refresh_token_key(&hid, ENV, &cid, &target),
                &hid,
                &cid,
                fam.clone(),
                0,
            ));
            model.put(row(
                Section::AppMetadata,
                app_metadata_key(ENV, &cid),
                "",
                &cid,
                fam,
                0,
            ));
        }
        Op::AddApp {
            client,
            tenant,
            resource,
            life,
        } => {
            let (cid, tenant, scope) = (
                format!("d{client}"),
                format!("t{tenant}"),
                format!("api://r{resource}/.default"),
            );
            let secret = format!("app-{}", *now);
            let event = TokenEvent::new(cid.clone(), [scope.clone()])
                .token_endpoint(format!("https://{ENV}/{tenant}/oauth2/v2.0/token"))
                .response_json(&format!(
                    r#"{{"access_token":"{secret}","expires_in":{life}}}"#
                ))
                .expect("response");
            cache.add_at(&event, *now).expect("add");
            model.put(row(
                Section::AccessToken,
                access_token_key("", ENV, &cid, &tenant, &scope, None),
                "",
                &cid,
                None,
                *now + life,
            ));
            model.put(row(
                Section::AppMetadata,
                app_metadata_key(ENV, &cid),
                "",
                &cid,
                None,
                0,
            ));
        }
        Op::RemoveEverywhere { user } => {
            let hid = format!("u{user}.tid");
            cache.remove_account_everywhere(&hid);
            model
                .entries
                .retain(|e| e.section == Section::AppMetadata || e.home != hid);
        }
        Op::Forget { user, client } => {
            let (hid, cid) = (format!("u{user}.tid"), format!("c{client}"));
            cache.forget_account(&hid, &[ENV], &cid);
            let family = model
                .entries
                .iter()
                .find(|e| e.section == Section::AppMetadata && e.client == cid)
                .and_then(|e| e.family.clone());
            model.entries.retain(|e| match e.section {
                Section::AppMetadata => true,
                Section::RefreshToken => {
                    !(e.home == hid
                        && (e.client == cid || (family.is_some() && e.family == family)))
                }
                _ => e.home != hid,
            });
        }
        Op::Purge => {
            cache.purge_expired_access_tokens(*now);
            model
                .entries
                .retain(|e| e.section != Section::AccessToken || e.expires_on >= *now);
        }
        Op::Tick(dt) => {
            *now += dt;
            clock.set(*now);
        }
        Op::Reload => {
            let text = cache.serialize();
            cache.deserialize(&text).expect("reload");
        }
    }
}

fn check(cache: &TokenCache, model: &Model, now: i64) -> Result<(), TestCaseError> {
    for s in Section::ALL {
        let keys: Vec<String> = cache.entries(s).into_iter().map(|(k, _)| k).collect();
        prop_assert_eq!(keys, model.keys(s), "section {}", s);
    }
    // Indexed lookups agree with a linear scan of the model, for hits and misses alike.
    for user in 0..4u8 {
        let hid = format!("u{user}.tid");
        for client in 0..3u8 {
            let cid = format!("c{client}");
            for tenant in 0..2u8 {
                let realm = format!("t{tenant}");
                for scope in SCOPES {
                    let wanted = [scope];
                    let q = AccessTokenQuery::new(&cid, &realm, &wanted).account(&hid);
                    let got: Vec<String> = cache
                        .access_tokens(&q)
                        .iter()
                        .map(|t| t.key().to_owned())
                        .collect();
                    let want: Vec<String> = model
                        .entries
                        .iter()
                        .filter(|e| {
                            e.section == Section::AccessToken
                                && e.home == hid
                                && e.client == cid
                                && e.expires_on >= now
                                && e.key.contains(&format!("-{}-", realm))
                                && e.key.rsplit('-').next().is_some_and(|t| {
                                    t.split(' ').any(|x| x == scope.to_lowercase())
                                })
                        })
                        .map(|e| e.key.clone())
                        .collect();
                    prop_assert_eq!(got, want, "AT {} {} {} {}", hid, cid, realm, scope);
                }
            }
            let rts: Vec<String> = cache
                .refresh_tokens(&RefreshTokenQuery::new(&hid).client_id(&cid))
                .iter()
                .map(|t| t.key().to_owned())
                .collect();
            let want: Vec<String> = model
                .entries
                .iter()
                .filter(|e| e.section == Section::RefreshToken && e.home == hid && e.client == cid)
                .map(|e| e.key.clone())
                .collect();
            prop_assert_eq!(rts, want);
        }
        let accounts = cache
            .accounts(&AccountQuery {
                home_account_id: Some(&hid),
                ..Default::default()
            })
            .len();
        let want = model
            .entries
            .iter()
            .filter(|e| e.section == Section::Account && e.home == hid)
            .count();
        prop_assert_eq!(accounts, want);
    }
    for client in 0..3u8 {
        for tenant in 0..3u8 {
            for resource in 0..3u8 {
                let (cid, realm, scope) = (
                    format!("d{client}"),
                    format!("t{tenant}"),
                    format!("api://r{resource}/.default"),
                );
                let wanted = [scope.as_str()];
                let hit = cache
                    .find_access_token(&AccessTokenQuery::new(&cid, &realm, &wanted))
                    .map(|t| t.key().to_owned());
                let want = model
                    .entries
                    .iter()
                    .find(|e| {
                        e.section == Section::AccessToken
                            && e.key == access_token_key("", ENV, &cid, &realm, &scope, None)
                            && e.expires_on >= now
                    })
                    .map(|e| e.key.clone());
                prop_assert_eq!(hit, want);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_agree_with_the_reference_model(ops in prop::collection::vec(arb_op(), 1..60)) {
        let clock = Arc::new(ManualClock::new(1_000));
        let cache = TokenCache::with_clock(clock.clone());
        let mut model = Model::default();
        let mut now = 1_000;
        for op in &ops {
            apply(&cache, &mut model, op, &mut now, &clock);
            check(&cache, &model, now)?;
            // The allocation-free isolation check agrees with the partition keys.
            let keys = cache.partition_keys();
            for key in &keys {
                prop_assert_eq!(cache.holds_only(key), keys.len() == 1, "{:?}", key);
            }
            prop_assert_eq!(cache.holds_only(&tokencache::PartitionKey::new("nobody")), keys.is_empty());
        }
    }

    #[test]
    fn retained_serialized_entries_never_go_stale(ops in prop::collection::vec(arb_op(), 1..60)) {
        let clock = Arc::new(ManualClock::new(1_000));
        let plain = TokenCache::with_clock(clock.clone());
        let retaining = TokenCache::with_clock(clock.clone());
        retaining.retain_serialized_entries(true);
        let (mut plain_model, mut retaining_model) = (Model::default(), Model::default());
        let (mut plain_now, mut retaining_now) = (1_000, 1_000);
        for op in &ops {
            clock.set(plain_now);
            apply(&plain, &mut plain_model, op, &mut plain_now, &clock);
            clock.set(retaining_now);
            apply(&retaining, &mut retaining_model, op, &mut retaining_now, &clock);
            prop_assert_eq!(retaining.serialize(), plain.serialize());
        }
    }

    /// A store's pattern: another writer changes the document, this cache reloads it, reusing
    /// the entries whose kept serialized form reappears. The result must be what a plain load
    /// gives: the same lookups (checked against the model) and the same document.
    #[test]
    fn reloads_that_reuse_entries_equal_plain_loads(ops in prop::collection::vec(arb_op(), 1..60), reload_every in 1usize..4) {
        let clock = Arc::new(ManualClock::new(1_000));
        let writer = TokenCache::with_clock(clock.clone());
        let reader = TokenCache::with_clock(clock.clone());
        reader.retain_serialized_entries(true);
        let mut model = Model::default();
        let mut now = 1_000;
        for (i, op) in ops.iter().enumerate() {
            apply(&writer, &mut model, op, &mut now, &clock);
            if i % reload_every != 0 {
                continue;
            }
            let text = writer.serialize();
            reader.deserialize(&text).expect("a document the writer serialized");
            check(&reader, &model, now)?;
            prop_assert_eq!(reader.serialize(), text);
        }
    }
}

/// Enough removals to compact the sections (a unit test in `cache.rs` checks that compaction
/// runs): the indexes rebuilt by it still answer like the model.
#[test]
fn many_removals_keep_indexes_right_through_compaction() {
    let clock = Arc::new(ManualClock::new(1_000));
    let cache = TokenCache::with_clock(clock.clone());
    let mut model = Model::default();
    let mut now = 1_000;
    for round in 0..3 {
        for user in 0..4u8 {
            for client in 0..3u8 {
                for i in 0..20 {
                    let op = Op::AddUser {
                        user,
                        client,
                        tenant: (i % 2) as u8,
                        scopes: vec![(i % 4) as u8],
                        life: 500,
                        foci: i % 3 == 0,
                    };
                    apply(&cache, &mut model, &op, &mut now, &clock);
                    now += 1;
                }
            }
        }
        for user in 0..4u8 {
            apply(
                &cache,
                &mut model,
                &Op::RemoveEverywhere { user },
                &mut now,
                &clock,
            );
        }
        clock.set(now);
        check(&cache, &model, now).unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}
