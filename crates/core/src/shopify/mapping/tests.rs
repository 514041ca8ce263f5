use super::*;
use crate::hash::sha256_hex;
use crate::session::{merge_sessions, Browser, Session};
use crate::shopify::models::OrderEdited;
use crate::shopify::models::{Cart, Checkout, NoteAttribute, Order};

use crate::shopify::fixtures::{CART, CHECKOUT, EDIT, ORDER};
/// 2026-11-20T16:05:00Z: an hour after the fixtures' order was created.
const NOW: i64 = 1_795_190_700;

/// The documented defaults.
fn config() -> MappingConfig {
    MappingConfig::from(&crate::config::from_pairs(&[]))
}

fn order(patch: serde_json::Value) -> Order {
    let mut v: serde_json::Value = serde_json::from_str(ORDER).unwrap();
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn purchase_from_a_real_order_shape() {
    let o = order(serde_json::json!({}));
    let e = purchase(&o, &session_from_order(&o), &config(), NOW).unwrap();
    assert_eq!(
        (e.event.as_str(), e.event_id.as_str()),
        ("Purchase", "5900000000000000123")
    );
    // created_at 2026-11-20T10:05:00-05:00 (`date -d … +%s`), an hour before NOW.
    assert_eq!(e.event_time, 1_795_187_100);
    let u = &e.user;
    assert_eq!(
        u.email.as_deref(),
        Some(sha256_hex("buyer.person@example.com").as_str())
    );
    assert_eq!(
        u.phone.as_deref(),
        Some(sha256_hex("+12133734253").as_str())
    );
    assert_eq!(
        u.external_id.as_deref(),
        Some(sha256_hex("9007199254740993").as_str())
    );
    assert_eq!(u.first_name.as_deref(), Some(sha256_hex("buyer").as_str()));
    assert_eq!(u.zip_code.as_deref(), Some(sha256_hex("90210").as_str()));
    assert_eq!(u.country.as_deref(), Some("us"));
    let b = &u.browser;
    assert_eq!(b.ttclid.as_deref(), Some("E.C.P.landing123"));
    assert_eq!(b.ttp.as_deref(), Some("01JY68AFXQXP2232M0V748XS0P_.tt.1"));
    assert_eq!(b.ip.as_deref(), Some("198.51.100.7"));
    assert!(b.user_agent.as_deref().unwrap().contains("iPhone"));
    let p = &e.properties;
    assert_eq!(
        p.currency.as_deref(),
        Some("EUR"),
        "presentment currency, not the shop's USD"
    );
    assert_eq!(p.value.unwrap().to_string(), "38.60");
    assert_eq!(p.contents[0].content_id, "42001234567890123");
    assert_eq!(p.contents[0].price.unwrap().to_string(), "17.00");
    assert_eq!(p.order_id.as_deref(), Some("5900000000000000123"));
    assert_eq!(
        (p.market_handle.as_str(), p.market_id),
        ("eu", 23_505_895_537)
    );
}

#[test]
fn pos_draft_test_and_cancelled_orders_are_skipped() {
    let s = Session::default();
    for (patch, reason) in [
        (
            serde_json::json!({"source_name": "pos"}),
            "source_name `pos` is not an ad conversion (EXCLUDED_SOURCES)",
        ),
        (
            serde_json::json!({"source_name": "shopify_draft_order"}),
            "source_name `shopify_draft_order` is not an ad conversion (EXCLUDED_SOURCES)",
        ),
        (
            serde_json::json!({"source_name": "subscription_contract_checkout_one"}),
            "source_name `subscription_contract_checkout_one` is not an ad conversion (EXCLUDED_SOURCES)",
        ),
        (
            serde_json::json!({"test": true}),
            "test order (set SEND_TEST_ORDERS=true to send)",
        ),
        (
            serde_json::json!({"cancelled_at": "2026-11-20T11:00:00-05:00"}),
            "cancelled order",
        ),
    ] {
        assert_eq!(
            purchase(&order(patch), &s, &config(), NOW)
                .unwrap_err()
                .to_string(),
            reason
        );
    }
    let sends_tests = MappingConfig {
        send_test_orders: true,
        ..config()
    };
    assert!(purchase(
        &order(serde_json::json!({"test": true})),
        &s,
        &sends_tests,
        NOW
    )
    .is_ok());
    // EXCLUDED_SOURCES replaces the default list: renewals sent, an app channel not.
    let own = MappingConfig::from(&crate::config::from_pairs(&[(
        "EXCLUDED_SOURCES",
        "pos,580111",
    )]));
    let renewal = order(serde_json::json!({"source_name": "subscription_contract"}));
    assert!(purchase(&renewal, &s, &own, NOW).is_ok());
    let app = order(serde_json::json!({"source_name": "580111"}));
    assert!(purchase(&app, &s, &own, NOW).is_err());
    assert!(purchase(
        &order(serde_json::json!({"source_name": "web"})),
        &s,
        &own,
        NOW
    )
    .is_ok());
}

#[test]
fn null_customer_missing_client_details_and_zero_value() {
    let o = order(serde_json::json!({
        "customer": null, "client_details": null, "email": null, "contact_email": null, "phone": null,
        "billing_address": null, "shipping_address": null, "landing_site": null, "note_attributes": [],
        "total_price_set": null, "total_price": "0.00", "presentment_currency": null
    }));
    let e = purchase(&o, &session_from_order(&o), &config(), NOW).unwrap();
    assert_eq!(
        e.user.browser.ip.as_deref(),
        Some("198.51.100.7"),
        "browser_ip when client_details is null"
    );
    assert!(e.user.email.is_none() && e.user.phone.is_none() && e.user.external_id.is_none());
    assert!(e.user.browser.user_agent.is_none() && e.user.browser.ttclid.is_none());
    assert_eq!(e.properties.value.unwrap().to_f64(), 0.0);
    assert_eq!(e.properties.currency.as_deref(), Some("USD"));
    assert_eq!(e.properties.market_handle, "unassigned_market");
}

#[test]
fn national_phone_is_completed_from_the_address_country() {
    let o = order(
        serde_json::json!({"phone": "020 7946 0958", "billing_address": {"country_code": "GB"}}),
    );
    let e = purchase(&o, &Session::default(), &config(), NOW).unwrap();
    assert_eq!(
        e.user.phone.as_deref(),
        Some(sha256_hex("+442079460958").as_str())
    );
}

#[test]
fn cart_updates_give_one_add_to_cart_per_increase() {
    let cart: Cart = serde_json::from_str(CART).unwrap();
    let session = Session {
        browser: Browser {
            ttp: Some("ttp-1".into()),
            ..Browser::default()
        },
        ..Session::default()
    };
    let (events, state) = cart_added(&cart, &CartState::default(), &session, NOW);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_id,
        "atc:c1-7a2abe82733a34e84aa472d57fb5c3c1:42001234567890123:2"
    );
    assert_eq!(events[0].properties.contents[0].quantity, 2);
    assert_eq!(events[0].properties.value.unwrap().to_string(), "34.00");
    assert_eq!(events[0].properties.currency.as_deref(), Some("EUR"));
    assert_eq!(events[0].user.browser.ttp.as_deref(), Some("ttp-1"));

    let (again, same) = cart_added(&cart, &state, &session, NOW);
    assert!(again.is_empty(), "the same cart again adds nothing");
    assert_eq!(same, state);

    let mut older = cart.clone();
    older.updated_at = Some("2026-11-20T09:00:00-05:00".into());
    older.line_items[0].quantity = Some(1);
    assert!(cart_added(&older, &state, &session, NOW).0.is_empty());

    let mut more = cart.clone();
    more.updated_at = Some("2026-11-20T10:09:00-05:00".into());
    more.line_items[0].quantity = Some(3);
    let (added, _) = cart_added(&more, &state, &session, NOW);
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].properties.contents[0].quantity, 1);
    assert!(added[0].event_id.ends_with(":3"));

    let mut keyed = cart;
    keyed.token = Some("c1-abc?key=SECRET".into());
    let (e, _) = cart_added(&keyed, &CartState::default(), &session, NOW);
    assert!(!e[0].event_id.contains("SECRET") && e[0].event_id.starts_with("atc:c1-abc:"));
}

