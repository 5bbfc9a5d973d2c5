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

use memchr::memmem;

use crate::Error;
use crate::entry::{Entry, FieldName, Section};
use crate::json::{Interner, JsonValue, Parser, StrTok};
use crate::section::{Item, SectionMap};
use crate::state::CacheState;

/// Documents smaller than this are parsed on one thread.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// How a parse run ended.
enum Run {
    /// The document's closing brace was reached.
    Complete,
    /// Stopped at the split, inside a section: its name and the entries so far.
    Stopped(Box<str>, Section, SectionMap),
}

/// Parses a whole document (MSAL Python's `deserialize`: `""` is an empty cache).
pub(crate) fn parse(text: &str) -> Result<CacheState, Error> {
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
        Some(at) => parse_split(text, at)?,
        None => {
            let mut state = CacheState::default();
            run(&mut p, &mut state, &mut Interner::default(), None)?;
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

fn parse_split(text: &str, at: usize) -> Result<CacheState, Error> {
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| {
            let mut p = Parser::new(text);
            p.seek(at);
            let mut interner = Interner::default();
            let mut head = SectionMap::default();
            entries(&mut p, &mut head, &mut interner, None)?;
            let mut rest = CacheState::default();
            if p.eat(b',') {
                run_members(&mut p, &mut rest, &mut interner, None)?;
            } else if !p.eat(b'}') {
                return Err(p.error("expected ',' or '}'"));
            }
            p.finish()?;
            Ok::<_, Error>((head, rest))
        });
        let mut p = Parser::new(text);
        let mut state = CacheState::default();
        let first = run(&mut p, &mut state, &mut Interner::default(), Some(at)).map(|r| (r, state));
        (first, second.join())
    });
    let (ended, mut state) = first?;
    match ended {
        // The split was not where an entry starts: the first thread parsed everything.
        Run::Complete => Ok(state),
        Run::Stopped(name, section, mut map) => {
            let (head, rest) = second.unwrap_or_else(|_| Err(Error::NotAnObject))?;
            for (_, key, item) in head.into_items() {
                map.upsert(&key, item);
            }
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
    interner: &mut Interner,
    stop: Option<usize>,
) -> Result<Run, Error> {
    p.expect(b'{')?;
    if p.eat(b'}') {
        p.finish()?;
        return Ok(Run::Complete);
    }
    let ended = run_members(p, state, interner, stop)?;
    if matches!(ended, Run::Complete) {
        p.finish()?;
    }
    Ok(ended)
}

/// Parses top-level members from the next key to the closing brace, or to the split.
fn run_members(
    p: &mut Parser<'_>,
    state: &mut CacheState,
    interner: &mut Interner,
    stop: Option<usize>,
) -> Result<Run, Error> {
    loop {
        if p.peek() != Some(b'"') {
            return Err(p.error("expected a string key"));
        }
        let name: Box<str> = match p.string()? {
            StrTok::Text(t) => t.as_ref().into(),
            StrTok::Lone(raw) => raw.into(),
        };
        p.expect(b':')?;
        match Section::from_name(&name) {
            Some(s) if p.peek() == Some(b'{') => {
                p.expect(b'{')?;
                let mut map = SectionMap::default();
                if !entries(p, &mut map, interner, stop)? {
                    return Ok(Run::Stopped(name, s, map));
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
    interner: &mut Interner,
    stop: Option<usize>,
) -> Result<bool, Error> {
    if p.eat(b'}') {
        return Ok(true);
    }
    let mut scratch = Vec::with_capacity(16);
    loop {
        if p.peek() != Some(b'"') {
            return Err(p.error("expected a string key"));
        }
        if stop == Some(p.position()) {
            return Ok(false);
        }
        let key: std::borrow::Cow<'_, str> = match p.string()? {
            StrTok::Text(t) => t,
            StrTok::Lone(raw) => raw.into(),
        };
        p.expect(b':')?;
        let item = if p.peek() == Some(b'{') {
            Item::Entry(entry(p, interner, &mut scratch)?)
        } else {
            Item::Other(p.value(2)?)
        };
        map.upsert(&key, item);
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            return Ok(true);
        }
        return Err(p.error("expected ',' or '}'"));
    }
}

fn entry(
    p: &mut Parser<'_>,
    interner: &mut Interner,
    scratch: &mut Vec<(FieldName, JsonValue)>,
) -> Result<Entry, Error> {
    scratch.clear();
    let mut seen: u64 = 0;
    p.object_members(|p, name| {
        let name = match name {
            StrTok::Text(t) => FieldName::new(&t),
            StrTok::Lone(raw) => FieldName::Other(Box::new(raw.into())),
        };
        let value = match name {
            FieldName::Known(f) if f.is_repetitive() && p.peek() == Some(b'"') => {
                match p.string()? {
                    StrTok::Text(t) => JsonValue::String(interner.intern_in(f as usize, &t)),
                    lone => lone.into_value(),
                }
            }
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
