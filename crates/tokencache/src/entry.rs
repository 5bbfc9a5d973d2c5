//! Cache entries: a lossless, ordered field list with typed accessors per section.

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::json::{JsonObject, JsonValue};
use crate::secret::{Secret, is_sensitive};

/// The five sections of the MSAL cache format, in the order one `add()` first creates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// `"AccessToken"`.
    AccessToken,
    /// `"Account"`.
    Account,
    /// `"IdToken"`.
    IdToken,
    /// `"RefreshToken"`.
    RefreshToken,
    /// `"AppMetadata"`.
    AppMetadata,
}

impl Section {
    /// All sections.
    pub const ALL: [Section; 5] = [
        Section::AccessToken,
        Section::Account,
        Section::IdToken,
        Section::RefreshToken,
        Section::AppMetadata,
    ];

    /// The section's name in the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            Section::AccessToken => "AccessToken",
            Section::Account => "Account",
            Section::IdToken => "IdToken",
            Section::RefreshToken => "RefreshToken",
            Section::AppMetadata => "AppMetadata",
        }
    }

    /// The section with this JSON name.
    pub fn from_name(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! fields {
    ($($variant:ident = $name:literal,)*) => {
        /// A field name the cache format defines (in any MSAL dialect). Stored as one byte.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Field { $(#[doc = concat!("`", $name, "`")] $variant,)* }

        impl Field {
            /// The JSON member name.
            pub fn name(self) -> &'static str {
                match self { $(Field::$variant => $name,)* }
            }

            /// `"name": `, as written before the member's value.
            pub(crate) fn member_prefix(self) -> &'static str {
                match self { $(Field::$variant => concat!("\"", $name, "\": "),)* }
            }

            /// The field with this JSON member name.
            pub fn from_name(name: &str) -> Option<Field> {
                match name { $($name => Some(Field::$variant),)* _ => None }
            }
        }
    };
}

fields! {
    CredentialType = "credential_type",
    Secret = "secret",
    HomeAccountId = "home_account_id",
    Environment = "environment",
    ClientId = "client_id",
    Target = "target",
    Realm = "realm",
    TokenType = "token_type",
    CachedAt = "cached_at",
    ExpiresOn = "expires_on",
    ExtendedExpiresOn = "extended_expires_on",
    ExtExpiresOn = "ext_expires_on",
    RefreshOn = "refresh_on",
    KeyId = "key_id",
    Kid = "kid",
    Keyid = "keyid",
    ExtCacheKey = "ext_cache_key",
    LastModificationTime = "last_modification_time",
    FamilyId = "family_id",
    LocalAccountId = "local_account_id",
    Username = "username",
    AuthorityType = "authority_type",
    AccountSource = "account_source",
    UserAssertionHash = "user_assertion_hash",
    UserAssertionHashCamel = "userAssertionHash",
    RequestedClaims = "requestedClaims",
    RequestedClaimsHash = "requestedClaimsHash",
    ClientInfo = "client_info",
    Name = "name",
}

impl Field {
    /// Fields whose values repeat across neighbouring entries and are worth sharing in memory.
    /// (`home_account_id` repeats too, but never in consecutive entries of a section, so sharing
    /// it costs a hash per entry for little memory.)
    pub(crate) fn is_repetitive(self) -> bool {
        matches!(
            self,
            Field::Environment | Field::ClientId | Field::Realm | Field::Target
        )
    }
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum FieldName {
    Known(Field),
    /// Boxed twice so that the enum is 16 bytes: unknown names are rare, every member pays for
    /// the enum's size.
    Other(Box<Box<str>>),
}

impl FieldName {
    /// A bit per known field, for duplicate detection while parsing.
    pub(crate) fn known_bit(&self) -> Option<u64> {
        match self {
            FieldName::Known(f) => Some(1u64 << (*f as u32)),
            FieldName::Other(_) => None,
        }
    }

