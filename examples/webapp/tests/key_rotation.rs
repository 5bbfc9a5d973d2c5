//! The sample web app's store-key flags: partitions written under one key are read after a
//! restart with a new key only when the old one is given as the previous key, and the next
//! save moves them to the new key. Driven over HTTP (the provider's browse helper plays the
//! browser).

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

#[path = "../../../crates/tokencache-client/tests/common/mod.rs"]
mod idp;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the web app on `port` over `store` with the key flags given.
fn start(idp: &idp::Idp, port: u16, store: &str, keys: &[&str]) -> Killed {
    let mut webapp = Command::new(env!("CARGO_BIN_EXE_tokencache-webapp"))
        .args(["--authority", &idp.authority(), "--client-id", "web-app"])
        .args(["--client-secret", "web-secret", "--store", store])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--scopes", "openid profile"])
        .args(["--api-url", &format!("{}/me", idp.issuer)])
        .args(keys)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(webapp.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    Killed(webapp)
}

/// Signs `user` in through the app's own pages; returns the callback's status.
async fn sign_in(idp: &idp::Idp, port: u16, user: &str) -> reqwest::StatusCode {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = format!("http://127.0.0.1:{port}");
    let login = http.get(format!("{app}/login")).send().await.unwrap();
    assert!(login.status().is_redirection(), "{}", login.status());
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let auth_uri = login.headers()["location"].to_str().unwrap().to_owned();
    let params = idp.browse(&auth_uri, user).await;
    http.get(format!("{app}/callback"))
        .query(&params)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// The key id of every stored partition.
async fn key_ids(store: &str) -> Vec<Option<String>> {
    let backend = tokencache_store::open(store).await.unwrap();
    let mut ids = Vec::new();
    for key in backend.keys().await.unwrap() {
        let stored = backend.load(&key).await.unwrap().unwrap();
        ids.push(tokencache_store::encrypted_key_id(&stored.document));
    }
    ids
}

fn key_file(dir: &Path, name: &str, byte: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, byte.repeat(32)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_new_key_reads_old_partitions_only_with_the_previous_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let clients = format!(
        r#"[{{"client_id":"web-app","client_secret":"web-secret","token_endpoint_auth_method":"client_secret_post","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"redirect_uris":["http://127.0.0.1:{port}/callback"]}}]"#
    );
    let clients_file = dir.path().join("clients.json");
    std::fs::write(&clients_file, clients).unwrap();
    let idp = idp::Idp::start(&[("IDP_CLIENTS_FILE", clients_file.to_str().unwrap())]);
    let store = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let k1 = key_file(dir.path(), "k1.key", "11");
    let k2 = key_file(dir.path(), "k2.key", "22");

    // Under k1: alice signs in; her partition is encrypted under k1.
    let app = start(
        &idp,
        port,
        &store,
        &["--store-key-file", &k1, "--store-key-id", "k1"],
    );
    assert!(sign_in(&idp, port, "alice").await.is_redirection());
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k1".to_owned())]);

    // Restarted with k2 alone: alice's partition cannot be read, so her sign-in fails and the
    // partition is left as it was.
    let app = start(
        &idp,
        port,
        &store,
        &["--store-key-file", &k2, "--store-key-id", "k2"],
    );
    let refused = sign_in(&idp, port, "alice").await;
    assert!(
        !refused.is_redirection() && !refused.is_success(),
        "{refused}"
    );
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k1".to_owned())]);

    // With k1 as the previous key, the sign-in reads the partition and saves it under k2.
    let app = start(
        &idp,
        port,
        &store,
        &[
            "--store-key-file",
            &k2,
            "--store-key-id",
            "k2",
            "--previous-store-key-file",
            &k1,
            "--previous-store-key-id",
            "k1",
        ],
    );
    assert!(sign_in(&idp, port, "alice").await.is_redirection());
    drop(app);
    assert_eq!(key_ids(&store).await, [Some("k2".to_owned())]);
}
