//! Property tests ("fuzzing") for every parser and normaliser that sees hostile input: the
//! collect body, Shopify webhook bodies, topics and signatures, match-key hashing, cookies in
//! and out, landing URLs and money. Each property states what must hold for *any* input, not
//! only for the examples of the unit tests.
//!
//! `cargo test` runs every property 256 times (proptest's default, a few seconds in all). A
//! longer hunt: `PROPTEST_CASES=20000 cargo test -p tiktok-edge-core --test fuzz`. A failure
//! prints the shrunk input; nothing is written into the tree, so a real failure becomes a named
//! regression test at the end of this file.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};
use sha2::Sha256;
use std::fmt;
use tiktok_edge_core::collect::{self, Collected, MAX_AMOUNT, MAX_BODY_BYTES, MAX_MARKET_ID};
use tiktok_edge_core::config::Config;
use tiktok_edge_core::consent::{Choice, Report};
use tiktok_edge_core::cookies;
use tiktok_edge_core::edge::{
    self, Visit, CART_MARKER, CHECKOUT_MARKER, CLICK_COOKIE, CONSENT_COOKIE, PROOF_COOKIE,
    SESSION_MARKER, TTCLID_MAX_AGE_SECS,
};
use tiktok_edge_core::error::Unusable;
use tiktok_edge_core::hash;
use tiktok_edge_core::keys;
use tiktok_edge_core::money::Amount;
use tiktok_edge_core::session::Session;
use tiktok_edge_core::shopify::checkout_url::JoinToken;
use tiktok_edge_core::shopify::mapping::{self, CartState, MappingConfig, OrderState};
use tiktok_edge_core::shopify::{self, Payload, Topic};
use tiktok_edge_core::tiktok::{Event, DEFAULT_MARKET_HANDLE};
use tiktok_edge_core::urls;

/// proptest's defaults (which honour `PROPTEST_CASES`), without regression files in the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile strings and JSON
// ---------------------------------------------------------------------------------------------

/// Pieces that stress parsers: delimiters, escapes, controls, multi-byte and invisible characters.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "?", "&", "=", "#", "%", "%2", "%zz", "%25", "%3D", "%E2%82", "%F0%9F%98%80", "%00", "+",
    ";", ",", " ", "\t", "\r\n", "\0", "\"", "\\", "/", ".", ":", "-", "_", "0", "00", "7",
    "9", "a", "Z", "é", "€", "😀", "\u{200B}", "\u{FEFF}", "\u{85}", "(0)", "ttclid", "key",
    "https://",
];

fn fragmented() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => fragmented(),
        3 => any::<String>(),
        // Long strings: kilobytes.
        1 => (fragmented(), 1..150usize).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// Field names the parsers look for, so that random values land on real fields.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "event", "event_id", "event_time", "page", "url", "referrer", "properties", "contents",
    "content_id", "content_name", "quantity", "price", "currency", "value", "order_id",
    "market_handle", "market_id", "user", "ttp", "ttclid", "consent", "marketing",
    "sale_of_data", "checkout_token", "token", "id", "order_edit", "line_items", "additions",
    "delta", "variant_id", "product_id", "title", "name", "price_set", "presentment_money",
    "amount", "currency_code", "note_attributes", "key", "customer", "email", "phone",
    "billing_address", "shipping_address", "zip", "country_code", "first_name", "last_name",
    "default_address", "client_details", "browser_ip", "user_agent", "landing_site",
    "source_name", "test", "cancelled_at", "updated_at", "total_price", "total_price_set",
    "presentment_currency", "requires_shipping", "shipping_lines",
];

/// Numbers at the edges: of the integer types, of f64, of 2^53, of the collect limits, and the
/// event_time whose distance from now overflows i64.
fn edge_number() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(0),
        json!(-1),
        json!(10_000),
        json!(10_001),
        json!((1u64 << 53) + 1),
        json!(i64::MIN),
        json!(i64::MIN + NOW),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(f64::MAX),
        json!(f64::MIN_POSITIVE),
    ])
}

fn json_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        // NaN and infinities become null, as serde_json cannot write them.
        1 => any::<f64>().prop_map(Value::from),
        1 => edge_number(),
        2 => hostile_string().prop_map(Value::from),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(String::from),
        1 => hostile_string(),
    ]
}

/// Wide JSON trees a few levels deep.
fn json_tree() -> impl Strategy<Value = Value> {
    json_scalar().prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A chain up to 200 levels deep: beyond serde_json's limit of 128 when building a `Value`.
fn json_deep() -> impl Strategy<Value = Value> {
    let level = prop::option::of(prop::sample::select(KEYS));
    (prop::collection::vec(level, 0..=200), json_scalar()).prop_map(|(levels, leaf)| {
        levels.into_iter().fold(leaf, |inner, level| match level {
            Some(key) => json!({ key: inner }),
            None => json!([inner]),
        })
    })
}

fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![3 => json_tree(), 1 => json_deep()]
}

/// JSON text no `Value` can hold; spliced into a body where a mutation put a placeholder.
const RAW_JSON: &[&str] = &[
    "1e999",
    "-1e999",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "-0",
    "1e-7",
    "1E+16",
    "0.30000000000000004",
    r#""\ud800""#,
    r#""\udfff\ud800""#,
    r#""\u0000""#,
    "[[[[[[[[[[]]]]]]]]]]",
];

/// One change to a JSON document, at a node picked by `Index`.
#[derive(Debug, Clone)]
enum Edit {
    Delete,
    Replace(Value),
    /// Number ↔ string, string → array, object ↔ array…: what a new API version might do.
    SwapType,
    Raw(&'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => Just(Edit::Delete),
        3 => any_json().prop_map(Edit::Replace),
        2 => Just(Edit::SwapType),
        1 => prop::sample::select(RAW_JSON).prop_map(Edit::Raw),
    ]
}

/// A change to the bytes after serialisation.
#[derive(Debug, Clone)]
enum ByteEdit {
    Keep,
    Truncate(Index),
    Insert(Index, u8),
    Overwrite(Index, u8),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        4 => Just(ByteEdit::Keep),
        1 => any::<Index>().prop_map(ByteEdit::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Overwrite(i, b)),
    ]
}

/// JSON pointers of every node of `v`, the root (`""`) first.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    walk(item, format!("{at}/{token}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn swap_type(v: &Value) -> Value {
    match v {
        Value::Null => json!({}),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => json!([s]),
        },
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (i.to_string(), item.clone()))
                .collect(),
        ),
        Value::Object(map) => Value::Array(map.values().cloned().collect()),
    }
}

fn placeholder(n: usize) -> String {
    format!("\u{E000}raw{n}")
}

/// `base` with `edits` applied, serialised, raw JSON spliced in and bytes changed.
fn mutated(mut base: Value, edits: &[(Index, Edit)], bytes: &ByteEdit) -> Vec<u8> {
    let mut raws = Vec::new();
    for (at, edit) in edits {
        let all = pointers(&base);
        let pointer = &all[at.index(all.len())];
        let node = base.pointer(pointer).cloned().unwrap_or(Value::Null);
        let replacement = match edit {
            Edit::Delete => None,
            Edit::Replace(v) => Some(v.clone()),
            Edit::SwapType => Some(swap_type(&node)),
            Edit::Raw(text) => {
                raws.push(*text);
                Some(Value::String(placeholder(raws.len() - 1)))
            }
        };
        match (replacement, pointer.rsplit_once('/')) {
            (Some(v), _) => *base.pointer_mut(pointer).expect("pointer from walk") = v,
            (None, None) => base = Value::Null,
            (None, Some((parent, token))) => {
                let token = token.replace("~1", "/").replace("~0", "~");
                match base.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&token);
                    }
                    Some(Value::Array(items)) => {
                        items.remove(token.parse::<usize>().expect("array index"));
                    }
                    _ => unreachable!("a parent is an object or an array"),
                }
            }
        }
    }
    let mut text = serde_json::to_string(&base).expect("a Value always serialises");
    for (n, raw) in raws.iter().enumerate() {
        text = text.replace(&format!("\"{}\"", placeholder(n)), raw);
    }
    let mut out = text.into_bytes();
    match bytes {
        ByteEdit::Keep => {}
        ByteEdit::Truncate(at) => out.truncate(at.index(out.len() + 1)),
        ByteEdit::Insert(at, b) => out.insert(at.index(out.len() + 1), *b),
        ByteEdit::Overwrite(at, b) if !out.is_empty() => {
            let i = at.index(out.len());
            out[i] = *b;
        }
        ByteEdit::Overwrite(..) => {}
    }
    out
}

