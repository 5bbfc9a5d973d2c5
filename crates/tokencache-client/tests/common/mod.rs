//! The loopback OpenID provider (`oidc-provider` from npm, `tests/idp/server.mjs`) as a child
//! process, one per test, plus helpers that play the user's browser.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use tokencache::json::JsonObject;
use tokencache_client::http::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running provider; killed and reaped on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
    pub origin: String,
    pub tenant: String,
    pub browser: reqwest::Client,
}

impl Idp {
    /// Starts the provider with Entra compatibility on and the issuer under `/<tenant>/v2.0`,
    /// so `authority()` is an Entra-shaped authority, plus any extra environment.
    pub fn start(extra_env: &[(&str, &str)]) -> Idp {
        let mut env = vec![
            ("IDP_ENTRA_COMPAT", "1"),
            (
                "IDP_ISSUER_PATH",
                "/7e57a000-0000-4000-8000-000000000001/v2.0",
            ),
        ];
        env.extend_from_slice(extra_env);
        Idp::start_raw(&env, None)
    }

    /// Starts the provider with exactly this environment (and a CA to trust, for HTTPS).
    pub fn start_raw(env: &[(&str, &str)], ca: Option<&std::path::Path>) -> Idp {
        let dir = repo_root().join("tests/idp");
        let jwks = dir.join(".generated/jwks.json");
        if !dir.join("node_modules/oidc-provider").exists() || !jwks.exists() {
            // One thread at a time runs the setup (it is idempotent).
            static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _once = SETUP
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !jwks.exists() || !dir.join("node_modules/oidc-provider").exists() {
                let ok = Command::new("bash")
                    .arg(repo_root().join(".ci/setup-idp"))
                    .status()
                    .expect("run .ci/setup-idp")
                    .success();
                assert!(ok, ".ci/setup-idp failed (npm ci in tests/idp)");
            }
        }
        // A provider that does not come up within 20 s is killed and started again (once).
        for attempt in 0..2 {
            let mut cmd = Command::new("node");
            cmd.arg(dir.join("server.mjs"))
                .current_dir(&dir)
                .env("IDP_PORT", "0")
                .env("IDP_JWKS_FILE", &jwks)
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            for (k, v) in env {
                cmd.env(k, v);
            }
            if let Some(ca) = ca {
                // The provider's own browser helpers call its HTTPS origin.
                cmd.env("NODE_EXTRA_CA_CERTS", ca);
            }
            let mut child = cmd.spawn().expect("start node tests/idp/server.mjs");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                // Keep draining: a closed pipe would kill the provider at its next write.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(line) if !line.trim().is_empty() => return Idp::ready(child, &line, ca),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(attempt == 0, "the provider did not start, twice");
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn ready(child: Child, line: &str, ca: Option<&std::path::Path>) -> Idp {
        let ready =
            JsonObject::parse(line.trim()).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
        let issuer = ready.get_str("issuer").expect("issuer").to_owned();
        let tenant = ready.get_str("tenant_id").expect("tenant_id").to_owned();
        let origin = issuer
            .find("://")
            .and_then(|i| {
                issuer[i + 3..]
                    .find('/')
                    .map(|j| issuer[..i + 3 + j].to_owned())
            })
            .unwrap_or_else(|| issuer.clone());
        let mut browser = reqwest::Client::builder();
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).expect("CA");
            browser =
                browser.tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA PEM")]);
        }
        Idp {
            child,
            issuer,
            origin,
            tenant,
            browser: browser.build().expect("browser client"),
        }
    }

    /// The Entra-shaped authority `http://127.0.0.1:PORT/<tenant>`.
    pub fn authority(&self) -> String {
        format!("{}/{}", self.origin, self.tenant)
    }

    /// Approves a device code as `login_hint` (`deny` declines).
    pub async fn approve_device(&self, user_code: &str, login_hint: &str) {
        let url = format!("{}/__test/device", self.issuer);
        let r = self
            .browser
            .get(url)
            .query(&[("user_code", user_code), ("login_hint", login_hint)])
            .send()
            .await
            .expect("device helper");
        let body = r.text().await.expect("body");
        if login_hint != "deny" {
            assert!(body.contains("\"approved\":true"), "{body}");
        }
    }

