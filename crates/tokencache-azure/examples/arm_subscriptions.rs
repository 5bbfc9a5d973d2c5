//! Lists your Azure subscriptions through Azure Resource Manager, with the Azure CLI's
//! sign-in read from its cache (no `az` process). Run `az login` first; then:
//!
//! ```text
//! cargo run -p tokencache-azure --example arm_subscriptions
//! ```
//!
//! Not run in CI (no Azure there).

use azure_core::credentials::TokenCredential;
use tokencache::json::{JsonObject, JsonValue};
use tokencache_azure::AzureCliCredential;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let credential = AzureCliCredential::new()?;
    let token = credential
        .get_token(&["https://management.azure.com/.default"], None)
        .await?;
    let body = reqwest::Client::new()
        .get("https://management.azure.com/subscriptions?api-version=2022-12-01")
        .bearer_auth(token.token.secret())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let listing = JsonObject::parse(&body)?;
    if let Some(JsonValue::Array(subscriptions)) = listing.get("value") {
        for s in subscriptions.iter() {
            if let JsonValue::Object(s) = s {
                println!(
                    "{}  {}",
                    s.get_str("subscriptionId").unwrap_or("?"),
                    s.get_str("displayName").unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
