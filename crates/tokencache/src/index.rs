//! Secondary indexes: slots grouped by a hash of the fields a lookup knows.
//!
//! Group keys hash lower-cased parts so that entries written with mixed-case keys or values
//! (MSAL Go 1.0) land in the same group as canonical ones. A hash collision only puts unrelated
//! entries in one group, never loses one: every lookup re-checks the entry itself.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

use crate::entry::{Entry, Field, Section};
use crate::section::Slot;

/// The slots of one group, in no particular order.
#[derive(Clone, Debug)]
enum SlotList {
    One(Slot),
    Many(Vec<Slot>),
}

/// Slots by group. The first group is kept inline, without the table: a user's partition has
/// one group per section, and loading one then allocates no table.
#[derive(Clone, Default)]
pub(crate) struct GroupIndex {
    first: Option<(u64, SlotList)>,
    /// Every other group (a group is in `first` or here, never both).
    table: HashTable<(u64, SlotList)>,
}

impl SlotList {
    fn push(&mut self, slot: Slot) {
        match self {
            SlotList::One(first) => {
                let first = *first;
                *self = SlotList::Many(vec![first, slot]);
            }
            SlotList::Many(v) => v.push(slot),
        }
    }

    /// Removes `slot`; true when the list is then empty.
    fn remove(&mut self, slot: Slot) -> bool {
        match self {
            SlotList::One(s) => *s == slot,
            SlotList::Many(v) => {
                v.retain(|&s| s != slot);
                if v.len() == 1 {
                    *self = SlotList::One(v[0]);
                }
                false
            }
        }
    }

    /// The slots, sorted (insertion order).
    fn sorted(&self) -> Vec<Slot> {
        match self {
            SlotList::One(s) => vec![*s],
            SlotList::Many(v) => {
                let mut v = v.clone();
                v.sort_unstable();
                v
            }
        }
    }
}

impl GroupIndex {
    pub(crate) fn insert(&mut self, group: u64, slot: Slot) {
        if let Some((g, list)) = &mut self.first
            && *g == group
        {
            list.push(slot);
            return;
        }
        if let Some((_, list)) = self.table.find_mut(group, |(g, _)| *g == group) {
            list.push(slot);
            return;
        }
        if self.first.is_none() {
            self.first = Some((group, SlotList::One(slot)));
        } else {
            self.table
                .insert_unique(group, (group, SlotList::One(slot)), |(g, _)| *g);
        }
    }

    pub(crate) fn remove(&mut self, group: u64, slot: Slot) {
        if let Some((g, list)) = &mut self.first
            && *g == group
        {
            if list.remove(slot) {
                self.first = None;
            }
            return;
        }
        let Ok(mut found) = self.table.find_entry(group, |(g, _)| *g == group) else {
            return;
        };
        if found.get_mut().1.remove(slot) {
            found.remove();
        }
    }

    /// The slots of a group, sorted (insertion order).
    pub(crate) fn get(&self, group: u64) -> Vec<Slot> {
        if let Some((g, list)) = &self.first
            && *g == group
        {
            return list.sorted();
        }
        self.table
            .find(group, |(g, _)| *g == group)
            .map_or_else(Vec::new, |(_, list)| list.sorted())
    }

    pub(crate) fn clear(&mut self) {
        self.first = None;
        self.table.clear();
    }
}

const SEED: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x746f_6b65_6e63_6163);

/// Hashes parts, lower-cased, with separators.
pub(crate) fn group_hash(parts: &[&str]) -> u64 {
    let mut h = SEED.build_hasher();
    for part in parts {
        if needs_lowercasing(part.as_bytes()) {
            h.write(part.to_lowercase().as_bytes());
        } else {
            h.write(part.as_bytes());
        }
        h.write_u8(0xff);
    }
    h.finish()
}

/// True when `b` holds an ASCII upper-case letter or a non-ASCII byte. Eight bytes at a time:
/// group keys are long lower-case identifiers, hashed for every entry of a loaded cache.
fn needs_lowercasing(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // With the top bit of every byte clear, adding 0x3f sets it from 'A' (0x41) up and
        // adding 0x25 from '[' (0x5b) up: a byte is upper-case when the first sets it and the
        // second does not. No carry crosses bytes, as every byte stays below 0x80 + 0x3f.
        let low7 = x & !HI;
        let upper = (low7 + LO * 0x3f) & !(low7 + LO * 0x25) & HI;
        if (x & HI) | upper != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
}

/// The group an entry belongs to in its section's index, or `None` when the entry lacks what
/// the index needs (it is then malformed and not searchable).
pub(crate) fn group_of(section: Section, e: &Entry) -> Option<u64> {
    let s = |f: Field| e.str_field(f);
    let hid = s(Field::HomeAccountId).unwrap_or_default();
    match section {
        Section::AccessToken => {
            e.int_field(Field::ExpiresOn)?;
            Some(group_hash(&[
                hid,
                s(Field::Environment)?,
                s(Field::ClientId)?,
                s(Field::Realm).unwrap_or_default(),
            ]))
        }
        Section::RefreshToken | Section::IdToken => {
            s(Field::ClientId)?;
            Some(group_hash(&[hid, s(Field::Environment)?]))
        }
        Section::Account => {
            s(Field::Environment)?;
            Some(group_hash(&[s(Field::HomeAccountId)?]))
        }
        Section::AppMetadata => None,
    }
}

/// The username group of an account entry.
pub(crate) fn username_group(e: &Entry) -> Option<u64> {
    e.str_field(Field::Username)
        .filter(|u| !u.is_empty())
        .map(|u| group_hash(&[u]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Inserts and removes over a few groups (so that the inline first group empties and
        /// others take its place) agree with a map of sorted slot lists.
        #[test]
        fn group_index_agrees_with_a_map(
            ops in proptest::collection::vec((any::<bool>(), 0..4u64, 0..12u32), 0..60)
        ) {
            let mut index = GroupIndex::default();
            let mut model: BTreeMap<u64, Vec<Slot>> = BTreeMap::new();
            for (insert, group, slot) in ops {
                let slots = model.entry(group).or_default();
                if insert && !slots.contains(&slot) {
                    index.insert(group, slot);
                    slots.push(slot);
                } else if !insert {
                    index.remove(group, slot);
                    slots.retain(|&s| s != slot);
                }
                for g in 0..4u64 {
                    let mut expected = model.get(&g).cloned().unwrap_or_default();
                    expected.sort_unstable();
                    prop_assert_eq!(index.get(g), expected);
                }
            }
            index.clear();
            prop_assert!((0..4u64).all(|g| index.get(g).is_empty()));
        }
    }

    #[test]
    fn needs_lowercasing_agrees_with_the_byte_by_byte_rule_for_every_byte_at_every_position() {
        let plain = b"abcdefghijklmnopqrstuvwxyz0123456789-._";
        for len in 0..plain.len() {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = plain[..len].to_vec();
                    text[at] = byte;
                    let expected = text.iter().any(|b| b.is_ascii_uppercase() || !b.is_ascii());
                    assert_eq!(needs_lowercasing(&text), expected, "{text:?}");
                }
            }
        }
        assert!(!needs_lowercasing(plain));
    }

    #[test]
    fn mixed_case_parts_hash_like_lower_case_ones() {
        assert_eq!(
            group_hash(&["UID.UTID", "Login.Microsoftonline.com"]),
            group_hash(&["uid.utid", "login.microsoftonline.com"])
        );
        assert_ne!(group_hash(&["a", "bc"]), group_hash(&["ab", "c"]));
    }
}
