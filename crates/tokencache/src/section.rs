//! One section's entries in insertion order, with O(1) lookup by key.
//!
//! Python `dict` semantics: a new key goes to the end, assigning an existing key keeps its
//! position, and a removed key that comes back goes to the end. Removal leaves a tombstone so
//! that slot numbers (which the secondary indexes hold) stay stable; `compact` squeezes them out
//! and the caller rebuilds its indexes.
//!
//! A section of at most [`SMALL`] slots (a user's partition has one entry per section) has no
//! hash table: comparing a few keys costs less than hashing one, and the table's allocation is
//! saved on every partition load.

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

/// Up to this many slots (tombstones included) a section is searched without its hash table.
const SMALL: usize = 8;

#[derive(Default, Clone)]
pub(crate) struct SectionMap {
    slots: Vec<Option<(Box<str>, Item)>>,
    live: usize,
    /// Slots below this are indexed (in `table`, once there are more than [`SMALL`] slots);
    /// those above were appended by [`SectionMap::push_unindexed`] and wait for
    /// [`SectionMap::index_pending`].
    indexed: usize,
    /// Empty while the section is small.
    table: HashTable<Slot>,
    hasher: foldhash::fast::FixedState,
}

impl SectionMap {
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Slots in use, tombstones included (for tests of compaction).
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// True while lookups scan the slots instead of the table.
    fn is_small(&self) -> bool {
        self.slots.len() <= SMALL
    }

    pub(crate) fn slot_of(&self, key: &str) -> Option<Slot> {
        debug_assert_eq!(
            self.indexed,
            self.slots.len(),
            "lookup with unindexed slots"
        );
        self.find(key, self.table_hash(key))
    }

    /// The hash `key` is filed under in the table, or `None` while the section is small.
    fn table_hash(&self, key: &str) -> Option<u64> {
        (!self.is_small()).then(|| self.hasher.hash_one(key))
    }

    /// The slot of `key`, by `hash` (from [`SectionMap::table_hash`]).
    fn find(&self, key: &str, hash: Option<u64>) -> Option<Slot> {
        match hash {
            None => self.scan_for(key, self.slots.len()),
            Some(hash) => self
                .table
                .find(hash, |&s| self.key_at(s) == Some(key))
                .copied(),
        }
    }

    /// The live slot below `end` holding `key`.
    fn scan_for(&self, key: &str, end: usize) -> Option<Slot> {
        self.slots[..end]
            .iter()
            .position(|s| s.as_ref().is_some_and(|(k, _)| &**k == key))
            .map(|i| i as Slot)
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
        let hash = self.table_hash(key);
        if let Some(slot) = self.find(key, hash) {
            let old = self.get_mut(slot).map(|v| std::mem::replace(v, item));
            return (slot, old);
        }
        let slot = self.slots.len() as Slot;
        self.push_unindexed(key, item);
        match hash {
            // Small, or just grown past small: `index_pending` builds the table if needed.
            None => self.index_pending(),
            Some(hash) => {
                self.indexed = self.slots.len();
                let (slots, hasher) = (&self.slots, &self.hasher);
                self.table
                    .insert_unique(hash, slot, |&s| slot_hash(hasher, slots, s));
            }
        }
        (slot, None)
    }

