//! Shopify webhooks → TikTok server events. Pure: the shell supplies the joined browsing
//! session and the per-resource state (kept in a Durable Object), and gets back the events to
//! queue and the new state.
//!
//! event_ids are deterministic from Shopify ids, so the browser pixel derives the same ones:
//! - AddToCart: `atc:<cart token>:<variant id>:<line quantity after the add>`
//! - InitiateCheckout: `ic:<checkout token>`; AddPaymentInfo: `api:<checkout token>`
//! - purchase: `<order id>`; Post Purchase Upsell: `upsell:<order edit id>`
//!
//! The rules (README "What is sent" documents them for operators):
//! - `contents`: a line is keyed the way TikTok's catalog for Shopify keys items: its variant
//!   id as `product` (a SKU), else its product id as `product_group`, else its own SKU as
//!   `product` (bundle components and custom items have neither id); a line with none of these
//!   is not an item. The top-level `content_type` is the items' shared type.
//! - `value`, one meaning per event, the same as the browser pixel's: AddToCart and upsells
//!   Σ price × quantity of their items; InitiateCheckout and AddPaymentInfo the checkout's
//!   subtotal (items after discounts, before shipping and tax); the purchase the order total.
//! - Money is the buyer's (presentment) money with the buyer's currency; where Shopify gives
//!   only the shop's money, the shop's currency goes with it. Items priced in another currency
//!   than the event's value carry no price. A currency TikTok does not accept drops the money
//!   (`Properties::drop_money_without_supported_currency`).
//! - Match keys come from one person: the billing address, else the shipping address, else
//!   the customer; email and phone from the contact fields first. Normalised in `hash`.
//! - `event_time` is when the resource says it happened (see [`event_time`]).
//! - Orders that are not ad conversions are skipped in one place, [`skip_reason`].

use super::models::{
    Address, Cart, Checkout, Customer, LineItem, MoneySet, NoteAttribute, Order, OrderEdit,
};
use crate::config::Config;
use crate::hash;
use crate::money::Amount;
use crate::tiktok::{Content, Event, Page, Properties, RetryPolicy, User, MAX_EVENT_AGE_SECS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Order channels that are not ad conversions unless `EXCLUDED_SOURCES` says otherwise:
/// point of sale, draft orders (invoices), and subscription renewals (Shopify's
/// `subscription_contract*` channels). A trailing `*` matches any `source_name` it starts.
pub const DEFAULT_EXCLUDED_SOURCES: &[&str] =
    &["pos", "shopify_draft_order", "subscription_contract*"];

/// Cart attributes written by the pixel snippet; they reach orders as `note_attributes`.
pub mod attributes {
    pub const SESSION: &str = "_tt_sid";
    pub const TTP: &str = "_ttp";
    pub const TTCLID: &str = "_ttclid";
    pub const MARKET_HANDLE: &str = "_tt_market";
    pub const MARKET_ID: &str = "_tt_market_id";
}

/// What the edge remembered about a browsing session (stored in KV with a TTL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_id: Option<u64>,
    /// The visitor's marketing consent as last reported (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing_allowed: Option<bool>,
    #[serde(default)]
    pub limited_data_use: bool,
}

/// Settings the mapping needs.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub purchase_event_name: String,
    pub send_test_orders: bool,
    pub default_country: Option<String>,
    /// Lowercase `source_name` patterns of orders that are not sent (see
    /// [`DEFAULT_EXCLUDED_SOURCES`]).
    pub excluded_sources: Vec<String>,
}

impl From<&Config> for MappingConfig {
    fn from(config: &Config) -> Self {
        MappingConfig {
            purchase_event_name: config.purchase_event_name.clone(),
            send_test_orders: config.send_test_orders,
            default_country: config.default_country.clone(),
            excluded_sources: config.excluded_sources.clone(),
        }
    }
}