/// A request body; failure reports show it as a byte string, ready to paste into a test.
#[derive(Clone)]
struct Body(Vec<u8>);

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Bodies close to `base`: a few fields deleted, retyped or replaced, maybe bytes broken.
fn near(base: impl Strategy<Value = Value>) -> impl Strategy<Value = Body> {
    (
        base,
        prop::collection::vec((any::<Index>(), edit()), 0..4),
        byte_edit(),
    )
        .prop_map(|(base, edits, bytes)| Body(mutated(base, &edits, &bytes)))
}

/// Anything a client could send: near-valid bodies, any JSON, any bytes.
fn hostile_body(base: impl Strategy<Value = Value>) -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => near(base),
        2 => any_json().prop_map(|v| Body(v.to_string().into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(Body),
    ]
}

// ---------------------------------------------------------------------------------------------
// POST /tt/collect
// ---------------------------------------------------------------------------------------------

const NOW: i64 = 1_800_000_000;
const WEEK: i64 = 7 * 24 * 3600;
const PURCHASE: &str = "Purchase";
const COLLECTED: [&str; 5] = [
    "ViewContent",
    "AddToCart",
    "InitiateCheckout",
    "AddPaymentInfo",
    PURCHASE,
];

fn choice() -> impl Strategy<Value = Choice> {
    prop::sample::select(vec![Choice::Granted, Choice::Denied, Choice::Limited])
}

/// What the Worker reads off a collect request: cookie values are whatever the jar held.
fn facts() -> impl Strategy<Value = Visit> {
    let text = || prop::option::of(hostile_string());
    (
        text(),
        text(),
        text(),
        text(),
        any::<bool>(),
        prop::option::of(choice()),
        any::<bool>(),
    )
        .prop_map(
            |(ttp, ttclid, ip, user_agent, gpc, consent, sandboxed)| Visit {
                ttp_cookie: ttp,
                ttclid_cookie: ttclid,
                ip,
                user_agent,
                now_secs: NOW,
                gpc,
                consent_cookie: consent.map(|c: Choice| c.as_str().to_string()),
                sandboxed,
                ..Visit::default()
            },
        )
}

/// A unit price as the browser sends it: a decimal string or a JSON number (small enough for
/// any valid body's total to stay under `MAX_AMOUNT`).
fn price() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[0-9]{1,7}(\\.[0-9]{1,9})?".prop_map(Value::from),
        (0u64..100_000_000).prop_map(|cents| json!(cents as f64 / 100.0)),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    ("[0-9A-Za-z_-]{1,64}", "\\PC{0,40}", 1u64..=10_000, price()).prop_map(
        |(id, name, quantity, price)| {
            json!({ "content_id": id, "content_name": name, "quantity": quantity, "price": price })
        },
    )
}

/// A body the endpoint must accept.
fn valid_body() -> impl Strategy<Value = Value> {
    let event = (
        prop::sample::select(&COLLECTED[..]),
        "[A-Za-z0-9_.:-]{1,128}",
        prop::option::of(-WEEK..=WEEK),
        prop::option::of("https?://shop\\.example/[a-z0-9/._-]{0,60}"),
    );
    let properties = (
        prop::collection::vec(content(), 0..6),
        prop::option::of("[A-Z]{3}"),
        prop::option::of(price()),
        prop::option::of("[A-Za-z0-9_.:-]{1,128}"),
        prop::option::of("[A-Za-z0-9_-]{1,64}"),
        prop::option::of(0..=MAX_MARKET_ID),
    );
    let extras = (
        prop::option::of("[0-9A-HJKMNP-TV-Z]{26}_\\.tt\\.1"),
        prop::option::of((
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
        )),
        prop::option::of("[a-f0-9]{32}"),
    );
    (event, properties, extras).prop_map(
        |(
            (event, event_id, skew, url),
            (contents, currency, value, order_id, market_handle, market_id),
            (ttp, consent, checkout_token),
        )| {
            let mut body = json!({
                "event": event,
                "event_id": event_id,
                "properties": { "contents": contents },
            });
            let mut set = |key: &str, v: Option<Value>| {
                if let Some(v) = v {
                    body[key] = v;
                }
            };
            set("event_time", skew.map(|s| json!(NOW + s)));
            set("page", url.map(|u| json!({ "url": u, "referrer": u })));
            set("user", ttp.map(|t| json!({ "ttp": t })));
            set(
                "consent",
                consent.map(|(m, s)| json!({ "marketing": m, "sale_of_data": s })),
            );
            set("checkout_token", checkout_token.map(Value::from));
            let props = &mut body["properties"];
            for (key, v) in [
                ("currency", currency.map(Value::from)),
                ("value", value),
                ("order_id", order_id.map(Value::from)),
                ("market_handle", market_handle.map(Value::from)),
                ("market_id", market_id.map(Value::from)),
            ] {
                if let Some(v) = v {
                    props[key] = v;
                }
            }
            body
        },
    )
}

fn is_safe_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What every URL the Worker keeps or sends satisfies: absolute http(s), within the cap, no
/// fragment, no `@` anywhere (credentials, an email in the path or a value, encoded or not),
/// only allowlisted parameters, none of them phone-looking.
fn assert_attribution_only(url: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        url.starts_with("https://") || url.starts_with("http://"),
        "{:?}",
        url
    );
    prop_assert!(url.len() <= 2048, "{} bytes", url.len());
    prop_assert!(!url.contains('#'), "{:?}", url);
    prop_assert!(!urls::percent_decode(url, true).contains('@'), "{:?}", url);
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            prop_assert!(
                urls::ATTRIBUTION_PARAMS.contains(&name),
                "{:?} in {:?}",
                name,
                url
            );
            prop_assert!(
                !urls::looks_like_phone(&urls::percent_decode(value, true)),
                "{:?}",
                url
            );
        }
    }
    Ok(())
}

/// What every accepted event satisfies, whatever the body said.
fn assert_sane(c: &Collected, facts: &Visit) -> Result<(), TestCaseError> {
    let e = &c.event;
    prop_assert!(COLLECTED.contains(&e.event.as_str()), "event {:?}", e.event);
    prop_assert!(collect::is_event_id(&e.event_id), "{:?}", e.event_id);
    prop_assert!(
        (i128::from(e.event_time) - i128::from(NOW)).abs() <= i128::from(WEEK),
        "event_time {} is more than a week from now",
        e.event_time
    );
    let p = &e.properties;
    prop_assert!(p.contents.len() <= 100);
    for item in &p.contents {
        prop_assert!(is_safe_token(&item.content_id, 64), "{:?}", item.content_id);
        prop_assert_eq!(item.content_type.as_str(), "product");
        prop_assert!((1..=10_000).contains(&item.quantity));
        if let Some(name) = &item.content_name {
            prop_assert!(!name.is_empty() && name.chars().count() <= 512);
        }
    }
    if let Some(currency) = &p.currency {
        prop_assert!(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()));
    }
    if let Some(order_id) = &p.order_id {
        prop_assert!(collect::is_event_id(order_id));
    }
    prop_assert!(
        p.market_handle == DEFAULT_MARKET_HANDLE || is_safe_token(&p.market_handle, 64),
        "{:?}",
        p.market_handle
    );
    if let Some(page) = &e.page {
        for url in [&page.url, &page.referrer].into_iter().flatten() {
            assert_attribution_only(url)?;
        }
    }
    let (u, b) = (&e.user, &e.user.browser);
    prop_assert_eq!(&b.ip, &facts.ip);
    prop_assert_eq!(&b.user_agent, &facts.user_agent);
    for (from_request, sent) in [
        (&facts.ttp_cookie, &b.ttp),
        (&facts.ttclid_cookie, &b.ttclid),
    ] {
        match from_request.as_ref().filter(|v| edge::plausible(v)) {
            Some(v) => prop_assert_eq!(Some(v), sent.as_ref()),
            // The body's identifiers count only from the custom-pixel sandbox.
            None if facts.sandboxed => {
                prop_assert!(sent.as_deref().is_none_or(edge::plausible), "{:?}", sent)
            }
            None => prop_assert!(sent.is_none(), "{:?}", sent),
        }
    }
    prop_assert!(u.email.is_none() && u.phone.is_none() && u.external_id.is_none());
    if facts.consent().is_some() {
        prop_assert_eq!(c.consent, facts.consent());
    }
    let limited = facts.gpc || c.consent == Some(Choice::Limited);
    prop_assert_eq!(e.limited_data_use, limited.then_some(true));
    if let Some(token) = &c.checkout_token {
        prop_assert!(collect::is_event_id(token));
    }
    prop_assert!(
        p.value.is_some_and(|v| v.within(MAX_AMOUNT)),
        "{:?}",
        p.value
    );
    prop_assert!(p.market_id <= MAX_MARKET_ID);
    for item in &p.contents {
        prop_assert!(item.price.is_none_or(|v| v.within(MAX_AMOUNT)));
    }
    assert_carried_exactly(e)
}

