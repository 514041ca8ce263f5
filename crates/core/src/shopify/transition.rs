//! One Shopify resource's webhook state machine, as a pure function: a verified webhook, the
//! browsing session the shell joined to it, and the resource's memory go in; the events to
//! queue, the new memory, what was skipped and why, and what the resource now holds elsewhere
//! come out. The `ShopState` Durable Object only loads, calls [`apply`] and stores.

use super::checkout_url::JoinToken;
use super::mapping::{
    self, attribute, attributes, session_from_attributes, CartState, MappingConfig, OrderState,
};
use super::{Payload, Topic};
use crate::config::{Config, ConsentDefault};
use crate::consent::tracking_allowed;
use crate::privacy::Held;
use crate::proof::Proof;
use crate::session::{merge_sessions, Browser, Session};
use crate::tiktok::Event;
use serde::{Deserialize, Serialize};

/// What one resource remembers between its webhooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Quantities last seen (carts), for AddToCart diffs.
    pub cart: CartState,
    /// Lines, currency and buyer (orders), for upsells.
    pub order: OrderState,
}

/// The settings the transition reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mapping: MappingConfig,
    pub consent_default: ConsentDefault,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            mapping: MappingConfig::from(config),
            consent_default: config.consent_default,
        }
    }
}

/// Where the shell looks for the resource's browsing session: the session id the pixel wrote
/// into the cart attributes, the session linked to the cart token, the one linked to the
/// checkout token (KV links written by the edge and collect), and the one that landed with the
/// ad click the checkout or order names (the edge's click link), all four, since a refusal may
/// be linked to any of them ([`Joined::of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinKeys {
    pub session_id: Option<String>,
    pub cart_token: Option<String>,
    pub checkout_token: Option<String>,
    /// The `ttclid` of the `landing_site` (else of the `_ttclid` attribute).
    pub click: Option<String>,
}

impl JoinKeys {
    pub fn of(payload: &Payload) -> JoinKeys {
        let (attrs, cart, checkout, landing) = match payload {
            Payload::Cart(cart) => (&cart.note_attributes[..], cart.token.as_deref(), None, None),
            Payload::Checkout(c) => (
                &c.note_attributes[..],
                c.cart_token.as_deref(),
                c.token.as_deref(),
                Some(c.landing_site.as_deref()),
            ),
            Payload::Order(o) => (
                &o.note_attributes[..],
                o.cart_token.as_deref(),
                o.checkout_token.as_deref(),
                Some(o.landing_site.as_deref()),
            ),
            Payload::OrderEdited(_) | Payload::None => return JoinKeys::default(),
        };
        let token = |t: Option<&str>| {
            t.map(|t| mapping::cart_key(t).to_string())
                .filter(|t| !t.is_empty())
        };
        JoinKeys {
            session_id: attribute(attrs, attributes::SESSION).map(String::from),
            cart_token: token(cart),
            checkout_token: token(checkout),
            click: landing
                .and_then(|site| mapping::landing_click(site, attrs))
                .filter(|c| crate::edge::plausible(c)),
        }
    }
}

impl JoinKeys {
    /// The KV links to read, as join tokens, the click last: the session a click leads to is
    /// the visitor only when nothing nearer (the cart, the checkout) names one.
    pub fn links(&self) -> Vec<JoinToken> {
        let cart = self.cart_token.clone().map(JoinToken::Cart);
        let checkout = self.checkout_token.clone().map(JoinToken::Checkout);
        let click = self.click.clone().map(JoinToken::Click);
        cart.into_iter().chain(checkout).chain(click).collect()
    }
}

/// What the shell found: the session id (from the attributes or a KV link) and its record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Joined {
    pub session_id: Option<String>,
    pub session: Option<Session>,
    /// The session id that holds a refusal of marketing, when any join key leads to one.
    pub refused_by: Option<String>,
    /// Every session id the join keys led to: a browser copy from one of them (its cookie)
    /// is this resource's evidence ([`Proof`]).
    pub sessions: Vec<String>,
}

