//! The cache's state behind the lock: the document (top-level order, sections, foreign
//! members) and the secondary indexes, kept consistent by the only two primitives that change
//! entries, [`CacheState::put`] and [`CacheState::delete`].

use crate::Error;
use crate::entry::{Entry, FieldName, Section};
use crate::index::{GroupIndex, group_of, username_group};
use crate::json::{Interner, JsonValue, Parser, write_string};
use crate::keys::canonical_key;
use crate::section::{Item, SectionMap, Slot};

/// A top-level member of the document, in order.
#[derive(Clone, Debug)]
pub(crate) enum Top {
    /// A known section that is a JSON object (its entries live in `sections`).
    Section(Section),
    /// Anything else: unknown members, and known sections that are not objects.
    Other(Box<str>, JsonValue),
}

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
            index_item(groups, usernames, s, slot, old, false);
        }
        let (slot, _) = map.upsert(key, item);
        if let Some((_, new)) = map.get(slot) {
            index_item(groups, usernames, s, slot, new, true);
        }
        Ok(slot)
    }

    /// Writes an entry under its canonical key, as MSAL's `modify` does. Unlike MSAL Python,
    /// an equivalent entry stored under a non-canonical key (older MSALs, MSAL Go 1.0) is
    /// replaced rather than left behind as a duplicate.
    pub(crate) fn write_canonical(&mut self, s: Section, entry: Entry) -> Result<(), Error> {
        let key = canonical_key(s, &entry);
        if s != Section::AppMetadata
            && let Some(g) = group_of(s, &entry)
        {
            let stale: Vec<Slot> = self
                .group(s, g)
                .into_iter()
                .filter(|&slot| {
                    self.entry(s, slot)
                        .is_some_and(|(k, e)| k != key && canonical_key(s, e) == key)
                })
                .collect();
            for slot in stale {
                self.delete(s, slot);
            }
        }
        self.put(s, &key, Item::Entry(entry))?;
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
        index_item(groups, usernames, s, slot, item, false);
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
        groups[s.index()].clear();
        if s == Section::Account {
            usernames.clear();
        }
        for (slot, _, item) in sections[s.index()].iter() {
            index_item(groups, usernames, s, slot, item, true);
        }
    }

    /// Parses a whole document (MSAL Python's `deserialize`: `""` is an empty cache).
    pub(crate) fn parse(text: &str) -> Result<CacheState, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut state = CacheState::default();
        if text.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
            return Ok(state);
        }
        let mut p = Parser::new(text);
        if p.peek() != Some(b'{') {
            p.value(0)?;
            p.finish()?;
            return Err(Error::NotAnObject);
        }
        let mut interner = Interner::default();
        p.object_members(|p, name| {
            let name = match name {
                crate::json::StrTok::Text(t) => t,
                crate::json::StrTok::Lone(raw) => raw.into(),
            };
            match Section::from_name(&name) {
                Some(s) if p.peek() == Some(b'{') => {
                    let map = parse_section(p, &mut interner)?;
                    if !state.has_section(s) {
                        // A repeated name replaces the earlier value in its position.
                        match state
                            .top
                            .iter()
                            .position(|t| matches!(t, Top::Other(n, _) if **n == *name))
                        {
                            Some(i) => state.top[i] = Top::Section(s),
                            None => state.top.push(Top::Section(s)),
                        }
                    }
                    state.sections[s.index()] = map;
                }
                _ => {
                    let value = p.value(1)?;
                    if let Some(s) = Section::from_name(&name) {
                        state.sections[s.index()] = SectionMap::default();
                    }
                    match state.top.iter_mut().find(|t| top_name(t) == &*name) {
                        Some(t) => *t = Top::Other(name.as_ref().into(), value),
                        None => state.top.push(Top::Other(name.as_ref().into(), value)),
                    }
                }
            }
            Ok(())
        })?;
        p.finish()?;
        for s in Section::ALL {
            state.rebuild_index(s);
        }
        Ok(state)
    }

    /// Serializes as MSAL Python's `serialize()` (`json.dumps(cache, indent=4)`).
    pub(crate) fn serialize(&self, capacity_hint: usize) -> String {
        self.serialize_filtered(capacity_hint, |_, _, _| true, true)
    }

    /// Serializes the entries `keep` accepts; foreign top-level members only if `foreign`.
    pub(crate) fn serialize_filtered(
        &self,
        capacity_hint: usize,
        keep: impl Fn(Section, &str, &Item) -> bool,
        foreign: bool,
    ) -> String {
        let mut out = String::with_capacity(capacity_hint);
        let members: Vec<&Top> = self
            .top
            .iter()
            .filter(|t| foreign || matches!(t, Top::Section(_)))
            .collect();
        if members.is_empty() {
            out.push_str("{}");
            return out;
        }
        out.push('{');
        for (i, t) in members.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n    ");
            match t {
                Top::Other(name, value) => {
                    write_string(&mut out, name);
                    out.push_str(": ");
                    crate::json::write_python_json(&mut out, value, Some(1));
                }
                Top::Section(s) => {
                    write_string(&mut out, s.name());
                    out.push_str(": ");
                    let mut first = true;
                    for (_, key, item) in self.section(*s).iter().filter(|(_, k, i)| keep(*s, k, i))
                    {
                        out.push_str(if first { "{\n        " } else { ",\n        " });
                        first = false;
                        write_string(&mut out, key);
                        out.push_str(": ");
                        match item {
                            Item::Entry(e) => e.write_python(&mut out),
                            Item::Other(v) => crate::json::write_python_json(&mut out, v, Some(2)),
                        }
                    }
                    out.push_str(if first { "{}" } else { "\n    }" });
                }
            }
        }
        out.push_str("\n}");
        out
    }
}

