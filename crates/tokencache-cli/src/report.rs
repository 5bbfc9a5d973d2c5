//! How `inspect` shows a cache: a readable summary, or one JSON object. Never shows a secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tokencache::json::{JsonObject, JsonValue};
use tokencache::{Entry, TokenCache};

/// A length of time in its two largest units: `45s`, `3m`, `1h 15m`, `89d 23h`.
fn span(seconds: i64) -> String {
    let s = seconds.abs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// Formats seconds until (or since) expiry: `in 1h 15m`, `expired 3m ago`.
fn expiry(expires_on: Option<i64>, now: i64) -> String {
    let Some(at) = expires_on else {
        return "no expiry".into();
    };
    let d = at - now;
    if d >= 0 {
        format!("in {}", span(d))
    } else {
        format!("expired {} ago", span(d))
    }
}

/// Renders rows as aligned columns under a header.
fn columns(out: &mut String, indent: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut s = String::from(indent);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(out, header.to_vec());
    for row in rows {
        line(out, row.iter().map(String::as_str).collect());
    }
}

/// Text from a cache as it may reach a terminal: control characters (escape sequences, line
/// breaks, backspaces) and bidirectional overrides are shown escaped (`\u{1b}`), so a cache
/// cannot move the cursor, rewrite earlier lines or reorder what is shown.
pub(crate) fn shown(s: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if unsafe_char(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn or_dash(s: Option<&str>) -> String {
    shown(s.filter(|s| !s.is_empty()).unwrap_or("-"))
}

/// The table view.
pub fn table(cache: &TokenCache, now: i64) -> String {
    let mut out = String::new();
    let accounts = cache.all_accounts();
    let ats = cache.all_access_tokens();
    let rts = cache.all_refresh_tokens();
    let idts = cache.all_id_tokens();

    // Everything of one home account, grouped in one pass over each section (a table of N
    // accounts costs O(N log N), not N scans of every token).
    #[derive(Default)]
    struct Home<'c> {
        accounts: Vec<&'c tokencache::Account>,
        access: Vec<&'c tokencache::AccessToken>,
        refresh: Vec<&'c tokencache::RefreshToken>,
        id: Vec<&'c tokencache::IdToken>,
    }
    let mut homes: BTreeMap<&str, Home<'_>> = BTreeMap::new();
    for a in &accounts {
        homes
            .entry(a.home_account_id().unwrap_or_default())
            .or_default()
            .accounts
            .push(a);
    }
    for t in &ats {
        if let Some(h) = t.home_account_id().filter(|h| !h.is_empty()) {
            homes.entry(h).or_default().access.push(t);
        }
    }
    for t in &rts {
        homes
            .entry(t.home_account_id().unwrap_or_default())
            .or_default()
            .refresh
            .push(t);
    }
    for t in &idts {
        // An ID token shows under a home that has an account or a token.
        if let Some(home) = t.home_account_id().and_then(|h| homes.get_mut(h)) {
            home.id.push(t);
        }
    }

    let _ = writeln!(out, "Accounts: {}", homes.len());
    for (home, group) in &homes {
        let username = group
            .accounts
            .iter()
            .find_map(|a| a.username().filter(|u| !u.is_empty()))
            .unwrap_or("(unknown user)");
        let _ = writeln!(out, "\n{}  [{}]", shown(username), shown(home));
        let mut realms: Vec<String> = group
            .accounts
            .iter()
            .map(|a| {
                format!(
                    "{}/{} ({})",
                    or_dash(a.environment()),
                    or_dash(a.realm()),
                    or_dash(a.authority_type())
                )
            })
            .collect();
        realms.sort();
        if !realms.is_empty() {
            let _ = writeln!(out, "  tenants: {}", realms.join(", "));
        }
        let rows: Vec<Vec<String>> = group
            .access
            .iter()
            .map(|t| {
                vec![
                    "access".into(),
                    or_dash(t.client_id()),
                    or_dash(t.realm()),
                    expiry(t.expires_on(), now),
                    or_dash(t.target()),
                ]
            })
            .chain(group.refresh.iter().map(|t| {
                vec![
                    "refresh".into(),
                    or_dash(t.client_id()),
                    t.family_id()
                        .map_or("-".into(), |f| format!("family {}", shown(f))),
                    "-".into(),
                    or_dash(t.target()),
                ]
            }))
            .chain(group.id.iter().map(|t| {
                vec![
                    "id".into(),
                    or_dash(t.client_id()),
                    or_dash(t.realm()),
                    "-".into(),
                    "-".into(),
                ]
            }))
            .collect();
        if rows.is_empty() {
            out.push_str("  (no tokens)\n");
        } else {
            columns(
                &mut out,
                "  ",
                &["TOKEN", "CLIENT", "REALM", "EXPIRES", "SCOPES"],
                &rows,
            );
        }
    }

    let app: Vec<Vec<String>> = ats
        .iter()
        .filter(|t| t.home_account_id().is_none_or(str::is_empty))
        .map(|t| {
            let mut scopes = or_dash(t.target());
            if t.ext_cache_key().is_some() {
                scopes.push_str(" (extended key)");
            }
            vec![
                or_dash(t.client_id()),
                or_dash(t.realm()),
                expiry(t.expires_on(), now),
                scopes,
            ]
        })
        .collect();
    let _ = writeln!(out, "\nApp tokens: {}", app.len());
    if !app.is_empty() {
        columns(
            &mut out,
            "  ",
            &["CLIENT", "REALM", "EXPIRES", "SCOPES"],
            &app,
        );
    }
    let meta = cache.all_app_metadata();
    let _ = writeln!(out, "\nApps: {}", meta.len());
    if !meta.is_empty() {
        let rows: Vec<Vec<String>> = meta
            .iter()
            .map(|m| {
                vec![
                    or_dash(m.client_id()),
                    or_dash(m.environment()),
                    or_dash(m.family_id()),
                ]
            })
            .collect();
        columns(&mut out, "  ", &["CLIENT", "ENVIRONMENT", "FAMILY"], &rows);
    }
    let problems = cache.problems().len();
    if problems > 0 {
        let _ = writeln!(
            out,
            "\n{problems} problem(s): run `tokencache validate` for details"
        );
    }
    out.trim_end().to_owned()
}

/// An entry as `inspect --json` shows it: every member but the credentials, at any depth
/// (the core's list of sensitive member names, so a token hidden in an unknown member stays
/// hidden too).
fn redacted(key: &str, entry: &Entry) -> JsonValue {
    let mut o = JsonObject::new();
    o.insert("cache_key", JsonValue::string(key));
    for (k, v) in entry.iter() {
        if !tokencache::is_sensitive_member(k) {
            o.insert(k, without_secrets(v));
        }
    }
    JsonValue::Object(Box::new(o))
}

fn without_secrets(value: &JsonValue) -> JsonValue {
    match value {
        JsonValue::Object(members) => {
            let mut o = JsonObject::new();
            for (k, v) in members.iter() {
                if !tokencache::is_sensitive_member(k) {
                    o.insert(k, without_secrets(v));
                }
            }
            JsonValue::Object(Box::new(o))
        }
        JsonValue::Array(items) => JsonValue::Array(items.iter().map(without_secrets).collect()),
        other => other.clone(),
    }
}

/// One stored partition, as `inspect URL` lists it (nothing secret: the key is the account's
/// `home_account_id`, or the app's or assertion's partition key).
#[derive(Debug)]
pub struct PartitionRow {
    /// The partition key.
    pub key: String,
    /// The stored document's size.
    pub bytes: usize,
    /// The key id it is encrypted under (`None`: plain text).
    pub key_id: Option<String>,
    /// When it was created (Unix seconds), if the store knows.
    pub created_at: Option<i64>,
    /// When it expires (Unix seconds; `None`: never).
    pub expires_at: Option<i64>,
}

/// The partitions of a store, as a table after the cache's.
pub fn partitions_table(rows: &[PartitionRow], now: i64) -> String {
    let mut out = format!("Partitions: {}\n", rows.len());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                shown(&r.key),
                r.bytes.to_string(),
                or_dash(r.key_id.as_deref()),
                r.created_at
                    .map_or_else(|| "-".to_owned(), |c| format!("{} ago", span(now - c))),
                match r.expires_at {
                    None => "never".to_owned(),
                    at => expiry(at, now),
                },
            ]
        })
        .collect();
    if !cells.is_empty() {
        columns(
            &mut out,
            "  ",
            &["PARTITION", "BYTES", "KEY ID", "CREATED", "EXPIRES"],
            &cells,
        );
    }
    out.trim_end().to_owned()
}

