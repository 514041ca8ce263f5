//! The shop's own traffic: passed to the origin as it came, and answered as the origin
//! answered, bodies streamed both ways.

use tiktok_edge_core::config::Origin;
use worker::{console_error, web_sys, Fetch, Request, Response, Result};

use crate::respond;

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
