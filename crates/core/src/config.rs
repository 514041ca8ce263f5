//! Configuration: every environment variable and secret the Worker reads, parsed once per
//! request into one typed struct. Values are validated here so that the shell never has to
//! second-guess them; a bad value becomes a [`Problem`] that names the variable and says how
//! to fix it, and never echoes the value (it may be a secret).

use crate::pixels::{Host, Pixel, DEFAULT_TOKEN};
pub use crate::secret::Secret;
use std::fmt;

/// Every name the Worker reads, in the order the README documents them.
/// `/tt/health` reports each one's state: set, not set or invalid (never its value).
pub const NAMES: &[&str] = &[
    "TIKTOK_PIXEL_ID",
    "TIKTOK_ACCESS_TOKEN",
    "TIKTOK_TEST_EVENT_CODE",
    "TIKTOK_PIXELS",
    "STOREFRONT_HOSTS",
    "TIKTOK_API_BASE",
    "TIKTOK_SDK_URL",
    "SHOPIFY_WEBHOOK_SECRET",
    "SHOPIFY_WEBHOOK_SECRET_PREVIOUS",
    "SHOPIFY_SHOP_DOMAIN",
    "ORIGIN_URL",
    "ROUTE_PREFIX",
    "ADMIN_TOKEN",
    "PURCHASE_EVENT_NAME",
    "CONSENT_DEFAULT",
    "COOKIE_DOMAIN",
    "INJECT_PIXEL",
    "DEFAULT_COUNTRY",
    "SEND_TEST_ORDERS",
    "EXCLUDED_SOURCES",
    "RETRY_BASE_MS",
    "TIKTOK_TIMEOUT_MS",
    "WEBHOOK_WAIT_MS",
    "SEND_UNCONFIRMED_PURCHASES",
    "QUEUE_SHARD_MAX_ROWS",
];

pub const DEFAULT_API_BASE: &str = "https://business-api.tiktok.com";
pub const DEFAULT_SDK_URL: &str = "https://analytics.tiktok.com/i18n/pixel/events.js";
pub const DEFAULT_ROUTE_PREFIX: &str = "/tt";
/// TikTok's purchase event since its 2025 renaming; the legacy `CompletePayment` (which TikTok
/// still accepts and maps) stays available through `PURCHASE_EVENT_NAME`.
pub const DEFAULT_PURCHASE_EVENT: &str = "Purchase";
const MIN_ADMIN_TOKEN_LEN: usize = 16;
/// Shopify usually delivers checkout and order webhooks within seconds; the copies must reach
/// TikTok within 5 minutes of the pixel's to be merged there, so the wait stays well below.
const DEFAULT_WEBHOOK_WAIT_MS: u64 = 90_000;
const MAX_WEBHOOK_WAIT_MS: u64 = 240_000;

/// Scheme, host and port of an HTTP(S) server, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of `path_and_query` (which starts with `/`) on this origin.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }
}

/// What to assume for a visitor whose consent choice is not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentDefault {
    /// Track until the visitor declines (regions without a consent banner).
    Allowed,
    /// Track nothing until the visitor accepts (opt-in regions).
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The pixels events go to (`TIKTOK_PIXELS`, else the one pixel of `TIKTOK_PIXEL_ID`,
    /// `TIKTOK_ACCESS_TOKEN` and `TIKTOK_TEST_EVENT_CODE`): never empty.
    pub pixels: Vec<Pixel>,
    /// `STOREFRONT_HOSTS`: the shop's hostnames and their markets; empty: any host, no market.
    pub hosts: Vec<Host>,
    pub api_base: Origin,
    pub sdk_url: String,
    /// The current secret first, then the previous one during a rotation.
    pub webhook_secrets: Vec<Secret>,
    /// The shop's `*.myshopify.com` domain, lowercase: every webhook must come from it.
    pub shop_domain: Option<String>,
    /// Where passthrough goes; `None` means the request's own URL (Orange-to-Orange).
    pub origin: Option<Origin>,
    pub route_prefix: String,
    /// Absent means the admin page is disabled.
    pub admin_token: Option<Secret>,
    pub purchase_event_name: String,
    pub consent_default: ConsentDefault,
    pub cookie_domain: Option<String>,
    pub inject_pixel: bool,
    /// ISO 3166-1 alpha-2, used to complete national phone numbers without a country.
    pub default_country: Option<String>,
    pub send_test_orders: bool,
    /// Lowercase `source_name` patterns of orders that are not ad conversions (a trailing `*`
    /// matches a prefix); default [`DEFAULT_EXCLUDED_SOURCES`].
    pub excluded_sources: Vec<String>,
    /// First retry delay; doubles per attempt (tests shorten it).
    pub retry_base_ms: u64,
    /// How long one Events API call may take before it counts as a timeout.
    pub tiktok_timeout_ms: u64,
    /// How long a browser copy of a checkout step or purchase waits for its signed webhook
    /// before it is sent alone (well inside TikTok's 5-minute browser/server merge window).
    pub webhook_wait_ms: u64,
    /// Send browser-reported purchases that no signed order confirmed (shops without order
    /// webhooks only): otherwise they are kept as `unconfirmed`, never sent.
    pub send_unconfirmed_purchases: bool,
    /// `QUEUE_SHARD_MAX_ROWS`: lowers the rows a queue shard keeps (tests fill a shard with it).
    pub queue_shard_max_rows: Option<i64>,
    /// Problems of settings that only one feature depends on: that feature is off, the rest
    /// works (each has [`Problem::disables`]).
    pub degraded: Vec<Problem>,
}

