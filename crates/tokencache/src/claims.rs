//! The OpenID Connect `claims` request parameter: parsing and merging, as MSAL does for client
//! capabilities, claims challenges and forwarded client claims.

use crate::Error;
use crate::json::{JsonObject, JsonValue};

/// Parses a claims parameter, which must be a JSON object. The error never repeats the input,
/// which may be sensitive.
///
/// ```
/// assert!(tokencache::claims::parse_claims(r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#).is_ok());
/// assert!(tokencache::claims::parse_claims("[1]").is_err());
/// ```
pub fn parse_claims(claims: &str) -> Result<JsonObject, Error> {
    match crate::json::parse_value(claims) {
        Ok(JsonValue::Object(o)) => Ok(*o),
        Ok(_) => Err(Error::InvalidResponse {
            reason: "the claims value is not a JSON object (see OpenID Connect Core §5.5)".into(),
        }),
        Err(_) => Err(Error::InvalidResponse {
            reason: "the claims value is not valid JSON (see OpenID Connect Core §5.5)".into(),
        }),
    }
}

/// Deep-merges `overlay` into `base`: nested objects merge, any other value from `overlay`
/// wins.
pub fn deep_merge(base: &JsonObject, overlay: &JsonObject) -> JsonObject {
    let mut result = base.clone();
    for (key, value) in overlay.iter() {
        let merged = match (result.get(key), value) {
            (Some(JsonValue::Object(a)), JsonValue::Object(b)) => {
                JsonValue::Object(Box::new(deep_merge(a, b)))
            }
            _ => value.clone(),
        };
        result.insert(key, merged);
    }
    result
}

/// Merges two claims parameters (JSON text). An empty side yields the other side unchanged;
/// two empties yield `None`. On a leaf conflict the second (client-originated) value wins.
pub fn merge_claims(a: Option<&str>, b: Option<&str>) -> Result<Option<String>, Error> {
    let a = a.filter(|s| !s.is_empty());
    let b = b.filter(|s| !s.is_empty());
    match (a, b) {
        (None, None) => Ok(None),
        (Some(x), None) | (None, Some(x)) => Ok(Some(x.to_owned())),
        (Some(x), Some(y)) => Ok(Some(
            deep_merge(&parse_claims(x)?, &parse_claims(y)?).to_python_json(false),
        )),
    }
}
