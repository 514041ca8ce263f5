//! Workers KV: browsing sessions and their join keys, parked webhooks, and the count of
//! refused webhooks. Every record of a visitor has a TTL, so IP and user agent never outlive
//! the session they belong to.

use tiktok_edge_core::keys;
use tiktok_edge_core::privacy::Held;
use tiktok_edge_core::queue::{Pause, PauseMirror};
use tiktok_edge_core::refusals::{Counts, Refused};
use tiktok_edge_core::session::Session;
use tiktok_edge_core::shopify::checkout_url::{self, JoinToken};
use tiktok_edge_core::shopify::{self, ParkDecision, Parked, ParkedCount};
use tiktok_edge_core::vec_map::VecMap;
use worker::kv::PutOptionsBuilder;
use worker::{Env, KvStore, Result};

pub const BINDING: &str = "SESSIONS";
/// Sessions and join keys live 30 days: longer than a consideration window, far shorter than
/// the cookie. Orders that arrive later still join through their note attributes.
const SESSION_TTL_SECS: u64 = 30 * 24 * 3600;
const PARKED_TTL_SECS: u64 = 7 * 24 * 3600;
const SDK_TTL_SECS: u64 = 7 * 24 * 3600;
/// KV refuses longer keys. Keys are built from cookie values and tokens a visitor controls:
/// a key that cannot exist is simply not there (never a failed request).
const MAX_KEY_BYTES: usize = 512;

fn fits(key: &str) -> bool {
    key.len() <= MAX_KEY_BYTES
}

pub struct Store {
    kv: KvStore,
}

impl Store {
    pub fn new(env: &Env) -> Result<Store> {
        Ok(Store {
            kv: env.kv(BINDING)?,
        })
    }

    /// A write of `text` under `key`, as its UTF-8 bytes (read back with `text()` as any
    /// string): `KvStore::put` converts every value through serde_wasm_bindgen and formats
    /// numbers, code the wasm would carry for nothing.
    fn put(&self, key: &str, text: &str) -> Result<PutOptionsBuilder> {
        Ok(self.kv.put_bytes(key, text.as_bytes())?)
    }

    /// The JSON record under `key`, parsed by serde_json as every other JSON the Worker
    /// reads: KV's own `json()` goes through JSON.parse and serde_wasm_bindgen, a second
    /// deserializer of each record type in the wasm.
    async fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.kv.get(key).text().await? {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    /// The pauses of the pixels `keys` as the shards mirror them, for `/tt/health` (one KV
    /// read per pixel).
    pub async fn queue_pauses<'a>(
        &self,
        keys: impl Iterator<Item = &'a str>,
    ) -> Result<VecMap<String, Pause>> {
        let mut pauses = VecMap::new();
        for pixel in keys {
            if let Some(mirror) = self.json::<PauseMirror>(&keys::pause(pixel)).await? {
                pauses.insert(pixel.to_string(), mirror.pause);
            }
        }
        Ok(pauses)
    }

    /// Records shard `shard`'s pause of `pixel`, or, with `None`, removes the one it recorded.
    pub async fn mirror_pause(
        &self,
        shard: &str,
        pixel: &str,
        pause: Option<&Pause>,
    ) -> Result<()> {
        let key = keys::pause(pixel);
        match pause {
            Some(pause) => {
                let mirror = PauseMirror {
                    shard: shard.to_string(),
                    pause: pause.clone(),
                };
                self.put(&key, &serde_json::to_string(&mirror)?)?
                    .execute()
                    .await?
            }
            None => {
                let mirror = self.json::<PauseMirror>(&key).await?;
                if mirror.is_some_and(|m| m.shard == shard) {
                    self.kv.delete(&key).await?;
                }
            }
        }
        Ok(())
    }

    /// The webhooks refused since the last accepted one (`refusals`), as last written.
    pub async fn refused_webhooks(&self) -> Result<Option<Refused>> {
        self.json::<Refused>(keys::WEBHOOKS_REFUSED).await
    }

    /// Adds `counts` to the refusals recorded under `setup` (no TTL: a setup whose webhooks
    /// are all refused gets none, and must not look fine after a while).
    pub async fn add_refused_webhooks(
        &self,
        setup: &str,
        counts: Counts,
        now_ms: i64,
    ) -> Result<()> {
        let record = Refused::add(self.refused_webhooks().await?, setup, counts, now_ms);
        self.put(keys::WEBHOOKS_REFUSED, &serde_json::to_string(&record)?)?
            .execute()
            .await?;
        Ok(())
    }

    /// Notes that a signed webhook was accepted at `now_ms`.
    pub async fn note_webhook_accepted(&self, now_ms: i64) -> Result<()> {
        self.put(keys::WEBHOOKS_ACCEPTED, &now_ms.to_string())?
            .execute()
            .await?;
        Ok(())
    }

    /// When a signed webhook was last accepted, as noted.
    pub async fn webhook_accepted_ms(&self) -> Result<Option<i64>> {
        let text = self.kv.get(keys::WEBHOOKS_ACCEPTED).text().await?;
        Ok(text.and_then(|t| t.parse().ok()))
    }

    /// An accepted webhook: the refusals before it no longer count (deleted only when there
    /// is a record, so a busy shop's webhooks cost no KV write).
    pub async fn clear_refused_webhooks(&self) -> Result<()> {
        if self.kv.get(keys::WEBHOOKS_REFUSED).text().await?.is_some() {
            self.kv.delete(keys::WEBHOOKS_REFUSED).await?;
        }
        Ok(())
    }

