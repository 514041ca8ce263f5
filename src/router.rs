//! The request flow, in one place: configuration, then the route, then its handler.

use tiktok_edge_core::config::{self, Config, DEFAULT_ROUTE_PREFIX};
use tiktok_edge_core::cors::Cors;
use tiktok_edge_core::health::Health;
use tiktok_edge_core::routes::{self, route, Route};
use tiktok_edge_core::urls;
use tiktok_edge_core::Error;
use wasm_bindgen::JsValue;
use worker::{web_sys, Context, Env, Request, Response, Result};

use crate::failure::{Failure, Outcome};
use crate::log::{self, Level};
use crate::store::Store;
use crate::{admin, collect, consent, edge, limits, queue, respond, scripts, settings, webhooks};

/// What the entry (`src/entry.js`) applies by itself to every request of this isolate (an
/// isolate's settings never change): the route prefix, and the origin (`None`: the request's
/// own). A path that does not start with the prefix is the shop's and goes to the origin with
/// its path and query, as [`routes::passthrough_target`] says; any other path is asked about.
/// `None` while the settings are invalid: then every request is asked about.
pub fn passthrough_plan(env: &Env) -> Option<(String, Option<String>)> {
    settings::with_config(env, |loaded| {
        // An unusable ORIGIN_URL: each request is asked about, so a local Worker (which has no
        // origin behind its own URL) says so instead of calling itself.
        let config = loaded
            .as_ref()
            .ok()
            .filter(|c| c.degraded("ORIGIN_URL").is_none())?;
        let origin = config.origin.as_ref().map(|o| o.as_str().to_string());
        Some((config.route_prefix.clone(), origin))
    })
}

/// Where the entry forwards a request itself: the shop's own traffic, to its origin (the
/// request's own URL when `ORIGIN_URL` is unset or invalid). `None` for our routes.
pub fn passthrough_target(url: &str, env: &Env) -> Option<String> {
    settings::with_config(env, |loaded| match loaded {
        Ok(config) => {
            if config.degraded("ORIGIN_URL").is_some() && !routes::own_url_reaches_origin(url) {
                return None; // the router says why
            }
            routes::passthrough_target(&config.route_prefix, config.origin.as_ref(), url)
        }
        Err(err) => {
            // Tracking is off, but a bad setting must never take the storefront down.
            log::event(
                Level::Error,
                "config_invalid",
                &[("error", err.to_string().into())],
            );
            let lookup = |name: &str| settings::var(env, name);
            let origin = config::origin_from(&lookup);
            let origin_invalid =
                origin.is_none() && lookup("ORIGIN_URL").is_some_and(|v| !v.trim().is_empty());
            if origin_invalid && !routes::own_url_reaches_origin(url) {
                return None; // the router says why
            }
            routes::passthrough_target(DEFAULT_ROUTE_PREFIX, origin.as_ref(), url)
        }
    })
}

/// The origin's answer to the shop's own request, from the entry: whatever may be a page, and a
/// fetch that failed (`origin`: what it threw). Synchronous: the session write waits in
/// `waitUntil`, so a page costs no trip through the async machinery.
pub fn serve_shop(
    req: web_sys::Request,
    origin: JsValue,
    env: Env,
    ctx: Context,
) -> Result<web_sys::Response> {
    settings::with_config(&env, |loaded| {
        edge::serve(&req, origin, &env, &ctx, loaded.as_ref().ok())
    })
}

/// Our routes. The answer goes back to the runtime as a `web_sys::Response`.
pub async fn handle(req: Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    respond::answer(dispatch(req, env, ctx).await)
}

