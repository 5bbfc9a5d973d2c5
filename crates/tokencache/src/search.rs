//! MSAL Python's generic cache API (`TokenCache.search`, `modify` and the O(1) getters), served
//! by the indexes: what an MSAL Python application calls on its token cache, for front ends that
//! stand in for MSAL's own cache (the Python package).

use crate::cache::TokenCache;
use crate::entry::{Entry, Field, Section, scopes_of};
use crate::error::Error;
use crate::index::group_hash;
use crate::json::{JsonObject, JsonValue};
use crate::keys::{access_token_key, canonical_key, native_keys, target_of};
use crate::section::Slot;

/// What [`TokenCache::search`] found: the matching entries in MSAL's order, with their keys.
#[derive(Clone, Debug, Default)]
pub struct SearchResult {
    /// `(key, entry)` pairs: the O(1) access-token hit first (if any), then the rest in cache
    /// order.
    pub entries: Vec<(String, Entry)>,
}

/// Where a search looks: one index group, or the whole section.
enum Candidates {
    Group(u64),
    Section,
}

impl TokenCache {
    /// MSAL Python's `TokenCache.search(credential_type, target, query, now=now)`, with its
    /// semantics (reference spec §3.1) and the indexes instead of a scan wherever the query
    /// names the fields a group is keyed by:
    ///
    /// - an access-token query with `home_account_id`, `environment`, `client_id` and `realm`
    ///   and a target first yields the entry under the exact key (no target or expiry check,
    ///   MSAL's O(1) path);
    /// - every other entry matches when each query member equals the entry's (the query's
    ///   `environment` lower-cased) and, with a target, its scopes are a subset of the entry's
    ///   (case-sensitive); expired access tokens (`expires_on < now`) are skipped; an access
    ///   token with an `ext_cache_key` matches only a query that has one.
    ///
    /// Unlike MSAL, nothing is removed here: MSAL removes every expired access token once a
    /// search has been consumed to the end, which a caller does with
    /// [`TokenCache::purge_expired_access_tokens`].
    pub fn search(
        &self,
        section: Section,
        target: &[&str],
        query: &JsonObject,
        now: i64,
    ) -> SearchResult {
        let query = lower_case_environment(query);
        let mut sorted: Vec<&str> = target.to_vec();
        sorted.sort_unstable();
        let preferred = self.preferred_access_token(section, &sorted, &query);
        let candidates = candidates(section, &query);
        self.with_state(|st| {
            let slots: Vec<Slot> = match candidates {
                Candidates::Group(group) => st.group(section, group),
                Candidates::Section => st.section(section).iter().map(|(s, _, _)| s).collect(),
            };
            let mut entries: Vec<(String, Entry)> = Vec::new();
            let preferred_key = preferred.as_ref().map(|(k, _)| k.clone());
            entries.extend(preferred);
            for slot in slots {
                let Some((key, entry)) = st.entry(section, slot) else {
                    continue;
                };
                if section == Section::AccessToken {
                    match entry.int_field(Field::ExpiresOn) {
                        Some(expires_on) if expires_on < now => continue,
                        _ => {}
                    }
                    if entry.field(Field::ExtCacheKey).is_some()
                        && !query.contains_key("ext_cache_key")
                    {
                        continue;
                    }
                }
                if preferred_key.as_deref() == Some(key) {
                    continue;
                }
                if matches_query(entry, &query) && has_scopes(entry, &sorted) {
                    entries.push((key.to_owned(), entry.clone()));
                }
            }
            SearchResult { entries }
        })
    }

    /// MSAL's O(1) access-token lookup by key, checked against the query only.
    fn preferred_access_token(
        &self,
        section: Section,
        sorted_target: &[&str],
        query: &JsonObject,
    ) -> Option<(String, Entry)> {
        if section != Section::AccessToken || sorted_target.is_empty() {
            return None;
        }
        let text = |name: &str| match query.get(name)? {
            JsonValue::Null => Some(""),
            other => other.as_str(),
        };
        let key = access_token_key(
            text("home_account_id")?,
            text("environment")?,
            text("client_id")?,
            text("realm")?,
            &target_of(sorted_target),
            query.get_str("ext_cache_key"),
        );
        let (key, entry) = self.entry_at(Section::AccessToken, &key)?;
        matches_query(&entry, query).then_some((key, entry))
    }

