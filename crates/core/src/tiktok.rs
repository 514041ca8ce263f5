//! TikTok Events API v1.3 `event/track`: the typed payload, how an answer is classified, and
//! the retry policy. Facts and their sources: shared/research/tiktok-events-api.md. Facts marked
//! unverified there live in one constant or match arm here, so they change in one place.

use crate::money::Amount;
use crate::session::Browser;
use crate::text::{capped, MAX_TEXT, MAX_USER_AGENT};
use crate::urls::attribution_url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const TRACK_PATH: &str = "/open_api/v1.3/event/track/";
/// Events per request accepted by Events API 2.0.
pub const MAX_BATCH: usize = 1000;
pub const DEFAULT_MARKET_HANDLE: &str = "unassigned_market";

/// Currencies TikTok accepts for `currency` (its SDK's `PixelProperties.md`, written for the
/// Pixel API; assumed to hold for Events API 2.0). Money in any other currency is not sent.
pub const SUPPORTED_CURRENCIES: &[&str] = &[
    "AED", "ARS", "AUD", "BDT", "BHD", "BIF", "BOB", "BRL", "CAD", "CHF", "CLP", "CNY", "COP",
    "CRC", "CZK", "DKK", "DZD", "EGP", "EUR", "GBP", "GTQ", "HKD", "HNL", "HUF", "IDR", "ILS",
    "INR", "ISK", "JPY", "KES", "KHR", "KRW", "KWD", "KZT", "MAD", "MOP", "MXN", "MYR", "NGN",
    "NIO", "NOK", "NZD", "OMR", "PEN", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RUB", "SAR",
    "SEK", "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VES", "VND", "ZAR",
];

/// The oldest `event_time` TikTok is assumed to accept. *Unverified*: no TikTok source gives a
/// limit for web events (Amperity's TikTok docs say 28 days); the shorter window of other ad
/// platforms' conversion APIs (7 days) is assumed.
pub const MAX_EVENT_AGE_SECS: i64 = 7 * 24 * 3600;

/// The request body. Events are stored serialised while they wait in the queue, so the batch
/// carries them as raw JSON, each one built from [`Event`].
#[derive(Debug, Serialize)]
pub struct TrackRequest<'a> {
    pub event_source: &'static str,
    pub event_source_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<&'a str>,
    pub data: Vec<&'a RawValue>,
}

impl<'a> TrackRequest<'a> {
    pub fn web(
        pixel_id: &'a str,
        test_event_code: Option<&'a str>,
        data: Vec<&'a RawValue>,
    ) -> Self {
        TrackRequest {
            event_source: "web",
            event_source_id: pixel_id,
            test_event_code,
            data,
        }
    }
}

/// One server event, as it goes into `data[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: String,
    /// Unix seconds (an integer: TikTok rejects milliseconds and fractions).
    pub event_time: i64,
    /// Shared with the browser pixel so TikTok merges the two copies.
    pub event_id: String,
    pub user: User,
    pub properties: Properties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    /// Set when the visitor opted out of sale/sharing (GPC, US state laws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_data_use: Option<bool>,
}

impl Event {
    /// The event as it goes into `data[]`, the last step before TikTok: free text capped
    /// (`text`), and amounts, exact decimal strings everywhere else, as the JSON numbers
    /// TikTok takes.
    pub fn tiktok_json(&self) -> serde_json::Result<String> {
        let mut event = self.clone();
        let browser = &mut event.user.browser;
        browser.user_agent = capped(browser.user_agent.take(), MAX_USER_AGENT);
        if let Some(page) = &mut event.page {
            page.url = page.url.as_deref().and_then(attribution_url);
            page.referrer = page.referrer.as_deref().and_then(attribution_url);
        }
        for content in &mut event.properties.contents {
            content.content_name = capped(content.content_name.take(), MAX_TEXT);
        }
        let mut json = serde_json::to_value(&event)?;
        if let Some(properties) = json.get_mut("properties") {
            as_number(properties.get_mut("value"));
            let contents = properties
                .get_mut("contents")
                .and_then(|c| c.as_array_mut());
            for content in contents.into_iter().flatten() {
                as_number(content.get_mut("price"));
            }
        }
        serde_json::to_string(&json)
    }

