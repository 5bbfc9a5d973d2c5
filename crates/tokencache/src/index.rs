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

#[derive(Clone, Default)]
pub(crate) struct GroupIndex {
    table: HashTable<(u64, SlotList)>,
}

impl GroupIndex {
    pub(crate) fn insert(&mut self, group: u64, slot: Slot) {
        match self.table.find_mut(group, |(g, _)| *g == group) {
            Some((_, list)) => match list {
                SlotList::One(first) => {
                    let first = *first;
                    *list = SlotList::Many(vec![first, slot]);
                }
                SlotList::Many(v) => v.push(slot),
            },
            None => {
                self.table
                    .insert_unique(group, (group, SlotList::One(slot)), |(g, _)| *g);
            }
        }
    }

    pub(crate) fn remove(&mut self, group: u64, slot: Slot) {
        let Ok(mut found) = self.table.find_entry(group, |(g, _)| *g == group) else {
            return;
        };
        let now_empty = match &mut found.get_mut().1 {
            SlotList::One(s) => *s == slot,
            SlotList::Many(v) => {
                v.retain(|&s| s != slot);
                if v.len() == 1 {
                    found.get_mut().1 = SlotList::One(v[0]);
                }
                false
            }
        };
        if now_empty {
            found.remove();
        }
    }

    /// The slots of a group, sorted (insertion order).
    pub(crate) fn get(&self, group: u64) -> Vec<Slot> {
        match self.table.find(group, |(g, _)| *g == group) {
            None => Vec::new(),
            Some((_, SlotList::One(s))) => vec![*s],
            Some((_, SlotList::Many(v))) => {
                let mut v = v.clone();
                v.sort_unstable();
                v
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }
}

const SEED: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x746f_6b65_6e63_6163);

/// Hashes parts, lower-cased, with separators.
pub(crate) fn group_hash(parts: &[&str]) -> u64 {
    let mut h = SEED.build_hasher();
    for part in parts {
        if part
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            h.write(part.to_lowercase().as_bytes());
        } else {
            h.write(part.as_bytes());
        }
        h.write_u8(0xff);
    }
    h.finish()
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