    /// Appends without indexing, for a parser that adds a whole section at once: the index is
    /// built by [`SectionMap::index_pending`] in one go, at its final size (no rehashing on
    /// the way). Until then the map must not be searched.
    pub(crate) fn push_unindexed(&mut self, key: impl Into<Box<str>>, item: Item) {
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
        if self.is_small() {
            for i in start..self.slots.len() {
                let Some((key, _)) = &self.slots[i] else {
                    continue;
                };
                if let Some(first) = self.scan_for(key, i) {
                    self.keep_first_position(first as usize, i);
                }
            }
            self.indexed = self.slots.len();
            return;
        }
        // Growing past SMALL: the slots indexed so far go into the table too.
        let start = if start <= SMALL { 0 } else { start };
        let Self {
            slots,
            table,
            hasher,
            ..
        } = self;
        table.reserve(slots.len() - start, |&s| slot_hash(hasher, slots, s));
        let mut repeated = Vec::new();
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
                Some(first) => repeated.push((first as usize, i)),
                None => {
                    table.insert_unique(hash, i as Slot, |&s| slot_hash(hasher, slots, s));
                }
            }
        }
        for (first, later) in repeated {
            self.keep_first_position(first, later);
        }
        self.indexed = self.slots.len();
    }

    /// A key repeated at slot `later`: Python `dict` semantics keep the first position with the
    /// last value, so the later item moves into `first` and `later` becomes a tombstone.
    fn keep_first_position(&mut self, first: usize, later: usize) {
        if let Some((_, item)) = self.slots[later].take()
            && let Some((_, kept)) = self.slots[first].as_mut()
        {
            *kept = item;
        }
        self.live -= 1;
    }

    /// Removes the entry in `slot`, leaving a tombstone.
    pub(crate) fn remove(&mut self, slot: Slot) -> Option<(Box<str>, Item)> {
        self.index_pending();
        let key = self.key_at(slot)?;
        if let Some(hash) = self.table_hash(key)
            && let Ok(found) = self.table.find_entry(hash, |&s| s == slot)
        {
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

/// The hash of the key in `slot`, for the table's rehashing.
fn slot_hash(
    hasher: &foldhash::fast::FixedState,
    slots: &[Option<(Box<str>, Item)>],
    slot: Slot,
) -> u64 {
    hasher.hash_one(slots[slot as usize].as_ref().map_or("", |(k, _)| &**k))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u8, u8),
        Push(u8, u8),
        IndexPending,
        Remove(u8),
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys, so that repeats and removals are common, and enough operations to
        // cross the small/hashed boundary both ways (compact shrinks a section again).
        prop_oneof![
            3 => (0..24u8, any::<u8>()).prop_map(|(k, v)| Op::Upsert(k, v)),
            3 => (0..24u8, any::<u8>()).prop_map(|(k, v)| Op::Push(k, v)),
            1 => Just(Op::IndexPending),
            2 => (0..24u8).prop_map(Op::Remove),
            1 => Just(Op::Compact),
        ]
    }

    fn item(v: u8) -> Item {
        Item::Other(JsonValue::Number(v.to_string().into()))
    }

    proptest! {
        /// The map behaves as a Python dict (kept here as an ordered list of pairs) under every
        /// sequence of operations, whether it is small (scanned) or hashed.
        #[test]
        fn section_map_is_an_ordered_dict(ops in proptest::collection::vec(op(), 0..80)) {
            let mut map = SectionMap::default();
            let mut model: Vec<(String, u8)> = Vec::new();
            let mut pending: Vec<(String, u8)> = Vec::new();
            let apply_pending = |model: &mut Vec<(String, u8)>, pending: &mut Vec<(String, u8)>| {
                for (k, v) in pending.drain(..) {
                    match model.iter_mut().find(|(mk, _)| *mk == k) {
                        Some(slot) => slot.1 = v,
                        None => model.push((k, v)),
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Upsert(k, v) => {
                        apply_pending(&mut model, &mut pending);
                        let key = format!("key-{k}");
                        let (slot, old) = map.upsert(&key, item(v));
                        let before = model.iter().position(|(mk, _)| *mk == key);
                        prop_assert_eq!(old.is_some(), before.is_some());
                        prop_assert_eq!(map.get(slot).unwrap().0, key.as_str());
                        match before {
                            Some(i) => model[i].1 = v,
                            None => model.push((key, v)),
                        }
                    }
                    Op::Push(k, v) => {
                        map.push_unindexed(format!("key-{k}"), item(v));
                        pending.push((format!("key-{k}"), v));
                    }
                    Op::IndexPending => {
                        map.index_pending();
                        apply_pending(&mut model, &mut pending);
                    }
                    Op::Remove(k) => {
                        map.index_pending();
                        apply_pending(&mut model, &mut pending);
                        let key = format!("key-{k}");
                        match map.slot_of(&key) {
                            Some(slot) => {
                                let (removed, _) = map.remove(slot).unwrap();
                                prop_assert_eq!(&*removed, key.as_str());
                                model.retain(|(mk, _)| *mk != key);
                            }
                            None => prop_assert!(!model.iter().any(|(mk, _)| *mk == key)),
                        }
                    }
                    Op::Compact => {
                        map.index_pending();
                        apply_pending(&mut model, &mut pending);
                        map.compact();
                    }
                }
            }
            map.index_pending();
            apply_pending(&mut model, &mut pending);
            let seen: Vec<(String, u8)> = map
                .iter()
                .map(|(_, k, v)| match v {
                    Item::Other(JsonValue::Number(n)) => (k.to_owned(), n.parse().unwrap()),
                    other => panic!("unexpected item {other:?}"),
                })
                .collect();
            prop_assert_eq!(&seen, &model);
            prop_assert_eq!(map.len(), model.len());
            for k in 0..24u8 {
                let key = format!("key-{k}");
                let found = map.slot_of(&key).map(|s| map.get(s).unwrap().0.to_owned());
                let expected = model.iter().find(|(mk, _)| *mk == key).map(|(mk, _)| mk.clone());
                prop_assert_eq!(found, expected);
            }
        }
    }
}
