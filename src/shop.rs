//! Client side of the `ShopState` Durable Objects (one per cart, checkout and order), as
//! `queue.rs` is of the `EventQueue`.

use tiktok_edge_core::privacy::Held;
use worker::{Env, Response, Result};

use crate::failure::{Failure, Outcome};
use crate::outbound;
use crate::shop_do::{WebhookAnswer, WebhookCall, WebhookResult};

pub const BINDING: &str = "SHOP_STATE";

/// POSTs `body` to operation `op` of the `ShopState` named `resource`.
async fn ask(env: &Env, resource: &str, op: &str, body: String) -> Result<Response> {
    outbound::object(env, BINDING, resource, op, Some(body)).await
}

/// Hands a verified webhook to its resource's object: what became of it, or
/// [`Failure::Unusable`] when its payload cannot be used.
pub async fn webhook(env: &Env, call: &WebhookCall) -> Outcome<WebhookResult> {
    let mut resp = ask(env, &call.resource, "webhook", serde_json::to_string(call)?).await?;
    let status = resp.status_code();
    if status != 200 {
        return Err(Failure::Runtime(worker::Error::RustError(format!(
            "resource state {} answered {status}",
            call.resource
        ))));
    }
    match serde_json::from_str(&resp.text().await?)? {
        WebhookAnswer::Done(result) => Ok(result),
        WebhookAnswer::Unusable(reason) => Err(Failure::Unusable(reason)),
    }
}

/// Forgets one resource's state and returns what it held elsewhere.
pub async fn redact(env: &Env, resource: &str) -> Result<Held> {
    let mut resp = ask(env, resource, "redact", String::new()).await?;
    resp.json().await
}
