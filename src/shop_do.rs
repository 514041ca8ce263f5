//! `ShopState`: one Durable Object per Shopify resource (`cart:<token>`, `checkout:<token>`,
//! `order:<id>`). It serialises that resource's webhooks, drops deliveries it has seen (by
//! `X-Shopify-Webhook-Id`), keeps the little state the mapping needs (cart quantities, order
//! lines for upsells), joins the browsing session from KV and queues the resulting events.
//! The mapping itself is `tiktok_edge_core::shopify::mapping`.

use serde::{Deserialize, Serialize};
use tiktok_edge_core::consent::tracking_allowed;
use tiktok_edge_core::privacy::Held;
use tiktok_edge_core::shopify::mapping::{
    self, attribute, attributes, cart_key, merge_sessions, session_from_attributes, CartState,
    MappingConfig, OrderState, Session,
};
use tiktok_edge_core::shopify::models::NoteAttribute;
use tiktok_edge_core::shopify::{Payload, Topic};
use tiktok_edge_core::tiktok::Event;
use worker::{durable_object, Date, DurableObject, Env, Method, Request, Response, Result, State};

use crate::store::{Link, Store};
use crate::{queue, settings};

/// Resource state is forgotten after this long (webhook retries end after 4 h; upsells come
/// minutes after the order).
const STATE_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
const CART: &str = "cart";
const ORDER: &str = "order";
/// What this resource led the Worker to keep elsewhere (KV, queue), for privacy webhooks.
const HELD: &str = "held";

#[durable_object(alarm)]
pub struct ShopState {
    state: State,
    env: Env,
}

/// The Worker's call: a verified webhook for this resource.
#[derive(Serialize, Deserialize)]
pub struct WebhookCall {
    /// This object's name (`order:<id>`, …), registered so `shop/redact` can find it.
    pub resource: String,
    pub topic: String,
    pub webhook_id: String,
    pub body: String,
}

/// What became of it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WebhookResult {
    pub duplicate: bool,
    pub queued: u32,
    pub skipped: Option<String>,
}

