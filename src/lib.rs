//! tiktok-edge: the Cloudflare Worker shell. It does I/O only (requests, KV, Durable Objects,
//! outbound fetch); every decision is made by pure code in `tiktok-edge-core`.
//!
//! Request flow: [`router::handle`]. Concerns: `edge` (passthrough to the shop), `visitor` (the
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

use worker::{event, web_sys, Context, Env, Request, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    router::handle(req, env, ctx).await
}
