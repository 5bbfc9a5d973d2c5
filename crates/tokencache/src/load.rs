//! Loading a cache document: a strict parse with Python `json.loads` semantics into the
//! compact model, then the indexes.
//!
//! Large documents in MSAL's own layout (`json.dumps(indent=4)`) are parsed by two threads. A
//! raw newline can only stand between JSON tokens (never inside a string), and in that layout
//! a line of exactly eight spaces and a quote starts a cache entry. The second thread parses
//! from such a line near the middle; the first parses up to it and must stop exactly there,
//! inside a section, or the split is dropped and the first thread's complete parse is used.
//! Both halves are merged with the same dict semantics as one sequential parse, so the result
//! (and every error, with its position) is identical.

use std::borrow::Cow;

use memchr::memmem;

use crate::Error;
use crate::entry::{Entry, FieldName, Section};
use crate::json::{Interner, JsonValue, Parser, StrTok};
use crate::section::{Item, SectionMap};
use crate::state::CacheState;

/// Documents smaller than this are parsed on one thread.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// What every entry's parse reuses: the interner of repeated values and the buffer the
/// members are collected in before they are moved into the entry.
struct Scratch {
    interner: Interner,
    fields: Vec<(FieldName, JsonValue)>,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            interner: Interner::default(),
            // More than any MSAL entry has.
            fields: Vec::with_capacity(16),
        }
    }
}

/// How a parse run ended.
enum Run {
    /// The document's closing brace was reached.
    Complete,
    /// Stopped at the split, inside a section: its name and the entries so far.
    Stopped(Box<str>, Section, SectionMap),
}

/// Parses a whole document (MSAL Python's `deserialize`: `""` is an empty cache).
pub(crate) fn parse(text: &str) -> Result<CacheState, Error> {
    parse_reusing(text, None)
}

/// Entries of a previous state that may be reused instead of parsed: an entry whose kept
/// serialized form is exactly the text at the parser's position (see `Entry::reuse_if_at`).
/// The result is the same as a plain parse; only the work differs.
#[derive(Clone, Copy)]
struct Reuse<'p>(Option<&'p CacheState>);

impl Reuse<'_> {
    /// The entry at `text`'s start under `key` and the length of text it covers, from the
    /// same section if known, else from any.
    fn find(self, section: Option<Section>, key: &str, text: &str) -> Option<(Entry, usize)> {
        let previous = self.0?;
        let found_in = |s: Section| {
            let map = previous.section(s);
            let (_, item) = map.get(map.slot_of(key)?)?;
            item.as_entry()?.reuse_if_at(text)
        };
        match section {
            Some(s) => found_in(s),
            None => Section::ALL.iter().find_map(|s| found_in(*s)),
        }
    }
}

/// Parses a whole document, reusing unchanged entries of `previous` (see [`Reuse`]).
pub(crate) fn parse_reusing(
    text: &str,
    previous: Option<&CacheState>,
) -> Result<CacheState, Error> {
    let reuse = Reuse(previous);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_matches([' ', '\t', '\n', '\r']).is_empty() {
        return Ok(CacheState::default());
    }
    let mut p = Parser::new(text);
    if p.peek() != Some(b'{') {
        p.value(0)?;
        p.finish()?;
        return Err(Error::NotAnObject);
    }
    let parallel = text.len() >= PARALLEL_MIN_BYTES
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let split = if parallel { find_split(text) } else { None };
    let mut state = match split {
        Some(at) => parse_split(text, at, reuse)?,
        None => {
            let mut state = CacheState::default();
            run(&mut p, &mut state, &mut Scratch::default(), None, reuse)?;
            state
        }
    };
    state.build_indexes(parallel);
    Ok(state)
}

/// A line of exactly eight spaces and a quote a little before the middle: a candidate entry
/// start. The first part (access tokens, accounts: many short members) costs more per byte than
/// the second (ID tokens: long JWT strings), hence 45%.
fn find_split(text: &str) -> Option<usize> {
    let mid = text.len() * 45 / 100;
    let pattern = b"\n        \"";
    let found = memmem::find(&text.as_bytes()[mid..], pattern).map(|i| mid + i)?;
    Some(found + pattern.len() - 1)
}

