//! Privacy webhooks. `customers/redact`: each listed order's resource state, the cart and
//! checkout behind it, their sessions and join links in KV, and their queued events are
//! deleted. `shop/redact`: everything the Worker keeps for the shop. `customers/data_request`:
//! acknowledged; the Worker keeps no customer data to report (hashes only, sessions expire).

use serde_json::{json, Value};
use tiktok_edge_core::keys;
use tiktok_edge_core::privacy::{CustomersRedact, Held};
use tiktok_edge_core::queue::Forget;
use tiktok_edge_core::shopify::Topic;
use tiktok_edge_core::Error;
use worker::{Env, Result};

use crate::failure::Outcome;
use crate::store::Store;
use crate::{queue, shop};

/// `Failure::Unusable` for a payload that cannot be used (it is parked like any other).
pub async fn handle(env: &Env, topic: Topic, body: &[u8]) -> Outcome<Value> {
    match topic {
        Topic::CustomersRedact => {
            let request = CustomersRedact::parse(body).map_err(Error::from)?;
            let orders = request.order_ids();
            let held = redact_orders(env, &orders).await?;
            Ok(json!({ "redacted_orders": orders.len(), "redacted_events": held.events.len() }))
        }
        Topic::ShopRedact => Ok(redact_shop(env).await?),
        _ => Ok(json!({ "acknowledged": "no customer data is kept beyond hashed match keys" })),
    }
}

async fn redact_orders(env: &Env, orders: &[u64]) -> Result<Held> {
    let store = Store::new(env)?;
    let mut held = Held::default();
    for id in orders {
        let resource = keys::order(*id);
        let order = shop::redact(env, &resource).await?;
        store.delete(&keys::resource(&resource)).await?;
        // The cart and checkout the order came from hold the same shopper's journey.
        for related in order
            .carts
            .iter()
            .map(|t| keys::cart(t))
            .chain(order.checkouts.iter().map(|t| keys::checkout(t)))
        {
            held.absorb(shop::redact(env, &related).await?);
            store.delete(&keys::resource(&related)).await?;
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
                .filter(|sid| !keys::is_declined(sid))
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
        shop::redact(env, resource).await?;
    }
    let stored = store.keys("").await?;
    for key in &stored {
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
    Ok(json!({ "redacted_resources": resources.len(), "deleted_keys": stored.len() }))
}