    /// The session of session id `sid` (the visitor's `_ttp`).
    pub async fn session(&self, sid: &str) -> Result<Option<Session>> {
        let key = keys::session(sid);
        if !fits(&key) {
            return Ok(None);
        }
        self.json::<Session>(&key).await
    }

    pub async fn save_session(&self, sid: &str, session: &Session) -> Result<()> {
        let key = keys::session(sid);
        if !fits(&key) {
            return Ok(());
        }
        self.put(&key, &serde_json::to_string(session)?)?
            .expiration_ttl(SESSION_TTL_SECS)
            .execute()
            .await?;
        Ok(())
    }

    /// Links `token` to session `sid`; a click as `checkout_url::claim_click` decides against
    /// what its link holds (KV has no compare-and-set: two claims within KV's propagation
    /// delay of each other may both find no link, and the later one wins).
    pub async fn link(&self, token: &JoinToken, sid: &str) -> Result<()> {
        let key = token.key();
        if !fits(&key) {
            return Ok(());
        }
        let value = match token {
            JoinToken::Click(_) => {
                let held = self.kv.get(&key).text().await?;
                match checkout_url::claim_click(held.as_deref(), sid) {
                    Some(value) => value,
                    None => return Ok(()),
                }
            }
            JoinToken::Cart(_) | JoinToken::Checkout(_) => sid.to_string(),
        };
        self.put(&key, &value)?
            .expiration_ttl(SESSION_TTL_SECS)
            .execute()
            .await?;
        Ok(())
    }

    /// The session id a cart token, checkout token or click leads to.
    pub async fn linked(&self, token: &JoinToken) -> Result<Option<String>> {
        let key = token.key();
        if !fits(&key) {
            return Ok(None);
        }
        let value = self.kv.get(&key).text().await?;
        Ok(value.and_then(checkout_url::linked_session))
    }

    /// Keeps the last good copy of TikTok's SDK, the fallback for outages. Each fetch renews it,
    /// so it expires only when TikTok is unreachable for a week, or the settings change.
    pub async fn save_sdk(&self, upstream: &str, body: &[u8]) -> Result<()> {
        self.kv
            .put_bytes(&keys::sdk(upstream), body)?
            .expiration_ttl(SDK_TTL_SECS)
            .execute()
            .await?;
        Ok(())
    }

    pub async fn sdk(&self, upstream: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.kv.get(&keys::sdk(upstream)).bytes().await?)
    }

    /// Registers a `ShopState` object by name, so `shop/redact` can reach every one.
    pub async fn register_resource(&self, resource: &str) -> Result<()> {
        self.put(&keys::resource(resource), "")?
            .expiration_ttl(SESSION_TTL_SECS)
            .execute()
            .await?;
        Ok(())
    }

    /// Every key under `prefix` (all keys when empty), page by page.
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let mut list = self.kv.list().prefix(prefix.to_string());
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await?;
            out.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Registered `ShopState` names.
    pub async fn resources(&self) -> Result<Vec<String>> {
        Ok(self
            .keys(keys::RESOURCE_PREFIX)
            .await?
            .iter()
            .filter_map(|k| keys::resource_of(k).map(String::from))
            .collect())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        if !fits(key) {
            return Ok(());
        }
        Ok(self.kv.delete(key).await?)
    }

    /// Deletes the sessions and join links a resource held, the link of each session's own click
    /// included (whoever else it leads to: the click id is the visitor's).
    pub async fn forget(&self, held: &Held) -> Result<()> {
        for sid in &held.sessions {
            let click = self.session(sid).await?.and_then(|s| s.browser.ttclid);
            if let Some(click) = click {
                self.delete(&keys::click(&click)).await?;
            }
            self.delete(&keys::session(sid)).await?;
        }
        for cart in &held.carts {
            self.delete(&keys::cart(cart)).await?;
        }
        for checkout in &held.checkouts {
            self.delete(&keys::checkout(checkout)).await?;
        }
        for click in &held.clicks {
            self.delete(&keys::click(click)).await?;
        }
        Ok(())
    }

    /// Parks `parked` unless its topic and body are parked already or the day's cap is
    /// reached (`shopify::park_decision`).
    pub async fn park(&self, parked: &Parked) -> Result<ParkDecision> {
        let listed = self.keys(keys::PARKED_PREFIX).await?;
        let decision = shopify::park_decision(&listed, &parked.digest, parked.received_at_ms);
        if decision == ParkDecision::Keep {
            let key = keys::parked(parked.received_at_ms, &parked.digest);
            self.put(&key, &serde_json::to_string(parked)?)?
                .expiration_ttl(PARKED_TTL_SECS)
                .execute()
                .await?;
        }
        Ok(decision)
    }

    /// The most recently parked webhooks (up to `limit`), and how many are parked in all.
    pub async fn parked(&self, limit: usize, now_ms: i64) -> Result<(Vec<Parked>, ParkedCount)> {
        let listed = self.keys(keys::PARKED_PREFIX).await?;
        let mut out = Vec::new();
        for key in listed.iter().rev().take(limit) {
            if let Some(p) = self.json::<Parked>(key).await? {
                out.push(p);
            }
        }
        Ok((out, shopify::parked_count(&listed, now_ms)))
    }
}
