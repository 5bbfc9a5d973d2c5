//! Repair: change a cache until [`TokenCache::problems`] finds nothing, keeping every entry MSAL
//! can use. The rules, per problem:
//!
//! - a known section that is not an object becomes an empty section;
//! - an entry that is not an object, lacks a field MSAL needs or has the wrong
//!   `credential_type` is removed;
//! - a time MSAL cannot read removes an access token (the next silent call gets a new one from
//!   the refresh token) and is dropped from any other entry (a refresh token is kept);
//! - an entry under a key no MSAL SDK writes (see [`crate::keys::native_keys`]) moves to MSAL
//!   Python's key; an entry under another SDK's own key stays there. When that key is taken,
//!   the copy written later (`cached_at`, else `last_modification_time`) stays.
//!
//! Callers keep a copy of what they repair: removed entries are gone from the cache.

use std::fmt;

use crate::cache::TokenCache;
use crate::entry::{Entry, Field, Section};
use crate::keys::{canonical_key, is_native_key};
use crate::problems::{ProblemKind, TIME_FIELDS, entry_problems};
use crate::state::Top;

/// One change [`TokenCache::repair`] made. Never includes a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The section (or top-level member) changed.
    pub section: String,
    /// The entry's key; empty for a section.
    pub key: String,
    /// What was done.
    pub action: RepairAction,
}

/// What [`TokenCache::repair`] did to one entry or section.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// A known section that was not a JSON object was replaced by an empty one.
    EmptiedSection,
    /// The entry was removed; the reason is the problem MSAL had with it.
    Removed {
        /// Why.
        reason: String,
    },
    /// Fields MSAL cannot read were removed; the entry stays.
    RemovedFields {
        /// Their names.
        fields: Vec<String>,
    },
    /// The entry moved to the key MSAL computes for it.
    Rekeyed {
        /// The canonical key.
        to: String,
    },
    /// The entry was a duplicate of the one under its canonical key, which was written later
    /// (or at the same time) and stays.
    DroppedDuplicate {
        /// The canonical key, which keeps its entry.
        kept: String,
    },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.section)?;
        if !self.key.is_empty() {
            write!(f, " {:?}", self.key)?;
        }
        match &self.action {
            RepairAction::EmptiedSection => write!(f, ": not an object; now an empty section"),
            RepairAction::Removed { reason } => write!(f, ": removed ({reason})"),
            RepairAction::RemovedFields { fields } => {
                write!(f, ": removed unreadable field(s) {}", fields.join(", "))
            }
            RepairAction::Rekeyed { to } => write!(f, ": moved to its canonical key {to:?}"),
            RepairAction::DroppedDuplicate { kept } => write!(
                f,
                ": removed; a copy written no earlier is under the canonical key {kept:?}"
            ),
        }
    }
}

/// When an entry was written, for choosing between two copies.
fn written_at(e: &Entry) -> Option<i64> {
    e.int_field(Field::CachedAt)
        .or_else(|| e.int_field(Field::LastModificationTime))
}

impl TokenCache {
    /// Fixes every problem [`TokenCache::problems`] reports (the rules are in the module
    /// documentation) and returns what changed, in document order. Afterwards `problems()`
    /// is empty; a second call changes nothing.
    ///
    /// ```
    /// use tokencache::TokenCache;
    /// let cache = TokenCache::from_json(r#"{"AccessToken": {"broken": 42}, "Account": 7}"#)?;
    /// let repairs = cache.repair();
    /// assert_eq!(repairs.len(), 2);
    /// assert!(cache.problems().is_empty());
    /// # Ok::<(), tokencache::Error>(())
    /// ```
    pub fn repair(&self) -> Vec<Repair> {
        let mut done = Vec::new();
        // Sections that are not objects become empty sections, in place.
        self.with_state_mut(|st| {
            for t in &mut st.top {
                if let Top::Other(name, _) = t
                    && let Some(s) = Section::from_name(name)
                {
                    done.push(Repair {
                        section: s.name().to_owned(),
                        key: String::new(),
                        action: RepairAction::EmptiedSection,
                    });
                    *t = Top::Section(s);
                }
            }
        });
        for section in [
            Section::AccessToken,
            Section::RefreshToken,
            Section::IdToken,
            Section::Account,
            Section::AppMetadata,
        ] {
            for (key, entry) in self.entries(section) {
                if let Some(action) = self.repair_entry(section, &key, entry) {
                    done.push(Repair {
                        section: section.name().to_owned(),
                        key,
                        action,
                    });
                }
            }
        }
        done
    }

