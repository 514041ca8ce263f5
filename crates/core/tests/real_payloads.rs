//! Every real Shopify payload in `shared/fixtures/external/` (Shopify's 2026-07 reference
//! samples, test- and dev-store captures, a redacted live order; see each `.source.txt`) through
//! the parsing and mapping the Worker runs: none is parked, each gives the event its topic
//! stands for, and value and currency are read back from the payload's own (presentment)
//! figures. CI copies `shared/` beside the repository, so the folder is `../shared` from the
//! repository root.

use serde_json::Value;
use std::path::PathBuf;
use tiktok_edge_core::config::Config;
use tiktok_edge_core::session::Session;
use tiktok_edge_core::shopify::mapping::{self, CartState, MappingConfig, OrderState};
use tiktok_edge_core::shopify::{Incoming, Payload, Topic};
use tiktok_edge_core::tiktok::Event;

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/external")
}

fn config(pairs: &[(&str, &str)]) -> MappingConfig {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    MappingConfig::from(&Config::from_lookup(&lookup).expect("valid settings"))
}

/// What one payload must give.
struct Expect {
    file: &'static str,
    topic: &'static str,
    /// (event, event_id) with `SEND_TEST_ORDERS=true`; empty: nothing to send, and why.
    events: &'static [(&'static str, &'static str)],
    why_none: &'static str,
    /// JSON pointers into the payload: the amount `value` must equal, and its currency.
    value_from: Option<(&'static str, &'static str)>,
    /// The resource's own time, from `date -d <timestamp> +%s`.
    event_time: i64,
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "devstore_2023_inr_checkouts_create.json",
        topic: "checkouts/create",
        events: &[("InitiateCheckout", "ic:3d58ad45d661cd34d882fda5c68a36b8")],
        why_none: "",
        value_from: Some(("/subtotal_price", "/presentment_currency")),
        event_time: 1_695_384_831, // created_at 2023-09-22T12:13:51+00:00
    },
    Expect {
        file: "devstore_2023_inr_orders_create.json",
        topic: "orders/create",
        events: &[("Purchase", "5159806763157")],
        why_none: "",
        value_from: Some((
            "/total_price_set/presentment_money/amount",
            "/total_price_set/presentment_money/currency_code",
        )),
        event_time: 1_695_384_883, // processed_at 2023-09-22T08:14:43-04:00
    },
    Expect {
        file: "real_2026-02_au_order_redacted.json",
        topic: "orders/create",
        events: &[("Purchase", "6674573197567")],
        why_none: "",
        value_from: Some((
            "/total_price_set/presentment_money/amount",
            "/total_price_set/presentment_money/currency_code",
        )),
        event_time: 1_770_354_813, // processed_at 2026-02-06T16:13:33+11:00
    },
    Expect {
        file: "rudderstack_2024_carts_update.json",
        topic: "carts/update",
        events: &[],
        why_none: "an empty cart adds nothing",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "rudderstack_2024_checkouts_create.json",
        topic: "checkouts/create",
        events: &[("InitiateCheckout", "ic:84ad78572dae52a8cbea7d55371afe89")],
        why_none: "",
        value_from: Some(("/subtotal_price", "/presentment_currency")),
        event_time: 1_730_859_720, // created_at 2024-11-06T02:22:00+00:00
    },
    Expect {
        file: "rudderstack_2024_checkouts_update.json",
        topic: "checkouts/update",
        // No shipping_lines in the body, but 736.85 = 729.95 + 0.00 tax + 6.90 shipping.
        events: &[("AddPaymentInfo", "api:e89d4437003b6b8480f8bc7f8036a659")],
        why_none: "",
        value_from: Some(("/subtotal_price", "/presentment_currency")),
        event_time: 1_726_558_142, // updated_at 2024-09-17T03:29:02-04:00
    },
    Expect {
        file: "rudderstack_2024_orders_cancelled.json",
        topic: "orders/cancelled",
        events: &[],
        why_none: "a topic the Worker does not subscribe to: acknowledged, ignored",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "rudderstack_2024_orders_create.json",
        topic: "orders/create",
        events: &[("Purchase", "5778367414385")],
        why_none: "",
        // No total_price_set: the shop's amount with the shop's currency.
        value_from: Some(("/total_price", "/currency")),
        event_time: 1_730_861_689, // created_at 2024-11-05T21:54:49-05:00
    },
    Expect {
        file: "rudderstack_2024_orders_paid.json",
        topic: "orders/paid",
        events: &[],
        why_none: "orders/paid never sends a second purchase",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "rudderstack_2024_orders_updated.json",
        topic: "orders/updated",
        events: &[],
        why_none: "orders/updated never sends a second purchase",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_docs_2026-07_carts_create.json",
        topic: "carts/create",
        events: &[("AddToCart", "atc:exampleCartId:704912205188288575:3")],
        why_none: "",
        value_from: Some((
            "/line_items/0/line_price_set/presentment_money/amount",
            "/line_items/0/line_price_set/presentment_money/currency_code",
        )),
        event_time: 1_640_995_200, // updated_at 2022-01-01T00:00:00.000Z
    },
    Expect {
        file: "shopify_docs_2026-07_carts_update.json",
        topic: "carts/update",
        events: &[("AddToCart", "atc:exampleCartId:704912205188288575:3")],
        why_none: "",
        value_from: Some((
            "/line_items/0/line_price_set/presentment_money/amount",
            "/line_items/0/line_price_set/presentment_money/currency_code",
        )),
        event_time: 1_640_995_200,
    },
    Expect {
        file: "shopify_docs_2026-07_checkouts_create.json",
        topic: "checkouts/create",
        events: &[("InitiateCheckout", "ic:123123123")],
        why_none: "",
        value_from: Some(("/subtotal_price", "/presentment_currency")),
        event_time: 1_640_995_200, // created_at 2021-12-31T19:00:00-05:00
    },
    Expect {
        file: "shopify_docs_2026-07_checkouts_update.json",
        topic: "checkouts/update",
        events: &[],
        why_none:
            "not at the payment step: no shipping line, no shipping in 421.88 = 398.00 + 23.88",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_docs_2026-07_customers_data_request.json",
        topic: "customers/data_request",
        events: &[],
        why_none: "privacy topic",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_docs_2026-07_customers_redact.json",
        topic: "customers/redact",
        events: &[],
        why_none: "privacy topic",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_docs_2026-07_orders_create.json",
        topic: "orders/create",
        events: &[],
        why_none: "cancelled order",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_docs_2026-07_orders_edited.json",
        topic: "orders/edited",
        events: &[],
        why_none: "the added line is priced once the order's lines are known",
        value_from: None,
        event_time: 0,
    },
    Expect {
        file: "shopify_python_api_cart.json",
        topic: "carts/create",
        events: &[("AddToCart", "atc:3eed8183d4281db6ea82ee2b8f23e9cc:1:1")],
        why_none: "",
        value_from: None,          // no currency anywhere: no money is sent
        event_time: 1_329_161_977, // updated_at 2012-02-13T14:39:37-05:00
    },
    Expect {
        file: "trigger_dev_CartsCreate.json",
        topic: "carts/create",
        events: &[(
            "AddToCart",
            "atc:eeafa272cebfd4b22385bc4b645e762c:704912205188288500:3",
        )],
        why_none: "",
        value_from: Some((
            "/line_items/0/line_price_set/presentment_money/amount",
            "/line_items/0/line_price_set/presentment_money/currency_code",
        )),
        event_time: 1_640_995_200,
    },
];

