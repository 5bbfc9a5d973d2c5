//! The authorization code flow with PKCE: a two-step API for web apps ([`AuthCodeFlow`]: start,
//! redirect the user, finish with the redirect's parameters) and a loopback redirect listener for
//! desktop apps.

use std::fmt;
use std::time::Duration;

use tokencache::json::{JsonObject, JsonValue};
use tokencache::{Secret, decode_jwt_claims};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use crate::app::{Core, Recorded};
use crate::error::{ClientError, Result};
use crate::oauth::decorate_scopes;
use crate::pkce::{random_token, s256_challenge};
use crate::result::AuthenticationResult;

/// Optional parameters of the authorization request.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AuthCodeOptions {
    /// `login_hint`: the username to pre-fill.
    pub login_hint: Option<String>,
    /// `domain_hint`.
    pub domain_hint: Option<String>,
    /// `prompt`: `login`, `consent`, `select_account`, `none`.
    pub prompt: Option<String>,
    /// A claims challenge to pass on (`claims`).
    pub claims: Option<String>,
    /// Any other parameters to add to the authorization URL.
    pub extra_parameters: Vec<(String, String)>,
}

impl AuthCodeOptions {
    /// Pre-fills the username.
    pub fn login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Sets `prompt`.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }
}

/// A started authorization code flow: send the user to [`AuthCodeFlow::auth_uri`], then pass
/// the parameters the provider redirects back with to `finish_auth_code_flow`. Web apps keep it
/// in the server-side session between the two steps ([`AuthCodeFlow::to_json`]). `Debug` hides
/// the PKCE verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCodeFlow {
    /// Where to send the user's browser.
    pub auth_uri: String,
    /// The redirect URI registered for the app (sent again with the code).
    pub redirect_uri: String,
    /// The `state` the response must carry.
    pub state: String,
    nonce: String,
    code_verifier: Secret,
    scopes: Vec<String>,
}

