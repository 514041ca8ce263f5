//! The browser scripts the Worker serves first-party: the storefront bootstrap (`/tt/pixel.js`)
//! and the Shopify custom pixel (`/tt/custom-pixel.js`). Both are static files in `assets/` with
//! one placeholder that becomes the shop's settings; the pixel id is public, secrets never go here.

use crate::config::{Config, ConsentDefault};
use serde::Serialize;

/// The placeholder the asset files carry where their settings object goes.
pub const PLACEHOLDER: &str = "__TT_EDGE_CONFIG__";

/// How long browsers and Cloudflare may keep a served script: short, so a settings change
/// reaches shoppers within minutes.
pub const SCRIPT_CACHE_CONTROL: &str = "public, max-age=300";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnippetConfig<'a> {
    /// Every pixel with a code: the scripts load those serving the page's market and track
    /// each event to those taking it, by the rule of `pixels::route`.
    pixels: Vec<BrowserPixel<'a>>,
    /// `TIKTOK_PIXELS` is set: events are tracked through `ttq.instance(id)` only. The single
    /// pixel's settings track through `ttq` as before.
    scoped: bool,
    /// The market of the hostname the script was served for (`STOREFRONT_HOSTS`).
    market: Option<&'a str>,
    prefix: &'a str,
    /// The shop's own origin: the custom pixel runs in a sandbox and needs absolute URLs.
    origin: &'a str,
    consent_default: &'a str,
    purchase_event: &'a str,
}

/// A pixel as the browser sees it: public fields only.
#[derive(Serialize)]
struct BrowserPixel<'a> {
    id: &'a str,
    markets: &'a [String],
    events: Option<&'a [String]>,
}

/// `template` with its placeholder replaced by the settings the browser needs; `market`: the
/// market of the hostname it is served on.
pub fn render(template: &str, config: &Config, shop_origin: &str, market: Option<&str>) -> String {
    let settings = SnippetConfig {
        pixels: config
            .pixels
            .iter()
            .filter_map(|p| {
                Some(BrowserPixel {
                    id: p.id.as_deref()?,
                    markets: &p.markets,
                    events: p.events.as_deref(),
                })
            })
            .collect(),
        scoped: config.pixels.iter().any(|p| !p.key.is_empty()),
        market,
        prefix: &config.route_prefix,
        origin: shop_origin,
        consent_default: match config.consent_default {
            ConsentDefault::Allowed => "allowed",
            ConsentDefault::Denied => "denied",
        },
        purchase_event: &config.purchase_event_name,
    };
    // serde_json escapes quotes and control characters, and `<` is escaped too so no value can
    // close a surrounding <script> element.
    let json = serde_json::to_string(&settings)
        .unwrap_or_else(|_| "{}".to_string())
        .replace('<', "\\u003c");
    template.replacen(PLACEHOLDER, &json, 1)
}

/// How long a fetched copy of TikTok's SDK is served before it is fetched again.
pub const SDK_CACHE_CONTROL: &str = "public, max-age=3600";

/// The URL to fetch TikTok's SDK from for a `/tt/sdk.js?sdkid=…` request: `TIKTOK_SDK_URL`
/// with the asked pixel's code (the first pixel's when none is asked) and `lib=ttq`. `None`
/// when the request asks for a pixel not configured: only the shop's own pixels' SDK is
/// served, so the edge cache and KV hold one copy per pixel whatever the query says, and no
/// one can make the Worker fetch other pixels' code.
pub fn sdk_upstream(sdk_url: &str, config: &Config, asked: Option<&str>) -> Option<String> {
    let mut ids = config.pixels.iter().filter_map(|p| p.id.as_deref());
    let pixel_id = match asked {
        Some(asked) => Some(ids.find(|id| *id == asked)?),
        None => ids.next(),
    };
    let sep = if sdk_url.contains('?') { '&' } else { '?' };
    Some(match pixel_id {
        Some(id) => format!("{sdk_url}{sep}sdkid={id}&lib=ttq"),
        None => sdk_url.to_string(),
    })
}