/// The webhook the way the Worker takes it: resource key, payload, mapping. `Err` = parked.
fn map(
    topic: Topic,
    body: &str,
    config: &MappingConfig,
    now: i64,
) -> Result<(Vec<Event>, Option<String>), String> {
    // The shape check the Worker runs first (the topic header is not signed); privacy bodies
    // come from the shop they name.
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let shop = json["shop_domain"]
        .as_str()
        .unwrap_or("example.myshopify.com");
    Incoming::parse(topic, body.as_bytes(), shop)?;
    Ok(match Payload::parse(topic, body)? {
        Payload::Cart(cart) => (
            mapping::cart_added(&cart, &CartState::default(), &Session::default(), now).0,
            None,
        ),
        Payload::Checkout(c) => (
            mapping::checkout_events(
                &c,
                topic == Topic::CheckoutsCreate,
                &Session::default(),
                config,
                now,
            ),
            None,
        ),
        Payload::Order(order) => {
            let session = mapping::session_from_order(&order);
            let mut state = OrderState::default();
            state.absorb(&order, session.clone(), config);
            let mut events = state.resolve_upsells(order.id.unwrap_or_default(), config, now);
            let mut skipped = None;
            if topic == Topic::OrdersCreate {
                match mapping::purchase(&order, &session, config, now) {
                    Ok(e) => events.push(e),
                    Err(reason) => skipped = Some(reason.to_string()),
                }
            }
            (events, skipped)
        }
        Payload::OrderEdited(edited) => {
            let mut state = OrderState::default();
            state.add_edit(&edited.order_edit);
            let id = edited.order_edit.order_id.unwrap_or_default();
            (state.resolve_upsells(id, config, now), None)
        }
        Payload::None => (Vec::new(), None),
    })
}

