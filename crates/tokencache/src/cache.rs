//! [`TokenCache`]: the thread-safe, indexed, MSAL-compatible token cache.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::Error;
use crate::clock::{Clock, SystemClock};
use crate::entry::{
    AccessToken, Account, AppMetadata, Entry, Field, IdToken, RefreshToken, Section,
};
use crate::index::group_hash;
use crate::ingest::{TokenEvent, entries_for};
use crate::json::JsonValue;
use crate::keys::app_metadata_key;
use crate::query::{AccessTokenQuery, AccountQuery, RefreshTokenQuery, env_matches, target_covers};
use crate::section::{Item, Slot};
use crate::state::CacheState;

/// An MSAL-compatible token cache.
///
/// Holds the five sections of the MSAL "unified" cache format with every unknown field, entry
/// and section preserved, serializes byte-identically to MSAL Python's `serialize()`, and
/// answers lookups through indexes rather than scans. It is `Send + Sync`: share it behind an
/// `Arc`; every method takes `&self` and holds the internal lock only for the call.
///
/// ```
/// use tokencache::{AccessTokenQuery, TokenCache, TokenEvent};
/// let cache = TokenCache::new();
/// let event = TokenEvent::new("my-daemon-app", ["https://graph.microsoft.com/.default"])
///     .token_endpoint("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
///     .response_json(r#"{"access_token":"AT","expires_in":3600}"#)?;
/// cache.add(&event)?;
///
/// let scopes = ["https://graph.microsoft.com/.default"];
/// let query = AccessTokenQuery::new("my-daemon-app", "contoso.onmicrosoft.com", &scopes);
/// let token = cache.find_access_token(&query).expect("cached");
/// assert_eq!(token.secret().unwrap().expose(), "AT");
///
/// let json = cache.serialize();
/// let reloaded = TokenCache::from_json(&json)?;
/// assert_eq!(reloaded.serialize(), json);
/// # Ok::<(), tokencache::Error>(())
/// ```
pub struct TokenCache {
    state: RwLock<CacheState>,
    changed: AtomicBool,
    size_hint: AtomicUsize,
    retain_serialized: AtomicBool,
    clock: Arc<dyn Clock>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.read();
        f.debug_struct("TokenCache")
            .field("access_tokens", &st.section(Section::AccessToken).len())
            .field("refresh_tokens", &st.section(Section::RefreshToken).len())
            .field("id_tokens", &st.section(Section::IdToken).len())
            .field("accounts", &st.section(Section::Account).len())
            .field("app_metadata", &st.section(Section::AppMetadata).len())
            .finish_non_exhaustive()
    }
}

/// How many entries a removal took out of each section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Access tokens removed.
    pub access_tokens: usize,
    /// Refresh tokens removed.
    pub refresh_tokens: usize,
    /// ID tokens removed.
    pub id_tokens: usize,
    /// Accounts removed.
    pub accounts: usize,
}

impl Removed {
    /// Total entries removed.
    pub fn total(&self) -> usize {
        self.access_tokens + self.refresh_tokens + self.id_tokens + self.accounts
    }
}

impl TokenCache {
    /// An empty cache on the system clock.
    pub fn new() -> TokenCache {
        TokenCache::with_clock(Arc::new(SystemClock))
    }