#[test]
fn checkout_steps() {
    let mut c: Checkout = serde_json::from_str(CHECKOUT).unwrap();
    let created = checkout_events(&c, true, &Session::default(), &config(), NOW);
    let ids: Vec<&str> = created.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "ic:9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e",
            "api:9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e"
        ]
    );
    assert_eq!(created[0].event, "InitiateCheckout");
    assert_eq!(
        created[0].user.email.as_deref(),
        Some(sha256_hex("buyer.person@example.com").as_str())
    );
    c.shipping_lines.clear();
    assert!(
        checkout_events(&c, false, &Session::default(), &config(), NOW).is_empty(),
        "not at payment yet"
    );
    // No shipping line in the payload, but a shipping charge in its total: at payment.
    let mut charged = c.clone();
    charged.total_tax = Some("0.00".into());
    assert_eq!(
        checkout_events(&charged, false, &Session::default(), &config(), NOW)[0].event,
        "AddPaymentInfo"
    );
    charged.total_price = Some("37.00".into());
    assert!(checkout_events(&charged, false, &Session::default(), &config(), NOW).is_empty());
    c.line_items[0].requires_shipping = Some(false);
    assert_eq!(
        checkout_events(&c, false, &Session::default(), &config(), NOW)[0].event,
        "AddPaymentInfo"
    );
}

