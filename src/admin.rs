//! `/tt/admin.json` (and later the HTML page): the operator's view, behind `ADMIN_TOKEN`.

use tiktok_edge_core::auth;
use tiktok_edge_core::config::Config;
use worker::{Date, Env, Request, Response, Result};

use crate::store::Store;
use crate::{queue, respond};

const WINDOW_MS: i64 = 24 * 3600 * 1000;
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
    let query_token = req
        .url()?
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
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

pub async fn json(req: &Request, env: &Env, config: &Config) -> Result<Response> {
    if let Some(denied) = authorised(req, config)? {
        return Ok(denied);
    }
    let now = Date::now().as_millis() as i64;
    let stats = queue::stats(env, now - WINDOW_MS).await?;
    let parked = Store::new(env)?.parked(MAX_PARKED).await?;
    respond::json(
        200,
        &serde_json::json!({
            "window_hours": 24,
            "mode": if config.dry_run() { "dry_run" } else { "live" },
            "queue": stats,
            "parked_webhooks": parked,
        }),
    )
}
