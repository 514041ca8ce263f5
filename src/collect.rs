//! `POST /tt/collect`: browser events in, server copies queued with the same event_id.

use tiktok_edge_core::collect::{self, RequestFacts, MAX_BODY_BYTES};
use tiktok_edge_core::config::Config;
use tiktok_edge_core::cookies;
use worker::{Date, Env, Request, Response, Result};

use crate::{queue, respond};

pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Result<Response> {
    let body = match respond::body_within(&mut req, MAX_BODY_BYTES).await? {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large),
    };
    let facts = request_facts(&req)?;
    let event = match collect::parse(&body, &config.purchase_event_name, &facts) {
        Ok(event) => event,
        Err(e) if e.code == "too_large" => return respond::error(413, e.code, &e.message),
        Err(e) => return respond::error(400, e.code, &e.message),
    };
    let event_id = event.event_id.clone();
    let summary = queue::enqueue(env, vec![event]).await?;
    respond::json(
        202,
        &serde_json::json!({ "event_id": event_id, "queued": summary.accepted == 1 }),
    )
}

/// Identity and context taken from the request itself, never from the body.
fn request_facts(req: &Request) -> Result<RequestFacts> {
    let headers = req.headers();
    let cookie_header = headers.get("Cookie")?.unwrap_or_default();
    Ok(RequestFacts {
        ttp: cookies::get(&cookie_header, "_ttp"),
        ttclid: cookies::get(&cookie_header, "ttclid"),
        ip: headers.get("CF-Connecting-IP")?,
        user_agent: headers.get("User-Agent")?,
        now_secs: (Date::now().as_millis() / 1000) as i64,
        limited_data_use: headers.get("Sec-GPC")?.as_deref() == Some("1"),
    })
}