/// One invalid setting: which variable, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub name: &'static str,
    pub message: String,
    /// The one feature this setting serves, off until it is fixed; `None`: all tracking is off.
    pub disables: Option<&'static str>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)?;
        match self.disables {
            Some(feature) => write!(f, " ({feature} off until this is fixed)"),
            None => Ok(()),
        }
    }
}

/// Order channels that are not ad conversions unless `EXCLUDED_SOURCES` says otherwise:
/// point of sale, draft orders (invoices), and subscription renewals (Shopify's
/// `subscription_contract*` channels). A trailing `*` matches any `source_name` it starts.
pub const DEFAULT_EXCLUDED_SOURCES: &[&str] =
    &["pos", "shopify_draft_order", "subscription_contract*"];

/// What an invalid `ADMIN_TOKEN` turns off.
pub const ADMIN_FEATURE: &str = "the admin page";
/// What a missing or invalid `SHOPIFY_SHOP_DOMAIN` turns off.
pub const WEBHOOKS_FEATURE: &str = "webhooks";
/// What an invalid `ORIGIN_URL` turns off: the shop's traffic goes to the request's own URL
/// instead (on a Cloudflare route, the origin behind it), never an error to shoppers.
pub const ORIGIN_FEATURE: &str = "forwarding to ORIGIN_URL";

/// All the invalid settings found at once, so an operator fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration: ")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables through `lookup`, treating empty or blank values as absent.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Parses `name` with `parse`; on failure records the problem and yields `None`.
    fn parse<T>(
        &mut self,
        name: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.parse_for(name, None, parse)
    }

    /// [`Reader::parse`] for a setting only `feature` depends on.
    fn parse_for<T>(
        &mut self,
        name: &'static str,
        disables: Option<&'static str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.get(name)?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(message) => {
                self.problems.push(Problem {
                    name,
                    message,
                    disables,
                });
                None
            }
        }
    }
}