impl Joined {
    /// From every session id the join keys led to, in [`JoinKeys`] order (the attribute's,
    /// the cart's, the checkout's), with its record when KV had one: the first is the visitor;
    /// a refusal behind any of them stops the resource (the visitor declined on the storefront,
    /// at "Buy it now", or in the checkout, and each is remembered under another key).
    pub fn of(found: Vec<(String, Option<Session>)>) -> Joined {
        let refused_by = found
            .iter()
            .find(|(sid, session)| {
                crate::keys::is_declined(sid)
                    || session.as_ref().and_then(|s| s.marketing_allowed) == Some(false)
            })
            .map(|(sid, _)| sid.clone());
        let sessions = found.iter().map(|(sid, _)| sid.clone()).collect();
        let mut found = found.into_iter();
        let (session_id, session) = found.next().map_or((None, None), |(sid, s)| (Some(sid), s));
        Joined {
            session_id,
            session,
            refused_by,
            sessions,
        }
    }
}

/// The result of one webhook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    pub events: Vec<Event>,
    /// Why nothing (or less) was sent, for the webhook's answer and the log.
    pub skipped: Option<String>,
    /// A checkout token to link to the session in KV, so later checkout webhooks join too.
    pub link_checkout: Option<(String, String)>,
    /// What this resource's events can be bound by: its checkout token and the sessions its
    /// join found. Only browser copies proving one of them add to its events.
    pub proof: Proof,
    /// What this resource now holds elsewhere (for privacy webhooks).
    pub held: Held,
}

