//! Scopes as the Azure SDK passes them: one resource per request, usually
//! `<resource>/.default` (`https://management.core.windows.net//.default` has a double slash:
//! the resource is `https://management.core.windows.net/`).

use crate::error::CredentialError;

/// The scopes, checked: at least one, none empty or with whitespace, and one resource among
/// them (OpenID scopes such as `offline_access` belong to none).
pub(crate) fn checked(scopes: &[&str]) -> Result<Vec<String>, CredentialError> {
    if scopes.is_empty() {
        return Err(CredentialError::Scopes(
            "no scope given; ask for `<resource>/.default`".into(),
        ));
    }
    let mut resource: Option<&str> = None;
    for scope in scopes {
        if scope.is_empty() || scope.chars().any(char::is_whitespace) {
            return Err(CredentialError::Scopes(format!(
                "{scope:?} is not a scope (empty or with whitespace)"
            )));
        }
        let Some(this) = resource_of(scope) else {
            continue;
        };
        match resource {
            Some(seen) if seen != this => {
                return Err(CredentialError::Scopes(format!(
                    "one request asks for two resources ({seen:?} and {this:?}); ask for each separately"
                )));
            }
            _ => resource = Some(this),
        }
    }
    Ok(scopes.iter().map(|s| (*s).to_owned()).collect())
}

/// The resource a scope belongs to: what precedes its last `/` for a URI scope, none for the
/// OpenID scopes and bare names.
fn resource_of(scope: &str) -> Option<&str> {
    if !scope.contains("://") {
        return None;
    }
    scope.rfind('/').map(|i| &scope[..i])
}

/// A stable text for a set of scopes (order-insensitive), for in-memory keys.
pub(crate) fn key(scopes: &[String]) -> String {
    let mut sorted: Vec<String> = scopes.iter().map(|s| s.to_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    sorted.join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn one_resource_per_request() {
        assert!(checked(&["https://management.core.windows.net//.default"]).is_ok());
        assert!(checked(&["https://vault.azure.net/.default", "offline_access"]).is_ok());
        assert!(checked(&["api://x/read", "api://x/write"]).is_ok());
        let two = checked(&[
            "https://vault.azure.net/.default",
            "https://storage.azure.com/.default",
        ]);
        assert!(matches!(two, Err(CredentialError::Scopes(m)) if m.contains("two resources")));
        assert!(matches!(checked(&[]), Err(CredentialError::Scopes(_))));
        assert!(matches!(checked(&["a b"]), Err(CredentialError::Scopes(_))));
    }

    #[test]
    fn the_key_ignores_order_and_case() {
        let a = key(&["B".into(), "a".into()]);
        assert_eq!(a, key(&["a".into(), "b".into(), "A".into()]));
    }
}
