//! Partition keys: which per-user (or per-app) cache an entry belongs to, as MSAL .NET and Go
//! suggest them to their cache plugins, and serializing or replacing one partition on its own.
//!
//! | entry | partition key |
//! |---|---|
//! | access or refresh token with a `user_assertion_hash` (on-behalf-of) | that hash |
//! | access token without a home account (client credentials, managed identity) | `{client_id}_{realm}_AppTokenCache` |
//! | any other token or account | its `home_account_id` |
//! | app metadata | none: copied into every partition that has an entry of that client and environment |

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::Error;
use crate::cache::TokenCache;
use crate::entry::{AccessToken, Entry, Field, RefreshToken, Section};
use crate::section::Item;
use crate::state::{CacheState, Top};

/// The key of one cache partition: one user's tokens, one app's tokens in one tenant, or one
/// on-behalf-of assertion's tokens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey(String);

impl PartitionKey {
    /// A partition key from its string form.
    pub fn new(key: impl Into<String>) -> PartitionKey {
        PartitionKey(key.into())
    }

    /// The partition of a user's tokens.
    pub fn for_account(home_account_id: &str) -> PartitionKey {
        PartitionKey(home_account_id.to_owned())
    }

    /// The partition of an app's own tokens in a tenant (client credentials).
    ///
    /// ```
    /// use tokencache::PartitionKey;
    /// assert_eq!(PartitionKey::for_app("cid", "contoso").as_str(), "cid_contoso_AppTokenCache");
    /// ```
    pub fn for_app(client_id: &str, tenant: &str) -> PartitionKey {
        PartitionKey(format!("{client_id}_{tenant}_AppTokenCache"))
    }

    /// The partition of tokens obtained on behalf of a user assertion (its hash).
    pub fn for_assertion_hash(user_assertion_hash: &str) -> PartitionKey {
        PartitionKey(user_assertion_hash.to_owned())
    }

    /// The string form, usable as a storage key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The partition an entry belongs to; `None` for app metadata (shared) and for entries that
/// name no owner.
///
/// ```
/// use tokencache::{partition_key, PartitionKey, Section, Entry, json::JsonValue};
/// let mut at = Entry::new();
/// at.set("home_account_id", JsonValue::Null);
/// at.set("client_id", JsonValue::string("daemon"));
/// at.set("realm", JsonValue::string("contoso"));
/// assert_eq!(partition_key(Section::AccessToken, &at), Some(PartitionKey::for_app("daemon", "contoso")));
/// ```
pub fn partition_key(section: Section, entry: &Entry) -> Option<PartitionKey> {
    let s = |f: Field| entry.str_field(f).filter(|v| !v.is_empty());
    if matches!(section, Section::AccessToken | Section::RefreshToken)
        && let Some(hash) = s(Field::UserAssertionHash).or_else(|| s(Field::UserAssertionHashCamel))
    {
        return Some(PartitionKey::for_assertion_hash(hash));
    }
    match section {
        Section::AppMetadata => None,
        Section::AccessToken => match s(Field::HomeAccountId) {
            Some(hid) => Some(PartitionKey::for_account(hid)),
            None => Some(PartitionKey::for_app(
                s(Field::ClientId).unwrap_or_default(),
                entry.str_field(Field::Realm).unwrap_or_default(),
            )),
        },
        _ => s(Field::HomeAccountId).map(PartitionKey::for_account),
    }
}

/// Whether `entry` belongs to the partition `key` (`None` when it belongs to none): the same
/// rule as [`partition_key`], without building the key.
fn belongs_to(section: Section, entry: &Entry, key: &str) -> Option<bool> {
    let s = |f: Field| entry.str_field(f).filter(|v| !v.is_empty());
    if matches!(section, Section::AccessToken | Section::RefreshToken)
        && let Some(hash) = s(Field::UserAssertionHash).or_else(|| s(Field::UserAssertionHashCamel))
    {
        return Some(key == hash);
    }
    match section {
        Section::AppMetadata => None,
        Section::AccessToken => match s(Field::HomeAccountId) {
            Some(hid) => Some(key == hid),
            None => {
                let client = s(Field::ClientId).unwrap_or_default();
                let realm = entry.str_field(Field::Realm).unwrap_or_default();
                Some(
                    key.strip_prefix(client)
                        .and_then(|k| k.strip_prefix('_'))
                        .and_then(|k| k.strip_prefix(realm))
                        == Some("_AppTokenCache"),
                )
            }
        },
        _ => s(Field::HomeAccountId).map(|hid| key == hid),
    }
}

impl AccessToken {
    /// The partition this token belongs to.
    pub fn partition_key(&self) -> Option<PartitionKey> {
        partition_key(Section::AccessToken, self.entry())
    }
}

impl RefreshToken {
    /// The partition this token belongs to.
    pub fn partition_key(&self) -> Option<PartitionKey> {
        partition_key(Section::RefreshToken, self.entry())
    }
}

fn client_env(e: &Entry) -> Option<(String, String)> {
    Some((
        e.str_field(Field::ClientId)?.to_owned(),
        e.str_field(Field::Environment)?.to_lowercase(),
    ))
}

type Member<'a> = (Section, &'a str, &'a Entry);
type Grouped<'a> = (
    HashMap<PartitionKey, Vec<Member<'a>>>,
    Vec<(&'a str, &'a Entry)>,
);