/// Applies one verified webhook to its resource.
pub fn apply(
    topic: Topic,
    payload: &Payload,
    joined: Joined,
    memory: &mut Memory,
    settings: &Settings,
    now: i64,
) -> Transition {
    let keys = JoinKeys::of(payload);
    let mut out = Transition::default();
    out.held.note(
        joined.session_id.clone(),
        keys.cart_token.as_deref(),
        keys.checkout_token.as_deref(),
        keys.click.as_deref(),
    );
    out.proof = Proof::of(
        keys.checkout_token.as_deref(),
        joined.sessions.iter().map(String::as_str),
    );
    let config = &settings.mapping;
    // A session id is the visitor's `_ttp`: it still identifies them when the KV record is
    // gone (expired, or not yet visible at this location).
    let joined = Joined {
        session: joined.session.or_else(|| {
            let ttp = crate::edge::ttp_of_session(joined.session_id.as_deref()?)?;
            Some(Session {
                browser: Browser {
                    ttp: Some(ttp.to_string()),
                    ..Browser::default()
                },
                ..Session::default()
            })
        }),
        ..joined
    };
    let (events, session) = match payload {
        Payload::Cart(cart) => {
            let session = merge_sessions(
                joined.session,
                session_from_attributes(&cart.note_attributes),
            );
            let (events, next) = mapping::cart_added(cart, &memory.cart, &session, now);
            memory.cart = next;
            (events, session)
        }
        Payload::Checkout(checkout) => {
            let session = merge_sessions(joined.session, mapping::session_from_checkout(checkout));
            // A refusal found through the cart stays with the checkout, for orders without a cart.
            let sid = joined.refused_by.as_ref().or(joined.session_id.as_ref());
            if let (Some(sid), Some(token)) = (sid, &keys.checkout_token) {
                out.link_checkout = Some((token.clone(), sid.clone()));
            }
            let created = topic == Topic::CheckoutsCreate;
            let events = mapping::checkout_events(checkout, created, &session, config, now);
            (events, session)
        }
        Payload::Order(order) => {
            let session = merge_sessions(
                Some(merge_sessions(
                    joined.session,
                    session_from_attributes(&order.note_attributes),
                )),
                mapping::session_from_order(order),
            );
            memory.order.absorb(order, session.clone(), config);
            let mut events = Vec::new();
            if topic == Topic::OrdersCreate {
                match mapping::purchase(order, &session, config, now) {
                    Ok(event) => events.push(event),
                    Err(reason) => out.skipped = Some(reason.to_string()),
                }
            }
            if mapping::skip_reason(order, config).is_none() {
                let order_id = order.id.unwrap_or_default();
                events.extend(memory.order.resolve_upsells(order_id, config, now));
            }
            (events, session)
        }
        Payload::OrderEdited(edited) => {
            memory.order.add_edit(&edited.order_edit);
            let order_id = edited.order_edit.order_id.unwrap_or_default();
            let events = memory.order.resolve_upsells(order_id, config, now);
            (events, memory.order.session.clone())
        }
        Payload::None => (Vec::new(), Session::default()),
    };
    if joined.refused_by.is_none()
        && tracking_allowed(session.marketing_allowed, settings.consent_default)
    {
        out.events = events;
    } else {
        out.skipped = Some("the visitor declined marketing".to_string());
    }
    out.held.events.extend(
        out.events
            .iter()
            .map(|e| (e.event.clone(), e.event_id.clone())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;

    use crate::shopify::fixtures::{CART, CHECKOUT, EDIT, ORDER};
    const NOW: i64 = 1_800_000_000;
    const SID: &str = "01JY68AFXQXP2232M0V748XS0P_.tt.1";

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Consent {
        Granted,
        Declined,
        Unknown,
    }

    fn settings(default: &str) -> Settings {
        Settings::from_config(&from_pairs(&[("CONSENT_DEFAULT", default)]))
    }

    fn joined(consent: Consent) -> Joined {
        Joined {
            session_id: Some(SID.into()),
            session: Some(Session {
                browser: Browser {
                    ttp: Some(SID.into()),
                    ip: Some("203.0.113.8".into()),
                    ..Browser::default()
                },
                marketing_allowed: match consent {
                    Consent::Granted => Some(true),
                    Consent::Declined => Some(false),
                    Consent::Unknown => None,
                },
                ..Session::default()
            }),
            refused_by: None,
            sessions: vec![SID.into()],
        }
    }

    fn delivery(topic: &str, body: &str) -> (Topic, Payload) {
        let topic = Topic::parse(topic);
        (topic, Payload::parse(topic, body).expect("fixture parses"))
    }

    /// Delivers `deliveries` in order to one resource; returns the event ids queued by each.
    fn run(
        deliveries: &[(&str, &str)],
        consent: Consent,
        default: &str,
    ) -> (Vec<Vec<String>>, Vec<Option<String>>) {
        let settings = settings(default);
        let mut memory = Memory::default();
        let mut ids = Vec::new();
        let mut skipped = Vec::new();
        for (topic, body) in deliveries {
            let (topic, payload) = delivery(topic, body);
            let out = apply(
                topic,
                &payload,
                joined(consent),
                &mut memory,
                &settings,
                NOW,
            );
            ids.push(out.events.iter().map(|e| e.event_id.clone()).collect());
            skipped.push(out.skipped);
        }
        (ids, skipped)
    }

    fn allowed(consent: Consent, default: &str) -> bool {
        match consent {
            Consent::Granted => true,
            Consent::Declined => false,
            Consent::Unknown => default == "allowed",
        }
    }

    const CONSENTS: [Consent; 3] = [Consent::Granted, Consent::Declined, Consent::Unknown];
    const DEFAULTS: [&str; 2] = ["allowed", "denied"];

    #[test]
    fn orders_in_every_arrival_order_and_consent_state() {
        let purchase = "5900000000000000123".to_string();
        // orders/create sends the purchase; orders/paid and orders/updated never do, in any order.
        let orders: [&[(&str, &str)]; 3] = [
            &[
                ("orders/create", ORDER),
                ("orders/paid", ORDER),
                ("orders/updated", ORDER),
            ],
            &[
                ("orders/paid", ORDER),
                ("orders/create", ORDER),
                ("orders/updated", ORDER),
            ],
            &[
                ("orders/updated", ORDER),
                ("orders/paid", ORDER),
                ("orders/create", ORDER),
            ],
        ];
        for consent in CONSENTS {
            for default in DEFAULTS {
                for deliveries in orders {
                    let (ids, skipped) = run(deliveries, consent, default);
                    let sent: Vec<&String> = ids.iter().flatten().collect();
                    if allowed(consent, default) {
                        assert_eq!(
                            sent,
                            vec![&purchase],
                            "{consent:?} {default} {deliveries:?}"
                        );
                    } else {
                        assert!(sent.is_empty(), "{consent:?} {default}");
                        assert!(skipped
                            .iter()
                            .all(|s| s.as_deref() == Some("the visitor declined marketing")));
                    }
                }
            }
        }
    }

    #[test]
    fn upsells_in_either_order_and_consent_state() {
        let mut with_added_line: serde_json::Value = serde_json::from_str(ORDER).unwrap();
        with_added_line["line_items"].as_array_mut().unwrap().push(serde_json::json!({
            "id": 14000000000000000002u64, "variant_id": 42001234567890999u64,
            "product_id": 7001234567999u64, "title": "Demo Spoon", "quantity": 1, "price": "4.00"
        }));
        let updated = with_added_line.to_string();
        let orders: [&[(&str, &str)]; 2] = [
            &[
                ("orders/create", ORDER),
                ("orders/edited", EDIT),
                ("orders/updated", &updated),
            ],
            &[
                ("orders/create", ORDER),
                ("orders/updated", &updated),
                ("orders/edited", EDIT),
            ],
        ];
        for consent in CONSENTS {
            for default in DEFAULTS {
                for deliveries in orders {
                    let (ids, _) = run(deliveries, consent, default);
                    let upsells: Vec<&String> = ids
                        .iter()
                        .flatten()
                        .filter(|id| id.starts_with("upsell:"))
                        .collect();
                    let want = usize::from(allowed(consent, default));
                    assert_eq!(upsells.len(), want, "{consent:?} {default} {deliveries:?}");
                }
            }
        }
    }

    #[test]
    fn checkouts_in_either_order_and_consent_state() {
        let token = "9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e";
        let orders: [&[(&str, &str)]; 2] = [
            &[
                ("checkouts/create", CHECKOUT),
                ("checkouts/update", CHECKOUT),
            ],
            &[
                ("checkouts/update", CHECKOUT),
                ("checkouts/create", CHECKOUT),
            ],
        ];
        for consent in CONSENTS {
            for default in DEFAULTS {
                for deliveries in orders {
                    let (ids, _) = run(deliveries, consent, default);
                    let mut sent: Vec<&String> = ids.iter().flatten().collect();
                    sent.sort();
                    sent.dedup();
                    if allowed(consent, default) {
                        let want = [format!("api:{token}"), format!("ic:{token}")];
                        assert_eq!(
                            sent,
                            want.iter().collect::<Vec<_>>(),
                            "{consent:?} {default}"
                        );
                    } else {
                        assert!(sent.is_empty(), "{consent:?} {default}");
                    }
                }
            }
        }
    }

    #[test]
    fn carts_in_either_order_and_consent_state() {
        let mut older: serde_json::Value = serde_json::from_str(CART).unwrap();
        older["updated_at"] = "2000-01-01T00:00:00Z".into();
        older["line_items"][0]["quantity"] = 1.into();
        let older = older.to_string();
        for consent in CONSENTS {
            for default in DEFAULTS {
                let (in_order, _) = run(
                    &[("carts/create", &older), ("carts/update", CART)],
                    consent,
                    default,
                );
                let (reversed, _) = run(
                    &[("carts/update", CART), ("carts/create", &older)],
                    consent,
                    default,
                );
                let count = |ids: &Vec<Vec<String>>| ids.iter().flatten().count();
                if allowed(consent, default) {
                    // Quantity 1 then 2: two adds; 2 first: one add, the stale create nothing.
                    assert_eq!((count(&in_order), count(&reversed)), (2, 1), "{consent:?}");
                    assert_eq!(reversed[1], Vec::<String>::new());
                } else {
                    assert_eq!((count(&in_order), count(&reversed)), (0, 0), "{consent:?}");
                }
            }
        }
    }

    #[test]
    fn the_checkout_is_linked_to_the_session_and_everything_is_held() {
        let (topic, payload) = delivery("checkouts/create", CHECKOUT);
        let mut memory = Memory::default();
        let out = apply(
            topic,
            &payload,
            joined(Consent::Granted),
            &mut memory,
            &settings("allowed"),
            NOW,
        );
        let token = "9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e";
        assert_eq!(out.link_checkout, Some((token.into(), SID.into())));
        assert!(out.held.sessions.contains(SID));
        assert!(out.held.checkouts.contains(token));
        assert!(
            out.held.clicks.contains("E.C.P.landing123"),
            "its landing_site's click"
        );
        assert!(out
            .held
            .carts
            .contains("c1-7a2abe82733a34e84aa472d57fb5c3c1"));
        assert_eq!(out.held.events.len(), out.events.len());
        assert_eq!(memory, Memory::default(), "checkouts keep no memory");
        // Its events are bound by its checkout token and the joined session, nothing else.
        assert_eq!(out.proof, Proof::of([token], [SID]));
        let (topic, payload) = delivery("orders/create", ORDER);
        let alone = Joined::default();
        let out = apply(
            topic,
            &payload,
            alone,
            &mut memory,
            &settings("allowed"),
            NOW,
        );
        let order = match &payload {
            Payload::Order(o) => o.checkout_token.clone(),
            _ => None,
        };
        assert_eq!(out.proof, Proof::of(order.as_deref(), []));
        assert!(!out.proof.is_empty(), "the order names its checkout");
    }

    #[test]
    fn a_session_id_without_its_record_still_gives_the_ttp() {
        let (topic, payload) = delivery("checkouts/create", CHECKOUT);
        for (sid, ttp) in [(SID, Some(SID)), ("declined-01ABC", None)] {
            let out = apply(
                topic,
                &payload,
                Joined {
                    session_id: Some(sid.into()),
                    session: None,
                    refused_by: None,
                    sessions: vec![sid.into()],
                },
                &mut Memory::default(),
                &settings("allowed"),
                NOW,
            );
            assert_eq!(out.events[0].user.browser.ttp.as_deref(), ttp, "{sid}");
        }
    }

    #[test]
    fn a_refusal_behind_any_join_key_stops_every_event() {
        let session = |allowed: Option<bool>| Session {
            browser: Browser {
                ttp: Some(SID.into()),
                ..Browser::default()
            },
            marketing_allowed: allowed,
            ..Session::default()
        };
        let declined = crate::edge::declined_session();
        let token = "9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e";
        type Found = Vec<(String, Option<Session>)>;
        let cases: Vec<(Found, Option<&str>)> = vec![
            (vec![(SID.into(), Some(session(Some(true))))], None),
            (vec![(SID.into(), Some(session(None)))], None),
            (vec![(SID.into(), None)], None),
            // The storefront session is unknown or even consenting; the "Buy it now" cart or the
            // checkout pixel linked a refusal.
            (
                vec![
                    (SID.into(), Some(session(None))),
                    ("declined-R".into(), Some(declined.clone())),
                ],
                Some("declined-R"),
            ),
            (
                vec![
                    (SID.into(), Some(session(Some(true)))),
                    ("declined-R".into(), None),
                ],
                Some("declined-R"),
            ),
            // The visitor's own session declined (the refusal expired its identifiers).
            (vec![(SID.into(), Some(declined.clone()))], Some(SID)),
        ];
        for (found, refused_by) in cases {
            let joined = Joined::of(found.clone());
            assert_eq!(joined.session_id.as_deref(), Some(SID), "{found:?}");
            assert_eq!(joined.refused_by.as_deref(), refused_by, "{found:?}");
            for (topic, body) in [
                ("checkouts/create", CHECKOUT),
                ("orders/create", ORDER),
                ("carts/update", CART),
            ] {
                let (topic, payload) = delivery(topic, body);
                let out = apply(
                    topic,
                    &payload,
                    joined.clone(),
                    &mut Memory::default(),
                    &settings("allowed"),
                    NOW,
                );
                assert_eq!(out.events.is_empty(), refused_by.is_some(), "{found:?}");
                if let (Some(sid), Topic::CheckoutsCreate) = (refused_by, topic) {
                    assert_eq!(out.link_checkout, Some((token.into(), sid.into())));
                }
            }
        }
        assert_eq!(Joined::of(Vec::new()), Joined::default());
    }

    #[test]
    fn join_keys_come_from_the_payload() {
        let (_, order) = delivery("orders/create", ORDER);
        assert_eq!(
            JoinKeys::of(&order),
            JoinKeys {
                session_id: Some(SID.into()),
                cart_token: Some("c1-7a2abe82733a34e84aa472d57fb5c3c1".into()),
                checkout_token: Some("9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e".into()),
                click: Some("E.C.P.landing123".into()),
            }
        );
        assert_eq!(
            JoinKeys::of(&order).links(),
            vec![
                JoinToken::Cart("c1-7a2abe82733a34e84aa472d57fb5c3c1".into()),
                JoinToken::Checkout("9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e".into()),
                JoinToken::Click("E.C.P.landing123".into()),
            ]
        );
        let (_, edit) = delivery("orders/edited", EDIT);
        assert_eq!(JoinKeys::of(&edit), JoinKeys::default());
    }

    #[test]
    fn checkouts_and_orders_name_the_click_of_their_landing_site_else_their_attribute() {
        let with = |topic: &str, body: &str, landing: serde_json::Value, attrs| {
            let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["landing_site"] = landing;
            v["note_attributes"] = attrs;
            let (_, payload) = delivery(topic, &v.to_string());
            JoinKeys::of(&payload).click
        };
        let attr = serde_json::json!([{"name": "_ttclid", "value": "E.C.P.attr"}]);
        let none = serde_json::json!([]);
        for (topic, body) in [("checkouts/create", CHECKOUT), ("orders/create", ORDER)] {
            let cases = [
                (
                    "/products/mug?ttclid=E.C.P.site&x=1".into(),
                    attr.clone(),
                    Some("E.C.P.site"),
                ),
                (serde_json::Value::Null, attr.clone(), Some("E.C.P.attr")),
                ("/products/mug".into(), attr.clone(), Some("E.C.P.attr")),
                (
                    "/?ttclid=E.C.P.site".into(),
                    none.clone(),
                    Some("E.C.P.site"),
                ),
                ("/".into(), none.clone(), None),
                // Nothing a cookie could not hold becomes a KV key.
                ("/?ttclid=a%3Bb".into(), none.clone(), None),
                (
                    format!("/?ttclid={}", "x".repeat(513)).into(),
                    none.clone(),
                    None,
                ),
            ];
            for (landing, attrs, click) in cases {
                let got = with(topic, body, landing.clone(), attrs);
                assert_eq!(got.as_deref(), click, "{topic} {landing}");
            }
        }
        let (_, cart) = delivery("carts/update", CART);
        assert_eq!(
            JoinKeys::of(&cart).click,
            None,
            "a cart joins by its own keys"
        );
    }

    #[test]
    fn a_session_found_through_the_click_joins_like_a_linked_one() {
        // An express-wallet checkout: a new cart, no attributes; KV led only its click to the
        // session that landed with it.
        let mut wallet: serde_json::Value = serde_json::from_str(CHECKOUT).unwrap();
        wallet["note_attributes"] = serde_json::json!([]);
        wallet["cart_token"] = "Z2NwLXdhbGxldA".into();
        let (topic, payload) = delivery("checkouts/create", &wallet.to_string());
        let landed = Session {
            browser: Browser {
                ttp: Some(SID.into()),
                ttclid: Some("E.C.P.landing123".into()),
                ip: Some("203.0.113.8".into()),
                user_agent: Some("UA".into()),
            },
            ..Session::default()
        };
        let out = apply(
            topic,
            &payload,
            Joined::of(vec![(SID.into(), Some(landed.clone()))]),
            &mut Memory::default(),
            &settings("allowed"),
            NOW,
        );
        let token = "9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e";
        assert_eq!(out.events[0].user.browser, landed.browser);
        // Bound by the session like a cart's or checkout's link, and the checkout now linked.
        assert_eq!(out.proof, Proof::of([token], [SID]));
        assert_eq!(out.link_checkout, Some((token.into(), SID.into())));
        // Found nothing: the checkout's own landing_site still gives the click.
        let out = apply(
            topic,
            &payload,
            Joined::default(),
            &mut Memory::default(),
            &settings("allowed"),
            NOW,
        );
        let browser = &out.events[0].user.browser;
        assert_eq!(
            (browser.ttclid.as_deref(), browser.ttp.as_deref()),
            (Some("E.C.P.landing123"), None)
        );
        // Where a cart or checkout link names a session too, that one is the visitor.
        let joined = Joined::of(vec![
            ("CART_.tt.1".into(), None),
            (SID.into(), Some(landed)),
        ]);
        assert_eq!(joined.session_id.as_deref(), Some("CART_.tt.1"));
    }

    #[test]
    fn pos_orders_are_skipped_with_their_reason() {
        let mut pos: serde_json::Value = serde_json::from_str(ORDER).unwrap();
        pos["source_name"] = "pos".into();
        let (ids, skipped) = run(
            &[("orders/create", &pos.to_string())],
            Consent::Granted,
            "allowed",
        );
        assert!(ids[0].is_empty());
        assert_eq!(
            skipped[0].as_deref(),
            Some("source_name `pos` is not an ad conversion (EXCLUDED_SOURCES)")
        );
    }
}
