//! `POST /tt/collect`: a browser (or checkout-pixel) event, validated and turned into the
//! server copy with the same event_id. Everything the browser says is untrusted: sizes, names
//! and types are checked here, and identity (ttp, ttclid, IP, UA) comes from the request itself.

use crate::config::ConsentDefault;
use crate::consent::{self, Choice, Report};
use crate::edge::{plausible, Visit};
use crate::money::Amount;
use crate::proof::Proof;
use crate::queue::Refuse;
use crate::session::Browser;
use crate::shopify::mapping::checkout_step_keys;
use crate::text::{cap, MAX_TEXT};
use crate::tiktok::{Content, Event, Page, Properties, User};
use crate::urls::attribution_url;
use serde::Deserialize;
use std::fmt;

/// Largest accepted body. A real event is well under 4 KB even with 50 products.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_CONTENTS: usize = 100;
const MAX_QUANTITY: u64 = 10_000;
/// Largest price, line total or value a browser may report, in whole currency units: above
/// any real cart in any currency, and far from where arithmetic or TikTok's numbers round.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;
/// Largest `market_id`: Shopify's ids are 11-14 digits; TikTok reads the number as a double,
/// exact up to 2^53.
pub const MAX_MARKET_ID: u64 = (1 << 53) - 1;

/// Funnel events a browser may report; the purchase event's name is configurable.
const BROWSER_EVENTS: &[&str] = &[
    "ViewContent",
    "AddToCart",
    "InitiateCheckout",
    "AddPaymentInfo",
];

/// A valid browser event: the server copy, plus what the shell needs for joins and consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub event: Event,
    /// The checkout the custom pixel reported from, to link to the visitor's session.
    pub checkout_token: Option<String>,
    /// The session whose `_ttp` cookie the request carried: never one the sandbox names in
    /// the body, which anyone can claim.
    pub cookie_session: Option<String>,
    /// What this copy proves: the checkout token it carries and its cookie's session.
    pub proof: Proof,
    /// The visitor's choice: the cookie's, else what the body reported.
    pub consent: Option<Choice>,
}

impl Collected {
    /// Whether this event may be sent at all.
    pub fn allowed(&self, default: ConsentDefault) -> bool {
        consent::tracking_allowed(self.consent.map(Choice::marketing), default)
    }

    /// What a refusal reported with this event stops (the checkout pixel reports one instead
    /// of an event when the visitor declined): only what it proves, the checkout whose token it
    /// carries. That checkout's steps (`ic:`/`api:` ids name the token) stop outright; its
    /// order only through Shopify's own link (the order webhook names the checkout token, see
    /// [`Refuse`](crate::queue::Refuse)). `None` unless the visitor declined (an unknown choice
    /// is no refusal) and the event carries a checkout token: an order id or a `_ttp` alone
    /// proves nothing. `fresh_id` names the refusal's session unless the request carried the
    /// visitor's own `_ttp` cookie (the storefront's), the only session a refusal declines.
    pub fn refusal(
        &self,
        purchase_event: &str,
        fresh_id: impl FnOnce() -> String,
    ) -> Option<Refusal> {
        if self.consent != Some(Choice::Denied) {
            return None;
        }
        let token = self.checkout_token.clone()?;
        let events = checkout_step_keys(&token)
            .into_iter()
            .map(|(name, id)| (name.to_string(), id))
            .collect();
        let bound = if self.event.event == purchase_event {
            vec![(self.event.event.clone(), self.event.event_id.clone())]
        } else {
            Vec::new()
        };
        let session_id = match &self.cookie_session {
            Some(sid) => sid.clone(),
            None => crate::keys::declined(&fresh_id()),
        };
        Some(Refusal {
            session_id,
            refuse: Refuse {
                events,
                bound,
                proof: Proof::of([token.as_str()], []),
                // The shell names every pixel of the shop (`src/queue.rs`).
                pixels: crate::queue::the_one_pixel(),
            },
            checkout_token: token,
        })
    }
}

