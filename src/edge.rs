//! The shop's own traffic: passed to the origin as it came, and answered as the origin
//! answered, bodies streamed both ways.

use tiktok_edge_core::config::{Config, Origin};
use tiktok_edge_core::cookies;
use tiktok_edge_core::edge::{
    self, Plan, Visit, CART_MARKER, CLICK_COOKIE, CONSENT_COOKIE, SESSION_MARKER,
};
use tiktok_edge_core::snippet;
use tiktok_edge_core::text;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{console_error, web_sys, Context, Date, Env, Fetch, Request, Response, Result};

use crate::store::Store;
use crate::{inject, respond};

/// The shop's traffic through the edge: passthrough, plus first-party cookies and the session
/// record on HTML navigations (written after the response, never delaying the page).
pub async fn serve(req: Request, env: &Env, ctx: &Context, config: &Config) -> Result<Response> {
    let method = req.method().to_string();
    let visit = visit_of(&req)?;
    let resp = passthrough(&req, config.origin.as_ref()).await?;
    let content_type = resp.headers().get("Content-Type")?;
    if !edge::is_html_navigation(&method, resp.status_code(), content_type.as_deref()) {
        return Ok(resp);
    }
    let mut plan = edge::plan(&visit, config, fresh_ttp);
    let set_cookies = std::mem::take(&mut plan.set_cookies);
    if plan.session.is_some() || !plan.links.is_empty() {
        let store = Store::new(env)?;
        ctx.wait_until(async move {
            if let Err(e) = remember(&store, &plan).await {
                console_error!(
                    "{{\"event\":\"session_write_failed\",\"error\":{:?}}}",
                    e.to_string()
                );
            }
        });
    }
    let resp = if set_cookies.is_empty() {
        resp
    } else {
        with_cookies(resp, &set_cookies)?
    };
    // The pixel runs whatever the consent: it is what reports the visitor's choice.
    if config.inject_pixel {
        inject::into_head(resp, &snippet::script_tag(&config.route_prefix))
    } else {
        Ok(resp)
    }
}

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

/// `resp` with `cookies` added. A fetched response's headers are immutable: the runtime copies
/// them with the body stream in one call (header by header through the JavaScript boundary
/// cost a measurable share of a page's overhead).
pub fn with_cookies(resp: Response, cookies: &[String]) -> Result<Response> {
    Ok(Response::from(append_cookies(
        resp.into(),
        &cookies.join("\n"),
    )?))
}

#[wasm_bindgen(inline_js = "
export function appendCookies(response, cookies) {
  const copy = new Response(response.body, response);
  for (const cookie of cookies.split('\\n')) copy.headers.append('Set-Cookie', cookie);
  return copy;
}")]
extern "C" {
    /// `cookies`: `Set-Cookie` values, one per line (a value never holds a line break).
    #[wasm_bindgen(js_name = appendCookies, catch)]
    fn append_cookies(
        response: web_sys::Response,
        cookies: &str,
    ) -> std::result::Result<web_sys::Response, wasm_bindgen::JsValue>;
}

/// A fresh `_ttp` from the clock and 80 random bits.
pub fn fresh_ttp() -> String {
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        console_error!("{{\"event\":\"random_unavailable\"}}");
    }
    edge::new_ttp(Date::now().as_millis(), random)
}

/// What the request says about the visitor.
pub fn visit_of(req: &Request) -> Result<Visit> {
    let headers = req.headers();
    let jar = headers.get("Cookie")?.unwrap_or_default();
    Ok(Visit {
        url: req.inner().url(),
        ttp_cookie: cookies::get(&jar, "_ttp"),
        ttclid_cookie: cookies::get(&jar, "ttclid"),
        consent_cookie: cookies::get(&jar, CONSENT_COOKIE),
        session_marker: cookies::get(&jar, SESSION_MARKER).is_some(),
        cart_cookie: cookies::get(&jar, "cart"),
        cart_marker: cookies::get(&jar, CART_MARKER),
        click_cookie: cookies::get(&jar, CLICK_COOKIE),
        ip: headers.get("CF-Connecting-IP")?,
        // Stored with the session and sent to TikTok: capped here, where it comes in.
        user_agent: text::capped(headers.get("User-Agent")?, text::MAX_USER_AGENT),
        gpc: headers.get("Sec-GPC")?.as_deref() == Some("1"),
        now_secs: (Date::now().as_millis() / 1000) as i64,
    })
}

/// Sends `req` to the origin (`ORIGIN_URL`, or the request's own URL when unset: on an
/// Orange-to-Orange route that reaches Shopify) and returns the origin's response untouched:
/// method, headers, body stream, status, every `Set-Cookie`; redirects are returned, not followed.
pub async fn passthrough(req: &Request, origin: Option<&Origin>) -> Result<Response> {
    let url = req.inner().url();
    let target = match origin {
        Some(origin) => origin.join(tiktok_edge_core::urls::path_and_query(&url)),
        None => url,
    };
    let incoming = req.inner();
    let init = web_sys::RequestInit::new();
    init.set_method(&incoming.method());
    init.set_headers(&incoming.headers());
    if let Some(body) = incoming.body() {
        init.set_body(&body);
    }
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let outgoing = web_sys::Request::new_with_str_and_init(&target, &init)?;
    match Fetch::Request(outgoing.into()).send().await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            console_error!(
                "{{\"event\":\"origin_unreachable\",\"error\":{:?}}}",
                e.to_string()
            );
            respond::error(
                502,
                "origin_unreachable",
                "the shop's origin did not answer; check ORIGIN_URL or the Orange-to-Orange setup",
            )
        }
    }
}
