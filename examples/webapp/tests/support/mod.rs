//! What the web app's tests share: a provider that knows the app, the app started as a
//! process, and a sign-in through the app's own pages over HTTP (the provider's browse helper
//! plays the browser).
#![allow(dead_code, reason = "each test binary uses part of it")]

#[path = "../../../../crates/tokencache-client/tests/common/mod.rs"]
pub mod idp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The loopback provider with the web app registered as a client redirecting to
/// `redirect_uri`. `dir` holds its client file.
pub fn provider(dir: &std::path::Path, redirect_uri: &str) -> idp::Idp {
    let clients = format!(
        r#"[{{"client_id":"web-app","client_secret":"web-secret","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"redirect_uris":["{redirect_uri}"]}}]"#
    );
    let clients_file = dir.join("clients.json");
    std::fs::write(&clients_file, clients).expect("clients file");
    idp::Idp::start(&[("IDP_CLIENTS_FILE", clients_file.to_str().expect("utf8"))])
}

/// Starts the web app on `port` over `store`, with `extra` flags; returns when it listens.
pub fn start(idp: &idp::Idp, port: u16, store: &str, extra: &[&str]) -> Killed {
    let mut webapp = Command::new(env!("CARGO_BIN_EXE_tokencache-webapp"))
        .args(["--authority", &idp.authority(), "--client-id", "web-app"])
        .args(["--client-secret", "web-secret", "--store", store])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--scopes", "openid profile"])
        .args(["--api-url", &format!("{}/me", idp.issuer)])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the web app");
    let mut line = String::new();
    BufReader::new(webapp.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert!(line.starts_with("listening on"), "{line}");
    Killed(webapp)
}

/// An HTTP client that does not follow redirects (the tests look at each one).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `name=value` of the response's `Set-Cookie`, if any.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get("set-cookie")?.to_str().ok()?;
    header.split(';').next().map(str::to_owned)
}

/// A finished sign-in: the callback's response status and the cookie it set.
pub struct SignIn {
    pub status: reqwest::StatusCode,
    pub cookie: Option<String>,
}

/// Signs `user` in through the app's own pages, the browser arriving with the `planted`
/// cookie (as if an attacker had set it) when given.
pub async fn sign_in_with(idp: &idp::Idp, port: u16, user: &str, planted: Option<&str>) -> SignIn {
    let http = http();
    let app = format!("http://127.0.0.1:{port}");
    let mut login = http.get(format!("{app}/login"));
    if let Some(planted) = planted {
        login = login.header("cookie", planted);
    }
    let login = login.send().await.expect("login");
    assert!(login.status().is_redirection(), "{}", login.status());
    // The app's cookie replaces a planted one of the same name, as in a browser.
    let cookies = set_cookie(&login).expect("the sign-in sets a session cookie");
    let auth_uri = login.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let params = idp.browse(&auth_uri, user).await;
    let callback = http
        .get(format!("{app}/callback"))
        .query(&params)
        .header("cookie", cookies)
        .send()
        .await
        .expect("callback");
    SignIn {
        status: callback.status(),
        cookie: set_cookie(&callback),
    }
}

/// Signs `user` in; returns the callback's status.
pub async fn sign_in(idp: &idp::Idp, port: u16, user: &str) -> reqwest::StatusCode {
    sign_in_with(idp, port, user, None).await.status
}

/// The home page as seen with `cookie`.
pub async fn home(port: u16, cookie: Option<&str>) -> String {
    let mut request = http().get(format!("http://127.0.0.1:{port}/"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request
        .send()
        .await
        .expect("home")
        .text()
        .await
        .expect("body")
}