    /// The entry stored under `key` (MSAL keys are lower-case; so is the lookup), with the key
    /// as stored.
    pub fn entry_at(&self, section: Section, key: &str) -> Option<(String, Entry)> {
        let lower = key.to_lowercase();
        self.with_state(|st| {
            let map = st.section(section);
            let slot = map.slot_of(key).or_else(|| map.slot_of(&lower))?;
            st.entry(section, slot)
                .map(|(k, e)| (k.to_owned(), e.clone()))
        })
    }

    /// The key an entry equal to `entry` in its key fields is stored under: MSAL Python's
    /// key, or another MSAL SDK's own key for it if that is where it is (a cache msal-node,
    /// .NET or Go wrote); MSAL Python's key when there is none.
    pub fn stored_key(&self, section: Section, entry: &Entry) -> String {
        let keys = native_keys(section, entry);
        keys.iter()
            .find(|k| self.entry_at(section, k).is_some())
            .cloned()
            .unwrap_or_else(|| canonical_key(section, entry))
    }

    /// MSAL Python's `modify(credential_type, old_entry, new_key_value_pairs)`: with `new`,
    /// stores `{**old, **new}` under the key of `old` (where it already is, if another SDK's key
    /// holds it); without, removes the entry under that key (nothing if it is not there).
    pub fn modify(
        &self,
        section: Section,
        old: &Entry,
        new: Option<&JsonObject>,
    ) -> Result<(), Error> {
        let key = self.stored_key(section, old);
        match new {
            Some(new) => {
                let mut merged = old.clone();
                for (name, value) in new.iter() {
                    merged.set(name, value.clone());
                }
                self.put_entry_at(section, &key, merged)
            }
            None => self.remove_entry(section, &key).map(|_| ()),
        }
    }
}

/// The query with its `environment` lower-cased, as MSAL 1.39 does before matching.
fn lower_case_environment(query: &JsonObject) -> JsonObject {
    let mut query = query.clone();
    if let Some(env) = query.get_str("environment") {
        let lower = env.to_lowercase();
        query.insert("environment", JsonValue::string(&lower));
    }
    query
}

/// The index group that holds every possible match, when the query names its fields.
fn candidates(section: Section, query: &JsonObject) -> Candidates {
    let text = |name: &str| query.get_str(name);
    let home = || match query.get("home_account_id") {
        Some(JsonValue::Null) => Some(""),
        Some(v) => v.as_str(),
        None => None,
    };
    let group = match section {
        Section::AccessToken => (|| {
            Some(group_hash(&[
                home()?,
                text("environment")?,
                text("client_id")?,
                text("realm")?,
            ]))
        })(),
        Section::RefreshToken | Section::IdToken => (|| {
            let home = text("home_account_id")?;
            Some(group_hash(&[home, text("environment")?]))
        })(),
        Section::Account => text("home_account_id").map(|h| group_hash(&[h])),
        Section::AppMetadata => None,
    };
    group.map_or(Candidates::Section, Candidates::Group)
}

/// MSAL's `is_subdict_of(query, entry)`: every query member equals the entry's.
fn matches_query(entry: &Entry, query: &JsonObject) -> bool {
    query
        .iter()
        .all(|(name, value)| entry.get(name).is_some_and(|v| v == value))
}

