//! The cache's state behind the lock: the document (top-level order, sections, foreign
//! members) and the secondary indexes, kept consistent by the only two primitives that change
//! entries, [`CacheState::put`] and [`CacheState::delete`].

use crate::Error;
use crate::entry::{Entry, Field, Section};
use crate::index::{GroupIndex, group_of, username_group};
use crate::json::{JsonValue, write_string};
use crate::keys::{canonical_key, identity, is_native_key};
use crate::section::{Item, SectionMap, Slot};

/// A top-level member of the document, in order.
#[derive(Clone, Debug)]
pub(crate) enum Top {
    /// A known section that is a JSON object (its entries live in `sections`).
    Section(Section),
    /// Anything else: unknown members, and known sections that are not objects.
    Other(Box<str>, JsonValue),
}

/// A top-level member taken out of a state: a section with its entries, or another value.
pub(crate) type TopMember = Result<(Section, SectionMap), JsonValue>;

#[derive(Clone, Default)]
pub(crate) struct CacheState {
    pub(crate) top: Vec<Top>,
    pub(crate) sections: [SectionMap; 5],
    groups: [GroupIndex; 5],
    usernames: GroupIndex,
}

impl CacheState {
    pub(crate) fn section(&self, s: Section) -> &SectionMap {
        &self.sections[s.index()]
    }

    pub(crate) fn entry(&self, s: Section, slot: Slot) -> Option<(&str, &Entry)> {
        let (k, item) = self.section(s).get(slot)?;
        Some((k, item.as_entry()?))
    }

    /// Slots of an index group, in insertion order.
    pub(crate) fn group(&self, s: Section, group: u64) -> Vec<Slot> {
        self.groups[s.index()].get(group)
    }

    pub(crate) fn username_group(&self, group: u64) -> Vec<Slot> {
        self.usernames.get(group)
    }

    fn has_section(&self, s: Section) -> bool {
        self.top
            .iter()
            .any(|t| matches!(t, Top::Section(x) if *x == s))
    }

    /// Creates the section if missing (as Python's `setdefault` does, even for removals).
    /// Fails when the document holds a non-object under that name.
    pub(crate) fn ensure_section(&mut self, s: Section) -> Result<(), Error> {
        if self.has_section(s) {
            return Ok(());
        }
        if self
            .top
            .iter()
            .any(|t| matches!(t, Top::Other(name, _) if &**name == s.name()))
        {
            return Err(Error::SectionNotAnObject { section: s.name() });
        }
        self.top.push(Top::Section(s));
        Ok(())
    }

    /// Stores `item` under `key` (dict assignment), keeping indexes consistent.
    pub(crate) fn put(&mut self, s: Section, key: &str, item: Item) -> Result<Slot, Error> {
        self.ensure_section(s)?;
        let CacheState {
            sections,
            groups,
            usernames,
            ..
        } = self;
        let map = &mut sections[s.index()];
        if let Some(slot) = map.slot_of(key)
            && let Some((_, old)) = map.get(slot)
        {
            index_in(&mut groups[s.index()], usernames, s, slot, old, false);
        }
        let (slot, _) = map.upsert(key, item);
        if let Some((_, new)) = map.get(slot) {
            index_in(&mut groups[s.index()], usernames, s, slot, new, true);
        }
        Ok(slot)
    }

