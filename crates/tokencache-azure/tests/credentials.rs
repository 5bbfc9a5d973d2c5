//! tokencache-azure's credentials against the loopback OpenID provider (`tests/idp`), with the
//! real MSAL Python and msal-extensions writing the Azure CLI's cache, real SQLite and Redis
//! stores shared by processes, and a real `azure_core` pipeline.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../tokencache-client/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use common::{Idp, client_trusting, python, repo_root, test_ca};
use sha2::{Digest, Sha256};
use tokencache::json::{JsonObject, JsonValue};
use tokencache_azure::{
    AZURE_CLI_CLIENT_ID, AzureCliCredential, ClientCredential, ClientSecretCredential,
    CredentialError, DeviceCodeCredential, InteractiveBrowserCredential, Persistent, TokenSource,
    TokenStore,
};

const ARM: &str = "https://management.core.windows.net//.default";
const API: &str = "api://test-api/read";
const APP_SCOPE: &str = "api://test-api/.default";
const TENANT: &str = "7e57a000-0000-4000-8000-000000000001";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `get_token` example, built by `cargo test` beside this test binary.
fn get_token_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("get_token{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} (cargo test builds the examples)",
        path.display()
    );
    path
}

/// Runs the example; its JSON line, or its stderr as the error.
fn run_example(args: &[&str], env: &[(&str, &str)]) -> Result<JsonObject, String> {
    let out = Command::new(get_token_example())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(JsonObject::parse(line.trim()).unwrap_or_else(|e| panic!("{line:?}: {e}")))
}

// ------------------------------------------------------------------ the Azure CLI credential

/// The provider with a public client registered under the Azure CLI's client id (a family
/// member, as the real one is), over HTTPS with a test CA (MSAL Python requires https).
fn azure_cli_idp(dir: &Path) -> (Idp, PathBuf) {
    let (ca, cert, key) = test_ca(dir);
    let clients = dir.join("clients.json");
    std::fs::write(
        &clients,
        format!(
            r#"[{{"client_id": "{AZURE_CLI_CLIENT_ID}", "client_name": "Azure CLI (test)",
                "application_type": "native", "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": ["code"], "redirect_uris": ["http://127.0.0.1/callback", "http://127.0.0.1"]}}]"#
        ),
    )
    .unwrap();
    let idp = Idp::start_raw(
        &[
            ("IDP_ENTRA_COMPAT", "1"),
            ("IDP_ISSUER_PATH", &format!("/{TENANT}/v2.0")),
            ("IDP_TLS_CERT", cert.to_str().unwrap()),
            ("IDP_TLS_KEY", key.to_str().unwrap()),
            ("IDP_CLIENTS_FILE", clients.to_str().unwrap()),
            ("IDP_FOCI_CLIENTS", AZURE_CLI_CLIENT_ID),
        ],
        Some(&ca),
    );
    (idp, ca)
}

