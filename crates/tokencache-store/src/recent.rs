//! The documents of partitions loaded moments ago, as the starting point of a save.
//!
//! A web request loads the user's partition and, when it obtained new tokens, saves it. The
//! save is a compare-and-set against the version it starts from; starting from the document
//! the request just loaded saves a round trip and a parse. If the partition changed in between,
//! the compare-and-set fails and the save reloads, as it always does on a conflict, so a stale
//! entry costs one retry and can never lose a token.
//!
//! Direct-mapped: a partition key hashes to one of [`SLOTS`] slots, each holding the last
//! document loaded for a key with that hash. Remembering reuses the slot's buffers, so it
//! allocates nothing; a slot is used by at most one save. At most `SLOTS` documents are kept
//! (about 6 MB for 5.7 KB partitions).

use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Versioned;

/// Number of slots.
pub(crate) const SLOTS: usize = 1024;

/// How long a remembered document is worth starting a save from.
const FRESH_FOR: Duration = Duration::from_secs(2);

struct Slot {
    key: String,
    loaded: Option<Versioned>,
    at: Instant,
}

pub(crate) struct RecentLoads {
    slots: Box<[Mutex<Slot>]>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for RecentLoads {
    /// Shows no document (they hold tokens).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentLoads")
            .field("slots", &SLOTS)
            .finish_non_exhaustive()
    }
}

impl Default for RecentLoads {
    fn default() -> Self {
        let now = Instant::now();
        RecentLoads {
            slots: (0..SLOTS)
                .map(|_| {
                    Mutex::new(Slot {
                        key: String::new(),
                        loaded: None,
                        at: now,
                    })
                })
                .collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl RecentLoads {
    fn slot(&self, key: &str) -> std::sync::MutexGuard<'_, Slot> {
        let index = (self.hasher.hash_one(key) % SLOTS as u64) as usize;
        self.slots[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers the document just loaded (or saved) for `key`; returns the buffer it replaces,
    /// to be dropped outside the slot's lock.
    pub(crate) fn remember(&self, key: &str, loaded: Versioned) -> Option<Versioned> {
        let mut slot = self.slot(key);
        slot.key.clear();
        slot.key.push_str(key);
        slot.at = Instant::now();
        slot.loaded.replace(loaded)
    }

    /// The document remembered for `key` if it is fresh, taken out (used by one save only).
    pub(crate) fn take(&self, key: &str) -> Option<Versioned> {
        let mut slot = self.slot(key);
        if slot.key != key || slot.at.elapsed() > FRESH_FOR {
            return None;
        }
        slot.loaded.take()
    }

    /// Forgets `key` (its partition was deleted).
    pub(crate) fn forget(&self, key: &str) {
        let mut slot = self.slot(key);
        if slot.key == key {
            slot.loaded = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
    use super::*;

    fn loaded(version: u64) -> Versioned {
        Versioned {
            document: format!("doc {version}").into_bytes(),
            version,
            created_at: None,
            expires_at: None,
        }
    }

    #[test]
    fn a_remembered_document_serves_one_save_of_its_own_key() {
        let recent = RecentLoads::default();
        recent.remember("alice", loaded(1));
        assert!(recent.take("bob").is_none());
        assert_eq!(recent.take("alice").unwrap().version, 1);
        assert!(recent.take("alice").is_none(), "taken once");
        recent.remember("alice", loaded(2));
        recent.forget("alice");
        assert!(recent.take("alice").is_none());
    }

    #[test]
    fn keys_sharing_a_slot_replace_each_other_and_never_mix() {
        let recent = RecentLoads::default();
        let keys: Vec<String> = (0..SLOTS * 3).map(|i| format!("user-{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            recent.remember(key, loaded(i as u64));
        }
        let mut served = 0;
        for (i, key) in keys.iter().enumerate() {
            if let Some(found) = recent.take(key) {
                assert_eq!(found.version, i as u64, "{key} got another key's document");
                served += 1;
            }
        }
        assert!(served > 0 && served <= SLOTS);
    }
}
