//! The shop's TikTok pixels and storefront hostnames: `TIKTOK_PIXELS` (one object per pixel,
//! each optionally scoped to Shopify markets and to some events) or the one pixel of
//! `TIKTOK_PIXEL_ID`, and `STOREFRONT_HOSTS` (each hostname, optionally with the market it
//! serves). [`route`] says which pixels an event goes to: the pixels scoped to its market, or,
//! for a market no scoped pixel serves (or an unknown one), the all-markets pixels; then only
//! those that take its event name.

use crate::config::Secret;
use serde::Deserialize;

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

const PIXELS_EXAMPLE: &str = r#"[{"id": "C9Q2MJ3C77U4P674RPG0"}, {"id": "CAB2…", "token": "TIKTOK_ACCESS_TOKEN_FR", "markets": ["fr"]}]"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    test_event_code: Option<String>,
    #[serde(default)]
    markets: Option<Vec<String>>,
    #[serde(default)]
    events: Option<Vec<String>>,
}

/// `TIKTOK_PIXELS`: the JSON array of pixels, each token read through `secret` (by its name).
/// The error names the pixel and field, and how to fix it.
pub fn parse_pixels(
    v: &str,
    secret: &dyn Fn(&str) -> Option<Secret>,
) -> Result<Vec<Pixel>, String> {
    let entries: Vec<Entry> = serde_json::from_str(v).map_err(|e| {
        format!("must be a JSON array of pixel objects like {PIXELS_EXAMPLE} (fields: id, token, test_event_code, markets, events): {e}")
    })?;
    if entries.is_empty() {
        return Err(format!(
            "lists no pixel: give at least one, like {PIXELS_EXAMPLE}, or remove it and use TIKTOK_PIXEL_ID"
        ));
    }
    let mut pixels: Vec<Pixel> = Vec::new();
    for (n, entry) in entries.into_iter().enumerate() {
        let at = |field: &str| format!("pixel {} (`{field}`)", n + 1);
        let id = crate::config::token(
            &entry.id,
            64,
            "the pixel code from TikTok Events Manager, e.g. C9Q2MJ3C77U4P674RPG0",
        )
        .map_err(|e| format!("{}: {e}", at("id")))?;
        if pixels.iter().any(|p| p.key == id) {
            return Err(format!(
                "{}: {id} is listed twice: give each pixel once (list all its markets in one entry)",
                at("id")
            ));
        }
        let token_name = entry.token.unwrap_or_else(|| DEFAULT_TOKEN.to_string());
        let env_name = !token_name.is_empty()
            && token_name.len() <= 64
            && token_name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !env_name {
            return Err(format!(
                "{}: must be the NAME of the secret holding this pixel's Events API token (capitals, digits, `_`, like TIKTOK_ACCESS_TOKEN_FR), never the token itself",
                at("token")
            ));
        }
        let test_event_code = entry
            .test_event_code
            .map(|code| {
                crate::config::token(
                    &code,
                    64,
                    "the code shown under Test Events in TikTok Events Manager",
                )
            })
            .transpose()
            .map_err(|e| format!("{}: {e}", at("test_event_code")))?;
        let markets = entry
            .markets
            .unwrap_or_default()
            .iter()
            .map(|m| parse_market(m).map_err(|e| format!("{}: {e}", at("markets"))))
            .collect::<Result<Vec<_>, _>>()?;
        let events = match entry.events {
            None => None,
            Some(names) if names.is_empty() => {
                return Err(format!(
                    "{}: is empty, so the pixel would get nothing: leave `events` out for every event, or list some",
                    at("events")
                ))
            }
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        crate::config::parse_event_name(n)
                            .map_err(|e| format!("{}: {e}", at("events")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        pixels.push(Pixel {
            key: id.clone(),
            id: Some(id),
            token: secret(&token_name),
            token_name,
            test_event_code,
            markets,
            events,
        });
    }
    Ok(pixels)
}

fn parse_market(v: &str) -> Result<String, String> {
    let m = v.trim().to_ascii_lowercase();
    if !m.is_empty()
        && m.len() <= 64
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(m)
    } else {
        Err(format!(
            "{v:?} is not a Shopify market handle (letters, digits, `-`, `_`, like fr or north-america: Shopify admin → Settings → Markets)"
        ))
    }
}

/// `STOREFRONT_HOSTS`: comma-separated hostnames, each optionally `host=market_handle`.
pub fn parse_hosts(v: &str) -> Result<Vec<Host>, String> {
    let mut hosts: Vec<Host> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, market) = match item.split_once('=') {
            Some((name, market)) => (name.trim(), Some(parse_market(market)?)),
            None => (item, None),
        };
        let name = name.to_ascii_lowercase();
        let (host, port) = match name.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (name.as_str(), None),
        };
        let valid_host = host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let valid_port = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid_host || !valid_port {
            return Err(format!(
                "{item:?} is not a hostname: list bare hostnames, each optionally with its Shopify market, like `acme.com, acme.fr=fr` (no scheme, path or `/`)"
            ));
        }
        if hosts.iter().any(|h| h.name == name) {
            return Err(format!("{name} is listed twice: give each hostname once"));
        }
        hosts.push(Host { name, market });
    }
    if hosts.is_empty() {
        return Err("lists no hostname: like `acme.com, acme.fr=fr`".to_string());
    }
    Ok(hosts)
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

    #[test]
    fn pixels_parse_with_defaults_and_their_own_secrets() {
        let secret = |name: &str| (name == "TOKEN_FR").then(|| Secret::new("fr-token"));
        let pixels = parse_pixels(
            r#"[{"id":"ALL1"},{"id":"FR1","token":"TOKEN_FR","test_event_code":"TEST9","markets":["FR"," be "],"events":["Purchase"]}]"#,
            &secret,
        )
        .unwrap();
        assert_eq!(pixels[0].token_name, DEFAULT_TOKEN);
        assert!(pixels[0].dry_run(), "TIKTOK_ACCESS_TOKEN is not set here");
        assert_eq!(pixels[1].token, Some(Secret::new("fr-token")));
        assert_eq!(pixels[1].markets, ["fr", "be"]);
        assert_eq!(pixels[1].test_event_code.as_deref(), Some("TEST9"));
        assert_eq!(
            pixels[1].events.as_deref(),
            Some(&["Purchase".to_string()][..])
        );
    }

    #[test]
    fn each_pixel_problem_names_the_pixel_the_field_and_the_fix() {
        let none = |_: &str| None;
        let table = [
            ("{}", "JSON array"),
            ("[]", "lists no pixel"),
            (r#"[{"token":"X"}]"#, "missing field `id`"),
            (r#"[{"id":"A","market":["fr"]}]"#, "unknown field `market`"),
            (r#"[{"id":"A"},{"id":"bad id"}]"#, "pixel 2 (`id`)"),
            (r#"[{"id":"A"},{"id":"A"}]"#, "listed twice"),
            (
                r#"[{"id":"A","token":"sk-live-123"}]"#,
                "never the token itself",
            ),
            (r#"[{"id":"A","markets":["f r"]}]"#, "pixel 1 (`markets`)"),
            (r#"[{"id":"A","events":[]}]"#, "leave `events` out"),
            (
                r#"[{"id":"A","events":["Add To Cart"]}]"#,
                "pixel 1 (`events`)",
            ),
            (
                r#"[{"id":"A","test_event_code":"a b"}]"#,
                "pixel 1 (`test_event_code`)",
            ),
        ];
        for (value, says) in table {
            let err = parse_pixels(value, &none).unwrap_err();
            assert!(err.contains(says), "{value}: {err}");
            assert!(!err.contains("sk-live-123"), "{err}");
        }
    }

    #[test]
    fn hosts_map_to_their_markets() {
        let hosts = parse_hosts(" Acme.com , acme.fr=FR,127.0.0.1:8787=de").unwrap();
        assert_eq!(market_of_host(&hosts, "acme.fr"), Some("fr"));
        assert_eq!(market_of_host(&hosts, "acme.fr:443"), Some("fr"));
        assert_eq!(market_of_host(&hosts, "acme.com"), None);
        assert_eq!(market_of_host(&hosts, "127.0.0.1:8787"), Some("de"));
        assert_eq!(market_of_host(&hosts, "127.0.0.1"), None);
        assert_eq!(market_of_host(&hosts, "other.example"), None);
        for bad in [
            "https://acme.com",
            "acme.com/fr",
            "acme.com=",
            "a..b",
            "acme.com, acme.com=fr",
            ",",
            "x:0",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad}");
        }
    }
}