fn optional_number(n: Option<i64>) -> JsonValue {
    n.map_or(JsonValue::Null, |n| JsonValue::Number(n.to_string().into()))
}

/// The JSON view: `{"accounts": [...], "access_tokens": [...], "refresh_tokens": [...],
/// "id_tokens": [...], "app_metadata": [...]}`; each element is the entry's MSAL fields in
/// order, without `secret`, preceded by `cache_key`. For a store, `"partitions"` follows:
/// `{"partition", "bytes", "key_id", "created_at", "expires_at"}` each (`null` when unknown or
/// none).
pub fn json(cache: &TokenCache, partitions: Option<&[PartitionRow]>) -> String {
    let arr = |items: Vec<JsonValue>| JsonValue::Array(items.into());
    let mut o = JsonObject::new();
    o.insert(
        "accounts",
        arr(cache
            .all_accounts()
            .iter()
            .map(|t| redacted(t.key(), t.entry()))
            .collect()),
    );
    o.insert(
        "access_tokens",
        arr(cache
            .all_access_tokens()
            .iter()
            .map(|t| redacted(t.key(), t.entry()))
            .collect()),
    );
    o.insert(
        "refresh_tokens",
        arr(cache
            .all_refresh_tokens()
            .iter()
            .map(|t| redacted(t.key(), t.entry()))
            .collect()),
    );
    o.insert(
        "id_tokens",
        arr(cache
            .all_id_tokens()
            .iter()
            .map(|t| redacted(t.key(), t.entry()))
            .collect()),
    );
    o.insert(
        "app_metadata",
        arr(cache
            .all_app_metadata()
            .iter()
            .map(|t| redacted(t.key(), t.entry()))
            .collect()),
    );
    if let Some(rows) = partitions {
        let listed = rows
            .iter()
            .map(|r| {
                let mut p = JsonObject::new();
                p.insert("partition", JsonValue::string(&r.key));
                p.insert("bytes", JsonValue::Number(r.bytes.to_string().into()));
                p.insert(
                    "key_id",
                    r.key_id
                        .as_deref()
                        .map_or(JsonValue::Null, JsonValue::string),
                );
                p.insert("created_at", optional_number(r.created_at));
                p.insert("expires_at", optional_number(r.expires_at));
                JsonValue::Object(Box::new(p))
            })
            .collect();
        o.insert("partitions", arr(listed));
    }
    o.to_python_json(true)
}
