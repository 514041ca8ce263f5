//! `POST /tt/collect`: browser events in, server copies queued with the same event_id.

use tiktok_edge_core::collect::{self, RequestFacts, MAX_BODY_BYTES};
use tiktok_edge_core::config::Config;
use worker::{Date, Env, Request, Response, Result};

use crate::{edge, queue, respond};

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

/// Identity and context taken from the request itself (as the edge reads it), never the body.
fn request_facts(req: &Request) -> Result<RequestFacts> {
    let visit = edge::visit_of(req)?;
    Ok(RequestFacts {
        ttp: visit.ttp_cookie,
        ttclid: visit.ttclid_cookie,
        ip: visit.ip,
        user_agent: visit.user_agent,
        now_secs: (Date::now().as_millis() / 1000) as i64,
        limited_data_use: visit.gpc,
    })
}