/// Builds a partition document: its entries, in the source's section order and cache order,
/// plus the app metadata of the clients they involve.
fn build_partition(source: &CacheState, entries: &[Member<'_>], meta: &[(&str, &Entry)]) -> String {
    let clients: HashSet<(String, String)> = entries
        .iter()
        .filter_map(|(_, _, e)| client_env(e))
        .collect();
    let mut part = CacheState::default();
    for s in source_section_order(source) {
        for (_, k, e) in entries.iter().filter(|(sec, _, _)| *sec == s) {
            let _ = part.put(s, k, Item::Entry((*e).clone()));
        }
        if s == Section::AppMetadata {
            for (k, e) in meta
                .iter()
                .filter(|(_, e)| client_env(e).is_some_and(|ce| clients.contains(&ce)))
            {
                let _ = part.put(s, k, Item::Entry((*e).clone()));
            }
        }
    }
    part.serialize(0, false)
}

fn source_section_order(source: &CacheState) -> Vec<Section> {
    let mut order: Vec<Section> = source
        .top
        .iter()
        .filter_map(|t| match t {
            Top::Section(s) => Some(*s),
            Top::Other(..) => None,
        })
        .collect();
    for s in Section::ALL {
        if !order.contains(&s) {
            order.push(s);
        }
    }
    order
}

/// One pass over the cache: entries by partition, and the app metadata.
fn members_by_partition(st: &CacheState) -> Grouped<'_> {
    let mut members: HashMap<PartitionKey, Vec<Member<'_>>> = HashMap::new();
    let mut meta = Vec::new();
    for s in Section::ALL {
        for (_, k, item) in st.section(s).iter() {
            let Some(e) = item.as_entry() else { continue };
            match partition_key(s, e) {
                Some(p) => members.entry(p).or_default().push((s, k, e)),
                None if s == Section::AppMetadata => meta.push((k, e)),
                None => {}
            }
        }
    }
    (members, meta)
}

impl TokenCache {
    /// The partitions present, in first-seen order.
    pub fn partition_keys(&self) -> Vec<PartitionKey> {
        self.with_state(|st| {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for s in Section::ALL {
                for (_, _, item) in st.section(s).iter() {
                    if let Some(k) = item.as_entry().and_then(|e| partition_key(s, e))
                        && seen.insert(k.clone())
                    {
                        out.push(k);
                    }
                }
            }
            out
        })
    }

    /// True when every entry that belongs to a partition belongs to `key` (app metadata
    /// belongs to none): the isolation check of a partition loaded from a store, without
    /// allocating.
    ///
    /// ```
    /// use tokencache::{PartitionKey, TokenCache};
    /// let cache = TokenCache::new();
    /// assert!(cache.holds_only(&PartitionKey::for_account("uid.utid")));
    /// ```
    pub fn holds_only(&self, key: &PartitionKey) -> bool {
        self.with_state(|st| {
            Section::ALL.iter().all(|s| {
                st.section(*s).iter().all(|(_, _, item)| {
                    item.as_entry()
                        .and_then(|e| belongs_to(*s, e, key.as_str()))
                        .unwrap_or(true)
                })
            })
        })
    }

    /// One partition as a standalone cache document (MSAL JSON), with the app metadata of the
    /// clients it involves. Foreign top-level members and malformed entries are not part of any
    /// partition. Costs one pass over the cache.
    pub fn serialize_partition(&self, key: &PartitionKey) -> String {
        self.with_state(|st| {
            let (mut members, meta) = members_by_partition(st);
            build_partition(st, &members.remove(key).unwrap_or_default(), &meta)
        })
    }

    /// Splits the whole cache into partition documents (in first-seen order) in one pass.
    pub fn split_partitions(&self) -> Vec<(PartitionKey, String)> {
        let keys = self.partition_keys();
        self.with_state(|st| {
            let (mut members, meta) = members_by_partition(st);
            keys.into_iter()
                .map(|key| {
                    let doc = build_partition(st, &members.remove(&key).unwrap_or_default(), &meta);
                    (key, doc)
                })
                .collect()
        })
    }

    /// Replaces one partition with the content of a partition document: every entry of that
    /// partition is removed, then the document's entries are stored (app metadata is merged).
    /// Fails, changing nothing, if the document is not valid or holds another partition's
    /// entries.
    pub fn replace_partition(&self, key: &PartitionKey, document: &str) -> Result<(), Error> {
        let incoming = crate::load::parse(document)?;
        for s in Section::ALL {
            for (_, k, item) in incoming.section(s).iter() {
                let Some(e) = item.as_entry() else { continue };
                if let Some(p) = partition_key(s, e)
                    && &p != key
                {
                    return Err(Error::ForeignPartitionEntry {
                        section: s.name(),
                        key: k.to_owned(),
                        partition: key.to_string(),
                    });
                }
            }
        }
        self.with_state_mut(|st| {
            for s in Section::ALL {
                if s == Section::AppMetadata {
                    continue;
                }
                let doomed: Vec<_> = st
                    .section(s)
                    .iter()
                    .filter(|(_, _, i)| {
                        i.as_entry().and_then(|e| partition_key(s, e)).as_ref() == Some(key)
                    })
                    .map(|(slot, _, _)| slot)
                    .collect();
                for slot in doomed {
                    st.delete(s, slot);
                }
            }
            for s in Section::ALL {
                for (_, k, item) in incoming.section(s).iter() {
                    if let Item::Entry(e) = item {
                        st.put(s, k, Item::Entry(e.clone()))?;
                    }
                }
            }
            Ok(())
        })
    }
}