/// The requested scopes are a subset of the entry's target (case-sensitive).
fn has_scopes(entry: &Entry, sorted_target: &[&str]) -> bool {
    if sorted_target.is_empty() {
        return true;
    }
    let target = entry.str_field(Field::Target).unwrap_or_default();
    let have: Vec<&str> = scopes_of(target).collect();
    sorted_target.iter().all(|s| have.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenEvent;

    fn cache_with(uids: &[&str], scopes: &[&str], expires_in: i64) -> TokenCache {
        let cache = TokenCache::new();
        for uid in uids {
            let info = base64_url(&format!(r#"{{"uid":"{uid}","utid":"t"}}"#));
            let event = TokenEvent::new("cid", scopes.iter().copied())
                .token_endpoint("https://login.example.com/t/oauth2/v2.0/token")
                .grant_type("authorization_code")
                .response_json(&format!(
                    r#"{{"access_token":"at-{uid}","refresh_token":"rt-{uid}","expires_in":{expires_in},"client_info":"{info}"}}"#
                ))
                .expect("event");
            cache.add_at(&event, 1000).expect("add");
        }
        cache
    }

    fn base64_url(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn query(text: &str) -> JsonObject {
        JsonObject::parse(text).expect("query")
    }

    #[test]
    fn the_exact_access_token_comes_first_and_supersets_follow() {
        let cache = cache_with(&["a", "b"], &["B", "A"], 3600);
        let q = query(
            r#"{"home_account_id":"a.t","environment":"LOGIN.example.com","client_id":"cid","realm":"t"}"#,
        );
        let found = cache.search(Section::AccessToken, &["A", "B"], &q, 1000);
        assert_eq!(found.entries.len(), 1);
        assert_eq!(found.entries[0].1.str_field(Field::Secret), Some("at-a"));
        let subset = cache.search(Section::AccessToken, &["A"], &q, 1000);
        assert_eq!(subset.entries.len(), 1, "a superset target matches");
        let case = cache.search(Section::AccessToken, &["a"], &q, 1000);
        assert!(case.entries.is_empty(), "the scan is case-sensitive");
    }

    #[test]
    fn expired_access_tokens_are_skipped_by_the_scan() {
        let cache = cache_with(&["a"], &["A"], 10);
        let q = query(r#"{"home_account_id":"a.t"}"#);
        assert!(
            cache
                .search(Section::AccessToken, &[], &q, 5000)
                .entries
                .is_empty()
        );
        assert_eq!(
            cache
                .search(Section::AccessToken, &[], &q, 1005)
                .entries
                .len(),
            1
        );
    }

    #[test]
    fn queries_without_index_fields_scan_the_section() {
        let cache = cache_with(&["a", "b", "c"], &["A"], 3600);
        let all = cache.search(
            Section::Account,
            &[],
            &query(r#"{"environment":"login.example.com"}"#),
            1000,
        );
        assert_eq!(all.entries.len(), 3);
        let one = cache.search(
            Section::RefreshToken,
            &[],
            &query(r#"{"home_account_id":"b.t","environment":"login.example.com"}"#),
            1000,
        );
        assert_eq!(one.entries.len(), 1);
        assert_eq!(one.entries[0].1.str_field(Field::Secret), Some("rt-b"));
        let none = cache.search(
            Section::RefreshToken,
            &[],
            &query(r#"{"home_account_id":"b.t","family_id":"1"}"#),
            1000,
        );
        assert!(
            none.entries.is_empty(),
            "a member missing from the entry fails"
        );
    }

    #[test]
    fn modify_replaces_with_merged_values_and_removes() {
        let cache = cache_with(&["a"], &["A"], 3600);
        let (_, rt) = cache
            .search(Section::RefreshToken, &[], &JsonObject::new(), 0)
            .entries[0]
            .clone();
        let mut new = JsonObject::new();
        new.insert("secret", JsonValue::string("rt-2"));
        cache
            .modify(Section::RefreshToken, &rt, Some(&new))
            .expect("update");
        let after = cache.all_refresh_tokens();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].entry().str_field(Field::Secret), Some("rt-2"));
        cache
            .modify(Section::RefreshToken, &rt, None)
            .expect("remove");
        assert!(cache.all_refresh_tokens().is_empty());
        cache
            .modify(Section::RefreshToken, &rt, None)
            .expect("removing again is silent");
    }
}
