//! Turning a token response into cache entries, with MSAL Python 1.39's `TokenCache.add`
//! semantics (spec §2): every entry is computed before anything is written, so a response that
//! cannot be cached changes nothing.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::Error;
use crate::entry::{Entry, Field, Section};
use crate::json::{JsonObject, JsonValue};
use crate::keys::{ext_cache_key, target_of};

/// Grant types whose responses record `account_source` on the account.
pub const GRANT_TYPES_THAT_ESTABLISH_AN_ACCOUNT: &[&str] = &[
    "broker",
    "authorization_code",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "user_fic",
];

/// A token response with the request context MSAL records along with it (MSAL Python's
/// "event").
///
/// ```
/// use tokencache::{TokenCache, TokenEvent};
/// let event = TokenEvent::new("my-daemon-app", ["https://graph.microsoft.com/.default"])
///     .token_endpoint("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
///     .grant_type("client_credentials")
///     .response_json(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"FAKE-APP-AT"}"#)
///     .unwrap();
/// let cache = TokenCache::new();
/// cache.add_at(&event, 1_700_000_000).unwrap();
/// assert_eq!(cache.len(tokencache::Section::AccessToken), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenEvent {
    /// The client (application) id.
    pub client_id: String,
    /// The scopes the token was granted for (the response's `scope`, else the requested ones).
    pub scopes: Vec<String>,
    /// The token endpoint; its host is the environment and its first path segment the realm.
    pub token_endpoint: Option<String>,
    /// Overrides the environment (MSAL sets the authority's instance here).
    pub environment: Option<String>,
    /// The grant type of the request.
    pub grant_type: Option<String>,
    /// The token response.
    pub response: JsonObject,
    /// The request body parameters (for `key_id` and the extended cache key).
    pub data: JsonObject,
    /// Do not create or update the account (MSAL does this for refresh-token grants).
    pub skip_account_creation: bool,
    /// Overrides `local_account_id` (the broker's account id); `Some(None)` writes `null`.
    pub account_id: Option<Option<String>>,
    /// Fallback username (federated username/password flows).
    pub username: Option<String>,
    /// Overrides `authority_type`.
    pub authority_type: Option<String>,
}