#[test]
fn every_real_payload_maps_to_the_event_its_topic_stands_for() {
    let mut files: Vec<String> = std::fs::read_dir(folder())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (CI puts shared/ beside the repository)",
                folder().display()
            )
        })
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|e| e.file).collect();
    assert_eq!(
        files, listed,
        "every payload has an expectation here, none is left out"
    );

    let live = config(&[("SEND_TEST_ORDERS", "true")]);
    for x in EXPECTED {
        let body = std::fs::read_to_string(folder().join(x.file)).unwrap();
        let payload: Value = serde_json::from_str(&body).unwrap();
        let topic = Topic::parse(x.topic);
        // An hour after it happened, so event_time is the resource's own time.
        let now = x.event_time + 3600;
        let (events, skipped) = map(topic, &body, &live, now)
            .unwrap_or_else(|reason| panic!("{} parked: {reason}", x.file));
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.event.as_str(), e.event_id.as_str()))
            .collect();
        assert_eq!(got, x.events, "{} ({})", x.file, x.why_none);
        if let Some(reason) = skipped {
            assert_eq!(reason, x.why_none, "{}", x.file);
        }
        for e in &events {
            assert_eq!(e.event_time, x.event_time, "{} event_time", x.file);
            let p = &e.properties;
            match x.value_from {
                Some((amount, currency)) => {
                    let want = payload.pointer(amount).and_then(Value::as_str).unwrap();
                    assert_eq!(
                        p.value.map(|v| v.to_string()).as_deref(),
                        Some(want),
                        "{} value",
                        x.file
                    );
                    let want = payload.pointer(currency).and_then(Value::as_str).unwrap();
                    assert_eq!(p.currency.as_deref(), Some(want), "{} currency", x.file);
                }
                None => assert!(
                    p.value.is_none() && p.currency.is_none(),
                    "{}: no money without a currency",
                    x.file
                ),
            }
            assert!(!p.contents.is_empty(), "{}: every line is an item", x.file);
            for c in &p.contents {
                assert!(
                    c.price.is_none() || p.currency.is_some(),
                    "{}: a price is only sent with its currency",
                    x.file
                );
            }
        }
    }
}

#[test]
fn test_orders_wait_for_send_test_orders() {
    let body =
        std::fs::read_to_string(folder().join("devstore_2023_inr_orders_create.json")).unwrap();
    let (events, skipped) = map(Topic::OrdersCreate, &body, &config(&[]), 1_695_388_483).unwrap();
    assert!(events.is_empty());
    assert_eq!(
        skipped.as_deref(),
        Some("test order (set SEND_TEST_ORDERS=true to send)")
    );
}

#[test]
fn the_real_au_order_carries_one_persons_match_keys() {
    let body =
        std::fs::read_to_string(folder().join("real_2026-02_au_order_redacted.json")).unwrap();
    let (events, _) = map(Topic::OrdersCreate, &body, &config(&[]), 1_770_358_413).unwrap();
    let e = &events[0];
    let u = &e.user;
    // Expected digests: `printf '%s' VALUE | sha256sum`.
    let keys = [
        (
            &u.email,
            "3e63c6f1a583adecebbd5545cb13513a1c023f5bdaf4f89c6675fd9fb751e09b",
        ), // jane.citizen@example.com
        (
            &u.phone,
            "bc65da54a3ddbacfdc93a0400f0a2d78e41c2180c8255015e9616facfe56f58a",
        ), // +61412345678 (billing 0412345678, AU)
        (
            &u.first_name,
            "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2",
        ), // jane
        (
            &u.last_name,
            "6e5f6170d4e1f2560ecb8d0db7aebe03576a7504b7e305ba338f9b635ad02f67",
        ), // citizen
        (
            &u.zip_code,
            "dfc04c940f3b91d8a8316579ecd027fb98be2ead43b0a0bacf78a12babae4d05",
        ), // 3149
        (
            &u.external_id,
            "7d0db0c3c1fa11a3308a62c4ac143ed96e1a012812df685c9827bbf1123fb83b",
        ), // 8759459283199
    ];
    for (got, want) in keys {
        assert_eq!(got.as_deref(), Some(want));
    }
    assert_eq!(
        (
            u.city.as_deref(),
            u.state.as_deref(),
            u.country.as_deref(),
            u.locale.as_deref()
        ),
        (
            Some("mountwaverley"),
            Some("vic"),
            Some("au"),
            Some("en-AU")
        )
    );
    assert_eq!(u.browser.ip.as_deref(), Some("203.0.113.140"));
    let c = &e.properties.contents;
    assert_eq!(c.len(), 1);
    assert_eq!(
        (
            c[0].content_id.as_str(),
            c[0].content_type.as_str(),
            c[0].quantity
        ),
        ("45251862331647", "product", 1)
    );
    assert_eq!(
        c[0].price.unwrap().to_string(),
        "1599.00",
        "the unit price; value is the total after the 30.00 discount"
    );
}