/// The value of `name` among note attributes / cart attributes.
pub fn attribute<'a>(attrs: &'a [NoteAttribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.value.as_ref()?.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A cart token as a join key: the part before `?key=` (the secret is never stored).
pub fn cart_key(token: &str) -> &str {
    token.split('?').next().unwrap_or("").trim()
}

/// The `ttclid` query parameter of a landing URL or path.
pub fn ttclid_from_url(url: &str) -> Option<String> {
    crate::urls::query_param(url, "ttclid").filter(|v| !v.is_empty())
}

/// The session facts carried by note attributes, for orders whose KV session expired.
pub fn session_from_attributes(attrs: &[NoteAttribute]) -> Session {
    Session {
        ttp: attribute(attrs, attributes::TTP).map(String::from),
        ttclid: attribute(attrs, attributes::TTCLID).map(String::from),
        market_handle: attribute(attrs, attributes::MARKET_HANDLE).map(String::from),
        market_id: attribute(attrs, attributes::MARKET_ID).and_then(|v| v.parse().ok()),
        ..Session::default()
    }
}

/// Fills what `primary` lacks from `fallback`.
pub fn merge_sessions(primary: Option<Session>, fallback: Session) -> Session {
    let Some(p) = primary else { return fallback };
    Session {
        ttp: p.ttp.or(fallback.ttp),
        ttclid: p.ttclid.or(fallback.ttclid),
        ip: p.ip.or(fallback.ip),
        user_agent: p.user_agent.or(fallback.user_agent),
        landing_url: p.landing_url.or(fallback.landing_url),
        market_handle: p.market_handle.or(fallback.market_handle),
        market_id: p.market_id.or(fallback.market_id),
        marketing_allowed: p.marketing_allowed.or(fallback.marketing_allowed),
        limited_data_use: p.limited_data_use || fallback.limited_data_use,
    }
}

/// Unix seconds of a timestamp as Shopify writes them (RFC 3339:
/// `2021-12-31T19:00:00-05:00`, `2022-01-01T00:00:00.000Z`); `None` when unreadable.
pub fn unix_seconds(ts: &str) -> Option<i64> {
    let b = ts.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b' ')) && sep(13, b':'))
        || !sep(16, b':')
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = 19;
    if sep(rest, b'.') {
        rest += 1;
        while b.get(rest).is_some_and(u8::is_ascii_digit) {
            rest += 1;
        }
    }
    let offset = match b.get(rest) {
        Some(b'Z' | b'z') if rest + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if rest + 6 == b.len() && sep(rest + 3, b':') => {
            let minutes = num(rest + 1, 2)? * 60 + num(rest + 4, 2)?;
            if sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `event_time`: the first readable of the resource's own timestamps (most specific first),
/// else `now`; never in the future, and never older than TikTok accepts by the time the last
/// retry could send it ([`MAX_EVENT_AGE_SECS`] less the queue's retry window).
pub fn event_time(timestamps: &[Option<&str>], now: i64) -> i64 {
    let retry_window = (RetryPolicy::default().give_up_after_ms / 1000) as i64;
    let oldest = now - (MAX_EVENT_AGE_SECS - retry_window);
    timestamps
        .iter()
        .flatten()
        .find_map(|t| unix_seconds(t))
        .map_or(now, |t| t.clamp(oldest, now))
}

/// One person's identity fields: an address, or the customer with their default address.
#[derive(Default)]
struct Person<'a> {
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    phone: Option<&'a str>,
    address: Option<&'a Address>,
}

impl<'a> Person<'a> {
    fn of_address(a: &'a Address) -> Option<Person<'a>> {
        let filled = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        [
            &a.first_name,
            &a.last_name,
            &a.zip,
            &a.city,
            &a.country_code,
        ]
        .into_iter()
        .any(filled)
        .then_some(Person {
            first_name: a.first_name.as_deref(),
            last_name: a.last_name.as_deref(),
            phone: a.phone.as_deref(),
            address: Some(a),
        })
    }

    fn of_customer(c: &'a Customer) -> Person<'a> {
        let home = c.default_address.as_ref();
        Person {
            first_name: c
                .first_name
                .as_deref()
                .or(home.and_then(|a| a.first_name.as_deref())),
            last_name: c
                .last_name
                .as_deref()
                .or(home.and_then(|a| a.last_name.as_deref())),
            phone: c.phone.as_deref().or(home.and_then(|a| a.phone.as_deref())),
            address: home,
        }
    }

    fn field(&self, f: impl Fn(&'a Address) -> Option<&'a str>) -> Option<&'a str> {
        self.address.and_then(f)
    }
}

/// The buyer's identity from a payload, hashed. Empty or unusable values are left out.
struct Identity<'a> {
    email: Option<&'a str>,
    phone: Option<&'a str>,
    locale: Option<&'a str>,
    customer: Option<&'a Customer>,
    billing: Option<&'a Address>,
    shipping: Option<&'a Address>,
}

impl Identity<'_> {
    fn user(&self, session: &Session, default_country: Option<&str>) -> User {
        let customer = self.customer;
        // Names and location all describe one person; mixing the customer's name with the
        // billing address's zip would give a key set that belongs to nobody.
        let person = self
            .billing
            .and_then(Person::of_address)
            .or_else(|| self.shipping.and_then(Person::of_address))
            .or_else(|| customer.map(Person::of_customer))
            .unwrap_or_default();
        let country_code = person.field(|a| a.country_code.as_deref());
        let phone_country = country_code.or(default_country);
        // The first of the candidates that normalises to a usable key.
        let first_usable = |candidates: &[Option<&str>], hash: &dyn Fn(&str) -> Option<String>| {
            candidates.iter().flatten().find_map(|v| hash(v))
        };
        let customer_email = customer.and_then(|c| c.email.as_deref());
        let customer_phone = customer.and_then(|c| c.phone.as_deref());
        User {
            email: first_usable(&[self.email, customer_email], &hash::hash_email),
            phone: first_usable(&[self.phone, customer_phone, person.phone], &|p| {
                hash::hash_phone(p, phone_country)
            }),
            external_id: customer
                .and_then(|c| c.id)
                .and_then(|id| hash::hash_external_id(&id.to_string())),
            first_name: person.first_name.and_then(hash::hash_name),
            last_name: person.last_name.and_then(hash::hash_name),
            zip_code: person.field(|a| a.zip.as_deref()).and_then(hash::hash_zip),
            city: person.field(|a| a.city.as_deref()).and_then(hash::city),
            state: hash::state(
                person.field(|a| a.province_code.as_deref()),
                person.field(|a| a.province.as_deref()),
            ),
            country: country_code.and_then(hash::country),
            locale: self.locale.and_then(hash::locale),
            ..session_user(session)
        }
    }
}

/// Match keys of a session alone (no PII known yet).
pub fn session_user(session: &Session) -> User {
    User {
        ttp: session.ttp.clone(),
        ttclid: session.ttclid.clone(),
        ip: session.ip.clone(),
        user_agent: session.user_agent.clone(),
        ..User::default()
    }
}

/// An amount with the currency it is in (`None`: Shopify did not say).
#[derive(Debug, Clone, PartialEq)]
struct Money {
    amount: Amount,
    currency: Option<String>,
}

/// The buyer's money from a `*_set` when Shopify sends one, else the shop's; else the plain
/// amount string, which is in `plain_currency`. An amount never takes the other's currency.
fn money(
    set: Option<&MoneySet>,
    plain: Option<&str>,
    plain_currency: Option<&str>,
) -> Option<Money> {
    let from = |m: Option<&super::models::Money>| {
        let m = m?;
        Some(Money {
            amount: Amount::parse(m.amount.as_deref()?)?,
            currency: m.currency_code.as_deref().map(str::to_ascii_uppercase),
        })
    };
    set.and_then(|s| from(s.presentment_money.as_ref()).or_else(|| from(s.shop_money.as_ref())))
        .or_else(|| {
            Some(Money {
                amount: Amount::parse(plain?)?,
                currency: plain_currency.map(str::to_ascii_uppercase),
            })
        })
}

/// A line's unit price: after the line's own discounts where Shopify gives that (carts, like
/// the storefront's `final_price`), else its price.
fn line_price(line: &LineItem, plain_currency: Option<&str>) -> Option<Money> {
    money(
        line.discounted_price_set.as_ref(),
        line.discounted_price.as_deref(),
        plain_currency,
    )
    .or_else(|| {
        money(
            line.price_set.as_ref(),
            line.price.as_deref(),
            plain_currency,
        )
    })
}

/// How TikTok's catalog for Shopify keys an item: `(content_id, content_type)`.
fn item_key(
    variant: Option<u64>,
    product: Option<u64>,
    sku: Option<&str>,
) -> Option<(String, &'static str)> {
    if let Some(v) = variant {
        return Some((v.to_string(), "product"));
    }
    if let Some(p) = product {
        return Some((p.to_string(), "product_group"));
    }
    sku.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (s.to_string(), "product"))
}