impl Config {
    /// Builds the configuration from a variable lookup (the Worker's `Env`, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let pixel_id = r.parse("TIKTOK_PIXEL_ID", |v| {
            token(
                v,
                64,
                "the pixel code from TikTok Events Manager, e.g. C9Q2MJ3C77U4P674RPG0",
            )
        });
        let test_event_code = r.parse("TIKTOK_TEST_EVENT_CODE", |v| {
            token(
                v,
                64,
                "the code shown under Test Events in TikTok Events Manager",
            )
        });
        let secret = |name: &str| r.get(name).map(Secret::new);
        let listed = r.get("TIKTOK_PIXELS").map(|v| parse_pixels(&v, &secret));
        let pixels = match listed {
            None => vec![Pixel::single(
                pixel_id,
                r.get("TIKTOK_ACCESS_TOKEN").map(Secret::new),
                test_event_code,
            )],
            Some(Ok(pixels)) => pixels,
            Some(Err(message)) => {
                r.problems.push(Problem {
                    name: "TIKTOK_PIXELS",
                    message,
                    disables: None,
                });
                Vec::new()
            }
        };
        for single in ["TIKTOK_PIXEL_ID", "TIKTOK_TEST_EVENT_CODE"] {
            if r.get("TIKTOK_PIXELS").is_some() && r.get(single).is_some() {
                r.problems.push(Problem {
                    name: "TIKTOK_PIXELS",
                    message: format!(
                        "is set together with {single}: keep one way of naming pixels: list that pixel (with its test_event_code) in TIKTOK_PIXELS and remove {single}"
                    ),
                    disables: None,
                });
            }
        }
        let mut config = Config {
            pixels,
            hosts: r.parse("STOREFRONT_HOSTS", parse_hosts).unwrap_or_default(),
            api_base: r
                .parse("TIKTOK_API_BASE", parse_origin)
                .unwrap_or_else(|| Origin(DEFAULT_API_BASE.to_string())),
            sdk_url: r
                .parse("TIKTOK_SDK_URL", parse_http_url)
                .unwrap_or_else(|| DEFAULT_SDK_URL.to_string()),
            webhook_secrets: ["SHOPIFY_WEBHOOK_SECRET", "SHOPIFY_WEBHOOK_SECRET_PREVIOUS"]
                .iter()
                .filter_map(|name| r.get(name).map(Secret::new))
                .collect(),
            shop_domain: r.parse_for(
                "SHOPIFY_SHOP_DOMAIN",
                Some(WEBHOOKS_FEATURE),
                parse_shop_domain,
            ),
            origin: r.parse_for("ORIGIN_URL", Some(ORIGIN_FEATURE), |v| {
                parse_origin(v).map_err(|e| {
                    format!("{e}; meanwhile the shop's traffic goes to the request's own URL")
                })
            }),
            route_prefix: r
                .parse("ROUTE_PREFIX", parse_route_prefix)
                .unwrap_or_else(|| DEFAULT_ROUTE_PREFIX.to_string()),
            admin_token: r.parse_for("ADMIN_TOKEN", Some(ADMIN_FEATURE), |v| {
                if v.len() < MIN_ADMIN_TOKEN_LEN {
                    Err(format!(
                        "must be at least {MIN_ADMIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 24`"
                    ))
                } else {
                    Ok(Secret::new(v))
                }
            }),
            purchase_event_name: r
                .parse("PURCHASE_EVENT_NAME", parse_event_name)
                .unwrap_or_else(|| DEFAULT_PURCHASE_EVENT.to_string()),
            consent_default: r
                .parse("CONSENT_DEFAULT", |v| match v.to_ascii_lowercase().as_str() {
                    "allowed" => Ok(ConsentDefault::Allowed),
                    "denied" => Ok(ConsentDefault::Denied),
                    _ => Err("must be `allowed` or `denied`".to_string()),
                })
                .unwrap_or(ConsentDefault::Allowed),
            cookie_domain: r.parse("COOKIE_DOMAIN", parse_cookie_domain),
            inject_pixel: r.parse("INJECT_PIXEL", parse_bool).unwrap_or(true),
            default_country: r.parse("DEFAULT_COUNTRY", |v| {
                if v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()) {
                    Ok(v.to_ascii_uppercase())
                } else {
                    Err("must be a two-letter ISO country code such as US or DE".to_string())
                }
            }),
            send_test_orders: r.parse("SEND_TEST_ORDERS", parse_bool).unwrap_or(false),
            excluded_sources: r
                .parse("EXCLUDED_SOURCES", parse_sources)
                .unwrap_or_else(|| {
                    DEFAULT_EXCLUDED_SOURCES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                }),
            retry_base_ms: r
                .parse("RETRY_BASE_MS", |v| parse_millis(v, 10, 3_600_000))
                .unwrap_or(10_000),
            tiktok_timeout_ms: r
                .parse("TIKTOK_TIMEOUT_MS", |v| parse_millis(v, 100, 30_000))
                .unwrap_or(10_000),
            webhook_wait_ms: r
                .parse("WEBHOOK_WAIT_MS", |v| parse_millis(v, 0, MAX_WEBHOOK_WAIT_MS))
                .unwrap_or(DEFAULT_WEBHOOK_WAIT_MS),
            send_unconfirmed_purchases: r
                .parse("SEND_UNCONFIRMED_PURCHASES", parse_bool)
                .unwrap_or(false),
            queue_shard_max_rows: r.parse("QUEUE_SHARD_MAX_ROWS", |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| "must be a whole number of rows above 0".to_string())
            }),
            degraded: Vec::new(),
        };
        if !config.webhook_secrets.is_empty() && r.get("SHOPIFY_SHOP_DOMAIN").is_none() {
            r.problems.push(shop_domain_unset());
        }
        if r.problems.iter().any(|p| p.disables.is_none()) {
            Err(ConfigError {
                problems: r.problems,
            })
        } else {
            config.degraded = r.problems;
            Ok(config)
        }
    }

    /// The problem of setting `name`, when it has one that disables a feature.
    pub fn degraded(&self, name: &str) -> Option<&Problem> {
        self.degraded.iter().find(|p| p.name == name)
    }

    /// The shop webhooks must come from, or the problem that turns webhooks off (the caller
    /// wraps it: `Error::FeatureOff`).
    pub fn webhook_shop_domain(&self) -> Result<&str, Problem> {
        self.shop_domain.as_deref().ok_or_else(|| {
            let problem = self.degraded("SHOPIFY_SHOP_DOMAIN").cloned();
            problem.unwrap_or_else(shop_domain_unset)
        })
    }

    /// Dry run: no pixel has an access token, so events are recorded but never sent to TikTok.
    pub fn dry_run(&self) -> bool {
        self.pixels.iter().all(Pixel::dry_run)
    }

    /// The pixel whose send-queue key is `key`.
    pub fn pixel(&self, key: &str) -> Option<&Pixel> {
        self.pixels.iter().find(|p| p.key == key)
    }

    /// The market of a page at `url` (`STOREFRONT_HOSTS`), if its hostname names one.
    pub fn market_of_url(&self, url: &str) -> Option<&str> {
        let url = crate::urls::split_http_url(url).ok()?;
        let host = match url.port {
            Some(port) => format!("{}:{port}", url.host),
            None => url.host,
        };
        crate::pixels::market_of_host(&self.hosts, &host)
    }
}

