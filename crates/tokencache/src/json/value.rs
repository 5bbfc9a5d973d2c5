//! The lossless JSON value model.

use std::fmt;
use std::sync::Arc;

use hashbrown::HashTable;

/// Longest string stored inline, without a heap allocation.
const INLINE_CAP: usize = 22;

/// A JSON value that keeps everything needed to write it back exactly.
///
/// Strings are stored decoded. Numbers keep their source lexeme (`1.0` stays `1.0`, `1e5` stays
/// `1e5`), so foreign fields round-trip untouched. Objects keep insertion order.
#[derive(Clone, PartialEq, Eq)]
pub enum JsonValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its exact source lexeme (also `NaN`, `Infinity`, `-Infinity`, which Python
    /// reads and writes).
    Number(Box<str>),
    /// A string.
    String(JsonString),
    /// A string whose source contained an unpaired UTF-16 surrogate escape (`"\ud800"`), which
    /// Python accepts but a Rust `str` cannot hold. Kept as its exact escaped source text
    /// (without the quotes) and written back unchanged.
    RawString(Box<str>),
    /// An array.
    Array(Box<[JsonValue]>),
    /// An object, in insertion order.
    Object(Box<JsonObject>),
}

impl JsonValue {
    /// A string value.
    pub fn string(s: &str) -> JsonValue {
        JsonValue::String(JsonString::new(s))
    }

    /// The string content, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, JsonValue::Null)
    }

    /// Python truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are falsy.
    pub fn is_truthy(&self) -> bool {
        match self {
            JsonValue::Null => false,
            JsonValue::Bool(b) => *b,
            JsonValue::Number(n) => {
                let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
                mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) || n.contains(['N', 'I'])
            }
            JsonValue::String(s) => !s.as_str().is_empty(),
            JsonValue::RawString(s) => !s.is_empty(),
            JsonValue::Array(a) => !a.is_empty(),
            JsonValue::Object(o) => !o.is_empty(),
        }
    }

    /// An integer read the way MSAL reads times: a JSON integer, or a string of an optional sign
    /// and ASCII digits. More lenient than MSAL Python, which raises on the rest: a decimal
    /// (`"1700010400.0"`, which MSAL itself writes for a fractional `refresh_in`) is truncated.
    /// Blanks and words are `None`.
    pub fn as_int_lenient(&self) -> Option<i64> {
        let text = match self {
            JsonValue::String(s) => s.as_str().trim(),
            JsonValue::Number(n) => n,
            _ => return None,
        };
        parse_int(text).or_else(|| {
            let f: f64 = text
                .parse()
                .ok()
                .filter(|f: &f64| f.is_finite() && f.abs() < 9.0e15)?;
            text.bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                .then_some(f.trunc() as i64)
        })
    }

    /// True when this is an integer the way MSAL Python's `int()` reads it: a JSON integer or a
    /// string of digits.
    pub fn is_strict_int(&self) -> bool {
        match self {
            JsonValue::String(s) => parse_int(s.as_str().trim()).is_some(),
            JsonValue::Number(n) => parse_int(n).is_some(),
            _ => false,
        }
    }

    /// Python's `str(value)` for the scalar kinds that appear in request data.
    pub fn python_str(&self) -> String {
        match self {
            JsonValue::Null => "None".to_owned(),
            JsonValue::Bool(true) => "True".to_owned(),
            JsonValue::Bool(false) => "False".to_owned(),
            JsonValue::Number(n) => n.to_string(),
            JsonValue::String(s) => s.as_str().to_owned(),
            other => super::to_python_json(other, false),
        }
    }
}

impl fmt::Debug for JsonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonValue::Null => f.write_str("null"),
            JsonValue::Bool(b) => write!(f, "{b}"),
            JsonValue::Number(n) => f.write_str(n),
            JsonValue::String(s) => write!(f, "{:?}", s.as_str()),
            JsonValue::RawString(s) => write!(f, "\"{s}\""),
            JsonValue::Array(a) => f.debug_list().entries(a.iter()).finish(),
            JsonValue::Object(o) => fmt::Debug::fmt(o, f),
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A compact string: short ones inline, long repeated ones shared, the rest boxed.
#[derive(Clone)]
pub struct JsonString(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_CAP] },
    Boxed(Box<str>),
    Shared(Arc<str>),
}