    /// Writes an entry as MSAL's `modify` does, under MSAL Python's key, except that the same
    /// entry already stored under another SDK's own key is updated in place there, so an
    /// msal-node or MSAL .NET app sharing the cache keeps finding one entry, not two. Copies
    /// under keys no SDK writes (older MSALs, MSAL Go 1.0) are removed rather than left behind
    /// as duplicates.
    pub(crate) fn write_canonical(&mut self, s: Section, entry: Entry) -> Result<(), Error> {
        let canonical = canonical_key(s, &entry);
        let Some(g) = group_of(s, &entry).filter(|_| s != Section::AppMetadata) else {
            self.put(s, &canonical, Item::Entry(entry))?;
            return Ok(());
        };
        let copies: Vec<(Slot, String, Entry)> = self
            .group(s, g)
            .into_iter()
            .filter_map(|slot| {
                let (k, e) = self.entry(s, slot)?;
                (k != canonical && same_entry(s, k, e, &canonical, &entry))
                    .then(|| (slot, k.to_owned(), e.clone()))
            })
            .collect();
        let canonical_taken = self.section(s).slot_of(&canonical).is_some();
        let in_place = copies.iter().find_map(|(slot, k, stored)| {
            let updated = updated_in_place(&entry, stored);
            (!canonical_taken && is_native_key(s, &updated, k)).then(|| (*slot, k.clone(), updated))
        });
        for (slot, _, _) in &copies {
            if in_place.as_ref().is_none_or(|(kept, _, _)| kept != slot) {
                self.delete(s, *slot);
            }
        }
        match in_place {
            Some((_, key, updated)) => self.put(s, &key, Item::Entry(updated))?,
            None => self.put(s, &canonical, Item::Entry(entry))?,
        };
        Ok(())
    }

    /// Removes the entry in `slot`, leaving a tombstone (see [`CacheState::compact_if_needed`]).
    pub(crate) fn delete(&mut self, s: Section, slot: Slot) -> Option<(Box<str>, Item)> {
        let CacheState {
            sections,
            groups,
            usernames,
            ..
        } = self;
        let map = &mut sections[s.index()];
        let (_, item) = map.get(slot)?;
        index_in(&mut groups[s.index()], usernames, s, slot, item, false);
        map.remove(slot)
    }

    /// Squeezes tombstones out of sections that have many. Slot numbers change, so this runs
    /// only when a mutation is complete, never while slots are queued for deletion.
    pub(crate) fn compact_if_needed(&mut self) {
        for s in Section::ALL {
            if self.sections[s.index()].should_compact() {
                self.sections[s.index()].compact();
                self.rebuild_index(s);
            }
        }
    }

    fn rebuild_index(&mut self, s: Section) {
        let CacheState {
            sections,
            groups,
            usernames,
            ..
        } = self;
        index_section(&sections[s.index()], s, &mut groups[s.index()], usernames);
    }

    /// Applies a top-level member that is a known section holding an object, with Python
    /// dict semantics: a repeated name keeps its first position and takes the last value.
    pub(crate) fn apply_section(&mut self, name: &str, s: Section, map: SectionMap) {
        if !self.has_section(s) {
            match self
                .top
                .iter()
                .position(|t| matches!(t, Top::Other(n, _) if **n == *name))
            {
                Some(i) => self.top[i] = Top::Section(s),
                None => {
                    if self.top.is_empty() {
                        // Room for every section at once (a loaded cache usually has all five).
                        self.top.reserve(Section::ALL.len());
                    }
                    self.top.push(Top::Section(s));
                }
            }
        }
        self.sections[s.index()] = map;
    }

    /// Applies any other top-level member (dict semantics, as above).
    pub(crate) fn apply_other(&mut self, name: &str, value: JsonValue) {
        if let Some(s) = Section::from_name(name) {
            self.sections[s.index()] = SectionMap::default();
        }
        match self.top.iter_mut().find(|t| top_name(t) == name) {
            Some(t) => *t = Top::Other(name.into(), value),
            None => self.top.push(Top::Other(name.into(), value)),
        }
    }

    /// Takes the top-level members out, in order: sections with their entries, or other values.
    pub(crate) fn into_members(mut self) -> Vec<(Box<str>, TopMember)> {
        let top = std::mem::take(&mut self.top);
        top.into_iter()
            .map(|t| match t {
                Top::Section(s) => (
                    s.name().into(),
                    Ok((s, std::mem::take(&mut self.sections[s.index()]))),
                ),
                Top::Other(name, value) => (name, Err(value)),
            })
            .collect()
    }