    /// Which match keys the event carries (in [`MATCH_KEYS`] order), for the operator's
    /// coverage figures (kept after the payload itself is dropped).
    pub fn match_keys(&self) -> Vec<&'static str> {
        let (u, b) = (&self.user, &self.user.browser);
        let values = [
            &b.ttp,
            &b.ttclid,
            &u.email,
            &u.phone,
            &u.external_id,
            &b.ip,
            &b.user_agent,
            &u.first_name,
            &u.last_name,
            &u.zip_code,
            &u.city,
            &u.state,
            &u.country,
            &u.locale,
        ];
        MATCH_KEYS
            .into_iter()
            .zip(values)
            .filter_map(|(name, value)| value.is_some().then_some(name))
            .collect()
    }

    /// The one copy to send when a browser copy bound to this event (`queue::admit` decides
    /// which are) reported it too: `self` (the signed webhook's copy) stays authoritative for
    /// value, currency, contents, order_id and the customer's keys; the browser fills what the
    /// webhook could not know (ttp, ttclid, IP, user agent, page, market). A browser copy with
    /// another `ttp` than the webhook's is another visitor's: it adds nothing.
    pub fn merged_with_browser(mut self, browser: &Event) -> Event {
        let same_visitor = match (&self.user.browser.ttp, &browser.user.browser.ttp) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => true,
        };
        if !same_visitor {
            return self;
        }
        let ours = std::mem::take(&mut self.user.browser);
        self.user.browser = ours.or(browser.user.browser.clone());
        if self.page.as_ref().is_none_or(|p| p.url.is_none()) && browser.page.is_some() {
            self.page.clone_from(&browser.page);
        }
        let props = &mut self.properties;
        if props.market_handle == DEFAULT_MARKET_HANDLE && props.market_id == 0 {
            props
                .market_handle
                .clone_from(&browser.properties.market_handle);
            props.market_id = browser.properties.market_id;
        }
        if browser.limited_data_use == Some(true) {
            self.limited_data_use = Some(true);
        }
        self
    }
}

/// An amount's decimal string as the nearest JSON number.
fn as_number(field: Option<&mut serde_json::Value>) {
    if let Some(field) = field {
        if let Some(amount) = field.as_str().and_then(Amount::parse) {
            *field = serde_json::json!(amount.to_f64());
        }
    }
}

/// The match keys an event can carry ([`User`]'s fields, by their JSON names), in the order
/// the operator sees them.
pub const MATCH_KEYS: [&str; 14] = [
    "ttp",
    "ttclid",
    "email",
    "phone",
    "external_id",
    "ip",
    "user_agent",
    "first_name",
    "last_name",
    "zip_code",
    "city",
    "state",
    "country",
    "locale",
];

/// Match keys. `email`, `phone`, `external_id`, names and zip are SHA-256 (see `hash`);
/// the [`Browser`]'s `ttp`, `ttclid`, `ip` and `user_agent` are sent raw, as TikTok asks; `city`, `state`,
/// `country` normalised (hashed only if `hash::LOCATION_HASHED`), `locale` as BCP 47.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `ttp`, `ttclid`, `ip`, `user_agent`, flat in `user`.
    #[serde(flatten)]
    pub browser: Browser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Custom parameters on every event (Shopify Markets).
    pub market_handle: String,
    pub market_id: u64,
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            contents: Vec::new(),
            content_type: None,
            currency: None,
            value: None,
            order_id: None,
            market_handle: DEFAULT_MARKET_HANDLE.to_string(),
            market_id: 0,
        }
    }
}

impl Properties {
    /// Items with their total value: `value` = Σ price × quantity; the top-level
    /// `content_type` is the items' type when they all share one, else left out.
    pub fn for_contents(contents: Vec<Content>, currency: Option<String>) -> Properties {
        let value = contents
            .iter()
            .map(|c| c.price.unwrap_or(Amount::ZERO).times(c.quantity))
            .sum();
        let content_type = contents
            .first()
            .map(|c| &c.content_type)
            .filter(|t| contents.iter().all(|c| &c.content_type == *t))
            .cloned();
        Properties {
            content_type,
            value: Some(value),
            currency,
            contents,
            ..Properties::default()
        }
    }

