//! The generated workload, identical to `bench/msal_python_bench.py` (the driver compares the
//! SHA-256 of both sides' serialized caches to prove it).

use base64::Engine;
use tokencache::TokenEvent;
use tokencache::json::{JsonObject, JsonValue};

pub const NOW: i64 = 1_700_000_000;
pub const CID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
pub const UTID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const ENV: &str = "login.microsoftonline.com";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn pad(prefix: &str, size: usize) -> String {
    const FILLER: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = prefix.to_owned();
    while s.len() < size {
        let need = size - s.len();
        s.push_str(&FILLER[..need.min(FILLER.len())]);
    }
    s
}

pub fn uid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

pub fn home_account_id(i: usize) -> String {
    format!("{}.{UTID}", uid(i))
}

fn text(s: &str) -> JsonValue {
    JsonValue::string(s)
}

fn num(n: i64) -> JsonValue {
    JsonValue::Number(n.to_string().into())
}

pub fn user_event(i: usize, at_size: usize, rt_size: usize) -> TokenEvent {
    let u = uid(i);
    let claims = format!(
        r#"{{"aud":"{CID}","iss":"https://login.microsoftonline.com/{UTID}/v2.0","iat":{NOW},"nbf":{NOW},"exp":{},"name":"User {i}","oid":"{u}","preferred_username":"user{i}@contoso.com","sub":"sub-{i}","tid":"{UTID}","ver":"2.0"}}"#,
        NOW + 3600
    );
    let id_token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&claims)
    );
    let expires = 3600 + (i % 600) as i64;
    let mut r = JsonObject::new();
    r.insert("token_type", text("Bearer"));
    r.insert("scope", text("User.Read email openid profile"));
    r.insert("expires_in", num(expires));
    r.insert("ext_expires_in", num(expires));
    r.insert("refresh_in", num(1800));
    r.insert(
        "access_token",
        text(&pad(&format!("eyJ0eXAiOiJKV1QifQ.AT-{i}-"), at_size)),
    );
    r.insert("refresh_token", text(&pad(&format!("0.AR-{i}-"), rt_size)));
    r.insert("id_token", text(&id_token));
    r.insert(
        "client_info",
        text(&b64(&format!(r#"{{"uid":"{u}","utid":"{UTID}"}}"#))),
    );
    r.insert("foci", text("1"));
    TokenEvent::new(CID, ["User.Read", "email", "openid", "profile"])
        .token_endpoint("https://login.microsoftonline.com/organizations/oauth2/v2.0/token")
        .environment(ENV)
        .grant_type("authorization_code")
        .response(r)
}

pub fn app_event(t: usize, r: usize) -> TokenEvent {
    let mut resp = JsonObject::new();
    resp.insert("token_type", text("Bearer"));
    resp.insert("expires_in", num(3599));
    resp.insert("ext_expires_in", num(3599));
    resp.insert("access_token", text(&pad(&format!("APP-{t}-{r}-"), 100)));
    TokenEvent::new("daemon-app", [format!("api://resource-{r}/.default")])
        .token_endpoint(format!(
            "https://login.microsoftonline.com/tenant-{t:04}/oauth2/v2.0/token"
        ))
        .environment(ENV)
        .grant_type("client_credentials")
        .response(resp)
}

pub fn events(n: usize, apps: usize, at_size: usize, rt_size: usize) -> Vec<TokenEvent> {
    let mut out: Vec<TokenEvent> = (0..n).map(|i| user_event(i, at_size, rt_size)).collect();
    for t in 0..apps / 10 {
        for r in 0..10 {
            out.push(app_event(t, r));
        }
    }
    out
}

pub fn sample(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|j| (j * 7919 + 13) % n).collect()
}
