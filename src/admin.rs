//! `/tt/admin` (HTML) and `/tt/admin.json` (the same report for scripts): the operator's view,
//! behind `ADMIN_TOKEN`. The report is assembled here; its rendering is
//! `tiktok_edge_core::admin`.

use tiktok_edge_core::admin::{render_html, AdminReport};
use tiktok_edge_core::auth;
use tiktok_edge_core::config::Config;
use tiktok_edge_core::health::Health;
use tiktok_edge_core::queue::{Resend, ShardHealth};
use worker::{Date, Env, Request, Response, Result};

use crate::store::Store;
use crate::{queue, respond, settings};

const WINDOW_HOURS: u32 = 24;
const MAX_PARKED: usize = 20;

/// Checks the token (constant time). Without `ADMIN_TOKEN` the admin endpoints do not exist.
fn authorised(req: &Request, config: &Config) -> Result<Option<Response>> {
    let Some(expected) = config.admin_token.as_ref() else {
        return respond::error(
            404,
            "not_found",
            "admin is disabled: set the ADMIN_TOKEN secret",
        )
        .map(Some);
    };
    let header = req.headers().get("Authorization")?;
    let query_token = tiktok_edge_core::urls::query_param(&req.inner().url(), "token");
    let given = auth::bearer(header.as_deref())
        .or(query_token.as_deref())
        .unwrap_or("");
    if auth::token_matches(given, expected.expose()) {
        Ok(None)
    } else {
        respond::error(
            401,
            "unauthorized",
            "send the ADMIN_TOKEN as `Authorization: Bearer …` or `?token=`",
        )
        .map(Some)
    }
}

async fn report(env: &Env, config: &Config) -> Result<AdminReport> {
    let now = Date::now().as_millis() as i64;
    let since = now - i64::from(WINDOW_HOURS) * 3600 * 1000;
    let queue = queue::stats(env, since).await?;
    let health = Health::new(&|name| settings::var(env, name), &Ok(config.clone())).with_queue(
        ShardHealth {
            depth: queue.depth,
            paused: queue.paused.clone(),
        },
    );
    Ok(AdminReport {
        generated_at_ms: now,
        window_hours: WINDOW_HOURS,
        mode: health.mode.to_string(),
        queue,
        parked_webhooks: Store::new(env)?.parked(MAX_PARKED).await?,
        health: serde_json::to_value(&health)?,
    })
}

pub async fn json(req: &Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(denied) = authorised(req, config)? {
        return Ok(denied);
    }
    respond::json(200, &report(env, config).await?)
}

pub async fn page(req: &Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(denied) = authorised(req, config)? {
        return Ok(denied);
    }
    let html = render_html(&report(env, config).await?, &config.route_prefix);
    let resp = Response::from_html(html)?;
    resp.headers().set("Cache-Control", "no-store")?;
    // The page has no scripts and loads nothing: say so to the browser too.
    resp.headers().set(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    )?;
    resp.headers().set("X-Robots-Tag", "noindex")?;
    Ok(resp)
}

/// `POST /tt/admin/resend` with a JSON filter (`state`, `event`, `from_ms`, `to_ms`, `error`):
/// failed (or unconfirmed) events go back to the queue. The token must come in the
/// `Authorization` header, so no link or cross-site form can trigger it.
pub async fn resend(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    if req.headers().get("Authorization")?.is_none() {
        return respond::error(
            401,
            "unauthorized",
            "send the ADMIN_TOKEN as `Authorization: Bearer …`",
        );
    }
    if let Some(denied) = authorised(&req, config)? {
        return Ok(denied);
    }
    let body = match respond::body_within(&mut req, 4096).await? {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large),
    };
    let filter: Resend = if body.is_empty() {
        Resend::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(filter) => filter,
            Err(e) => return respond::error(400, "invalid_filter", &e.to_string()),
        }
    };
    match queue::resend(env, &filter).await? {
        Ok(count) => respond::json(200, &serde_json::json!({ "requeued": count })),
        Err(message) => respond::error(400, "invalid_filter", &message),
    }
}
