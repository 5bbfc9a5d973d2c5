//! Authorities (Entra ID, sovereign clouds, B2C, CIAM, ADFS, any OpenID provider), their OpenID
//! discovery (cached per authority, process-wide) and Entra's host aliases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokencache::json::JsonObject;
use url::Url;

use crate::error::{ClientError, Result};
use crate::http::{Http, HttpRequest, Method};

/// What kind of identity provider an authority is; it decides where discovery lives and how
/// accounts are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorityKind {
    /// Microsoft Entra ID (any cloud), or an Entra-shaped authority `https://host/<tenant>`.
    Entra,
    /// Azure AD B2C: `https://<tenant>.b2clogin.com/<tenant>.onmicrosoft.com/<policy>`.
    B2c,
    /// Entra External ID (CIAM): `https://<tenant>.ciamlogin.com[/<tenant>]`.
    Ciam,
    /// AD FS: `https://<host>/adfs`.
    Adfs,
    /// Any OpenID provider, by issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    Oidc,
}

/// An authority: where users sign in and tokens come from.
///
/// ```
/// use tokencache_client::{Authority, AuthorityKind};
/// let a = Authority::parse("https://login.microsoftonline.com/contoso.onmicrosoft.com").unwrap();
/// assert_eq!(a.kind(), AuthorityKind::Entra);
/// assert_eq!(a.tenant(), "contoso.onmicrosoft.com");
/// assert_eq!(a.environment(), "login.microsoftonline.com");
/// let b2c = Authority::parse("https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signin").unwrap();
/// assert_eq!(b2c.kind(), AuthorityKind::B2c);
/// let any = Authority::oidc("https://accounts.example.com").unwrap();
/// assert_eq!(any.discovery_url(), "https://accounts.example.com/.well-known/openid-configuration");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    kind: AuthorityKind,
    url: String,
    environment: String,
    tenant: String,
}