/// A refusal of marketing reported from a checkout, and where it must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The session that holds the refusal: the visitor's own when the request carried its
    /// cookie (its identifiers are then forgotten, as on the storefront), else a fresh
    /// declined session.
    pub session_id: String,
    /// The checkout token it proves, linked to that session for webhooks still to come.
    pub checkout_token: String,
    /// What it stops in the queue, for copies already there or still to come.
    pub refuse: Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectError {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn invalid(message: impl Into<String>) -> CollectError {
    CollectError {
        code: "invalid_event",
        message: message.into(),
    }
}

#[derive(Deserialize)]
struct Body {
    event: String,
    event_id: String,
    #[serde(default)]
    page: Option<Page>,
    #[serde(default)]
    properties: BodyProperties,
    /// Identifiers the custom pixel read from cookies; its sandboxed requests carry none.
    /// Used only for sandboxed requests ([`Visit::sandboxed`]).
    #[serde(default)]
    user: BodyUser,
    #[serde(default)]
    consent: Option<Report>,
    #[serde(default)]
    checkout_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct BodyUser {
    #[serde(default)]
    ttp: Option<String>,
    #[serde(default)]
    ttclid: Option<String>,
}

#[derive(Deserialize, Default)]
struct BodyProperties {
    #[serde(default)]
    contents: Vec<BodyContent>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    value: Option<Amount>,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    market_handle: Option<String>,
    #[serde(default)]
    market_id: Option<u64>,
}

#[derive(Deserialize)]
struct BodyContent {
    content_id: String,
    #[serde(default)]
    content_name: Option<String>,
    #[serde(default = "one")]
    quantity: u64,
    #[serde(default)]
    price: Option<Amount>,
}

fn one() -> u64 {
    1
}

/// Parses and validates a collect body into the server event.
pub fn parse(body: &[u8], purchase_event: &str, visit: &Visit) -> Result<Collected, CollectError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(CollectError {
            code: "too_large",
            message: format!("body is over {MAX_BODY_BYTES} bytes"),
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| invalid("body is not UTF-8"))?;
    let body: Body = serde_json::from_str(text)
        .map_err(|e| invalid(format!("body is not a valid event: {e}")))?;

    if !(BROWSER_EVENTS.contains(&body.event.as_str()) || body.event == purchase_event) {
        return Err(invalid(format!(
            "event {:?} is not collected",
            cap(&body.event, MAX_TEXT)
        )));
    }
    if !is_event_id(&body.event_id) {
        return Err(invalid("event_id must be 1-128 letters, digits or _ - . :"));
    }
    let page = body.page.map(|p| Page {
        url: p.url.as_deref().and_then(attribution_url),
        referrer: p.referrer.as_deref().and_then(attribution_url),
    });

    let props = body.properties;
    if props.contents.len() > MAX_CONTENTS {
        return Err(invalid(format!("at most {MAX_CONTENTS} contents")));
    }
    let contents = props
        .contents
        .into_iter()
        .map(|c| {
            if c.content_id.is_empty()
                || c.content_id.len() > 64
                || !c
                    .content_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid("content_id must be a product or variant id"));
            }
            if c.price.is_some_and(|p| !p.within(MAX_AMOUNT)) {
                return Err(invalid(format!("price must be from 0 to {MAX_AMOUNT}")));
            }
            if !(1..=MAX_QUANTITY).contains(&c.quantity) {
                return Err(invalid(format!(
                    "quantity must be from 1 to {MAX_QUANTITY}"
                )));
            }
            Ok(Content {
                content_id: c.content_id,
                content_type: "product".to_string(),
                content_name: c
                    .content_name
                    .map(|n| cap(&n, MAX_TEXT).to_string())
                    .filter(|n| !n.is_empty()),
                quantity: c.quantity,
                price: c.price,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let currency = match props.currency {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Some(c),
        Some(_) => {
            return Err(invalid(
                "currency must be an ISO 4217 code: three capital letters such as USD",
            ))
        }
        None => None,
    };
    let mut properties = Properties::for_contents(contents, currency);
    if properties.value.is_some_and(|v| !v.within(MAX_AMOUNT)) {
        return Err(invalid(format!(
            "price × quantity must add up to at most {MAX_AMOUNT}"
        )));
    }
    if props.value.is_some_and(|v| !v.within(MAX_AMOUNT)) {
        return Err(invalid(format!("value must be from 0 to {MAX_AMOUNT}")));
    }
    if props.value.is_some() {
        properties.value = props.value;
    }
    properties.order_id = props.order_id.filter(|o| is_event_id(o));
    if let Some(handle) = props.market_handle.filter(|h| is_market_handle(h)) {
        properties.market_handle = handle;
    }
    properties.market_id = match props.market_id {
        Some(id) if id > MAX_MARKET_ID => {
            return Err(invalid(format!(
                "market_id must be at most {MAX_MARKET_ID}"
            )))
        }
        id => id.unwrap_or(0),
    };

    let consent = visit
        .consent()
        .or_else(|| body.consent.as_ref().and_then(Report::choice));
    // Cookies and body alike: only plausible tokens are passed on, and the body's only from
    // the sandbox, so no page can attach someone else's identifiers to its events.
    let usable = |v: Option<String>| v.filter(|v| plausible(v));
    let (body_ttp, body_ttclid) = if visit.sandboxed {
        (body.user.ttp, body.user.ttclid)
    } else {
        (None, None)
    };
    let event = Event {
        event: body.event,
        // The browser's clock is evidence of nothing: the event happened when it reached us.
        event_time: visit.now_secs,
        event_id: body.event_id,
        user: User {
            browser: Browser {
                ttp: usable(visit.ttp_cookie.clone()).or_else(|| usable(body_ttp)),
                ttclid: usable(visit.ttclid_cookie.clone()).or_else(|| usable(body_ttclid)),
                ip: visit.ip.clone(),
                user_agent: visit.user_agent.clone(),
            },
            ..User::default()
        },
        properties,
        page,
        limited_data_use: (visit.gpc || consent.is_some_and(Choice::limited_data_use))
            .then_some(true),
    };
    let checkout_token = body
        .checkout_token
        .filter(|t| t.len() <= 128 && is_event_id(t));
    let cookie_session = if visit.sandboxed {
        None
    } else {
        usable(visit.ttp_cookie.clone())
    };
    let proof = Proof::of(checkout_token.as_deref(), cookie_session.as_deref());
    Ok(Collected {
        event,
        checkout_token,
        cookie_session,
        proof,
        consent,
    })
}

/// Event ids travel in URLs, cookies and SQL keys: keep them to a safe alphabet.
pub fn is_event_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

fn is_market_handle(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visit() -> Visit {
        Visit {
            ttp_cookie: Some("01JY68AFXQXP2232M0V748XS0P_.tt.1".into()),
            ttclid_cookie: Some("E.C.P.abc".into()),
            ip: Some("203.0.113.9".into()),
            user_agent: Some("Mozilla/5.0".into()),
            now_secs: 1_800_000_000,
            gpc: false,
            consent_cookie: None,
            sandboxed: false,
            ..Visit::default()
        }
    }

    #[test]
    fn a_null_currency_counts_as_absent() {
        // Shopify's checkout can give `currencyCode: null`; an older pasted pixel sends it.
        let body = br#"{"event":"InitiateCheckout","event_id":"ic:tok","properties":{"currency":null,"value":"37.00",
            "contents":[{"content_id":"42001234567890123","quantity":2,"price":"18.50"}]}}"#;
        let e = parse(body, "Purchase", &visit()).unwrap().event;
        assert_eq!(e.properties.currency, None);
        let json = serde_json::to_string(&e.properties).unwrap();
        assert!(!json.contains("currency"), "{json}");
    }

    #[test]
    fn add_to_cart_is_enriched_from_the_request() {
        let body = br#"{"event":"AddToCart","event_id":"atc-1","page":{"url":"https://shop.example/products/mug","referrer":"javascript:alert(1)"},
            "properties":{"currency":"USD","contents":[{"content_id":"42001234567890123","content_name":"Mug","quantity":2,"price":"18.50"}],"market_handle":"us","market_id":23505895537}}"#;
        let e = parse(body, "CompletePayment", &visit()).unwrap().event;
        assert_eq!(e.event, "AddToCart");
        assert_eq!(e.event_id, "atc-1");
        assert_eq!(e.event_time, 1_800_000_000);
        assert_eq!(e.user.browser.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.user.browser.ttp, visit().ttp_cookie);
        assert_eq!(e.properties.value.unwrap().to_string(), "37.00");
        assert_eq!(e.properties.currency.as_deref(), Some("USD"));
        assert_eq!(e.properties.market_handle, "us");
        assert_eq!(e.properties.market_id, 23_505_895_537);
        let page = e.page.unwrap();
        assert_eq!(
            page.url.as_deref(),
            Some("https://shop.example/products/mug")
        );
        assert_eq!(page.referrer, None, "non-http referrer dropped");
        assert_eq!(e.limited_data_use, None);
    }

    #[test]
    fn purchase_name_is_the_configured_one() {
        let body = br#"{"event":"Purchase","event_id":"5512345"}"#;
        assert!(parse(body, "Purchase", &visit()).is_ok());
        assert_eq!(
            parse(body, "CompletePayment", &visit()).unwrap_err().code,
            "invalid_event"
        );
    }

    #[test]
    fn bad_input_table() {
        let big = format!(
            r#"{{"event":"AddToCart","event_id":"x","pad":"{}"}}"#,
            "a".repeat(MAX_BODY_BYTES)
        );
        let many = format!(
            r#"{{"event":"AddToCart","event_id":"x","properties":{{"contents":[{}]}}}}"#,
            vec![r#"{"content_id":"1"}"#; 101].join(",")
        );
        let cases: Vec<(&[u8], &str)> = vec![
            (big.as_bytes(), "too_large"),
            (b"\xff\xfe{}", "invalid_event"),
            (b"", "invalid_event"),
            (b"{", "invalid_event"),
            (b"[]", "invalid_event"),
            (br#"{"event":"AddToCart"}"#, "invalid_event"),
            (br#"{"event":"Hack","event_id":"x"}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":""}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"a\r\nSet-Cookie: x=1"}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":7}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"currency":"dollars"}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"contents":[{"content_id":"1","quantity":0}]}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"contents":[{"content_id":"<script>"}]}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"value":"1e999"}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"value":"-5"}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"contents":[{"content_id":"1","price":-1}]}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"currency":"usd"}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"currency":"US1"}}"#, "invalid_event"),
            // Crafted values that once reached the queue as numbers it could not read back (500s).
            (br#"{"event":"AddToCart","event_id":"x","properties":{"contents":[{"content_id":"1","quantity":10000,"price":"99999999999999.99"}]}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"contents":[{"content_id":"1","quantity":10000,"price":"999999999"},{"content_id":"2","quantity":10000,"price":"999999999"}]}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"value":"1000000000000.01"}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"value":1e18}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"market_id":18446744073709551615}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"market_id":9007199254740992}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"market_id":-1}}"#, "invalid_event"),
            (br#"{"event":"AddToCart","event_id":"x","properties":{"market_id":"23505895537"}}"#, "invalid_event"),
            (many.as_bytes(), "invalid_event"),
        ];
        for (body, code) in cases {
            let err = parse(body, "CompletePayment", &visit()).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_not_crashing() {
        let nested = format!(
            r#"{{"event":"AddToCart","event_id":"x","page":{}{}}}"#,
            "[".repeat(5_000),
            "]".repeat(5_000)
        );
        assert_eq!(
            parse(nested.as_bytes(), "CompletePayment", &visit())
                .unwrap_err()
                .code,
            "invalid_event"
        );
    }

    #[test]
    fn gpc_sets_limited_data_use() {
        let f = Visit {
            gpc: true,
            ..visit()
        };
        let e = parse(
            br#"{"event":"ViewContent","event_id":"vc-1"}"#,
            "CompletePayment",
            &f,
        )
        .unwrap()
        .event;
        assert_eq!(e.limited_data_use, Some(true));
    }

    #[test]
    fn sandboxed_pixel_identifiers_and_consent_come_from_the_body() {
        let body = br#"{"event":"InitiateCheckout","event_id":"ic:tok1","checkout_token":"tok1",
            "user":{"ttp":"T_.tt.1","ttclid":"bad value; x=1"},"consent":{"marketing":true,"sale_of_data":false}}"#;
        let anonymous = Visit {
            ttp_cookie: None,
            ttclid_cookie: None,
            sandboxed: true,
            ..visit()
        };
        let c = parse(body, "CompletePayment", &anonymous).unwrap();
        assert_eq!(c.event.user.browser.ttp.as_deref(), Some("T_.tt.1"));
        assert_eq!(
            c.event.user.browser.ttclid, None,
            "implausible value dropped"
        );
        assert_eq!(c.checkout_token.as_deref(), Some("tok1"));
        assert_eq!(c.consent, Some(Choice::Limited));
        assert_eq!(c.event.limited_data_use, Some(true));
        assert!(c.allowed(ConsentDefault::Denied));

        let cookie_wins = parse(body, "CompletePayment", &visit()).unwrap();
        assert_eq!(cookie_wins.event.user.browser.ttp, visit().ttp_cookie);

        // The shop's own pages have cookies: a body's identifiers are not taken from them.
        let storefront = Visit {
            sandboxed: false,
            ..anonymous
        };
        let c = parse(body, "CompletePayment", &storefront).unwrap();
        assert_eq!(
            (c.event.user.browser.ttp, c.event.user.browser.ttclid),
            (None, None)
        );
    }

    #[test]
    fn amounts_at_the_bounds_are_accepted_exactly() {
        let body = format!(
            r#"{{"event":"AddToCart","event_id":"x","properties":{{"contents":[{{"content_id":"1","quantity":{MAX_QUANTITY},"price":"100000000"}}],"market_id":{MAX_MARKET_ID}}}}}"#
        );
        let e = parse(body.as_bytes(), "CompletePayment", &visit())
            .unwrap()
            .event;
        assert_eq!(e.properties.value.unwrap().to_string(), "1000000000000");
        assert_eq!(e.properties.market_id, MAX_MARKET_ID);
    }

    #[test]
    fn a_declined_checkout_event_refuses_only_what_its_checkout_token_proves() {
        let sandbox = Visit {
            ttp_cookie: None,
            ttclid_cookie: None,
            sandboxed: true,
            ..visit()
        };
        let body =
            br#"{"event":"Purchase","event_id":"5900000000000000999","checkout_token":"chk1",
            "page":{"url":"https://shop.example/checkouts/cn/Z2NwLXVzLWVhc3Qx/thank-you"},
            "user":{"ttp":"01JYVICTIMVICTIMVICTIMVICT_.tt.1"},
            "consent":{"marketing":false,"sale_of_data":false}}"#;
        let c = parse(body, "Purchase", &sandbox).unwrap();
        assert!(!c.allowed(ConsentDefault::Allowed));
        // The sandbox can name any _ttp: the refusal declines a fresh session, not that one,
        // and links only the checkout token it carries (not a cart token from its page URL).
        assert_eq!(
            c.refusal("Purchase", || "R".into()),
            Some(Refusal {
                session_id: "declined-R".into(),
                checkout_token: "chk1".into(),
                refuse: Refuse {
                    events: vec![
                        ("InitiateCheckout".into(), "ic:chk1".into()),
                        ("AddPaymentInfo".into(), "api:chk1".into()),
                    ],
                    bound: vec![("Purchase".into(), "5900000000000000999".into())],
                    proof: Proof::of(["chk1"], []),
                    pixels: crate::queue::the_one_pixel(),
                },
            })
        );
        // The storefront's request carries the visitor's cookie: their own session is declined.
        let storefront =
            br#"{"event":"InitiateCheckout","event_id":"ic:chk1","checkout_token":"chk1",
            "consent":{"marketing":false}}"#;
        let r = parse(storefront, "Purchase", &visit())
            .unwrap()
            .refusal("Purchase", || unreachable!())
            .unwrap();
        assert_eq!(r.session_id, visit().ttp_cookie.unwrap());
        assert!(r.refuse.bound.is_empty());
        // No choice is no refusal; nor is a refusal that proves no checkout: an order id, a
        // page URL or a _ttp alone.
        let unknown =
            br#"{"event":"InitiateCheckout","event_id":"ic:chk1","checkout_token":"chk1"}"#;
        let denied_default = parse(unknown, "Purchase", &sandbox).unwrap();
        assert!(!denied_default.allowed(ConsentDefault::Denied));
        assert_eq!(denied_default.refusal("Purchase", || unreachable!()), None);
        let unproven: [&[u8]; 3] = [
            br#"{"event":"ViewContent","event_id":"vc-1","consent":{"marketing":false}}"#,
            br#"{"event":"Purchase","event_id":"5900000000000000999","consent":{"marketing":false}}"#,
            br#"{"event":"Purchase","event_id":"5900000000000000999","user":{"ttp":"01JYVICTIMVICTIMVICTIMVICT_.tt.1"},
              "page":{"url":"https://shop.example/checkouts/cn/Z2NwLXVzLWVhc3Qx/thank-you"},"consent":{"marketing":false}}"#,
        ];
        for body in unproven {
            for visit in [&sandbox, &visit()] {
                assert_eq!(
                    parse(body, "Purchase", visit)
                        .unwrap()
                        .refusal("Purchase", || unreachable!()),
                    None,
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn a_copy_proves_its_checkout_token_and_only_its_cookies_session() {
        let body = br#"{"event":"Purchase","event_id":"59","checkout_token":"chk1","user":{"ttp":"01JYCLAIMEDCLAIMEDCLAIMEDC_.tt.1"}}"#;
        let sandbox = Visit {
            ttp_cookie: None,
            sandboxed: true,
            ..visit()
        };
        let cases = [
            (visit(), Proof::of(["chk1"], visit().ttp_cookie.as_deref())),
            (sandbox, Proof::of(["chk1"], [])),
        ];
        for (visit, proof) in cases {
            let c = parse(body, "Purchase", &visit).unwrap();
            assert_eq!(c.proof, proof, "{visit:?}");
        }
        let bare = parse(
            br#"{"event":"Purchase","event_id":"59"}"#,
            "Purchase",
            &Visit {
                sandboxed: true,
                ..visit()
            },
        )
        .unwrap();
        assert!(
            bare.proof.is_empty(),
            "a sandbox copy without a token proves nothing"
        );
    }

    #[test]
    fn declined_consent_is_not_allowed_whatever_the_default() {
        let body = br#"{"event":"ViewContent","event_id":"vc-1","consent":{"marketing":false}}"#;
        let c = parse(body, "CompletePayment", &visit()).unwrap();
        assert!(!c.allowed(ConsentDefault::Allowed));
        let cookie = Visit {
            consent_cookie: Some("denied".into()),
            ..visit()
        };
        let unreported = br#"{"event":"ViewContent","event_id":"vc-1"}"#;
        assert!(!parse(unreported, "CompletePayment", &cookie)
            .unwrap()
            .allowed(ConsentDefault::Allowed));
        assert!(!parse(unreported, "CompletePayment", &visit())
            .unwrap()
            .allowed(ConsentDefault::Denied));
    }
}
