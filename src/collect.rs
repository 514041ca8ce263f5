//! `POST /tt/collect`: browser events in, server copies queued with the same event_id.

use tiktok_edge_core::collect::{self, MAX_BODY_BYTES};
use tiktok_edge_core::config::Config;
use tiktok_edge_core::edge::Visit;
use tiktok_edge_core::queue::Source;
use tiktok_edge_core::shopify::checkout_url::JoinToken;
use tiktok_edge_core::Error;
use worker::{Context, Env, Request, Result};

use crate::failure::Outcome;
use crate::log::{self, Level};
use crate::store::Store;
use crate::{queue, respond, visitor};

pub async fn handle(mut req: Request, env: &Env, ctx: &Context, config: &Config) -> Outcome {
    let body = respond::body_within(&mut req, MAX_BODY_BYTES).await?;
    let visit = visitor::visit_of(req.inner())?;
    // Oversized bodies never get here: `body_within` refused them with 413.
    let collected =
        collect::parse(&body, &config.purchase_event_name, &visit).map_err(Error::from)?;
    let event_id = collected.event.event_id.clone();
    if !collected.allowed(config.consent_default) {
        // Nothing sent; a refusal from a checkout is remembered where its webhooks and the
        // queue will meet it, before answering (the order may follow at once).
        if let Some(refusal) = collected.refusal(&config.purchase_event_name, visitor::fresh_ttp) {
            refuse(env, config, &refusal).await?;
        }
        return Ok(respond::json(
            202,
            &serde_json::json!({ "event_id": event_id, "queued": false, "reason": "consent" }),
        )?);
    }
    let joins = joins(&visit, &collected);
    if !joins.is_empty() {
        let store = Store::new(env)?;
        ctx.wait_until(async move {
            for (token, sid) in joins {
                if let Err(e) = store.link(&token, &sid).await {
                    let error = e.to_string().into();
                    log::event(Level::Error, "collect_link_failed", &[("error", error)]);
                }
            }
        });
    }
    let summary = queue::enqueue(
        env,
        Source::Browser,
        &collected.proof,
        config,
        vec![collected.event],
    )
    .await?;
    if summary.no_room > 0 {
        // Refused at the door, never accepted and dropped later: the shard keeps its other
        // half for signed events (`queue::room`); the operator sees the count.
        let resp = respond::error(
            503,
            "queue_full",
            "browser events waiting to be sent fill their share of this event's queue shard \
             (TikTok slow or paused, or a flood); nothing was queued: retry later",
        )?;
        resp.headers().set("Retry-After", "60")?;
        return Ok(resp);
    }
    Ok(respond::json(
        202,
        &serde_json::json!({ "event_id": event_id, "queued": summary.accepted > 0 }),
    )?)
}

/// Remembers a refusal: the session it names keeps only the refusal (the visitor's own, when
/// the request carried its cookie, forgets its identifiers), the checkout token it proves
/// points at it (webhooks still to come), and the queue stops the checkout's events and the
/// order bound to that checkout (copies already there, or arriving later).
async fn refuse(env: &Env, config: &Config, refusal: &collect::Refusal) -> Result<()> {
    let store = Store::new(env)?;
    store
        .save_session(
            &refusal.session_id,
            &tiktok_edge_core::edge::declined_session(),
        )
        .await?;
    store
        .link(
            &JoinToken::Checkout(refusal.checkout_token.clone()),
            &refusal.session_id,
        )
        .await?;
    queue::refuse(env, config, &refusal.refuse).await
}

/// Join keys this event reveals: the checkout it came from (custom pixel) belongs to the
/// visitor's session. Linked once, on the checkout's first step.
fn joins(visit: &Visit, collected: &collect::Collected) -> Vec<(JoinToken, String)> {
    let Some(sid) = collected.event.user.browser.ttp.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(token) = &collected.checkout_token {
        if collected.event.event == "InitiateCheckout" {
            out.push((JoinToken::Checkout(token.clone()), sid.clone()));
        }
    }
    // A cart first seen by the pixel (an Ajax add before any navigation) joins here.
    if let Some(cart) = visit.cart_token() {
        if visit.cart_marker.as_deref() != Some(cart) && collected.event.event == "AddToCart" {
            out.push((JoinToken::Cart(cart.to_string()), sid));
        }
    }
    out
}
