//! The device authorization grant (RFC 8628): a code the user enters on another device while the
//! application polls.

use std::fmt;
use std::time::Duration;

use tokencache::Secret;

use crate::app::{Core, Recorded};
use crate::error::{ClientError, Result};
use crate::oauth::{FormPost, decorate_scopes, int_member, lifetime_member};
use crate::result::AuthenticationResult;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A started device code sign-in: show [`DeviceCodeFlow::message`] to the user, then pass the
/// flow to `acquire_token_by_device_flow`. `Debug` hides the device code.
#[derive(Clone)]
pub struct DeviceCodeFlow {
    /// The code the user enters.
    pub user_code: String,
    /// Where the user enters it.
    pub verification_uri: String,
    /// The same page with the code filled in, when the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// The provider's instructions for the user (or an equivalent English sentence).
    pub message: String,
    /// When the code expires, Unix seconds.
    pub expires_at: i64,
    /// Seconds between polls (raised by `slow_down`).
    pub interval: u64,
    pub(crate) device_code: Secret,
    pub(crate) scopes: Vec<String>,
}

impl fmt::Debug for DeviceCodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeFlow")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

pub(crate) async fn initiate(core: &Core, scopes: &[String]) -> Result<DeviceCodeFlow> {
    let meta = core.metadata().await?;
    let endpoint = meta.device_authorization_endpoint.clone().ok_or_else(|| {
        ClientError::Configuration(format!(
            "{} has no device authorization endpoint",
            core.authority.url()
        ))
    })?;
    let scopes = decorate_scopes(scopes);
    let response = FormPost::new(&endpoint)
        .field("client_id", &core.client_id)
        .field("scope", scopes.join(" "))
        .send(&core.http)
        .await?;
    let invalid = |what: &str| ClientError::InvalidResponse {
        url: endpoint.clone(),
        reason: format!("device authorization response without {what}"),
    };
    let text = |k: &str| response.get_str(k).map(str::to_owned);
    let device_code = text("device_code").ok_or_else(|| invalid("device_code"))?;
    let user_code = text("user_code").ok_or_else(|| invalid("user_code"))?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| invalid("verification_uri"))?;
    let expires_in = lifetime_member(&response, "expires_in").unwrap_or(900);
    let message = text("message").unwrap_or_else(|| {
        format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        )
    });
    Ok(DeviceCodeFlow {
        verification_uri_complete: text("verification_uri_complete"),
        interval: int_member(&response, "interval")
            .and_then(|i| u64::try_from(i).ok())
            .filter(|i| *i > 0)
            .map_or(5, |i| i.min(MAX_INTERVAL_SECS)),
        expires_at: tokencache::expiry_after(core.now(), expires_in),
        message,
        user_code,
        verification_uri,
        device_code: Secret::new(device_code),
        scopes,
    })
}

/// The longest wait between polls, whatever the provider asks for (its `interval`, raised by
/// 5 s at each `slow_down`): a number from the network bounds nothing else.
const MAX_INTERVAL_SECS: u64 = 60;

/// Polls until the user finishes, declines, or the code expires. Dropping the future cancels.
pub(crate) async fn poll(core: &Core, flow: &DeviceCodeFlow) -> Result<AuthenticationResult> {
    let meta = core.metadata().await?;
    let mut interval = flow.interval;
    loop {
        let now = core.now();
        if now >= flow.expires_at {
            return Err(ClientError::DeviceCodeExpired);
        }
        let wait = interval.min(u64::try_from(flow.expires_at - now).unwrap_or(0).max(1));
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let post = core
            .token_post(&meta, GRANT)?
            .field("device_code", flow.device_code.expose());
        let data = post.event_data();
        match post.send(&core.http).await {
            Ok(response) => {
                return core
                    .record(
                        &meta,
                        response,
                        Recorded {
                            grant_type: GRANT,
                            requested: flow.scopes.clone(),
                            data,
                            refreshed: None,
                            partition: None,
                        },
                    )
                    .await;
            }
            Err(ClientError::OAuth(e)) => match e.error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval = interval.saturating_add(5).min(MAX_INTERVAL_SECS),
                "expired_token" | "code_expired" => return Err(ClientError::DeviceCodeExpired),
                "access_denied" | "authorization_declined" => {
                    return Err(ClientError::SignInFailed {
                        error: e.error.clone(),
                        description: e.description.clone(),
                    });
                }
                _ => return Err(ClientError::OAuth(e)),
            },
            Err(e) => return Err(e),
        }
    }
}