/// Webhooks without `SHOPIFY_SHOP_DOMAIN`: off, since no webhook can be checked against it.
fn shop_domain_unset() -> Problem {
    Problem {
        name: "SHOPIFY_SHOP_DOMAIN",
        message: format!("must be set: {SHOP_DOMAIN_HINT}"),
        disables: Some(WEBHOOKS_FEATURE),
    }
}

/// The passthrough origin alone, so the storefront keeps working when some other setting
/// is invalid (tracking is then off, but a typo must never take the shop down). An invalid
/// `ORIGIN_URL` counts as unset: the shop's traffic goes to the request's own URL.
pub fn origin_from(lookup: &dyn Fn(&str) -> Option<String>) -> Option<Origin> {
    let mut r = Reader {
        lookup,
        problems: Vec::new(),
    };
    r.parse("ORIGIN_URL", parse_origin)
}

/// Which of [`NAMES`] are set (non-empty), for `/tt/health`'s settings.
pub fn presence(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(&'static str, bool)> {
    NAMES
        .iter()
        .map(|&name| (name, lookup(name).is_some_and(|v| !v.trim().is_empty())))
        .collect()
}

fn token(v: &str, max: usize, what: &str) -> Result<String, String> {
    if v.len() <= max
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(v.to_string())
    } else {
        Err(format!(
            "must be letters, digits, `_` or `-` (at most {max}): {what}"
        ))
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be `true` or `false`".to_string()),
    }
}

fn parse_millis(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(ms) if (min..=max).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "must be a whole number of milliseconds from {min} to {max}"
        )),
    }
}

fn parse_http_url(v: &str) -> Result<String, String> {
    let url = crate::urls::split_http_url(v)?;
    let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
    let rest = if url.rest.is_empty() { "/" } else { url.rest };
    Ok(format!("{}://{}{port}{rest}", url.scheme, url.host))
}

fn parse_origin(v: &str) -> Result<Origin, String> {
    let url = crate::urls::split_http_url(v)?;
    if !matches!(url.rest, "" | "/") {
        return Err(
            "must be only scheme, host and optional port, like https://shop.myshopify.com"
                .to_string(),
        );
    }
    let port = url.port.map(|p| format!(":{p}")).unwrap_or_default();
    Ok(Origin(format!("{}://{}{port}", url.scheme, url.host)))
}

fn parse_route_prefix(v: &str) -> Result<String, String> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if v.len() <= 64 && v.starts_with('/') && v[1..].split('/').all(ok_segment) {
        Ok(v.to_string())
    } else {
        Err(
            "must look like /tt: a leading `/`, no trailing `/`, letters, digits, `-`, `_`, `.`"
                .to_string(),
        )
    }
}

