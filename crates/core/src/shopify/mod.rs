//! Shopify: webhook authenticity, payload models, topics, and the mapping to TikTok events.
//! Facts and sources: shared/research/shopify.md.

pub mod checkout_url;
pub mod hmac;
pub mod mapping;
pub mod models;
pub mod shape;
pub mod state;
pub mod transition;

use crate::error::Unusable;
use serde_json::{Map, Value};

/// The team's webhook fixtures (tests/fixtures/shopify), shared by the unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    pub const ORDER: &str = include_str!("../../../../tests/fixtures/shopify/order_create.json");
    pub const CHECKOUT: &str =
        include_str!("../../../../tests/fixtures/shopify/checkout_update.json");
    pub const CART: &str = include_str!("../../../../tests/fixtures/shopify/cart_update.json");
    pub const EDIT: &str = include_str!("../../../../tests/fixtures/shopify/order_edited.json");
}

/// Largest webhook body accepted (Shopify orders with hundreds of lines stay well below).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// The webhook topics the Worker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    CartsCreate,
    CartsUpdate,
    CheckoutsCreate,
    CheckoutsUpdate,
    OrdersCreate,
    /// orders/paid, orders/updated: never a second purchase; they price upsells.
    OrdersChanged,
    OrdersEdited,
    CustomersRedact,
    ShopRedact,
    CustomersDataRequest,
    /// Acknowledged and ignored.
    Other,
}

impl Topic {
    /// From `X-Shopify-Topic` (`orders/create`) or the Events-system form (`ORDERS_CREATE`).
    pub fn parse(header: &str) -> Topic {
        match Topic::normalized(header).as_str() {
            "carts/create" => Topic::CartsCreate,
            "carts/update" => Topic::CartsUpdate,
            "checkouts/create" => Topic::CheckoutsCreate,
            "checkouts/update" => Topic::CheckoutsUpdate,
            "orders/create" => Topic::OrdersCreate,
            "orders/paid" | "orders/updated" => Topic::OrdersChanged,
            "orders/edited" => Topic::OrdersEdited,
            "customers/redact" => Topic::CustomersRedact,
            "shop/redact" => Topic::ShopRedact,
            "customers/data/request" => Topic::CustomersDataRequest,
            _ => Topic::Other,
        }
    }

    /// The header in one spelling (`ORDERS_CREATE` and ` orders/create` are `orders/create`).
    pub fn normalized(header: &str) -> String {
        header.trim().to_ascii_lowercase().replace('_', "/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_in_both_header_forms() {
        assert_eq!(Topic::parse("orders/create"), Topic::OrdersCreate);
        assert_eq!(Topic::parse("ORDERS_CREATE"), Topic::OrdersCreate);
        assert_eq!(Topic::parse("orders/updated"), Topic::OrdersChanged);
        assert_eq!(
            Topic::parse("customers/data_request"),
            Topic::CustomersDataRequest
        );
        assert_eq!(Topic::parse("products/update"), Topic::Other);
    }
}

/// `body` as a `T`; `Err` names the field that does not fit (its JSON path) and what was
/// expected there, never the value found (reasons are logged and shown to the operator).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Unusable> {
    // Syntax errors name what the parser expected, never the text it found.
    let not_json = |e: &serde_json::Error| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        format!(
            "body is not JSON: {message} (line {}, column {})",
            e.line(),
            e.column()
        )
    };
    // From text, as everywhere (crate::json); here a body that is not UTF-8 is a syntax error.
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(Unusable("body is not JSON: it is not UTF-8".to_string()));
    };
    serde_json::from_str(text).map_err(|e| {
        if !e.is_data() {
            return Unusable(not_json(&e));
        }
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        // A missing field or a short array is reported at the end of its container: the path
        // is the container's.
        let whole = message.starts_with("missing field") || message.starts_with("invalid length");
        let path = path_at(body, e.line(), e.column(), whole);
        // serde's messages quote the value before `expected`; only the expectation is kept.
        let expected = match message.find("expected ") {
            Some(at) => message[at..].to_string(),
            None if message.starts_with("missing field") => message.to_string(),
            None => "a value of another kind expected".to_string(),
        };
        Unusable(format!("{path}: {expected}"))
    })
}

