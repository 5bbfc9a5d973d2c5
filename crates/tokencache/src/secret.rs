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

/// Whether a JSON member named `name` holds a credential (`secret`, `refresh_token`,
/// `client_secret`, `id_token`, …), so that whatever shows entries to people leaves it out,
/// wherever in an entry it is (MSAL writes secrets only in `secret`, but a cache anyone could
/// have written may hide one in any member).
pub fn is_sensitive_member(name: &str) -> bool {
    SENSITIVE_MEMBERS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

pub(crate) fn is_sensitive(name: &str) -> bool {
    is_sensitive_member(name)
}

/// Query parameters of store URLs that carry a credential or name where one is kept.
const SENSITIVE_URL_PARAMETERS: &[&str] = &["password", "passfile", "sslpassword", "pass", "token"];

/// A store URL (or connection string) fit to print, log or put in an error: the user info
/// (`user:password@`) becomes `***@`, and `password`, `passfile`, `sslpassword`, `pass` and
/// `token` parameters (in the query, or `key=value` words of a PostgreSQL connection string)
/// become `***`.
///
/// Written by hand rather than with a URL parser on purpose: it must also blank what a parser
/// rejects (several hosts, as in `redis+cluster://:secret@h1:1,h2:2`, or a mistyped URL), since
/// an unparseable URL is exactly the one that ends up in an error message.
///
/// ```
/// use tokencache::redact_url;
/// assert_eq!(redact_url("redis://:s3cret@cache:6379/0"), "redis://***@cache:6379/0");
/// assert_eq!(redact_url("redis+cluster://:s3cret@h1:1,h2:2"), "redis+cluster://***@h1:1,h2:2");
/// assert_eq!(
///     redact_url("postgres://app@db/tokens?sslmode=require&password=s3cret"),
///     "postgres://***@db/tokens?sslmode=require&password=***"
/// );
/// assert_eq!(redact_url("host=db password=s3cret dbname=t"), "host=db password=*** dbname=t");
/// assert_eq!(redact_url("sqlite:///var/lib/app/tokens.db"), "sqlite:///var/lib/app/tokens.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        // Not a URL: a connection string, or a URL mistyped past recognition. Words with
        // user info (`:secret@host`) lose it too.
        None => {
            let words = redact_parameters(url, &[' ', '\t', '\n']);
            return words
                .split(' ')
                .map(|w| match w.rfind('@') {
                    Some(at) => format!("***{}", &w[at..]),
                    None => w.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ");
        }
    };
    // The authority ends at the first `/`, `?` or `#`; its user info at its last `@`.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_owned(),
    };
    let tail = match tail.find('?') {
        Some(q) => format!(
            "{}{}",
            &tail[..=q],
            redact_parameters(&tail[q + 1..], &['&', ';'])
        ),
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// Blanks the values of sensitive `name=value` parameters separated by `separators`.
fn redact_parameters(text: &str, separators: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(separators).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        match word.split_once('=') {
            Some((name, _))
                if SENSITIVE_URL_PARAMETERS
                    .iter()
                    .any(|s| name.trim().eq_ignore_ascii_case(s)) =>
            {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(word),
        }
        let mut chars = after.chars();
        if let Some(separator) = chars.next() {
            out.push(separator);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn no_credential_survives_in_any_url_shape() {
        for (url, secret) in [
            ("redis://:s3cret@h:6379/", "s3cret"),
            ("redis://user:s3cret@h:6379/", "s3cret"),
            ("rediss://user:s3cret@h/?password=other", "other"),
            ("redis+cluster://:s3cret@h1:1,h2:2", "s3cret"),
            ("redis+cluster://:s3cret@h1:1,h2:2/?x=1", "s3cret"),
            ("postgres://u:s3cret@db:5432/t", "s3cret"),
            ("postgres://u@db/t?password=s3cret", "s3cret"),
            ("postgres://u@db/t?PassFile=/home/u/.pgpass", ".pgpass"),
            ("postgres://u:p@ss@db/t", "p@ss"),
            ("postgresql://u:s3cret@[::1]:5432/t", "s3cret"),
            ("not a url :s3cret@host", "s3cret"),
            ("redis:/:s3cret@host:1", "s3cret"),
            ("host=db user=u password=s3cret", "s3cret"),
            ("redis://u:s3cret@h#frag", "s3cret"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        assert_eq!(redact_url("memory://"), "memory://");
        assert_eq!(redact_url("redis://h:1/?db=2"), "redis://h:1/?db=2");
    }
}
