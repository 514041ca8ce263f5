//! The shop's own traffic: passed to the origin as it came, and answered as the origin
//! answered, bodies streamed both ways.

use tiktok_edge_core::config::{Config, Origin};
use tiktok_edge_core::cookies;
use tiktok_edge_core::edge::{self, Visit, CART_MARKER, CONSENT_COOKIE, SESSION_MARKER};
use worker::{
    console_error, web_sys, Context, Date, Env, Fetch, Headers, Request, Response, Result,
};

use crate::respond;
use crate::store::{Link, Store};

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
    if set_cookies.is_empty() {
        return Ok(resp);
    }
    if plan.session.is_some() || plan.cart_link.is_some() {
        let store = Store::new(env)?;
        ctx.wait_until(async move {
            let written = async {
                if let Some((sid, session)) = &plan.session {
                    store.save_session(sid, session).await?;
                }
                if let Some((cart, sid)) = &plan.cart_link {
                    store.link(Link::Cart, cart, sid).await?;
                }
                Ok::<_, worker::Error>(())
            };
            if let Err(e) = written.await {
                console_error!(
                    "{{\"event\":\"session_write_failed\",\"error\":{:?}}}",
                    e.to_string()
                );
            }
        });
    }
    // A fetched response's headers are immutable: copy them, add the cookies, keep the body stream.
    let headers = Headers::new();
    for (name, value) in resp.headers().entries() {
        headers.append(&name, &value)?;
    }
    for cookie in &set_cookies {
        headers.append("Set-Cookie", cookie)?;
    }
    let status = resp.status_code();
    let (_, body) = resp.into_parts();
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body))
}

/// A fresh `_ttp` from the clock and 80 random bits.
fn fresh_ttp() -> String {
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
        url: req.url()?.to_string(),
        ttp_cookie: cookies::get(&jar, "_ttp"),
        ttclid_cookie: cookies::get(&jar, "ttclid"),
        consent_cookie: cookies::get(&jar, CONSENT_COOKIE),
        session_marker: cookies::get(&jar, SESSION_MARKER).is_some(),
        cart_cookie: cookies::get(&jar, "cart"),
        cart_marker: cookies::get(&jar, CART_MARKER),
        ip: headers.get("CF-Connecting-IP")?,
        user_agent: headers.get("User-Agent")?,
        gpc: headers.get("Sec-GPC")?.as_deref() == Some("1"),
    })
}

/// Sends `req` to the origin (`ORIGIN_URL`, or the request's own URL when unset: on an
/// Orange-to-Orange route that reaches Shopify) and returns the origin's response untouched:
/// method, headers, body stream, status, every `Set-Cookie`; redirects are returned, not followed.
pub async fn passthrough(req: &Request, origin: Option<&Origin>) -> Result<Response> {
    let url = req.url()?;
    let target = match origin {
        Some(origin) => {
            let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
            origin.join(&format!("{}{query}", url.path()))
        }
        None => url.to_string(),
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
