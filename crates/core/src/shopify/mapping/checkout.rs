//! Checkouts: `checkouts/create|update` → InitiateCheckout and AddPaymentInfo.

use super::identity::Identity;
use super::{contents, event, event_time, properties, MappingConfig};
use crate::keys;
use crate::money::Amount;
use crate::session::Session;
use crate::shopify::models::Checkout;
use crate::tiktok::Event;

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

/// The checkout steps' (event name, event_id) keys, which the checkout pixel shares.
pub fn checkout_step_keys(token: &str) -> [(&'static str, String); 2] {
    [
        ("InitiateCheckout", keys::initiate_checkout_event(token)),
        ("AddPaymentInfo", keys::add_payment_info_event(token)),
    ]
}

/// `checkouts/create` → InitiateCheckout; `checkouts/create|update` that reached the payment
/// step (shipping chosen or charged, or nothing to ship) → AddPaymentInfo. Both are valued at
/// the checkout's subtotal. Repeats carry the same event_ids, so the queue keeps one of each.
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
    // One event per step, dated by the timestamp that step set (the other as a fallback).
    let [started, paid] = checkout_step_keys(token);
    let step = |(name, id): (&str, String), times: [Option<&str>; 2]| {
        event(
            name,
            id,
            event_time(&times, now),
            user.clone(),
            props(),
            session,
        )
    };
    let mut events = Vec::new();
    if created {
        events.push(step(
            started,
            [
                checkout.created_at.as_deref(),
                checkout.updated_at.as_deref(),
            ],
        ));
    }
    let nothing_to_ship = !checkout.line_items.is_empty()
        && checkout
            .line_items
            .iter()
            .all(|l| l.requires_shipping == Some(false));
    if !checkout.shipping_lines.is_empty() || nothing_to_ship || shipping_charged(checkout) {
        events.push(step(
            paid,
            [
                checkout.updated_at.as_deref(),
                checkout.created_at.as_deref(),
            ],
        ));
    }
    events
}