    /// An empty cache on the given clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> TokenCache {
        TokenCache {
            state: RwLock::new(CacheState::default()),
            changed: AtomicBool::new(false),
            size_hint: AtomicUsize::new(0),
            retain_serialized: AtomicBool::new(false),
            clock,
        }
    }

    /// A cache loaded from JSON text in any MSAL dialect (see [`TokenCache::deserialize`]).
    pub fn from_json(text: &str) -> Result<TokenCache, Error> {
        let cache = TokenCache::new();
        cache.deserialize(text)?;
        Ok(cache)
    }

    /// The clock this cache uses.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The current time by this cache's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    fn read(&self) -> RwLockReadGuard<'_, CacheState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> Writer<'_> {
        Writer(
            self.state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }

    // ----- serialization -------------------------------------------------------------------

    /// Replaces the whole content with the cache in `text` (MSAL's `deserialize`; `""` is an
    /// empty cache, a UTF-8 BOM is ignored). On error the cache is unchanged.
    ///
    /// Tolerates every MSAL dialect: times as strings or integers, `kid`/`key_id`/`keyid`,
    /// camelCase Node fields, .NET's `ext_expires_on`, mixed-case keys, unsorted targets,
    /// entries under non-canonical keys. A malformed entry is kept verbatim and reported by
    /// [`TokenCache::problems`]; it is not searchable. Resets [`TokenCache::has_state_changed`].
    pub fn deserialize(&self, text: &str) -> Result<(), Error> {
        let state = if self.retain_serialized.load(Ordering::Relaxed) {
            // Entries whose kept serialized form reappears unchanged are copied, not parsed.
            let previous = self.read();
            crate::load::parse_reusing(text, Some(&previous))?
        } else {
            crate::load::parse(text)?
        };
        *self.write().0 = state;
        self.size_hint
            .store(text.len() + text.len() / 8, Ordering::Relaxed);
        self.changed.store(false, Ordering::Release);
        Ok(())
    }

    /// The whole cache as MSAL Python's `serialize()` writes it (`json.dumps(indent=4)`:
    /// insertion order, ASCII with `\uXXXX` escapes, no trailing newline). Resets
    /// [`TokenCache::has_state_changed`].
    pub fn serialize(&self) -> String {
        let out = self.read().serialize(
            self.size_hint.load(Ordering::Relaxed),
            self.retain_serialized.load(Ordering::Relaxed),
        );
        self.size_hint.store(out.len() + 64, Ordering::Relaxed);
        self.changed.store(false, Ordering::Release);
        out
    }

    /// [`serialize`](Self::serialize) into a buffer the caller reuses: `out` is cleared and
    /// receives the document, growing only when the cache does. For callers that write the
    /// cache out repeatedly.
    ///
    /// ```
    /// let cache = tokencache::TokenCache::new();
    /// let mut out = String::from("old content");
    /// cache.serialize_into(&mut out);
    /// assert_eq!(out, cache.serialize());
    /// ```
    pub fn serialize_into(&self, out: &mut String) {
        out.clear();
        out.reserve(self.size_hint.load(Ordering::Relaxed));
        self.read()
            .serialize_into(out, self.retain_serialized.load(Ordering::Relaxed));
        self.size_hint.store(out.len() + 64, Ordering::Relaxed);
        self.changed.store(false, Ordering::Release);
    }

    /// Makes [`serialize`](Self::serialize) keep each entry's serialized form and reuse it
    /// next time, until the entry changes. For caches written out often with few changes in
    /// between (a cache file rewritten on every token response): repeated serializations
    /// then cost little more than copying the bytes, for about the document's size in extra
    /// memory. Off by default. Turning it off stops keeping new forms; forms already kept
    /// are used until their entries change or the cache is deserialized again.
    ///
    /// ```
    /// let cache = tokencache::TokenCache::new();
    /// cache.retain_serialized_entries(true);
    /// assert_eq!(cache.serialize(), "{}");
    /// ```
    pub fn retain_serialized_entries(&self, retain: bool) {
        self.retain_serialized.store(retain, Ordering::Relaxed);
    }

    /// True when the cache changed since the last [`serialize`](Self::serialize) or
    /// [`deserialize`](Self::deserialize) (MSAL's `has_state_changed`).
    pub fn has_state_changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// Number of entries in a section (well-formed or not).
    pub fn len(&self, section: Section) -> usize {
        self.read().section(section).len()
    }

    /// True when the cache holds no entries at all.
    pub fn is_empty(&self) -> bool {
        let st = self.read();
        Section::ALL.iter().all(|s| st.section(*s).len() == 0)
    }

    // ----- adding -------------------------------------------------------------------------

    /// Records a token response (MSAL's `TokenCache.add`) at the clock's current time.
    pub fn add(&self, event: &TokenEvent) -> Result<(), Error> {
        self.add_at(event, self.clock.now())
    }

    /// Records a token response as of `now` (Unix seconds). Every entry is computed first and
    /// all are written under one lock acquisition, so the response is applied atomically: on
    /// error nothing changes.
    pub fn add_at(&self, event: &TokenEvent, now: i64) -> Result<(), Error> {
        let writes = entries_for(event, now)?;
        {
            let mut st = self.write();
            for (s, _) in &writes {
                if st.section(*s).len() == 0 {
                    st.ensure_section(*s)?;
                }
            }
            for (s, entry) in writes {
                st.write_canonical(s, entry)?;
            }
        }
        tracing::debug!(client_id = %event.client_id, grant_type = ?event.grant_type, "token response cached");
        self.mark_changed();
        Ok(())
    }

    /// Stores an entry under its canonical key (MSAL's `modify` with new values): replaces
    /// what is there, keeping its position.
    pub fn put_entry(&self, section: Section, entry: Entry) -> Result<(), Error> {
        self.write().write_canonical(section, entry)?;
        self.mark_changed();
        Ok(())
    }

    /// Stores an entry under exactly `key`, canonical or not (for tools that repair or copy
    /// caches).
    pub fn put_entry_at(&self, section: Section, key: &str, entry: Entry) -> Result<(), Error> {
        self.write().put(section, key, Item::Entry(entry))?;
        self.mark_changed();
        Ok(())
    }

    // ----- access tokens ------------------------------------------------------------------

    fn matching_access_tokens(
        &self,
        q: &AccessTokenQuery<'_>,
        now: i64,
        first_only: bool,
    ) -> Vec<AccessToken> {
        let st = self.read();
        let mut out = Vec::new();
        for env in q.environments {
            let group = group_hash(&[
                q.home_account_id.unwrap_or_default(),
                env,
                q.client_id,
                q.realm,
            ]);
            for slot in st.group(Section::AccessToken, group) {
                let Some((key, e)) = st.entry(Section::AccessToken, slot) else {
                    continue;
                };
                if access_token_matches(e, q, now) {
                    out.push(AccessToken::new(key, e.clone()));
                    if first_only {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// Every unexpired access token matching the query, environments in the query's order,
    /// then cache order. "Unexpired" is MSAL's purge rule: `expires_on >= now`; callers apply
    /// their own safety margin (MSAL serves a token only with 5 minutes left).
    pub fn access_tokens(&self, query: &AccessTokenQuery<'_>) -> Vec<AccessToken> {
        self.matching_access_tokens(query, self.clock.now(), false)
    }

    /// The first unexpired access token matching the query.
    pub fn find_access_token(&self, query: &AccessTokenQuery<'_>) -> Option<AccessToken> {
        self.matching_access_tokens(query, self.clock.now(), true)
            .pop()
    }

    /// Every access token in the cache, in order (expired ones too).
    pub fn all_access_tokens(&self) -> Vec<AccessToken> {
        self.all(Section::AccessToken, AccessToken::new)
    }

    /// Removes every access token whose `expires_on` is before `now` (what MSAL Python does
    /// after a search). Returns how many went.
    pub fn purge_expired_access_tokens(&self, now: i64) -> usize {
        let mut st = self.write();
        let expired: Vec<Slot> = st
            .section(Section::AccessToken)
            .iter()
            .filter_map(|(slot, _, item)| {
                let e = item.as_entry()?;
                e.int_field(Field::ExpiresOn)
                    .filter(|&x| x < now)
                    .map(|_| slot)
            })
            .collect();
        for &slot in &expired {
            st.delete(Section::AccessToken, slot);
        }
        drop(st);
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "purged expired access tokens");
            self.mark_changed();
        }
        expired.len()
    }

    /// Removes a client's app tokens (MSAL's `remove_tokens_for_client`): access tokens with
    /// a `null` home account for `client_id` in the environments. Tokens with an extended cache
    /// key stay, as in MSAL.
    pub fn remove_app_tokens(&self, client_id: &str, environments: &[&str]) -> usize {
        self.remove_where(Section::AccessToken, |e| {
            e.field(Field::HomeAccountId)
                .is_some_and(JsonValue::is_null)
                && e.str_field(Field::ClientId) == Some(client_id)
                && env_matches(e.str_field(Field::Environment), environments)
                && e.field(Field::ExtCacheKey).is_none()
        })
    }

    // ----- refresh tokens -----------------------------------------------------------------

    /// Refresh tokens of an account matching the query, in cache order.
    pub fn refresh_tokens(&self, q: &RefreshTokenQuery<'_>) -> Vec<RefreshToken> {
        let st = self.read();
        let mut out = Vec::new();
        for env in q.environments {
            for slot in st.group(Section::RefreshToken, group_hash(&[q.home_account_id, env])) {
                let Some((key, e)) = st.entry(Section::RefreshToken, slot) else {
                    continue;
                };
                let ok = e.str_field(Field::HomeAccountId) == Some(q.home_account_id)
                    && env_matches(e.str_field(Field::Environment), &[env])
                    && q.client_id
                        .is_none_or(|c| e.str_field(Field::ClientId) == Some(c))
                    && q.family_id
                        .is_none_or(|f| e.str_field(Field::FamilyId) == Some(f));
                if ok {
                    out.push(RefreshToken::new(key, e.clone()));
                }
            }
        }
        out
    }

    /// Every refresh token in the cache, in order.
    pub fn all_refresh_tokens(&self) -> Vec<RefreshToken> {
        self.all(Section::RefreshToken, RefreshToken::new)
    }

    /// Replaces a refresh token's secret in place after a refresh (MSAL's `update_rt`): the
    /// entry keeps its key, position, target, family and foreign fields;
    /// `last_modification_time` becomes `now`. Returns false when the entry is gone.
    pub fn update_refresh_token(&self, token: &RefreshToken, new_secret: &str, now: i64) -> bool {
        let mut st = self.write();
        let Some(slot) = st.section(Section::RefreshToken).slot_of(token.key()) else {
            return false;
        };
        let Some((key, Item::Entry(e))) = st.section(Section::RefreshToken).get(slot) else {
            return false;
        };
        let (key, mut e) = (key.to_owned(), e.clone());
        e.set_field(Field::Secret, JsonValue::string(new_secret));
        e.set_field(
            Field::LastModificationTime,
            JsonValue::string(&now.to_string()),
        );
        let ok = st.put(Section::RefreshToken, &key, Item::Entry(e)).is_ok();
        drop(st);
        self.mark_changed();
        ok
    }

    // ----- ID tokens, accounts, app metadata -----------------------------------------------

    /// The ID token of an account for a client and tenant.
    pub fn id_token(
        &self,
        home_account_id: &str,
        environments: &[&str],
        client_id: &str,
        realm: &str,
    ) -> Option<IdToken> {
        let st = self.read();
        environments.iter().find_map(|env| {
            st.group(Section::IdToken, group_hash(&[home_account_id, env]))
                .into_iter()
                .filter_map(|slot| st.entry(Section::IdToken, slot))
                .find(|(_, e)| {
                    e.str_field(Field::HomeAccountId) == Some(home_account_id)
                        && env_matches(e.str_field(Field::Environment), &[env])
                        && e.str_field(Field::ClientId) == Some(client_id)
                        && e.str_field(Field::Realm) == Some(realm)
                })
                .map(|(k, e)| IdToken::new(k, e.clone()))
        })
    }

    /// Every ID token in the cache, in order.
    pub fn all_id_tokens(&self) -> Vec<IdToken> {
        self.all(Section::IdToken, IdToken::new)
    }

    /// Account entries matching the query, in cache order. Costs the number of matching
    /// accounts (by home account id or username, through indexes), or the number of accounts
    /// when listing them all; never the number of tokens.
    pub fn accounts(&self, q: &AccountQuery<'_>) -> Vec<Account> {
        let st = self.read();
        let slots: Vec<Slot> = match (q.home_account_id, q.username) {
            (Some(hid), _) => st.group(Section::Account, group_hash(&[hid])),
            (None, Some(user)) => st.username_group(group_hash(&[user])),
            (None, None) => st
                .section(Section::Account)
                .iter()
                .map(|(s, _, _)| s)
                .collect(),
        };
        slots
            .into_iter()
            .filter_map(|slot| st.entry(Section::Account, slot))
            .filter(|(_, e)| {
                e.str_field(Field::Environment).is_some()
                    && e.str_field(Field::HomeAccountId).is_some()
                    && (q.environments.is_empty()
                        || env_matches(e.str_field(Field::Environment), q.environments))
                    && q.home_account_id
                        .is_none_or(|h| e.str_field(Field::HomeAccountId) == Some(h))
                    && q.username.is_none_or(|u| {
                        e.str_field(Field::Username)
                            .is_some_and(|n| n.to_lowercase() == u.to_lowercase())
                    })
            })
            .map(|(k, e)| Account::new(k, e.clone()))
            .collect()
    }

    /// Every account entry, in order.
    pub fn all_accounts(&self) -> Vec<Account> {
        self.all(Section::Account, Account::new)
    }

    /// The app metadata of a client in an environment.
    pub fn app_metadata(&self, environment: &str, client_id: &str) -> Option<AppMetadata> {
        let st = self.read();
        let map = st.section(Section::AppMetadata);
        if let Some((k, e)) = map
            .slot_of(&app_metadata_key(environment, client_id))
            .and_then(|s| st.entry(Section::AppMetadata, s))
        {
            return Some(AppMetadata::new(k, e.clone()));
        }
        map.iter()
            .filter_map(|(_, k, i)| Some((k, i.as_entry()?)))
            .find(|(_, e)| {
                e.str_field(Field::ClientId) == Some(client_id)
                    && env_matches(e.str_field(Field::Environment), &[environment])
            })
            .map(|(k, e)| AppMetadata::new(k, e.clone()))
    }

    /// Every app metadata entry, in order.
    pub fn all_app_metadata(&self) -> Vec<AppMetadata> {
        self.all(Section::AppMetadata, AppMetadata::new)
    }

    fn all<T>(&self, s: Section, make: fn(&str, Entry) -> T) -> Vec<T> {
        let st = self.read();
        st.section(s)
            .iter()
            .filter_map(|(_, k, i)| Some(make(k, i.as_entry()?.clone())))
            .collect()
    }

    /// Every entry of a section with its key; `None` for values that are not objects.
    pub fn entries(&self, section: Section) -> Vec<(String, Option<Entry>)> {
        self.read()
            .section(section)
            .iter()
            .map(|(_, k, i)| (k.to_owned(), i.as_entry().cloned()))
            .collect()
    }

    // ----- removal ------------------------------------------------------------------------

    /// Removes the entry stored under `key`. Creates the section if missing (MSAL parity).
    pub fn remove_entry(&self, section: Section, key: &str) -> Result<bool, Error> {
        let mut st = self.write();
        st.ensure_section(section)?;
        let slot = st.section(section).slot_of(key);
        let removed = slot.and_then(|s| st.delete(section, s)).is_some();
        drop(st);
        self.mark_changed();
        Ok(removed)
    }

    fn remove_where(&self, s: Section, pred: impl Fn(&Entry) -> bool) -> usize {
        let mut st = self.write();
        if st.ensure_section(s).is_err() {
            return 0;
        }
        let doomed: Vec<Slot> = st
            .section(s)
            .iter()
            .filter_map(|(slot, _, i)| i.as_entry().filter(|e| pred(e)).map(|_| slot))
            .collect();
        for &slot in &doomed {
            st.delete(s, slot);
        }
        drop(st);
        self.mark_changed();
        doomed.len()
    }

    fn remove_account_slots(
        &self,
        home_account_id: &str,
        environments: &[&str],
        msal_parity: bool,
        rt_filter: impl Fn(&Entry) -> bool,
    ) -> Removed {
        let mut st = self.write();
        let mut removed = Removed::default();
        for s in [
            Section::RefreshToken,
            Section::AccessToken,
            Section::IdToken,
            Section::Account,
        ] {
            // MSAL's removal creates missing sections (Python's setdefault); ours does not.
            if msal_parity && st.ensure_section(s).is_err() {
                continue;
            }
            let mut doomed: Vec<Slot> = Vec::new();
            let candidates: Vec<Slot> = if s == Section::AccessToken {
                // Access tokens are grouped by client and realm too; scan the account's
                // tokens through a per-section pass only over entries with this home account.
                st.section(s)
                    .iter()
                    .filter(|(_, _, i)| {
                        i.as_entry().and_then(|e| e.str_field(Field::HomeAccountId))
                            == Some(home_account_id)
                    })
                    .map(|(slot, _, _)| slot)
                    .collect()
            } else if s == Section::Account {
                st.group(s, group_hash(&[home_account_id]))
            } else {
                let mut all = Vec::new();
                match environments {
                    [] => {
                        let envs: Vec<String> = st
                            .section(s)
                            .iter()
                            .filter_map(|(_, _, i)| {
                                i.as_entry()?
                                    .str_field(Field::Environment)
                                    .map(str::to_owned)
                            })
                            .collect();
                        for env in dedup(envs) {
                            all.extend(st.group(s, group_hash(&[home_account_id, &env])));
                        }
                    }
                    envs => {
                        for env in envs {
                            all.extend(st.group(s, group_hash(&[home_account_id, env])));
                        }
                    }
                }
                all
            };
            for slot in candidates {
                let Some((_, e)) = st.entry(s, slot) else {
                    continue;
                };
                let ok = e.str_field(Field::HomeAccountId) == Some(home_account_id)
                    && (environments.is_empty()
                        || env_matches(e.str_field(Field::Environment), environments))
                    && (s != Section::RefreshToken || rt_filter(e));
                if ok {
                    doomed.push(slot);
                }
            }
            doomed.sort_unstable();
            doomed.dedup();
            for &slot in &doomed {
                st.delete(s, slot);
            }
            let n = doomed.len();
            match s {
                Section::AccessToken => removed.access_tokens = n,
                Section::RefreshToken => removed.refresh_tokens = n,
                Section::IdToken => removed.id_tokens = n,
                Section::Account => removed.accounts = n,
                Section::AppMetadata => {}
            }
        }
        drop(st);
        if msal_parity || removed.total() > 0 {
            self.mark_changed();
        }
        removed
    }

    /// Signs an account out of one app the way MSAL's `remove_account` ("forget me") does:
    /// removes the app's own refresh tokens and its family's (by the app's metadata), and every
    /// access token, ID token and account entry of that home account in the environments, from
    /// any client. App metadata stays.
    pub fn forget_account(
        &self,
        home_account_id: &str,
        environments: &[&str],
        client_id: &str,
    ) -> Removed {
        let family = environments
            .iter()
            .find_map(|env| self.app_metadata(env, client_id))
            .and_then(|m| m.family_id().map(str::to_owned))
            .filter(|f| !f.is_empty());
        self.remove_account_slots(home_account_id, environments, true, |rt| {
            rt.str_field(Field::ClientId) == Some(client_id)
                || family
                    .as_deref()
                    .is_some_and(|f| rt.str_field(Field::FamilyId) == Some(f))
        })
    }

    /// Removes every access, refresh and ID token and every account entry of a home account,
    /// whatever the client and environment. App metadata stays. Unlike MSAL's removal, it
    /// creates no empty section and changes nothing when nothing matches.
    pub fn remove_account_everywhere(&self, home_account_id: &str) -> Removed {
        self.remove_account_slots(home_account_id, &[], false, |_| true)
    }

    /// Removes everything, foreign members included.
    pub fn clear(&self) {
        *self.write().0 = CacheState::default();
        self.mark_changed();
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&CacheState) -> R) -> R {
        f(&self.read())
    }

    pub(crate) fn with_state_mut<R>(&self, f: impl FnOnce(&mut CacheState) -> R) -> R {
        let r = f(&mut self.write());
        self.mark_changed();
        r
    }
}

/// The write guard: compacts sections when the mutation is done.
struct Writer<'a>(RwLockWriteGuard<'a, CacheState>);