#[test]
fn upsell_is_priced_from_the_order_whichever_arrives_first() {
    let edit: OrderEdited = serde_json::from_str(EDIT).unwrap();
    let mut updated = order(serde_json::json!({}));
    let mut added = updated.line_items[0].clone();
    added.id = Some(14_000_000_000_000_000_002);
    added.variant_id = Some(42_001_234_567_890_124);
    added.title = Some("Demo Tee".into());
    added.price = Some("26.00".into());
    added.price_set = serde_json::from_value(serde_json::json!({
        "shop_money": {"amount": "26.00", "currency_code": "USD"},
        "presentment_money": {"amount": "24.00", "currency_code": "EUR"}
    }))
    .unwrap();
    added.quantity = Some(1);
    updated.line_items.push(added);

    // Edit first, then the order update that shows the new line.
    let mut state = OrderState::default();
    state.absorb(&order(serde_json::json!({})), Session::default(), &config());
    state.add_edit(&edit.order_edit);
    assert!(state
        .resolve_upsells(5_900_000_000_000_000_123, &config(), NOW)
        .is_empty());
    state.absorb(&updated, Session::default(), &config());
    let events = state.resolve_upsells(5_900_000_000_000_000_123, &config(), NOW);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_id, "upsell:77000000000000001");
    assert_eq!(e.properties.contents.len(), 1, "only the added product");
    assert_eq!(e.properties.contents[0].content_id, "42001234567890124");
    assert_eq!(e.properties.value.unwrap().to_string(), "24.00");
    assert_eq!(e.properties.currency.as_deref(), Some("EUR"));
    assert!(e.user.email.is_some());
    assert!(
        state
            .resolve_upsells(5_900_000_000_000_000_123, &config(), NOW)
            .is_empty(),
        "once"
    );

    // A line known only in the shop's money (USD) is not priced in the order's EUR.
    let mut shop_only = updated.clone();
    shop_only.line_items[1].price_set = None;
    let mut state = OrderState::default();
    state.absorb(&shop_only, Session::default(), &config());
    state.add_edit(&edit.order_edit);
    let e = &state.resolve_upsells(1, &config(), NOW)[0];
    assert_eq!(e.properties.contents[0].price, None);
    assert_eq!(e.properties.value, None, "no sum with an unknown price");

    // Order update first, then the edit.
    let mut state = OrderState::default();
    state.absorb(&updated, Session::default(), &config());
    state.add_edit(&edit.order_edit);
    assert_eq!(state.resolve_upsells(1, &config(), NOW).len(), 1);
}

