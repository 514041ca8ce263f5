//! The shop's own traffic: passed to the origin as it came, and answered as the origin
//! answered, bodies streamed both ways.

use tiktok_edge_core::config::{Config, Origin};
use tiktok_edge_core::edge;
use tiktok_edge_core::snippet;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, js_sys, web_sys, Context, Env, Request, Result};

use crate::store::Store;
use crate::visitor::{fresh_ttp, remember, visit_of};
use crate::{page, respond};

/// The shop's traffic through the edge: passthrough, plus first-party cookies and the session
/// record on HTML navigations (written after the response, never delaying the page).
pub async fn serve(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<web_sys::Response> {
    let resp = passthrough(&req, config.origin.as_ref()).await?;
    let content_type = resp.headers().get("Content-Type")?;
    let method = req.method();
    if !edge::is_html_navigation(method.as_ref(), resp.status(), content_type.as_deref()) {
        return Ok(resp);
    }
    // Read only for pages: an asset's request is never looked at.
    let visit = visit_of(&req)?;
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
    // The pixel runs whatever the consent: it is what reports the visitor's choice.
    let tag = config
        .inject_pixel
        .then(|| snippet::script_tag(&config.route_prefix));
    page::rewrite(resp, &set_cookies, tag.as_deref())
}

#[wasm_bindgen(inline_js = "
export function forward(request, url) {
  return fetch(url, { method: request.method, headers: request.headers, body: request.body, redirect: 'manual' });
}")]
extern "C" {
    /// `request` sent on to `url` by the runtime's own `fetch`, in one call, redirects returned
    /// as they are. Its response is handed back as it came (workers-rs's `Fetch` would wrap it,
    /// and the wrapper be copied again on the way out).
    #[wasm_bindgen(catch)]
    fn forward(
        request: &web_sys::Request,
        url: &str,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// Sends `req` to the origin (`ORIGIN_URL`, or the request's own URL when unset: on an
/// Orange-to-Orange route that reaches Shopify) and returns the origin's response untouched:
/// method, headers, body stream, status, every `Set-Cookie`; redirects are returned, not followed.
pub async fn passthrough(req: &Request, origin: Option<&Origin>) -> Result<web_sys::Response> {
    let url = req.inner().url();
    let target = match origin {
        Some(origin) => origin.join(tiktok_edge_core::urls::path_and_query(&url)),
        None => url,
    };
    // A `fetch` that throws at once (a URL it cannot take) is answered like one that fails.
    let answer = match forward(req.inner(), &target) {
        Ok(pending) => JsFuture::from(pending).await,
        Err(thrown) => Err(thrown),
    };
    match answer {
        Ok(resp) => Ok(resp.unchecked_into()),
        Err(e) => {
            console_error!(
                "{{\"event\":\"origin_unreachable\",\"error\":{:?}}}",
                worker::Error::from(e).to_string()
            );
            Ok(respond::error(
                502,
                "origin_unreachable",
                "the shop's origin did not answer; check ORIGIN_URL or the Orange-to-Orange setup",
            )?
            .into())
        }
    }
}
