//! What a webhook body must look like for the topic it claims. Shopify signs the body, not the
//! `X-Shopify-Topic` header, so a captured body can be replayed under any topic: each topic
//! requires its own fields (with their JSON types) and refuses the fields that mark another
//! kind of resource, and the privacy topics, which delete data, take only their documented
//! fields and only for the configured shop. Reasons name the field and the expected type,
//! never a value (they are logged and shown to the operator).

use super::Topic;
use crate::error::Unusable;
use serde_json::{Map, Value};

/// A JSON type a field must have.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A string, or `null` (Shopify sends `"cart_token": null` for checkouts without a cart).
    TextOrNull,
    /// A number or a numeric string (Shopify ids; above 2^53 in newer API versions).
    Id,
    List,
    Object,
}

impl Kind {
    fn fits(self, v: &Value) -> bool {
        match self {
            Kind::Text => v.is_string(),
            Kind::TextOrNull => v.is_string() || v.is_null(),
            Kind::Id => v.is_u64() || v.as_str().is_some_and(|s| s.parse::<u64>().is_ok()),
            Kind::List => v.is_array(),
            Kind::Object => v.is_object(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::TextOrNull => "a string or null",
            Kind::Id => "an id (a number or numeric string)",
            Kind::List => "an array",
            Kind::Object => "an object",
        }
    }
}

/// The fields a topic's body must have, the ones it must not have, and (privacy topics) the
/// only ones it may have.
struct Rule {
    what: &'static str,
    requires: &'static [(&'static str, Kind)],
    forbids: &'static [&'static str],
    only: bool,
    /// At least one of these must be present (real orders carry `financial_status` or
    /// `order_number`, not always both).
    one_of: &'static [&'static str],
}

/// Fields only an order has, only a checkout has, only an order edit has, only a privacy
/// request has.
const ORDER_ONLY: &str = "financial_status";
const CHECKOUT_ONLY: &str = "abandoned_checkout_url";
const EDIT_ONLY: &str = "order_edit";
const PRIVACY_ONLY: &str = "shop_domain";

fn rule(topic: Topic) -> Option<Rule> {
    use Kind::*;
    Some(match topic {
        Topic::CartsCreate | Topic::CartsUpdate => Rule {
            what: "a cart",
            requires: &[("token", Text), ("line_items", List)],
            forbids: &[
                "cart_token",
                ORDER_ONLY,
                CHECKOUT_ONLY,
                EDIT_ONLY,
                PRIVACY_ONLY,
            ],
            only: false,
            one_of: &[],
        },
        Topic::CheckoutsCreate | Topic::CheckoutsUpdate => Rule {
            what: "a checkout",
            requires: &[
                ("token", Text),
                ("cart_token", TextOrNull),
                ("line_items", List),
            ],
            forbids: &[ORDER_ONLY, "checkout_token", EDIT_ONLY, PRIVACY_ONLY],
            only: false,
            one_of: &[],
        },
        Topic::OrdersCreate | Topic::OrdersChanged => Rule {
            what: "an order",
            requires: &[("id", Id), ("line_items", List)],
            forbids: &[CHECKOUT_ONLY, EDIT_ONLY, PRIVACY_ONLY],
            only: false,
            one_of: &[ORDER_ONLY, "order_number"],
        },
        Topic::OrdersEdited => Rule {
            what: "an order edit",
            requires: &[(EDIT_ONLY, Object)],
            forbids: &["line_items", ORDER_ONLY, PRIVACY_ONLY],
            only: false,
            one_of: &[],
        },
        Topic::CustomersRedact => Rule {
            what: "a customers/redact request",
            requires: &[
                ("shop_id", Id),
                (PRIVACY_ONLY, Text),
                ("customer", Object),
                ("orders_to_redact", List),
            ],
            forbids: &[],
            only: true,
            one_of: &[],
        },
        Topic::ShopRedact => Rule {
            what: "a shop/redact request",
            requires: &[("shop_id", Id), (PRIVACY_ONLY, Text)],
            forbids: &[],
            only: true,
            one_of: &[],
        },
        Topic::CustomersDataRequest => Rule {
            what: "a customers/data_request",
            requires: &[
                ("shop_id", Id),
                (PRIVACY_ONLY, Text),
                ("customer", Object),
                ("orders_requested", List),
                ("data_request", Object),
            ],
            forbids: &[],
            only: true,
            one_of: &[],
        },
        Topic::Other => return None,
    })
}

