//! Carts: `carts/create|update` → AddToCart for each line whose quantity grew.

use super::{content, event, event_time, line_price, properties, session_user};
use crate::keys;
use crate::session::Session;
use crate::shopify::models::Cart;
use crate::tiktok::Event;
use crate::vec_map::VecMap;
use serde::{Deserialize, Serialize};

/// A cart token as a join key: the part before `?key=` (the secret is never stored).
pub fn cart_key(token: &str) -> &str {
    token.split('?').next().unwrap_or("").trim()
}

/// Quantities per variant last seen for one cart, and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CartState {
    pub quantities: VecMap<u64, u64>,
    pub updated_at: Option<String>,
}

/// `carts/create`/`carts/update` → one AddToCart per variant whose quantity went up since the
/// last state, valued Σ price × added quantity. A payload older than the state (webhooks
/// arrive out of order) changes nothing.
pub fn cart_added(
    cart: &Cart,
    state: &CartState,
    session: &Session,
    now: i64,
) -> (Vec<Event>, CartState) {
    let Some(token) = cart
        .token
        .as_deref()
        .map(cart_key)
        .filter(|t| !t.is_empty())
    else {
        return (Vec::new(), state.clone());
    };
    if let (Some(new), Some(old)) = (&cart.updated_at, &state.updated_at) {
        if new < old {
            return (Vec::new(), state.clone());
        }
    }
    let mut quantities = VecMap::new();
    for line in &cart.line_items {
        if let Some(variant) = line.variant_id.or(line.product_id) {
            let total: &mut u64 = quantities.entry_or_default(variant);
            *total = total.saturating_add(line.quantity.unwrap_or(0));
        }
    }
    // Carts carry no currency of their own; their lines' `*_set` money does.
    let currency = cart
        .line_items
        .iter()
        .find_map(|l| line_price(l, None)?.currency);
    let time = event_time(&[cart.updated_at.as_deref()], now);
    let events = quantities
        .iter()
        .filter_map(|(&variant, &qty)| {
            let before = state.quantities.get(&variant).copied().unwrap_or(0);
            if qty <= before {
                return None;
            }
            let line = cart
                .line_items
                .iter()
                .find(|l| l.variant_id.or(l.product_id) == Some(variant))?;
            let item = content(line, qty - before, currency.as_deref(), None)?;
            Some(event(
                "AddToCart",
                keys::add_to_cart_event(token, variant, qty),
                time,
                session_user(session),
                properties(vec![item], currency.clone(), None, session),
                session,
            ))
        })
        .collect();
    let next = CartState {
        quantities,
        updated_at: cart.updated_at.clone().or_else(|| state.updated_at.clone()),
    };
    (events, next)
}
