//! `POST /tt/consent`: the snippet reports the visitor's Customer Privacy API answers; the
//! Worker remembers them (cookie + KV session) and, on a refusal, forgets the visitor's
//! identifiers and expires the tracking cookies.

use tiktok_edge_core::config::Config;
use tiktok_edge_core::consent::{Choice, Report};
use tiktok_edge_core::edge;
use tiktok_edge_core::json;
use worker::{Env, Request};

use crate::failure::{Failure, Outcome};
use crate::limits::PageBudget;
use crate::respond;
use crate::store::Store;
use crate::visitor::{self, with_cookies};

/// A report is two booleans and a click id (at most 512 bytes, `edge::plausible`); anything
/// bigger is not one.
const MAX_BODY_BYTES: usize = 1024;

pub async fn handle(mut req: Request, env: &Env, config: &Config) -> Outcome {
    let body = respond::body_within(&mut req, MAX_BODY_BYTES).await?;
    let Ok(report) = json::parse::<Report>(&body) else {
        return Err(Failure::refused(
            400,
            "invalid_consent",
            "send {\"marketing\": true|false|null, \"sale_of_data\": true|false|null, \"ttclid\": \"…\" (optional)}",
        ));
    };
    let Some(choice) = report.choice() else {
        return Ok(respond::json(200, &serde_json::json!({ "consent": null }))?);
    };
    let mut visit = visitor::visit_of(req.inner())?;
    // The page the choice was made on (a same-origin call sends it), and the click the visitor
    // arrived with as that page read it: a ttclid landing that waited for consent.
    if let Some(page) = req.headers().get("Referer")? {
        visit.url = page;
    }
    visit.reported_ttclid = report.ttclid;
    let store = Store::new(env)?;
    let stored = match visit.ttp_cookie.as_deref().filter(|t| edge::plausible(t)) {
        Some(ttp) => store.session(ttp).await?,
        None => None,
    };
    let plan = edge::consent_plan(&visit, choice, stored, config, visitor::fresh_ttp);
    // A consent given starts tracking as a page would: its writes (the session, the click's
    // link) within the client's page-write budget. A refusal is always written.
    let plan = match choice {
        Choice::Denied => plan,
        Choice::Granted | Choice::Limited => {
            PageBudget::new(env, visit.ip.as_deref()).cover(plan).await
        }
    };
    // Written before answering: a refusal must hold for the order that may follow at once.
    visitor::remember(&store, &plan).await?;
    let resp = respond::json(200, &serde_json::json!({ "consent": choice.as_str() }))?;
    Ok(with_cookies(resp, &plan.set_cookies)?)
}
