//! Shopify: webhook authenticity, payload models, topics, and the mapping to TikTok events.
//! Facts and sources: shared/research/shopify.md.

pub mod checkout_url;
pub mod hmac;
pub mod mapping;
pub mod models;
pub mod shape;
pub mod transition;

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
        match header
            .trim()
            .to_ascii_lowercase()
            .replace('_', "/")
            .as_str()
        {
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
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
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
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return not_json(&inner);
        }
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        // serde's messages quote the value before `expected`; only the expectation is kept.
        let expected = match message.find("expected ") {
            Some(at) => message[at..].to_string(),
            None if message.starts_with("missing field") => message.to_string(),
            None => "a value of another kind expected".to_string(),
        };
        format!("{path}: {expected}")
    })?;
    de.end().map_err(|e| not_json(&e))?;
    Ok(parsed)
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
    pub fn parse(topic: Topic, body: &str) -> Result<Payload, String> {
        fn json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, String> {
            parse_json(body.as_bytes())
                .map_err(|reason| format!("payload does not match the topic: {reason}"))
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

/// Longest cart or checkout token taken as a resource name.
const MAX_TOKEN_BYTES: usize = 256;

/// The Durable Object (by name) that keeps one resource's state and serialises its webhooks.
/// `Err` says why the payload cannot be used (it is then parked for the operator).
pub fn resource_key(topic: Topic, body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Keys {
        #[serde(default)]
        token: Option<String>,
        #[serde(default, deserialize_with = "models::id")]
        id: Option<u64>,
        #[serde(default)]
        order_edit: Option<EditKeys>,
    }
    #[derive(serde::Deserialize)]
    struct EditKeys {
        #[serde(default, deserialize_with = "models::id")]
        order_id: Option<u64>,
    }
    let keys: Keys = parse_json(body)?;
    // Resource names become KV keys (at most 512 bytes); Shopify's tokens are 32-64 characters.
    if keys
        .token
        .as_ref()
        .is_some_and(|t| t.len() > MAX_TOKEN_BYTES)
    {
        return Err(format!(
            "token: expected a string of at most {MAX_TOKEN_BYTES} bytes"
        ));
    }
    let missing = |what: &str| format!("{what} is missing");
    match topic {
        Topic::CartsCreate | Topic::CartsUpdate => keys
            .token
            .map(|t| format!("cart:{}", mapping::cart_key(&t)))
            .filter(|k| k.len() > "cart:".len())
            .ok_or_else(|| missing("cart token")),
        Topic::CheckoutsCreate | Topic::CheckoutsUpdate => keys
            .token
            .filter(|t| !t.trim().is_empty())
            .map(|t| format!("checkout:{}", t.trim()))
            .ok_or_else(|| missing("checkout token")),
        Topic::OrdersCreate | Topic::OrdersChanged => keys
            .id
            .map(|id| format!("order:{id}"))
            .ok_or_else(|| missing("order id")),
        Topic::OrdersEdited => keys
            .order_edit
            .and_then(|e| e.order_id)
            .map(|id| format!("order:{id}"))
            .ok_or_else(|| missing("order_edit.order_id")),
        _ => Err("topic has no resource".to_string()),
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
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => shape(&v).to_string(),
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn resource_keys() {
        assert_eq!(
            resource_key(Topic::CartsUpdate, br#"{"token":"c1-abc?key=s"}"#).unwrap(),
            "cart:c1-abc"
        );
        assert_eq!(
            resource_key(Topic::CheckoutsCreate, br#"{"token":"chk1"}"#).unwrap(),
            "checkout:chk1"
        );
        assert_eq!(
            resource_key(Topic::OrdersChanged, br#"{"id":"9007199254740993"}"#).unwrap(),
            "order:9007199254740993"
        );
        assert_eq!(
            resource_key(Topic::OrdersEdited, br#"{"order_edit":{"order_id":5}}"#).unwrap(),
            "order:5"
        );
        assert!(resource_key(Topic::OrdersCreate, br#"{"id":null}"#).is_err());
        assert!(resource_key(Topic::CartsCreate, br#"{"token":"?key=x"}"#).is_err());
        let long = format!(r#"{{"token":"{}"}}"#, "t".repeat(257));
        assert_eq!(
            resource_key(Topic::CheckoutsCreate, long.as_bytes()).unwrap_err(),
            "token: expected a string of at most 256 bytes"
        );
        assert!(resource_key(Topic::OrdersCreate, b"not json").is_err());
        assert!(resource_key(Topic::OrdersCreate, br#"[1,2]"#).is_err());
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