/// Entra host groups that are aliases of one another (one cloud each), as published by Entra's
/// instance discovery.
const ENTRA_CLOUDS: &[&[&str]] = &[
    &[
        "login.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    ],
    &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
    &["login.microsoftonline.de"],
    &["login.microsoftonline.us", "login.usgovcloudapi.net"],
    &["login-us.microsoftonline.com"],
];

/// True when two hosts are aliases in one of Entra's known clouds (an authority at
/// `login.windows.net` has issuers at `login.microsoftonline.com`).
fn same_cloud(a: &str, b: &str) -> bool {
    ENTRA_CLOUDS
        .iter()
        .any(|cloud| cloud.contains(&a) && cloud.contains(&b))
}

/// Entra's instance discovery endpoint (MSAL's default).
pub(crate) const DEFAULT_INSTANCE_DISCOVERY: &str =
    "https://login.microsoftonline.com/common/discovery/instance";

/// True for the hosts of Entra's known clouds (their aliases need no network call).
pub(crate) fn is_known_entra_host(host: &str) -> bool {
    ENTRA_CLOUDS.iter().any(|c| c.contains(&host))
}

pub(crate) fn is_loopback(host: &str) -> bool {
    tokencache::is_loopback_host(host)
}

fn parse_url(input: &str) -> Result<Url> {
    let invalid = |reason: String| ClientError::InvalidAuthority {
        authority: input.to_owned(),
        reason,
    };
    let url = Url::parse(input).map_err(|e| invalid(e.to_string()))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        _ => {
            return Err(invalid(
                "https is required (http only on a loopback address, for local testing)".into(),
            ));
        }
    }
    if host.is_empty() {
        return Err(invalid("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("an authority has no query or fragment".into()));
    }
    Ok(url)
}

fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

impl Authority {
    /// Parses an authority URL and recognizes its kind: `/adfs` is ADFS, `*.b2clogin.com` or a
    /// `/tfp/` path or a `B2C_1_` policy is B2C, `*.ciamlogin.com` is CIAM, anything else with
    /// a tenant segment is Entra-shaped (discovery at `<authority>/v2.0/...`, as MSAL does).
    /// For a provider that is not Entra-shaped, use [`Authority::oidc`].
    pub fn parse(input: &str) -> Result<Authority> {
        let url = parse_url(input)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let base = origin(&url);
        let invalid = |reason: &str| ClientError::InvalidAuthority {
            authority: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (kind, path) = if segments
            .first()
            .is_some_and(|s| s.eq_ignore_ascii_case("adfs"))
        {
            (AuthorityKind::Adfs, "adfs".to_owned())
        } else if host.ends_with(".b2clogin.com")
            || segments.first() == Some(&"tfp")
            || segments
                .iter()
                .any(|s| s.to_ascii_lowercase().starts_with("b2c_1"))
        {
            let rest: Vec<&str> = segments.iter().copied().filter(|s| *s != "tfp").collect();
            if rest.len() < 2 {
                return Err(invalid(
                    "a B2C authority is https://<tenant>.b2clogin.com/<tenant>.onmicrosoft.com/<policy>",
                ));
            }
            (AuthorityKind::B2c, rest[..2].join("/"))
        } else if let Some(sub) = host.strip_suffix(".ciamlogin.com") {
            let tenant = segments
                .first()
                .map_or_else(|| format!("{sub}.onmicrosoft.com"), |s| (*s).to_owned());
            (AuthorityKind::Ciam, tenant)
        } else {
            let Some(tenant) = segments.first() else {
                return Err(invalid(
                    "no tenant in the path; expected https://<host>/<tenant> (or use Authority::oidc for a generic OpenID provider)",
                ));
            };
            if segments.len() > 1 && !(segments.len() == 2 && segments[1] == "v2.0") {
                return Err(invalid(
                    "unexpected path after the tenant; expected https://<host>/<tenant>",
                ));
            }
            (AuthorityKind::Entra, (*tenant).to_owned())
        };
        let tenant = path.split('/').next().unwrap_or_default().to_owned();
        Ok(Authority {
            kind,
            url: format!("{base}/{path}"),
            environment: host,
            tenant,
        })
    }

    /// Any OpenID provider, by its issuer URL.
    pub fn oidc(issuer: &str) -> Result<Authority> {
        let url = parse_url(issuer)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let path = url.path().trim_end_matches('/');
        let tenant = path
            .split('/')
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_owned();
        Ok(Authority {
            kind: AuthorityKind::Oidc,
            url: format!("{}{path}", origin(&url)),
            environment: host,
            tenant,
        })
    }

    /// The kind of provider.
    pub fn kind(&self) -> AuthorityKind {
        self.kind
    }

    /// The canonical URL (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host, lower-cased: the cache's `environment`.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The tenant segment (`common`, `organizations`, a GUID, a domain, `adfs`); empty for an
    /// OpenID issuer without a path.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Where the OpenID configuration is.
    pub fn discovery_url(&self) -> String {
        match self.kind {
            AuthorityKind::Entra | AuthorityKind::B2c | AuthorityKind::Ciam => {
                format!("{}/v2.0/.well-known/openid-configuration", self.url)
            }
            AuthorityKind::Adfs | AuthorityKind::Oidc => {
                format!("{}/.well-known/openid-configuration", self.url)
            }
        }
    }

    /// The environment and its aliases (Entra's known clouds), most preferred first. Other
    /// kinds, and Entra with instance discovery turned off, have no aliases.
    pub fn environments(&self, instance_discovery: bool) -> Vec<String> {
        let mut out = vec![self.environment.clone()];
        if instance_discovery
            && self.kind == AuthorityKind::Entra
            && let Some(cloud) = ENTRA_CLOUDS
                .iter()
                .find(|c| c.contains(&&*self.environment))
        {
            out.extend(
                cloud
                    .iter()
                    .filter(|h| **h != self.environment)
                    .map(|h| (*h).to_owned()),
            );
        }
        out
    }
}

/// The endpoints of a provider, from its OpenID configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `device_authorization_endpoint` (Entra: derived from the token endpoint when absent).
    pub device_authorization_endpoint: Option<String>,
    /// `end_session_endpoint`, for sign-out redirects.
    pub end_session_endpoint: Option<String>,
}

const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);

type DiscoveryCache = Mutex<HashMap<String, (Instant, Arc<ProviderMetadata>)>>;

fn discovery_cache() -> &'static DiscoveryCache {
    static CACHE: OnceLock<DiscoveryCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Fetches (or returns the cached) OpenID configuration of an authority.
pub(crate) async fn discover(http: &Http, authority: &Authority) -> Result<Arc<ProviderMetadata>> {
    let url = authority.discovery_url();
    if let Ok(cache) = discovery_cache().lock()
        && let Some((at, meta)) = cache.get(&url)
        && at.elapsed() < DISCOVERY_TTL
    {
        return Ok(meta.clone());
    }
    let response = http
        .send(HttpRequest {
            method: Method::Get,
            url: url.clone(),
            headers: vec![("accept".into(), "application/json".into())],
            form: vec![],
        })
        .await?;
    let invalid = |reason: String| ClientError::InvalidResponse {
        url: url.clone(),
        reason,
    };
    if response.status != 200 {
        return Err(ClientError::InvalidAuthority {
            authority: authority.url().to_owned(),
            reason: format!(
                "OpenID discovery at {url} answered HTTP {}; check the tenant and the authority kind",
                response.status
            ),
        });
    }
    let text = std::str::from_utf8(&response.body).map_err(|_| invalid("not UTF-8".into()))?;
    let doc = JsonObject::parse(text).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
    let field = |k: &str| doc.get_str(k).map(str::to_owned);
    let required = |k: &str| field(k).ok_or_else(|| invalid(format!("no {k}")));
    let token_endpoint = required("token_endpoint")?;
    let device = field("device_authorization_endpoint").or_else(|| {
        (authority.kind == AuthorityKind::Entra && token_endpoint.ends_with("/token"))
            .then(|| format!("{}devicecode", token_endpoint.trim_end_matches("token")))
    });
    let meta = ProviderMetadata {
        issuer: required("issuer")?,
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint,
        device_authorization_endpoint: device,
        end_session_endpoint: field("end_session_endpoint"),
    };
    check_metadata(authority, &meta).map_err(invalid)?;
    let meta = Arc::new(meta);
    tracing::debug!(authority = %authority.url(), token_endpoint = %meta.token_endpoint, "discovered the provider");
    if let Ok(mut cache) = discovery_cache().lock() {
        cache.insert(url, (Instant::now(), meta.clone()));
    }
    Ok(meta)
}

/// Whether a discovery document may be used for `authority`. Its endpoints receive the client
/// secret, codes and tokens, so each must be https (http only on a loopback host, and only when
/// the authority itself is on one); and its issuer must be the authority's, as OpenID Connect
/// Discovery requires: the same URL for a generic OpenID provider; for Entra, B2C and AD FS
/// (whose issuers name the tenant by id, or hold Entra's `{tenantid}` template for `common`
/// and `organizations`) the same host, an alias in the same Entra cloud, or loopback for both;
/// a host under `ciamlogin.com` for External ID.
fn check_metadata(
    authority: &Authority,
    meta: &ProviderMetadata,
) -> std::result::Result<(), String> {
    let authority_url = Url::parse(authority.url()).map_err(|e| format!("authority: {e}"))?;
    let local = authority_url.scheme() == "http";
    let endpoints = [
        ("issuer", Some(&meta.issuer)),
        ("authorization_endpoint", Some(&meta.authorization_endpoint)),
        ("token_endpoint", Some(&meta.token_endpoint)),
        (
            "device_authorization_endpoint",
            meta.device_authorization_endpoint.as_ref(),
        ),
        ("end_session_endpoint", meta.end_session_endpoint.as_ref()),
    ];
    for (name, value) in endpoints {
        let Some(value) = value else { continue };
        let url = Url::parse(value).map_err(|_| format!("{name} is not a URL"))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if local && is_loopback(host) => {}
            _ => {
                return Err(format!(
                    "{name} {} is not https; refusing to send credentials there",
                    tokencache::redact_url(value)
                ));
            }
        }
    }
    let issuer = Url::parse(&meta.issuer).map_err(|_| "issuer is not a URL".to_owned())?;
    let issuer_host = issuer.host_str().unwrap_or_default().to_ascii_lowercase();
    let same = match authority.kind {
        AuthorityKind::Oidc => {
            meta.issuer.trim_end_matches('/') == authority.url().trim_end_matches('/')
        }
        AuthorityKind::Ciam => {
            issuer_host == authority.environment || issuer_host.ends_with(".ciamlogin.com")
        }
        AuthorityKind::Entra => {
            issuer_host == authority.environment
                || same_cloud(&issuer_host, &authority.environment)
                || is_loopback(&issuer_host) && is_loopback(&authority.environment)
        }
        AuthorityKind::B2c | AuthorityKind::Adfs => issuer_host == authority.environment,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "issuer {} does not belong to the authority {}",
            meta.issuer,
            authority.url()
        ))
    }
}

