//! A real browser: headless Chromium, driven through chromedriver's WebDriver API, signs two
//! users in to the sample web app in two separate browser profiles against the loopback OpenID
//! provider. Each sees only their own data; signing out (the page's button) deletes that
//! user's partition. The pages are styled by the app's stylesheet, and each step leaves a
//! screenshot in `target/webapp-screenshots/` for a person to look at.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Killed, free_port, provider, start};
use tokencache::json::{JsonObject, JsonValue};

/// A WebDriver session in its own Chromium profile (its own cookies).
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn parse(body: &str) -> JsonObject {
    JsonObject::parse(body).unwrap_or_else(|e| panic!("WebDriver answered {body:?}: {e}"))
}

impl Browser {
    async fn open(driver: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ]
        .iter()
        .map(|a| format!("{a:?}"))
        .chain([format!("\"--user-data-dir={}\"", profile.path().display())])
        .collect::<Vec<_>>()
        .join(",");
        let caps = format!(
            r#"{{"capabilities":{{"alwaysMatch":{{"browserName":"chrome","goog:chromeOptions":{{"binary":"/usr/bin/chromium","args":[{args}]}}}}}}}}"#
        );
        let http = reqwest::Client::new();
        let body = http
            .post(format!("{driver}/session"))
            .header("content-type", "application/json")
            .body(caps)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let o = parse(&body);
        let session = match o.get("value") {
            Some(JsonValue::Object(v)) => v.get_str("sessionId").map(str::to_owned),
            _ => None,
        }
        .unwrap_or_else(|| panic!("no session: {body}"));
        Browser {
            http,
            base: format!("{driver}/session/{session}"),
            session,
            _profile: profile,
        }
    }

    /// One WebDriver command: `POST` with `body` (JSON text), or `GET` without; returns the
    /// answer's `value`.
    async fn command(&self, path: &str, body: Option<String>) -> JsonValue {
        let url = format!("{}/{path}", self.base);
        let request = match body {
            Some(body) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body),
            None => self.http.get(url),
        };
        let response = request.send().await.unwrap();
        let ok = response.status().is_success();
        let text = response.text().await.unwrap();
        assert!(ok, "WebDriver {path}: {text:.300}");
        parse(&text)
            .get("value")
            .cloned()
            .unwrap_or_else(|| panic!("WebDriver {path} answered {text:.300}"))
    }

    /// A JSON object with one string member, as WebDriver commands take them.
    fn one(name: &str, value: &str) -> String {
        format!(
            "{{{}:{}}}",
            tokencache::json::to_python_json(&JsonValue::string(name), false),
            tokencache::json::to_python_json(&JsonValue::string(value), false)
        )
    }

    async fn go(&self, url: &str) {
        self.command("url", Some(Self::one("url", url))).await;
    }

    async fn page(&self) -> String {
        self.command("source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Navigates and waits until the page contains `marker`.
    async fn go_until(&self, url: &str, marker: &str) -> String {
        self.go(url).await;
        self.wait_for(url, marker).await
    }

    /// Waits until the page (reached by `url` or a click) contains `marker`.
    async fn wait_for(&self, url: &str, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = self.page().await;
            if page.contains(marker) {
                return page;
            }
            assert!(Instant::now() < deadline, "{url}: no {marker:?} in {page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page and returns its result as JSON text.
    async fn script(&self, script: &str) -> String {
        let body = Self::one("script", script).replace('}', r#","args":[]}"#);
        tokencache::json::to_python_json(&self.command("execute/sync", Some(body)).await, false)
    }

    /// Clicks the element `selector` names.
    async fn click(&self, selector: &str) {
        let body = Self::one("value", selector).replace('{', r#"{"using":"css selector","#);
        let element = match self.command("element", Some(body)).await {
            JsonValue::Object(v) => v
                .iter()
                .next()
                .and_then(|(_, id)| id.as_str().map(str::to_owned)),
            _ => None,
        }
        .unwrap_or_else(|| panic!("no {selector}"));
        self.command(&format!("element/{element}/click"), Some("{}".into()))
            .await;
    }

    /// Saves a PNG screenshot of the page as `target/webapp-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self
            .command("screenshot", None)
            .await
            .as_str()
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .unwrap_or_else(|| panic!("no screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(
                || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
                std::path::PathBuf::from,
            )
            .join("webapp-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = self.session;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_in_two_browsers_see_only_their_own_data() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let idp = provider(dir.path(), &format!("http://127.0.0.1:{port}/callback"));
    let db = dir.path().join("tokens.db");
    let store_url = format!("sqlite://{}", db.display());
    // The partitions are encrypted at rest.
    let key_file = dir.path().join("store.key");
    std::fs::write(&key_file, "5a".repeat(32)).unwrap();
    let _webapp = start(
        &idp,
        port,
        &store_url,
        &["--store-key-file", key_file.to_str().unwrap()],
    );

    let driver_port = free_port();
    let driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt install chromium-driver)"),
    );
    let driver_url = format!("http://127.0.0.1:{driver_port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{driver_url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let app = format!("http://127.0.0.1:{port}");
    let alice = Browser::open(&driver_url).await;
    let bob = Browser::open(&driver_url).await;
    alice.go_until(&app, "Not signed in").await;
    // The stylesheet is served and applied (the main column is 46rem wide).
    assert_eq!(
        alice
            .script("return getComputedStyle(document.querySelector('main')).maxWidth")
            .await,
        "\"736px\""
    );
    alice.screenshot("1-signed-out").await;
    let page = alice
        .go_until(&format!("{app}/login?login_hint=alice"), "Welcome")
        .await;
    assert!(page.contains("alice@example.test"), "{page}");
    assert!(
        page.contains("id=\"logout\""),
        "sign-out is a button: {page}"
    );
    alice.screenshot("2-signed-in").await;
    let page = bob
        .go_until(&format!("{app}/login?login_hint=bob"), "Welcome")
        .await;
    assert!(page.contains("bob@example.test"), "{page}");

    // Each calls the API with their own token, served from their own partition.
    let page = alice
        .go_until(&format!("{app}/call-api"), "API result")
        .await;
    assert!(
        page.contains("Alice Example") && !page.contains("Bob"),
        "{page}"
    );
    // The API's JSON is pretty-printed; the token's source and expiry are shown.
    assert!(page.contains("\n    \"name\": \"Alice Example\""), "{page}");
    assert!(page.contains("id=\"token-expiry\">in "), "{page}");
    alice.screenshot("3-api-result").await;
    let page = bob.go_until(&format!("{app}/call-api"), "API result").await;
    assert!(
        page.contains("Bob Example") && !page.contains("Alice"),
        "{page}"
    );
    assert!(page.contains(">cache</span>"), "{page}");
    let page = alice.go_until(&app, "Welcome").await;
    assert!(!page.contains("bob@"), "{page}");

    let store = tokencache_store::open(&store_url).await.unwrap();
    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let doc = store.load(key).await.unwrap().unwrap().document;
        assert_eq!(
            tokencache_store::encrypted_key_id(&doc).as_deref(),
            Some("k1"),
            "partition {key} is stored encrypted under the default key id"
        );
    }
    let alice_key = keys
        .iter()
        .find(|k| k.starts_with("a11ce"))
        .unwrap()
        .clone();

    // Alice signs out: her partition is gone; Bob is unaffected.
    alice.click("#logout").await;
    alice.wait_for("the sign-out button", "Not signed in").await;
    let keys = store.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys.contains(&alice_key));
    let page = bob.go_until(&format!("{app}/call-api"), "API result").await;
    assert!(page.contains("Bob Example"), "{page}");

    alice.close().await;
    bob.close().await;
    drop(driver);
}