/// A line as an item of `quantity`, priced only when its price is in `currency`.
fn content(
    line: &LineItem,
    quantity: u64,
    currency: Option<&str>,
    plain_currency: Option<&str>,
) -> Option<Content> {
    let (content_id, content_type) =
        item_key(line.variant_id, line.product_id, line.sku.as_deref())?;
    Some(Content {
        content_id,
        content_type: content_type.to_string(),
        content_name: line
            .title
            .clone()
            .or_else(|| line.name.clone())
            .filter(|t| !t.is_empty()),
        quantity,
        price: line_price(line, plain_currency)
            .filter(|p| p.currency.as_deref() == currency)
            .map(|p| p.amount),
    })
}

fn contents(
    lines: &[LineItem],
    currency: Option<&str>,
    plain_currency: Option<&str>,
) -> Vec<Content> {
    lines
        .iter()
        .filter_map(|l| content(l, l.quantity.unwrap_or(1).max(1), currency, plain_currency))
        .collect()
}

/// Event properties: the items, `value` (given, else Σ of the items when all are priced), the
/// market, and the currency rule.
fn properties(
    contents: Vec<Content>,
    currency: Option<String>,
    value: Option<Amount>,
    session: &Session,
) -> Properties {
    let unpriced = contents.iter().any(|c| c.price.is_none());
    let mut p = Properties::for_contents(contents, currency);
    // A sum with an unknown term would claim a value nobody paid.
    p.value = value.or(p.value.filter(|_| !unpriced));
    if let Some(handle) = &session.market_handle {
        p.market_handle.clone_from(handle);
    }
    p.market_id = session.market_id.unwrap_or(0);
    p.drop_money_without_supported_currency();
    p
}

