//! A string that never shows itself in `Debug` or `Display`.

use std::fmt;

/// A token, password or other credential.
///
/// `Debug` and `Display` print `Secret(***)`; the value is reachable only through
/// [`Secret::expose`]. The memory is overwritten with zeros when the value is dropped.
///
/// ```
/// use tokencache::Secret;
/// let s = Secret::new("eyJ0eXAi.payload.sig");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "eyJ0eXAi.payload.sig");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Box<str>>) -> Secret {
        Secret(value.into())
    }

    /// The value. Call this only where the value must leave the process (an HTTP header, a
    /// serialized cache), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_boxed_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Names of JSON members whose values are credentials, redacted wherever entries or responses
/// are formatted for people.
pub(crate) const SENSITIVE_MEMBERS: &[&str] = &[
    "secret",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "code",
    "code_verifier",
    "device_code",
    "claims",
    "client_claims",
    "user_federated_identity_credential",
    "id_token_claims",
];

pub(crate) fn is_sensitive(name: &str) -> bool {
    SENSITIVE_MEMBERS.contains(&name)
}
