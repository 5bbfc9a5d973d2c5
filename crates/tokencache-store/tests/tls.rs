//! TLS to the stores: PostgreSQL honours `sslmode` (with `sslrootcert`), Redis speaks TLS for
//! `rediss://` (with `tls_ca`), and a server whose certificate does not verify is refused.
//! Against a local PostgreSQL and Redis serving TLS with a throwaway CA (`.ci/setup-services`).
#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod common;

use common::{Postgres, TlsRedis, test_tls_dir};
use tokencache_store::PartitionBackend;

async fn round_trip(store: &dyn PartitionBackend) {
    store.save("alice.t", b"{}", None, None).await.unwrap();
    assert_eq!(
        store.load("alice.t").await.unwrap().unwrap().document,
        b"{}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_uses_tls_when_sslmode_asks_and_verifies_the_server() {
    let db = Postgres::create();
    let ca = test_tls_dir().join("ca.pem");
    let ca = ca.to_str().unwrap();
    // Whether the connections of `application` are encrypted, as the server sees them.
    let encrypted = |application: &str| {
        db.sql(&format!(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{application}'"
        ))
    };

    let url = format!(
        "{}?application_name=tc_tls&sslmode=require&sslrootcert={ca}",
        db.url
    );
    let store = tokencache_store::open(&url).await.unwrap();
    round_trip(store.as_ref()).await;
    assert_eq!(encrypted("tc_tls"), "t", "every connection is TLS");

    // verify-full is accepted (the host name is verified in every mode).
    let url = format!(
        "{}?application_name=tc_full&sslmode=verify-full&sslrootcert={ca}",
        db.url
    );
    let full = tokencache_store::open(&url).await.unwrap();
    round_trip(full.as_ref()).await;
    assert_eq!(encrypted("tc_full"), "t");

    // Without sslmode the connection is plain, as before.
    let url = format!("{}?application_name=tc_plain", db.url);
    let plain = tokencache_store::open(&url).await.unwrap();
    round_trip(plain.as_ref()).await;
    assert_eq!(encrypted("tc_plain"), "f");
    drop((store, full, plain));

    // A server certificate the system does not trust is refused, never accepted blindly.
    let url = format!("{}?sslmode=require", db.url);
    let e = tokencache_store::open(&url).await.unwrap_err();
    assert!(
        matches!(e, tokencache_store::StoreError::Unavailable { .. }),
        "{e}"
    );
    let e = tokencache_store::open(&format!("{}?sslmode=bogus", db.url))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sslmode"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_speaks_tls_for_rediss_and_verifies_the_server() {
    let redis = TlsRedis::start();
    let ca = test_tls_dir().join("ca.pem");
    let url = format!("rediss://127.0.0.1:{}/?tls_ca={}", redis.port, ca.display());
    round_trip(tokencache_store::open(&url).await.unwrap().as_ref()).await;
    // `localhost` is in the certificate too.
    let url = format!("rediss://localhost:{}/?tls_ca={}", redis.port, ca.display());
    round_trip(tokencache_store::open(&url).await.unwrap().as_ref()).await;

    // The system's roots do not know the test CA: refused.
    let untrusted = format!("rediss://127.0.0.1:{}/", redis.port);
    assert!(tokencache_store::open(&untrusted).await.is_err());
    // A CA for plain redis:// is a mistake worth naming.
    let e = tokencache_store::open(&format!(
        "redis://127.0.0.1:{}/?tls_ca={}",
        redis.port,
        ca.display()
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("rediss://"), "{e}");
}
