//! The sample web app: the equivalent of `ms-identity-python-webapp`. A user signs in with the
//! authorization code flow (PKCE, state and nonce checked), sees who is signed in, calls an API
//! with a token acquired silently from their own cache partition, and signs out, which deletes
//! that partition. The token cache lives in the store given by URL: SQLite by default,
//! PostgreSQL or Redis. Browser sessions are server-side (an opaque, HttpOnly cookie, `Secure`
//! and `__Host-` on https); they hold the pending flow and the signed-in account, never a
//! token. Session ids are issued only by the app and replaced at sign-in; sign-out is a POST
//! with a CSRF token; sessions expire and are capped (see `sessions.rs`).
//!
//! ```text
//! cargo run -p tokencache-webapp -- --authority https://login.microsoftonline.com/<tenant> \
//!     --client-id <app id> --client-secret <secret> --scopes User.Read \
//!     --api-url https://graph.microsoft.com/v1.0/me
//! ```

// The flags' doc comments are also their `--help` text, where URLs and `<placeholders>` read
// best as they are.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use clap::Parser;
use tokencache::seal::{DataKey, Zeroizing};
use tokencache_client::{
    AccountInfo, AuthCodeFlow, AuthCodeOptions, ClientCredential, ConfidentialClientApplication,
};
use tokencache_store::{PartitionKeys, PartitionOptions, PartitionedCache};

mod sessions;
use sessions::{SessionPolicy, Sessions, SignedIn};

/// Command line and environment configuration.
#[derive(Parser, Debug)]
#[command(about = "Sample web app: sign in, call an API with a cached token, sign out")]
struct Config {
    /// The authority (Entra: https://login.microsoftonline.com/<tenant>).
    #[arg(long, env = "WEBAPP_AUTHORITY")]
    authority: String,
    /// Treat --authority as a generic OpenID issuer.
    #[arg(long)]
    oidc: bool,
    /// The application (client) id.
    #[arg(long, env = "WEBAPP_CLIENT_ID")]
    client_id: String,
    /// The client secret.
    #[arg(long, env = "WEBAPP_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Where the token cache lives: sqlite://PATH, postgres://..., redis://HOST:PORT/,
    /// redis+cluster://HOST:PORT,...
    #[arg(
        long,
        env = "WEBAPP_STORE",
        default_value = "sqlite://webapp-tokens.db"
    )]
    store: String,
    /// The address to listen on.
    #[arg(long, env = "WEBAPP_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// The redirect URI registered for the app (default: http://<listen>/callback).
    #[arg(long, env = "WEBAPP_REDIRECT_URI")]
    redirect_uri: Option<String>,
    /// Space-separated scopes of the API.
    #[arg(long, env = "WEBAPP_SCOPES", default_value = "User.Read")]
    scopes: String,
    /// The API to call with the user's token.
    #[arg(
        long,
        env = "WEBAPP_API_URL",
        default_value = "https://graph.microsoft.com/v1.0/me"
    )]
    api_url: String,
    /// Encrypt the stored partitions with the key in this file (64 hex digits or base64 of 32
    /// bytes; the `tokencache` CLI reads the same file with `--key-file`).
    #[arg(long, env = "WEBAPP_STORE_KEY_FILE")]
    store_key_file: Option<PathBuf>,
    /// The id written with each encrypted partition; give the key a new id when rotating.
    #[arg(long, env = "WEBAPP_STORE_KEY_ID", default_value = "k1")]
    store_key_id: String,
    /// While rotating keys: the previous key's file, so partitions still under it stay readable
    /// (each is rewritten under the new key at its next save).
    #[arg(
        long,
        env = "WEBAPP_PREVIOUS_STORE_KEY_FILE",
        requires = "store_key_file"
    )]
    previous_store_key_file: Option<PathBuf>,
    /// The previous key's id.
    #[arg(
        long,
        env = "WEBAPP_PREVIOUS_STORE_KEY_ID",
        requires = "previous_store_key_file"
    )]
    previous_store_key_id: Option<String>,
    /// Sign a user out after this many seconds without a request.
    #[arg(long, env = "WEBAPP_SESSION_IDLE_SECS", default_value_t = 8 * 3600)]
    session_idle_secs: u64,
    /// At most this many signed-in sessions (the least recently used goes first).
    #[arg(long, env = "WEBAPP_MAX_SESSIONS", default_value_t = 100_000)]
    max_sessions: usize,
}

