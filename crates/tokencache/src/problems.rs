//! Validation: what is wrong with a cache document, entry by entry. Nothing here changes the
//! cache; malformed entries are kept verbatim and only reported.

use std::fmt;

use crate::cache::TokenCache;
use crate::entry::{Entry, Field, Section};
use crate::keys::{canonical_key, is_native_key};
use crate::section::Item;
use crate::state::Top;

/// One problem found in a cache. Never includes a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The section (or top-level member) it concerns.
    pub section: String,
    /// The entry's key; empty for section-level problems.
    pub key: String,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// A readable explanation.
    pub message: String,
}

/// Kinds of [`Problem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A known section is not a JSON object.
    SectionNotAnObject,
    /// An entry is not a JSON object.
    EntryNotAnObject,
    /// A field MSAL needs is missing or has the wrong type; the entry is not searchable.
    MissingField,
    /// A field has a value MSAL cannot read (e.g. a non-integer time).
    BadValue,
    /// `credential_type` disagrees with the section.
    WrongCredentialType,
    /// The entry is not stored under the key MSAL computes for it, so MSAL would duplicate it on
    /// update and cannot remove it.
    NonCanonicalKey,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.section, self.message)
        } else {
            write!(f, "{} {:?}: {}", self.section, self.key, self.message)
        }
    }
}

fn required(section: Section) -> &'static [Field] {
    match section {
        Section::AccessToken => &[
            Field::Secret,
            Field::Environment,
            Field::ClientId,
            Field::ExpiresOn,
        ],
        Section::RefreshToken => &[Field::Secret, Field::Environment, Field::ClientId],
        Section::IdToken => &[Field::Secret, Field::Environment, Field::ClientId],
        Section::Account => &[
            Field::HomeAccountId,
            Field::Environment,
            Field::AuthorityType,
        ],
        Section::AppMetadata => &[Field::ClientId, Field::Environment],
    }
}

/// The time fields MSAL reads as integers.
pub(crate) const TIME_FIELDS: [Field; 5] = [
    Field::ExpiresOn,
    Field::CachedAt,
    Field::ExtendedExpiresOn,
    Field::RefreshOn,
    Field::LastModificationTime,
];

pub(crate) fn entry_problems(section: Section, key: &str, e: &Entry, out: &mut Vec<Problem>) {
    let mut push = |kind, message: String| {
        out.push(Problem {
            section: section.name().to_owned(),
            key: key.to_owned(),
            kind,
            message,
        })
    };
    let mut missing = false;
    for &f in required(section) {
        let ok = if f == Field::ExpiresOn {
            e.field(f).is_some()
        } else {
            e.str_field(f).is_some()
        };
        if !ok {
            missing = true;
            push(
                ProblemKind::MissingField,
                format!("missing or non-string field {:?}", f.name()),
            );
        }
    }
    for f in TIME_FIELDS {
        if let Some(v) = e.field(f)
            && !v.is_strict_int()
        {
            push(
                ProblemKind::BadValue,
                format!(
                    "{:?} is not an integer time (MSAL Python cannot read it)",
                    f.name()
                ),
            );
        }
    }
    if section != Section::Account && section != Section::AppMetadata {
        let want = section.name();
        match e.str_field(Field::CredentialType) {
            Some(ct) if ct.eq_ignore_ascii_case(want) => {}
            other => push(
                ProblemKind::WrongCredentialType,
                format!("credential_type is {other:?}, expected {want:?}"),
            ),
        }
    }
    if !missing {
        let canonical = canonical_key(section, e);
        if canonical != key && !is_native_key(section, e, key) {
            push(
                ProblemKind::NonCanonicalKey,
                format!(
                    "stored under a non-canonical key (no MSAL SDK writes it there); MSAL Python's is {canonical:?}"
                ),
            );
        }
    }
}

impl TokenCache {
    /// Every problem in the cache, in document order. An empty list means MSAL can use every
    /// entry as it is.
    pub fn problems(&self) -> Vec<Problem> {
        self.with_state(|st| {
            let mut out = Vec::new();
            for t in &st.top {
                match t {
                    Top::Other(name, _) => {
                        if Section::from_name(name).is_some() {
                            out.push(Problem {
                                section: name.to_string(),
                                key: String::new(),
                                kind: ProblemKind::SectionNotAnObject,
                                message: "section is not a JSON object".into(),
                            });
                        }
                    }
                    Top::Section(s) => {
                        for (_, key, item) in st.section(*s).iter() {
                            match item {
                                Item::Entry(e) => entry_problems(*s, key, e, &mut out),
                                Item::Other(_) => out.push(Problem {
                                    section: s.name().to_owned(),
                                    key: key.to_owned(),
                                    kind: ProblemKind::EntryNotAnObject,
                                    message: "entry is not a JSON object".into(),
                                }),
                            }
                        }
                    }
                }
            }
            out
        })
    }
}