/// The script tag injected into `<head>` of HTML pages.
pub fn script_tag(prefix: &str) -> String {
    format!("<script src=\"{prefix}/pixel.js\" async></script>")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::from_pairs as config;

    #[test]
    fn settings_replace_the_placeholder() {
        let c = config(&[
            ("TIKTOK_PIXEL_ID", "C9Q2MJ3C77U4P674RPG0"),
            ("CONSENT_DEFAULT", "denied"),
            ("PURCHASE_EVENT_NAME", "Purchase"),
        ]);
        let out = render(
            "var CONFIG = __TT_EDGE_CONFIG__;",
            &c,
            "https://shop.example",
            None,
        );
        assert_eq!(
            out,
            r#"var CONFIG = {"pixels":[{"id":"C9Q2MJ3C77U4P674RPG0","markets":[],"events":null}],"scoped":false,"market":null,"prefix":"/tt","origin":"https://shop.example","consentDefault":"denied","purchaseEvent":"Purchase"};"#
        );
    }

    #[test]
    fn several_pixels_are_scoped_with_the_hosts_market_and_no_token() {
        let c = config(&[
            (
                "TIKTOK_PIXELS",
                r#"[{"id":"ALL1"},{"id":"FR1","token":"TOKEN_FR","markets":["fr"],"events":["Purchase"]}]"#,
            ),
            ("TOKEN_FR", "secret-fr"),
        ]);
        let out = render("__TT_EDGE_CONFIG__", &c, "https://acme.fr", Some("fr"));
        assert!(out.starts_with(r#"{"pixels":[{"id":"ALL1","markets":[],"events":null},{"id":"FR1","markets":["fr"],"events":["Purchase"]}],"scoped":true,"market":"fr","#), "{out}");
        assert!(
            !out.contains("secret-fr") && !out.contains("TOKEN_FR"),
            "{out}"
        );
    }

    #[test]
    fn values_cannot_break_out_of_the_script() {
        let c = config(&[]);
        let out = render("x=__TT_EDGE_CONFIG__", &c, "https://a\"</script><b>", None);
        assert!(!out.contains("</script>") && !out.contains("\"<"));
        assert!(out.contains(r#"https://a\"\u003c/script>\u003cb>"#));
    }

    #[test]
    fn sdk_url_is_the_configured_pixels_only() {
        let base = "https://analytics.tiktok.com/i18n/pixel/events.js";
        let id = "C9Q2MJ3C77U4P674RPG0";
        let ours = config(&[("TIKTOK_PIXEL_ID", id)]);
        let none = config(&[]);
        let url =
            "https://analytics.tiktok.com/i18n/pixel/events.js?sdkid=C9Q2MJ3C77U4P674RPG0&lib=ttq";
        assert_eq!(sdk_upstream(base, &ours, Some(id)).as_deref(), Some(url));
        assert_eq!(sdk_upstream(base, &ours, None).as_deref(), Some(url));
        assert_eq!(sdk_upstream(base, &ours, Some("OTHERPIXEL")), None);
        assert_eq!(sdk_upstream(base, &ours, Some("x&evil=1")), None);
        assert_eq!(sdk_upstream(base, &none, Some("ANY")), None);
        assert_eq!(sdk_upstream(base, &none, None).as_deref(), Some(base));
        let two = config(&[("TIKTOK_PIXELS", r#"[{"id":"P1"},{"id":"P2"}]"#)]);
        assert_eq!(
            sdk_upstream("http://127.0.0.1:9/e.js?v=2", &two, None).as_deref(),
            Some("http://127.0.0.1:9/e.js?v=2&sdkid=P1&lib=ttq")
        );
        assert_eq!(
            sdk_upstream(base, &two, Some("P2")).as_deref(),
            Some("https://analytics.tiktok.com/i18n/pixel/events.js?sdkid=P2&lib=ttq")
        );
    }

    #[test]
    fn tag_uses_the_prefix() {
        assert_eq!(
            script_tag("/edge"),
            r#"<script src="/edge/pixel.js" async></script>"#
        );
    }
}
