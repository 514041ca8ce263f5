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

mod cart;
mod checkout;
mod identity;
mod order;
#[cfg(test)]
mod tests;

pub use cart::{cart_added, cart_key, CartState};
pub use checkout::{checkout_events, checkout_step_keys};
pub use identity::{
    attribute, attributes, landing_click, order_user, session_from_attributes,
    session_from_checkout, session_from_order, session_user, ttclid_from_url,
};
pub use order::{purchase, skip_reason, OrderState, Skip, StoredLine};

use super::models::{LineItem, MoneySet};
use crate::config::Config;
use crate::money::Amount;
use crate::session::Session;
use crate::tiktok::{Content, Event, Page, Properties, RetryPolicy, User, MAX_EVENT_AGE_SECS};
use crate::urls::attribution_url;

/// Settings the mapping needs.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub purchase_event_name: String,
    pub send_test_orders: bool,
    pub default_country: Option<String>,
    /// Lowercase `source_name` patterns of orders that are not sent (see
    /// [`crate::config::DEFAULT_EXCLUDED_SOURCES`]).
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
        // Sessions stored before URLs kept only attribution parameters still hold whole ones.
        page: session
            .landing_url
            .as_deref()
            .and_then(attribution_url)
            .map(|url| Page {
                url: Some(url),
                referrer: None,
            }),
        limited_data_use: session.limited_data_use.then_some(true),
    }
}
