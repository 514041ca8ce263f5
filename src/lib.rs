//! tiktok-edge: the Cloudflare Worker shell. It does I/O only (requests, KV, Durable Objects,
//! outbound fetch); every decision is made by pure code in `tiktok-edge-core`.
//!
//! Request flow: `src/entry.js` forwards the shop's own traffic ([`router::passthrough_target`])
//! and hands what may be a page to [`router::serve_shop`]; our routes go to [`router::handle`].
//! Concerns: `edge` (the origin's answer on its way out), `visitor` (the
//! visitor read off a request, their cookies and session),
//! `respond` (JSON answers), `collect` (browser events), `queue` + `queue_do` (the durable
//! send queue), `webhooks` + `shop` + `shop_do` (Shopify webhooks and per-resource state), `failure` (the
//! shell's error type, answered in one place), `store`
//! (KV sessions).

mod admin;
mod collect;
mod consent;
mod edge;
mod failure;
mod limits;
mod outbound;
mod page;
mod privacy;
mod queue;
mod queue_do;
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
// The async export below is built on it.
use worker::wasm_bindgen_futures;
use worker::{event, js_sys, web_sys, worker_sys, Context, Env, Request, Result};

// The entry (`src/entry.js`) asks `passthroughTarget` first: the shop's own traffic is forwarded
// there without entering the wasm's async machinery, and only what may be a page comes back
// through `serveShop`; the rest of the requests are ours and go to `fetch`. worker-build puts
// these exports on the Worker's entrypoint class, where the entry calls them.

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    router::handle(req, env, ctx).await
}

#[wasm_bindgen(js_name = passthroughTarget)]
pub fn passthrough_target(url: String, env: Env) -> Option<String> {
    router::passthrough_target(&url, &env)
}

#[wasm_bindgen(js_name = serveShop)]
pub async fn serve_shop(
    req: web_sys::Request,
    origin: js_sys::Promise,
    env: Env,
    ctx: worker_sys::Context,
) -> std::result::Result<web_sys::Response, JsValue> {
    Ok(router::serve_shop(req, origin, env, Context::new(ctx)).await?)
}
