//! The sample web app: the equivalent of `ms-identity-python-webapp`. A user signs in with the
//! authorization code flow (PKCE, state and nonce checked), sees who is signed in, calls an API
//! with a token acquired silently from their own cache partition, and signs out, which deletes
//! that partition. The token cache lives in the store given by URL: SQLite by default,
//! PostgreSQL or Redis. Browser sessions are server-side (an opaque, HttpOnly cookie); they hold
//! the pending flow and the signed-in account, never a token.
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
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use clap::Parser;
use tokencache::seal::{DataKey, Zeroizing};
use tokencache_client::{
    AccountInfo, AuthCodeFlow, AuthCodeOptions, ClientCredential, ConfidentialClientApplication,
};
use tokencache_store::{PartitionKeys, PartitionOptions, PartitionedCache};

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

/// What a browser session holds (server-side).
#[derive(Default)]
struct Session {
    flow: Option<String>,
    account: Option<AccountInfo>,
}

struct App {
    client: ConfidentialClientApplication,
    cache: Arc<PartitionedCache>,
    sessions: Mutex<HashMap<String, Session>>,
    redirect_uri: String,
    scopes: Vec<String>,
    api_url: String,
    http: reqwest::Client,
}

const COOKIE: &str = "tcsid";

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn random_id() -> String {
    format!(
        "{:016x}{:016x}",
        tokencache_store::new_version(),
        tokencache_store::new_version()
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokencache sample</title></head><body>{body}</body></html>"
    ))
}

fn error_page(status: StatusCode, what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "{what}");
    (
        status,
        page(&format!(
            "<h1>{}</h1><p id=\"error\">{}</p><p><a href=\"/\">Home</a></p>",
            escape(what),
            escape(&e.to_string())
        )),
    )
        .into_response()
}

impl App {
    fn account(&self, headers: &HeaderMap) -> Option<AccountInfo> {
        let id = session_id(headers)?;
        let sessions = self.sessions.lock().ok()?;
        sessions.get(&id)?.account.clone()
    }

    fn scopes(&self) -> Vec<&str> {
        self.scopes.iter().map(String::as_str).collect()
    }
}

async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match app.account(&headers) {
        Some(a) => page(&format!(
            "<h1>Signed in</h1><p>Welcome, <span id=\"user\">{}</span></p>\
             <p>Account id: <code id=\"account\">{}</code></p>\
             <p><a id=\"call-api\" href=\"/call-api\">Call the API</a> · <a id=\"logout\" href=\"/logout\">Sign out</a></p>",
            escape(&a.username),
            escape(&a.home_account_id)
        ))
        .into_response(),
        None => page(
            "<h1>tokencache sample web app</h1><p id=\"anonymous\">Not signed in.</p>\
             <p><a id=\"login\" href=\"/login\">Sign in</a></p>",
        )
        .into_response(),
    }
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
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
    let id = session_id(&headers).unwrap_or_else(random_id);
    if let Ok(mut sessions) = app.sessions.lock() {
        sessions.entry(id.clone()).or_default().flow = Some(flow.to_json());
    }
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&flow.auth_uri)).into_response()
}

async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let Some(id) = session_id(&headers) else {
        return error_page(StatusCode::BAD_REQUEST, "No session", &"start at /login");
    };
    let stored = app
        .sessions
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(&id).and_then(|s| s.flow.take()));
    let Some(flow) = stored.and_then(|f| AuthCodeFlow::from_json(&f).ok()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No sign-in in progress",
            &"start at /login",
        );
    };
    match app.client.finish_auth_code_flow(&flow, &q).await {
        Ok(result) => {
            if let Ok(mut sessions) = app.sessions.lock() {
                sessions.entry(id).or_default().account = result.account;
            }
            Redirect::to("/").into_response()
        }
        Err(e) => error_page(StatusCode::UNAUTHORIZED, "Sign-in failed", &e),
    }
}

async fn call_api(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(account) = app.account(&headers) else {
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
    match response {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            page(&format!(
                "<h1>API result</h1><p>HTTP {status}; token from <span id=\"token-source\">{}</span></p>\
                 <pre id=\"api-result\">{}</pre><p><a href=\"/\">Home</a></p>",
                token.token_source.as_str(),
                escape(&body)
            ))
            .into_response()
        }
        Err(e) => error_page(StatusCode::BAD_GATEWAY, "The API call failed", &e),
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let account = session_id(&headers).and_then(|id| {
        app.sessions
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&id))
            .and_then(|s| s.account)
    });
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
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
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
        sessions: Mutex::new(HashMap::new()),
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
        .route("/logout", get(logout))
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
        store.split('@').next_back().unwrap_or_default()
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