/// The Azure CLI played by MSAL Python (tests/interop/azure_cli_peer.py).
fn cli_peer(py: &Path, ca: &Path, args: &[&str]) -> JsonObject {
    let out = Command::new(py)
        .arg(repo_root().join("tests/interop/azure_cli_peer.py"))
        .args(args)
        .env("REQUESTS_CA_BUNDLE", ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "azure_cli_peer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

fn cli_credential(idp: &Idp, ca: &Path, config: &Path) -> AzureCliCredential {
    AzureCliCredential::builder()
        .config_dir(config)
        .authority_host(idp.origin.clone())
        .http_client(Arc::new(client_trusting(ca)))
        .build()
        .unwrap()
}

fn refresh_token_in(path: &Path) -> String {
    let cache = JsonObject::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let Some(JsonValue::Object(rts)) = cache.get("RefreshToken") else {
        panic!("no RefreshToken section")
    };
    let (_, JsonValue::Object(rt)) = rts.iter().next().unwrap() else {
        panic!("not an entry")
    };
    rt.get_str("secret").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_cli_credential_shares_the_clis_cache_with_msal_python() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (idp, ca) = azure_cli_idp(dir.path());
    let authority = idp.authority();
    let config = dir.path().join("azure");
    std::fs::create_dir(&config).unwrap();
    let config_str = config.to_str().unwrap();
    let file = config.join("msal_token_cache.json");
    let user = "alice@example.test";
    // `az login`, as the Azure CLI does it with MSAL Python and msal-extensions.
    cli_peer(&py, &ca, &["login", &authority, config_str, "alice", ARM]);

    // 1. The sign-in is found through azureProfile.json (with its byte order mark) and its
    //    access token served from the CLI's cache: nothing asked of the provider.
    let refreshes = idp.token_requests("refresh_token").await;
    let first = cli_credential(&idp, &ca, &config)
        .token(&[ARM])
        .await
        .unwrap();
    assert_eq!(first.source, TokenSource::Cache);
    assert_eq!(idp.token_requests("refresh_token").await, refreshes);

    // 2. An expired access token is refreshed silently (the CLI's client id, its refresh
    //    token) and written back to the CLI's file, where MSAL Python finds it.
    cli_peer(&py, &ca, &["expire", config_str]);
    let credential = cli_credential(&idp, &ca, &config);
    let refreshed = credential.token(&[ARM]).await.unwrap();
    assert_eq!(refreshed.source, TokenSource::IdentityProvider);
    assert_eq!(idp.token_requests("refresh_token").await, refreshes + 1);
    let secret = refreshed.access_token.token.secret().to_owned();
    let python_sees = cli_peer(&py, &ca, &["silent", &authority, config_str, user, ARM]);
    assert_eq!(python_sees.get_str("token_source"), Some("cache"));
    assert_eq!(
        python_sees.get_str("sha256"),
        Some(sha256(&secret).as_str())
    );
    // The same credential serves it again from memory.
    let again = credential.get_token(&[ARM], None).await.unwrap();
    assert_eq!(again.token.secret(), secret);

    // 3. While the CLI holds its lock, the credential waits for it (and then writes a file
    //    that parses), rather than writing under it.
    cli_peer(&py, &ca, &["expire", config_str]);
    let mut holder = Command::new(&py)
        .arg(repo_root().join("tests/interop/azure_cli_peer.py"))
        .args(["hold", config_str, "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let started = Instant::now();
    let waited = cli_credential(&idp, &ca, &config)
        .token(&[ARM])
        .await
        .unwrap();
    assert_eq!(waited.source, TokenSource::IdentityProvider);
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "written under the CLI's lock after {:?}",
        started.elapsed()
    );
    assert!(holder.wait().unwrap().success());
    JsonObject::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();

    // 4. A revoked refresh token: the error says to run `az login`, as the credential kind
    //    the Azure SDK expects, with the OAuth error kept as the source.
    let rt = refresh_token_in(&file);
    let revoked = idp
        .browser
        .post(format!("{}/token/revocation", idp.issuer))
        .form(&[("token", rt.as_str()), ("client_id", AZURE_CLI_CLIENT_ID)])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    cli_peer(&py, &ca, &["expire", config_str]);
    let e = cli_credential(&idp, &ca, &config)
        .get_token(&[ARM], None)
        .await
        .unwrap_err();
    assert_eq!(*e.kind(), azure_core::error::ErrorKind::Credential);
    let text = format!("{e}");
    let inner = e.downcast_ref::<CredentialError>().unwrap();
    assert!(
        matches!(inner, CredentialError::InteractionRequired { .. }),
        "{inner:?}"
    );
    let message = inner.to_string();
    assert!(
        message.contains("run `az login`") && message.contains(user),
        "{message} / {text}"
    );
    assert!(
        std::error::Error::source(inner).is_some(),
        "the OAuth error is kept"
    );
    for secret in [rt.as_str(), secret.as_str()] {
        assert!(
            !format!("{e:?}{e}{inner:?}").contains(secret),
            "no secret in errors"
        );
    }
}

#[tokio::test]
async fn the_azure_cli_credential_says_what_to_do_when_there_is_nothing_it_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let credential = AzureCliCredential::builder()
        .config_dir(dir.path())
        .build()
        .unwrap();
    // No sign-in at all.
    let e = credential.token(&[ARM]).await.unwrap_err();
    assert!(matches!(e, CredentialError::NotSignedIn { .. }), "{e:?}");
    assert!(e.to_string().contains("run `az login`"), "{e}");
    // The example finds the directory through AZURE_CONFIG_DIR and says the same on stderr.
    let stderr = run_example(
        &["--credential", "azure-cli", "--scope", ARM],
        &[("AZURE_CONFIG_DIR", dir.path().to_str().unwrap())],
    )
    .unwrap_err();
    assert!(
        stderr.contains("run `az login`") && stderr.contains(dir.path().to_str().unwrap()),
        "{stderr}"
    );
    // The Windows form of the cache (DPAPI), elsewhere than Windows.
    std::fs::write(dir.path().join("msal_token_cache.bin"), b"\x01\x00\x00\x00").unwrap();
    let e = credential.token(&[ARM]).await.unwrap_err();
    if cfg!(windows) {
        assert!(
            !matches!(e, CredentialError::EncryptedCache { .. }),
            "{e:?}"
        );
    } else {
        assert!(matches!(e, CredentialError::EncryptedCache { .. }), "{e:?}");
        assert!(e.to_string().contains("DPAPI"), "{e}");
    }
    std::fs::remove_file(dir.path().join("msal_token_cache.bin")).unwrap();
    // A cache with no account for the profile's user.
    std::fs::write(dir.path().join("msal_token_cache.json"), "{}").unwrap();
    std::fs::write(
        dir.path().join("azureProfile.json"),
        "\u{feff}{\"subscriptions\": [{\"isDefault\": true, \"tenantId\": \"t\", \"user\": {\"name\": \"bob@example.test\", \"type\": \"user\"}}]}",
    )
    .unwrap();
    let e = credential.token(&[ARM]).await.unwrap_err();
    assert!(
        e.to_string().contains("for bob@example.test") && e.to_string().contains("az login"),
        "{e}"
    );
    // No profile and two accounts in the cache: which one is not guessed.
    std::fs::remove_file(dir.path().join("azureProfile.json")).unwrap();
    std::fs::copy(
        repo_root().join("examples/caches/desktop.json"),
        dir.path().join("msal_token_cache.json"),
    )
    .unwrap();
    let e = credential.token(&[ARM]).await.unwrap_err();
    assert!(
        matches!(e, CredentialError::AmbiguousAccount { count: 2 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("name one"), "{e}");
    // Two resources in one request.
    let e = credential
        .get_token(&["https://vault.azure.net/.default", ARM], None)
        .await
        .unwrap_err();
    assert_eq!(*e.kind(), azure_core::error::ErrorKind::Credential);
    assert!(
        e.to_string().contains("two resources")
            || format!("{:?}", e.downcast_ref::<CredentialError>()).contains("two resources"),
        "{e}"
    );
}

// ------------------------------------------------------------------ public credentials

/// What opens the sign-in page.
type Opener = dyn Fn(&str) -> std::io::Result<()> + Send + Sync;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_signs_in_once_and_a_second_process_is_silent() {
    let idp = Arc::new(Idp::start(&[]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msal_token_cache.json");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let credential = DeviceCodeCredential::builder("public-app")
        .authority(idp.authority())
        .cache(TokenStore::file(&file).unwrap())
        .prompt(move |flow| {
            assert!(flow.message.contains(&flow.user_code));
            tx.send(flow.user_code.clone()).unwrap();
        })
        .build()
        .unwrap();
    let approver = {
        let idp = idp.clone();
        tokio::spawn(async move {
            let code = rx.recv().await.unwrap();
            idp.approve_device(&code, "alice").await;
        })
    };
    let first = credential.token(&[API]).await.unwrap();
    assert_eq!(first.source, TokenSource::IdentityProvider);
    approver.await.unwrap();
    let issued = idp
        .token_requests("urn:ietf:params:oauth:grant-type:device_code")
        .await;

    // Another process on the same file: silent, no prompt, nothing asked.
    let line = run_example(
        &[
            "--credential",
            "device-code",
            "--authority",
            &idp.authority(),
            "--client-id",
            "public-app",
            "--cache",
            file.to_str().unwrap(),
            "--scope",
            API,
        ],
        &[],
    )
    .unwrap();
    assert_eq!(line.get_str("credential"), Some("device-code"));
    assert_eq!(line.get_str("source"), Some("cache"));
    let expires = line
        .get("expires_on")
        .and_then(JsonValue::as_int_lenient)
        .unwrap();
    assert_eq!(expires, first.access_token.expires_on.unix_timestamp());
    assert_eq!(
        idp.token_requests("urn:ietf:params:oauth:grant-type:device_code")
            .await,
        issued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_credential_signs_in_through_a_loopback_redirect_and_is_then_silent() {
    let idp = Arc::new(Idp::start(&[]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let browser = idp.clone();
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    let build = |open: Box<Opener>| {
        InteractiveBrowserCredential::builder("public-app")
            .authority(idp.authority())
            .cache(TokenStore::file(&file).unwrap())
            .redirect_uri("http://127.0.0.1")
            .timeout(Duration::from_secs(60))
            .open_browser(open)
            .build()
            .unwrap()
    };
    let credential = build(Box::new(move |url| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (idp, url) = (browser.clone(), url.to_owned());
        tokio::spawn(async move { idp.browse_and_follow(&url, "bob").await });
        Ok(())
    }));
    let first = credential.token(&[API]).await.unwrap();
    assert_eq!(first.source, TokenSource::IdentityProvider);
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A new credential on the same file (a new run): no browser.
    let second = build(Box::new(|_| panic!("no browser on the second run")));
    let hit = second.token(&[API]).await.unwrap();
    assert_eq!(hit.source, TokenSource::Cache);
    assert_eq!(hit.access_token.token, first.access_token.token);
    // And another process on the file is silent too (the example, which opens no browser).
    let line = run_example(
        &[
            "--credential",
            "device-code",
            "--authority",
            &idp.authority(),
            "--client-id",
            "public-app",
            "--cache",
            file.to_str().unwrap(),
            "--scope",
            API,
        ],
        &[],
    )
    .unwrap();
    assert_eq!(line.get_str("source"), Some("cache"));
}

// ------------------------------------------------------------------ confidential credentials

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server on a free port, killed on drop.
struct Redis(std::process::Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (bash .ci/setup-services installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn three_processes_ask_once(url: &str) {
    // The provider answers token requests 400 ms late: every process misses the store while
    // the first request is in flight, so only the store's lease keeps them from asking too.
    let idp = Idp::start(&[("IDP_TOKEN_DELAY_MS", "400")]);
    let before = idp.token_requests("client_credentials").await;
    let args = [
        "--credential",
        "client-secret",
        "--tenant",
        TENANT,
        "--client-id",
        "confidential-app",
        "--authority-host",
        &idp.origin,
        "--store",
        url,
        "--scope",
        APP_SCOPE,
        "--concurrent",
        "50",
    ];
    let processes: Vec<_> = (0..3)
        .map(|_| {
            Command::new(get_token_example())
                .args(args)
                .env("AZURE_CLIENT_SECRET", "confidential-secret")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut sources = Vec::new();
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = JsonObject::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        sources.push(line.get_str("source").unwrap().to_owned());
    }
    assert_eq!(
        idp.token_requests("client_credentials").await - before,
        1,
        "3 processes × 50 concurrent calls ask once ({sources:?})"
    );
    // A fourth process, later, is served from the store.
    let line = run_example(&args, &[("AZURE_CLIENT_SECRET", "confidential-secret")]).unwrap();
    assert_eq!(line.get_str("source"), Some("cache"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_credentials_on_sqlite_ask_once_across_three_processes() {
    let dir = tempfile::tempdir().unwrap();
    three_processes_ask_once(&format!(
        "sqlite://{}",
        dir.path().join("tokens.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_credentials_on_redis_ask_once_across_three_processes() {
    let redis = Redis::start();
    three_processes_ask_once(&format!("redis://127.0.0.1:{}/", redis.1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_keeps_another_credentials_tokens_for_the_next_process() {
    let idp = Idp::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("persistent.json");
    // The wrapped credential keeps its tokens in memory only, like azure_identity's.
    let inner = || -> Arc<dyn TokenCredential> {
        Arc::new(
            ClientSecretCredential::builder(
                TENANT,
                "confidential-app",
                ClientCredential::secret("confidential-secret"),
            )
            .authority_host(idp.origin.clone())
            .build()
            .unwrap(),
        )
    };
    let first = Persistent::new(inner(), TokenStore::file(&file).unwrap(), "ci-app");
    let a = first.token(&[APP_SCOPE]).await.unwrap();
    assert_eq!(a.source, TokenSource::IdentityProvider);
    assert_eq!(idp.token_requests("client_credentials").await, 1);
    // A new process (new objects, the same file): from the file, the wrapped credential unasked.
    let second = Persistent::new(inner(), TokenStore::file(&file).unwrap(), "ci-app");
    let b = second.token(&[APP_SCOPE]).await.unwrap();
    assert_eq!(b.source, TokenSource::Cache);
    assert_eq!(b.access_token.token, a.access_token.token);
    assert_eq!(b.access_token.expires_on, a.access_token.expires_on);
    assert_eq!(idp.token_requests("client_credentials").await, 1);
    // Another name is another identity: not served the first one's token.
    let other = Persistent::new(inner(), TokenStore::file(&file).unwrap(), "other-app");
    assert_eq!(
        other.token(&[APP_SCOPE]).await.unwrap().source,
        TokenSource::IdentityProvider
    );
    assert!(!format!("{second:?}").contains(a.access_token.token.secret()));
}

// ------------------------------------------------------------------ the azure_core pipeline

/// An HTTPS server on loopback (Python's http.server with the test certificate) that answers
/// 200 when the request's Authorization header is `Bearer <expected>` and 401 otherwise.
const BEARER_SERVER: &str = r#"
import http.server, ssl, sys
cert, key, expected = sys.argv[1], sys.argv[2], sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer " + expected
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if ok else b"no")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.handle_request()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_core_pipeline_sends_the_credentials_token_as_a_bearer() {
    use azure_core::http::policies::Policy;
    use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
    use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Transport};

    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let idp = Idp::start(&[]);
    let credential: Arc<dyn TokenCredential> = Arc::new(
        ClientSecretCredential::builder(
            TENANT,
            "confidential-app",
            ClientCredential::secret("confidential-secret"),
        )
        .authority_host(idp.origin.clone())
        .cache(TokenStore::memory())
        .build()
        .unwrap(),
    );
    let expected = credential.get_token(&[APP_SCOPE], None).await.unwrap();
    let mut server = Command::new(&py)
        .args(["-c", BEARER_SERVER])
        .args([
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            expected.token.secret(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let pem = std::fs::read(&ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let options = ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        ..ClientOptions::default()
    };
    let bearer: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
        credential.clone(),
        [APP_SCOPE],
    ));
    let pipeline = Pipeline::new(
        Some("tokencache-azure-test"),
        Some("0"),
        options,
        Vec::new(),
        vec![bearer],
        None,
    );
    let url = format!("https://127.0.0.1:{}/secrets", port.trim())
        .parse()
        .unwrap();
    let mut request = Request::new(url, Method::Get);
    let response = pipeline
        .send(&Context::new(), &mut request, None)
        .await
        .unwrap();
    assert_eq!(
        u16::from(response.status()),
        200,
        "the server saw the credential's token"
    );
    assert!(server.wait().unwrap().success());
}