    /// Plays the browser: signs `login_hint` in at `auth_uri` and follows the final redirect to
    /// the app's loopback listener.
    pub async fn browse_and_follow(&self, auth_uri: &str, login_hint: &str) {
        let url = format!("{}/__test/browse", self.issuer);
        let r = self
            .browser
            .get(url)
            .query(&[
                ("url", auth_uri),
                ("login_hint", login_hint),
                ("redirect", "1"),
            ])
            .send()
            .await
            .expect("browse helper");
        assert!(r.status().is_success(), "listener answered {}", r.status());
    }

    /// Plays the browser and returns the redirect's query parameters (web apps).
    pub async fn browse(&self, auth_uri: &str, login_hint: &str) -> Vec<(String, String)> {
        let url = format!("{}/__test/browse", self.issuer);
        let body = self
            .browser
            .get(url)
            .query(&[("url", auth_uri), ("login_hint", login_hint)])
            .send()
            .await
            .expect("browse helper")
            .text()
            .await
            .expect("body");
        let o = JsonObject::parse(&body).expect("browse JSON");
        let location = o.get_str("location").unwrap_or_else(|| panic!("{body}"));
        url::Url::parse(location)
            .expect("location")
            .query_pairs()
            .into_owned()
            .collect()
    }

    /// Token requests the provider answered, by grant type.
    pub async fn token_requests(&self, grant_type: &str) -> i64 {
        let body = self
            .browser
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("body");
        let o = JsonObject::parse(&body).expect("stats JSON");
        match o.get("token_requests") {
            Some(tokencache::json::JsonValue::Object(t)) => t
                .get(grant_type)
                .and_then(|v| v.as_int_lenient())
                .unwrap_or(0),
            _ => 0,
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One exchange with the token endpoint, as the recording client saw it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub url: String,
    pub form: Vec<(String, String)>,
    pub status: u16,
    pub body: String,
}

/// An HTTP client that records token-endpoint exchanges and can be switched off (to inject a
/// network failure). It wraps the real reqwest client.
#[derive(Debug)]
pub struct Recording {
    inner: tokencache_client::http::ReqwestClient,
    pub exchanges: Mutex<Vec<Exchange>>,
    pub offline: std::sync::atomic::AtomicBool,
}

impl Recording {
    pub fn new() -> Arc<Recording> {
        Recording::with(tokencache_client::http::ReqwestClient::new().expect("client"))
    }

    pub fn with(inner: tokencache_client::http::ReqwestClient) -> Arc<Recording> {
        Arc::new(Recording {
            inner,
            exchanges: Mutex::new(Vec::new()),
            offline: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl HttpClient for Recording {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            if self.offline.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(TransportError::Connect("injected: offline".into()));
            }
            let form = request.form.clone();
            let url = request.url.clone();
            let is_token = request.url.ends_with("/token");
            let response = self.inner.send(request).await?;
            if is_token {
                self.exchanges.lock().unwrap().push(Exchange {
                    url,
                    form,
                    status: response.status,
                    body: String::from_utf8_lossy(&response.body).into_owned(),
                });
            }
            Ok(response)
        })
    }
}

#[path = "../../../../tests/support/python.rs"]
mod python_support;
#[allow(
    unused_imports,
    reason = "not every test binary that shares this module asks for Python"
)]
pub use python_support::python;

/// A test CA and a server certificate for 127.0.0.1 signed by it (PEM files in `dir`):
/// returns (ca.pem, server.pem, server.key).
pub fn test_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=tokencache test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A reqwest-based HTTP client that trusts the test CA (and no other root).
pub fn client_trusting(ca: &std::path::Path) -> tokencache_client::http::ReqwestClient {
    let pem = std::fs::read(ca).expect("CA");
    let cert = reqwest::Certificate::from_pem(&pem).expect("CA PEM");
    tokencache_client::http::ReqwestClient::builder(std::time::Duration::from_secs(30))
        .tls_certs_only([cert])
        .build()
        .expect("client")
        .into()
}

/// Signs `user` in with the device code flow for `api://test-api/read` (the provider's helper
/// approves the code).
pub async fn device_sign_in(
    idp: &Idp,
    app: &tokencache_client::PublicClientApplication,
    user: &str,
) -> tokencache_client::AuthenticationResult {
    let flow = app
        .initiate_device_flow(&["api://test-api/read"])
        .await
        .expect("device flow");
    assert!(flow.message.contains(&flow.user_code), "{}", flow.message);
    idp.approve_device(&flow.user_code, user).await;
    app.acquire_token_by_device_flow(&flow)
        .await
        .expect("device sign-in")
}
