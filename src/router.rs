//! The request flow, in one place: configuration, then the route, then its handler.

use tiktok_edge_core::config::{self, Config, DEFAULT_ROUTE_PREFIX};
use tiktok_edge_core::health::Health;
use tiktok_edge_core::routes::{route, Route};
use worker::{console_error, Context, Env, Request, Response, Result};

use crate::{admin, collect, edge, respond, settings, webhooks};

pub async fn handle(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let lookup = |name: &str| settings::var(&env, name);
    let loaded = Config::from_lookup(&lookup);
    let prefix = loaded
        .as_ref()
        .map_or(DEFAULT_ROUTE_PREFIX, |c| c.route_prefix.as_str());
    let route = route(prefix, req.method().as_ref(), &req.path());

    let config = match (&loaded, route) {
        (_, Route::Health) => {
            let health = Health::new(&lookup, &loaded);
            return respond::json(health.http_status(), &health);
        }
        (Ok(config), _) => config,
        (Err(err), Route::Passthrough) => {
            // Tracking is off, but a bad setting must never take the storefront down.
            console_error!(
                "{{\"event\":\"config_invalid\",\"error\":{:?}}}",
                err.to_string()
            );
            return match config::origin_from(&lookup) {
                Ok(origin) => edge::passthrough(&req, origin.as_ref()).await,
                Err(problem) => respond::error(502, "config_invalid", &problem.to_string()),
            };
        }
        (Err(err), _) => return respond::error(503, "config_invalid", &err.to_string()),
    };

    match route {
        Route::Passthrough => edge::serve(req, &env, &ctx, config).await,
        Route::Collect => collect::handle(req, &env, config).await,
        Route::AdminJson => admin::json(&req, &env, config).await,
        Route::ShopifyWebhook => webhooks::handle(req, &env, config).await,
        Route::Unknown {
            method_not_allowed: true,
        } => respond::error(
            405,
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        _ => respond::error(404, "not_found", "no such tiktok-edge endpoint"),
    }
}