/// The JSON path (`line_items[1].quantity`, `.` for the root) of the value serde_json stopped
/// at: its error position (1-based line, byte column) is just past the value, or at the `}`/`]`
/// of the container when `whole`. A scan of the bytes before it, so no tracking deserializer
/// (and its second copy of every model's deserializer) is compiled in.
fn path_at(body: &[u8], line: usize, column: usize, whole: bool) -> String {
    enum Frame {
        /// The key being read or last read, and whether a key comes next.
        Object(Option<String>, bool),
        Array(usize),
    }
    let line_start = match line {
        0 | 1 => 0,
        _ => body
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(body.len(), |(i, _)| i + 1),
    };
    let end = (line_start + column).min(body.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match body[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object(key, expect_key @ true)) = stack.last_mut() {
                    let raw = &body[start..i.min(body.len())];
                    *key = Some(String::from_utf8_lossy(raw).replace("\\\"", "\""));
                    *expect_key = false;
                }
            }
            b'{' => stack.push(Frame::Object(None, true)),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object(_, expect_key)) => *expect_key = true,
                Some(Frame::Array(n)) => *n += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    if whole {
        stack.pop();
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key), _) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object(None, _) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

/// A webhook body parsed as its topic's payload.
#[derive(Debug)]
pub enum Payload {
    Cart(models::Cart),
    Checkout(Box<models::Checkout>),
    Order(Box<models::Order>),
    OrderEdited(models::OrderEdited),
    /// A topic with nothing to map (privacy topics, unknown topics).
    None,
}

impl Payload {
    /// `Err` says why the body does not fit the topic (the webhook is then parked).
    pub fn parse(topic: Topic, body: &str) -> Result<Payload, Unusable> {
        fn json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Unusable> {
            parse_json(body.as_bytes()).map_err(|unusable| {
                unusable.explained(|reason| format!("payload does not match the topic: {reason}"))
            })
        }
        Ok(match topic {
            Topic::CartsCreate | Topic::CartsUpdate => Payload::Cart(json(body)?),
            Topic::CheckoutsCreate | Topic::CheckoutsUpdate => {
                Payload::Checkout(Box::new(json(body)?))
            }
            Topic::OrdersCreate | Topic::OrdersChanged => Payload::Order(Box::new(json(body)?)),
            Topic::OrdersEdited => Payload::OrderEdited(json(body)?),
            _ => Payload::None,
        })
    }
}

/// A verified webhook as the Worker acts on it, derived from one parse of its body
/// ([`shape::parse`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A cart's, checkout's or order's webhook: the `ShopState` it goes to ([`resource_key`]),
    /// and the body (UTF-8, its topic's shape) that object parses as its [`Payload`].
    Resource {
        resource: String,
        body: &'a str,
    },
    Privacy(PrivacyRequest),
    /// A topic the Worker does not act on: acknowledged, its body not read.
    Other,
}

/// What a privacy webhook asks.
#[derive(Debug, PartialEq, Eq)]
pub enum PrivacyRequest {
    /// Forget these orders (ids exact above 2^53, whether sent as numbers or strings). The
    /// customer's own fields are never read.
    CustomersRedact {
        orders: Vec<u64>,
    },
    ShopRedact,
    CustomersDataRequest,
}

impl<'a> Incoming<'a> {
    /// `Err` says why the body cannot be used (it is then parked for the operator).
    pub fn parse(
        topic: Topic,
        body: &'a [u8],
        shop_domain: &str,
    ) -> Result<Incoming<'a>, Unusable> {
        let Some(fields) = shape::parse(topic, body, shop_domain)? else {
            return Ok(Incoming::Other);
        };
        Ok(Incoming::Privacy(match topic {
            Topic::CustomersRedact => PrivacyRequest::CustomersRedact {
                orders: fields
                    .get("orders_to_redact")
                    .and_then(Value::as_array)
                    .map_or_else(Vec::new, |ids| ids.iter().filter_map(id_of).collect()),
            },
            Topic::ShopRedact => PrivacyRequest::ShopRedact,
            Topic::CustomersDataRequest => PrivacyRequest::CustomersDataRequest,
            _ => {
                return Ok(Incoming::Resource {
                    resource: resource_key(topic, &fields)?,
                    // Parsed as JSON text just now, so UTF-8.
                    body: std::str::from_utf8(body)
                        .map_err(|_| Unusable("body is not UTF-8".to_string()))?,
                });
            }
        }))
    }
}

