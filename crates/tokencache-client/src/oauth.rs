//! The wire protocol: token requests, token responses and OAuth errors.

use tokencache::json::{JsonObject, JsonValue};

use crate::error::{ClientError, OAuthError, Result};
use crate::http::{Http, HttpRequest, HttpResponse, Method};

/// Form fields whose values are secrets; they are never copied into cache events or logs.
const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "refresh_token",
    "code",
    "code_verifier",
    "device_code",
    "assertion",
    "password",
];

/// The scopes OpenID adds to every user request (MSAL's reserved scopes).
pub(crate) const RESERVED_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// The requested scopes plus the reserved ones, deduplicated and sorted (as on MSAL's wire).
pub(crate) fn decorate_scopes(scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = scopes
        .iter()
        .map(String::as_str)
        .chain(RESERVED_SCOPES)
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The requested scopes without the reserved ones (what an access token is looked up by).
pub(crate) fn undecorated(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| !RESERVED_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect()
}

/// A POST to a provider endpoint, with a form body.
pub(crate) struct FormPost {
    pub url: String,
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl FormPost {
    pub fn new(url: &str) -> FormPost {
        FormPost {
            url: url.to_owned(),
            form: Vec::new(),
            headers: vec![("accept".into(), "application/json".into())],
        }
    }

    pub fn field(mut self, name: &str, value: impl Into<String>) -> FormPost {
        self.form.push((name.to_owned(), value.into()));
        self
    }

    pub fn fields(mut self, fields: &[(String, String)]) -> FormPost {
        self.form.extend_from_slice(fields);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> FormPost {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The request's parameters without secret values: MSAL's event `data` (only non-standard
    /// parameters matter there, for the extended cache key).
    pub fn event_data(&self) -> JsonObject {
        let mut data = JsonObject::new();
        for (k, v) in &self.form {
            if !SECRET_FIELDS.contains(&k.as_str()) {
                data.insert(k, JsonValue::string(v));
            }
        }
        data
    }

    pub async fn send(self, http: &Http) -> Result<JsonObject> {
        let url = self.url.clone();
        let response = http
            .send(HttpRequest {
                method: Method::Post,
                url: self.url,
                headers: self.headers,
                form: self.form,
            })
            .await?;
        parse_response(&url, &response)
    }
}

/// Parses a JSON answer: an object with `error` (or a non-2xx status) is an [`OAuthError`].
pub(crate) fn parse_response(url: &str, response: &HttpResponse) -> Result<JsonObject> {
    let endpoint = url.split('?').next().unwrap_or_default().to_owned();
    let body = std::str::from_utf8(&response.body)
        .ok()
        .and_then(|t| JsonObject::parse(t).ok());
    let ok_status = (200..300).contains(&response.status);
    match body {
        Some(obj) if ok_status && !obj.contains_key("error") => Ok(obj),
        Some(obj) if obj.get_str("error").is_some() => {
            Err(ClientError::OAuth(Box::new(oauth_error(&obj, response))))
        }
        _ if !ok_status => Err(ClientError::OAuth(Box::new(OAuthError {
            status: response.status,
            error: format!("http_{}", response.status),
            description: Some("the provider answered without an OAuth error body".into()),
            suberror: None,
            error_codes: Vec::new(),
            correlation_id: correlation_header(response),
            trace_id: None,
            claims: None,
        }))),
        _ => Err(ClientError::InvalidResponse {
            url: endpoint,
            reason: format!(
                "HTTP {} with a body that is not a JSON object ({} bytes)",
                response.status,
                response.body.len()
            ),
        }),
    }
}

fn correlation_header(response: &HttpResponse) -> Option<String> {
    response
        .header("client-request-id")
        .or_else(|| response.header("x-ms-request-id"))
        .map(str::to_owned)
}

fn oauth_error(obj: &JsonObject, response: &HttpResponse) -> OAuthError {
    let s = |k: &str| obj.get_str(k).map(str::to_owned);
    OAuthError {
        status: response.status,
        error: s("error").unwrap_or_default(),
        description: s("error_description"),
        suberror: s("suberror"),
        error_codes: match obj.get("error_codes") {
            Some(JsonValue::Array(items)) => {
                items.iter().filter_map(JsonValue::as_int_lenient).collect()
            }
            _ => Vec::new(),
        },
        correlation_id: s("correlation_id").or_else(|| correlation_header(response)),
        trace_id: s("trace_id"),
        claims: s("claims"),
    }
}

/// A member as an integer (numbers and digit strings, as Python's `int()`).
pub(crate) fn int_member(obj: &JsonObject, key: &str) -> Option<i64> {
    obj.get(key).and_then(JsonValue::as_int_lenient)
}

/// A lifetime in seconds from a provider's response (`expires_in`, `refresh_in`, …), clamped
/// to `0..=`[`tokencache::MAX_LIFETIME_SECS`]: a number too large for an integer (`1e300`)
/// counts as the longest lifetime, a negative one as none.
pub(crate) fn lifetime_member(obj: &JsonObject, key: &str) -> Option<i64> {
    let value = obj.get(key)?;
    if let Some(seconds) = value.as_int_lenient() {
        return Some(tokencache::clamp_lifetime(seconds));
    }
    let text = match value {
        JsonValue::String(s) => s.as_str().trim(),
        JsonValue::Number(n) => n,
        _ => return None,
    };
    let seconds: f64 = text.parse().ok().filter(|f: &f64| f.is_finite())?;
    Some(if seconds <= 0.0 {
        0
    } else {
        tokencache::MAX_LIFETIME_SECS
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("client-request-id".into(), "corr-1".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn entra_errors_are_mapped_with_their_extras() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS50173: The provided grant has expired.\r\nTrace ID: x","error_codes":[50173],"suberror":"bad_token","correlation_id":"c-9","trace_id":"t-1"}"#;
        let e = parse_response("https://h/t/oauth2/v2.0/token", &response(400, body)).unwrap_err();
        let o = e.oauth().unwrap();
        assert_eq!(o.error, "invalid_grant");
        assert_eq!(o.error_codes, vec![50173]);
        assert_eq!(o.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(o.classification(), Some(""));
        assert!(e.is_interaction_required());
        assert!(!e.is_network());
        let text = e.to_string();
        assert!(
            text.contains("AADSTS50173") && !text.contains("Trace ID"),
            "{text}"
        );
    }

    #[test]
    fn other_errors() {
        let e = parse_response("u", &response(401, r#"{"error":"invalid_client"}"#)).unwrap_err();
        assert!(!e.is_interaction_required());
        assert_eq!(e.oauth().unwrap().correlation_id.as_deref(), Some("corr-1"));
        let e = parse_response(
            "u",
            &response(
                400,
                r#"{"error":"interaction_required","suberror":"consent_required"}"#,
            ),
        )
        .unwrap_err();
        assert!(e.is_interaction_required());
        assert_eq!(
            e.oauth().unwrap().classification(),
            Some("consent_required")
        );
        let e = parse_response("u", &response(502, "<html>bad gateway</html>")).unwrap_err();
        assert!(e.is_network(), "{e}");
        let e = parse_response("u", &response(200, "[1]")).unwrap_err();
        assert!(matches!(e, ClientError::InvalidResponse { .. }));
    }

    #[test]
    fn event_data_never_holds_secrets() {
        let post = FormPost::new("u")
            .field("grant_type", "refresh_token")
            .field("refresh_token", "RT-SECRET")
            .field("client_secret", "CS-SECRET")
            .field("fmi_path", "x");
        let data = post.event_data();
        assert!(data.get("refresh_token").is_none() && data.get("client_secret").is_none());
        assert_eq!(data.get_str("fmi_path"), Some("x"));
    }

    #[test]
    fn scopes_are_decorated_sorted_and_undecorated() {
        let s = vec!["api://x/read".to_owned(), "openid".to_owned()];
        assert_eq!(
            decorate_scopes(&s),
            ["api://x/read", "offline_access", "openid", "profile"]
        );
        assert_eq!(undecorated(&s), ["api://x/read"]);
    }
}