fn parse_event_name(v: &str) -> Result<String, String> {
    if v.len() <= 50 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(v.to_string())
    } else {
        Err("must be a TikTok event name such as Purchase or (legacy) CompletePayment".to_string())
    }
}

/// `EXCLUDED_SOURCES`: comma-separated `source_name` values, each optionally ending in `*`
/// (a prefix); `none` excludes no channel.
fn parse_sources(v: &str) -> Result<Vec<String>, String> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .map(|s| {
            let name = s.strip_suffix('*').unwrap_or(&s);
            let valid = !name.is_empty()
                && name.len() <= 100
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if valid {
                Ok(s)
            } else {
                Err(
                    "must be comma-separated Shopify source_name values such as \
                     pos,shopify_draft_order,subscription_contract* (a trailing * matches a \
                     prefix), or none"
                        .to_string(),
                )
            }
        })
        .collect()
}

const PIXELS_EXAMPLE: &str = r#"[{"id": "C9Q2MJ3C77U4P674RPG0"}, {"id": "CAB2…", "token": "TIKTOK_ACCESS_TOKEN_FR", "markets": ["fr"]}]"#;

/// The fields of one pixel in `TIKTOK_PIXELS`.
const PIXEL_FIELDS: [&str; 5] = ["id", "token", "test_event_code", "markets", "events"];