/// The keys that encrypt stored partitions, if the configuration names any.
fn partition_keys(config: &Config) -> Result<Option<PartitionKeys>, Box<dyn std::error::Error>> {
    let read = |path: &PathBuf| -> Result<[u8; 32], Box<dyn std::error::Error>> {
        // The one key format of every tokencache component: 64 hex digits or base64.
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the store key file {}: {e}", path.display()))?,
        );
        Ok(*DataKey::from_text(&text)?.as_bytes())
    };
    let Some(path) = &config.store_key_file else {
        return Ok(None);
    };
    let mut keys = PartitionKeys::new(&config.store_key_id, read(path)?)?;
    if let Some(previous) = &config.previous_store_key_file {
        let id = config
            .previous_store_key_id
            .as_deref()
            .ok_or("--previous-store-key-file needs --previous-store-key-id")?;
        keys = keys.with_previous(id, read(previous)?)?;
    }
    Ok(Some(keys))
}

struct App {
    client: ConfidentialClientApplication,
    cache: Arc<PartitionedCache>,
    sessions: Sessions,
    cookie: Cookie,
    redirect_uri: String,
    scopes: Vec<String>,
    api_url: String,
    http: reqwest::Client,
}

/// The session cookie: `__Host-`-prefixed and `Secure` when the app is reached over https (its
/// redirect URI says so), so no other site and no plain-http page can set or read it.
struct Cookie {
    name: &'static str,
    attributes: &'static str,
}

impl Cookie {
    fn for_redirect_uri(redirect_uri: &str) -> Cookie {
        if redirect_uri.starts_with("https://") {
            Cookie {
                name: "__Host-tcsid",
                attributes: "Path=/; HttpOnly; SameSite=Lax; Secure",
            }
        } else {
            Cookie {
                name: "tcsid",
                attributes: "Path=/; HttpOnly; SameSite=Lax",
            }
        }
    }

    fn set(&self, id: &str) -> String {
        format!("{}={id}; {}", self.name, self.attributes)
    }

    fn clear(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.name, self.attributes)
    }

    /// The session id the request carries, if any (whether we issued it is the table's call).
    fn read(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == self.name)
            .map(|(_, v)| v.to_owned())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLESHEET: &str = include_str!("../static/style.css");

/// A whole page: the header (with who is signed in, if anyone) and `body` in the main column.
fn page(title: &str, who: Option<&AccountInfo>, body: &str) -> Html<String> {
    let who = who.map_or_else(String::new, |a| {
        format!("<span class=\"who\">{}</span>", escape(&a.username))
    });
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · tokencache sample</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
         </head><body><header><a class=\"brand\" href=\"/\">tokencache sample</a>{who}</header>\
         <main>{body}</main></body></html>",
        escape(title)
    ))
}

fn error_page(status: StatusCode, what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "{what}");
    (
        status,
        page(
            what,
            None,
            &format!(
                "<section class=\"card\"><h1>{}</h1><p id=\"error\" class=\"error\">{}</p>\
                 <div class=\"actions\"><a class=\"button secondary\" href=\"/\">Home</a></div></section>",
                escape(what),
                escape(&e.to_string())
            ),
        ),
    )
        .into_response()
}

/// The sign-out button: a POST form carrying the session's CSRF token (a link or a GET from
/// another site cannot sign anyone out).
fn sign_out_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button id=\"logout\" class=\"secondary\" type=\"submit\">Sign out</button></form>",
        escape(csrf)
    )
}

