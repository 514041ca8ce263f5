//! Rate limiting of the public browser endpoints by the Workers rate limiting bindings
//! (counted at the edge location, no storage round trip): per client (an IPv4 address, an
//! IPv6 /64: `tiktok_edge_core::limits`), then a budget for the whole shop, so a flood from
//! many addresses cannot fill the queue either. Page views' KV writes have a per-client budget
//! of their own in the same limiter ([`PageBudget`]).

use tiktok_edge_core::edge::Plan;
use tiktok_edge_core::limits::{client_key, page_key, SHOP_KEY};
use worker::{Env, RateLimiter, Request, Result};

use crate::log::{self, Level};

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
    match env.rate_limiter(binding) {
        Ok(limiter) => take(&limiter, binding, key).await,
        Err(_) => true,
    }
}

/// One call counted under `key`; whether it is within the limit.
async fn take(limiter: &RateLimiter, binding: &str, key: String) -> bool {
    match limiter.limit(key).await {
        Ok(outcome) => outcome.success,
        Err(e) => {
            // The limiter failing must not drop real shoppers' events.
            let fields = [("binding", binding.into()), ("error", e.to_string().into())];
            log::event(Level::Error, "rate_limiter_failed", &fields);
            true
        }
    }
}

/// A client's budget of KV writes from page views: each session record or join link a page
/// would write takes one call of `COLLECT_RATE_LIMITER` under the client's page key; beyond
/// the limit the page is served as always and the writes are left out.
pub struct PageBudget {
    limiter: Option<RateLimiter>,
    key: String,
}

impl PageBudget {
    pub fn new(env: &Env, ip: Option<&str>) -> PageBudget {
        PageBudget {
            limiter: env.rate_limiter(CLIENT_BINDING).ok(),
            key: page_key(ip),
        }
    }

    /// `plan` with the writes this budget still covers.
    pub async fn cover(&self, plan: Plan) -> Plan {
        let Some(limiter) = &self.limiter else {
            return plan;
        };
        let mut covered = 0;
        while covered < plan.writes() && take(limiter, CLIENT_BINDING, self.key.clone()).await {
            covered += 1;
        }
        if covered < plan.writes() {
            let left_out = plan.writes() - covered;
            log::event(
                Level::Info,
                "page_writes_over_budget",
                &[("left_out", left_out.into())],
            );
        }
        plan.within(covered)
    }
}