    pub(crate) fn new(name: &str) -> FieldName {
        match Field::from_name(name) {
            Some(f) => FieldName::Known(f),
            None => FieldName::Other(Box::new(name.into())),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            FieldName::Known(f) => f.name(),
            FieldName::Other(s) => s,
        }
    }
}

/// One cache entry: every member of the JSON object, in order, with its exact value.
///
/// Unknown members are kept as they are. `Debug` redacts the `secret` member.
#[derive(Default)]
pub struct Entry {
    fields: Vec<(FieldName, JsonValue)>,
    /// The entry as serialized in a document, kept when its cache retains serialized entries
    /// (see [`TokenCache::retain_serialized_entries`](crate::TokenCache::retain_serialized_entries)).
    /// Every mutation clears it.
    rendered: OnceLock<Arc<str>>,
}

impl Clone for Entry {
    /// Clones the members; the kept serialized form stays with the original.
    fn clone(&self) -> Entry {
        Entry {
            fields: self.fields.clone(),
            rendered: OnceLock::new(),
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.fields == other.fields
    }
}

impl Eq for Entry {}

impl Entry {
    /// An empty entry.
    pub fn new() -> Entry {
        Entry::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Entry {
        Entry {
            fields: Vec::with_capacity(n),
            rendered: OnceLock::new(),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the entry has no members.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of a member by name.
    pub fn get(&self, name: &str) -> Option<&JsonValue> {
        match Field::from_name(name) {
            Some(f) => self.field(f),
            None => self
                .fields
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v),
        }
    }

    /// The value of a known field.
    pub fn field(&self, field: Field) -> Option<&JsonValue> {
        self.fields
            .iter()
            .find(|(k, _)| *k == FieldName::Known(field))
            .map(|(_, v)| v)
    }

    /// The string value of a known field (`None` when missing, `null` or not a string).
    pub fn str_field(&self, field: Field) -> Option<&str> {
        self.field(field).and_then(JsonValue::as_str)
    }

    /// An integer field read leniently: a JSON integer or a string of digits.
    pub fn int_field(&self, field: Field) -> Option<i64> {
        self.field(field).and_then(JsonValue::as_int_lenient)
    }

    /// Sets a member with `dict` semantics: an existing member keeps its position.
    pub fn set(&mut self, name: &str, value: JsonValue) {
        self.set_name(FieldName::new(name), value);
    }

    pub(crate) fn set_name(&mut self, name: FieldName, value: JsonValue) {
        self.rendered.take();
        match self.fields.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    pub(crate) fn set_field(&mut self, field: Field, value: JsonValue) {
        self.set_name(FieldName::Known(field), value);
    }

    /// Removes a member.
    pub fn remove(&mut self, name: &str) -> Option<JsonValue> {
        self.rendered.take();
        let index = self.fields.iter().position(|(k, _)| k.as_str() == name)?;
        Some(self.fields.remove(index).1)
    }

    /// The members in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &JsonValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entry as a JSON object.
    pub fn to_object(&self) -> JsonObject {
        let mut o = JsonObject::new();
        for (k, v) in self.iter() {
            o.push_unchecked(k.into(), v.clone());
        }
        o
    }

    /// An entry from a JSON object.
    pub fn from_object(object: &JsonObject) -> Entry {
        let mut e = Entry::with_capacity(object.len());
        for (k, v) in object.iter() {
            e.fields.push((FieldName::new(k), v.clone()));
        }
        e
    }

    /// An entry from members already free of duplicate names, allocated to exact size.
    pub(crate) fn from_unique(fields: &mut Vec<(FieldName, JsonValue)>) -> Entry {
        let mut exact = Vec::with_capacity(fields.len());
        exact.append(fields);
        Entry {
            fields: exact,
            rendered: OnceLock::new(),
        }
    }

    /// Index of a member by name, among `fields`.
    pub(crate) fn position_in(
        fields: &[(FieldName, JsonValue)],
        name: &FieldName,
    ) -> Option<usize> {
        fields.iter().position(|(k, _)| k == name)
    }
}

impl Entry {
    /// Writes the entry as an object at depth 2 of an indented document (a cache entry),
    /// exactly as `write_python_json` would. Uses the kept serialized form if there is one;
    /// keeps the new one when `keep` is true.
    pub(crate) fn write_python(&self, out: &mut String, keep: bool) {
        if let Some(rendered) = self.rendered.get() {
            out.push_str(rendered);
            return;
        }
        let start = out.len();
        self.render(out);
        if keep {
            let _ = self.rendered.set(out[start..].into());
        }
    }

    /// When the entry holds its serialized form and `text` starts with it, a copy of the entry
    /// (with that form) and the form's length: exactly what parsing that prefix of `text`
    /// would produce, since the form is the entry's canonical serialization. Lets a reload
    /// skip parsing entries that did not change.
    pub(crate) fn reuse_if_at(&self, text: &str) -> Option<(Entry, usize)> {
        let rendered = self.rendered.get()?;
        text.as_bytes().starts_with(rendered.as_bytes()).then(|| {
            let copy = Entry {
                fields: self.fields.clone(),
                rendered: OnceLock::from(rendered.clone()),
            };
            (copy, rendered.len())
        })
    }

    /// True when the entry holds its serialized form.
    #[cfg(test)]
    pub(crate) fn has_rendering(&self) -> bool {
        self.rendered.get().is_some()
    }

    /// Serializes the entry with fewer and larger writes than `write_python_json`.
    fn render(&self, out: &mut String) {
        const SEP: &str = ",\n            ";
        if self.fields.is_empty() {
            out.push_str("{}");
            return;
        }
        out.push_str("{\n            ");
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push_str(SEP);
            }
            match name {
                FieldName::Known(f) => out.push_str(f.member_prefix()),
                FieldName::Other(n) => {
                    crate::json::write_string(out, n);
                    out.push_str(": ");
                }
            }
            crate::json::write_python_json(out, value, Some(3));
        }
        out.push_str("\n        }");
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.iter() {
            if is_sensitive(k) {
                map.entry(&k, &format_args!("<redacted>"));
            } else {
                map.entry(&k, v);
            }
        }
        map.finish()
    }
}

macro_rules! str_accessors {
    ($($(#[$doc:meta])* $method:ident => $field:ident;)*) => {
        $( $(#[$doc])* pub fn $method(&self) -> Option<&str> { self.entry.str_field(Field::$field) } )*
    };
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            key: Box<str>,
            entry: Entry,
        }

        impl $name {
            pub(crate) fn new(key: &str, entry: Entry) -> Self {
                Self { key: key.into(), entry }
            }

            /// The key the entry is stored under.
            pub fn key(&self) -> &str {
                &self.key
            }

            /// All members, including unknown ones.
            pub fn entry(&self) -> &Entry {
                &self.entry
            }

            /// Takes the entry out.
            pub fn into_entry(self) -> Entry {
                self.entry
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("key", &self.key).field("entry", &self.entry).finish()
            }
        }
    };
}

view! {
    /// An access token entry (`"AccessToken"` section).
    AccessToken
}
view! {
    /// A refresh token entry (`"RefreshToken"` section).
    RefreshToken
}
view! {
    /// An ID token entry (`"IdToken"` section).
    IdToken
}
view! {
    /// An account entry (`"Account"` section).
    Account
}
view! {
    /// An app metadata entry (`"AppMetadata"` section).
    AppMetadata
}

fn secret_of(entry: &Entry) -> Option<Secret> {
    entry.str_field(Field::Secret).map(Secret::new)
}

fn user_assertion_hash_of(entry: &Entry) -> Option<&str> {
    entry
        .str_field(Field::UserAssertionHash)
        .or_else(|| entry.str_field(Field::UserAssertionHashCamel))
}

/// Splits a space-separated target into scopes.
pub fn scopes_of(target: &str) -> impl Iterator<Item = &str> {
    target.split_ascii_whitespace()
}

impl AccessToken {
    str_accessors! {
        /// `credential_type`, normally `"AccessToken"`.
        credential_type => CredentialType;
        /// `home_account_id`; `None` for app tokens (`null`).
        home_account_id => HomeAccountId;
        /// `environment`, the authority host.
        environment => Environment;
        /// `client_id`.
        client_id => ClientId;
        /// `target`: the space-separated scopes.
        target => Target;
        /// `realm`: the tenant.
        realm => Realm;
        /// `token_type`, normally `"Bearer"`.
        token_type => TokenType;
        /// `ext_cache_key`: the hash of extra request parameters that isolates this token.
        ext_cache_key => ExtCacheKey;
    }

    /// The token.
    pub fn secret(&self) -> Option<Secret> {
        secret_of(&self.entry)
    }

    /// The scopes of `target`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        scopes_of(self.target().unwrap_or_default())
    }

    /// `cached_at`, Unix seconds.
    pub fn cached_at(&self) -> Option<i64> {
        self.entry.int_field(Field::CachedAt)
    }

    /// `expires_on`, Unix seconds.
    pub fn expires_on(&self) -> Option<i64> {
        self.entry.int_field(Field::ExpiresOn)
    }

    /// `extended_expires_on`, or .NET's `ext_expires_on`.
    pub fn extended_expires_on(&self) -> Option<i64> {
        self.entry
            .int_field(Field::ExtendedExpiresOn)
            .or_else(|| self.entry.int_field(Field::ExtExpiresOn))
    }

    /// `refresh_on`: when a proactive refresh is due, Unix seconds.
    pub fn refresh_on(&self) -> Option<i64> {
        self.entry.int_field(Field::RefreshOn)
    }

    /// The proof-of-possession key id: `key_id` (Python, Node), `kid` (.NET) or `keyid` (Go).
    pub fn key_id(&self) -> Option<&str> {
        [Field::KeyId, Field::Kid, Field::Keyid]
            .into_iter()
            .find_map(|f| self.entry.str_field(f))
    }

    /// The on-behalf-of assertion hash: `user_assertion_hash`, or Node's `userAssertionHash`.
    pub fn user_assertion_hash(&self) -> Option<&str> {
        user_assertion_hash_of(&self.entry)
    }

    /// Node's `requestedClaims`.
    pub fn requested_claims(&self) -> Option<&str> {
        self.entry.str_field(Field::RequestedClaims)
    }

    /// True when `expires_on` is before `now` (the entry is dead, MSAL purges it).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_on().is_some_and(|e| e < now)
    }
}

impl RefreshToken {
    str_accessors! {
        /// `credential_type`, normally `"RefreshToken"`.
        credential_type => CredentialType;
        /// `home_account_id`.
        home_account_id => HomeAccountId;
        /// `environment`.
        environment => Environment;
        /// `client_id`.
        client_id => ClientId;
        /// `target`.
        target => Target;
        /// `family_id`: the FOCI family (`"1"`), when the token is a family refresh token.
        family_id => FamilyId;
    }

