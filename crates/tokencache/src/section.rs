//! One section's entries in insertion order, with O(1) lookup by key.
//!
//! Python `dict` semantics: a new key goes to the end, assigning an existing key keeps its
//! position, and a removed key that comes back goes to the end. Removal leaves a tombstone so
//! that slot numbers (which the secondary indexes hold) stay stable; `compact` squeezes them out
//! and the caller rebuilds its indexes.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::entry::Entry;
use crate::json::JsonValue;

/// What a section holds under a key: an entry (a JSON object), or any other JSON value, which
/// is malformed but kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Entry(Entry),
    Other(JsonValue),
}

impl Item {
    pub(crate) fn as_entry(&self) -> Option<&Entry> {
        match self {
            Item::Entry(e) => Some(e),
            Item::Other(_) => None,
        }
    }
}

pub(crate) type Slot = u32;

#[derive(Default, Clone)]
pub(crate) struct SectionMap {
    slots: Vec<Option<(Box<str>, Item)>>,
    live: usize,
    /// Slots below this are in `table`; those above were appended by
    /// [`SectionMap::push_unindexed`] and wait for [`SectionMap::index_pending`].
    indexed: usize,
    table: HashTable<Slot>,
    hasher: foldhash::fast::FixedState,
}

impl SectionMap {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn slot_of(&self, key: &str) -> Option<Slot> {
        self.slot_of_hashed(key, self.hasher.hash_one(key))
    }

    fn slot_of_hashed(&self, key: &str, hash: u64) -> Option<Slot> {
        debug_assert_eq!(
            self.indexed,
            self.slots.len(),
            "lookup with unindexed slots"
        );
        self.table
            .find(hash, |&s| self.key_at(s) == Some(key))
            .copied()
    }

    fn key_at(&self, slot: Slot) -> Option<&str> {
        self.slots.get(slot as usize)?.as_ref().map(|(k, _)| &**k)
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<(&str, &Item)> {
        self.slots
            .get(slot as usize)?
            .as_ref()
            .map(|(k, v)| (&**k, v))
    }

    pub(crate) fn get_mut(&mut self, slot: Slot) -> Option<&mut Item> {
        self.slots.get_mut(slot as usize)?.as_mut().map(|(_, v)| v)
    }

    /// Assigns `key`: replaces in place when present (returning the old item), else appends.
    pub(crate) fn upsert(&mut self, key: &str, item: Item) -> (Slot, Option<Item>) {
        self.index_pending();
        let hash = self.hasher.hash_one(key);
        if let Some(slot) = self.slot_of_hashed(key, hash) {
            let old = self.get_mut(slot).map(|v| std::mem::replace(v, item));
            return (slot, old);
        }
        let slot = self.slots.len() as Slot;
        self.slots.push(Some((key.into(), item)));
        self.live += 1;
        self.indexed = self.slots.len();
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(hash, slot, |&s| {
            let k = slots[s as usize].as_ref().map_or("", |(k, _)| &**k);
            hasher.hash_one(k)
        });
        (slot, None)
    }

    /// Appends without indexing, for a parser that adds a whole section at once: the index is
    /// built by [`SectionMap::index_pending`] in one go, at its final size (no rehashing on
    /// the way). Until then the map must not be searched.
    pub(crate) fn push_unindexed(&mut self, key: &str, item: Item) {
        self.slots.push(Some((key.into(), item)));
        self.live += 1;
    }

    /// Indexes the slots [`SectionMap::push_unindexed`] appended, with Python `dict`
    /// semantics for a repeated key: the first position, the last value (the later slot is
    /// left empty).
    pub(crate) fn index_pending(&mut self) {
        let start = self.indexed;
        if start == self.slots.len() {
            return;
        }
        let Self {
            slots,
            live,
            table,
            hasher,
            ..
        } = self;
        let rehash = |slots: &[Option<(Box<str>, Item)>], s: Slot| {
            hasher.hash_one(slots[s as usize].as_ref().map_or("", |(k, _)| &**k))
        };
        table.reserve(slots.len() - start, |&s| rehash(slots, s));
        for i in start..slots.len() {
            let Some((key, _)) = &slots[i] else {
                continue;
            };
            let hash = hasher.hash_one(&**key);
            let earlier = table
                .find(hash, |&s| {
                    slots[s as usize].as_ref().map(|(k, _)| k) == Some(key)
                })
                .copied();
            match earlier {
                Some(first) => {
                    if let Some((_, item)) = slots[i].take()
                        && let Some((_, kept)) = slots[first as usize].as_mut()
                    {
                        *kept = item;
                    }
                    *live -= 1;
                }
                None => {
                    table.insert_unique(hash, i as Slot, |&s| rehash(slots, s));
                }
            }
        }
        self.indexed = self.slots.len();
    }

    /// Removes the entry in `slot`, leaving a tombstone.
    pub(crate) fn remove(&mut self, slot: Slot) -> Option<(Box<str>, Item)> {
        self.index_pending();
        let key = self.key_at(slot)?;
        let hash = self.hasher.hash_one(key);
        if let Ok(found) = self.table.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.live -= 1;
        self.slots.get_mut(slot as usize)?.take()
    }

    /// Live entries in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Slot, &str, &Item)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|(k, v)| (i as Slot, &**k, v)))
    }

    /// Takes the live entries out, in order.
    pub(crate) fn into_items(self) -> impl Iterator<Item = (Slot, Box<str>, Item)> {
        self.slots
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|(k, v)| (i as Slot, k, v)))
    }

    /// True when tombstones outnumber live entries enough to be worth a rebuild.
    pub(crate) fn should_compact(&self) -> bool {
        let dead = self.slots.len() - self.live;
        dead > 64 && dead > self.live
    }

    /// Drops tombstones; slot numbers change, so the caller must rebuild its indexes.
    pub(crate) fn compact(&mut self) {
        let live: Vec<(Box<str>, Item)> = self.slots.drain(..).flatten().collect();
        *self = SectionMap {
            hasher: self.hasher.clone(),
            ..SectionMap::default()
        };
        self.slots.reserve(live.len());
        for (k, v) in live {
            self.upsert(&k, v);
        }
    }
}
