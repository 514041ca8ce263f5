//! Which handler a request goes to. Everything outside the route prefix is the shop's own
//! traffic and passes through untouched.

use crate::config::Origin;
use crate::urls;

/// A request's destination, decided from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    PixelJs,
    SdkJs,
    CustomPixelJs,
    Collect,
    Consent,
    /// `OPTIONS` on a browser endpoint (`collect`, `consent`): a CORS preflight.
    Preflight,
    ShopifyWebhook,
    Admin,
    /// `POST` of the admin sign-in form.
    AdminSignIn,
    AdminJson,
    /// `POST`: the operator re-queues failed or unconfirmed events.
    AdminResend,
    /// Under the prefix, but no such endpoint (or the wrong method): answered 404/405 by us,
    /// never passed to the shop.
    Unknown {
        method_not_allowed: bool,
    },
    Passthrough,
}

/// Routes `path` (without the query) for `method` under `prefix` (e.g. `/tt`).
pub fn route(prefix: &str, method: &str, path: &str) -> Route {
    let Some(rest) = ours(prefix, path) else {
        return Route::Passthrough;
    };
    let (route, allowed): (Route, &[&str]) = match rest {
        "/health" => (Route::Health, &["GET", "HEAD"]),
        "/pixel.js" => (Route::PixelJs, &["GET", "HEAD"]),
        "/sdk.js" => (Route::SdkJs, &["GET", "HEAD"]),
        "/custom-pixel.js" => (Route::CustomPixelJs, &["GET", "HEAD"]),
        "/collect" | "/consent" if method == "OPTIONS" => (Route::Preflight, &["OPTIONS"]),
        "/collect" => (Route::Collect, &["POST"]),
        "/consent" => (Route::Consent, &["POST"]),
        "/webhooks/shopify" => (Route::ShopifyWebhook, &["POST"]),
        "/admin" if method == "POST" => (Route::AdminSignIn, &["POST"]),
        "/admin" => (Route::Admin, &["GET", "HEAD"]),
        "/admin.json" => (Route::AdminJson, &["GET", "HEAD"]),
        "/admin/resend" => (Route::AdminResend, &["POST"]),
        _ => {
            return Route::Unknown {
                method_not_allowed: false,
            }
        }
    };
    if allowed.contains(&method) {
        route
    } else {
        Route::Unknown {
            method_not_allowed: true,
        }
    }
}

/// What of `path` follows `prefix` when the path is ours: `/tt` and `/tt/…`, not `/ttx`.
fn ours<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Where a request for `url` goes when it is the shop's own traffic: the same path and query
/// on `origin` (`ORIGIN_URL`), or `url` itself when no origin is set (an Orange-to-Orange
/// route reaches Shopify). `None` when `url` is under `prefix`: the router answers it.
pub fn passthrough_target(prefix: &str, origin: Option<&Origin>, url: &str) -> Option<String> {
    let path_and_query = urls::path_and_query(url);
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    if ours(prefix, path).is_some() {
        return None;
    }
    Some(origin.map_or_else(|| url.to_string(), |o| o.join(path_and_query)))
}