/// What the edge accepts, the queue reads back exactly (the Durable Object boundary is JSON)
/// and turns into a TikTok payload with finite numbers.
fn assert_carried_exactly(e: &Event) -> Result<(), TestCaseError> {
    let wire = serde_json::to_string(e).map_err(|err| TestCaseError::fail(err.to_string()))?;
    let back: Event = serde_json::from_str(&wire)
        .map_err(|err| TestCaseError::fail(format!("{err} reading back {wire}")))?;
    prop_assert_eq!(&back, e);
    let sent = e
        .tiktok_json()
        .map_err(|err| TestCaseError::fail(err.to_string()))?;
    let sent: Value = serde_json::from_str(&sent).expect("TikTok payload is JSON");
    if let Some(value) = sent["properties"].get("value") {
        prop_assert!(value.as_f64().is_some_and(f64::is_finite), "{}", value);
    }
    Ok(())
}

fn assert_documented(err: &collect::CollectError, body: &[u8]) -> Result<(), TestCaseError> {
    let expected = if body.len() > MAX_BODY_BYTES {
        "too_large"
    } else {
        "invalid_event"
    };
    prop_assert_eq!(err.code, expected);
    prop_assert!(!err.message.is_empty());
    Ok(())
}

fn check_collect(body: &[u8], facts: &Visit) -> Result<(), TestCaseError> {
    match collect::parse(body, PURCHASE, facts) {
        Ok(c) => assert_sane(&c, facts),
        Err(e) => assert_documented(&e, body),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn collect_takes_any_input_calmly(body in hostile_body(valid_body()), facts in facts()) {
        check_collect(&body.0, &facts)?;
    }

    #[test]
    fn collect_accepts_valid_bodies_as_sent(body in valid_body(), facts in facts()) {
        let c = collect::parse(body.to_string().as_bytes(), PURCHASE, &facts)
            .map_err(|e| TestCaseError::fail(format!("{e} for {body}")))?;
        assert_sane(&c, &facts)?;
        let e = &c.event;
        prop_assert_eq!(&e.event, &body["event"]);
        prop_assert_eq!(&e.event_id, &body["event_id"]);
        prop_assert_eq!(e.event_time, NOW, "the receipt time, whatever the body says");
        let sent = body["properties"]["contents"].as_array().expect("contents");
        prop_assert_eq!(e.properties.contents.len(), sent.len());
        for (got, sent) in e.properties.contents.iter().zip(sent) {
            prop_assert_eq!(&got.content_id, &sent["content_id"]);
            prop_assert_eq!(got.quantity, sent["quantity"].as_u64().expect("quantity"));
        }
        let currency = body["properties"]["currency"].as_str().map(str::to_ascii_uppercase);
        prop_assert_eq!(&e.properties.currency, &currency);
        let market_id = body["properties"]["market_id"].as_u64().unwrap_or(0);
        prop_assert_eq!(e.properties.market_id, market_id);
        if facts.sandboxed && !facts.ttp_cookie.as_deref().is_some_and(edge::plausible) {
            prop_assert_eq!(e.user.browser.ttp.as_deref(), body["user"]["ttp"].as_str());
        }
        let report = serde_json::from_value::<Report>(body["consent"].clone()).ok();
        prop_assert_eq!(c.consent, facts.consent().or(report.as_ref().and_then(Report::choice)));
    }

    /// Size is judged before anything else, and exactly at the documented limit.
    #[test]
    fn collect_size_limit_is_exact(body in valid_body(), extra in 0usize..=128) {
        let mut text = body.to_string();
        let target = MAX_BODY_BYTES - 64 + extra;
        if text.len() < target {
            // Trailing whitespace keeps the JSON valid.
            text.push_str(&" ".repeat(target - text.len()));
        }
        let facts = Visit { now_secs: NOW, ..Visit::default() };
        let result = collect::parse(text.as_bytes(), PURCHASE, &facts);
        if text.len() > MAX_BODY_BYTES {
            prop_assert_eq!(result.unwrap_err().code, "too_large");
        } else {
            prop_assert!(result.is_ok(), "{} bytes refused", text.len());
        }
    }

    /// Any event_time in the body: the event carries the time the Worker received it.
    #[test]
    fn collect_event_time_is_the_receipt_time(
        time in prop_oneof![
            any::<i64>(),
            (NOW - 2 * WEEK)..=(NOW + 2 * WEEK),
            prop::sample::select(vec![i64::MIN, i64::MIN + NOW, i64::MIN + NOW - 1, i64::MAX]),
        ],
    ) {
        let body = json!({ "event": "ViewContent", "event_id": "e1", "event_time": time });
        let facts = Visit { now_secs: NOW, ..Visit::default() };
        let collected = collect::parse(body.to_string().as_bytes(), PURCHASE, &facts)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(collected.event.event_time, NOW, "event_time {}", time);
    }

    /// Up to 100 products at the largest accepted line total: accepted exactly up to
    /// `MAX_AMOUNT` in all, refused beyond it; one product more than 100 is refused.
    #[test]
    fn collect_contents_limit_and_largest_totals(n in 0usize..=110, scaled in any::<[bool; 2]>()) {
        // Mixing scales makes the sum rescale to 9 decimals.
        let per_line = ["1000000", "1000000.000000000"]; // × 10,000 = 10^10; 100 lines = 10^12
        let contents: Vec<Value> = (0..n)
            .map(|i| {
                let price = per_line[usize::from(scaled[i % 2])];
                json!({ "content_id": "1", "quantity": 10_000, "price": price })
            })
            .collect();
        let body = json!({
            "event": "AddToCart", "event_id": "e1",
            "properties": { "contents": contents },
        });
        let facts = Visit { now_secs: NOW, ..Visit::default() };
        let result = collect::parse(body.to_string().as_bytes(), PURCHASE, &facts);
        prop_assert_eq!(result.is_ok(), n <= 100);
        if let Ok(c) = result {
            let total = c.event.properties.value.expect("value").to_string();
            let whole = (n as u64 * 10_000_000_000).to_string();
            prop_assert_eq!(total.split('.').next(), Some(whole.as_str()));
            assert_carried_exactly(&c.event)?;
        }
    }

    /// The crafted values that once answered 500 (a price × quantity near 10^18; `market_id`
    /// = u64::MAX) and their family: any amount, quantity and id is either refused as
    /// `invalid_event` (a 4xx) or accepted within the bounds and carried exactly.
    #[test]
    fn crafted_amounts_and_ids_are_refused_or_carried_exactly(
        price in crafted_amount(),
        quantity in crafted_quantity(),
        lines in 1usize..=3,
        value in prop::option::of(crafted_amount()),
        market_id in crafted_id(),
    ) {
        let contents: Vec<Value> = (0..lines)
            .map(|i| json!({ "content_id": i.to_string(), "quantity": quantity, "price": price }))
            .collect();
        let mut properties = json!({ "contents": contents, "market_id": market_id });
        if let Some(value) = &value {
            properties["value"] = value.clone();
        }
        let body = json!({ "event": "AddToCart", "event_id": "e1", "properties": properties });
        let facts = Visit { now_secs: NOW, ..Visit::default() };
        let result = collect::parse(body.to_string().as_bytes(), PURCHASE, &facts);
        // An independent oracle for decimal strings and integers: nano-units in u128.
        let nanos = |v: &Value| -> Option<u128> {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_u64() => n.to_string(),
                _ => return None,
            };
            let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
            if whole.is_empty() || whole.len() > 20 || frac.len() > 9
                || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(whole.parse::<u128>().ok()? * 1_000_000_000 + format!("{frac:0<9}").parse::<u128>().ok()?)
        };
        let max = u128::from(MAX_AMOUNT) * 1_000_000_000;
        let expected = match (nanos(&price), quantity.as_u64(), value.as_ref().map(nanos), market_id.as_u64()) {
            (Some(p), Some(q), v, Some(m)) if v != Some(None) => Some(
                (1..=10_000).contains(&q)
                    && p <= max
                    && p * u128::from(q) * lines as u128 <= max
                    && v.flatten().is_none_or(|v| v <= max)
                    && m <= MAX_MARKET_ID,
            ),
            _ => None, // floats, negatives, exponents: either answer, but a documented one
        };
        match result {
            Ok(c) => {
                prop_assert_ne!(expected, Some(false), "accepted {}", body);
                assert_sane(&c, &facts)?;
            }
            Err(e) => {
                prop_assert_ne!(expected, Some(true), "refused {}: {}", body, e);
                prop_assert_eq!(e.code, "invalid_event");
            }
        }
    }
}