impl App {
    fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        self.sessions.signed_in(&self.cookie.read(headers)?)
    }

    fn scopes(&self) -> Vec<&str> {
        self.scopes.iter().map(String::as_str).collect()
    }
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(SignedIn { account, csrf }) = app.signed_in(&headers) else {
        return page(
            "Welcome",
            None,
            "<section class=\"card\"><h1>tokencache sample web app</h1>\
             <p id=\"anonymous\" class=\"muted\">Not signed in.</p>\
             <p>Sign in to call an API with a token kept in your own, encrypted cache partition.</p>\
             <div class=\"actions\"><a id=\"login\" class=\"button\" href=\"/login\">Sign in</a></div></section>",
        )
        .into_response();
    };
    page(
        "Signed in",
        Some(&account),
        &format!(
            "<section class=\"card\"><h1>Welcome, <span id=\"user\">{}</span></h1>\
             <dl><dt>Account</dt><dd><code id=\"account\">{}</code></dd>\
             <dt>Identity provider</dt><dd>{}</dd></dl>\
             <div class=\"actions\"><a id=\"call-api\" class=\"button\" href=\"/call-api\">Call the API</a>{}</div>\
             </section>",
            escape(&account.username),
            escape(&account.home_account_id),
            escape(&account.environment),
            sign_out_form(&csrf)
        ),
    )
    .into_response()
}

async fn login(State(app): State<Arc<App>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut options = AuthCodeOptions::default();
    if let Some(hint) = q.get("login_hint") {
        options = options.login_hint(hint);
    }
    let flow = match app
        .client
        .start_auth_code_flow(&app.scopes(), &app.redirect_uri, &options)
        .await
    {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_GATEWAY, "Could not start the sign-in", &e),
    };
    // Always a new session made here: an id the browser brings is never adopted.
    let id = match app.sessions.start_sign_in(flow.to_json()) {
        Ok(id) => id,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "No session", &e),
    };
    (
        [(header::SET_COOKIE, app.cookie.set(&id))],
        Redirect::to(&flow.auth_uri),
    )
        .into_response()
}

async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let flow = app
        .cookie
        .read(&headers)
        .and_then(|id| app.sessions.take_flow(&id))
        .and_then(|f| AuthCodeFlow::from_json(&f).ok());
    let Some(flow) = flow else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No sign-in in progress",
            &"start at /login",
        );
    };
    let result = match app.client.finish_auth_code_flow(&flow, &q).await {
        Ok(result) => result,
        Err(e) => return error_page(StatusCode::UNAUTHORIZED, "Sign-in failed", &e),
    };
    let Some(account) = result.account else {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "Sign-in failed",
            &"the provider returned no account",
        );
    };
    // Signed in: a new session under a new id.
    match app.sessions.sign_in(account) {
        Ok(id) => (
            [(header::SET_COOKIE, app.cookie.set(&id))],
            Redirect::to("/"),
        )
            .into_response(),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "No session", &e),
    }
}

/// The API's answer, pretty-printed when it is JSON.
fn pretty(body: &str) -> String {
    match tokencache::json::parse_value(body) {
        Ok(value) => tokencache::json::to_python_json(&value, true),
        Err(_) => body.to_owned(),
    }
}

/// "in 59 min (Sun, 06 Dec 2026 04:13:28 GMT)".
fn expiry(expires_on: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = expires_on.saturating_sub(now).max(0) / 60;
    let at = u64::try_from(expires_on)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)))
        .map_or_else(String::new, |t| {
            format!(" ({})", httpdate::fmt_http_date(t))
        });
    format!("in {left} min{at}")
}

