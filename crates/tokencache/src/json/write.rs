//! The writer: Python's `json.dumps(obj, indent=4)` (and the compact form), byte for byte.
//!
//! Python's defaults: `ensure_ascii=True` (every non-ASCII character and DEL become `\uXXXX`
//! with lower-case hex, astral characters as surrogate pairs), separators `", "`/`": "` compact
//! and `","`/`": "` indented, empty containers as `{}`/`[]`, no trailing newline.

use super::value::{JsonObject, JsonValue};

/// Serializes `value` as Python's `json.dumps(value, indent=4)` does when `indent` is true,
/// or as plain `json.dumps(value)` when it is false.
///
/// ```
/// use tokencache::json::{parse_value, to_python_json};
/// let v = parse_value(r#"{"name":"Jörg","n":[1,2]}"#).unwrap();
/// assert_eq!(to_python_json(&v, false), r#"{"name": "J\u00f6rg", "n": [1, 2]}"#);
/// assert_eq!(to_python_json(&v, true), "{\n    \"name\": \"J\\u00f6rg\",\n    \"n\": [\n        1,\n        2\n    ]\n}");
/// ```
pub fn to_python_json(value: &JsonValue, indent: bool) -> String {
    let mut out = String::new();
    write_python_json(&mut out, value, indent.then_some(0));
    out
}

/// Appends `value` to `out`; `depth` is `Some(level)` for indented output, `None` for compact.
pub fn write_python_json(out: &mut String, value: &JsonValue, depth: Option<usize>) {
    match value {
        JsonValue::Null => out.push_str("null"),
        JsonValue::Bool(true) => out.push_str("true"),
        JsonValue::Bool(false) => out.push_str("false"),
        JsonValue::Number(n) => out.push_str(n),
        JsonValue::String(s) => write_string(out, s.as_str()),
        JsonValue::RawString(raw) => {
            out.push('"');
            out.push_str(raw);
            out.push('"');
        }
        JsonValue::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(out, i, depth);
                write_python_json(out, item, depth.map(|d| d + 1));
            }
            close(out, depth, ']');
        }
        JsonValue::Object(obj) => write_object_at(out, obj.iter(), depth),
    }
}

/// Writes an object from an iterator of members.
pub fn write_object_at<'a>(
    out: &mut String,
    members: impl ExactSizeIterator<Item = (&'a str, &'a JsonValue)>,
    depth: Option<usize>,
) {
    if members.len() == 0 {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (key, value)) in members.enumerate() {
        separator(out, i, depth);
        write_string(out, key);
        out.push_str(": ");
        write_python_json(out, value, depth.map(|d| d + 1));
    }
    close(out, depth, '}');
}

fn separator(out: &mut String, index: usize, depth: Option<usize>) {
    match depth {
        Some(d) => {
            if index > 0 {
                out.push(',');
            }
            newline(out, d + 1);
        }
        None => {
            if index > 0 {
                out.push_str(", ");
            }
        }
    }
}

fn close(out: &mut String, depth: Option<usize>, bracket: char) {
    if let Some(d) = depth {
        newline(out, d);
    }
    out.push(bracket);
}

fn newline(out: &mut String, level: usize) {
    const SPACES: &str = "\n                                                                ";
    let width = 1 + 4 * level;
    if width <= SPACES.len() {
        out.push_str(&SPACES[..width]);
    } else {
        out.push('\n');
        for _ in 0..level {
            out.push_str("    ");
        }
    }
}

/// True when every byte is printable ASCII other than `"` and `\\` (nothing to escape); eight
/// bytes at a time.
fn is_plain(b: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let bad = (x & HI)
            | (x.wrapping_sub(LO * 0x20) & !x & HI)
            | has_zero(x ^ (LO * 0x7f))
            | has_zero(x ^ (LO * b'"' as u64))
            | has_zero(x ^ (LO * b'\\' as u64));
        if bad != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
}

/// Writes a JSON string literal with Python's `ensure_ascii` escaping.
pub(crate) fn write_string(out: &mut String, s: &str) {
    if is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let unit = |out: &mut String, u: u16| {
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[((u >> shift) & 0xf) as usize] as char);
        }
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    unit(out, *u);
                }
            }
        }
    }
    out.push('"');
}

impl JsonObject {
    /// Serializes as Python's `json.dumps(obj, indent=4)`.
    pub fn to_python_json(&self, indent: bool) -> String {
        let mut out = String::new();
        write_object_at(&mut out, self.iter(), indent.then_some(0));
        out
    }
}