/// A Shopify id: a number, or a numeric string (exact above 2^53), as `models::id` reads it.
fn id_of(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Longest cart or checkout token taken as a resource name.
const MAX_TOKEN_BYTES: usize = 256;

/// The Durable Object (by name) that keeps one resource's state and serialises its webhooks,
/// from the body's top-level `fields`. `Err` says why the payload cannot be used (it is then
/// parked for the operator).
pub fn resource_key(topic: Topic, fields: &Map<String, Value>) -> Result<String, Unusable> {
    let token = fields.get("token").and_then(Value::as_str);
    // Resource names become KV keys (at most 512 bytes); Shopify's tokens are 32-64 characters.
    if token.is_some_and(|t| t.len() > MAX_TOKEN_BYTES) {
        return Err(Unusable(format!(
            "token: expected a string of at most {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let missing = |what: &str| Unusable(format!("{what} is missing"));
    match topic {
        Topic::CartsCreate | Topic::CartsUpdate => token
            .map(mapping::cart_key)
            .filter(|t| !t.is_empty())
            .map(crate::keys::cart)
            .ok_or_else(|| missing("cart token")),
        Topic::CheckoutsCreate | Topic::CheckoutsUpdate => token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(crate::keys::checkout)
            .ok_or_else(|| missing("checkout token")),
        Topic::OrdersCreate | Topic::OrdersChanged => fields
            .get("id")
            .and_then(id_of)
            .map(crate::keys::order)
            .ok_or_else(|| missing("order id")),
        Topic::OrdersEdited => fields
            .get("order_edit")
            .and_then(|edit| edit.get("order_id"))
            .and_then(id_of)
            .map(crate::keys::order)
            .ok_or_else(|| missing("order_edit.order_id")),
        _ => Err(Unusable("topic has no resource".to_string())),
    }
}

/// A webhook that could not be used, kept for the operator (in KV) with the shape of its
/// payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    pub topic: String,
    pub webhook_id: String,
    pub reason: String,
    /// The payload's structure with values replaced by their types (no customer data).
    pub shape: String,
    pub received_at_ms: i64,
    /// [`parked_digest`] of topic and body: one record per pair (empty in records parked
    /// before parked webhooks were deduplicated).
    #[serde(default)]
    pub digest: String,
}

/// At most this many webhooks are parked in any 24 hours. Each needs a signed body, but one
/// captured body can be replayed under every topic, and anyone holding several could push the
/// operator's list (and KV's bill) without end; beyond it a webhook is only logged.
pub const PARKED_PER_DAY: usize = 100;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// The digest a parked webhook is known by: SHA-256 of its topic (one spelling) and its body,
/// 128 bits in hex. Replays of one body under one topic, whatever their webhook ids, share it.
pub fn parked_digest(topic_header: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(Topic::normalized(topic_header).as_bytes());
    hash.update(b"\0");
    hash.update(body);
    hex::encode(&hash.finalize()[..16])
}

/// Whether a webhook of `digest` arriving at `now_ms` is parked, given the keys parked so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkDecision {
    Keep,
    /// The same topic and body is parked already.
    Duplicate,
    /// [`PARKED_PER_DAY`] were parked in the last 24 hours.
    OverDailyCap,
}

pub fn park_decision(parked_keys: &[String], digest: &str, now_ms: i64) -> ParkDecision {
    let parked = parked_of(parked_keys);
    if parked.iter().any(|(_, d)| *d == digest) {
        ParkDecision::Duplicate
    } else if daily_cap_reached(&parked, now_ms) {
        ParkDecision::OverDailyCap
    } else {
        ParkDecision::Keep
    }
}

/// (arrival time, digest) of each parked webhook's key.
fn parked_of(parked_keys: &[String]) -> Vec<(i64, &str)> {
    parked_keys
        .iter()
        .filter_map(|k| crate::keys::parked_of(k))
        .collect()
}

/// Whether the last 24 hours hold [`PARKED_PER_DAY`] of `parked` (arrival time, digest).
fn daily_cap_reached(parked: &[(i64, &str)], now_ms: i64) -> bool {
    parked
        .iter()
        .filter(|(at, _)| *at > now_ms - DAY_MS)
        .count()
        >= PARKED_PER_DAY
}

/// How the operator's list of parked webhooks stands: how many are kept in all (the page lists
/// the newest few) and whether the daily cap turned any away in the last 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParkedCount {
    pub total: usize,
    pub daily_cap_reached: bool,
}

pub fn parked_count(parked_keys: &[String], now_ms: i64) -> ParkedCount {
    let parked = parked_of(parked_keys);
    ParkedCount {
        total: parked.len(),
        daily_cap_reached: daily_cap_reached(&parked, now_ms),
    }
}

/// A JSON body with every string and number replaced by its type, so an unusable payload can
/// be shown to the operator without keeping the buyer's personal data.
pub fn redact(body: &[u8]) -> String {
    fn shape(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(format!("<string, {} chars>", s.chars().count())),
            Value::Number(_) => Value::String("<number>".into()),
            Value::Array(items) => Value::Array(items.iter().take(5).map(shape).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
            other => other.clone(),
        }
    }
    match crate::json::parse::<serde_json::Value>(body) {
        Ok(v) => shape(&v).to_string(),
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn parked_webhooks_are_kept_once_per_topic_and_body_and_a_hundred_a_day() {
        let body = br#"{"id":1}"#;
        let digest = parked_digest("orders/create", body);
        assert_eq!(digest.len(), 32);
        assert_eq!(parked_digest("ORDERS_CREATE", body), digest, "one spelling");
        assert_ne!(parked_digest("orders/paid", body), digest, "per topic");
        assert_ne!(
            parked_digest("orders/create", br#"{"id":2}"#),
            digest,
            "per body"
        );
        let now = 10 * DAY_MS;
        let key = |at: i64, d: &str| crate::keys::parked(at, d);
        assert_eq!(park_decision(&[], &digest, now), ParkDecision::Keep);
        let listed = vec![key(now - 6 * DAY_MS, &digest), key(now - 1, "w-old-id")];
        assert_eq!(
            park_decision(&listed, &digest, now),
            ParkDecision::Duplicate
        );
        let other = parked_digest("orders/paid", body);
        assert_eq!(park_decision(&listed, &other, now), ParkDecision::Keep);
        // A full day: the next one is turned away; a day later there is room again.
        let day: Vec<String> = (0..PARKED_PER_DAY as i64)
            .map(|i| key(now - i * 1000, &format!("{i:032x}")))
            .collect();
        assert_eq!(park_decision(&day, &other, now), ParkDecision::OverDailyCap);
        assert_eq!(
            park_decision(&day, &other, now + DAY_MS),
            ParkDecision::Keep
        );
        assert_eq!(
            parked_count(&day, now),
            ParkedCount {
                total: PARKED_PER_DAY,
                daily_cap_reached: true
            }
        );
        assert_eq!(
            parked_count(&listed, now),
            ParkedCount {
                total: 2,
                daily_cap_reached: false
            }
        );
    }

    #[test]
    fn resource_keys() {
        let key = |topic, body: &[u8]| parse_json(body).and_then(|f| resource_key(topic, &f));
        assert_eq!(
            key(Topic::CartsUpdate, br#"{"token":"c1-abc?key=s"}"#).unwrap(),
            "cart:c1-abc"
        );
        assert_eq!(
            key(Topic::CheckoutsCreate, br#"{"token":" chk1 "}"#).unwrap(),
            "checkout:chk1"
        );
        assert_eq!(
            key(Topic::OrdersChanged, br#"{"id":"9007199254740993"}"#).unwrap(),
            "order:9007199254740993"
        );
        assert_eq!(
            key(Topic::OrdersCreate, br#"{"id":9007199254740993}"#).unwrap(),
            "order:9007199254740993"
        );
        assert_eq!(
            key(Topic::OrdersEdited, br#"{"order_edit":{"order_id":5}}"#).unwrap(),
            "order:5"
        );
        assert!(key(Topic::OrdersCreate, br#"{"id":null}"#).is_err());
        assert!(key(Topic::OrdersCreate, br#"{"id":1.5}"#).is_err());
        assert!(key(Topic::OrdersEdited, br#"{"order_edit":"5"}"#).is_err());
        assert!(key(Topic::CartsCreate, br#"{"token":"?key=x"}"#).is_err());
        assert!(key(Topic::CartsCreate, br#"{"token":5}"#).is_err());
        let long = format!(r#"{{"token":"{}"}}"#, "t".repeat(257));
        assert_eq!(
            key(Topic::CheckoutsCreate, long.as_bytes()).unwrap_err(),
            "token: expected a string of at most 256 bytes"
        );
        assert!(key(Topic::OrdersCreate, b"not json").is_err());
        assert!(key(Topic::OrdersCreate, br#"[1,2]"#).is_err());
    }

    #[test]
    fn one_parse_gives_the_resource_or_the_privacy_request() {
        const SHOP: &str = "demo.myshopify.com";
        let order = fixtures::ORDER.as_bytes();
        assert_eq!(
            Incoming::parse(Topic::OrdersCreate, order, SHOP).unwrap(),
            Incoming::Resource {
                resource: resource_key(Topic::OrdersCreate, &parse_json(order).unwrap()).unwrap(),
                body: fixtures::ORDER,
            }
        );
        let redact = br#"{"shop_id":954889,"shop_domain":"demo.myshopify.com","customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"orders_to_redact":[5512345678901234567,"299938",null]}"#;
        assert_eq!(
            Incoming::parse(Topic::CustomersRedact, redact, SHOP).unwrap(),
            Incoming::Privacy(PrivacyRequest::CustomersRedact {
                orders: vec![5_512_345_678_901_234_567, 299_938]
            })
        );
        let shop_redact = br#"{"shop_id":1,"shop_domain":"demo.myshopify.com"}"#;
        assert_eq!(
            Incoming::parse(Topic::ShopRedact, shop_redact, SHOP).unwrap(),
            Incoming::Privacy(PrivacyRequest::ShopRedact)
        );
        assert_eq!(
            Incoming::parse(Topic::Other, b"\xff not json", SHOP).unwrap(),
            Incoming::Other
        );
        // The shape check comes first: an order replayed as a cart is refused by name.
        let err = Incoming::parse(Topic::CartsUpdate, order, SHOP).unwrap_err();
        assert!(err.starts_with("token: missing"), "{err}");
        let keyless = br#"{"id":null,"line_items":[],"order_number":1}"#;
        let err = Incoming::parse(Topic::OrdersCreate, keyless, SHOP).unwrap_err();
        assert!(err.starts_with("id: expected an id"), "{err}");
    }

    #[test]
    fn payloads_parse_by_topic() {
        assert!(matches!(
            Payload::parse(Topic::CartsUpdate, r#"{"token":"c1"}"#),
            Ok(Payload::Cart(_))
        ));
        assert!(matches!(
            Payload::parse(Topic::OrdersEdited, r#"{"order_edit":{"id":1}}"#),
            Ok(Payload::OrderEdited(_))
        ));
        assert!(matches!(
            Payload::parse(Topic::ShopRedact, "{}"),
            Ok(Payload::None)
        ));
        let err =
            Payload::parse(Topic::OrdersCreate, r#"{"id":1,"line_items":"nope"}"#).unwrap_err();
        assert!(err.starts_with("payload does not match the topic"), "{err}");
    }

    #[test]
    fn reasons_name_the_path_and_the_expected_type_never_the_value() {
        let body = r#"{"id":1,"line_items":[{"quantity":1},{"quantity":"buyer@example.com"}]}"#;
        let err = Payload::parse(Topic::OrdersCreate, body).unwrap_err();
        assert!(!err.contains("buyer@example.com"), "{err}");
        assert!(err.contains("line_items[1].quantity: expected"), "{err}");
        let err = parse_json::<Vec<u8>>(br#"["secret-value"]"#).unwrap_err();
        assert_eq!(err, "[0]: expected u8");
        let err = parse_json::<serde_json::Value>(b"{\"a\": secret}").unwrap_err();
        assert!(
            err.starts_with("body is not JSON: expected value (line 1") && !err.contains("secret"),
            "{err}"
        );
        let err = parse_json::<serde_json::Value>(b"{} trailing").unwrap_err();
        assert!(err.starts_with("body is not JSON"), "{err}");
    }

    /// `path_at` against serde_path_to_error (the tracking deserializer it replaced): every
    /// scalar of a real order, in turn, swapped for a value of the wrong kind, and every
    /// object with a required field, in turn, emptied.
    #[test]
    fn paths_agree_with_a_tracking_deserializer() {
        fn tracked(body: &str) -> String {
            let mut de = serde_json::Deserializer::from_str(body);
            match serde_path_to_error::deserialize::<_, models::Order>(&mut de) {
                Ok(_) => "ok".into(),
                Err(e) => e.path().to_string(),
            }
        }
        fn ours(body: &str) -> String {
            match parse_json::<models::Order>(body.as_bytes()) {
                Ok(_) => "ok".into(),
                Err(e) => e.split(": ").next().unwrap().to_string(),
            }
        }
        fn variants(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
            use serde_json::Value;
            let wrong = |v: &Value| match v {
                Value::String(_) => serde_json::json!([1]),
                Value::Number(_) => serde_json::json!({"k": "v"}),
                Value::Bool(_) => serde_json::json!("yes"),
                _ => serde_json::json!(true),
            };
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        let mut copy = v.clone();
                        copy[k] = wrong(child);
                        out.push(copy);
                        let mut inner = Vec::new();
                        variants(child, &mut inner);
                        for changed in inner {
                            let mut copy = v.clone();
                            copy[k] = changed;
                            out.push(copy);
                        }
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        let mut inner = Vec::new();
                        variants(child, &mut inner);
                        for changed in inner {
                            let mut copy = v.clone();
                            copy[i] = changed;
                            out.push(copy);
                        }
                    }
                }
                _ => {}
            }
        }
        let order: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/shopify/order_create.json"
        ))
        .unwrap();
        let mut bodies = Vec::new();
        variants(&order, &mut bodies);
        let (mut differing, mut rejected) = (0, 0);
        for body in &bodies {
            for text in [
                serde_json::to_string(body).unwrap(),
                serde_json::to_string_pretty(body).unwrap(),
            ] {
                rejected += usize::from(ours(&text) != "ok");
                if ours(&text) != tracked(&text) {
                    differing += 1;
                    eprintln!("{} != {} for {text}", ours(&text), tracked(&text));
                }
            }
        }
        assert!(
            rejected > 40,
            "{rejected} of {} variants rejected",
            bodies.len()
        );
        assert_eq!(differing, 0);
        // A missing field is the container's path; escaped keys are unescaped.
        assert_eq!(
            ours(r#"{"id":1,"line_items":[{"id":1,"quantity":1},{"quan\"tity":1}]}"#),
            tracked(r#"{"id":1,"line_items":[{"id":1,"quantity":1},{"quan\"tity":1}]}"#)
        );
    }

    #[test]
    fn redaction_keeps_shape_not_values() {
        let r = redact(br#"{"email":"a@b.c","id":12,"items":[{"phone":"+1555"}],"ok":true}"#);
        assert!(
            !r.contains("a@b.c") && !r.contains("+1555") && !r.contains("12"),
            "{r}"
        );
        assert!(r.contains(r#""email":"<string, 5 chars>""#), "{r}");
        assert_eq!(redact(b"\xff\x00"), "<2 bytes, not JSON>");
    }
}