fn parse_split(text: &str, at: usize, reuse: Reuse<'_>) -> Result<CacheState, Error> {
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            let mut p = Parser::new(text);
            p.seek(at);
            let mut scratch = Scratch::default();
            let mut head = SectionMap::default();
            // The section is not known here: entries are looked up in every section.
            entries(&mut p, &mut head, &mut scratch, None, (reuse, None))?;
            let mut rest = CacheState::default();
            if p.eat(b',') {
                run_members(&mut p, &mut rest, &mut scratch, None, reuse)?;
            } else if !p.eat(b'}') {
                return Err(p.error("expected ',' or '}'"));
            }
            p.finish()?;
            Ok::<_, Error>((head, rest))
        });
        let mut p = Parser::new(text);
        let mut state = CacheState::default();
        let first =
            run(&mut p, &mut state, &mut Scratch::default(), Some(at), reuse).map(|r| (r, state));
        (first, second.join())
    });
    let (ended, mut state) = first?;
    match ended {
        // The split was not where an entry starts: the first thread parsed everything.
        Run::Complete => Ok(state),
        Run::Stopped(name, section, mut map) => {
            let (head, rest) = second.unwrap_or_else(|_| Err(Error::NotAnObject))?;
            // The second part's entries of the split section follow the first part's, moved
            // (keys and all) and indexed in one go, as one sequential parse would have.
            for (_, key, item) in head.into_items() {
                map.push_unindexed(key, item);
            }
            map.index_pending();
            state.apply_section(&name, section, map);
            for (name, member) in rest.into_members() {
                match member {
                    Ok((s, map)) => state.apply_section(&name, s, map),
                    Err(value) => state.apply_other(&name, value),
                }
            }
            Ok(state)
        }
    }
}

/// Parses the document from its opening brace.
fn run(
    p: &mut Parser<'_>,
    state: &mut CacheState,
    scratch: &mut Scratch,
    stop: Option<usize>,
    reuse: Reuse<'_>,
) -> Result<Run, Error> {
    p.expect(b'{')?;
    if p.eat(b'}') {
        p.finish()?;
        return Ok(Run::Complete);
    }
    let ended = run_members(p, state, scratch, stop, reuse)?;
    if matches!(ended, Run::Complete) {
        p.finish()?;
    }
    Ok(ended)
}

/// Parses top-level members from the next key to the closing brace, or to the split.
fn run_members(
    p: &mut Parser<'_>,
    state: &mut CacheState,
    scratch: &mut Scratch,
    stop: Option<usize>,
    reuse: Reuse<'_>,
) -> Result<Run, Error> {
    loop {
        if p.peek() != Some(b'"') {
            return Err(p.error("expected a string key"));
        }
        let name: Cow<'_, str> = match p.string()? {
            StrTok::Text(t) => t,
            StrTok::Lone(raw) => Cow::Borrowed(raw),
        };
        p.expect(b':')?;
        match Section::from_name(&name) {
            Some(s) if p.peek() == Some(b'{') => {
                p.expect(b'{')?;
                let mut map = SectionMap::default();
                if !entries(p, &mut map, scratch, stop, (reuse, Some(s)))? {
                    return Ok(Run::Stopped(name.into(), s, map));
                }
                state.apply_section(&name, s, map);
            }
            _ => {
                p.skip_ws();
                let value = p.value(1)?;
                state.apply_other(&name, value);
            }
        }
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            return Ok(Run::Complete);
        }
        return Err(p.error("expected ',' or '}'"));
    }
}

/// Parses a section's entries after its opening brace. Returns true at the closing brace,
/// false when the next entry starts exactly at `stop`.
fn entries(
    p: &mut Parser<'_>,
    map: &mut SectionMap,
    scratch: &mut Scratch,
    stop: Option<usize>,
    (reuse, section): (Reuse<'_>, Option<Section>),
) -> Result<bool, Error> {
    if p.eat(b'}') {
        return Ok(true);
    }
    loop {
        if p.peek() != Some(b'"') {
            return Err(p.error("expected a string key"));
        }
        if stop == Some(p.position()) {
            map.index_pending();
            return Ok(false);
        }
        let key: Cow<'_, str> = match p.string()? {
            StrTok::Text(t) => t,
            StrTok::Lone(raw) => raw.into(),
        };
        p.expect(b':')?;
        let item = if p.peek() == Some(b'{') {
            let at = p.position();
            match reuse.find(section, &key, p.rest()) {
                Some((reused, len)) => {
                    p.seek(at + len);
                    Item::Entry(reused)
                }
                None => Item::Entry(entry(p, scratch)?),
            }
        } else {
            Item::Other(p.value(2)?)
        };
        map.push_unindexed(key, item);
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            map.index_pending();
            return Ok(true);
        }
        return Err(p.error("expected ',' or '}'"));
    }
}

