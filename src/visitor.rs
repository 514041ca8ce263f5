//! The visitor, as every browser-facing handler (edge, collect, consent) meets them: read off
//! the request once ([`visit_of`]), given a fresh `_ttp`, remembered in KV, and sent cookies.

use tiktok_edge_core::cookies;
use tiktok_edge_core::cors::SANDBOX_ORIGIN;
use tiktok_edge_core::edge::{
    self, Plan, Visit, CART_MARKER, CHECKOUT_MARKER, CLICK_COOKIE, CONSENT_COOKIE, PROOF_COOKIE,
    SESSION_MARKER,
};
use tiktok_edge_core::text;
use worker::{web_sys, Date, Headers, Response, Result};

use crate::log::{self, Level};
use crate::page;
use crate::store::Store;

/// Writes what a plan decided to keep about the session.
pub async fn remember(store: &Store, plan: &Plan) -> Result<()> {
    if let Some((sid, session)) = &plan.session {
        store.save_session(sid, session).await?;
    }
    for (token, sid) in &plan.links {
        store.link(token, sid).await?;
    }
    Ok(())
}

/// `resp` with `cookies` added.
pub fn with_cookies(resp: Response, cookies: &[String]) -> Result<Response> {
    Ok(Response::from(page::rewrite(resp.into(), cookies, None)?))
}

/// A fresh `_ttp` from the clock and 80 random bits.
pub fn fresh_ttp() -> String {
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        log::event(Level::Error, "random_unavailable", &[]);
    }
    edge::new_ttp(Date::now().as_millis(), random)
}

/// What the request says about the visitor (`req`: the runtime's own request; workers-rs's
/// `Request` would be built first, `cf` object and all, for nothing on a page).
pub fn visit_of(req: &web_sys::Request) -> Result<Visit> {
    let headers = Headers(req.headers());
    let jar = headers.get("Cookie")?.unwrap_or_default();
    Ok(Visit {
        url: req.url(),
        ttp_cookie: cookies::get(&jar, "_ttp"),
        ttclid_cookie: cookies::get(&jar, "ttclid"),
        consent_cookie: cookies::get(&jar, CONSENT_COOKIE),
        session_marker: cookies::get(&jar, SESSION_MARKER).is_some(),
        cart_cookie: cookies::get(&jar, "cart"),
        cart_marker: cookies::get(&jar, CART_MARKER),
        checkout_marker: cookies::get(&jar, CHECKOUT_MARKER),
        proof_cookie: cookies::get(&jar, PROOF_COOKIE),
        click_cookie: cookies::get(&jar, CLICK_COOKIE),
        reported_ttclid: None,
        ip: headers.get("CF-Connecting-IP")?,
        // Stored with the session and sent to TikTok: capped here, where it comes in.
        user_agent: text::capped(headers.get("User-Agent")?, text::MAX_USER_AGENT),
        gpc: headers.get("Sec-GPC")?.as_deref() == Some("1"),
        now_secs: (Date::now().as_millis() / 1000) as i64,
        sandboxed: headers.get("Origin")?.as_deref() == Some(SANDBOX_ORIGIN),
    })
}
