//! `ShopState`: one Durable Object per Shopify resource (`cart:<token>`, `checkout:<token>`,
//! `order:<id>`). It serialises that resource's webhooks, drops deliveries it has seen (by
//! `X-Shopify-Webhook-Id`), looks up the browsing session in KV, stores the resource's memory
//! and queues the resulting events. What a webhook does is decided by the pure
//! `tiktok_edge_core::shopify::transition::apply`.

use serde::Serialize;
use tiktok_edge_core::keys;
use tiktok_edge_core::privacy::Held;
use tiktok_edge_core::queue::Source;
use tiktok_edge_core::shopify::checkout_url::JoinToken;
use tiktok_edge_core::shopify::state::{Answer, Call, Delivery, WebhookResult};
use tiktok_edge_core::shopify::transition::{self, JoinKeys, Joined, Memory, Settings};
use tiktok_edge_core::shopify::{Payload, Topic};
use worker::{durable_object, Date, DurableObject, Env, Method, Request, Response, Result, State};

use crate::store::Store;
use crate::{queue, respond, settings};

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

impl DurableObject for ShopState {
    fn new(state: State, env: Env) -> Self {
        ShopState { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() != Method::Post {
            return Response::error("ShopState takes POSTed calls only", 405);
        }
        let request = req.text().await?;
        let Ok((call, body)) = Call::decode(&request) else {
            return Response::error("not a ShopState call (shopify::state::Call)", 400);
        };
        let answer = match call {
            Call::Webhook(delivery) => self.handle(delivery, body).await?,
            Call::Redact => Answer::Redacted(self.redact().await?),
        };
        respond::json(200, &answer)
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
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

    /// `Unusable` when the payload is valid JSON for the key but not usable.
    async fn handle(&self, call: Delivery, body: &str) -> Result<Answer> {
        let storage = self.state.storage();
        let seen_key = keys::webhook_seen(&call.webhook_id);
        if !call.webhook_id.is_empty() && storage.get::<bool>(&seen_key).await?.is_some() {
            return Ok(Answer::Done(WebhookResult {
                duplicate: true,
                ..WebhookResult::default()
            }));
        }
        let topic = Topic::parse(&call.topic);
        let payload = match Payload::parse(topic, body) {
            Ok(payload) => payload,
            Err(unusable) => return Ok(Answer::Unusable(unusable)),
        };
        let config =
            settings::config(&self.env).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let store = Store::new(&self.env)?;
        let joined = join(&store, JoinKeys::of(&payload)).await?;
        let before = Memory {
            cart: self.load(CART).await?,
            order: self.load(ORDER).await?,
        };
        let mut memory = before.clone();
        let now = (Date::now().as_millis() / 1000) as i64;
        let result = transition::apply(
            topic,
            &payload,
            joined,
            &mut memory,
            &Settings::from_config(&config),
            now,
        );

        if let Some((token, sid)) = &result.link_checkout {
            store.link(&JoinToken::Checkout(token.clone()), sid).await?;
        }
        if memory.cart != before.cart {
            self.save(CART, &memory.cart).await?;
        }
        if memory.order != before.order {
            self.save(ORDER, &memory.order).await?;
        }
        let mut skipped = result.skipped;
        let queued = if result.events.is_empty() {
            0
        } else {
            let summary = queue::enqueue(
                &self.env,
                Source::Webhook,
                &result.proof,
                &config,
                result.events,
            )
            .await?;
            skipped = skipped.or_else(|| summary.why_none_queued().map(String::from));
            summary.accepted + summary.merged
        };
        self.hold(&store, &call.resource, result.held).await?;
        // Marked only after the events are safely queued: a failure above lets Shopify retry.
        if !call.webhook_id.is_empty() {
            storage.put(&seen_key, true).await?;
        }
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(STATE_TTL_MS).await?;
        }
        Ok(Answer::Done(WebhookResult {
            duplicate: false,
            queued,
            skipped,
        }))
    }
}

/// Reads every session `keys` point at (the attribute's session id, the cart's and the
/// checkout's links) for `Joined::of` to decide: a refusal may sit behind any of them.
async fn join(store: &Store, keys: JoinKeys) -> Result<Joined> {
    let mut sids: Vec<String> = keys.session_id.iter().cloned().collect();
    for token in keys.links() {
        if let Some(sid) = store.linked(&token).await? {
            if !sids.contains(&sid) {
                sids.push(sid);
            }
        }
    }
    let mut found = Vec::with_capacity(sids.len());
    for sid in sids {
        let session = store.session(&sid).await?;
        found.push((sid, session));
    }
    Ok(Joined::of(found))
}