fn entry(p: &mut Parser<'_>, scratch: &mut Scratch) -> Result<Entry, Error> {
    let Scratch { interner, fields } = scratch;
    fields.clear();
    let mut seen: u64 = 0;
    p.object_members(|p, name| {
        let name = match name {
            StrTok::Text(t) => FieldName::new(&t),
            StrTok::Lone(raw) => FieldName::Other(Box::new(raw.into())),
        };
        // The parser stands at the value (`object_members` skipped the whitespace); most
        // values are strings, read here without the general dispatch.
        let value = match (&name, p.peek()) {
            (FieldName::Known(f), Some(b'"')) if f.is_repetitive() => match p.string()? {
                StrTok::Text(t) => JsonValue::String(interner.intern_in(*f as usize, &t)),
                lone => lone.into_value(),
            },
            (_, Some(b'"')) => p.string()?.into_value(),
            _ => p.value(3)?,
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
            .then(|| Entry::position_in(fields, &name))
            .flatten()
        {
            Some(i) => fields[i].1 = value,
            None => fields.push((name, value)),
        }
        Ok(())
    })?;
    Ok(Entry::from_unique(fields))
}

#[cfg(test)]
mod reuse_tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
    use super::*;

    const DOC: &str = "{\n    \"AccessToken\": {\n        \"k1\": {\n            \"secret\": \"a\"\n        },\n        \"k2\": {\n            \"secret\": \"b\"\n        }\n    }\n}";

    fn rendered_everything(text: &str) -> CacheState {
        let state = parse(text).unwrap();
        assert_eq!(state.serialize(0, true), text);
        state
    }

    fn entry<'s>(state: &'s CacheState, key: &str) -> &'s Entry {
        let map = state.section(Section::AccessToken);
        map.get(map.slot_of(key).unwrap())
            .unwrap()
            .1
            .as_entry()
            .unwrap()
    }

    #[test]
    fn unchanged_entries_are_reused_changed_ones_parsed() {
        let previous = rendered_everything(DOC);
        let changed = DOC.replace("\"b\"", "\"c\"");
        let state = parse_reusing(&changed, Some(&previous)).unwrap();
        assert!(
            entry(&state, "k1").has_rendering(),
            "k1 is unchanged: copied with its form"
        );
        assert!(!entry(&state, "k2").has_rendering(), "k2 changed: parsed");
        assert_eq!(
            entry(&state, "k2").get("secret").unwrap().as_str(),
            Some("c")
        );
        assert_eq!(state.serialize(0, false), changed);
    }

    #[test]
    fn text_that_only_begins_like_a_kept_form_is_parsed() {
        let previous = rendered_everything(DOC);
        // The same bytes as k1's form up to its last line, then more members.
        let longer = DOC.replace("\"a\"\n        }", "\"a\"\n        , \"x\": 1}");
        let state = parse_reusing(&longer, Some(&previous)).unwrap();
        assert!(!entry(&state, "k1").has_rendering());
        assert_eq!(
            entry(&state, "k1").get("x").unwrap(),
            &JsonValue::Number("1".into())
        );
        assert_eq!(
            state.serialize(0, false),
            parse(&longer).unwrap().serialize(0, false)
        );
    }

    #[test]
    fn reuse_across_the_parallel_split_matches_a_plain_parse() {
        let mut doc = String::from("{\n    \"AccessToken\": {");
        for i in 0..40_000 {
            let sep = if i == 0 { "" } else { "," };
            doc.push_str(&format!(
                "{sep}\n        \"k{i}\": {{\n            \"secret\": \"s{i}\"\n        }}"
            ));
        }
        doc.push_str("\n    }\n}");
        assert!(doc.len() > PARALLEL_MIN_BYTES);
        let previous = rendered_everything(&doc);
        let changed = doc
            .replace("\"s39999\"", "\"new\"")
            .replace("\"s5\"", "\"new5\"");
        let reused = parse_reusing(&changed, Some(&previous)).unwrap();
        assert_eq!(
            reused.serialize(0, false),
            parse(&changed).unwrap().serialize(0, false)
        );
        assert!(entry(&reused, "k39998").has_rendering());
        assert!(!entry(&reused, "k39999").has_rendering());
        assert!(!entry(&reused, "k5").has_rendering());
    }
}
