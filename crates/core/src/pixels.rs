//! The shop's TikTok pixels and storefront hostnames: `TIKTOK_PIXELS` (one object per pixel,
//! each optionally scoped to Shopify markets and to some events) or the one pixel of
//! `TIKTOK_PIXEL_ID`, and `STOREFRONT_HOSTS` (each hostname, optionally with the market it
//! serves). [`route`] says which pixels an event goes to: the pixels scoped to its market, or,
//! for a market no scoped pixel serves (or an unknown one), the all-markets pixels; then only
//! those that take its event name.

use crate::secret::Secret;

/// The token every pixel uses unless its `token` names another secret.
pub const DEFAULT_TOKEN: &str = "TIKTOK_ACCESS_TOKEN";

/// One TikTok pixel the shop reports to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixel {
    /// Its send-queue key: the pixel code, or `""` for the one pixel of `TIKTOK_PIXEL_ID`
    /// (rows queued under the single-pixel settings keep the key they always had).
    pub key: String,
    /// The pixel code; `None` only for the single-pixel settings without `TIKTOK_PIXEL_ID`.
    pub id: Option<String>,
    /// The name of the secret holding its Events API token ([`DEFAULT_TOKEN`] by default).
    pub token_name: String,
    /// Absent (the secret is not set): dry run for this pixel.
    pub token: Option<Secret>,
    pub test_event_code: Option<String>,
    /// Shopify market handles, lowercase; empty: an all-markets pixel.
    pub markets: Vec<String>,
    /// TikTok event names it receives; `None`: every event.
    pub events: Option<Vec<String>>,
}

impl Pixel {
    /// The one pixel of the single-pixel settings.
    pub fn single(
        id: Option<String>,
        token: Option<Secret>,
        test_event_code: Option<String>,
    ) -> Pixel {
        Pixel {
            key: String::new(),
            id,
            token_name: DEFAULT_TOKEN.to_string(),
            token,
            test_event_code,
            markets: Vec::new(),
            events: None,
        }
    }

    /// Dry run: no token (or no pixel code), so its events are recorded and never sent.
    pub fn dry_run(&self) -> bool {
        self.token.is_none() || self.id.is_none()
    }

    /// Whether it takes events named `event`.
    pub fn takes(&self, event: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == event))
    }
}

/// The market an event belongs to: its `market_handle`, unless it is TikTok's default (no
/// market known).
pub fn market_of(event: &crate::tiktok::Event) -> Option<&str> {
    let handle = event.properties.market_handle.as_str();
    (handle != crate::tiktok::DEFAULT_MARKET_HANDLE && !handle.is_empty()).then_some(handle)
}

/// The pixels serving `market`: those scoped to it, else (no scoped pixel serves it, or the
/// market is unknown) the all-markets pixels.
pub fn serving<'a>(pixels: &'a [Pixel], market: Option<&str>) -> Vec<&'a Pixel> {
    let scoped: Vec<&Pixel> = match market {
        Some(market) => pixels
            .iter()
            .filter(|p| p.markets.iter().any(|m| m.eq_ignore_ascii_case(market)))
            .collect(),
        None => Vec::new(),
    };
    if scoped.is_empty() {
        pixels.iter().filter(|p| p.markets.is_empty()).collect()
    } else {
        scoped
    }
}

/// The pixels an event named `event` of `market` goes to: [`serving`] its market, and taking
/// its event name. Browser (`assets/*.js`) and server follow this one rule.
pub fn route<'a>(pixels: &'a [Pixel], market: Option<&str>, event: &str) -> Vec<&'a Pixel> {
    serving(pixels, market)
        .into_iter()
        .filter(|p| p.takes(event))
        .collect()
}

/// One hostname of `STOREFRONT_HOSTS`, with the market it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Lowercase, with `:port` when one was given.
    pub name: String,
    pub market: Option<String>,
}

/// The market a request to `host` (as in a URL: lowercase, `:port` when not the default) is
/// for: the entry naming the host with its port, else the host alone.
pub fn market_of_host<'a>(hosts: &'a [Host], host: &str) -> Option<&'a str> {
    let host = host.to_ascii_lowercase();
    let bare = host.split(':').next().unwrap_or_default();
    hosts
        .iter()
        .find(|h| h.name == host)
        .or_else(|| hosts.iter().find(|h| h.name == bare))
        .and_then(|h| h.market.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(id: &str, markets: &[&str], events: Option<&[&str]>) -> Pixel {
        Pixel {
            key: id.into(),
            id: Some(id.into()),
            token_name: DEFAULT_TOKEN.into(),
            token: Some(Secret::new("t")),
            test_event_code: None,
            markets: markets.iter().map(|m| m.to_string()).collect(),
            events: events.map(|e| e.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn ids(pixels: Vec<&Pixel>) -> Vec<&str> {
        pixels.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn an_event_goes_to_its_markets_pixels_else_to_the_all_markets_ones() {
        let shop = [
            pixel("ALL", &[], None),
            pixel("FR", &["fr", "be"], None),
            pixel("DE", &["de"], Some(&["Purchase"])),
            pixel("ALL_BUY", &[], Some(&["Purchase"])),
        ];
        let table: &[(Option<&str>, &str, &[&str])] = &[
            (Some("fr"), "AddToCart", &["FR"]),
            (Some("FR"), "Purchase", &["FR"]),
            (Some("be"), "ViewContent", &["FR"]),
            (Some("de"), "Purchase", &["DE"]),
            // The market is served by a scoped pixel that does not take the event: nobody.
            (Some("de"), "AddToCart", &[]),
            (Some("us"), "AddToCart", &["ALL"]),
            (Some("us"), "Purchase", &["ALL", "ALL_BUY"]),
            (None, "Purchase", &["ALL", "ALL_BUY"]),
        ];
        for (market, event, expected) in table {
            assert_eq!(
                ids(route(&shop, *market, event)),
                *expected,
                "{market:?} {event}"
            );
        }
    }

    #[test]
    fn the_single_pixel_takes_everything() {
        let one = [Pixel::single(Some("P".into()), None, None)];
        for market in [None, Some("fr")] {
            assert_eq!(ids(route(&one, market, "Purchase")), [""]);
        }
        assert!(one[0].dry_run());
    }
}
