//! Privacy webhooks. `customers/redact`: each listed order's resource state, the cart and
//! checkout behind it, their sessions and join links in KV, and their queued events are
//! deleted. `shop/redact`: everything the Worker keeps for the shop. `customers/data_request`:
//! acknowledged; the Worker keeps no customer data to report (hashes only, sessions expire).

use serde_json::{json, Value};
use tiktok_edge_core::privacy::{CustomersRedact, Held};
use tiktok_edge_core::queue::Forget;
use tiktok_edge_core::shopify::Topic;
use worker::{Env, Result};

use crate::store::Store;
use crate::{queue, webhooks};

/// `Ok(Err(reason))` for a payload that cannot be used (it is parked like any other).
pub async fn handle(
    env: &Env,
    topic: Topic,
    body: &[u8],
) -> Result<std::result::Result<Value, String>> {
    match topic {
        Topic::CustomersRedact => {
            let request = match CustomersRedact::parse(body) {
                Ok(request) => request,
                Err(reason) => return Ok(Err(reason)),
            };
            let orders = request.order_ids();
            let held = redact_orders(env, &orders).await?;
            Ok(Ok(
                json!({ "redacted_orders": orders.len(), "redacted_events": held.events.len() }),
            ))
        }
        Topic::ShopRedact => Ok(Ok(redact_shop(env).await?)),
        _ => Ok(Ok(
            json!({ "acknowledged": "no customer data is kept beyond hashed match keys" }),
        )),
    }
}

/// Forgets one `ShopState` and returns what it held elsewhere.
async fn redact_resource(env: &Env, resource: &str) -> Result<Held> {
    let mut resp = webhooks::shop_state(env, resource, "redact", String::new()).await?;
    resp.json().await
}

async fn redact_orders(env: &Env, orders: &[u64]) -> Result<Held> {
    let store = Store::new(env)?;
    let mut held = Held::default();
    for id in orders {
        let resource = format!("order:{id}");
        let order = redact_resource(env, &resource).await?;
        store.delete(&format!("resource:{resource}")).await?;
        // The cart and checkout the order came from hold the same shopper's journey.
        for related in order
            .carts
            .iter()
            .map(|t| format!("cart:{t}"))
            .chain(order.checkouts.iter().map(|t| format!("checkout:{t}")))
        {
            held.absorb(redact_resource(env, &related).await?);
            store.delete(&format!("resource:{related}")).await?;
        }
        held.absorb(order);
    }
    store.forget(&held).await?;
    queue::forget(
        env,
        &Forget {
            events: held.events.iter().cloned().collect(),
            ttps: held
                .sessions
                .iter()
                .filter(|sid| !sid.starts_with("declined-"))
                .cloned()
                .collect(),
            everything: false,
        },
    )
    .await?;
    Ok(held)
}

async fn redact_shop(env: &Env) -> Result<Value> {
    let store = Store::new(env)?;
    let resources = store.resources().await?;
    for resource in &resources {
        redact_resource(env, resource).await?;
    }
    let keys = store.keys("").await?;
    for key in &keys {
        store.delete(key).await?;
    }
    queue::forget(
        env,
        &Forget {
            everything: true,
            ..Forget::default()
        },
    )
    .await?;
    Ok(json!({ "redacted_resources": resources.len(), "deleted_keys": keys.len() }))
}
