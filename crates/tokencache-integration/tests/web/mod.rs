//! A confidential web app over a partitioned store, signing users in against the loopback
//! provider: shared by the tests that put a client in front of a store.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::sync::Arc;

use tokencache::json::JsonValue;
use tokencache::{PartitionKey, Section, TokenCache};
use tokencache_client::http::HttpClient;
use tokencache_client::{
    AccountInfo, AuthCodeOptions, ClientCredential, ConfidentialClientApplication,
};
use tokencache_store::PartitionedCache;

use crate::idp::Idp;

/// The scope the web app asks for.
pub const API: &str = "api://test-api/read";
/// The web app's redirect URI, as the provider registers it.
pub const REDIRECT: &str = "http://127.0.0.1:8400/callback";

/// The provider's confidential client over `cache`, with `http` when given.
pub fn web_app(
    idp: &Idp,
    cache: Arc<PartitionedCache>,
    http: Option<Arc<dyn HttpClient>>,
) -> ConfidentialClientApplication {
    let mut builder = ConfidentialClientApplication::builder("confidential-app")
        .authority(&idp.authority())
        .expect("authority")
        .credential(ClientCredential::secret("confidential-secret"))
        .cache_accessor(cache);
    if let Some(http) = http {
        builder = builder.http_client(http);
    }
    builder.build().expect("web app")
}

/// Signs `user` in with the auth code flow (the provider's browse helper plays the browser).
pub async fn sign_in(idp: &Idp, app: &ConfidentialClientApplication, user: &str) -> AccountInfo {
    let flow = app
        .start_auth_code_flow(&[API], REDIRECT, &AuthCodeOptions::default())
        .await
        .expect("start the flow");
    let params = idp.browse(&flow.auth_uri, user).await;
    app.finish_auth_code_flow(&flow, &params)
        .await
        .expect("finish the flow")
        .account
        .expect("a user account")
}

/// Makes the user's cached access tokens expired (as time passing would).
pub async fn expire_access_tokens(cache: &PartitionedCache, key: &PartitionKey) {
    cache
        .update_partition(key, &|c: &TokenCache| {
            for at in c.all_access_tokens() {
                let mut e = at.entry().clone();
                e.set("expires_on", JsonValue::string("1000"));
                c.put_entry_at(Section::AccessToken, at.key(), e)?;
            }
            Ok(())
        })
        .await
        .expect("expire the access tokens");
}