impl JsonString {
    /// A string, inline when short.
    pub fn new(s: &str) -> JsonString {
        if s.len() <= INLINE_CAP {
            let mut bytes = [0u8; INLINE_CAP];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            JsonString(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            JsonString(Repr::Boxed(s.into()))
        }
    }

    pub(crate) fn shared(s: Arc<str>) -> JsonString {
        if s.len() <= INLINE_CAP {
            JsonString::new(&s)
        } else {
            JsonString(Repr::Shared(s))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // The inline bytes are always copied from a `&str` at a char boundary.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Repr::Boxed(b) => b,
            Repr::Shared(a) => a,
        }
    }
}

impl PartialEq for JsonString {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for JsonString {}

impl fmt::Debug for JsonString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A JSON object with Python `dict` semantics: insertion order; assigning an existing key keeps
/// its position and replaces its value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct JsonObject {
    fields: Vec<(Box<str>, JsonValue)>,
}

impl JsonObject {
    /// An empty object.
    pub fn new() -> JsonObject {
        JsonObject::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// True when `key` is present (even with a `null` value).
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The string value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(JsonValue::as_str)
    }

    /// Sets `key` (dict assignment: an existing key keeps its position).
    pub fn insert(&mut self, key: &str, value: JsonValue) {
        match self.fields.iter_mut().find(|(k, _)| &**k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.into(), value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<JsonValue> {
        let index = self.fields.iter().position(|(k, _)| &**k == key)?;
        Some(self.fields.remove(index).1)
    }

    /// The members in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &JsonValue)> {
        self.fields.iter().map(|(k, v)| (&**k, v))
    }

    /// Parses a JSON text that must be an object.
    pub fn parse(text: &str) -> Result<JsonObject, crate::Error> {
        match super::parse_value(text)? {
            JsonValue::Object(o) => Ok(*o),
            _ => Err(crate::Error::NotAnObject),
        }
    }

    pub(crate) fn from_members(fields: Vec<(Box<str>, JsonValue)>) -> JsonObject {
        JsonObject { fields }
    }

    pub(crate) fn push_unchecked(&mut self, key: Box<str>, value: JsonValue) {
        self.fields.push((key, value));
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.fields {
            if crate::secret::is_sensitive(k) {
                map.entry(k, &format_args!("<redacted>"));
            } else {
                map.entry(k, v);
            }
        }
        map.finish()
    }
}

impl FromIterator<(String, JsonValue)> for JsonObject {
    fn from_iter<T: IntoIterator<Item = (String, JsonValue)>>(iter: T) -> Self {
        let mut o = JsonObject::new();
        for (k, v) in iter {
            o.insert(&k, v);
        }
        o
    }
}

/// Shares one allocation between equal strings of fields that repeat across entries
/// (environment, client id, realm, home account id, target).
#[derive(Default)]
pub(crate) struct Interner {
    table: HashTable<Arc<str>>,
    hasher: foldhash::fast::FixedState,
    /// The last string interned per slot (a field): neighbouring entries mostly repeat it, and
    /// a comparison is cheaper than a hash.
    last: [Option<Arc<str>>; 8],
}

impl Interner {
    /// Interns `s`, remembering it as the last value of `slot` (any small number).
    pub(crate) fn intern_in(&mut self, slot: usize, s: &str) -> JsonString {
        if s.len() <= INLINE_CAP {
            return JsonString::new(s);
        }
        let slot = slot % self.last.len();
        if let Some(last) = self.last[slot].as_ref().filter(|last| ***last == *s) {
            return JsonString::shared(last.clone());
        }
        let shared = self.intern(s);
        if let JsonString(Repr::Shared(a)) = &shared {
            self.last[slot] = Some(a.clone());
        }
        shared
    }

    pub(crate) fn intern(&mut self, s: &str) -> JsonString {
        if s.len() <= INLINE_CAP {
            return JsonString::new(s);
        }
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(s);
        let hasher = &self.hasher;
        let entry = self
            .table
            .entry(hash, |a| &**a == s, |a| hasher.hash_one(&**a));
        JsonString::shared(entry.or_insert_with(|| Arc::from(s)).get().clone())
    }
}