    fn repair_entry(&self, s: Section, key: &str, entry: Option<Entry>) -> Option<RepairAction> {
        let remove = |reason: String| {
            // The section exists (the entry was listed in it), so removal cannot fail.
            self.remove_entry(s, key).ok()?;
            Some(RepairAction::Removed { reason })
        };
        let Some(mut entry) = entry else {
            return remove("not a JSON object".into());
        };
        let mut problems = Vec::new();
        entry_problems(s, key, &entry, &mut problems);
        if let Some(p) = problems.iter().find(|p| {
            matches!(
                p.kind,
                ProblemKind::MissingField | ProblemKind::WrongCredentialType
            ) || (p.kind == ProblemKind::BadValue && s == Section::AccessToken)
        }) {
            return remove(p.message.clone());
        }
        let mut fields = Vec::new();
        if problems.iter().any(|p| p.kind == ProblemKind::BadValue) {
            for f in TIME_FIELDS {
                if entry.field(f).is_some_and(|v| !v.is_strict_int()) {
                    entry.remove(f.name());
                    fields.push(f.name().to_owned());
                }
            }
        }
        let canonical = canonical_key(s, &entry);
        if canonical == key || is_native_key(s, &entry, key) {
            if fields.is_empty() {
                return None;
            }
            self.put_entry_at(s, key, entry).ok()?;
            return Some(RepairAction::RemovedFields { fields });
        }
        let kept = self.with_state(|st| {
            let slot = st.section(s).slot_of(&canonical)?;
            st.entry(s, slot).map(|(_, e)| e.clone())
        });
        self.remove_entry(s, key).ok()?;
        match kept {
            Some(existing) if written_at(&existing) >= written_at(&entry) => {
                Some(RepairAction::DroppedDuplicate { kept: canonical })
            }
            _ => {
                self.put_entry_at(s, &canonical, entry).ok()?;
                Some(RepairAction::Rekeyed { to: canonical })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    const AT: &str = r#""credential_type": "AccessToken", "secret": "s", "home_account_id": "uid.utid", "environment": "login.microsoftonline.com", "client_id": "cid", "realm": "contoso", "target": "User.Read", "expires_on": "4102444800""#;

    #[test]
    fn every_problem_is_fixed_and_a_second_repair_changes_nothing() {
        let text = format!(
            r#"{{"AccessToken": {{
                "UID.UTID-login.microsoftonline.com-AccessToken-CID-contoso-User.Read": {{{AT}, "cached_at": "1700000000"}},
                "no-expiry": {{"credential_type": "AccessToken", "secret": "s", "environment": "e", "client_id": "c"}},
                "bad-time": {{{AT}, "realm": "other", "cached_at": "yesterday"}},
                "broken": 42
            }},
            "RefreshToken": {{
                "uid.utid-login.microsoftonline.com-refreshtoken-cid--": {{"credential_type": "RefreshToken", "secret": "rt", "home_account_id": "uid.utid", "environment": "login.microsoftonline.com", "client_id": "cid", "last_modification_time": 1.5}}
            }},
            "Account": [],
            "Unknown": {{"kept": true}}}}"#
        );
        let cache = TokenCache::from_json(&text).unwrap();
        assert_eq!(cache.problems().len(), 7, "{:?}", cache.problems());
        let repairs = cache.repair();
        let actions: Vec<_> = repairs
            .iter()
            .map(|r| (r.section.as_str(), &r.action))
            .collect();
        assert!(
            matches!(actions[0], ("Account", RepairAction::EmptiedSection)),
            "{actions:?}"
        );
        assert!(
            matches!(actions[1], ("AccessToken", RepairAction::Rekeyed { to }) if to == "uid.utid-login.microsoftonline.com-accesstoken-cid-contoso-user.read")
        );
        assert!(
            matches!(actions[2], ("AccessToken", RepairAction::Removed { reason }) if reason.contains("expires_on"))
        );
        assert!(
            matches!(actions[3], ("AccessToken", RepairAction::Removed { reason }) if reason.contains("cached_at"))
        );
        assert!(matches!(
            actions[4],
            ("AccessToken", RepairAction::Removed { .. })
        ));
        assert!(
            matches!(actions[5], ("RefreshToken", RepairAction::RemovedFields { fields }) if fields == &["last_modification_time"])
        );
        assert_eq!(repairs.len(), 6);
        assert!(cache.problems().is_empty(), "{:?}", cache.problems());
        // The refresh token and the unknown member survive; secrets are not in the report.
        assert_eq!(cache.len(Section::RefreshToken), 1);
        assert_eq!(cache.len(Section::AccessToken), 1);
        assert!(cache.serialize().contains("\"Unknown\""));
        assert!(repairs.iter().all(|r| !r.to_string().contains("\"s\"")));
        assert!(cache.repair().is_empty());
    }

    #[test]
    fn of_two_copies_the_one_written_later_stays_under_the_canonical_key() {
        let canonical = "uid.utid-login.microsoftonline.com-accesstoken-cid-contoso-user.read";
        let doc = |older_at_canonical: bool| {
            let (a, b) = if older_at_canonical {
                ("1", "2")
            } else {
                ("2", "1")
            };
            format!(
                r#"{{"AccessToken": {{"{canonical}": {{{AT}, "cached_at": "{a}"}}, "Other-Key": {{{AT}, "cached_at": "{b}"}}}}}}"#
            )
        };
        for older_at_canonical in [true, false] {
            let cache = TokenCache::from_json(&doc(older_at_canonical)).unwrap();
            let repairs = cache.repair();
            assert_eq!(repairs.len(), 1);
            let at = cache.all_access_tokens();
            assert_eq!(at.len(), 1);
            assert_eq!(at[0].key(), canonical);
            assert_eq!(at[0].cached_at(), Some(2), "the later copy stays");
            assert!(
                matches!(repairs[0].action, RepairAction::Rekeyed { .. }) == older_at_canonical
            );
        }
    }
}
