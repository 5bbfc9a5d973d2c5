//! The JSON layer: a lossless value model, a tolerant parser and a writer that reproduces
//! Python's `json.dumps(obj, indent=4)` byte for byte.
//!
//! Written by hand rather than on `serde_json` because the cache format needs three things at
//! once that no general JSON crate gives together: number lexemes kept verbatim, Python's
//! duplicate-key rule (the first position, the last value), and a compact in-memory layout
//! (short strings inline, repeated strings shared) that keeps a 100,000-account cache small.

mod parse;
mod value;
mod write;

pub use parse::parse_value;
pub(crate) use parse::{Parser, StrTok};
pub(crate) use value::Interner;
pub use value::{JsonObject, JsonValue};
pub(crate) use write::write_string;
pub use write::{to_python_json, write_python_json};