/// Amounts an attacker would send: anything near the bounds, the overflow edges, exponents,
/// floats, negatives, and plain decimals of every size.
fn crafted_amount() -> impl Strategy<Value = Value> {
    let max = MAX_AMOUNT;
    prop_oneof![
        2 => "[0-9]{1,20}(\\.[0-9]{1,9})?".prop_map(Value::from),
        2 => (0..=max * 2).prop_map(|n| Value::from(n.to_string())),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!("1000000000000"), json!("1000000000000.000000001"), json!("999999999999.999999999"),
            json!("99999999999999.99"), json!("1e18"), json!(1e18), json!("-0.01"), json!("0"),
            json!(u64::MAX), json!("18446744073709551615"), json!("340282366920938463463374607431768211456"),
        ]),
    ]
}

fn crafted_quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0u64..=10_001).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => prop::sample::select(vec![json!(u64::MAX), json!(1e4), json!("2")]),
    ]
}

fn crafted_id() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (0..=MAX_MARKET_ID + 2).prop_map(Value::from),
        2 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(u64::MAX), json!(MAX_MARKET_ID), json!(MAX_MARKET_ID + 1), json!(1.5),
            json!("23505895537"), json!(null),
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shopify webhooks
// ---------------------------------------------------------------------------------------------

const FIXTURES: [&str; 4] = [
    include_str!("../../../tests/fixtures/shopify/cart_update.json"),
    include_str!("../../../tests/fixtures/shopify/checkout_update.json"),
    include_str!("../../../tests/fixtures/shopify/order_create.json"),
    include_str!("../../../tests/fixtures/shopify/order_edited.json"),
];

/// Every header form the Worker maps to a topic, plus one it ignores.
const TOPIC_HEADERS: &[&str] = &[
    "carts/create",
    "carts/update",
    "checkouts/create",
    "checkouts/update",
    "orders/create",
    "orders/paid",
    "orders/updated",
    "orders/edited",
    "customers/redact",
    "shop/redact",
    "customers/data_request",
    "app/uninstalled",
];

fn fixture() -> impl Strategy<Value = Value> {
    prop::sample::select(&FIXTURES[..])
        .prop_map(|text| serde_json::from_str(text).expect("fixtures are JSON"))
}

fn mapping_config() -> MappingConfig {
    MappingConfig {
        purchase_event_name: "Purchase".to_string(),
        send_test_orders: false,
        default_country: Some("US".to_string()),
        excluded_sources: tiktok_edge_core::config::DEFAULT_EXCLUDED_SOURCES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

/// The resource key's contract per topic. The match is exhaustive on purpose: a new topic
/// does not compile until its key is covered here.
fn assert_resource_key(topic: Topic, key: &Result<String, Unusable>) -> Result<(), TestCaseError> {
    let Ok(key) = key else { return Ok(()) };
    // `resource:<key>` is a KV key: KV refuses keys over 512 bytes.
    prop_assert!(key.len() <= 300, "{} bytes", key.len());
    match topic {
        Topic::CartsCreate | Topic::CartsUpdate => {
            let token = key.strip_prefix("cart:").expect("cart: prefix");
            prop_assert!(!token.is_empty() && !token.contains('?') && token.trim() == token);
        }
        Topic::CheckoutsCreate | Topic::CheckoutsUpdate => {
            let token = key.strip_prefix("checkout:").expect("checkout: prefix");
            prop_assert!(!token.is_empty() && token.trim() == token);
        }
        Topic::OrdersCreate | Topic::OrdersChanged | Topic::OrdersEdited => {
            let id = key.strip_prefix("order:").expect("order: prefix");
            prop_assert_eq!(id.parse::<u64>().map(|n| n.to_string()), Ok(id.to_string()));
        }
        Topic::CustomersRedact | Topic::ShopRedact | Topic::CustomersDataRequest | Topic::Other => {
            prop_assert!(false, "{:?} has no resource, got {}", topic, key);
        }
    }
    Ok(())
}

/// Runs a parsed payload through the mapping, as the shop's Durable Object does.
fn map_payload(payload: &Payload) -> Result<Vec<Event>, TestCaseError> {
    let config = mapping_config();
    let session = Session::default();
    Ok(match payload {
        Payload::Cart(cart) => {
            let (events, next) = mapping::cart_added(cart, &CartState::default(), &session, NOW);
            let (again, _) = mapping::cart_added(cart, &next, &session, NOW);
            prop_assert!(
                again.is_empty(),
                "the same cart twice adds nothing the second time"
            );
            events
        }
        Payload::Checkout(checkout) => {
            mapping::checkout_events(checkout, true, &session, &config, NOW)
        }
        Payload::Order(order) => {
            let mut state = OrderState::default();
            state.absorb(order, mapping::session_from_order(order), &config);
            let mut events: Vec<Event> = mapping::purchase(order, &session, &config, NOW)
                .into_iter()
                .collect();
            events.extend(state.resolve_upsells(order.id.unwrap_or(0), &config, NOW));
            events
        }
        Payload::OrderEdited(edited) => {
            let mut state = OrderState::default();
            state.add_edit(&edited.order_edit);
            let order_id = edited.order_edit.order_id.unwrap_or(0);
            state.resolve_upsells(order_id, &config, NOW)
        }
        Payload::None => Vec::new(),
    })
}

fn assert_payload_fits(
    topic: Topic,
    parsed: &Result<Payload, Unusable>,
) -> Result<(), TestCaseError> {
    let fits = matches!(
        (topic, parsed),
        (_, Err(_))
            | (
                Topic::CartsCreate | Topic::CartsUpdate,
                Ok(Payload::Cart(_))
            )
            | (
                Topic::CheckoutsCreate | Topic::CheckoutsUpdate,
                Ok(Payload::Checkout(_))
            )
            | (
                Topic::OrdersCreate | Topic::OrdersChanged,
                Ok(Payload::Order(_))
            )
            | (Topic::OrdersEdited, Ok(Payload::OrderEdited(_)))
            | (
                Topic::CustomersRedact
                    | Topic::ShopRedact
                    | Topic::CustomersDataRequest
                    | Topic::Other,
                Ok(Payload::None)
            )
    );
    prop_assert!(fits, "{:?} parsed as {:?}", topic, parsed);
    Ok(())
}

/// `redact` promises "every string and number replaced by its type": the output has the
/// input's shape (same keys, arrays cut to 5) and no value of its own.
fn assert_redacted(input: &Value, output: &Value) -> Result<(), TestCaseError> {
    match (input, output) {
        (Value::String(s), Value::String(r)) => {
            prop_assert_eq!(r, &format!("<string, {} chars>", s.chars().count()));
        }
        (Value::Number(_), Value::String(r)) => prop_assert_eq!(r, "<number>"),
        (Value::Null, Value::Null) => {}
        (Value::Bool(a), Value::Bool(b)) => prop_assert_eq!(a, b),
        (Value::Array(a), Value::Array(b)) => {
            prop_assert_eq!(b.len(), a.len().min(5));
            for (a, b) in a.iter().zip(b) {
                assert_redacted(a, b)?;
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            prop_assert!(a.keys().eq(b.keys()), "keys changed");
            for (a, b) in a.values().zip(b.values()) {
                assert_redacted(a, b)?;
            }
        }
        _ => prop_assert!(false, "{} redacted as {}", input, output),
    }
    Ok(())
}

/// `s` as it appears inside a JSON string.
fn json_text(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string serialises");
    quoted[1..quoted.len() - 1].to_string()
}

/// String values and numbers (4+ characters) of `v`, as they appear in JSON text.
fn values_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.chars().count() >= 4 => out.push(json_text(s)),
        Value::Number(n) if n.to_string().len() >= 4 => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|item| values_of(item, out)),
        Value::Object(map) => map.values().for_each(|item| values_of(item, out)),
        _ => {}
    }
}

fn keys_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|item| keys_of(item, out)),
        Value::Object(map) => {
            for (k, item) in map {
                out.push(json_text(k));
                keys_of(item, out);
            }
        }
        _ => {}
    }
}

fn check_redact(body: &[u8]) -> Result<(), TestCaseError> {
    let shown = shopify::redact(body);
    let Ok(input) = serde_json::from_slice::<Value>(body) else {
        prop_assert_eq!(shown, format!("<{} bytes, not JSON>", body.len()));
        return Ok(());
    };
    let output: Value = serde_json::from_str(&shown).expect("redact writes JSON");
    assert_redacted(&input, &output)?;
    // The same promise as text: no value of the body appears, except inside what is shown by
    // design: object keys, redaction markers ("<string, 1234 chars>"), true, false and null.
    let mut shown_by_design = vec!["true".to_string(), "false".into(), "null".into()];
    let mut values = Vec::new();
    values_of(&input, &mut values);
    keys_of(&input, &mut shown_by_design);
    values_of(&output, &mut shown_by_design);
    for value in values {
        let by_design = shown_by_design.iter().any(|t| t.contains(&value));
        prop_assert!(
            by_design || !shown.contains(&value),
            "{:?} leaked into {}",
            value,
            shown
        );
    }
    Ok(())
}