/// Asks Entra's instance discovery for the aliases of an authority's host (MSAL's
/// `instance_discovery`): the host first, then its aliases. An `invalid_instance` answer means
/// the authority is not an Entra authority and is an error.
pub(crate) async fn instance_aliases(
    http: &Http,
    endpoint: &str,
    authority: &Authority,
) -> Result<Vec<String>> {
    let authorize = format!("{}/oauth2/v2.0/authorize", authority.url());
    let url = Url::parse_with_params(
        endpoint,
        [
            ("api-version", "1.1"),
            ("authorization_endpoint", authorize.as_str()),
        ],
    )
    .map_err(|e| ClientError::Configuration(format!("instance discovery endpoint: {e}")))?;
    let response = http
        .send(HttpRequest {
            method: Method::Get,
            url: url.to_string(),
            headers: vec![("accept".into(), "application/json".into())],
            form: vec![],
        })
        .await?;
    let doc = match crate::oauth::parse_response(endpoint, &response) {
        Ok(doc) => doc,
        Err(ClientError::OAuth(e)) if e.error == "invalid_instance" => {
            return Err(ClientError::InvalidAuthority {
                authority: authority.url().to_owned(),
                reason: format!(
                    "Entra instance discovery does not know this host ({}); turn instance discovery off for other providers",
                    e.description.as_deref().unwrap_or("invalid_instance")
                ),
            });
        }
        Err(e) => return Err(e),
    };
    let host = authority.environment();
    let mut out = vec![host.to_owned()];
    if let Some(tokencache::json::JsonValue::Array(metadata)) = doc.get("metadata") {
        for entry in metadata.iter() {
            let tokencache::json::JsonValue::Object(entry) = entry else {
                continue;
            };
            let Some(tokencache::json::JsonValue::Array(aliases)) = entry.get("aliases") else {
                continue;
            };
            let aliases: Vec<String> = aliases
                .iter()
                .filter_map(|a| a.as_str().map(str::to_ascii_lowercase))
                .collect();
            if aliases.iter().any(|a| a == host) {
                out.extend(aliases.into_iter().filter(|a| a != host));
                break;
            }
        }
    }
    tracing::debug!(host, aliases = ?out, "instance discovery");
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_tenants() {
        let cases = [
            (
                "https://login.microsoftonline.com/common",
                AuthorityKind::Entra,
                "common",
            ),
            (
                "https://login.microsoftonline.us/contoso.onmicrosoft.us/",
                AuthorityKind::Entra,
                "contoso.onmicrosoft.us",
            ),
            ("https://fs.contoso.com/adfs", AuthorityKind::Adfs, "adfs"),
            (
                "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_SignIn",
                AuthorityKind::B2c,
                "contoso.onmicrosoft.com",
            ),
            (
                "https://login.microsoftonline.com/tfp/contoso.onmicrosoft.com/B2C_1_SignIn",
                AuthorityKind::B2c,
                "contoso.onmicrosoft.com",
            ),
            (
                "https://contoso.ciamlogin.com",
                AuthorityKind::Ciam,
                "contoso.onmicrosoft.com",
            ),
            (
                "http://127.0.0.1:8080/7e57a000",
                AuthorityKind::Entra,
                "7e57a000",
            ),
        ];
        for (url, kind, tenant) in cases {
            let a = Authority::parse(url).unwrap();
            assert_eq!((a.kind(), a.tenant()), (kind, tenant), "{url}");
        }
        let b2c = Authority::parse(cases[3].0).unwrap();
        assert_eq!(
            b2c.discovery_url(),
            "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_SignIn/v2.0/.well-known/openid-configuration"
        );
        assert_eq!(
            Authority::parse(cases[5].0).unwrap().url(),
            "https://contoso.ciamlogin.com/contoso.onmicrosoft.com"
        );
    }

    #[test]
    fn https_is_required_except_on_loopback() {
        for bad in [
            "http://login.microsoftonline.com/common",
            "https://login.microsoftonline.com",
            "ftp://x/y",
            "not a url",
            "https://login.microsoftonline.com/common?x=1",
            // Names that only start like loopback addresses are somebody else's hosts.
            "http://127.attacker.example/common",
            "http://127.0.0.1.attacker.example/t",
            "http://localhost.attacker.example/t",
        ] {
            let e = Authority::parse(bad).unwrap_err();
            assert!(
                matches!(e, ClientError::InvalidAuthority { .. }),
                "{bad}: {e}"
            );
        }
        assert!(Authority::oidc("http://localhost:3000").is_ok());
        assert!(Authority::oidc("http://[::1]:3000").is_ok());
        assert!(Authority::oidc("http://127.0.0.2:3000").is_ok());
        assert!(Authority::oidc("http://example.com").is_err());
        assert!(Authority::oidc("http://127.0.0.1.nip.io").is_err());
    }

    #[test]
    fn aliases_only_for_known_entra_clouds_and_only_when_enabled() {
        let a = Authority::parse("https://login.windows.net/common").unwrap();
        let envs = a.environments(true);
        assert_eq!(envs[0], "login.windows.net");
        assert!(envs.contains(&"login.microsoftonline.com".to_owned()));
        assert_eq!(a.environments(false), vec!["login.windows.net".to_owned()]);
        let local = Authority::parse("http://127.0.0.1:9/t").unwrap();
        assert_eq!(local.environments(true).len(), 1);
    }
}
