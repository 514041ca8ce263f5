//! Rate limiting of the public browser endpoints per client IP, by the Workers rate limiting
//! binding (counted at the edge location, no storage round trip).

use worker::{console_error, Env, Request, Result};

pub const BINDING: &str = "COLLECT_RATE_LIMITER";

/// Whether this client may make another call now. Without the binding there is no limit.
pub async fn allowed(env: &Env, req: &Request) -> Result<bool> {
    let Ok(limiter) = env.rate_limiter(BINDING) else {
        return Ok(true);
    };
    let key = req
        .headers()
        .get("CF-Connecting-IP")?
        .unwrap_or_else(|| "unknown".to_string());
    match limiter.limit(key).await {
        Ok(outcome) => Ok(outcome.success),
        Err(e) => {
            // The limiter failing must not drop real shoppers' events.
            console_error!(
                "{{\"event\":\"rate_limiter_failed\",\"error\":{:?}}}",
                e.to_string()
            );
            Ok(true)
        }
    }
}