    /// The token.
    pub fn secret(&self) -> Option<Secret> {
        secret_of(&self.entry)
    }

    /// `last_modification_time`, Unix seconds.
    pub fn last_modification_time(&self) -> Option<i64> {
        self.entry.int_field(Field::LastModificationTime)
    }

    /// The on-behalf-of assertion hash, in either spelling.
    pub fn user_assertion_hash(&self) -> Option<&str> {
        user_assertion_hash_of(&self.entry)
    }
}

impl IdToken {
    str_accessors! {
        /// `credential_type`, normally `"IdToken"`.
        credential_type => CredentialType;
        /// `home_account_id`.
        home_account_id => HomeAccountId;
        /// `environment`.
        environment => Environment;
        /// `realm`.
        realm => Realm;
        /// `client_id`.
        client_id => ClientId;
    }

    /// The raw JWT.
    pub fn secret(&self) -> Option<Secret> {
        secret_of(&self.entry)
    }

    /// The decoded claims of the JWT payload (not validated), or `None` if it does not decode.
    pub fn claims(&self) -> Option<JsonObject> {
        crate::ingest::decode_jwt_claims(self.entry.str_field(Field::Secret)?).ok()
    }
}

impl Account {
    str_accessors! {
        /// `home_account_id`: `"<uid>.<utid>"` for Entra, the `sub` otherwise.
        home_account_id => HomeAccountId;
        /// `environment`.
        environment => Environment;
        /// `realm`: the tenant of this account record.
        realm => Realm;
        /// `local_account_id` (the `oid` in Entra).
        local_account_id => LocalAccountId;
        /// `username` (`""` when unknown).
        username => Username;
        /// `authority_type`: `"MSSTS"`, `"ADFS"`, …
        authority_type => AuthorityType;
        /// `account_source`: the grant that established the account.
        account_source => AccountSource;
        /// `name` (written by .NET, not by Python).
        name => Name;
        /// `client_info` (written by .NET, not by Python).
        client_info => ClientInfo;
    }
}

impl AppMetadata {
    str_accessors! {
        /// `client_id`.
        client_id => ClientId;
        /// `environment`.
        environment => Environment;
        /// `family_id` when the app is a FOCI family member.
        family_id => FamilyId;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
    use super::*;

    fn rendered(e: &Entry, keep: bool) -> String {
        let mut out = String::new();
        e.write_python(&mut out, keep);
        out
    }

    #[test]
    fn a_kept_serialized_form_is_reused_and_dropped_by_every_change() {
        let mut e = Entry::new();
        e.set("secret", JsonValue::string("s1"));
        assert_eq!(
            rendered(&e, false),
            "{\n            \"secret\": \"s1\"\n        }"
        );
        assert!(!e.has_rendering(), "not kept unless asked");
        let first = rendered(&e, true);
        assert!(e.has_rendering());
        assert_eq!(rendered(&e, false), first);
        assert!(!e.clone().has_rendering(), "a clone starts without it");

        e.set("secret", JsonValue::string("s2"));
        assert!(!e.has_rendering());
        assert!(rendered(&e, true).contains("s2"));
        e.remove("secret");
        assert!(!e.has_rendering());
        assert_eq!(rendered(&e, true), "{}");
    }
}