fn event(
    name: &str,
    id: String,
    time: i64,
    user: User,
    properties: Properties,
    session: &Session,
) -> Event {
    Event {
        event: name.to_string(),
        event_time: time,
        event_id: id,
        user,
        properties,
        page: session.landing_url.clone().map(|url| Page {
            url: Some(url),
            referrer: None,
        }),
        limited_data_use: session.limited_data_use.then_some(true),
    }
}

/// Quantities per variant last seen for one cart, and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CartState {
    pub quantities: BTreeMap<u64, u64>,
    pub updated_at: Option<String>,
}

/// `carts/create`/`carts/update` → one AddToCart per variant whose quantity went up since the
/// last state, valued Σ price × added quantity. A payload older than the state (webhooks
/// arrive out of order) changes nothing.
pub fn cart_added(
    cart: &Cart,
    state: &CartState,
    session: &Session,
    now: i64,
) -> (Vec<Event>, CartState) {
    let Some(token) = cart
        .token
        .as_deref()
        .map(cart_key)
        .filter(|t| !t.is_empty())
    else {
        return (Vec::new(), state.clone());
    };
    if let (Some(new), Some(old)) = (&cart.updated_at, &state.updated_at) {
        if new < old {
            return (Vec::new(), state.clone());
        }
    }
    let mut quantities = BTreeMap::new();
    for line in &cart.line_items {
        if let Some(variant) = line.variant_id.or(line.product_id) {
            let total = quantities.entry(variant).or_insert(0u64);
            *total = total.saturating_add(line.quantity.unwrap_or(0));
        }
    }
    // Carts carry no currency of their own; their lines' `*_set` money does.
    let currency = cart
        .line_items
        .iter()
        .find_map(|l| line_price(l, None)?.currency);
    let time = event_time(&[cart.updated_at.as_deref()], now);
    let events = quantities
        .iter()
        .filter_map(|(&variant, &qty)| {
            let before = state.quantities.get(&variant).copied().unwrap_or(0);
            if qty <= before {
                return None;
            }
            let line = cart
                .line_items
                .iter()
                .find(|l| l.variant_id.or(l.product_id) == Some(variant))?;
            let item = content(line, qty - before, currency.as_deref(), None)?;
            Some(event(
                "AddToCart",
                format!("atc:{token}:{variant}:{qty}"),
                time,
                session_user(session),
                properties(vec![item], currency.clone(), None, session),
                session,
            ))
        })
        .collect();
    let next = CartState {
        quantities,
        updated_at: cart.updated_at.clone().or_else(|| state.updated_at.clone()),
    };
    (events, next)
}