/// Whether a fetch of `url` itself can reach the shop: on a Cloudflare route it goes to the
/// origin behind the route; a local Worker's own address (loopback) only leads back to the
/// Worker, so without a usable `ORIGIN_URL` it would call itself forever.
pub fn own_url_reaches_origin(url: &str) -> bool {
    let Ok(parts) = urls::split_http_url(url) else {
        return false;
    };
    let host = parts.host.to_ascii_lowercase();
    // No std::net parser (wasm size): IPv4 loopback is 127.0.0.0/8, written as digits and dots.
    let ipv4_loopback =
        host.starts_with("127.") && host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !(ipv4_loopback
        || matches!(host.as_str(), "localhost" | "[::1]" | "0.0.0.0" | "[::]")
        || host.ends_with(".localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("/tt", "GET", "/tt/health", Route::Health),
            ("/tt", "HEAD", "/tt/health", Route::Health),
            ("/tt", "GET", "/tt/pixel.js", Route::PixelJs),
            ("/tt", "GET", "/tt/sdk.js", Route::SdkJs),
            ("/tt", "GET", "/tt/custom-pixel.js", Route::CustomPixelJs),
            ("/tt", "POST", "/tt/collect", Route::Collect),
            ("/tt", "OPTIONS", "/tt/collect", Route::Preflight),
            ("/tt", "POST", "/tt/consent", Route::Consent),
            ("/tt", "OPTIONS", "/tt/consent", Route::Preflight),
            ("/tt", "POST", "/tt/webhooks/shopify", Route::ShopifyWebhook),
            ("/tt", "GET", "/tt/admin", Route::Admin),
            ("/tt", "POST", "/tt/admin", Route::AdminSignIn),
            ("/tt", "GET", "/tt/admin.json", Route::AdminJson),
            ("/tt", "POST", "/tt/admin/resend", Route::AdminResend),
            (
                "/tt",
                "GET",
                "/tt/admin/resend",
                Route::Unknown {
                    method_not_allowed: true,
                },
            ),
            ("/tt", "GET", "/", Route::Passthrough),
            ("/tt", "POST", "/cart/add.js", Route::Passthrough),
            ("/tt", "GET", "/ttx/health", Route::Passthrough),
            ("/tt", "GET", "/products/tt/health", Route::Passthrough),
            ("/t2", "GET", "/tt/health", Route::Passthrough),
            ("/t2", "GET", "/t2/health", Route::Health),
            ("/a/b", "GET", "/a/b/health", Route::Health),
            (
                "/tt",
                "GET",
                "/tt",
                Route::Unknown {
                    method_not_allowed: false,
                },
            ),
            (
                "/tt",
                "GET",
                "/tt/nope",
                Route::Unknown {
                    method_not_allowed: false,
                },
            ),
            (
                "/tt",
                "GET",
                "/tt/collect",
                Route::Unknown {
                    method_not_allowed: true,
                },
            ),
            (
                "/tt",
                "POST",
                "/tt/health",
                Route::Unknown {
                    method_not_allowed: true,
                },
            ),
            (
                "/tt",
                "GET",
                "/tt/webhooks/shopify",
                Route::Unknown {
                    method_not_allowed: true,
                },
            ),
        ];
        for (prefix, method, path, want) in cases {
            assert_eq!(
                route(prefix, method, path),
                want,
                "{method} {path} under {prefix}"
            );
        }
    }

    #[test]
    fn the_shops_traffic_goes_to_the_origin_with_its_path_and_query() {
        let lookup =
            |name: &str| (name == "ORIGIN_URL").then(|| "http://127.0.0.1:8787".to_string());
        let origin = crate::config::origin_from(&lookup);
        let cases = [
            (
                "/tt",
                "https://shop.example/products/mug?variant=1",
                Some("http://127.0.0.1:8787/products/mug?variant=1"),
            ),
            (
                "/tt",
                "https://shop.example/",
                Some("http://127.0.0.1:8787/"),
            ),
            (
                "/tt",
                "https://shop.example/ttx/a",
                Some("http://127.0.0.1:8787/ttx/a"),
            ),
            (
                "/tt",
                "https://shop.example/products?next=/tt/collect",
                Some("http://127.0.0.1:8787/products?next=/tt/collect"),
            ),
            ("/tt", "https://shop.example/tt", None),
            ("/tt", "https://shop.example/tt?x=1", None),
            ("/tt", "https://shop.example/tt/collect", None),
            ("/tt", "https://shop.example/tt/nope", None),
            (
                "/edge/tt",
                "https://shop.example/tt/collect",
                Some("http://127.0.0.1:8787/tt/collect"),
            ),
        ];
        for (prefix, url, want) in cases {
            assert_eq!(
                passthrough_target(prefix, origin.as_ref(), url).as_deref(),
                want,
                "{url} under {prefix}"
            );
        }
        assert_eq!(
            passthrough_target("/tt", None, "https://shop.example/cart?a=b").as_deref(),
            Some("https://shop.example/cart?a=b"),
            "without ORIGIN_URL the request's own URL"
        );
    }

    #[test]
    fn only_a_routed_hostname_reaches_the_origin_through_its_own_url() {
        for url in [
            "https://shop.example.com/products/mug",
            "http://shop.example:8080/",
            "https://127.example.com/",
        ] {
            assert!(own_url_reaches_origin(url), "{url}");
        }
        for url in [
            "http://127.0.0.1:8787/products/mug",
            "http://localhost:8787/",
            "http://LOCALHOST/",
            "http://app.localhost/",
            "http://[::1]:8787/",
            "http://0.0.0.0:8787/",
            "not a url",
        ] {
            assert!(!own_url_reaches_origin(url), "{url}");
        }
    }

    #[test]
    fn a_request_is_forwarded_exactly_when_its_route_is_the_shops() {
        // The entry forwards what `passthrough_target` names; the router answers the rest, and
        // has no passthrough of its own: the two must never disagree.
        let paths = [
            "/",
            "/tt",
            "/tt/",
            "/tt/health",
            "/tt/nope",
            "/ttx",
            "/ttx/y",
            "/t",
            "/TT/health",
            "//tt/health",
            "/tt//health",
            "/edge/tt",
            "/edge/tt/collect",
            "/edge/ttx",
            "/products",
        ];
        for prefix in ["/tt", "/edge/tt"] {
            for path in paths {
                for query in ["", "?a=1", "?next=/tt/collect"] {
                    let url = format!("https://shop.example{path}{query}");
                    let forwarded = passthrough_target(prefix, None, &url).is_some();
                    let shops = route(prefix, "GET", path) == Route::Passthrough;
                    assert_eq!(forwarded, shops, "{url} under {prefix}");
                }
            }
        }
    }
}