    /// The one rule for money TikTok cannot take: without a currency, or in one TikTok does not
    /// accept, `value`, `currency` and every item's `price` are left out (TikTok would reject or
    /// misread them, and there is no exchange rate to convert with); items keep ids and counts.
    pub fn drop_money_without_supported_currency(&mut self) {
        let supported = self
            .currency
            .as_deref()
            .is_some_and(|c| SUPPORTED_CURRENCIES.contains(&c));
        if !supported {
            self.currency = None;
            self.value = None;
            for c in &mut self.contents {
                c.price = None;
            }
        }
    }
}

/// One line. `content_id` is a string (TikTok rejects numbers): a Shopify variant id with
/// `content_type` "product", or a product id with "product_group" (see `shopify::mapping`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub content_id: String,
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_name: Option<String>,
    pub quantity: u64,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// What TikTok's answer to one request means for the events in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Worth trying again later with the same event_id (TikTok drops repeats for 48 h).
    Retry(String),
    /// TikTok refused something in the request (validation, batch size) or took only part of
    /// it (20001): the events it would take are unknown, so the batch is split until each
    /// refused event is alone, and only that one fails, with this message.
    Refused(String),
    /// Token or permission trouble: no event is at fault. Sending pauses until the
    /// configuration works again; nothing fails.
    Paused(String),
    /// Throttled (`40100`): the shard waits as TikTok's recovery rules ask (`queue::Limit`);
    /// `daily` when the message says the daily limit was reached ([`says_daily_limit`]).
    Throttled {
        daily: bool,
        message: String,
    },
}

/// What the queue does with one batch after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    MarkSent,
    Retry(String),
    /// Send each half on its own.
    Split,
    /// The one event of the batch is refused for good.
    Fail(String),
    Pause(String),
    /// Wait as TikTok asks after a throttle; no attempt is counted.
    Throttle {
        daily: bool,
        message: String,
    },
}

impl Outcome {
    /// The step for a batch of `len` events.
    pub fn step(self, len: usize) -> Step {
        match self {
            Outcome::Sent => Step::MarkSent,
            Outcome::Retry(reason) => Step::Retry(reason),
            Outcome::Refused(_) if len > 1 => Step::Split,
            Outcome::Refused(message) => Step::Fail(message),
            Outcome::Paused(reason) => Step::Pause(reason),
            Outcome::Throttled { daily, message } => Step::Throttle { daily, message },
        }
    }
}

/// The answer TikTok gives in the body, usually with HTTP 200 even on failure.
#[derive(Debug, Deserialize)]
struct Envelope {
    code: i64,
    #[serde(default)]
    message: String,
}

/// Classifies one attempt: `status` is the HTTP status, `None` for a timeout or network error;
/// `secret`: the name of the secret holding the pixel's token, which a pause's fix names.
pub fn classify(status: Option<u16>, body: &str, secret: &str) -> Outcome {
    let Some(status) = status else {
        return Outcome::Retry("no answer (timeout or network error)".to_string());
    };
    let envelope = serde_json::from_str::<Envelope>(body).ok();
    if status == 429 || status >= 500 {
        return Outcome::Retry(format!("HTTP {status}"));
    }
    match envelope {
        Some(Envelope { code, message }) => classify_code(code, message, secret),
        None if (200..300).contains(&status) => {
            Outcome::Retry(format!("HTTP {status} with an unreadable body"))
        }
        None if matches!(status, 401 | 403) => Outcome::Paused(format!(
            "HTTP {status}: TikTok refused the access token; {}",
            fix_token(secret)
        )),
        None => Outcome::Refused(format!("HTTP {status}")),
    }
}

/// What the operator does about a paused pixel whose token is in the secret `secret`.
fn fix_token(secret: &str) -> String {
    format!("generate a new Events API access token for this pixel in TikTok Events Manager and set it with `wrangler secret put {secret}`; queued events go out by themselves once it works")
}

/// Codes and their classes (shared/research/tiktok-events-api.md §1.7). 20001's detail format
/// is unverified, so partial answers are resolved by splitting, never by reading the body.
fn classify_code(code: i64, message: String, secret: &str) -> Outcome {
    let text = || format!("TikTok code {code}: {message}");
    match code {
        // 40050 = duplicated request (already accepted).
        0 | 40050 => Outcome::Sent,
        40100 => Outcome::Throttled {
            daily: says_daily_limit(&message),
            message: text(),
        },
        // Frequency limited, system errors, timeouts, internal errors, maintenance.
        40132 | 50000.. => Outcome::Retry(text()),
        // Permission, token expired / empty / invalid.
        40001 | 40102..=40105 => Outcome::Paused(format!("{}; {}", text(), fix_token(secret))),
        // 20001 partial success, and every validation code (40002, 40061 batch size, …).
        _ => Outcome::Refused(text()),
    }
}