/// `TIKTOK_PIXELS`: the JSON array of pixels, each token read through `secret` (by its name).
/// The error names the pixel and field, and how to fix it. Read through `serde_json::Value`,
/// whose reader the Worker has anyway (a derived one would be a second: wasm size).
fn parse_pixels(v: &str, secret: &dyn Fn(&str) -> Option<Secret>) -> Result<Vec<Pixel>, String> {
    let shape = || {
        format!("must be a JSON array of pixel objects like {PIXELS_EXAMPLE} (fields: id, token, test_event_code, markets, events)")
    };
    let list: serde_json::Value =
        serde_json::from_str(v).map_err(|e| format!("{}: {e}", shape()))?;
    let entries = list.as_array().ok_or_else(shape)?;
    if entries.is_empty() {
        return Err(format!(
            "lists no pixel: give at least one, like {PIXELS_EXAMPLE}, or remove it and use TIKTOK_PIXEL_ID"
        ));
    }
    let mut pixels: Vec<Pixel> = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let at = |field: &str| format!("pixel {} (`{field}`)", n + 1);
        let fields = entry
            .as_object()
            .ok_or_else(|| format!("pixel {}: {}", n + 1, shape()))?;
        if let Some(unknown) = fields.keys().find(|k| !PIXEL_FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "{}: unknown field: the fields are id, token, test_event_code, markets, events",
                at(unknown)
            ));
        }
        // A field absent (or null) is `None`; one of another type is an error naming it.
        let text = |field: &str| match &entry[field] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(text) => Ok(Some(text.as_str())),
            _ => Err(format!("{}: must be a string", at(field))),
        };
        let list = |field: &str, check: fn(&str) -> Result<String, String>| match &entry[field] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| {
                    let item = item
                        .as_str()
                        .ok_or("must be a list of strings, like [\"fr\"]")?;
                    check(item)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|e| format!("{}: {e}", at(field))),
            _ => Err(format!(
                "{}: must be a list of strings, like [\"fr\"]",
                at(field)
            )),
        };
        let id = text("id")?
            .ok_or_else(|| format!("{}: is missing: give each pixel its code", at("id")))?;
        let id = token(
            id,
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
        let token_name = text("token")?.unwrap_or(DEFAULT_TOKEN).to_string();
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
        let test_event_code = text("test_event_code")?
            .map(|code| {
                token(
                    code,
                    64,
                    "the code shown under Test Events in TikTok Events Manager",
                )
            })
            .transpose()
            .map_err(|e| format!("{}: {e}", at("test_event_code")))?;
        let markets = list("markets", parse_market)?.unwrap_or_default();
        let events = list("events", parse_event_name)?;
        if events.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "{}: is empty, so the pixel would get nothing: leave `events` out for every event, or list some",
                at("events")
            ));
        }
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
fn parse_hosts(v: &str) -> Result<Vec<Host>, String> {
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

const SHOP_DOMAIN_HINT: &str =
    "the shop's permanent domain, like example.myshopify.com (Shopify admin → Settings → Domains), which Shopify sends as X-Shopify-Shop-Domain";

fn parse_shop_domain(v: &str) -> Result<String, String> {
    let v = v.to_ascii_lowercase();
    let valid = v.strip_suffix(".myshopify.com").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if valid {
        Ok(v)
    } else {
        Err(format!("must be {SHOP_DOMAIN_HINT}"))
    }
}

fn parse_cookie_domain(v: &str) -> Result<String, String> {
    let bare = v.strip_prefix('.').unwrap_or(v);
    let valid = bare.contains('.')
        && bare.len() <= 253
        && bare
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if valid {
        Ok(bare.to_ascii_lowercase())
    } else {
        Err("must be your shop's registrable domain, like example.com".to_string())
    }
}

/// A configuration from literal settings, for other modules' tests.
#[cfg(test)]
pub fn from_pairs(pairs: &[(&str, &str)]) -> Config {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(&move |k: &str| map.get(k).cloned()).expect("valid test settings")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn empty_environment_gives_documented_defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.api_base.as_str(), DEFAULT_API_BASE);
        assert_eq!(c.sdk_url, DEFAULT_SDK_URL);
        assert_eq!(c.route_prefix, "/tt");
        assert_eq!(c.purchase_event_name, "Purchase");
        assert_eq!(
            c.excluded_sources,
            ["pos", "shopify_draft_order", "subscription_contract*"]
        );
        assert_eq!(c.consent_default, ConsentDefault::Allowed);
        assert!(c.dry_run());
        assert!(c.inject_pixel);
        assert!(!c.send_test_orders);
        assert!(c.origin.is_none() && c.admin_token.is_none() && c.webhook_secrets.is_empty());
    }

    #[test]
    fn blank_values_count_as_absent() {
        let c = load(&[("TIKTOK_ACCESS_TOKEN", "  "), ("ORIGIN_URL", "")]).unwrap();
        assert!(c.dry_run());
        assert!(c.origin.is_none());
    }

    #[test]
    fn origin_is_normalised_to_scheme_host_port() {
        let c = load(&[
            ("ORIGIN_URL", "http://127.0.0.1:8788/"),
            ("TIKTOK_API_BASE", "https://Example.com"),
        ])
        .unwrap();
        assert_eq!(
            c.origin.unwrap().join("/a?b=1"),
            "http://127.0.0.1:8788/a?b=1"
        );
        assert_eq!(c.api_base.as_str(), "https://example.com");
    }

    #[test]
    fn secrets_keep_rotation_order() {
        let c = load(&[
            ("SHOPIFY_WEBHOOK_SECRET_PREVIOUS", "old"),
            ("SHOPIFY_WEBHOOK_SECRET", "new"),
        ])
        .unwrap();
        let s: Vec<&str> = c.webhook_secrets.iter().map(Secret::expose).collect();
        assert_eq!(s, ["new", "old"]);
    }

    #[test]
    fn invalid_values_are_all_reported_by_name_without_their_values() {
        let err = load(&[
            ("ORIGIN_URL", "ftp://x.example/path"),
            ("ROUTE_PREFIX", "tt/"),
            ("ADMIN_TOKEN", "short-secret"),
            ("CONSENT_DEFAULT", "maybe"),
            ("INJECT_PIXEL", "perhaps"),
            ("PURCHASE_EVENT_NAME", "Complete Payment"),
            ("TIKTOK_PIXEL_ID", "bad id!"),
            ("DEFAULT_COUNTRY", "USA"),
            ("COOKIE_DOMAIN", "localhost"),
            ("TIKTOK_SDK_URL", "not a url"),
            ("RETRY_BASE_MS", "5"),
            ("EXCLUDED_SOURCES", "pos, web store"),
        ])
        .unwrap_err();
        let names: Vec<&str> = err.problems.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "TIKTOK_PIXEL_ID",
                "TIKTOK_SDK_URL",
                "ORIGIN_URL",
                "ROUTE_PREFIX",
                "ADMIN_TOKEN",
                "PURCHASE_EVENT_NAME",
                "CONSENT_DEFAULT",
                "COOKIE_DOMAIN",
                "INJECT_PIXEL",
                "DEFAULT_COUNTRY",
                "EXCLUDED_SOURCES",
                "RETRY_BASE_MS",
            ]
        );
        let text = err.to_string();
        assert!(!text.contains("short-secret"), "{text}");
        assert!(
            text.contains("ADMIN_TOKEN: must be at least 16 characters"),
            "{text}"
        );
    }

    #[test]
    fn legacy_event_name_and_excluded_sources_are_configurable() {
        let c = load(&[
            ("PURCHASE_EVENT_NAME", "CompletePayment"),
            ("EXCLUDED_SOURCES", " POS , 580111,subscription_contract* ,"),
        ])
        .unwrap();
        assert_eq!(c.purchase_event_name, "CompletePayment");
        assert_eq!(
            c.excluded_sources,
            ["pos", "580111", "subscription_contract*"]
        );
        let none = load(&[("EXCLUDED_SOURCES", "none")]).unwrap();
        assert!(none.excluded_sources.is_empty());
        for bad in ["*", "pos;draft", "a b"] {
            assert!(parse_sources(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_optional_setting_disables_only_its_feature() {
        let c = load(&[
            ("ADMIN_TOKEN", "short-secret"),
            ("SHOPIFY_WEBHOOK_SECRET", "whsec"),
            ("SHOPIFY_SHOP_DOMAIN", "https://shop.example.com"),
        ])
        .unwrap();
        assert!(c.admin_token.is_none() && c.shop_domain.is_none());
        let admin = c.degraded("ADMIN_TOKEN").unwrap();
        assert_eq!(admin.disables, Some(ADMIN_FEATURE));
        assert!(!admin.to_string().contains("short-secret"));
        assert!(admin
            .to_string()
            .ends_with("(the admin page off until this is fixed)"));
        assert_eq!(
            c.degraded("SHOPIFY_SHOP_DOMAIN").unwrap().disables,
            Some(WEBHOOKS_FEATURE)
        );
    }

    #[test]
    fn shop_domain_is_required_with_webhooks_and_normalised() {
        let unset = load(&[("SHOPIFY_WEBHOOK_SECRET", "whsec")]).unwrap();
        assert!(unset.degraded("SHOPIFY_SHOP_DOMAIN").is_some());
        match unset.webhook_shop_domain() {
            Err(p) => assert!(p
                .to_string()
                .starts_with("SHOPIFY_SHOP_DOMAIN: must be set")),
            other => panic!("{other:?}"),
        }
        assert!(
            load(&[]).unwrap().degraded.is_empty(),
            "no webhooks, no need"
        );
        let set = load(&[
            ("SHOPIFY_WEBHOOK_SECRET", "whsec"),
            ("SHOPIFY_SHOP_DOMAIN", " Demo-Shop.myshopify.com "),
        ])
        .unwrap();
        assert_eq!(set.webhook_shop_domain(), Ok("demo-shop.myshopify.com"));
        assert!(set.degraded.is_empty());
        for bad in [
            "myshopify.com",
            ".myshopify.com",
            "shop.example.com",
            "a.b.myshopify.com",
            "shop.myshopify.com.evil.example",
        ] {
            assert!(parse_shop_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_rejects_paths_queries_and_credentials() {
        for bad in [
            "https://shop.example/path",
            "https://shop.example/?q=1",
            "https://user:pw@shop.example",
            "shop.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_invalid_origin_falls_back_to_the_requests_own_url() {
        let lookup = |k: &str| (k == "ORIGIN_URL").then(|| "https://shop.example/path".to_string());
        let c = Config::from_lookup(&lookup).expect("tracking works on");
        assert!(c.origin.is_none(), "the request's own URL");
        let p = c.degraded("ORIGIN_URL").unwrap();
        assert_eq!(p.disables, Some(ORIGIN_FEATURE));
        assert!(p.message.contains("the request's own URL"), "{p}");
        assert!(origin_from(&lookup).is_none());
    }

    #[test]
    fn route_prefix_rules() {
        for good in ["/tt", "/apps/tt", "/_t.t-1"] {
            assert!(parse_route_prefix(good).is_ok(), "{good}");
        }
        for bad in ["/", "tt", "/tt/", "//tt", "/t t", "/tt?x"] {
            assert!(parse_route_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_alone_survives_other_problems() {
        let lookup = |k: &str| match k {
            "ORIGIN_URL" => Some("http://localhost:9000".to_string()),
            "ROUTE_PREFIX" => Some("bad".to_string()),
            _ => None,
        };
        assert!(Config::from_lookup(&lookup).is_err());
        assert_eq!(
            origin_from(&lookup).unwrap().as_str(),
            "http://localhost:9000"
        );
    }

    #[test]
    fn a_pages_market_is_its_hostnames() {
        let c = load(&[(
            "STOREFRONT_HOSTS",
            "acme.com, acme.fr=fr, 127.0.0.1:8787=de",
        )])
        .unwrap();
        assert_eq!(
            c.market_of_url("https://acme.fr/products/mug?x=1"),
            Some("fr")
        );
        assert_eq!(c.market_of_url("http://127.0.0.1:8787/"), Some("de"));
        assert_eq!(c.market_of_url("https://acme.com/fr/products/mug"), None);
        assert_eq!(load(&[]).unwrap().market_of_url("https://acme.fr/"), None);
        let bad = load(&[("STOREFRONT_HOSTS", "https://acme.fr/")]).unwrap_err();
        assert_eq!(bad.problems[0].name, "STOREFRONT_HOSTS");
    }

    #[test]
    fn the_single_pixel_settings_make_one_pixel_and_pixels_replace_them() {
        let one = load(&[
            ("TIKTOK_PIXEL_ID", "P1"),
            ("TIKTOK_ACCESS_TOKEN", "t"),
            ("TIKTOK_TEST_EVENT_CODE", "T1"),
        ])
        .unwrap();
        assert_eq!(one.pixels.len(), 1);
        assert_eq!(
            (one.pixels[0].key.as_str(), one.pixels[0].id.as_deref()),
            ("", Some("P1"))
        );
        assert_eq!(one.pixels[0].test_event_code.as_deref(), Some("T1"));
        assert!(!one.dry_run());
        let many = load(&[
            (
                "TIKTOK_PIXELS",
                r#"[{"id":"A"},{"id":"B","token":"TOKEN_B"}]"#,
            ),
            ("TOKEN_B", "b"),
        ])
        .unwrap();
        assert_eq!(
            many.pixels
                .iter()
                .map(|p| p.key.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert!(!many.dry_run(), "B has its token");
        assert!(many.pixels[0].dry_run());
        let both = load(&[
            ("TIKTOK_PIXELS", r#"[{"id":"A"}]"#),
            ("TIKTOK_TEST_EVENT_CODE", "T1"),
        ])
        .unwrap_err();
        assert!(
            both.problems[0]
                .message
                .contains("remove TIKTOK_TEST_EVENT_CODE"),
            "{both}"
        );
        let bad = load(&[("TIKTOK_PIXELS", r#"[{"id":"A","markets":"fr"}]"#)]).unwrap_err();
        assert_eq!(bad.problems[0].name, "TIKTOK_PIXELS");
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
            (r#"[{"token":"X"}]"#, "pixel 1 (`id`): is missing"),
            (
                r#"[{"id":"A","market":["fr"]}]"#,
                "pixel 1 (`market`): unknown field",
            ),
            (r#"[{"id":7}]"#, "pixel 1 (`id`): must be a string"),
            (
                r#"[{"id":"A"},"B"]"#,
                "pixel 2: must be a JSON array of pixel objects",
            ),
            (
                r#"[{"id":"A","markets":"fr"}]"#,
                "pixel 1 (`markets`): must be a list",
            ),
            (
                r#"[{"id":"A","events":[1]}]"#,
                "pixel 1 (`events`): must be a list",
            ),
            ("[{", "must be a JSON array"),
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
        assert_eq!(crate::pixels::market_of_host(&hosts, "acme.fr"), Some("fr"));
        assert_eq!(
            crate::pixels::market_of_host(&hosts, "acme.fr:443"),
            Some("fr")
        );
        assert_eq!(crate::pixels::market_of_host(&hosts, "acme.com"), None);
        assert_eq!(
            crate::pixels::market_of_host(&hosts, "127.0.0.1:8787"),
            Some("de")
        );
        assert_eq!(crate::pixels::market_of_host(&hosts, "127.0.0.1"), None);
        assert_eq!(crate::pixels::market_of_host(&hosts, "other.example"), None);
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

    #[test]
    fn presence_never_reveals_values() {
        let lookup = |k: &str| (k == "TIKTOK_ACCESS_TOKEN").then(|| "s3cr3t".to_string());
        let p = presence(&lookup);
        assert_eq!(p.len(), NAMES.len());
        assert!(p.contains(&("TIKTOK_ACCESS_TOKEN", true)));
        assert!(p.contains(&("ADMIN_TOKEN", false)));
        assert!(
            format!("{:?}", load(&[("TIKTOK_ACCESS_TOKEN", "s3cr3t")]).unwrap()).contains("***")
        );
    }
}
