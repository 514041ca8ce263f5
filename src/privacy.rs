//! Privacy webhooks. `customers/redact`: each listed order's resource state, the cart and
//! checkout behind it, their sessions and join links in KV, and their queued events are
//! deleted. `shop/redact`: everything the Worker keeps for the shop. `customers/data_request`:
//! acknowledged; the Worker keeps no customer data to report (hashes only, sessions expire).

use serde_json::{json, Value};
use tiktok_edge_core::keys;
use tiktok_edge_core::privacy::Held;
use tiktok_edge_core::queue::Forget;
use tiktok_edge_core::shopify::PrivacyRequest;
use worker::{Env, Result};

use crate::store::Store;
use crate::{queue, shop};

/// Does what `request` asks; what was deleted, as counts.
pub async fn handle(env: &Env, request: PrivacyRequest) -> Result<Value> {
    match request {
        PrivacyRequest::CustomersRedact { orders } => {
            let held = redact_orders(env, &orders).await?;
            Ok(json!({ "redacted_orders": orders.len(), "redacted_events": held.events.len() }))
        }
        PrivacyRequest::ShopRedact => redact_shop(env).await,
        PrivacyRequest::CustomersDataRequest => {
            Ok(json!({ "acknowledged": "no customer data is kept beyond hashed match keys" }))
        }
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
