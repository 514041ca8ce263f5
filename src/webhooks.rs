//! `POST /tt/webhooks/shopify`: verify, route to the resource's `ShopState`, answer fast.
//! Bad or missing HMAC: 401 and nothing stored. Another shop's (`X-Shopify-Shop-Domain` is
//! not `SHOPIFY_SHOP_DOMAIN`): 403. Valid HMAC but a body that is not its topic's
//! (`shopify::shape`) or unusable: 200 (so Shopify keeps the subscription), nothing changed,
//! and the payload's shape parked for the operator.

use tiktok_edge_core::config::Config;
use tiktok_edge_core::shopify::shape;
use tiktok_edge_core::shopify::{self, hmac, Topic, MAX_WEBHOOK_BYTES};
use tiktok_edge_core::text;
use worker::{console_log, Date, Env, Request, Response, Result};

use crate::shop_do::{WebhookCall, WebhookResult};
use crate::store::{Parked, Store};
use crate::{outbound, privacy, respond};

pub const BINDING: &str = "SHOP_STATE";

/// A header under its classic name or the Events-system name without `X-`.
fn header(req: &Request, name: &str) -> Result<Option<String>> {
    Ok(match req.headers().get(&format!("X-{name}"))? {
        Some(v) => Some(v),
        None => req.headers().get(name)?,
    })
}

pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let body = match respond::body_within(&mut req, MAX_WEBHOOK_BYTES).await? {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large),
    };
    if config.webhook_secrets.is_empty() {
        return respond::error(
            401,
            "unauthorized",
            "SHOPIFY_WEBHOOK_SECRET is not set, so no webhook can be verified",
        );
    }
    let Some(shop_domain) = config.shop_domain.as_deref() else {
        let problem = config.degraded("SHOPIFY_SHOP_DOMAIN").map_or_else(
            || "SHOPIFY_SHOP_DOMAIN is not set".to_string(),
            |p| p.to_string(),
        );
        return respond::error(503, "config_invalid", &problem);
    };
    let secrets: Vec<&str> = config.webhook_secrets.iter().map(|s| s.expose()).collect();
    if !hmac::verify(
        &secrets,
        &body,
        header(&req, "Shopify-Hmac-Sha256")?.as_deref(),
    ) {
        return respond::error(401, "unauthorized", "HMAC signature does not match");
    }
    let from = header(&req, "Shopify-Shop-Domain")?.unwrap_or_default();
    if !from.trim().eq_ignore_ascii_case(shop_domain) {
        return respond::error(
            403,
            "wrong_shop",
            "X-Shopify-Shop-Domain is not this Worker's shop (SHOPIFY_SHOP_DOMAIN)",
        );
    }
    // Unsigned headers that name keys and log lines: bounded (Shopify's are far shorter).
    let topic_name = text::cap(&header(&req, "Shopify-Topic")?.unwrap_or_default(), 64).to_string();
    let webhook_id =
        text::cap(&header(&req, "Shopify-Webhook-Id")?.unwrap_or_default(), 64).to_string();
    let topic = Topic::parse(&topic_name);
    if let Err(reason) = shape::check(topic, &body, shop_domain) {
        let parked = park(env, &topic_name, &webhook_id, reason, &body).await?;
        return respond::json(200, &parked);
    }
    let outcome = match topic {
        Topic::Other => serde_json::json!({ "ignored": topic_name }),
        Topic::CustomersRedact | Topic::ShopRedact | Topic::CustomersDataRequest => {
            match privacy::handle(env, topic, &body).await? {
                Ok(outcome) => {
                    // Counts only: the payload's customer fields are never logged.
                    console_log!(
                        "{{\"event\":\"privacy_webhook\",\"topic\":{:?},\"outcome\":{}}}",
                        topic_name,
                        outcome
                    );
                    outcome
                }
                Err(reason) => park(env, &topic_name, &webhook_id, reason, &body).await?,
            }
        }
        _ => match route(env, topic, &topic_name, &webhook_id, &body).await? {
            Ok(result) => {
                if let Some(reason) = &result.skipped {
                    // Why a signed webhook sent nothing (excluded channel, test order, …).
                    console_log!(
                        "{{\"event\":\"webhook_skipped\",\"topic\":{:?},\"reason\":{:?}}}",
                        topic_name,
                        reason
                    );
                }
                serde_json::to_value(result)?
            }
            Err(reason) => park(env, &topic_name, &webhook_id, reason, &body).await?,
        },
    };
    respond::json(200, &outcome)
}

/// Keeps an unusable (but authentic) webhook's shape for the operator; never its values.
async fn park(
    env: &Env,
    topic: &str,
    webhook_id: &str,
    reason: String,
    body: &[u8],
) -> Result<serde_json::Value> {
    let parked = Parked {
        topic: topic.to_string(),
        webhook_id: webhook_id.to_string(),
        reason,
        shape: shopify::redact(body),
        received_at_ms: Date::now().as_millis() as i64,
    };
    Store::new(env)?.park(&parked).await?;
    console_log!(
        "{{\"event\":\"webhook_parked\",\"topic\":{:?},\"reason\":{:?}}}",
        parked.topic,
        parked.reason
    );
    Ok(serde_json::json!({ "parked": parked.reason }))
}

/// Hands the webhook to its resource's Durable Object; `Err(reason)` when it is unusable.
async fn route(
    env: &Env,
    topic: Topic,
    topic_name: &str,
    webhook_id: &str,
    body: &[u8],
) -> Result<std::result::Result<WebhookResult, String>> {
    let key = match shopify::resource_key(topic, body) {
        Ok(key) => key,
        Err(reason) => return Ok(Err(reason)),
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(Err("body is not UTF-8".to_string()));
    };
    let call = WebhookCall {
        resource: key.clone(),
        topic: topic_name.to_string(),
        webhook_id: webhook_id.to_string(),
        body: text.to_string(),
    };
    let mut resp = shop_state(env, &key, "webhook", serde_json::to_string(&call)?).await?;
    match resp.status_code() {
        200 => Ok(Ok(resp.json().await?)),
        422 => Ok(Err(resp.text().await?)),
        status => Err(worker::Error::RustError(format!(
            "resource state {key} answered {status}"
        ))),
    }
}

/// POSTs `body` to operation `op` of the `ShopState` named `resource`.
pub async fn shop_state(env: &Env, resource: &str, op: &str, body: String) -> Result<Response> {
    let stub = env
        .durable_object(BINDING)?
        .id_from_name(resource)?
        .get_stub()?;
    stub.fetch_with_request(outbound::request(
        &format!("https://shop/{op}"),
        Some(body),
        None,
    )?)
    .await
}
