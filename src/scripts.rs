//! Scripts served from the shop's own origin: the pixel bootstrap, the Shopify custom pixel,
//! and TikTok's SDK for the configured pixel (fetched from `TIKTOK_SDK_URL`, kept in the edge
//! cache for an hour, with the last good copy in KV for a week, for when TikTok cannot be
//! reached).

use tiktok_edge_core::config::Config;
use tiktok_edge_core::snippet::{self, SCRIPT_CACHE_CONTROL, SDK_CACHE_CONTROL};
use worker::{Cache, Context, Env, Fetch, Request, Response, Result};

use crate::log::{self, Level};
use crate::respond;
use crate::store::Store;

// `assets/*.js` without their comment lines and indentation (build.rs).
const PIXEL_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/pixel.js"));
const CUSTOM_PIXEL_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/custom-pixel.js"));
const JAVASCRIPT: &str = "application/javascript; charset=utf-8";

/// A JavaScript answer (the scripts we render, and TikTok's SDK bytes as fetched).
fn script(body: impl Into<Vec<u8>>, cache_control: &str) -> Result<Response> {
    let resp = Response::from_bytes(body.into())?;
    resp.headers().set("Content-Type", JAVASCRIPT)?;
    resp.headers().set("Cache-Control", cache_control)?;
    resp.headers().set("X-Content-Type-Options", "nosniff")?;
    Ok(resp)
}

/// `GET /tt/pixel.js`: the storefront bootstrap with this shop's settings, and the market of
/// the hostname it is served on (`STOREFRONT_HOSTS`).
pub fn pixel_js(req: &Request, config: &Config) -> Result<Response> {
    let market = config.market_of_url(&req.inner().url());
    let body = snippet::render(PIXEL_JS, config, &respond::shop_origin(req)?, market);
    script(body, SCRIPT_CACHE_CONTROL)
}

/// `GET /tt/custom-pixel.js`: the checkout pixel to paste into Shopify's Customer events.
pub fn custom_pixel_js(req: &Request, config: &Config) -> Result<Response> {
    // The checkout's market comes with each checkout event, not from the hostname.
    let body = snippet::render(CUSTOM_PIXEL_JS, config, &respond::shop_origin(req)?, None);
    script(body, SCRIPT_CACHE_CONTROL)
}

/// `GET /tt/sdk.js`: TikTok's events.js, first-party.
pub async fn sdk_js(req: &Request, env: &Env, ctx: &Context, config: &Config) -> Result<Response> {
    let sdkid = tiktok_edge_core::urls::query_param(&req.inner().url(), "sdkid");
    let Some(upstream) = snippet::sdk_upstream(&config.sdk_url, config, sdkid.as_deref()) else {
        let resp = script(
            "/* tiktok-edge: this shop serves the SDK of its own pixels (TIKTOK_PIXEL_ID or TIKTOK_PIXELS) only */\n",
            "no-store",
        )?;
        return Ok(resp.with_status(404));
    };
    let cache = Cache::default();
    if let Some(hit) = cache.get(upstream.as_str(), false).await? {
        return Ok(hit);
    }
    let store = Store::new(env)?;
    match fetch_sdk(&upstream).await {
        Ok(body) => {
            let cached = script(body.as_slice(), SDK_CACHE_CONTROL)?;
            let served = script(body.as_slice(), SDK_CACHE_CONTROL)?;
            ctx.wait_until(async move {
                let kept = async {
                    cache.put(upstream.as_str(), cached).await?;
                    store.save_sdk(&upstream, &body).await
                };
                if let Err(e) = kept.await {
                    log::event(
                        Level::Error,
                        "sdk_cache_failed",
                        &[("error", e.to_string().into())],
                    );
                }
            });
            Ok(served)
        }
        Err(problem) => {
            // Answered below (the last good copy, else a JavaScript comment): one line in the
            // log, not an error with its stack (offline, as in the local demo, it is expected).
            log::event(
                Level::Info,
                "sdk_fetch_failed",
                &[("error", problem.as_str().into())],
            );
            match store.sdk(&upstream).await? {
                // A short age, so the fresh copy replaces it as soon as TikTok answers again.
                Some(body) => {
                    let resp = script(body, "public, max-age=60")?;
                    resp.headers().set("X-TT-SDK", "stale")?;
                    Ok(resp)
                }
                None => {
                    // Still JavaScript, so the page's console says what happened and nothing breaks.
                    let resp = script(
                        format!("/* tiktok-edge: TikTok's SDK could not be fetched ({problem}); check TIKTOK_SDK_URL */\n"),
                        "no-store",
                    )?;
                    Ok(resp.with_status(503))
                }
            }
        }
    }
}

/// The SDK's bytes, or why not.
async fn fetch_sdk(url: &str) -> std::result::Result<Vec<u8>, String> {
    let request = Request::new(url, worker::Method::Get).map_err(|e| e.to_string())?;
    let mut resp = Fetch::Request(request).send().await.map_err(|e| {
        // What the runtime threw, without its stack.
        let text = e.to_string();
        text.lines().next().unwrap_or_default().to_string()
    })?;
    match resp.status_code() {
        200 => resp.bytes().await.map_err(|e| e.to_string()),
        status => Err(format!("TikTok answered HTTP {status}")),
    }
}