    /// Builds every index from scratch; the access-token index on a second thread when asked.
    pub(crate) fn build_indexes(&mut self, parallel: bool) {
        let CacheState {
            sections,
            groups,
            usernames,
            ..
        } = self;
        let [at, rest @ ..] = sections;
        let [at_groups, rest_groups @ ..] = groups;
        let build_rest = |rest_groups: &mut [GroupIndex], usernames: &mut GroupIndex| {
            for ((map, g), s) in rest
                .iter()
                .zip(rest_groups.iter_mut())
                .zip(&Section::ALL[1..])
            {
                index_section(map, *s, g, usernames);
            }
        };
        if !parallel {
            index_section(
                at,
                Section::AccessToken,
                at_groups,
                &mut GroupIndex::default(),
            );
            build_rest(rest_groups, usernames);
            return;
        }
        // Access tokens usually outnumber the rest together. A helper thread computes the
        // groups of a share of them (reading entries is the costly part) while this thread
        // computes the others' and indexes the other sections; the groups are then inserted
        // here.
        let items: Vec<(Slot, &Item)> = at.iter().map(|(slot, _, item)| (slot, item)).collect();
        let rest_len: usize = rest.iter().map(SectionMap::len).sum();
        let helper_share = ((items.len() + rest_len) / 2).min(items.len());
        let (mine, theirs) = items.split_at(items.len() - helper_share);
        std::thread::scope(|scope| {
            let helper = scope.spawn(|| access_token_groups(theirs));
            let my_groups = access_token_groups(mine);
            build_rest(rest_groups, usernames);
            let their_groups = helper
                .join()
                .unwrap_or_else(|_| access_token_groups(theirs));
            let mut index = GroupIndex::default();
            for (group, slot) in my_groups.into_iter().chain(their_groups) {
                index.insert(group, slot);
            }
            *at_groups = index;
        });
    }

    /// Serializes as MSAL Python's `serialize()` (`json.dumps(cache, indent=4)`). Large caches
    /// are written by two threads, each writing one half of the entries (see `write_range`).
    /// `keep`: entries keep their serialized form for the next call.
    pub(crate) fn serialize(&self, capacity_hint: usize, keep: bool) -> String {
        let mut out = String::with_capacity(capacity_hint);
        self.serialize_into(&mut out, keep);
        out
    }

    /// Appends the document to `out`. Large caches are written by two threads, unless entries
    /// keep their serialized forms: then writing is mostly copying, which a second thread
    /// does not speed up.
    pub(crate) fn serialize_into(&self, out: &mut String, keep: bool) {
        let total: usize = Section::ALL.iter().map(|s| self.section(*s).len()).sum();
        let parallel = total >= PARALLEL_MIN_ENTRIES
            && !keep
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        if !parallel {
            self.write_range(out, 0, usize::MAX, keep);
            return;
        }
        let start = out.len();
        let mid = total / 2;
        let tail_capacity = out.capacity().saturating_sub(start) / 2 + 1024;
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let mut tail = String::with_capacity(tail_capacity);
                self.write_range(&mut tail, mid, usize::MAX, keep);
                tail
            });
            self.write_range(out, 0, mid, keep);
            match second.join() {
                Ok(tail) => out.push_str(&tail),
                Err(_) => {
                    out.truncate(start);
                    self.write_range(out, 0, usize::MAX, keep);
                }
            }
        })
    }

    /// Writes the part of the document whose pieces have an ordinal in `lo..hi`. A piece's
    /// ordinal is the number of entries before it, so ordinals never decrease along the
    /// document and the parts for `0..m` and `m..MAX` concatenate to the whole.
    fn write_range(&self, out: &mut String, lo: usize, hi: usize, keep: bool) {
        let mine = |ordinal: usize| (lo..hi).contains(&ordinal);
        let members: Vec<&Top> = self.top.iter().collect();
        if members.is_empty() {
            if mine(0) {
                out.push_str("{}");
            }
            return;
        }
        let mut ordinal = 0;
        if mine(0) {
            out.push('{');
        }
        for (i, t) in members.into_iter().enumerate() {
            let open = ordinal;
            if mine(open) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("\n    ");
            }
            match t {
                Top::Other(name, value) => {
                    if mine(open) {
                        write_string(out, name);
                        out.push_str(": ");
                        crate::json::write_python_json(out, value, Some(1));
                    }
                }
                Top::Section(s) => {
                    if mine(open) {
                        write_string(out, s.name());
                        out.push_str(": ");
                    }
                    let mut first = true;
                    for (_, key, item) in self.section(*s).iter() {
                        if mine(ordinal) {
                            out.push_str(if first { "{\n        " } else { ",\n        " });
                            write_string(out, key);
                            out.push_str(": ");
                            match item {
                                Item::Entry(e) => e.write_python(out, keep),
                                Item::Other(v) => crate::json::write_python_json(out, v, Some(2)),
                            }
                        }
                        first = false;
                        ordinal += 1;
                    }
                    if mine(ordinal) {
                        out.push_str(if first { "{}" } else { "\n    }" });
                    }
                }
            }
        }
        if mine(ordinal) {
            out.push_str("\n}");
        }
    }
}