/// `body`'s top-level fields, parsed once for everything the Worker derives from them
/// (`super::Incoming`); `None` for a topic the Worker does not act on (its body is not read).
/// `Err(reason)` when `body` is not the kind of body `topic` carries, or (privacy topics)
/// names another shop than `shop_domain`.
pub fn parse(
    topic: Topic,
    body: &[u8],
    shop_domain: &str,
) -> Result<Option<Map<String, Value>>, Unusable> {
    let Some(rule) = rule(topic) else {
        return Ok(None);
    };
    let fields: Map<String, Value> = super::parse_json(body)
        .map_err(|u| u.explained(|r| format!("{r} (expected {})", rule.what)))?;
    for (name, kind) in rule.requires {
        match fields.get(*name) {
            Some(v) if kind.fits(v) => {}
            Some(_) => {
                return Err(Unusable(format!(
                    "{name}: expected {} in {}",
                    kind.name(),
                    rule.what
                )))
            }
            None => {
                return Err(Unusable(format!(
                    "{name}: missing, expected {} in {}",
                    kind.name(),
                    rule.what
                )))
            }
        }
    }
    if !rule.one_of.is_empty() && !rule.one_of.iter().any(|n| fields.contains_key(*n)) {
        return Err(Unusable(format!(
            "{}: missing, expected one of them in {}",
            rule.one_of.join(" or "),
            rule.what
        )));
    }
    if let Some(name) = rule.forbids.iter().find(|n| fields.contains_key(**n)) {
        return Err(Unusable(format!(
            "{name}: expected absent in {} (another resource's field)",
            rule.what
        )));
    }
    // Unknown field names are counted, not named: a crafted body could carry data in them.
    let documented = |name: &String| rule.requires.iter().any(|(n, _)| n == name);
    let extra = fields.keys().filter(|k| !documented(k)).count();
    if rule.only && extra > 0 {
        return Err(Unusable(format!(
            "{extra} field(s) beyond the documented ones of {}",
            rule.what
        )));
    }
    if rule.only {
        let named = fields.get(PRIVACY_ONLY).and_then(Value::as_str);
        if !named.is_some_and(|d| d.eq_ignore_ascii_case(shop_domain)) {
            return Err(Unusable(format!(
                "{PRIVACY_ONLY}: expected the configured shop (SHOPIFY_SHOP_DOMAIN) in {}",
                rule.what
            )));
        }
    }
    Ok(Some(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "demo.myshopify.com";

    fn check(topic: Topic, body: &[u8], shop_domain: &str) -> Result<(), Unusable> {
        parse(topic, body, shop_domain).map(drop)
    }
    const ORDER: &str = r#"{"id":5512345678901234567,"token":"t","cart_token":"c1","checkout_token":"k1","financial_status":"paid","line_items":[],"email":"a@b.example"}"#;
    const CART: &str = r#"{"id":"c1","token":"c1","line_items":[],"note":null}"#;
    const CHECKOUT: &str =
        r#"{"token":"k1","cart_token":null,"line_items":[],"abandoned_checkout_url":"https://x"}"#;
    const EDIT: &str = r#"{"order_edit":{"id":1,"order_id":5}}"#;
    const SHOP_REDACT: &str = r#"{"shop_id":954889,"shop_domain":"demo.myshopify.com"}"#;
    const CUSTOMERS_REDACT: &str = r#"{"shop_id":954889,"shop_domain":"Demo.myshopify.com","customer":{"id":1,"email":"a@b.example"},"orders_to_redact":[1]}"#;
    const DATA_REQUEST: &str = r#"{"shop_id":954889,"shop_domain":"demo.myshopify.com","orders_requested":[1],"customer":{"id":1},"data_request":{"id":9}}"#;

    #[test]
    fn each_body_fits_its_own_topics_only() {
        let bodies = [
            (
                ORDER,
                [Topic::OrdersCreate, Topic::OrdersChanged].as_slice(),
            ),
            (CART, &[Topic::CartsCreate, Topic::CartsUpdate]),
            (CHECKOUT, &[Topic::CheckoutsCreate, Topic::CheckoutsUpdate]),
            (EDIT, &[Topic::OrdersEdited]),
            (SHOP_REDACT, &[Topic::ShopRedact]),
            (CUSTOMERS_REDACT, &[Topic::CustomersRedact]),
            (DATA_REQUEST, &[Topic::CustomersDataRequest]),
        ];
        let topics = [
            Topic::CartsCreate,
            Topic::CartsUpdate,
            Topic::CheckoutsCreate,
            Topic::CheckoutsUpdate,
            Topic::OrdersCreate,
            Topic::OrdersChanged,
            Topic::OrdersEdited,
            Topic::CustomersRedact,
            Topic::ShopRedact,
            Topic::CustomersDataRequest,
        ];
        for (body, own) in bodies {
            for topic in topics {
                let result = check(topic, body.as_bytes(), SHOP);
                assert_eq!(
                    result.is_ok(),
                    own.contains(&topic),
                    "{topic:?} {body} {result:?}"
                );
                if let Err(reason) = result {
                    assert!(
                        !reason.contains("a@b") && !reason.contains("5512345"),
                        "{reason}"
                    );
                }
            }
        }
        assert!(
            check(Topic::Other, b"not json", SHOP).is_ok(),
            "ignored anyway"
        );
    }

    #[test]
    fn an_order_needs_financial_status_or_order_number() {
        let numbered = ORDER.replace(r#""financial_status":"paid""#, r#""order_number":1001"#);
        assert_eq!(
            check(Topic::OrdersCreate, numbered.as_bytes(), SHOP),
            Ok(())
        );
        let neither = ORDER.replace(r#""financial_status":"paid","#, "");
        assert_eq!(
            check(Topic::OrdersCreate, neither.as_bytes(), SHOP).unwrap_err(),
            "financial_status or order_number: missing, expected one of them in an order"
        );
    }

    #[test]
    fn the_replayed_order_as_shop_redact_is_refused_by_name() {
        let reason = check(Topic::ShopRedact, ORDER.as_bytes(), SHOP).unwrap_err();
        assert_eq!(
            reason,
            "shop_id: missing, expected an id (a number or numeric string) in a shop/redact request"
        );
    }

    #[test]
    fn privacy_requests_must_name_the_configured_shop_and_nothing_else() {
        let other = SHOP_REDACT.replace("demo.", "other.");
        let reason = check(Topic::ShopRedact, other.as_bytes(), SHOP).unwrap_err();
        assert!(
            reason.starts_with("shop_domain: expected the configured shop"),
            "{reason}"
        );
        assert!(!reason.contains("other"), "{reason}");
        let extra =
            r#"{"shop_id":1,"shop_domain":"demo.myshopify.com","line_items":[],"x@y.example":1}"#;
        assert_eq!(
            check(Topic::ShopRedact, extra.as_bytes(), SHOP).unwrap_err(),
            "2 field(s) beyond the documented ones of a shop/redact request"
        );
        let typed = r#"{"shop_id":"abc","shop_domain":"demo.myshopify.com"}"#;
        assert!(check(Topic::ShopRedact, typed.as_bytes(), SHOP)
            .unwrap_err()
            .starts_with("shop_id: expected an id"));
    }

    #[test]
    fn the_repository_fixtures_fit_their_topics() {
        for (topic, body) in [
            (
                Topic::CartsUpdate,
                include_str!("../../../../tests/fixtures/shopify/cart_update.json"),
            ),
            (
                Topic::CheckoutsUpdate,
                include_str!("../../../../tests/fixtures/shopify/checkout_update.json"),
            ),
            (
                Topic::OrdersCreate,
                include_str!("../../../../tests/fixtures/shopify/order_create.json"),
            ),
            (
                Topic::OrdersEdited,
                include_str!("../../../../tests/fixtures/shopify/order_edited.json"),
            ),
        ] {
            assert_eq!(check(topic, body.as_bytes(), SHOP), Ok(()), "{topic:?}");
        }
    }
}