/// Parked reasons are logged, kept and shown: they may name fields and types, never a value.
fn assert_no_value_in(reason: &str, body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let mut values = Vec::new();
    values_of(&parsed, &mut values);
    for value in values {
        let raw = value.trim_matches('"');
        // Words a reason is made of ("expected", field names) can be values too.
        let wordlike = raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b' ');
        if raw.chars().count() >= 6 && !wordlike {
            prop_assert!(!reason.contains(raw), "{:?} quotes {:?}", reason, raw);
        }
    }
    Ok(())
}

fn check_webhook(body: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    for header in TOPIC_HEADERS {
        let topic = Topic::parse(header);
        let key = shopify::parse_json(body).and_then(|f| shopify::resource_key(topic, &f));
        assert_resource_key(topic, &key)?;
        let parsed = Payload::parse(topic, &text);
        assert_payload_fits(topic, &parsed)?;
        let shape = shopify::shape::parse(topic, body, "demo.myshopify.com").map(drop);
        for reason in [key.err(), parsed.as_ref().err().cloned(), shape.err()]
            .iter()
            .flatten()
        {
            assert_no_value_in(reason, body)?;
        }
        if let Ok(payload) = &parsed {
            for event in map_payload(payload)? {
                prop_assert!(serde_json::to_string(&event).is_ok());
            }
        }
    }
    check_redact(body)
}

fn u64_as_json(n: u64, as_text: bool) -> Value {
    if as_text {
        Value::String(n.to_string())
    } else {
        Value::from(n)
    }
}

fn big_id() -> impl Strategy<Value = u64> {
    prop_oneof![(1u64 << 53)..=u64::MAX, any::<u64>()]
}

/// Decimal strings Amount accepts, up to its 20 integer digits and 9 decimals.
fn any_amount_text() -> impl Strategy<Value = String> {
    "-?[0-9]{1,20}(\\.[0-9]{0,9})?"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn webhook_bodies_never_break_parsing_mapping_or_redaction(
        body in hostile_body(fixture()),
    ) {
        check_webhook(&body.0)?;
    }

    #[test]
    fn topic_headers_of_any_shape(header in hostile_string()) {
        let topic = Topic::parse(&header);
        if !TOPIC_HEADERS.iter().any(|h| Topic::parse(h) == topic) {
            prop_assert_eq!(topic, Topic::Other);
        }
    }

    /// Ids above 2^53, as numbers or strings, come out of the payload exactly.
    #[test]
    fn ids_survive_exactly(
        order_id in big_id(), line_id in big_id(), variant_id in big_id(),
        customer_id in big_id(), edit_id in big_id(), as_text in any::<[bool; 5]>(),
    ) {
        let order = json!({
            "id": u64_as_json(order_id, as_text[0]),
            "source_name": "web",
            "customer": { "id": u64_as_json(customer_id, as_text[1]) },
            "line_items": [{
                "id": u64_as_json(line_id, as_text[2]),
                "variant_id": u64_as_json(variant_id, as_text[3]),
                "quantity": 1, "price": "1.00",
            }],
        })
        .to_string();
        prop_assert_eq!(
            shopify::parse_json(order.as_bytes())
                .and_then(|f| shopify::resource_key(Topic::OrdersCreate, &f)),
            Ok(format!("order:{order_id}"))
        );
        let Ok(Payload::Order(parsed)) = Payload::parse(Topic::OrdersCreate, &order) else {
            return Err(TestCaseError::fail(format!("not an order: {order}")));
        };
        prop_assert_eq!(parsed.id, Some(order_id));
        prop_assert_eq!(parsed.customer.as_ref().and_then(|c| c.id), Some(customer_id));
        prop_assert_eq!(parsed.line_items[0].id, Some(line_id));
        prop_assert_eq!(parsed.line_items[0].variant_id, Some(variant_id));
        let event = mapping::purchase(&parsed, &Session::default(), &mapping_config(), NOW)
            .map_err(|skip| TestCaseError::fail(skip.to_string()))?;
        prop_assert_eq!(event.event_id, order_id.to_string());
        prop_assert_eq!(&event.properties.contents[0].content_id, &variant_id.to_string());
        prop_assert_eq!(event.user.external_id, hash::hash_external_id(&customer_id.to_string()));

        let edit = json!({ "order_edit": {
            "id": u64_as_json(edit_id, as_text[4]),
            "order_id": u64_as_json(order_id, as_text[0]),
            "line_items": { "additions": [{ "id": u64_as_json(line_id, as_text[2]), "delta": 1 }] },
        }})
        .to_string();
        prop_assert_eq!(
            shopify::parse_json(edit.as_bytes())
                .and_then(|f| shopify::resource_key(Topic::OrdersEdited, &f)),
            Ok(format!("order:{order_id}"))
        );
        let Ok(Payload::OrderEdited(parsed)) = Payload::parse(Topic::OrdersEdited, &edit) else {
            return Err(TestCaseError::fail(format!("not an order edit: {edit}")));
        };
        prop_assert_eq!(parsed.order_edit.id, Some(edit_id));
        prop_assert_eq!(parsed.order_edit.order_id, Some(order_id));
    }

    /// Quantities are any u64 in Shopify's schema and prices any decimal: the mapping's
    /// sums must not overflow, whatever the lines say.
    #[test]
    fn line_quantities_and_prices_of_any_size_map_without_overflow(
        lines in prop::collection::vec((1u64..4, any::<u64>(), any_amount_text()), 1..4),
    ) {
        let line_items: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (variant, quantity, price))| json!({
                "id": i, "variant_id": variant, "quantity": quantity, "price": price,
            }))
            .collect();
        let additions: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (_, delta, _))| json!({ "id": i, "delta": delta }))
            .collect();
        let bodies = [
            ("carts/update", json!({ "token": "c1", "line_items": line_items })),
            ("checkouts/create", json!({ "token": "k1", "line_items": line_items })),
            ("orders/create", json!({ "id": 1, "line_items": line_items })),
        ];
        let mut state = OrderState::default();
        for (header, body) in bodies {
            let payload = Payload::parse(Topic::parse(header), &body.to_string())
                .map_err(|unusable| TestCaseError::fail(unusable.0))?;
            map_payload(&payload)?;
            if let Payload::Order(order) = payload {
                state.absorb(&order, Session::default(), &mapping_config());
            }
        }
        let edit = json!({
            "order_edit": { "id": 2, "order_id": 1, "line_items": { "additions": additions } },
        })
        .to_string();
        let Ok(Payload::OrderEdited(edited)) = Payload::parse(Topic::OrdersEdited, &edit) else {
            return Err(TestCaseError::fail(format!("not an order edit: {edit}")));
        };
        state.add_edit(&edited.order_edit);
        state.resolve_upsells(1, &mapping_config(), NOW);
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook signatures
// ---------------------------------------------------------------------------------------------

fn sign(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_string(),
        "[A-Za-z0-9+/=\\s]{0,64}",
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| base64(&b)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_signature_header_is_refused_calmly(
        secret in hostile_string(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        header in header_text(),
    ) {
        // A random header matching HMAC-SHA256 would be a 2^-256 event.
        prop_assert!(!shopify::hmac::verify(&[secret.as_str()], &body, Some(&header)));
    }

    #[test]
    fn genuine_signatures_verify_and_any_flipped_bit_fails(
        secret in hostile_string(),
        other in hostile_string(),
        body in prop::collection::vec(any::<u8>(), 1..512),
        body_bit in any::<Index>(),
        tag_bit in 0usize..256,
    ) {
        let verify = |secrets: &[&str], body: &[u8], tag: &[u8]| {
            shopify::hmac::verify(secrets, body, Some(&format!(" {}\n", base64(tag))))
        };
        let tag = sign(&secret, &body);
        prop_assert!(verify(&[&secret], &body, &tag));
        prop_assert!(verify(&[&other, &secret], &body, &tag), "the previous secret of a rotation");

        let mut forged_body = body.clone();
        let bit = body_bit.index(body.len() * 8);
        forged_body[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!verify(&[&secret], &forged_body, &tag));

        let mut forged_tag = tag.clone();
        forged_tag[tag_bit / 8] ^= 1 << (tag_bit % 8);
        prop_assert!(!verify(&[&secret], &body, &forged_tag));
        prop_assert!(!verify(&[&secret], &[], &sign(&secret, &[])), "empty bodies are refused");
    }
}

// ---------------------------------------------------------------------------------------------
// Match-key hashing
// ---------------------------------------------------------------------------------------------

type Hasher = fn(&str) -> Option<String>;

const HASHERS: [(&str, Hasher); 6] = [
    ("email", hash::hash_email),
    ("phone", |s| hash::hash_phone(s, Some("US"))),
    ("phone without country", |s| hash::hash_phone(s, None)),
    ("external_id", hash::hash_external_id),
    ("name", hash::hash_name),
    ("zip", hash::hash_zip),
];

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// E.164 as `normalize_phone` documents it: `+`, then 8 to 15 digits not starting with 0.
fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\+?[0-9 ().\\-/]{0,24}",
        "(00|\\+)?[0-9]{6,17}",
        "\\+?[0-9 ]{0,12}(\\(0\\))?[0-9 x+]{0,10}",
        hostile_string(),
    ]
}

