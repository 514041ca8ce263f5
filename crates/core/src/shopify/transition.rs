//! One Shopify resource's webhook state machine, as a pure function: a verified webhook, the
//! browsing session the shell joined to it, and the resource's memory go in; the events to
//! queue, the new memory, what was skipped and why, and what the resource now holds elsewhere
//! come out. The `ShopState` Durable Object only loads, calls [`apply`] and stores.

use super::mapping::{
    self, attribute, attributes, merge_sessions, session_from_attributes, CartState, MappingConfig,
    OrderState, Session,
};
use super::{Payload, Topic};
use crate::config::{Config, ConsentDefault};
use crate::consent::tracking_allowed;
use crate::privacy::Held;
use crate::tiktok::Event;
use serde::{Deserialize, Serialize};

/// What one resource remembers between its webhooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Quantities last seen (carts), for AddToCart diffs.
    pub cart: CartState,
    /// Lines, currency and buyer (orders), for upsells.
    pub order: OrderState,
}

/// The settings the transition reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mapping: MappingConfig,
    pub consent_default: ConsentDefault,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            mapping: MappingConfig {
                purchase_event_name: config.purchase_event_name.clone(),
                send_test_orders: config.send_test_orders,
                default_country: config.default_country.clone(),
            },
            consent_default: config.consent_default,
        }
    }
}

/// Where the shell looks for the resource's browsing session, in this order: the session id
/// the pixel wrote into the cart attributes, else the session linked to the cart token, else
/// the one linked to the checkout token (KV links written by the edge and collect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinKeys {
    pub session_id: Option<String>,
    pub cart_token: Option<String>,
    pub checkout_token: Option<String>,
}

impl JoinKeys {
    pub fn of(payload: &Payload) -> JoinKeys {
        let (attrs, cart, checkout) = match payload {
            Payload::Cart(cart) => (&cart.note_attributes[..], cart.token.as_deref(), None),
            Payload::Checkout(c) => (
                &c.note_attributes[..],
                c.cart_token.as_deref(),
                c.token.as_deref(),
            ),
            Payload::Order(o) => (
                &o.note_attributes[..],
                o.cart_token.as_deref(),
                o.checkout_token.as_deref(),
            ),
            Payload::OrderEdited(_) | Payload::None => return JoinKeys::default(),
        };
        let token = |t: Option<&str>| {
            t.map(|t| mapping::cart_key(t).to_string())
                .filter(|t| !t.is_empty())
        };
        JoinKeys {
            session_id: attribute(attrs, attributes::SESSION).map(String::from),
            cart_token: token(cart),
            checkout_token: token(checkout),
        }
    }
}

/// What the shell found: the session id (from the attributes or a KV link) and its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Joined {
    pub session_id: Option<String>,
    pub session: Option<Session>,
}

/// The result of one webhook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    pub events: Vec<Event>,
    /// Why nothing (or less) was sent, for the webhook's answer and the log.
    pub skipped: Option<String>,
    /// A checkout token to link to the session in KV, so later checkout webhooks join too.
    pub link_checkout: Option<(String, String)>,
    /// What this resource now holds elsewhere (for privacy webhooks).
    pub held: Held,
}

/// Applies one verified webhook to its resource.
pub fn apply(
    topic: Topic,
    payload: &Payload,
    joined: Joined,
    memory: &mut Memory,
    settings: &Settings,
    now: i64,
) -> Transition {
    let keys = JoinKeys::of(payload);
    let mut out = Transition::default();
    out.held.note(
        joined.session_id.clone(),
        keys.cart_token.as_deref(),
        keys.checkout_token.as_deref(),
    );
    let config = &settings.mapping;
    let (events, session) = match payload {
        Payload::Cart(cart) => {
            let session = merge_sessions(
                joined.session,
                session_from_attributes(&cart.note_attributes),
            );
            let (events, next) = mapping::cart_added(cart, &memory.cart, &session, now);
            memory.cart = next;
            (events, session)
        }
        Payload::Checkout(checkout) => {
            let session = merge_sessions(
                joined.session,
                session_from_attributes(&checkout.note_attributes),
            );
            if let (Some(sid), Some(token)) = (&joined.session_id, &keys.checkout_token) {
                out.link_checkout = Some((token.clone(), sid.clone()));
            }
            let created = topic == Topic::CheckoutsCreate;
            let events = mapping::checkout_events(checkout, created, &session, config, now);
            (events, session)
        }
        Payload::Order(order) => {
            let session = merge_sessions(
                Some(merge_sessions(
                    joined.session,
                    session_from_attributes(&order.note_attributes),
                )),
                mapping::session_from_order(order),
            );
            memory.order.absorb(order, session.clone(), config);
            let mut events = Vec::new();
            if topic == Topic::OrdersCreate {
                match mapping::purchase(order, &session, config, now) {
                    Ok(event) => events.push(event),
                    Err(reason) => out.skipped = Some(reason.to_string()),
                }
            }
            if mapping::skip_reason(order, config).is_none() {
                let order_id = order.id.unwrap_or_default();
                events.extend(memory.order.resolve_upsells(order_id, config, now));
            }
            (events, session)
        }
        Payload::OrderEdited(edited) => {
            memory.order.add_edit(&edited.order_edit);
            let order_id = edited.order_edit.order_id.unwrap_or_default();
            let events = memory.order.resolve_upsells(order_id, config, now);
            (events, memory.order.session.clone())
        }
        Payload::None => (Vec::new(), Session::default()),
    };
    if tracking_allowed(session.marketing_allowed, settings.consent_default) {
        out.events = events;
    } else {
        out.skipped = Some("the visitor declined marketing".to_string());
    }
    out.held.events.extend(
        out.events
            .iter()
            .map(|e| (e.event.clone(), e.event_id.clone())),
    );
    out
}