impl fmt::Debug for AuthCodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCodeFlow")
            .field("auth_uri", &self.auth_uri)
            .field("redirect_uri", &self.redirect_uri)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AuthCodeFlow {
    /// The flow as a JSON object, for a server-side session. It contains the PKCE verifier:
    /// never put it in a cookie or a URL.
    pub fn to_json(&self) -> String {
        let mut o = JsonObject::new();
        o.insert("auth_uri", JsonValue::string(&self.auth_uri));
        o.insert("redirect_uri", JsonValue::string(&self.redirect_uri));
        o.insert("state", JsonValue::string(&self.state));
        o.insert("nonce", JsonValue::string(&self.nonce));
        o.insert(
            "code_verifier",
            JsonValue::string(self.code_verifier.expose()),
        );
        o.insert("scope", JsonValue::string(&self.scopes.join(" ")));
        o.to_python_json(false)
    }

    /// Reads a flow written by [`AuthCodeFlow::to_json`].
    pub fn from_json(text: &str) -> Result<AuthCodeFlow> {
        let o = JsonObject::parse(text)?;
        let get = |k: &str| {
            o.get_str(k)
                .map(str::to_owned)
                .ok_or_else(|| ClientError::Configuration(format!("a stored flow without {k}")))
        };
        Ok(AuthCodeFlow {
            auth_uri: get("auth_uri")?,
            redirect_uri: get("redirect_uri")?,
            state: get("state")?,
            nonce: get("nonce")?,
            code_verifier: Secret::new(get("code_verifier")?),
            scopes: get("scope")?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }
}

pub(crate) async fn start(
    core: &Core,
    scopes: &[String],
    redirect_uri: &str,
    options: &AuthCodeOptions,
) -> Result<AuthCodeFlow> {
    Url::parse(redirect_uri)
        .map_err(|e| ClientError::Configuration(format!("redirect URI {redirect_uri:?}: {e}")))?;
    let meta = core.metadata().await?;
    let scopes = decorate_scopes(scopes);
    let state = random_token(16)?;
    let nonce = random_token(16)?;
    let verifier = random_token(32)?;
    let mut url =
        Url::parse(&meta.authorization_endpoint).map_err(|e| ClientError::InvalidResponse {
            url: meta.authorization_endpoint.clone(),
            reason: format!("authorization endpoint: {e}"),
        })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &core.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &s256_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        let optional = [
            ("login_hint", &options.login_hint),
            ("domain_hint", &options.domain_hint),
            ("prompt", &options.prompt),
            ("claims", &options.claims),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        for (k, v) in &options.extra_parameters {
            q.append_pair(k, v);
        }
    }
    Ok(AuthCodeFlow {
        auth_uri: url.into(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce,
        code_verifier: Secret::new(verifier),
        scopes,
    })
}

/// Finishes with the redirect's query parameters: checks `state`, turns an `error` into
/// [`ClientError::SignInFailed`], redeems the code, and checks the ID token's `nonce` and
/// audience.
pub(crate) async fn finish(
    core: &Core,
    flow: &AuthCodeFlow,
    params: &[(String, String)],
) -> Result<AuthenticationResult> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if param("state") != Some(flow.state.as_str()) {
        return Err(ClientError::FlowMismatch(
            "the state does not match the flow (a stale or forged redirect)".into(),
        ));
    }
    if let Some(error) = param("error") {
        return Err(ClientError::SignInFailed {
            error: error.to_owned(),
            description: param("error_description").map(str::to_owned),
        });
    }
    let code = param("code")
        .ok_or_else(|| ClientError::FlowMismatch("the redirect carries no code".into()))?;
    let meta = core.metadata().await?;
    let post = core
        .token_post(&meta, "authorization_code")?
        .field("code", code)
        .field("redirect_uri", &flow.redirect_uri)
        .field("code_verifier", flow.code_verifier.expose())
        .field("scope", flow.scopes.join(" "));
    let data = post.event_data();
    let response = post.send(&core.http).await?;
    if let Some(id_token) = response.get_str("id_token") {
        let claims = decode_jwt_claims(id_token)?;
        if claims.get_str("nonce") != Some(flow.nonce.as_str()) {
            return Err(ClientError::FlowMismatch(
                "the ID token's nonce does not match the flow".into(),
            ));
        }
        let aud_ok = match claims.get("aud") {
            Some(JsonValue::Array(a)) => a.iter().any(|v| v.as_str() == Some(&core.client_id)),
            Some(v) => v.as_str() == Some(core.client_id.as_str()),
            None => false,
        };
        if !aud_ok {
            return Err(ClientError::FlowMismatch(
                "the ID token was issued to another client".into(),
            ));
        }
    }
    core.record(
        &meta,
        response,
        Recorded {
            grant_type: "authorization_code",
            requested: flow.scopes.clone(),
            data,
            refreshed: None,
            partition: None,
        },
    )
    .await
}

/// How long one connection to the loopback listener may take to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// What one connection to the loopback listener turned out to be.
enum Redirect {
    /// The redirect of this sign-in: its query parameters.
    Accepted(Vec<(String, String)>),
    /// Anything else (answered, and ignored).
    Ignored,
}

/// Reads one request (within [`REQUEST_DEADLINE`]) and answers it.
async fn answer(mut stream: tokio::net::TcpStream, path: String, state: String) -> Redirect {
    let mut buf = Vec::with_capacity(2048);
    let read = tokio::time::timeout(REQUEST_DEADLINE, async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return Redirect::Ignored;
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let parsed = Url::parse(&format!("http://127.0.0.1{target}")).ok();
    let matches_path = parsed
        .as_ref()
        .is_some_and(|u| u.path() == path || (path.is_empty() && u.path() == "/"));
    let params: Vec<(String, String)> = parsed
        .as_ref()
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let is_redirect = matches_path && params.iter().any(|(k, _)| k == "code" || k == "error");
    let ours = params.iter().any(|(k, v)| k == "state" && *v == state);
    let (status, body, outcome) = match (is_redirect, ours) {
        (true, true) => (
            "200 OK",
            "<html><body>Sign-in finished. You can close this window.</body></html>",
            Redirect::Accepted(params),
        ),
        (true, false) => (
            "400 Bad Request",
            "<html><body>This response does not belong to the sign-in in progress and was ignored.</body></html>",
            Redirect::Ignored,
        ),
        _ => ("404 Not Found", "", Redirect::Ignored),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
    outcome
}

/// A loopback redirect listener for desktop apps (RFC 8252 §7.3).
pub(crate) struct LoopbackListener {
    listener: TcpListener,
    pub redirect_uri: String,
    path: String,
}

impl LoopbackListener {
    /// Binds `127.0.0.1` on the port of `redirect_uri` (0 or none: any free port) and returns
    /// the redirect URI with the actual port.
    pub async fn bind(redirect_uri: &str) -> Result<LoopbackListener> {
        let url = Url::parse(redirect_uri)
            .map_err(|e| ClientError::Configuration(format!("redirect URI: {e}")))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if url.scheme() != "http" || !matches!(host.as_str(), "localhost" | "127.0.0.1") {
            return Err(ClientError::Configuration(
                "an interactive redirect URI must be http://localhost or http://127.0.0.1".into(),
            ));
        }
        let port = url.port().unwrap_or(0);
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| ClientError::Io {
                context: format!("binding the redirect listener on port {port}"),
                source,
            })?;
        let actual = listener
            .local_addr()
            .map_err(|source| ClientError::Io {
                context: "the redirect listener's address".into(),
                source,
            })?
            .port();
        let path = url.path().to_owned();
        Ok(LoopbackListener {
            listener,
            redirect_uri: format!(
                "http://{host}:{actual}{}",
                if path == "/" { "" } else { &path }
            ),
            path,
        })
    }

    /// Waits for the browser's redirect to the listener's path carrying `state`, and returns
    /// its query parameters; answers the browser with a short page. Connections are served
    /// concurrently, each with its own read deadline, so an idle or half-sent connection (a
    /// browser's preconnect) cannot hold up the redirect. A redirect with another `state` (a
    /// forged or stale one) is answered with an error page and ignored: the listener keeps
    /// waiting for the real one until `timeout`. Other requests (favicon) get 404.
    pub async fn wait(&self, state: &str, timeout: Duration) -> Result<Vec<(String, String)>> {
        let serve = async {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let (stream, _) = accepted.map_err(|source| ClientError::Io {
                            context: "accepting the browser's redirect".into(),
                            source,
                        })?;
                        connections.spawn(answer(stream, self.path.clone(), state.to_owned()));
                    }
                    Some(answered) = connections.join_next() => {
                        if let Ok(Redirect::Accepted(params)) = answered {
                            return Ok(params);
                        }
                    }
                }
            }
        };
        tokio::time::timeout(timeout, serve)
            .await
            .map_err(|_| ClientError::SignInFailed {
                error: "timeout".into(),
                description: Some(format!(
                    "no redirect reached {} within {timeout:?}",
                    self.redirect_uri
                )),
            })?
    }
}