impl std::ops::Deref for Writer<'_> {
    type Target = CacheState;
    fn deref(&self) -> &CacheState {
        &self.0
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut CacheState {
        &mut self.0
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.0.compact_if_needed();
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.iter_mut().for_each(|s| *s = s.to_lowercase());
    v.sort_unstable();
    v.dedup();
    v
}

fn access_token_matches(e: &Entry, q: &AccessTokenQuery<'_>, now: i64) -> bool {
    let hid_ok = match (q.home_account_id, e.field(Field::HomeAccountId)) {
        (None, Some(JsonValue::Null)) => true,
        (Some(h), Some(v)) => v.as_str() == Some(h),
        _ => false,
    };
    hid_ok
        && e.str_field(Field::ClientId) == Some(q.client_id)
        && e.str_field(Field::Realm) == Some(q.realm)
        && env_matches(e.str_field(Field::Environment), q.environments)
        && e.int_field(Field::ExpiresOn).is_some_and(|x| x >= now)
        && match (q.ext_cache_key, e.str_field(Field::ExtCacheKey)) {
            (None, None) => e.field(Field::ExtCacheKey).is_none_or(|v| !v.is_truthy()),
            (Some(want), Some(have)) => want == have,
            _ => false,
        }
        && q.key_id.is_none_or(|k| {
            [Field::KeyId, Field::Kid, Field::Keyid]
                .into_iter()
                .any(|f| e.str_field(f) == Some(k))
        })
        && target_covers(e.str_field(Field::Target).unwrap_or_default(), q.scopes)
}

#[cfg(test)]
mod compaction_tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

    use base64::Engine;

    use super::*;
    use crate::entry::Section;

    fn sign_in(cache: &TokenCache, user: usize) {
        let client_info = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"uid":"u{user}","utid":"t"}}"#));
        let event = TokenEvent::new("cid", ["User.Read"])
            .token_endpoint("https://login.microsoftonline.com/t/oauth2/v2.0/token")
            .grant_type("authorization_code")
            .response_json(&format!(
                r#"{{"access_token":"at{user}","expires_in":3600,"token_type":"Bearer","refresh_token":"rt{user}","client_info":"{client_info}"}}"#
            ))
            .unwrap();
        cache.add(&event).unwrap();
    }

    #[test]
    fn many_removals_compact_the_sections() {
        let cache = TokenCache::new();
        for user in 0..200 {
            sign_in(&cache, user);
        }
        assert_eq!(cache.read().section(Section::AccessToken).slot_count(), 200);
        for user in 0..200 {
            cache.remove_account_everywhere(&format!("u{user}.t"));
        }
        let state = cache.read();
        for section in [
            Section::AccessToken,
            Section::RefreshToken,
            Section::Account,
        ] {
            let map = state.section(section);
            assert_eq!(map.len(), 0);
            // Without compaction the 200 tombstones would stay; it runs once they outnumber
            // the live entries and exceed 64.
            assert!(
                map.slot_count() <= 64,
                "{section:?}: {} slots for 0 entries",
                map.slot_count()
            );
        }
    }
}