impl TokenEvent {
    /// An event for `client_id` with the given scopes.
    pub fn new<S: Into<String>>(
        client_id: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> TokenEvent {
        TokenEvent {
            client_id: client_id.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            ..TokenEvent::default()
        }
    }

    /// Sets the token endpoint.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Sets the environment override.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the grant type.
    pub fn grant_type(mut self, grant_type: impl Into<String>) -> Self {
        self.grant_type = Some(grant_type.into());
        self
    }

    /// Sets the response.
    pub fn response(mut self, response: JsonObject) -> Self {
        self.response = response;
        self
    }

    /// Sets the response from its JSON text.
    pub fn response_json(self, text: &str) -> Result<Self, Error> {
        Ok(self.response(JsonObject::parse(text)?))
    }

    /// Sets the request body parameters.
    pub fn data(mut self, data: JsonObject) -> Self {
        self.data = data;
        self
    }

    /// Builds an event from the dict MSAL Python passes to `TokenCache.add` (as JSON): the keys
    /// `client_id`, `scope`, `token_endpoint`, `environment`, `grant_type`, `response`, `data`,
    /// `skip_account_creation`, `_account_id`, `username` and `authority_type`.
    pub fn from_msal_event(event: &JsonObject) -> Result<TokenEvent, Error> {
        let text = |k: &str| event.get_str(k).map(str::to_owned);
        let object = |k: &str| match event.get(k) {
            Some(JsonValue::Object(o)) => Ok(o.as_ref().clone()),
            None | Some(JsonValue::Null) => Ok(JsonObject::new()),
            Some(_) => Err(Error::InvalidResponse {
                reason: format!("event member {k:?} is not an object"),
            }),
        };
        let scopes = match event.get("scope") {
            Some(JsonValue::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok(TokenEvent {
            client_id: text("client_id").unwrap_or_default(),
            scopes,
            token_endpoint: text("token_endpoint"),
            environment: text("environment"),
            grant_type: text("grant_type"),
            response: object("response")?,
            data: object("data")?,
            skip_account_creation: event
                .get("skip_account_creation")
                .is_some_and(JsonValue::is_truthy),
            account_id: event
                .get("_account_id")
                .map(|v| v.as_str().map(str::to_owned)),
            username: text("username"),
            authority_type: text("authority_type"),
        })
    }

    /// The event as the dict MSAL Python passes to `TokenCache.add` (the inverse of
    /// [`TokenEvent::from_msal_event`]): how an event is handed to another process, e.g. by
    /// `tokencache-file`'s group commit. It holds the response's secrets.
    ///
    /// ```
    /// use tokencache::TokenEvent;
    /// let event = TokenEvent::new("my-app", ["User.Read"])
    ///     .grant_type("authorization_code")
    ///     .response_json(r#"{"access_token":"FAKE-AT","expires_in":3600}"#)
    ///     .unwrap();
    /// assert_eq!(TokenEvent::from_msal_event(&event.to_msal_event()).unwrap(), event);
    /// ```
    pub fn to_msal_event(&self) -> JsonObject {
        let mut event = JsonObject::new();
        let text = |s: &Option<String>| s.as_deref().map(JsonValue::string);
        event.insert("client_id", JsonValue::string(&self.client_id));
        event.insert(
            "scope",
            JsonValue::Array(self.scopes.iter().map(|s| JsonValue::string(s)).collect()),
        );
        for (name, value) in [
            ("token_endpoint", &self.token_endpoint),
            ("environment", &self.environment),
            ("grant_type", &self.grant_type),
            ("username", &self.username),
            ("authority_type", &self.authority_type),
        ] {
            if let Some(value) = text(value) {
                event.insert(name, value);
            }
        }
        event.insert(
            "response",
            JsonValue::Object(Box::new(self.response.clone())),
        );
        event.insert("data", JsonValue::Object(Box::new(self.data.clone())));
        event.insert(
            "skip_account_creation",
            JsonValue::Bool(self.skip_account_creation),
        );
        if let Some(account_id) = &self.account_id {
            event.insert(
                "_account_id",
                account_id
                    .as_deref()
                    .map_or(JsonValue::Null, JsonValue::string),
            );
        }
        event
    }
}

/// Where a token endpoint says a token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalAuthority {
    /// The lower-cased host (the cache's `environment`).
    pub environment: String,
    /// The first path segment (the cache's `realm`), case preserved.
    pub realm: String,
}

/// Splits an authority or endpoint URL the way MSAL's `canonicalize` does: `https`, a host,
/// and a first path segment (on `*.ciamlogin.com`, `<sub>.onmicrosoft.com` when missing).
/// Unlike MSAL, `http` is accepted for loopback hosts, for local test providers.
///
/// ```
/// let a = tokencache::canonicalize("https://Login.Microsoftonline.com/Contoso/oauth2/v2.0/token").unwrap();
/// assert_eq!((a.environment.as_str(), a.realm.as_str()), ("login.microsoftonline.com", "Contoso"));
/// ```
pub fn canonicalize(url: &str) -> Result<CanonicalAuthority, Error> {
    let invalid = |why: &str| Error::InvalidTokenEndpoint {
        reason: format!(
            "{why}; expected an https URL with a host and at least one path segment, e.g. https://login.microsoftonline.com/<tenant>"
        ),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    let host = host.to_lowercase();
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let loopback = is_loopback_host(&host);
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid("not https")),
    }
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    let first = path.split('/').nth(1).filter(|s| !s.is_empty());
    let realm = match (first, host.strip_suffix(".ciamlogin.com")) {
        (Some(segment), _) => segment.to_owned(),
        (None, Some(sub)) => format!("{sub}.onmicrosoft.com"),
        (None, None) => return Err(invalid("no tenant in the path")),
    };
    Ok(CanonicalAuthority {
        environment: host,
        realm,
    })
}

const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64url or standard base64, padded or not (as MSAL's `decode_part`), into a JSON
/// object.
pub fn decode_json_part(part: &str) -> Result<JsonObject, Error> {
    // Standard base64 becomes base64url; only ASCII bytes change, so this is byte-wise.
    let trimmed = part.trim_end_matches('=').as_bytes();
    let normalized: std::borrow::Cow<'_, [u8]> = if memchr::memchr2(b'+', b'/', trimmed).is_some() {
        trimmed
            .iter()
            .map(|&b| match b {
                b'+' => b'-',
                b'/' => b'_',
                b => b,
            })
            .collect::<Vec<u8>>()
            .into()
    } else {
        trimmed.into()
    };
    let bytes = LENIENT_B64
        .decode(&normalized)
        .map_err(|e| Error::InvalidResponse {
            reason: format!("not base64: {e}"),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::InvalidResponse {
        reason: "not UTF-8".into(),
    })?;
    JsonObject::parse(&text).map_err(|e| Error::InvalidResponse {
        reason: format!("not a JSON object: {e}"),
    })
}

/// The claims of a JWT, decoded but not validated (MSAL 1.39 does not validate ID tokens).
pub fn decode_jwt_claims(jwt: &str) -> Result<JsonObject, Error> {
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| Error::InvalidResponse {
            reason: "id_token is not a JWT".into(),
        })?;
    decode_json_part(payload).map_err(|e| Error::InvalidResponse {
        reason: format!("id_token payload: {e}"),
    })
}

fn python_format(v: &JsonValue) -> String {
    v.python_str()
}

fn opt_string(value: Option<&str>) -> JsonValue {
    value.map_or(JsonValue::Null, JsonValue::string)
}

/// Python's `int(x)` for a response member: an integer, a float (truncated) or a string of
/// digits.
fn python_int(field: &str, value: &JsonValue) -> Result<i64, Error> {
    let bad = || Error::InvalidResponse {
        reason: format!("{field} is not an integer"),
    };
    match value {
        JsonValue::Number(n) => n
            .parse::<i64>()
            .ok()
            .or_else(|| {
                n.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(bad),
        JsonValue::String(s) => s.as_str().trim().parse::<i64>().map_err(|_| bad()),
        JsonValue::Bool(b) => Ok(i64::from(*b)),
        _ => Err(bad()),
    }
}

/// Whether `host` (as in a URL, IPv6 in brackets or not) is this machine: exactly `localhost`,
/// or an address that parses as a loopback IP (`127.0.0.0/8`, `::1`). A name that merely
/// starts like one (`127.0.0.1.attacker.example`) is not.
///
/// ```
/// use tokencache::is_loopback_host;
/// assert!(is_loopback_host("127.0.0.1") && is_loopback_host("[::1]") && is_loopback_host("localhost"));
/// assert!(!is_loopback_host("127.0.0.1.attacker.example"));
/// assert!(!is_loopback_host("127.attacker.example"));
/// assert!(!is_loopback_host("localhost.attacker.example"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The longest lifetime a number from an identity provider is taken for: ten years. Token
/// responses come from the network, so `expires_in`, `ext_expires_in`, `refresh_in` and the
/// device flow's `expires_in` are bounded before any arithmetic: a huge value cannot overflow
/// (a panic in debug builds, an expiry in the past in release builds), and a negative one means
/// "expired now".
pub const MAX_LIFETIME_SECS: i64 = 10 * 366 * 86_400;

/// `seconds` from a provider, clamped to `0..=`[`MAX_LIFETIME_SECS`].
///
/// ```
/// use tokencache::{MAX_LIFETIME_SECS, clamp_lifetime};
/// assert_eq!(clamp_lifetime(3599), 3599);
/// assert_eq!(clamp_lifetime(i64::MAX), MAX_LIFETIME_SECS);
/// assert_eq!(clamp_lifetime(-5), 0);
/// ```
pub fn clamp_lifetime(seconds: i64) -> i64 {
    seconds.clamp(0, MAX_LIFETIME_SECS)
}

/// `now + seconds` for a lifetime from a provider (clamped, never overflowing).
pub fn expiry_after(now: i64, seconds: i64) -> i64 {
    now.saturating_add(clamp_lifetime(seconds))
}

/// Python's `str(now + x)` for a number `x`: an integer string, or a float repr when `x` is a
/// float (MSAL writes `"1700010400.0"` for `refresh_in: 2400.0`).
fn python_add(now: i64, x: &JsonValue) -> Result<String, Error> {
    match x {
        JsonValue::Number(n) if n.contains(['.', 'e', 'E']) => {
            let f: f64 = n.parse().map_err(|_| Error::InvalidResponse {
                reason: "refresh_in is not a number".into(),
            })?;
            if !f.is_finite() {
                return Err(Error::InvalidResponse {
                    reason: "refresh_in is not a finite number".into(),
                });
            }
            let bounded = f.clamp(0.0, MAX_LIFETIME_SECS as f64);
            Ok(python_float_repr(now as f64 + bounded))
        }
        JsonValue::Number(_) => Ok(expiry_after(now, python_int("refresh_in", x)?).to_string()),
        _ => Err(Error::InvalidResponse {
            reason: "refresh_in is not a number".into(),
        }),
    }
}

/// Python's `repr(float)` for finite values in the range token times live in.
fn python_float_repr(f: f64) -> String {
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
        _ => s,
    }
}

/// Computes the entries one event writes, in MSAL's order: AccessToken, Account, IdToken,
/// RefreshToken, AppMetadata.
pub(crate) fn entries_for(event: &TokenEvent, now: i64) -> Result<Vec<(Section, Entry)>, Error> {
    let (mut environment, realm) = match &event.token_endpoint {
        Some(url) => {
            let a = canonicalize(url)?;
            (Some(a.environment), Some(a.realm))
        }
        None => (None, None),
    };
    if let Some(env) = &event.environment {
        environment = Some(env.clone());
    }
    let response = &event.response;
    let data = &event.data;
    let truthy = |k: &str| response.get(k).filter(|v| v.is_truthy());
    let access_token = truthy("access_token");
    let refresh_token = truthy("refresh_token");
    let id_token = truthy("id_token");

    let claims = match response.get("id_token_claims") {
        Some(JsonValue::Object(c)) if !c.is_empty() => c.as_ref().clone(),
        _ => match id_token {
            Some(JsonValue::String(jwt)) => decode_jwt_claims(jwt.as_str())?,
            Some(_) => {
                return Err(Error::InvalidResponse {
                    reason: "id_token is not a string".into(),
                });
            }
            None => JsonObject::new(),
        },
    };

    // Home account: client_info uid.utid, else the ID token's sub, else none (app tokens).
    let mut home_account_id: Option<String> = None;
    let mut has_client_info = false;
    if let Some(ci) = response.get("client_info") {
        let raw = ci.as_str().ok_or_else(|| Error::InvalidResponse {
            reason: "client_info is not a string".into(),
        })?;
        let info = decode_json_part(raw).map_err(|e| Error::InvalidResponse {
            reason: format!("client_info: {e}"),
        })?;
        if let (Some(uid), Some(utid)) = (info.get("uid"), info.get("utid")) {
            home_account_id = Some(format!("{}.{}", python_format(uid), python_format(utid)));
            has_client_info = true;
        }
    }
    if !has_client_info && !claims.is_empty() {
        let sub = claims.get("sub").ok_or_else(|| Error::InvalidResponse {
            reason: "id_token has no sub claim".into(),
        })?;
        home_account_id = Some(python_format(sub));
        has_client_info = true;
    }

    let target = target_of(&event.scopes);
    let env = environment.as_deref();
    let realm = realm.as_deref();
    let hid = home_account_id.as_deref();
    let client_id = JsonValue::string(&event.client_id);
    let mut writes = Vec::with_capacity(5);

    if let Some(at) = access_token {
        let default_expires_in = match response.get("expires_on").filter(|v| v.is_truthy()) {
            Some(v) => python_int("expires_on", v)?.saturating_sub(now),
            None => 600,
        };
        let expires_in = match response.get("expires_in") {
            Some(v) => python_int("expires_in", v)?,
            None => default_expires_in,
        };
        let ext_expires_in = match response.get("ext_expires_in") {
            Some(v) => python_int("ext_expires_in", v)?,
            None => expires_in,
        };
        let mut e = Entry::with_capacity(14);
        e.set_field(Field::CredentialType, JsonValue::string("AccessToken"));
        e.set_field(Field::Secret, at.clone());
        e.set_field(Field::HomeAccountId, opt_string(hid));
        e.set_field(Field::Environment, opt_string(env));
        e.set_field(Field::ClientId, client_id.clone());
        e.set_field(Field::Target, JsonValue::string(&target));
        e.set_field(Field::Realm, opt_string(realm));
        e.set_field(
            Field::TokenType,
            response
                .get("token_type")
                .cloned()
                .unwrap_or_else(|| JsonValue::string("Bearer")),
        );
        e.set_field(Field::CachedAt, JsonValue::string(&now.to_string()));
        e.set_field(
            Field::ExpiresOn,
            JsonValue::string(&expiry_after(now, expires_in).to_string()),
        );
        e.set_field(
            Field::ExtendedExpiresOn,
            JsonValue::string(&expiry_after(now, ext_expires_in).to_string()),
        );
        if let Some(key_id) = data.get("key_id") {
            e.set_field(Field::KeyId, key_id.clone());
        }
        let ext = ext_cache_key(data);
        if !ext.is_empty() {
            e.set_field(Field::ExtCacheKey, JsonValue::string(&ext));
        }
        if let Some(refresh_in) = response.get("refresh_in") {
            e.set_field(
                Field::RefreshOn,
                JsonValue::string(&python_add(now, refresh_in)?),
            );
        }
        writes.push((Section::AccessToken, e));
    }

    if has_client_info && !event.skip_account_creation {
        let mut e = Entry::with_capacity(7);
        e.set_field(Field::HomeAccountId, opt_string(hid));
        e.set_field(Field::Environment, opt_string(env));
        e.set_field(Field::Realm, opt_string(realm));
        let local = match &event.account_id {
            Some(id) => opt_string(id.as_deref()),
            None => claims
                .get("oid")
                .or_else(|| claims.get("sub"))
                .cloned()
                .unwrap_or(JsonValue::Null),
        };
        e.set_field(Field::LocalAccountId, local);
        let from_claims = if claims.contains_key("preferred_username") {
            claims.get("preferred_username")
        } else {
            claims.get("upn")
        };
        let username = from_claims
            .filter(|v| v.is_truthy())
            .cloned()
            .or_else(|| data.get("username").filter(|v| v.is_truthy()).cloned())
            .or_else(|| {
                event
                    .username
                    .as_deref()
                    .filter(|u| !u.is_empty())
                    .map(JsonValue::string)
            })
            .unwrap_or_else(|| JsonValue::string(""));
        e.set_field(Field::Username, username);
        let authority_type = match &event.authority_type {
            Some(t) => t.clone(),
            None if realm == Some("adfs") => "ADFS".to_owned(),
            None => "MSSTS".to_owned(),
        };
        e.set_field(Field::AuthorityType, JsonValue::string(&authority_type));
        if let Some(grant) = event.grant_type.as_deref()
            && GRANT_TYPES_THAT_ESTABLISH_AN_ACCOUNT.contains(&grant)
        {
            e.set_field(Field::AccountSource, JsonValue::string(grant));
        }
        writes.push((Section::Account, e));
    }

    if let Some(idt) = id_token {
        let mut e = Entry::with_capacity(6);
        e.set_field(Field::CredentialType, JsonValue::string("IdToken"));
        e.set_field(Field::Secret, idt.clone());
        e.set_field(Field::HomeAccountId, opt_string(hid));
        e.set_field(Field::Environment, opt_string(env));
        e.set_field(Field::Realm, opt_string(realm));
        e.set_field(Field::ClientId, client_id.clone());
        writes.push((Section::IdToken, e));
    }

    if let Some(rt) = refresh_token {
        let mut e = Entry::with_capacity(8);
        e.set_field(Field::CredentialType, JsonValue::string("RefreshToken"));
        e.set_field(Field::Secret, rt.clone());
        e.set_field(Field::HomeAccountId, opt_string(hid));
        e.set_field(Field::Environment, opt_string(env));
        e.set_field(Field::ClientId, client_id.clone());
        e.set_field(Field::Target, JsonValue::string(&target));
        e.set_field(
            Field::LastModificationTime,
            JsonValue::string(&now.to_string()),
        );
        if let Some(foci) = response.get("foci") {
            e.set_field(Field::FamilyId, foci.clone());
        }
        writes.push((Section::RefreshToken, e));
    }

    let mut meta = Entry::with_capacity(3);
    meta.set_field(Field::ClientId, client_id);
    meta.set_field(Field::Environment, opt_string(env));
    if let Some(foci) = response.get("foci") {
        meta.set_field(Field::FamilyId, foci.clone());
    }
    writes.push((Section::AppMetadata, meta));
    Ok(writes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn json_parts_decode_from_base64url_and_standard_base64_padded_or_not() {
        // {"a":"~~~?"} has '-'/'_' in base64url and '+'/'/' in standard base64.
        let want = JsonObject::parse(r#"{"a":"~~~?"}"#).unwrap();
        for part in [
            "eyJhIjoifn5-PyJ9",
            "eyJhIjoifn5+PyJ9",
            "eyJhIjoifn5-PyJ9==",
            "eyJhIjoifn5+PyJ9==",
        ] {
            assert_eq!(decode_json_part(part).unwrap(), want, "{part}");
        }
        assert!(decode_json_part("e30").is_ok(), "{{}} without padding");
        assert!(decode_json_part("not base64!").is_err());
        assert!(decode_json_part("w6k").is_err(), "not a JSON object");
        assert!(
            decode_json_part("é").is_err(),
            "non-ASCII input is an error, not a panic"
        );
    }
}
