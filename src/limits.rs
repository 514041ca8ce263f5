//! Rate limiting of the public browser endpoints by the Workers rate limiting bindings
//! (counted at the edge location, no storage round trip): per client (an IPv4 address, an
//! IPv6 /64: `tiktok_edge_core::limits`), then a budget for the whole shop, so a flood from
//! many addresses cannot fill the queue either.

use tiktok_edge_core::limits::{client_key, SHOP_KEY};
use worker::{console_error, Env, Request, Result};

pub const CLIENT_BINDING: &str = "COLLECT_RATE_LIMITER";
pub const SHOP_BINDING: &str = "SHOP_RATE_LIMITER";

/// Which limit a call is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Client,
    Shop,
}

/// `Some(limit)` when this call is over one. A missing binding sets no limit.
pub async fn check(env: &Env, req: &Request) -> Result<Option<Over>> {
    let ip = req.headers().get("CF-Connecting-IP")?;
    if !allowed(env, CLIENT_BINDING, client_key(ip.as_deref())).await {
        return Ok(Some(Over::Client));
    }
    if !allowed(env, SHOP_BINDING, SHOP_KEY.to_string()).await {
        return Ok(Some(Over::Shop));
    }
    Ok(None)
}

async fn allowed(env: &Env, binding: &str, key: String) -> bool {
    let Ok(limiter) = env.rate_limiter(binding) else {
        return true;
    };
    match limiter.limit(key).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            // The limiter failing must not drop real shoppers' events.
            console_error!(
                "{{\"event\":\"rate_limiter_failed\",\"binding\":{:?},\"error\":{:?}}}",
                binding,
                e.to_string()
            );
            true
        }
    }
}
