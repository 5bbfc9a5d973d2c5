//! The sample web app's sessions against an attacker, over HTTP: a planted cookie is never
//! adopted, sign-out is a POST with the session's CSRF token, sessions expire and are capped,
//! and on https the cookie is `__Host-` and `Secure`.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod support;

use std::time::Duration;

use support::{free_port, home, http, provider, set_cookie, sign_in_with, start};

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("tokens.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_session_cookie_never_becomes_the_victims_session() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let idp = provider(dir.path(), &format!("http://127.0.0.1:{port}/callback"));
    let _app = start(&idp, port, &sqlite(&dir), &[]);

    // The attacker gets a session id of their own from the app (or makes one up), plants it
    // in the victim's browser, and waits for the victim to sign in.
    let attacker = set_cookie(
        &http()
            .get(format!("http://127.0.0.1:{port}/login"))
            .send()
            .await
            .unwrap(),
    )
    .unwrap();
    for planted in [attacker.as_str(), "tcsid=chosen-by-the-attacker"] {
        let victim = sign_in_with(&idp, port, "alice", Some(planted)).await;
        assert!(victim.status.is_redirection(), "{}", victim.status);
        let victims = victim.cookie.expect("a new session at sign-in");
        assert_ne!(victims, planted);
        assert!(
            home(port, Some(&victims))
                .await
                .contains("alice@example.test")
        );
        let seen_by_attacker = home(port, Some(planted)).await;
        assert!(
            seen_by_attacker.contains("Not signed in") && !seen_by_attacker.contains("alice"),
            "the planted id {planted} is signed in: {seen_by_attacker}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_is_a_post_with_the_sessions_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let idp = provider(dir.path(), &format!("http://127.0.0.1:{port}/callback"));
    let _app = start(&idp, port, &sqlite(&dir), &[]);
    let cookie = sign_in_with(&idp, port, "alice", None)
        .await
        .cookie
        .unwrap();
    let logout = format!("http://127.0.0.1:{port}/logout");

    // A cross-site link (GET) cannot sign anyone out.
    let get = http()
        .get(&logout)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
    // Nor can a cross-site form, which cannot know the token.
    for body in ["", "csrf=", "csrf=0000"] {
        let forged = http()
            .post(&logout)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN, "{body:?}");
    }
    let page = home(port, Some(&cookie)).await;
    assert!(page.contains("alice@example.test"), "still signed in");

    // The page's own form carries the token and signs out.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    let out = http()
        .post(&logout)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(out.status().is_redirection(), "{}", out.status());
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(home(port, Some(&cookie)).await.contains("Not signed in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_when_idle_and_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let idp = provider(dir.path(), &format!("http://127.0.0.1:{port}/callback"));
    let _app = start(
        &idp,
        port,
        &sqlite(&dir),
        &["--session-idle-secs", "5", "--max-sessions", "2"],
    );
    let alice = sign_in_with(&idp, port, "alice", None)
        .await
        .cookie
        .unwrap();
    let bob = sign_in_with(&idp, port, "bob", None).await.cookie.unwrap();
    assert!(home(port, Some(&alice)).await.contains("alice@"));
    // A third sign-in (alice in a second browser) at the cap of two ends the least recently
    // used session: bob's.
    let second = sign_in_with(&idp, port, "alice", None).await;
    assert!(second.status.is_redirection(), "{}", second.status);
    let second = second.cookie.unwrap();
    assert!(home(port, Some(&bob)).await.contains("Not signed in"));
    assert!(home(port, Some(&alice)).await.contains("alice@"));
    assert!(home(port, Some(&second)).await.contains("alice@"));
    // Idle for longer than five seconds: signed out.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert!(home(port, Some(&alice)).await.contains("Not signed in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_https_the_cookie_is_host_prefixed_and_secure() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Served behind a TLS-terminating proxy: the registered redirect URI is https.
    let redirect = format!("https://127.0.0.1:{port}/callback");
    let idp = provider(dir.path(), &redirect);
    let _app = start(&idp, port, &sqlite(&dir), &["--redirect-uri", &redirect]);
    let login = http()
        .get(format!("http://127.0.0.1:{port}/login"))
        .send()
        .await
        .unwrap();
    let header = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(header.starts_with("__Host-tcsid="), "{header}");
    assert!(header.contains("; Secure"), "{header}");
    assert!(
        header.contains("Path=/") && !header.contains("Domain"),
        "{header}"
    );
}
