//! Client side of the `ShopState` Durable Objects (one per cart, checkout and order), as
//! `queue.rs` is of the `EventQueue`. The protocol is `tiktok_edge_core::shopify::state`.

use tiktok_edge_core::privacy::Held;
use tiktok_edge_core::shopify::state::{Answer, Call, Delivery, WebhookResult};
use worker::{Env, Result};

use crate::failure::{Failure, Outcome};
use crate::outbound;

pub const BINDING: &str = "SHOP_STATE";

/// The answer of the `ShopState` named `resource` to `call` (with `body` after it).
async fn ask(env: &Env, resource: &str, call: &Call, body: &str) -> Result<Answer> {
    // The call travels in the body: the path means nothing to the object.
    let request = Some(call.encode(body));
    let mut resp = outbound::object(env, BINDING, resource, "", request).await?;
    let status = resp.status_code();
    if status != 200 {
        return Err(unexpected(resource, &format!("status {status}")));
    }
    Ok(serde_json::from_str(&resp.text().await?)?)
}

fn unexpected(resource: &str, what: &str) -> worker::Error {
    worker::Error::RustError(format!("resource state {resource} answered {what}"))
}

/// Hands a verified webhook (`body` as Shopify signed it) to its resource's object: what
/// became of it, or [`Failure::Unusable`] when its payload cannot be used.
pub async fn webhook(env: &Env, delivery: Delivery, body: &str) -> Outcome<WebhookResult> {
    let resource = delivery.resource.clone();
    match ask(env, &resource, &Call::Webhook(delivery), body).await? {
        Answer::Done(result) => Ok(result),
        Answer::Unusable(reason) => Err(Failure::Unusable(reason.into())),
        Answer::Redacted(_) => Err(unexpected(&resource, "a redaction to a webhook").into()),
    }
}

/// Forgets one resource's state and returns what it held elsewhere.
pub async fn redact(env: &Env, resource: &str) -> Result<Held> {
    match ask(env, resource, &Call::Redact, "").await? {
        Answer::Redacted(held) => Ok(held),
        _ => Err(unexpected(resource, "a webhook's answer to a redaction")),
    }
}