#[test]
fn shopifys_sample_checkout_uses_the_billing_person_only() {
    // Shopify's sample: customer John Smith (Ottawa), billing Bob Biller (Kentucky), shipping
    // Steve Shipper. Every name and location key is Bob's.
    let body = std::fs::read_to_string(folder().join("shopify_docs_2026-07_checkouts_create.json"))
        .unwrap();
    let (events, _) = map(Topic::CheckoutsCreate, &body, &config(&[]), 1_640_998_800).unwrap();
    let u = &events[0].user;
    let keys = [
        (
            &u.email,
            "36e96648c5410d00a7da7206c01237139f950bed21d8c729aae019dbe07964e7",
        ), // example@email.com
        (
            &u.first_name,
            "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9",
        ), // bob
        (
            &u.last_name,
            "116d3dda100429ca77030fdc21e8ba95ea25e0c9804ffee1a43045243170d9a6",
        ), // biller
        (
            &u.zip_code,
            "888a56c9acd4c9c0758df313adc44235db2988ded7200139b2c0e7d3ec9d8f8e",
        ), // k2p0b0
        (
            &u.external_id,
            "fefd987d8653ce3c908c5cf3b4465f02c4323a36d66c1a7358105f675f1ddc8f",
        ), // 603851970716743426
    ];
    for (got, want) in keys {
        assert_eq!(got.as_deref(), Some(want));
    }
    assert_eq!(
        (u.city.as_deref(), u.state.as_deref(), u.country.as_deref()),
        (Some("billtown"), Some("ky"), Some("us"))
    );
    assert_eq!(
        u.phone, None,
        "555-555-BILL has letters: no phone rather than a wrong one"
    );
    assert_eq!(u.locale, None);
}

#[test]
fn shopifys_sample_order_lines_become_catalog_items() {
    // The 2026-07 sample is a cancelled test order; as a live one, its lines have no variant
    // (product ids → product_group) and two bundle components have no id at all (their SKU).
    let mut order: Value = serde_json::from_str(
        &std::fs::read_to_string(folder().join("shopify_docs_2026-07_orders_create.json")).unwrap(),
    )
    .unwrap();
    order["cancelled_at"] = Value::Null;
    order["test"] = Value::Bool(false);
    let (events, _) = map(
        Topic::OrdersCreate,
        &order.to_string(),
        &config(&[]),
        1_640_998_800,
    )
    .unwrap();
    let p = &events[0].properties;
    let items: Vec<(&str, &str, String)> = p
        .contents
        .iter()
        .map(|c| {
            (
                c.content_id.as_str(),
                c.content_type.as_str(),
                c.price.unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("788032119674292922", "product_group", "89.99".to_string()),
            ("LENS-PROTECT-2YR", "product", "19.99".to_string()),
            ("CASE-LEATHER-PREM", "product", "24.99".to_string()),
            ("788032119674292922", "product_group", "159.99".to_string()),
            ("788032119674292922", "product_group", "119.99".to_string()),
        ]
    );
    assert_eq!(
        p.content_type, None,
        "mixed item types: no shared top-level type"
    );
    assert_eq!(
        p.value.unwrap().to_string(),
        "404.95",
        "total_price_set.presentment_money"
    );
    assert_eq!(p.currency.as_deref(), Some("USD"));
    // 2021 is far older than TikTok takes: the event is dated as old as it can safely be.
    let now = 1_800_000_000;
    let (late, _) = map(Topic::OrdersCreate, &order.to_string(), &config(&[]), now).unwrap();
    assert_eq!(late[0].event_time, now - 5 * 24 * 3600);
}