#[test]
fn join_helpers() {
    assert_eq!(cart_key("c1-abc?key=secret"), "c1-abc");
    assert_eq!(cart_key("Z2NwLXVz"), "Z2NwLXVz");
    assert_eq!(
        ttclid_from_url("/p?a=1&ttclid=E.C.P.a%2Bb&x=2").as_deref(),
        Some("E.C.P.a+b")
    );
    assert_eq!(ttclid_from_url("https://shop/p?ttclid="), None);
    assert_eq!(ttclid_from_url("/p"), None);
    let attrs: Vec<NoteAttribute> = serde_json::from_str(r#"[{"name":"_ttclid","value":" E.C.P.z "},{"key":"_tt_market","value":"us"},{"name":"_tt_market_id","value":7}]"#).unwrap();
    let s = session_from_attributes(&attrs);
    assert_eq!(
        (
            s.browser.ttclid.as_deref(),
            s.market_handle.as_deref(),
            s.market_id
        ),
        (Some("E.C.P.z"), Some("us"), None)
    );
    let merged = merge_sessions(
        Some(Session {
            browser: Browser {
                ip: Some("1.1.1.1".into()),
                ..Browser::default()
            },
            ..Session::default()
        }),
        s,
    );
    assert_eq!(
        (
            merged.browser.ip.as_deref(),
            merged.browser.ttclid.as_deref()
        ),
        (Some("1.1.1.1"), Some("E.C.P.z"))
    );
}

fn line(json: serde_json::Value) -> LineItem {
    serde_json::from_value(json).unwrap()
}

#[test]
fn content_rule_table() {
    // (line, content_id, content_type): the catalog key TikTok's Shopify catalog uses.
    let cases: &[(serde_json::Value, Option<(&str, &str)>)] = &[
        (
            serde_json::json!({"variant_id": 42001234567890123u64, "product_id": 7, "sku": "S"}),
            Some(("42001234567890123", "product")),
        ),
        (
            serde_json::json!({"variant_id": null, "product_id": "788032119674292922", "sku": "S"}),
            Some(("788032119674292922", "product_group")),
        ),
        (
            serde_json::json!({"variant_id": null, "product_id": null, "sku": " LENS-2YR "}),
            Some(("LENS-2YR", "product")),
        ),
        (serde_json::json!({"sku": ""}), None),
        (serde_json::json!({"variant_id": 1.5e18}), None),
    ];
    for (json, want) in cases {
        let got = content(&line(json.clone()), 1, None, None);
        assert_eq!(
            got.as_ref()
                .map(|c| (c.content_id.as_str(), c.content_type.as_str())),
            *want,
            "{json}"
        );
    }
    let same = Properties::for_contents(
        vec![
            content(&line(serde_json::json!({"variant_id": 1})), 1, None, None).unwrap(),
            content(&line(serde_json::json!({"variant_id": 2})), 1, None, None).unwrap(),
        ],
        None,
    );
    assert_eq!(same.content_type.as_deref(), Some("product"));
}

#[test]
fn money_rule_table() {
    let set = |p: &str, pc: &str, s: &str, sc: &str| serde_json::json!({"presentment_money": {"amount": p, "currency_code": pc}, "shop_money": {"amount": s, "currency_code": sc}});
    // (price_set, price, shop currency) → (amount, currency): the buyer's money with the
    // buyer's currency, else the shop's with the shop's; never one with the other's label.
    type Case = (
        serde_json::Value,
        serde_json::Value,
        Option<&'static str>,
        Option<(&'static str, Option<&'static str>)>,
    );
    let cases: &[Case] = &[
        (
            set("24.00", "EUR", "26.00", "USD"),
            serde_json::json!("26.00"),
            Some("USD"),
            Some(("24.00", Some("EUR"))),
        ),
        (
            serde_json::json!({"shop_money": {"amount": "26.00", "currency_code": "usd"}}),
            serde_json::json!(null),
            None,
            Some(("26.00", Some("USD"))),
        ),
        (
            serde_json::json!(null),
            serde_json::json!("409.94"),
            Some("USD"),
            Some(("409.94", Some("USD"))),
        ),
        (
            serde_json::json!(null),
            serde_json::json!(600),
            Some("USD"),
            Some(("600", Some("USD"))),
        ),
        (
            serde_json::json!(null),
            serde_json::json!("1.00"),
            None,
            Some(("1.00", None)),
        ),
        (
            serde_json::json!(null),
            serde_json::json!("1e3"),
            Some("USD"),
            None,
        ),
        (
            serde_json::json!([]),
            serde_json::json!(null),
            Some("USD"),
            None,
        ),
    ];
    for (price_set, price, shop, want) in cases {
        let l = line(serde_json::json!({"price_set": price_set, "price": price}));
        let got = line_price(&l, *shop);
        assert_eq!(
            got.as_ref()
                .map(|m| (m.amount.to_string(), m.currency.as_deref())),
            want.map(|(a, c)| (a.to_string(), c)),
            "{price_set} {price} {shop:?}"
        );
    }
    // Carts: the discounted price is what the buyer pays, as the storefront's final_price.
    let cart_line = line(
        serde_json::json!({"price": "19.99", "discounted_price": "15.00",
        "discounted_price_set": set("15.00", "EUR", "16.00", "USD")}),
    );
    assert_eq!(
        line_price(&cart_line, None).unwrap().amount.to_string(),
        "15.00"
    );

    // The event's money: an order without `total_price_set` is valued in the shop's
    // currency, and its lines priced in the buyer's currency are left unpriced.
    let o = order(serde_json::json!({"total_price_set": null, "total_price": "45.00"}));
    let e = purchase(&o, &Session::default(), &config(), NOW).unwrap();
    assert_eq!(e.properties.value.unwrap().to_string(), "45.00");
    assert_eq!(e.properties.currency.as_deref(), Some("USD"));
    assert_eq!(e.properties.contents[0].price, None, "its price is in EUR");

    // A currency TikTok does not accept: no value, no currency, no prices; items stay.
    for unsupported in ["XOF", "BTC"] {
        let o =
            order(serde_json::json!({"total_price_set": set("1000", unsupported, "1.50", "USD")}));
        let p = purchase(&o, &Session::default(), &config(), NOW)
            .unwrap()
            .properties;
        assert_eq!(
            (p.value, p.currency.as_deref()),
            (None, None),
            "{unsupported}"
        );
        assert!(p.contents.iter().all(|c| c.price.is_none()) && !p.contents.is_empty());
    }
}

#[test]
fn event_time_table() {
    // Expected seconds from `date -d <timestamp> +%s`.
    let cases: &[(&str, Option<i64>)] = &[
        ("2021-12-31T19:00:00-05:00", Some(1_640_995_200)),
        ("2022-01-01T00:00:00.000Z", Some(1_640_995_200)),
        ("2024-09-17T08:15:13.280Z", Some(1_726_560_913)),
        ("2026-02-06T16:13:33+11:00", Some(1_770_354_813)),
        ("2024-02-29T23:59:59+00:00", Some(1_709_251_199)),
        ("2012-02-13T14:39:37-05:00", Some(1_329_161_977)),
        ("2024-09-16T03:50:1500:00", None),
        ("2024-13-01T00:00:00Z", None),
        ("2024-01-01", None),
        ("", None),
    ];
    for (ts, want) in cases {
        assert_eq!(unix_seconds(ts), *want, "{ts:?}");
    }
    let now = 1_800_000_000;
    let five_days = 5 * 24 * 3600;
    assert_eq!(
        event_time(&[Some("2027-01-15T05:20:00Z")], now),
        1_799_990_400
    );
    assert_eq!(
        event_time(&[None, Some("bad"), Some("2027-01-15T05:20:00Z")], now),
        1_799_990_400
    );
    assert_eq!(
        event_time(&[Some("2030-01-01T00:00:00Z")], now),
        now,
        "never in the future"
    );
    assert_eq!(
        event_time(&[Some("2021-12-31T19:00:00-05:00")], now),
        now - five_days
    );
    assert_eq!(event_time(&[None], now), now);
}

#[test]
fn match_keys_come_from_one_person_billing_then_shipping_then_customer() {
    let person = |o: &Order| {
        let u = order_user(o, &Session::default(), &config());
        (u.first_name, u.zip_code, u.country, u.city)
    };
    // Expected digests: `printf '%s' VALUE | sha256sum`.
    const ANA: &str = "24d4b96f58da6d4a8512313bbd02a28ebf0ca95dec6e4c86ef78ce7f01e788ac"; // ana
    const BEN: &str = "6700869c8ff7480e34a70a708b028700dbaa3a033b5652b903afe89f49a31456"; // ben
    const CARL: &str = "69bfe1e6e44821df7f8a0927bd7e61ef208fdb25deaa4353450bc3fb904abd52"; // carl
    const Z1: &str = "7a5df5ffa0dec2228d90b8d0a0f1b0767b748b0a41314c123075b8289e4e053f"; // 1010
    let addr = |name: &str, zip: &str, country: &str, city: &str| serde_json::json!({"first_name": name, "zip": zip, "country_code": country, "city": city});
    let both = order(serde_json::json!({
        "billing_address": addr("Ana", "1010", "AT", "Wien"),
        "shipping_address": addr("Ben", "80331", "DE", "München"),
        "customer": {"id": 1, "first_name": "Carl", "default_address": addr("Carl", "75001", "FR", "Paris")}
    }));
    assert_eq!(
        person(&both),
        (
            Some(ANA.into()),
            Some(Z1.into()),
            Some("at".into()),
            Some("wien".into())
        )
    );
    let mut shipping_only = both.clone();
    shipping_only.billing_address =
        serde_json::from_value(serde_json::json!({"first_name": " ", "zip": null})).ok();
    assert_eq!(person(&shipping_only).0.as_deref(), Some(BEN));
    assert_eq!(person(&shipping_only).3.as_deref(), Some("münchen"));
    let mut customer_only = shipping_only.clone();
    customer_only.shipping_address = None;
    assert_eq!(person(&customer_only).0.as_deref(), Some(CARL));
    assert_eq!(person(&customer_only).2.as_deref(), Some("fr"));
}
