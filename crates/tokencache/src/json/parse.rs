//! A strict JSON parser with Python `json.loads` semantics.
//!
//! It accepts what Python accepts (including `NaN`, `Infinity` and unpaired surrogate
//! escapes) and rejects what Python rejects (control characters in strings, leading zeros,
//! trailing data), with line and column in every error. Nesting is limited so that no input
//! can exhaust the stack.

use std::borrow::Cow;

use super::value::{JsonObject, JsonString, JsonValue};
use crate::Error;

/// Deepest nesting accepted. Token caches are three levels deep; anything near this is hostile.
const MAX_DEPTH: usize = 128;

/// A decoded string token.
pub(crate) enum StrTok<'a> {
    /// Decoded text (borrowed when the source had no escapes).
    Text(Cow<'a, str>),
    /// The escaped source text of a string holding an unpaired surrogate.
    Lone(&'a str),
}

impl StrTok<'_> {
    pub(crate) fn into_value(self) -> JsonValue {
        match self {
            StrTok::Text(t) => JsonValue::String(JsonString::new(&t)),
            StrTok::Lone(raw) => JsonValue::RawString(raw.into()),
        }
    }
}

/// Parses one JSON text into a [`JsonValue`].
///
/// ```
/// use tokencache::json::{parse_value, JsonValue};
/// let v = parse_value(r#"{"a": 1.0, "a": 2}"#).unwrap();
/// // Python semantics: the first position, the last value.
/// assert_eq!(tokencache::json::to_python_json(&v, false), r#"{"a": 2}"#);
/// ```
pub fn parse_value(text: &str) -> Result<JsonValue, Error> {
    let mut p = Parser::new(text);
    p.skip_ws();
    let v = p.value(0)?;
    p.finish()?;
    Ok(v)
}

/// True when `b` holds a control character (below 0x20). Thirty-two bytes at a time, in a
/// form the compiler turns into vector instructions, then eight at a time.
fn has_control(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(0xff_u8, |low, &c| low.min(c)) < 0x20 {
            return true;
        }
    }
    let mut words = chunks.remainder().chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20 borrows when 0x20 is subtracted and had its top bit clear.
        if x.wrapping_sub(LO * 0x20) & !x & HI != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&c| c < 0x20)
}

