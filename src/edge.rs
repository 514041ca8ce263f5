//! The shop's own traffic. The entry (`src/entry.js`) forwards it to the origin without
//! entering the wasm and hands back what is plainly not a page as it came; what may be a page,
//! and a fetch that failed, come here with the origin's answer.

use tiktok_edge_core::config::Config;
use tiktok_edge_core::edge;
use tiktok_edge_core::snippet;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Context, Env, Result};

use crate::limits::PageBudget;
use crate::log::{self, Level};
use crate::store::Store;
use crate::visitor::{fresh_ttp, remember, visit_of};
use crate::{page, respond};

/// The origin's answer to `req` on its way out (`origin`: the Response of the entry's `fetch`,
/// redirects not followed, or what that fetch threw): a failed fetch is answered 502; an HTML
/// navigation gets first-party cookies, the pixel's tag and its session record (written after
/// the response, never delaying the page); anything else, or everything while the settings are
/// invalid (`config` `None`: tracking is off), passes as it came, body streamed.
pub fn serve(
    req: &web_sys::Request,
    origin: JsValue,
    env: &Env,
    ctx: &Context,
    config: Option<&Config>,
) -> Result<web_sys::Response> {
    let resp = match origin.dyn_into::<web_sys::Response>() {
        Ok(resp) => resp,
        Err(e) => {
            let error = worker::Error::from(e).to_string();
            log::event(
                Level::Error,
                "origin_unreachable",
                &[("error", error.into())],
            );
            return Ok(respond::error(
                502,
                "origin_unreachable",
                "the shop's origin did not answer; check ORIGIN_URL or the Orange-to-Orange setup",
            )?
            .into());
        }
    };
    let Some(config) = config else {
        return Ok(resp);
    };
    let content_type = resp.headers().get("Content-Type")?;
    if !edge::is_html_navigation(&req.method(), resp.status(), content_type.as_deref()) {
        return Ok(resp);
    }
    // Read only for pages: an asset's request is never looked at.
    let visit = visit_of(req)?;
    let mut plan = edge::plan(&visit, config, fresh_ttp);
    let set_cookies = std::mem::take(&mut plan.set_cookies);
    if plan.writes() > 0 {
        let store = Store::new(env)?;
        let budget = PageBudget::new(env, visit.ip.as_deref());
        ctx.wait_until(async move {
            let plan = budget.cover(plan).await;
            if let Err(e) = remember(&store, &plan).await {
                log::event(
                    Level::Error,
                    "session_write_failed",
                    &[("error", e.to_string().into())],
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
