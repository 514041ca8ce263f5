//! `POST /tt/webhooks/shopify`: verify, route to the resource's `ShopState`, answer fast.
//! Bad or missing HMAC: 401. Another shop's (`X-Shopify-Shop-Domain` is not
//! `SHOPIFY_SHOP_DOMAIN`): 403. Both change nothing but the count of refused webhooks
//! (`refusals`), which the next accepted one clears. Valid HMAC but a body that is not its topic's
//! (`shopify::shape`) or unusable: 200 (so Shopify keeps the subscription), nothing changed,
//! and the payload's shape parked for the operator.

use tiktok_edge_core::config::Config;
use tiktok_edge_core::refusals::Refusal;
use tiktok_edge_core::shopify::state::Delivery;
use tiktok_edge_core::shopify::{self, hmac, Incoming, Parked, Topic, MAX_WEBHOOK_BYTES};
use tiktok_edge_core::text;
use tiktok_edge_core::Error;
use worker::{Context, Date, Env, Request, Result};

use crate::failure::{Failure, Outcome};
use crate::log::{self, Level};
use crate::store::Store;
use crate::{privacy, refusals, respond, shop};

/// A header under its classic name or the Events-system name without `X-`.
fn header(req: &Request, name: &str) -> Result<Option<String>> {
    Ok(match req.headers().get(&format!("X-{name}"))? {
        Some(v) => Some(v),
        None => req.headers().get(name)?,
    })
}

pub async fn handle(mut req: Request, env: &Env, ctx: &Context, config: &Config) -> Outcome {
    let body = respond::body_within(&mut req, MAX_WEBHOOK_BYTES).await?;
    if config.webhook_secrets.is_empty() {
        return Err(Failure::refused(
            401,
            "unauthorized",
            "SHOPIFY_WEBHOOK_SECRET is not set, so no webhook can be verified",
        ));
    }
    let shop_domain = config.webhook_shop_domain().map_err(Error::FeatureOff)?;
    let secrets: Vec<&str> = config.webhook_secrets.iter().map(|s| s.expose()).collect();
    if !hmac::verify(
        &secrets,
        &body,
        header(&req, "Shopify-Hmac-Sha256")?.as_deref(),
    ) {
        refusals::refused(env, ctx, config, Refusal::BadHmac);
        return Err(Failure::refused(
            401,
            "unauthorized",
            "HMAC signature does not match",
        ));
    }
    let from = header(&req, "Shopify-Shop-Domain")?.unwrap_or_default();
    if !from.trim().eq_ignore_ascii_case(shop_domain) {
        refusals::refused(env, ctx, config, Refusal::WrongShop);
        return Err(Failure::refused(
            403,
            "wrong_shop",
            "X-Shopify-Shop-Domain is not this Worker's shop (SHOPIFY_SHOP_DOMAIN)",
        ));
    }
    refusals::accepted(env, ctx);
    // Unsigned headers that name keys and log lines: bounded (Shopify's are far shorter).
    let topic_name = text::cap(&header(&req, "Shopify-Topic")?.unwrap_or_default(), 64).to_string();
    let webhook_id =
        text::cap(&header(&req, "Shopify-Webhook-Id")?.unwrap_or_default(), 64).to_string();
    let topic = Topic::parse(&topic_name);
    // The one parse of the body: its shape, and what the Worker acts on.
    let incoming = match Incoming::parse(topic, &body, shop_domain) {
        Ok(incoming) => incoming,
        Err(reason) => {
            let parked = park(env, &topic_name, &webhook_id, reason.into(), &body).await?;
            return Ok(respond::json(200, &parked)?);
        }
    };
    // Each answer as JSON text (`to_value` would compile a second serialiser of each type).
    let handled = match incoming {
        Incoming::Other => Ok(serde_json::json!({ "ignored": topic_name }).to_string()),
        Incoming::Privacy(request) => privacy::handle(env, request)
            .await
            .map_err(Failure::from)
            .inspect(|outcome| {
                // Counts only: the payload's customer fields are never logged.
                let fields = [
                    ("topic", topic_name.as_str().into()),
                    ("outcome", outcome.clone()),
                ];
                log::event(Level::Info, "privacy_webhook", &fields);
            })
            .map(|outcome| outcome.to_string()),
        Incoming::Resource { resource, body } => {
            let delivery = Delivery {
                resource,
                topic: topic_name.clone(),
                webhook_id: webhook_id.clone(),
            };
            shop::webhook(env, delivery, body).await.and_then(|result| {
                if let Some(reason) = &result.skipped {
                    // Why a signed webhook sent nothing (excluded channel, test order, …).
                    let fields = [
                        ("topic", topic_name.as_str().into()),
                        ("reason", reason.as_str().into()),
                    ];
                    log::event(Level::Info, "webhook_skipped", &fields);
                }
                Ok(serde_json::to_string(&result)?)
            })
        }
    };
    let outcome = match handled {
        Ok(outcome) => outcome,
        Err(Failure::Unusable(reason)) => park(env, &topic_name, &webhook_id, reason, &body)
            .await?
            .to_string(),
        Err(failure) => return Err(failure),
    };
    Ok(respond::json_text(200, outcome)?)
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
        digest: shopify::parked_digest(topic, body),
    };
    let kept = Store::new(env)?.park(&parked).await?;
    let fields = [
        ("topic", parked.topic.as_str().into()),
        ("reason", parked.reason.as_str().into()),
        ("kept", serde_json::to_value(kept)?),
    ];
    log::event(Level::Info, "webhook_parked", &fields);
    Ok(serde_json::json!({ "parked": parked.reason }))
}