/// A cursor over JSON source text.
pub(crate) struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Parser<'a> {
        Parser { src, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        let consumed = &self.bytes()[..self.pos.min(self.src.len())];
        let line = consumed.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = consumed
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&consumed[line_start..])
            .chars()
            .count()
            + 1;
        Error::Json {
            line,
            column,
            message: message.into(),
        }
    }

    /// The current byte offset.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The text from the current position on.
    pub(crate) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    /// Moves to a byte offset (a token boundary the caller has found).
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.src.len());
    }

    pub(crate) fn skip_ws(&mut self) {
        let b = self.bytes();
        let mut i = self.pos;
        loop {
            // Indented documents are mostly runs of spaces: count them eight bytes at a time.
            if let Some(chunk) = b.get(i..i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let not_space = u64::from_le_bytes(word) ^ u64::from_le_bytes([b' '; 8]);
                if not_space == 0 {
                    i += 8;
                    continue;
                }
                i += (not_space.trailing_zeros() / 8) as usize;
            }
            match b.get(i) {
                Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
                _ => break,
            }
        }
        self.pos = i;
    }

    /// The next byte after whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    pub(crate) fn expect(&mut self, byte: u8) -> Result<(), Error> {
        // In MSAL's layout the colon and the comma follow their token directly.
        if self.bytes().get(self.pos) == Some(&byte) {
            self.pos += 1;
            return Ok(());
        }
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.error(format!("expected '{}'", byte as char))),
            None => Err(self.error(format!(
                "unexpected end of input, expected '{}'",
                byte as char
            ))),
        }
    }

    /// Consumes `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.bytes().get(self.pos) == Some(&byte) || self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// After the last value: only whitespace may follow.
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        self.skip_ws();
        if self.pos < self.src.len() {
            return Err(self.error("extra data after the JSON value"));
        }
        Ok(())
    }

    /// Iterates the members of an object whose `{` is next: calls `member` with each key, after
    /// which the parser stands at the member's value. Handles the commas and the closing brace.
    pub(crate) fn object_members(
        &mut self,
        mut member: impl FnMut(&mut Parser<'a>, StrTok<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.expect(b':')?;
            self.skip_ws();
            member(self, key)?;
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(());
            }
            return Err(self.error("expected ',' or '}'"));
        }
    }

    /// Parses any value; the parser stands at its first byte.
    pub(crate) fn value(&mut self, depth: usize) -> Result<JsonValue, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        match self.peek() {
            None => Err(self.error("unexpected end of input, expected a value")),
            Some(b'"') => Ok(self.string()?.into_value()),
            Some(b'{') => {
                let mut members: Vec<(Box<str>, JsonValue)> = Vec::new();
                let mut index: Option<std::collections::HashMap<Box<str>, usize>> = None;
                self.object_members(|p, key| {
                    let value = p.value(depth + 1)?;
                    let key: Box<str> = match key {
                        StrTok::Text(k) => k.into(),
                        StrTok::Lone(raw) => raw.into(),
                    };
                    // Python dict semantics, in O(1) per member even for huge objects.
                    if index.is_none() && members.len() >= 16 {
                        index = Some(
                            members
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.clone(), i))
                                .collect(),
                        );
                    }
                    let existing = match &index {
                        Some(map) => map.get(&key).copied(),
                        None => members.iter().position(|(k, _)| *k == key),
                    };
                    match existing {
                        Some(i) => members[i].1 = value,
                        None => {
                            if let Some(map) = &mut index {
                                map.insert(key.clone(), members.len());
                            }
                            members.push((key, value));
                        }
                    }
                    Ok(())
                })?;
                Ok(JsonValue::Object(Box::new(JsonObject::from_members(
                    members,
                ))))
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(JsonValue::Array(items.into()));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(JsonValue::Array(items.into()));
                    }
                    return Err(self.error("expected ',' or ']'"));
                }
            }
            Some(b't') => self.literal("true", JsonValue::Bool(true)),
            Some(b'f') => self.literal("false", JsonValue::Bool(false)),
            Some(b'n') => self.literal("null", JsonValue::Null),
            Some(b'N') => self.literal("NaN", JsonValue::Number("NaN".into())),
            Some(b'I') => self.literal("Infinity", JsonValue::Number("Infinity".into())),
            Some(b'-') if self.src[self.pos..].starts_with("-Infinity") => {
                self.literal("-Infinity", JsonValue::Number("-Infinity".into()))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: JsonValue) -> Result<JsonValue, Error> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn number(&mut self) -> Result<JsonValue, Error> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
        }
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            digits(&mut i);
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            let mut j = i + 1;
            if matches!(b.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if digits(&mut j) > 0 {
                i = j;
            }
        }
        self.pos = i;
        Ok(JsonValue::Number(self.src[start..i].into()))
    }

    /// Parses a string; the parser stands at its opening quote.
    pub(crate) fn string(&mut self) -> Result<StrTok<'a>, Error> {
        let b = self.bytes();
        let start = self.pos + 1;
        // memchr finds the closing quote or a backslash with vector instructions; control
        // characters (which memchr does not look for) are checked over that stretch after.
        let end = match memchr::memchr2(b'"', b'\\', &b[start..]) {
            Some(offset) => start + offset,
            None => {
                self.pos = b.len();
                return Err(self.error("unterminated string"));
            }
        };
        if b[end] == b'"' {
            if has_control(&b[start..end]) {
                let bad = b[start..end].iter().position(|&c| c < 0x20).unwrap_or(0);
                self.pos = start + bad;
                return Err(self.error("invalid control character in string"));
            }
            self.pos = end + 1;
            return Ok(StrTok::Text(Cow::Borrowed(&self.src[start..end])));
        }
        self.string_with_escapes(start)
    }

    fn string_with_escapes(&mut self, start: usize) -> Result<StrTok<'a>, Error> {
        let b = self.bytes();
        let mut out = String::new();
        let mut i = start;
        let mut lone_surrogate = false;
        loop {
            let run = i;
            while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
                i += 1;
            }
            out.push_str(&self.src[run..i]);
            match b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.error("unterminated string"));
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    if lone_surrogate {
                        return Ok(StrTok::Lone(&self.src[start..i]));
                    }
                    return Ok(StrTok::Text(Cow::Owned(out)));
                }
                Some(b'\\') => {
                    let esc = b.get(i + 1).copied();
                    i += 2;
                    let simple = match esc {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        Some(b'u') => None,
                        _ => {
                            self.pos = i - 2;
                            return Err(self.error("invalid escape in string"));
                        }
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        continue;
                    }
                    let hi = self.hex4(i)?;
                    i += 4;
                    if (0xD800..0xDC00).contains(&hi) {
                        if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                            let lo = self.hex4(i + 2)?;
                            if (0xDC00..0xE000).contains(&lo) {
                                i += 6;
                                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                continue;
                            }
                        }
                        lone_surrogate = true;
                    } else if (0xDC00..0xE000).contains(&hi) {
                        lone_surrogate = true;
                    } else {
                        out.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                    }
                }
                Some(_) => {
                    self.pos = i;
                    return Err(self.error("invalid control character in string"));
                }
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, Error> {
        let digits = self.bytes().get(at..at + 4);
        let parsed = digits
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|d| u32::from_str_radix(std::str::from_utf8(d).ok()?, 16).ok());
        parsed.ok_or_else(|| {
            self.pos = at;
            self.error("invalid \\u escape")
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
    use super::*;

    /// Every string length across the vector, word and byte stretches of the scan, with one
    /// odd byte at every position: control characters are rejected where they stand, the
    /// bytes around them (space, DEL, `!`, non-ASCII) are kept.
    #[test]
    fn control_characters_are_found_at_every_position_of_every_length() {
        for len in 1..100 {
            for at in 0..len {
                for byte in [0x00u8, 0x01, 0x0a, 0x1f, 0x20, 0x21, 0x7f, 0xc3] {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    if byte == 0xc3 {
                        // A two-byte character (é) must stay valid UTF-8.
                        text.insert(at + 1, 0xa9);
                    }
                    let inner = String::from_utf8(text).unwrap();
                    let parsed = parse_value(&format!("\"{inner}\""));
                    if byte < 0x20 {
                        let err = parsed.unwrap_err().to_string();
                        assert!(err.contains("invalid control character"), "{err}");
                        assert!(
                            err.contains(&format!("column {}", at + 2)),
                            "{len} {at}: {err}"
                        );
                    } else {
                        assert_eq!(parsed.unwrap().as_str(), Some(inner.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn quotes_and_escapes_end_the_scan_at_every_position() {
        for len in 0..80 {
            let head = "x".repeat(len);
            assert_eq!(
                parse_value(&format!("\"{head}\\n{head}\""))
                    .unwrap()
                    .as_str(),
                Some(format!("{head}\n{head}").as_str())
            );
            assert!(parse_value(&format!("\"{head}")).is_err(), "unterminated");
        }
    }
}