async fn call_api(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(SignedIn { account, csrf }) = app.signed_in(&headers) else {
        return Redirect::to("/login").into_response();
    };
    let token = match app
        .client
        .acquire_token_silent(&app.scopes(), &account)
        .await
    {
        Ok(t) => t,
        Err(e) if e.is_interaction_required() => return Redirect::to("/login").into_response(),
        Err(e) => return error_page(StatusCode::BAD_GATEWAY, "No token", &e),
    };
    let response = app
        .http
        .get(&app.api_url)
        .bearer_auth(token.access_token.expose())
        .send()
        .await;
    let (status, body) = match response {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => return error_page(StatusCode::BAD_GATEWAY, "The API call failed", &e),
    };
    let source = token.token_source.as_str();
    let badge = if source == "cache" {
        "badge"
    } else {
        "badge network"
    };
    page(
        "API result",
        Some(&account),
        &format!(
            "<section class=\"card\"><h1>API result</h1>\
             <dl><dt>Response</dt><dd id=\"api-status\">HTTP {status}</dd>\
             <dt>Token from</dt><dd><span id=\"token-source\" class=\"{badge}\">{}</span></dd>\
             <dt>Token expires</dt><dd id=\"token-expiry\">{}</dd></dl>\
             <pre id=\"api-result\">{}</pre>\
             <div class=\"actions\"><a class=\"button\" href=\"/call-api\">Call again</a>\
             <a class=\"button secondary\" href=\"/\">Home</a>{}</div></section>",
            escape(source),
            escape(&expiry(token.expires_on)),
            escape(&pretty(&body)),
            sign_out_form(&csrf)
        ),
    )
    .into_response()
}

/// The sign-out form's fields.
#[derive(serde::Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some(id) = app.cookie.read(&headers) else {
        return Redirect::to("/").into_response();
    };
    let account = match app.sessions.sign_out(&id, &form.csrf) {
        Ok(account) => account,
        Err(e) => return error_page(StatusCode::FORBIDDEN, "Sign-out refused", &e),
    };
    if let Some(account) = account {
        // Forget the user in this app, and delete their partition outright.
        if let Err(e) = app.client.remove_account(&account).await {
            return error_page(StatusCode::BAD_GATEWAY, "Sign-out failed", &e);
        }
        let key = tokencache::PartitionKey::for_account(&account.home_account_id);
        if let Err(e) = app.cache.delete_partition(&key).await {
            return error_page(StatusCode::BAD_GATEWAY, "Sign-out failed", &e);
        }
    }
    (
        [(header::SET_COOKIE, app.cookie.clear())],
        Redirect::to("/"),
    )
        .into_response()
}

async fn build(config: Config) -> Result<(Router, SocketAddr), Box<dyn std::error::Error>> {
    let store = tokencache_store::open(&config.store).await?;
    let options = PartitionOptions {
        encryption: partition_keys(&config)?,
        ..PartitionOptions::default()
    };
    let cache = Arc::new(PartitionedCache::new(store, options));
    let builder = ConfidentialClientApplication::builder(&config.client_id);
    let builder = if config.oidc {
        builder.oidc_authority(&config.authority)?
    } else {
        builder.authority(&config.authority)?
    };
    let client = builder
        .credential(ClientCredential::secret(config.client_secret.clone()))
        .cache_accessor(cache.clone())
        .build()?;
    let redirect_uri = config
        .redirect_uri
        .clone()
        .unwrap_or_else(|| format!("http://{}/callback", config.listen));
    let app = Arc::new(App {
        client,
        cache,
        sessions: Sessions::new(SessionPolicy {
            idle: Duration::from_secs(config.session_idle_secs),
            max_signed_in: config.max_sessions,
            ..SessionPolicy::default()
        }),
        cookie: Cookie::for_redirect_uri(&redirect_uri),
        redirect_uri,
        scopes: config
            .scopes
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        api_url: config.api_url.clone(),
        http: reqwest::Client::new(),
    });
    let router = Router::new()
        .route("/", get(index))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/call-api", get(call_api))
        .route("/logout", post(logout))
        .route("/static/style.css", get(stylesheet))
        .with_state(app);
    Ok((router, config.listen))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let store = config.store.clone();
    let (router, addr) = match build(config).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    // One line on stdout when ready (tests wait for it).
    println!(
        "listening on http://{local} (token cache: {})",
        tokencache::redact_url(&store)
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