/// Whether the checkout's total already includes a shipping charge (`total_price` above
/// subtotal, tax and duties): a rate was chosen, so the buyer is at the payment step.
fn shipping_charged(checkout: &Checkout) -> bool {
    let amount = |v: &Option<String>| v.as_deref().and_then(Amount::parse);
    // Without the tax figure a difference could be tax, so nothing is inferred.
    let (Some(total), Some(subtotal), Some(tax)) = (
        amount(&checkout.total_price),
        amount(&checkout.subtotal_price),
        amount(&checkout.total_tax),
    ) else {
        return false;
    };
    let before_shipping = subtotal + tax + amount(&checkout.total_duties).unwrap_or(Amount::ZERO);
    total > before_shipping
}

/// `checkouts/create` → InitiateCheckout; `checkouts/create|update` that reached the payment
/// step (shipping chosen or charged, or nothing to ship) → AddPaymentInfo. Both are valued at
/// the checkout's subtotal. Repeats carry the same event_ids, so the queue keeps one of each.
/// The checkout steps' (event name, event_id) keys, which the checkout pixel shares.
pub fn checkout_step_keys(token: &str) -> [(&'static str, String); 2] {
    [
        ("InitiateCheckout", format!("ic:{token}")),
        ("AddPaymentInfo", format!("api:{token}")),
    ]
}

pub fn checkout_events(
    checkout: &Checkout,
    created: bool,
    session: &Session,
    config: &MappingConfig,
    now: i64,
) -> Vec<Event> {
    let Some(token) = checkout.token.as_deref().filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    let user = Identity {
        email: checkout.email.as_deref(),
        phone: checkout.phone.as_deref(),
        locale: checkout.customer_locale.as_deref(),
        customer: checkout.customer.as_ref(),
        billing: checkout.billing_address.as_ref(),
        shipping: checkout.shipping_address.as_ref(),
    }
    .user(session, config.default_country.as_deref());
    // A checkout's amounts are in the currency the buyer checks out in.
    let currency = checkout
        .presentment_currency
        .as_deref()
        .or(checkout.currency.as_deref())
        .map(str::to_ascii_uppercase);
    let subtotal = checkout.subtotal_price.as_deref().and_then(Amount::parse);
    let props = || {
        properties(
            contents(
                &checkout.line_items,
                currency.as_deref(),
                currency.as_deref(),
            ),
            currency.clone(),
            subtotal,
            session,
        )
    };
    let [(started, started_id), (paid, paid_id)] = checkout_step_keys(token);
    let mut events = Vec::new();
    if created {
        events.push(event(
            started,
            started_id,
            event_time(
                &[
                    checkout.created_at.as_deref(),
                    checkout.updated_at.as_deref(),
                ],
                now,
            ),
            user.clone(),
            props(),
            session,
        ));
    }
    let nothing_to_ship = !checkout.line_items.is_empty()
        && checkout
            .line_items
            .iter()
            .all(|l| l.requires_shipping == Some(false));
    if !checkout.shipping_lines.is_empty() || nothing_to_ship || shipping_charged(checkout) {
        events.push(event(
            paid,
            paid_id,
            event_time(
                &[
                    checkout.updated_at.as_deref(),
                    checkout.created_at.as_deref(),
                ],
                now,
            ),
            user,
            props(),
            session,
        ));
    }
    events
}

/// Whether `source` matches one of the lowercase patterns (a trailing `*`: a prefix).
fn source_matches(patterns: &[String], source: &str) -> bool {
    let source = source.trim().to_ascii_lowercase();
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => source.starts_with(prefix),
        None => source == *p,
    })
}