/// Caches with fewer entries are serialized on one thread.
const PARALLEL_MIN_ENTRIES: usize = 4_000;

/// The index groups of access tokens (malformed ones have none).
fn access_token_groups(items: &[(Slot, &Item)]) -> Vec<(u64, Slot)> {
    items
        .iter()
        .filter_map(|(slot, item)| {
            let Item::Entry(e) = item else { return None };
            group_of(Section::AccessToken, e).map(|group| (group, *slot))
        })
        .collect()
}

/// Builds one section's index (and, for accounts, the username index) from scratch.
fn index_section(
    map: &SectionMap,
    s: Section,
    group_index: &mut GroupIndex,
    usernames: &mut GroupIndex,
) {
    group_index.clear();
    if s == Section::Account {
        usernames.clear();
    }
    for (slot, _, item) in map.iter() {
        index_in(group_index, usernames, s, slot, item, true);
    }
}

/// Adds an entry to (or removes it from) its section's index, and the username index for
/// accounts.
fn index_in(
    group_index: &mut GroupIndex,
    usernames: &mut GroupIndex,
    s: Section,
    slot: Slot,
    item: &Item,
    insert: bool,
) {
    let Item::Entry(e) = item else { return };
    let apply = |index: &mut GroupIndex, group: u64| {
        if insert {
            index.insert(group, slot);
        } else {
            index.remove(group, slot);
        }
    };
    if let Some(g) = group_of(s, e) {
        apply(group_index, g);
    }
    if let Some(g) = username_group(e).filter(|_| s == Section::Account) {
        apply(usernames, g);
    }
}

fn top_name(t: &Top) -> &str {
    match t {
        Top::Section(s) => s.name(),
        Top::Other(n, _) => n,
    }
}
/// Whether `stored` (under `key`) is the entry `new` (whose MSAL Python key is `canonical`)
/// replaces: one MSAL Python keys the same, an access token with the same scopes in another
/// order (MSAL .NET sorts them its own way, old MSALs not at all) or, when `stored` sits under
/// another SDK's key, a refresh token of the same account and client (msal-node, .NET and Go
/// key refresh tokens without a target).
fn same_entry(s: Section, key: &str, stored: &Entry, canonical: &str, new: &Entry) -> bool {
    let stored_canonical = canonical_key(s, stored);
    match s {
        _ if stored_canonical == canonical => true,
        Section::AccessToken => identity(s, stored) == identity(s, new),
        Section::RefreshToken => {
            key != stored_canonical
                && [Field::HomeAccountId, Field::Environment, Field::ClientId]
                    .iter()
                    .all(|f| stored.str_field(*f) == new.str_field(*f))
        }
        _ => false,
    }
}

/// `new` as it is written over `stored` in place: the stored `target` is kept (the same
/// scopes for an access token, perhaps in another SDK's order; none for another SDK's
/// refresh token), so the entry still belongs under the stored key.
fn updated_in_place(new: &Entry, stored: &Entry) -> Entry {
    let mut updated = new.clone();
    match stored.field(Field::Target) {
        Some(target) => updated.set_field(Field::Target, target.clone()),
        None => {
            updated.remove(Field::Target.name());
        }
    }
    updated
}