/// Words in a `40100` message taken to mean the daily limit was reached. *Unverified*: TikTok
/// documents three limits (per second, minute and day) and one code for all of them; the only
/// message seen is "Too many requests. Please retry in some time." (research §1.7). A message
/// naming the day is taken for the daily limit; any other for the per-second or per-minute one.
const DAILY_LIMIT_WORDS: &[&str] = &["daily", "per day", "qpd", "day limit"];

/// Whether a `40100` message says the daily limit was reached (see [`DAILY_LIMIT_WORDS`]).
pub fn says_daily_limit(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    DAILY_LIMIT_WORDS.iter().any(|w| message.contains(w))
}

/// Exponential backoff with jitter, for up to 48 h (TikTok's dedup window: a retry later than
/// that could be counted twice).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub max_delay_ms: u64,
    pub give_up_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: 10_000,
            max_delay_ms: 60 * 60 * 1000,
            give_up_after_ms: 48 * 60 * 60 * 1000,
        }
    }
}

impl RetryPolicy {
    /// When to try again after `attempts` failed attempts, or `None` to give up.
    /// `jitter` in [0, 1) spreads retries of many events (so they do not stampede TikTok).
    pub fn next_attempt_at(
        &self,
        first_seen_ms: u64,
        now_ms: u64,
        attempts: u32,
        jitter: f64,
    ) -> Option<u64> {
        let exp = self
            .base_ms
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
            .min(self.max_delay_ms);
        let delay = (exp as f64 * (0.5 + jitter.clamp(0.0, 1.0) / 2.0)) as u64;
        let at = now_ms + delay.max(1);
        (at <= first_seen_ms + self.give_up_after_ms).then_some(at)
    }
}