/// Why an order is not sent, if it is not: the one place that decides.
pub fn skip_reason(order: &Order, config: &MappingConfig) -> Option<String> {
    let source = order.source_name.as_deref().unwrap_or("");
    if source_matches(&config.excluded_sources, source) {
        Some(format!(
            "source_name `{source}` is not an ad conversion (EXCLUDED_SOURCES)"
        ))
    } else if order.test == Some(true) && !config.send_test_orders {
        Some("test order (set SEND_TEST_ORDERS=true to send)".to_string())
    } else if order.cancelled_at.is_some() {
        Some("cancelled order".to_string())
    } else if order.id.is_none() {
        Some("order without an id".to_string())
    } else {
        None
    }
}

/// The order's session facts of its own: IP and UA from `client_details`/`browser_ip`, the
/// ttclid of its landing page, and what the cart attributes carried.
pub fn session_from_order(order: &Order) -> Session {
    let details = order.client_details.as_ref();
    let ip = details
        .and_then(|d| d.browser_ip.clone())
        .or_else(|| order.browser_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "0.0.0.0");
    Session {
        ip,
        user_agent: details
            .and_then(|d| d.user_agent.clone())
            .filter(|ua| !ua.is_empty()),
        ttclid: order.landing_site.as_deref().and_then(ttclid_from_url),
        ..session_from_attributes(&order.note_attributes)
    }
}

/// The buyer of an order as TikTok match keys (hashed PII, session ttp/ttclid/IP/UA).
pub fn order_user(order: &Order, session: &Session, config: &MappingConfig) -> User {
    Identity {
        email: order.email.as_deref().or(order.contact_email.as_deref()),
        phone: order.phone.as_deref(),
        locale: order.customer_locale.as_deref().or(order
            .client_details
            .as_ref()
            .and_then(|d| d.accept_language.as_deref())),
        customer: order.customer.as_ref(),
        billing: order.billing_address.as_ref(),
        shipping: order.shipping_address.as_ref(),
    }
    .user(session, config.default_country.as_deref())
}

/// The order total the buyer paid, with its currency.
fn order_total(order: &Order) -> Option<Money> {
    money(
        order.total_price_set.as_ref(),
        order.total_price.as_deref(),
        order.currency.as_deref(),
    )
}

/// `orders/create` → the purchase event (name from `PURCHASE_EVENT_NAME`), valued at the order
/// total, or why not.
pub fn purchase(
    order: &Order,
    session: &Session,
    config: &MappingConfig,
    now: i64,
) -> Result<Event, String> {
    if let Some(reason) = skip_reason(order, config) {
        return Err(reason);
    }
    let id = order.id.unwrap_or_default();
    let user = order_user(order, session, config);
    let total = order_total(order);
    let currency = total.as_ref().and_then(|t| t.currency.clone());
    let items = contents(
        &order.line_items,
        currency.as_deref(),
        order.currency.as_deref(),
    );
    let mut props = properties(items, currency, total.map(|t| t.amount), session);
    props.order_id = Some(id.to_string());
    Ok(event(
        &config.purchase_event_name,
        id.to_string(),
        event_time(
            &[order.processed_at.as_deref(), order.created_at.as_deref()],
            now,
        ),
        user,
        props,
        session,
    ))
}

/// What an order's Durable Object remembers for upsells: the order's lines as last seen, and
/// edits whose added lines were not priced yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub lines: BTreeMap<u64, StoredLine>,
    pub currency: Option<String>,
    pub pending_edits: BTreeMap<u64, Vec<(u64, u64)>>,
    /// When each pending edit was committed, for its event_time.
    #[serde(default)]
    pub edit_times: BTreeMap<u64, String>,
    /// The buyer's match keys (hashed PII only), for upsell events.
    pub user: Option<User>,
    pub session: Session,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLine {
    pub variant_id: Option<u64>,
    pub product_id: Option<u64>,
    #[serde(default)]
    pub sku: Option<String>,
    pub title: Option<String>,
    /// The unit price in the order's currency (`OrderState::currency`), if known in it.
    pub price: Option<String>,
}

impl OrderState {
    /// Remembers the lines, currency and buyer of an order payload (orders/create|paid|updated).
    pub fn absorb(&mut self, order: &Order, session: Session, config: &MappingConfig) {
        self.user = Some(order_user(order, &session, config));
        if let Some(c) = order_total(order).and_then(|t| t.currency) {
            self.currency = Some(c);
        }
        for line in &order.line_items {
            if let Some(id) = line.id {
                self.lines.insert(
                    id,
                    StoredLine {
                        variant_id: line.variant_id,
                        product_id: line.product_id,
                        sku: line.sku.clone(),
                        title: line.title.clone(),
                        price: line_price(line, order.currency.as_deref())
                            .filter(|p| p.currency == self.currency)
                            .map(|p| p.amount.to_string()),
                    },
                );
            }
        }
        self.session = merge_sessions(Some(session), std::mem::take(&mut self.session));
    }