async fn dispatch(req: Request, env: Env, ctx: Context) -> Outcome<web_sys::Response> {
    let lookup = |name: &str| settings::var(&env, name);
    let loaded = settings::config(&env);
    let prefix = loaded
        .as_ref()
        .map_or(DEFAULT_ROUTE_PREFIX, |c| c.route_prefix.as_str());
    let route = route(prefix, req.method().as_ref(), &req.path());

    let config = match (&loaded, route) {
        (_, Route::Health) => {
            // Health answers even when KV cannot: no pause or refusal is known then.
            let store = Store::new(&env).ok();
            let health = Health::new(&lookup, &loaded);
            // Depth costs a request to every shard: only when asked (admin, doctor); an uptime
            // monitor's poll reads the pauses from one KV key per pixel.
            let health = if urls::query_param(&req.inner().url(), "queue").as_deref() == Some("1") {
                match queue::health(&env).await {
                    Ok(queue) => health.with_queue(queue),
                    Err(_) => health,
                }
            } else {
                let pauses = match &store {
                    Some(store) => store
                        .queue_pauses(health.pixel_keys())
                        .await
                        .unwrap_or_default(),
                    None => Default::default(),
                };
                health.with_pauses(pauses)
            };
            let (refused, accepted) = match &store {
                Some(store) => (
                    store.refused_webhooks().await.unwrap_or(None),
                    store.webhook_accepted_ms().await.unwrap_or(None),
                ),
                None => (None, None),
            };
            let health = health.with_refused(refused).with_accepted(accepted);
            return Ok(respond::json(health.http_status(), &health)?.into());
        }
        (Ok(config), Route::Passthrough) => {
            // Only a local Worker with an unusable ORIGIN_URL comes here (`passthrough_target`).
            let problem = config.degraded("ORIGIN_URL").map(ToString::to_string);
            return Err(no_origin(problem.unwrap_or_default()));
        }
        (Ok(config), _) => config,
        (Err(err), Route::Passthrough) => return Err(no_origin(err.to_string())),
        (Err(err), _) => return Err(Error::Config(err.clone()).into()),
    };

    let built = match route {
        Route::PixelJs => Ok(scripts::pixel_js(&req, config)?),
        Route::CustomPixelJs => Ok(scripts::custom_pixel_js(&req, config)?),
        Route::SdkJs => Ok(scripts::sdk_js(&req, &env, &ctx, config).await?),
        Route::Collect | Route::Consent | Route::Preflight => {
            browser_call(req, &env, &ctx, config, route).await
        }
        Route::Admin => admin::page(&req, &env, config).await,
        Route::AdminSignIn => admin::sign_in(req, config).await,
        Route::AdminJson => admin::json(&req, &env, config).await,
        Route::AdminResend => admin::resend(req, &env, config).await,
        Route::ShopifyWebhook => webhooks::handle(req, &env, &ctx, config).await,
        Route::Unknown {
            method_not_allowed: true,
        } => Err(Failure::refused(
            405,
            "method_not_allowed",
            "this endpoint does not take that method",
        )),
        _ => Err(Failure::refused(
            404,
            "not_found",
            "no such tiktok-edge endpoint",
        )),
    };
    built.map(web_sys::Response::from)
}

/// The answer of a local Worker without a usable origin: its own URL leads back to itself.
fn no_origin(problem: String) -> Failure {
    Failure::refused(
        502,
        "config_invalid",
        format!(
            "{problem}; a local Worker has no origin behind its own URL, so the shop cannot be \
             reached until ORIGIN_URL is fixed"
        ),
    )
}

/// The endpoints a page calls: only from the shop's own origin or Shopify's pixel sandbox, and
/// at a bounded rate per client.
async fn browser_call(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
    route: Route,
) -> Outcome {
    let cors = respond::cors_of(&req)?;
    if cors == Cors::Deny {
        return Err(Failure::refused(
            403,
            "origin_not_allowed",
            "only the shop's own pages and Shopify's pixel sandbox may call this endpoint",
        ));
    }
    let resp = if route == Route::Preflight {
        Response::empty().map(|r| r.with_status(204))?
    } else if let Some(over) = limits::check(env, &req).await? {
        let message = match over {
            limits::Over::Client => "too many calls from this address; retry in a minute",
            limits::Over::Shop => "the shop's budget of browser calls is spent; retry in a minute",
        };
        let resp = respond::error(429, "rate_limited", message)?;
        resp.headers().set("Retry-After", "60")?;
        resp
    } else if route == Route::Consent {
        // Refusals too carry the CORS headers, so the page can read them.
        respond::answer(consent::handle(req, env, config).await)?
    } else {
        respond::answer(collect::handle(req, env, ctx, config).await)?
    };
    Ok(respond::with_cors(resp, &cors, route == Route::Preflight)?)
}