fn index_item(
    groups: &mut [GroupIndex; 5],
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
        apply(&mut groups[s.index()], g);
    }
    if s == Section::Account
        && let Some(g) = username_group(e)
    {
        apply(usernames, g);
    }
}

fn top_name(t: &Top) -> &str {
    match t {
        Top::Section(s) => s.name(),
        Top::Other(n, _) => n,
    }
}

fn parse_section(p: &mut Parser<'_>, interner: &mut Interner) -> Result<SectionMap, Error> {
    let mut map = SectionMap::default();
    let mut scratch = Vec::with_capacity(16);
    p.object_members(|p, key| {
        let key = match key {
            crate::json::StrTok::Text(t) => t,
            crate::json::StrTok::Lone(raw) => raw.into(),
        };
        let item = if p.peek() == Some(b'{') {
            Item::Entry(parse_entry(p, interner, &mut scratch)?)
        } else {
            Item::Other(p.value(2)?)
        };
        map.upsert(&key, item);
        Ok(())
    })?;
    Ok(map)
}

fn parse_entry(
    p: &mut Parser<'_>,
    interner: &mut Interner,
    scratch: &mut Vec<(FieldName, JsonValue)>,
) -> Result<Entry, Error> {
    scratch.clear();
    let mut seen: u64 = 0;
    p.object_members(|p, name| {
        let name = match name {
            crate::json::StrTok::Text(t) => FieldName::new(&t),
            crate::json::StrTok::Lone(raw) => FieldName::Other(Box::new(raw.into())),
        };
        let repetitive = matches!(name, FieldName::Known(f) if f.is_repetitive());
        let field_slot = match name {
            FieldName::Known(f) => f as usize,
            FieldName::Other(_) => 0,
        };
        let value = if repetitive && p.peek() == Some(b'"') {
            match p.string()? {
                crate::json::StrTok::Text(t) => {
                    JsonValue::String(interner.intern_in(field_slot, &t))
                }
                lone => lone.into_value(),
            }
        } else {
            p.value(3)?
        };
        // Python dict semantics for a repeated member: first position, last value.
        let duplicate = match name.known_bit() {
            Some(bit) => {
                let dup = seen & bit != 0;
                seen |= bit;
                dup
            }
            None => true,
        };
        match duplicate
            .then(|| Entry::position_in(scratch, &name))
            .flatten()
        {
            Some(i) => scratch[i].1 = value,
            None => scratch.push((name, value)),
        }
        Ok(())
    })?;
    Ok(Entry::from_unique(scratch))
}