fn country() -> impl Strategy<Value = Option<String>> {
    let known = prop::sample::select(vec![
        "US", "us", " ca ", "GB", "IT", "SM", "HU", "RU", "KZ", "DE", "XX", "",
    ]);
    prop::option::of(prop_oneof![
        3 => known.prop_map(String::from),
        1 => hostile_string(),
    ])
}

const WHITESPACE: &[&str] = &["", " ", "\t", "\n", "\u{3000}", "\u{A0}"];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hashers_give_nothing_or_one_digest(raw in hostile_string()) {
        prop_assert!(is_digest(&hash::sha256_hex(&raw)));
        for (name, hasher) in HASHERS {
            let Some(digest) = hasher(&raw) else { continue };
            prop_assert!(is_digest(&digest), "{}: {:?}", name, digest);
            prop_assert_eq!(hasher(&digest), Some(digest.clone()), "{} hashed twice", name);
        }
        let present = !raw.trim().is_empty();
        prop_assert_eq!(hash::hash_email(&raw).is_some(), present);
        // Names keep letters and digits only: punctuation alone is no name.
        prop_assert_eq!(
            hash::hash_name(&raw).is_some(),
            raw.chars().any(char::is_alphanumeric)
        );
        prop_assert_eq!(hash::hash_external_id(&raw).is_some(), present);
    }

    #[test]
    fn surrounding_whitespace_never_changes_a_hash(
        raw in hostile_string(),
        before in prop::sample::select(WHITESPACE),
        after in prop::sample::select(WHITESPACE),
    ) {
        let padded = format!("{before}{raw}{after}");
        for (name, hasher) in HASHERS {
            prop_assert_eq!(hasher(&padded), hasher(&raw), "{}", name);
        }
    }

    #[test]
    fn already_hashed_values_pass_through_lowercased(
        digest in "[0-9a-fA-F]{64}",
        before in prop::sample::select(WHITESPACE),
        after in prop::sample::select(WHITESPACE),
    ) {
        let raw = format!("{before}{digest}{after}");
        for (name, hasher) in HASHERS {
            prop_assert_eq!(hasher(&raw), Some(digest.to_ascii_lowercase()), "{}", name);
        }
    }

    #[test]
    fn phones_normalise_to_e164_or_nothing(raw in phone_like(), country in country()) {
        let country = country.as_deref();
        let normal = hash::normalize_phone(&raw, country);
        if let Some(e164) = &normal {
            prop_assert!(is_e164(e164), "{:?} → {:?}", raw, e164);
            prop_assert_eq!(hash::normalize_phone(e164, None), normal.clone(), "idempotent");
            prop_assert_eq!(hash::normalize_phone(e164, Some("GB")), normal.clone());
        }
        if !hash::is_sha256_hex(raw.trim()) {
            prop_assert_eq!(hash::hash_phone(&raw, country), normal.map(|p| hash::sha256_hex(&p)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cookies and the edge's decisions
// ---------------------------------------------------------------------------------------------

const COOKIE_NAMES: [&str; 8] = [
    "_ttp",
    "ttclid",
    CLICK_COOKIE,
    SESSION_MARKER,
    CART_MARKER,
    CHECKOUT_MARKER,
    PROOF_COOKIE,
    CONSENT_COOKIE,
];

/// RFC 6265 cookie-octet: no controls, whitespace, `"`, `,`, `;` or `\`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A `Set-Cookie` value the Worker can put in a header and a browser reads as intended:
/// printable ASCII, one of our names, a value of cookie-octets, and our attributes only (a `;`
/// smuggled into the value would show up as an unknown attribute).
fn assert_set_cookie(c: &str, domain: Option<&str>) -> Result<(), TestCaseError> {
    prop_assert!(c.bytes().all(|b| (0x20..0x7F).contains(&b)), "{:?}", c);
    let mut parts = c.split(';').map(str::trim);
    let (name, value) = parts
        .next()
        .and_then(|p| p.split_once('='))
        .expect("name=value");
    prop_assert!(COOKIE_NAMES.contains(&name), "{:?}", c);
    prop_assert!(value.bytes().all(is_cookie_octet), "{:?}", c);
    for attribute in parts {
        let known = matches!(attribute, "SameSite=Lax" | "Secure" | "Path=/")
            || attribute
                .strip_prefix("Max-Age=")
                .is_some_and(|n| n.parse::<i64>().is_ok())
            || domain.is_some_and(|d| attribute == format!("Domain={d}"));
        prop_assert!(known, "attribute {:?} in {:?}", attribute, c);
    }
    Ok(())
}

/// The `Cookie` header a browser sends back after `set_cookies`.
fn jar_after(set_cookies: &[String]) -> String {
    set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn cookie_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        2 => hostile_string(),
        // RFC 6265 cookie-octets.
        1 => "[!#-+\\--:<-\\[\\]-~]{1,40}",
        1 => prop::sample::select(vec!["granted", "denied", "limited", "c1-abc?key=s"])
            .prop_map(String::from),
    ])
}

fn visit() -> impl Strategy<Value = Visit> {
    let url = prop_oneof![
        hostile_string(),
        ("https://shop\\.example/[a-z]{0,8}", fragmented()).prop_map(|(u, q)| format!("{u}?{q}")),
        ("https://shop\\.example/(checkouts/cn|checkouts/c|[0-9]{1,9}/checkouts)/[A-Za-z0-9=_-]{6,20}", fragmented())
            .prop_map(|(u, q)| format!("{u}?{q}")),
    ];
    (
        url,
        (cookie_value(), cookie_value(), cookie_value()),
        (cookie_value(), cookie_value(), cookie_value()),
        (
            prop::option::of(hostile_string()),
            prop::option::of(hostile_string()),
            cookie_value(),
            cookie_value(),
        ),
        (any::<(bool, bool)>(), any::<i64>()),
    )
        .prop_map(
            |(
                url,
                (ttp, ttclid, consent),
                (cart, cart_marker, click),
                (ip, user_agent, checkout_marker, proof_cookie),
                ((marker, gpc), now_secs),
            )| {
                Visit {
                    url,
                    ttp_cookie: ttp,
                    ttclid_cookie: ttclid,
                    consent_cookie: consent,
                    session_marker: marker,
                    cart_cookie: cart,
                    cart_marker,
                    checkout_marker,
                    proof_cookie,
                    click_cookie: click,
                    reported_ttclid: None,
                    ip,
                    user_agent,
                    gpc,
                    now_secs,
                    sandboxed: false,
                }
            },
        )
}

fn edge_config() -> impl Strategy<Value = Config> {
    let domain = prop_oneof![
        Just(String::new()),
        Just("shop.example".to_string()),
        Just(".Shop-1.Example".to_string()),
        hostile_string(),
    ];
    let consent = prop::sample::select(vec!["allowed", "denied"]);
    (domain, consent).prop_map(|(domain, consent)| {
        let lookup = |name: &str| match name {
            "COOKIE_DOMAIN" => Some(domain.clone()),
            "CONSENT_DEFAULT" => Some(consent.to_string()),
            _ => None,
        };
        // An invalid domain is a configuration error: the Worker runs without the setting.
        Config::from_lookup(&lookup)
            .or_else(|_| {
                Config::from_lookup(&|name: &str| lookup(name).filter(|_| name != "COOKIE_DOMAIN"))
            })
            .expect("CONSENT_DEFAULT is valid")
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn set_cookie_values_cannot_be_injected(
        visit in visit(),
        config in edge_config(),
        now_ms in any::<u64>(),
        random in any::<[u8; 10]>(),
        choice in choice(),
        stored in any::<bool>(),
    ) {
        let domain = config.cookie_domain.as_deref();
        let fresh = edge::new_ttp(now_ms, random);
        let plan = edge::plan(&visit, &config, || fresh.clone());
        for c in &plan.set_cookies {
            assert_set_cookie(c, domain)?;
            // A click's cookie never outlives its 30 days, and is never set already expired.
            if c.starts_with("ttclid=") || c.starts_with("_tt_click=") {
                let age: i64 = c.rsplit("Max-Age=").next().unwrap().parse().unwrap();
                prop_assert!(age > 0 && age <= TTCLID_MAX_AGE_SECS, "{:?}", c);
            }
        }
        // What the edge sets is what it reads back on the next request.
        let jar = jar_after(&plan.set_cookies);
        if plan.set_cookies.iter().any(|c| c.starts_with("_ttp=")) {
            let kept = visit.ttp_cookie.clone().filter(|v| edge::plausible(v));
            prop_assert_eq!(cookies::get(&jar, "_ttp"), Some(kept.unwrap_or(fresh.clone())));
        }
        // A linked cart cookie is marked; a checkout page's token links unless its marker says
        // it was linked, and is marked then.
        let linked = |t: &str| plan.links.iter().any(|(l, _)| *l == JoinToken::Cart(t.to_string()));
        if let Some(cart) = visit.cart_token().filter(|t| linked(t)) {
            prop_assert_eq!(cookies::get(&jar, CART_MARKER), Some(cart.to_string()));
        }
        if let Some(checkout) = visit.checkout_token() {
            let marked = visit.checkout_marker.as_deref() == Some(checkout.token());
            prop_assert_eq!(plan.links.iter().any(|(t, _)| t == &checkout), !marked);
            if !marked {
                prop_assert_eq!(cookies::get(&jar, CHECKOUT_MARKER), Some(checkout.token().to_string()));
            }
        }
        // Without a webhook secret no `_ttp` is proven, whatever the cookies say: a session is
        // kept only from an ad click's landing page (or as a refusal).
        if let Some((sid, session)) = &plan.session {
            prop_assert!(
                keys::is_declined(sid) || mapping::ttclid_from_url(&visit.url).is_some(),
                "{:?} kept for {:?}", session, visit
            );
        }
        // A click is linked only beside the session it leads to (or the refusal) being written.
        for (token, sid) in &plan.links {
            if let JoinToken::Click(click) = token {
                prop_assert_eq!(plan.session.as_ref().map(|(s, _)| s), Some(sid));
                prop_assert_eq!(Some(click.clone()), visit.landed_ttclid());
            }
        }
        prop_assert!(plan.writes() <= 4);
        let stored = stored.then(Session::default);
        let answer = edge::consent_plan(&visit, choice, stored, &config, || fresh.clone());
        for c in &answer.set_cookies {
            assert_set_cookie(c, domain)?;
        }
        let jar = jar_after(&answer.set_cookies);
        prop_assert_eq!(cookies::get(&jar, CONSENT_COOKIE), Some(choice.as_str().to_string()));
    }

    #[test]
    fn new_ttp_is_a_plausible_cookie_sorted_by_time(
        now_ms in 0u64..(1 << 47), later in 1u64..1000, random in any::<[u8; 10]>(),
    ) {
        let ttp = edge::new_ttp(now_ms, random);
        prop_assert!(edge::plausible(&ttp) && ttp.len() == 32 && ttp.ends_with("_.tt.1"));
        prop_assert!(ttp < edge::new_ttp(now_ms + later, [0; 10]));
    }

    #[test]
    fn cookie_jars_of_any_shape(jar in hostile_string(), name in prop_oneof![
        prop::sample::select(&COOKIE_NAMES[..]).prop_map(String::from),
        hostile_string(),
    ]) {
        if let Some(value) = cookies::get(&jar, &name) {
            prop_assert!(!value.is_empty());
        }
    }

    /// A value written with cookie encoding is read back exactly, whatever follows it.
    #[test]
    fn cookie_values_round_trip(
        name in "[A-Za-z_][A-Za-z0-9_]{0,15}",
        value in "\\PC{1,40}",
        tail in hostile_string(),
    ) {
        let written = cookie::Cookie::new(name.clone(), value.clone()).encoded().to_string();
        let jar = format!("{written}; {tail}");
        prop_assert_eq!(cookies::get(&jar, &name), Some(value));
    }
}

// ---------------------------------------------------------------------------------------------
// Landing URLs and cart tokens
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn urls_and_tokens_of_any_shape(s in hostile_string()) {
        if let Some(ttclid) = mapping::ttclid_from_url(&s) {
            prop_assert!(!ttclid.is_empty());
        }
        let key = mapping::cart_key(&s);
        prop_assert!(s.contains(key) && !key.contains('?') && key.trim() == key);
    }

    /// Whatever a URL carries, what is kept of it carries only attribution parameters, and
    /// every allowlisted parameter with a plain value is kept.
    #[test]
    fn urls_keep_only_attribution_parameters(
        scheme in prop::sample::select(&["https", "http", "HTTPS", "ftp", "javascript"][..]),
        user in prop::option::of(prop::sample::select(&["jane.doe@", "u:pw@", "%40@"][..])),
        host in prop::sample::select(&["shop.example", "Shop.Example:8443", "[::1]", "bad host", ""][..]),
        path in prop_oneof![fragmented(), Just("/pages/jane%40example.com".to_string()), "/[a-z/@%0-9]{0,12}"],
        pairs in prop::collection::vec((
            prop_oneof![
                prop::sample::select(urls::ATTRIBUTION_PARAMS).prop_map(String::from),
                prop::sample::select(&["email", "phone", "key", "token", "Email", "utm_source%20", "_kx"][..]).prop_map(String::from),
                fragmented(),
            ],
            prop_oneof![
                "[a-z]{1,4}[a-z0-9]{0,6}",
                Just("jane.doe%40example.com".to_string()),
                Just("jane@example.com".to_string()),
                Just("%2B15551234567".to_string()),
                Just("+44+20+7946+0958".to_string()),
                Just("555-123-4567".to_string()),
                fragmented(),
            ],
        ), 0..6),
        fragment in prop::option::of(fragmented()),
        noise in hostile_string(),
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!(
            "{scheme}://{}{host}{path}?{}{}",
            user.unwrap_or(""),
            query.join("&"),
            fragment.map(|f| format!("#{f}")).unwrap_or_default(),
        );
        for candidate in [&url, &noise] {
            if let Some(kept) = urls::attribution_url(candidate) {
                assert_attribution_only(&kept)?;
            }
        }
        // The generated query is the URL's, whole, unless a generated part ends it early.
        let intact = !path.contains(['?', '#'])
            && pairs.iter().all(|(k, v)| !k.contains('#') && !v.contains('#'));
        if let (Some(kept), true) = (urls::attribution_url(&url), intact) {
            let kept_query = kept.split_once('?').map_or("", |(_, q)| q);
            for (k, v) in &pairs {
                let plain = urls::ATTRIBUTION_PARAMS.contains(&k.as_str())
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && !v.is_empty();
                if plain {
                    let pair = format!("{k}={v}");
                    prop_assert!(kept_query.split('&').any(|p| p == pair), "{:?} lost from {:?}: {:?}", pair, url, kept);
                }
            }
        }
    }

    /// Any ttclid value is decoded as a form decoder (`url`'s, a browser's) decodes it: `+` is
    /// a space, `%XX` a byte, anything else literal.
    #[test]
    fn ttclid_decodes_like_a_form_decoder(
        raw in prop_oneof![fragmented(), "[%+\\- 0-9a-gA-G=é]{0,16}"],
    ) {
        let value = raw.replace(['&', '#'], "");
        let expected = url::form_urlencoded::parse(format!("ttclid={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty());
        prop_assert_eq!(mapping::ttclid_from_url(&format!("/p?ttclid={value}")), expected);
    }

    /// A ttclid written with form encoding anywhere in the query is read back exactly.
    #[test]
    fn ttclid_round_trips(
        path in "(https://shop\\.example)?/[a-z0-9/._-]{0,20}",
        before in prop::collection::vec(("[a-z]{1,8}", fragmented()), 0..3),
        ttclid in "\\PC{1,40}",
        fragment in prop::option::of(fragmented()),
    ) {
        let encode = |s: &str| {
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        };
        let mut pairs: Vec<String> = before
            .iter()
            .filter(|(k, _)| k != "ttclid")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        pairs.push(format!("ttclid={}", encode(&ttclid)));
        let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        let url = format!("{path}?{}{fragment}", pairs.join("&"));
        prop_assert_eq!(mapping::ttclid_from_url(&url), Some(ttclid));
    }
}

// ---------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn amounts_from_any_text_round_trip(s in prop_oneof![
        hostile_string(),
        any_amount_text(),
        "[-+ .0-9eE]{0,32}",
    ]) {
        let parsed = Amount::parse(&s);
        if let Some(a) = parsed {
            let shown = a.to_string();
            prop_assert_eq!(Amount::parse(&shown), Some(a), "{:?} shown as {:?}", s, shown);
            prop_assert_eq!(Amount::parse(&shown).map(|b| b.to_string()), Some(shown.clone()));
        }
        let from_json = serde_json::from_value::<Amount>(Value::String(s.clone())).ok();
        prop_assert_eq!(from_json, parsed, "a JSON string means what the text means");
    }

    /// A JSON number is taken at its value or refused, never changed.
    #[test]
    fn amounts_from_any_json_number(n in prop_oneof![
        any::<f64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
    ]) {
        let Ok(a) = serde_json::from_value::<Amount>(n.clone()) else { return Ok(()) };
        match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => prop_assert_eq!(a.to_string(), u.to_string()),
            (_, Some(i), _) => prop_assert_eq!(a.to_string(), i.to_string()),
            (_, _, Some(f)) => prop_assert_eq!(a.to_f64(), f),
            _ => prop_assert!(false, "{} is not a number", n),
        }
    }

    /// Serialising to the JSON number TikTok gets and reading it back gives the same amount,
    /// for prices with up to 15 significant digits between 0.00001 and 10^15 (outside that
    /// range serde_json writes an exponent, which `Amount` refuses to read).
    #[test]
    fn amounts_survive_a_json_number_round_trip(
        units in 0u64..1_000_000_000_000_000, scale in 0u32..=9, negative in any::<bool>(),
    ) {
        let unit = 10u64.pow(scale);
        let sign = if negative { "-" } else { "" };
        let (whole, fraction) = (units / unit, units % unit);
        let text = format!("{sign}{whole}.{fraction:0width$}", width = scale as usize);
        let a = Amount::parse(&text).expect("a plain decimal");
        let magnitude = a.to_f64().abs();
        prop_assume!(magnitude == 0.0 || (1e-5..1e15).contains(&magnitude));
        let json = serde_json::to_string(&a).expect("finite");
        let back = serde_json::from_str::<Amount>(&json).ok();
        prop_assert_eq!(back, Some(a), "{} → {}", text, json);
    }
}

// ---------------------------------------------------------------------------------------------
// Deep nesting and named regressions
// ---------------------------------------------------------------------------------------------

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn serde_json_stops_building_values_at_128_levels() {
    assert!(serde_json::from_str::<Value>(&nested_arrays(127)).is_ok());
    for depth in [128, 10_000] {
        let err = serde_json::from_str::<Value>(&nested_arrays(depth)).unwrap_err();
        assert!(
            err.to_string().contains("recursion limit exceeded"),
            "{err}"
        );
    }
}

#[test]
fn collect_survives_nesting_in_every_field() {
    let facts = Visit {
        now_secs: NOW,
        ..Visit::default()
    };
    let too_deep = format!(
        r#"{{"event":"AddToCart","event_id":"x","pad":{}}}"#,
        nested_arrays(10_000)
    );
    assert_eq!(
        collect::parse(too_deep.as_bytes(), PURCHASE, &facts)
            .unwrap_err()
            .code,
        "too_large"
    );
    // Within the size limit: unknown fields are skipped without recursion, typed fields refuse
    // the wrong shape at the first bracket. Either way, no stack overflow.
    for field in [
        "pad",
        "event",
        "event_id",
        "page",
        "properties",
        "user",
        "consent",
        "checkout_token",
    ] {
        for nested in [
            nested_arrays(8_000),
            format!("{}1{}", r#"{"a":"#.repeat(2_500), "}".repeat(2_500)),
        ] {
            let body = format!(r#"{{"event":"AddToCart","event_id":"x","{field}":{nested}}}"#);
            assert!(body.len() <= MAX_BODY_BYTES);
            if let Err(e) = collect::parse(body.as_bytes(), PURCHASE, &facts) {
                assert_eq!(e.code, "invalid_event", "{field}");
            }
        }
    }
    assert_eq!(
        collect::parse(nested_arrays(8_000).as_bytes(), PURCHASE, &facts)
            .unwrap_err()
            .code,
        "invalid_event"
    );
}

#[test]
fn webhook_parsers_refuse_nesting_past_the_recursion_limit() {
    let deep = nested_arrays(10_000);
    let bodies = [
        deep.clone(),
        format!(r#"{{"id":1,"note_attributes":[{{"name":"_ttp","value":{deep}}}]}}"#),
        format!(r#"{{"token":"k1","shipping_lines":{deep}}}"#),
    ];
    for body in &bodies {
        for header in TOPIC_HEADERS {
            // Returning at all is the property here (no stack overflow): unknown fields are
            // skipped without recursion, so some topics do accept these bodies.
            let topic = Topic::parse(header);
            let _ = Payload::parse(topic, body);
            let _ = shopify::Incoming::parse(topic, body.as_bytes(), "demo.myshopify.com");
        }
        assert_eq!(
            shopify::redact(body.as_bytes()),
            format!("<{} bytes, not JSON>", body.len())
        );
    }
    let err = Payload::parse(Topic::CheckoutsCreate, &bodies[2]).unwrap_err();
    assert!(err.contains("recursion limit exceeded"), "{err}");
    let err = Payload::parse(Topic::OrdersCreate, &bodies[1]).unwrap_err();
    assert!(err.contains("recursion limit exceeded"), "{err}");
}

/// Found by the former event_time window check: `(t - now).abs()` overflowed for an event_time
/// near `i64::MIN`. The body's time is now ignored; such values still change nothing.
#[test]
fn event_time_near_i64_min_is_ignored() {
    let facts = Visit {
        now_secs: NOW,
        ..Visit::default()
    };
    for time in [i64::MIN, i64::MIN + NOW, i64::MAX] {
        let body = json!({ "event": "ViewContent", "event_id": "e1", "event_time": time });
        let collected = collect::parse(body.to_string().as_bytes(), PURCHASE, &facts).unwrap();
        assert_eq!(collected.event.event_time, NOW, "{time}");
    }
}

/// Found by `line_quantities_and_prices_of_any_size_map_without_overflow`: two lines of one
/// variant whose quantities add up past `u64::MAX` (mapping.rs, `cart_added`'s `+=`).
#[test]
fn cart_quantities_of_one_variant_add_up_without_overflow() {
    let cart = r#"{"token":"c1","line_items":[
        {"variant_id":1,"quantity":18446744073709551615},{"variant_id":1,"quantity":1}]}"#;
    let Ok(Payload::Cart(cart)) = Payload::parse(Topic::CartsUpdate, cart) else {
        panic!("a cart");
    };
    let (events, _) = mapping::cart_added(&cart, &CartState::default(), &Session::default(), NOW);
    assert!(events.len() <= 1, "one variant, at most one AddToCart");
}

fn order_line(quantity: u64, price: &str) -> Value {
    json!({ "id": 1, "variant_id": 1, "quantity": quantity, "price": price })
}

/// Found by the same property: price × quantity past `i128::MAX` (money.rs, `Amount::times`),
/// and sums of lines past it (`Amount`'s `Add`, also when rescaling to more decimals).
#[test]
fn order_totals_of_huge_lines_do_not_overflow() {
    let cases = [
        // One line: 10^19 × (2^64 - 1) > i128::MAX.
        vec![order_line(u64::MAX, "10000000000000000000")],
        // Two lines of 10^38 each: their sum.
        vec![
            order_line(1_000_000_000_000_000_000, "99999999999999999999"),
            order_line(1_000_000_000_000_000_000, "99999999999999999999"),
        ],
        // 10^37 rescaled to 9 decimals to be added to 0.000000001.
        vec![
            order_line(100_000_000_000_000_000, "99999999999999999999"),
            order_line(1, "0.000000001"),
        ],
    ];
    for lines in cases {
        let body = json!({ "id": 1, "line_items": lines }).to_string();
        let Ok(Payload::Order(order)) = Payload::parse(Topic::OrdersCreate, &body) else {
            panic!("an order: {body}");
        };
        let event = mapping::purchase(&order, &Session::default(), &mapping_config(), NOW);
        assert!(event.is_ok(), "{body}");
    }
}

/// Found by `ttclid_decodes_like_a_form_decoder`: `u8::from_str_radix` accepts a sign, so
/// `%+A` decoded to a line feed (mapping.rs, `percent_decode`); a form decoder leaves it as is.
#[test]
fn ttclid_percent_escapes_are_two_hex_digits() {
    assert_eq!(
        mapping::ttclid_from_url("/p?ttclid=abc%+A").as_deref(),
        Some("abc% A")
    );
}
