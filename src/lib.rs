//! tiktok-edge: the Cloudflare Worker shell. It does I/O only (requests, KV, Durable Objects,
//! outbound fetch); every decision is made by pure code in `tiktok-edge-core`.
//!
//! Request flow: `src/entry.js` forwards the shop's own traffic ([`router::passthrough_target`])
//! and hands what may be a page to [`router::serve_shop`]; our routes go to [`router::handle`].
//! Concerns: `edge` (the origin's answer on its way out), `visitor` (the
//! visitor read off a request, their cookies and session),
//! `respond` (JSON answers, and failures answered in one place), `log` (the one log function),
//! `collect` (browser events), `queue` + `queue_do` (the durable
//! send queue), `webhooks` + `shop` + `shop_do` (Shopify webhooks and per-resource state),
//! `refusals` (the count of refused webhooks), `failure` (the shell's error type), `store`
//! (KV sessions).

mod admin;
mod collect;
mod consent;
mod edge;
mod failure;
mod limits;
mod log;
mod outbound;
mod page;
mod privacy;
mod queue;
mod queue_do;
mod queue_sql;
mod refusals;
mod respond;
mod router;
mod scripts;
mod settings;
mod shop;
mod shop_do;
mod store;
mod visitor;
mod webhooks;

pub use queue_do::EventQueue;
pub use shop_do::ShopState;

use wasm_bindgen::prelude::*;
use worker::{event, js_sys, web_sys, worker_sys, Context, Env, Request, Result};

// The entry (`src/entry.js`) forwards the shop's own traffic without entering the wasm, by the
// plan `passthroughPlan` gives it once per isolate (`passthroughTarget` for paths that look like
// ours); only what may be a page comes back through `serveShop`. Our routes go to `fetch`.
// worker-build puts these exports on the Worker's entrypoint class, where the entry calls them.

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    router::handle(req, env, ctx).await
}

/// `[prefix, origin or null]`, or `undefined` while the settings are invalid.
#[wasm_bindgen(js_name = passthroughPlan)]
pub fn passthrough_plan(env: Env) -> Option<js_sys::Array> {
    let (prefix, origin) = router::passthrough_plan(&env)?;
    Some(js_sys::Array::of2(
        &prefix.into(),
        &origin.map_or(JsValue::NULL, JsValue::from),
    ))
}

#[wasm_bindgen(js_name = passthroughTarget)]
pub fn passthrough_target(url: String, env: Env) -> Option<String> {
    router::passthrough_target(&url, &env)
}

#[wasm_bindgen(js_name = serveShop)]
pub fn serve_shop(
    req: web_sys::Request,
    origin: JsValue,
    env: Env,
    ctx: worker_sys::Context,
) -> std::result::Result<web_sys::Response, JsValue> {
    Ok(router::serve_shop(req, origin, env, Context::new(ctx))?)
}