/// The Durable Object shard for a business key (FNV-1a: stable across releases and platforms).
pub fn shard_of(key: &str, shards: u32) -> u32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % u64::from(shards.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let ok =
            |code: i64| format!(r#"{{"code":{code},"message":"m","request_id":"r","data":{{}}}}"#);
        let cases: Vec<(Option<u16>, String, &str)> = vec![
            (Some(200), ok(0), "sent"),
            (Some(200), ok(20001), "refused"),
            (Some(200), ok(40050), "sent"),
            (Some(200), ok(40100), "throttled"),
            (Some(200), ok(40132), "retry"),
            (Some(200), ok(50000), "retry"),
            (Some(200), ok(50002), "retry"),
            (Some(200), ok(51012), "retry"),
            (Some(200), ok(60001), "retry"),
            (Some(200), ok(61000), "retry"),
            (Some(200), ok(40000), "refused"),
            (Some(200), ok(40001), "paused"),
            (Some(200), ok(40002), "refused"),
            (Some(200), ok(40061), "refused"),
            (Some(200), ok(40062), "refused"),
            (Some(200), ok(40102), "paused"),
            (Some(200), ok(40103), "paused"),
            (Some(200), ok(40104), "paused"),
            (Some(200), ok(40105), "paused"),
            (Some(500), String::new(), "retry"),
            (Some(502), "<html>bad gateway</html>".into(), "retry"),
            (Some(503), ok(0), "retry"),
            (Some(429), String::new(), "retry"),
            (None, String::new(), "retry"),
            (Some(200), "not json".into(), "retry"),
            (Some(400), ok(40002), "refused"),
            (Some(401), "nope".into(), "paused"),
            (Some(403), String::new(), "paused"),
            (Some(400), "nope".into(), "refused"),
        ];
        for (status, body, want) in cases {
            let got = match classify(status, &body, "T") {
                Outcome::Sent => "sent",
                Outcome::Retry(_) => "retry",
                Outcome::Refused(_) => "refused",
                Outcome::Paused(_) => "paused",
                Outcome::Throttled { .. } => "throttled",
            };
            assert_eq!(got, want, "{status:?} {body}");
        }
    }

    #[test]
    fn failures_keep_tiktoks_message() {
        let body = r#"{"code":40002,"message":"Invalid value for event_id: not a valid string.","data":null}"#;
        let message = "TikTok code 40002: Invalid value for event_id: not a valid string.";
        assert_eq!(
            classify(Some(200), body, "T"),
            Outcome::Refused(message.into())
        );
        assert_eq!(
            classify(Some(200), body, "T").step(1),
            Step::Fail(message.into())
        );
    }

    #[test]
    fn refused_batches_split_until_one_event_fails() {
        let refused = || Outcome::Refused("TikTok code 20001: partial".into());
        assert_eq!(refused().step(1000), Step::Split);
        assert_eq!(refused().step(2), Step::Split);
        assert!(matches!(refused().step(1), Step::Fail(m) if m.contains("20001")));
        // Neither retries nor pauses depend on the batch's size.
        assert_eq!(Outcome::Retry("x".into()).step(1), Step::Retry("x".into()));
        let body = r#"{"code":40105,"message":"Access token is invalid"}"#;
        for secret in ["TIKTOK_ACCESS_TOKEN", "TIKTOK_TOKEN_FR"] {
            match classify(Some(200), body, secret).step(50) {
                Step::Pause(why) => assert!(
                    why.contains("40105")
                        && why.contains(&format!("wrangler secret put {secret}`")),
                    "{why}"
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn backoff_grows_caps_and_gives_up_after_48h() {
        let p = RetryPolicy::default();
        let at = |attempts, now| p.next_attempt_at(0, now, attempts, 1.0);
        assert_eq!(at(1, 0), Some(10_000));
        assert_eq!(at(2, 0), Some(20_000));
        assert_eq!(at(5, 0), Some(160_000));
        assert_eq!(at(20, 0), Some(3_600_000), "capped at one hour");
        assert_eq!(
            p.next_attempt_at(0, 0, 1, 0.0),
            Some(5_000),
            "jitter halves at most"
        );
        let day2 = 48 * 3_600_000;
        assert_eq!(at(30, day2 - 3_600_000), Some(day2));
        assert_eq!(at(30, day2 - 1_000), None, "past 48 h it gives up");
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(
            shard_of("CompletePayment:5512345", 16),
            shard_of("CompletePayment:5512345", 16)
        );
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|i| shard_of(&format!("order-{i}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
        assert_eq!(shard_of("x", 0), 0);
    }

    #[test]
    fn purchase_payload_shape() {
        let contents = vec![
            Content {
                content_id: "42001234567890123".into(),
                content_type: "product".into(),
                content_name: Some("Mug".into()),
                quantity: 2,
                price: Amount::parse("0.10"),
            },
            Content {
                content_id: "42001234567890124".into(),
                content_type: "product".into(),
                content_name: None,
                quantity: 1,
                price: Amount::parse("0.10"),
            },
        ];
        let mut properties = Properties::for_contents(contents, Some("EUR".into()));
        properties.order_id = Some("5512345".into());
        let event = Event {
            event: "CompletePayment".into(),
            event_time: 1_704_721_970,
            event_id: "5512345".into(),
            user: User {
                browser: Browser {
                    ttp: Some("01JY68AFXQXP2232M0V748XS0P_.tt.1".into()),
                    ..Browser::default()
                },
                ..User::default()
            },
            properties,
            page: None,
            limited_data_use: None,
        };
        let payload = event.tiktok_json().unwrap();
        let raw = RawValue::from_string(payload).unwrap();
        let body =
            serde_json::to_value(TrackRequest::web("PIXEL", Some("TEST1"), vec![&raw])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "event_source": "web",
                "event_source_id": "PIXEL",
                "test_event_code": "TEST1",
                "data": [{
                    "event": "CompletePayment",
                    "event_time": 1704721970,
                    "event_id": "5512345",
                    "user": { "ttp": "01JY68AFXQXP2232M0V748XS0P_.tt.1" },
                    "properties": {
                        "contents": [
                            { "content_id": "42001234567890123", "content_type": "product", "content_name": "Mug", "quantity": 2, "price": 0.1 },
                            { "content_id": "42001234567890124", "content_type": "product", "quantity": 1, "price": 0.1 }
                        ],
                        "content_type": "product",
                        "currency": "EUR",
                        "value": 0.3,
                        "order_id": "5512345",
                        "market_handle": "unassigned_market",
                        "market_id": 0
                    }
                }]
            })
        );
        let without_code = serde_json::to_value(TrackRequest::web("PIXEL", None, vec![])).unwrap();
        assert!(without_code.get("test_event_code").is_none());
        // Between the Worker's parts the amounts stay exact decimal strings.
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(wire["properties"]["value"], "0.30");
        assert_eq!(
            serde_json::from_value::<Event>(wire).unwrap(),
            event,
            "round trip"
        );
    }

    /// An event as the queue stored it before [`Browser`]: `user` flat. It must still read,
    /// and go to TikTok in the same flat form.
    #[test]
    fn stored_events_read_and_send_flat() {
        let user = r#"{"ttp":"T_.tt.1","ttclid":"E.C.P.x","ip":"203.0.113.9","user_agent":"UA","email":"e"}"#;
        let stored = format!(
            r#"{{"event":"Purchase","event_time":1,"event_id":"5","user":{user},"properties":{{"market_handle":"us","market_id":9007199254740993}}}}"#
        );
        let event: Event = serde_json::from_str(&stored).unwrap();
        let b = &event.user.browser;
        assert_eq!(
            (b.ttp.as_deref(), b.ttclid.as_deref(), b.ip.as_deref()),
            (Some("T_.tt.1"), Some("E.C.P.x"), Some("203.0.113.9"))
        );
        assert_eq!(b.user_agent.as_deref(), Some("UA"));
        assert_eq!(event.user.email.as_deref(), Some("e"));
        assert_eq!(event.properties.market_id, 9_007_199_254_740_993);
        assert_eq!(serde_json::to_string(&event).unwrap(), stored);
        let sent: serde_json::Value = serde_json::from_str(&event.tiktok_json().unwrap()).unwrap();
        assert_eq!(
            sent["user"],
            serde_json::from_str::<serde_json::Value>(user).unwrap()
        );
        // A payload queued before URLs kept only attribution parameters: cleaned as it leaves.
        let mut old = event;
        old.page = Some(Page {
            url: Some("https://shop.example/?email=jane%40example.com&ttclid=E.C.P.x#f".into()),
            referrer: Some("https://mail.example/open?token=t".into()),
        });
        let sent: serde_json::Value = serde_json::from_str(&old.tiktok_json().unwrap()).unwrap();
        assert_eq!(
            sent["page"],
            serde_json::json!({"url": "https://shop.example/?ttclid=E.C.P.x", "referrer": "https://mail.example/open"})
        );
    }

    #[test]
    fn sent_strings_are_capped() {
        let event = Event {
            event: "ViewContent".into(),
            event_time: 1,
            event_id: "vc-1".into(),
            user: User {
                browser: Browser {
                    user_agent: Some("U".repeat(128 * 1024)),
                    ..Browser::default()
                },
                ..User::default()
            },
            properties: Properties {
                contents: vec![Content {
                    content_id: "1".into(),
                    content_type: "product".into(),
                    content_name: Some("n".repeat(10_000)),
                    quantity: 1,
                    price: None,
                }],
                ..Properties::default()
            },
            page: Some(Page {
                url: Some(format!("https://shop.example/{}", "p".repeat(10_000))),
                referrer: None,
            }),
            limited_data_use: None,
        };
        let sent: serde_json::Value = serde_json::from_str(&event.tiktok_json().unwrap()).unwrap();
        let len = |v: &serde_json::Value| v.as_str().unwrap().chars().count();
        assert_eq!(len(&sent["user"]["user_agent"]), MAX_USER_AGENT);
        assert_eq!(len(&sent["page"]["url"]), crate::text::MAX_URL);
        assert_eq!(
            len(&sent["properties"]["contents"][0]["content_name"]),
            MAX_TEXT
        );
        assert!(sent["properties"].get("value").is_none());
    }

    #[test]
    fn match_keys_name_the_user_fields_they_read() {
        // Each field set to its own name: the name match_keys reports is the field's JSON key.
        let user: User = serde_json::from_value(serde_json::Value::Object(
            MATCH_KEYS
                .iter()
                .map(|k| (k.to_string(), (*k).into()))
                .collect(),
        ))
        .unwrap();
        let json = serde_json::to_value(&user).unwrap();
        assert!(MATCH_KEYS.iter().all(|k| json[*k] == *k));
        let event = Event {
            event: "ViewContent".into(),
            event_time: 0,
            event_id: "vc:1".into(),
            user,
            properties: Properties::for_contents(Vec::new(), None),
            page: None,
            limited_data_use: None,
        };
        assert_eq!(event.match_keys(), MATCH_KEYS);
    }
}
