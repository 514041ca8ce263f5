//! Who may call the browser endpoints (`/tt/collect`, `/tt/consent`) from a page: the shop's
//! own origin, and Shopify's customer-events sandbox, whose sandboxed iframe has the opaque
//! origin `null`. Any other origin is refused outright, so no third-party page can feed events
//! into the shop's pixel.

/// The `Origin` a sandboxed iframe (Shopify's custom-pixel sandbox) sends.
pub const SANDBOX_ORIGIN: &str = "null";

/// The answer to a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// No `Origin` header: not a cross-origin browser call (same-origin navigation, beacon,
    /// server-to-server). Allowed, no CORS headers needed.
    NotCors,
    /// Allowed: echo this value in `Access-Control-Allow-Origin`.
    Allow(String),
    /// Another site's page.
    Deny,
}

/// Decides for the `Origin` header `origin` on a request to `shop_origin` (scheme + host[:port]).
pub fn check(origin: Option<&str>, shop_origin: &str) -> Cors {
    match origin {
        None => Cors::NotCors,
        Some(o) if o == SANDBOX_ORIGIN || o.eq_ignore_ascii_case(shop_origin) => {
            Cors::Allow(o.to_string())
        }
        Some(_) => Cors::Deny,
    }
}

/// Headers for an allowed origin; `preflight` adds what an `OPTIONS` answer needs.
pub fn headers(allowed: &str, preflight: bool) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("Access-Control-Allow-Origin", allowed.to_string()),
        ("Access-Control-Allow-Credentials", "true".to_string()),
        ("Vary", "Origin".to_string()),
    ];
    if preflight {
        h.push(("Access-Control-Allow-Methods", "POST, OPTIONS".to_string()));
        h.push(("Access-Control-Allow-Headers", "Content-Type".to_string()));
        h.push(("Access-Control-Max-Age", "86400".to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_origin_and_sandbox_only() {
        let shop = "https://shop.example";
        assert_eq!(check(None, shop), Cors::NotCors);
        assert_eq!(
            check(Some("https://shop.example"), shop),
            Cors::Allow("https://shop.example".into())
        );
        assert_eq!(check(Some("null"), shop), Cors::Allow("null".into()));
        for evil in [
            "https://evil.example",
            "https://shop.example.evil.example",
            "http://shop.example",
            "https://shop.example:8443",
            "",
        ] {
            assert_eq!(check(Some(evil), shop), Cors::Deny, "{evil}");
        }
    }

    #[test]
    fn preflight_adds_methods_and_headers() {
        assert_eq!(headers("null", false).len(), 3);
        let pre = headers("null", true);
        assert!(pre
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Headers" && v == "Content-Type"));
    }
}