    /// Records an edit's additions to be priced once the order's lines are known.
    pub fn add_edit(&mut self, edit: &OrderEdit) {
        if let Some(id) = edit.id {
            let lines = edit
                .line_items
                .additions
                .iter()
                .filter_map(|a| Some((a.id?, a.delta.unwrap_or(1))))
                .collect::<Vec<_>>();
            if !lines.is_empty() {
                self.pending_edits.insert(id, lines);
                if let Some(at) = edit
                    .committed_at
                    .clone()
                    .or_else(|| edit.created_at.clone())
                {
                    self.edit_times.insert(id, at);
                }
            }
        }
    }

    /// Upsell events for every pending edit whose added lines are all priced now, valued
    /// Σ price × added quantity; those edits leave the pending list.
    pub fn resolve_upsells(
        &mut self,
        order_id: u64,
        config: &MappingConfig,
        now: i64,
    ) -> Vec<Event> {
        let ready: Vec<u64> = self
            .pending_edits
            .iter()
            .filter(|(_, lines)| {
                lines
                    .iter()
                    .all(|(line_id, _)| self.lines.contains_key(line_id))
            })
            .map(|(&edit, _)| edit)
            .collect();
        ready
            .into_iter()
            .filter_map(|edit_id| {
                let lines = self.pending_edits.remove(&edit_id)?;
                let committed = self.edit_times.remove(&edit_id);
                let items: Vec<Content> = lines
                    .iter()
                    .filter_map(|(line_id, delta)| {
                        let l = self.lines.get(line_id)?;
                        let (content_id, content_type) =
                            item_key(l.variant_id, l.product_id, l.sku.as_deref())?;
                        Some(Content {
                            content_id,
                            content_type: content_type.to_string(),
                            content_name: l.title.clone(),
                            quantity: *delta,
                            price: l.price.as_deref().and_then(Amount::parse),
                        })
                    })
                    .collect();
                let mut props = properties(items, self.currency.clone(), None, &self.session);
                props.order_id = Some(order_id.to_string());
                let user = self
                    .user
                    .clone()
                    .unwrap_or_else(|| session_user(&self.session));
                Some(event(
                    &config.purchase_event_name,
                    format!("upsell:{edit_id}"),
                    event_time(&[committed.as_deref()], now),
                    user,
                    props,
                    &self.session,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha256_hex;
    use crate::shopify::models::OrderEdited;

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
        assert_eq!(u.ttclid.as_deref(), Some("E.C.P.landing123"));
        assert_eq!(u.ttp.as_deref(), Some("01JY68AFXQXP2232M0V748XS0P_.tt.1"));
        assert_eq!(u.ip.as_deref(), Some("198.51.100.7"));
        assert!(u.user_agent.as_deref().unwrap().contains("iPhone"));
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
                purchase(&order(patch), &s, &config(), NOW).unwrap_err(),
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
            e.user.ip.as_deref(),
            Some("198.51.100.7"),
            "browser_ip when client_details is null"
        );
        assert!(e.user.email.is_none() && e.user.phone.is_none() && e.user.external_id.is_none());
        assert!(e.user.user_agent.is_none() && e.user.ttclid.is_none());
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
            ttp: Some("ttp-1".into()),
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
        assert_eq!(events[0].user.ttp.as_deref(), Some("ttp-1"));

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
            (s.ttclid.as_deref(), s.market_handle.as_deref(), s.market_id),
            (Some("E.C.P.z"), Some("us"), None)
        );
        let merged = merge_sessions(
            Some(Session {
                ip: Some("1.1.1.1".into()),
                ..Session::default()
            }),
            s,
        );
        assert_eq!(
            (merged.ip.as_deref(), merged.ttclid.as_deref()),
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
            let o = order(
                serde_json::json!({"total_price_set": set("1000", unsupported, "1.50", "USD")}),
            );
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
}