impl DurableObject for ShopState {
    fn new(state: State, env: Env) -> Self {
        ShopState { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/webhook") => {
                let call: WebhookCall = req.json().await?;
                match self.handle(call).await? {
                    Ok(result) => Response::from_json(&result),
                    Err(unusable) => Response::error(unusable, 422),
                }
            }
            (Method::Post, "/redact") => Response::from_json(&self.redact().await?),
            _ => Response::error("no such operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}

fn now_secs() -> i64 {
    (Date::now().as_millis() / 1000) as i64
}

impl ShopState {
    /// Adds to what this resource holds elsewhere; the first time, registers the resource so
    /// `shop/redact` can find it.
    async fn hold(&self, store: &Store, resource: &str, held: Held) -> Result<()> {
        let mut all: Held = self.load(HELD).await?;
        let first = all.is_empty();
        if held.is_empty() && !first {
            return Ok(());
        }
        all.absorb(held);
        self.save(HELD, &all).await?;
        if first {
            store.register_resource(resource).await?;
        }
        Ok(())
    }

    /// Forgets this resource: returns what it held elsewhere (for the caller to delete) and
    /// deletes its own state.
    async fn redact(&self) -> Result<Held> {
        let held: Held = self.load(HELD).await?;
        let storage = self.state.storage();
        storage.delete_all().await?;
        storage.delete_alarm().await?;
        Ok(held)
    }

    /// State is kept as JSON text: the storage API's JS values would round ids above 2^53.
    async fn load<T: serde::de::DeserializeOwned + Default>(&self, key: &str) -> Result<T> {
        match self.state.storage().get::<String>(key).await? {
            Some(text) => Ok(serde_json::from_str(&text)?),
            None => Ok(T::default()),
        }
    }

    async fn save<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.state
            .storage()
            .put(key, serde_json::to_string(value)?)
            .await
    }

    /// `Ok(Err(reason))` when the payload is valid JSON for the key but not usable.
    async fn handle(
        &self,
        call: WebhookCall,
    ) -> Result<std::result::Result<WebhookResult, String>> {
        let storage = self.state.storage();
        let seen_key = format!("webhook:{}", call.webhook_id);
        if !call.webhook_id.is_empty() && storage.get::<bool>(&seen_key).await?.is_some() {
            return Ok(Ok(WebhookResult {
                duplicate: true,
                ..WebhookResult::default()
            }));
        }
        let config =
            settings::config(&self.env).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let mapping_config = MappingConfig::from(&config);
        let store = Store::new(&self.env)?;
        let now = now_secs();
        let mut skipped = None;
        let topic = Topic::parse(&call.topic);
        let payload = match Payload::parse(topic, &call.body) {
            Ok(payload) => payload,
            Err(unusable) => return Ok(Err(unusable)),
        };

        let mut held = Held::default();
        let (events, session): (Vec<Event>, Session) = match payload {
            Payload::Cart(cart) => {
                let (_, session) = join(
                    &store,
                    &mut held,
                    &cart.note_attributes,
                    cart.token.as_deref(),
                    None,
                )
                .await?;
                let previous: CartState = self.load(CART).await?;
                let (events, next) = mapping::cart_added(&cart, &previous, &session, now);
                self.save(CART, &next).await?;
                (events, session)
            }
            Payload::Checkout(checkout) => {
                let (sid, session) = join(
                    &store,
                    &mut held,
                    &checkout.note_attributes,
                    checkout.cart_token.as_deref(),
                    checkout.token.as_deref(),
                )
                .await?;
                if let (Some(sid), Some(token)) = (&sid, &checkout.token) {
                    store.link(Link::Checkout, token, sid).await?;
                }
                let created = topic == Topic::CheckoutsCreate;
                (
                    mapping::checkout_events(&checkout, created, &session, &mapping_config, now),
                    session,
                )
            }
            Payload::Order(order) => {
                let (_, joined) = join(
                    &store,
                    &mut held,
                    &order.note_attributes,
                    order.cart_token.as_deref(),
                    order.checkout_token.as_deref(),
                )
                .await?;
                let session = merge_sessions(Some(joined), mapping::session_from_order(&order));
                let mut state: OrderState = self.load(ORDER).await?;
                state.absorb(&order, session.clone(), &mapping_config);
                let mut events = Vec::new();
                if topic == Topic::OrdersCreate {
                    match mapping::purchase(&order, &session, &mapping_config, now) {
                        Ok(event) => events.push(event),
                        Err(reason) => skipped = Some(reason.to_string()),
                    }
                }
                if mapping::skip_reason(&order, &mapping_config).is_none() {
                    events.extend(state.resolve_upsells(
                        order.id.unwrap_or_default(),
                        &mapping_config,
                        now,
                    ));
                }
                self.save(ORDER, &state).await?;
                (events, session)
            }
            Payload::OrderEdited(edited) => {
                let mut state: OrderState = self.load(ORDER).await?;
                state.add_edit(&edited.order_edit);
                let order_id = edited.order_edit.order_id.unwrap_or_default();
                let events = state.resolve_upsells(order_id, &mapping_config, now);
                self.save(ORDER, &state).await?;
                let session = state.session.clone();
                (events, session)
            }
            Payload::None => (Vec::new(), Session::default()),
        };

        let events = if tracking_allowed(session.marketing_allowed, config.consent_default) {
            events
        } else {
            skipped = Some("the visitor declined marketing".to_string());
            Vec::new()
        };
        held.events
            .extend(events.iter().map(|e| (e.event.clone(), e.event_id.clone())));
        let queued = if events.is_empty() {
            0
        } else {
            queue::enqueue(&self.env, events).await?.accepted
        };
        self.hold(&store, &call.resource, held).await?;
        // Marked only after the events are safely queued: a failure above lets Shopify retry.
        if !call.webhook_id.is_empty() {
            storage.put(&seen_key, true).await?;
        }
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(STATE_TTL_MS).await?;
        }
        Ok(Ok(WebhookResult {
            duplicate: false,
            queued,
            skipped,
        }))
    }
}

/// The browsing session behind a resource: the session id written into cart attributes, else
/// the one linked to its cart or checkout token; what the attributes carry fills the gaps.
/// Returns the session id when known, and records the session and tokens in `held`.
async fn join(
    store: &Store,
    held: &mut Held,
    attrs: &[NoteAttribute],
    cart_token: Option<&str>,
    checkout_token: Option<&str>,
) -> Result<(Option<String>, Session)> {
    let mut sid = attribute(attrs, attributes::SESSION).map(String::from);
    if sid.is_none() {
        if let Some(cart) = cart_token.map(cart_key).filter(|t| !t.is_empty()) {
            sid = store.linked(Link::Cart, cart).await?;
        }
    }
    if sid.is_none() {
        if let Some(checkout) = checkout_token.filter(|t| !t.is_empty()) {
            sid = store.linked(Link::Checkout, checkout).await?;
        }
    }
    let stored = match &sid {
        Some(sid) => store.session(sid).await?,
        None => None,
    };
    held.note(sid.clone(), cart_token, checkout_token);
    Ok((sid, merge_sessions(stored, session_from_attributes(attrs))))
}
