//! The parts of Shopify's webhook payloads the Worker uses. Every field is optional (real
//! payloads vary by API version, channel and the app's data-access level) and unknown fields are
//! ignored.
//!
//! Lenient where Shopify is inconsistent, strict where a wrong value would be sent on:
//! - Ids are `u64` (they exceed 2^53, so never `f64`) from a JSON integer or a numeric string;
//!   anything else (a float, which cannot be exact, or text) is no id.
//! - Money stays a decimal string until `money::Amount` turns it into a number; a JSON number
//!   (seen in the wild for `price`) is taken as its decimal text, never through arithmetic.
//! - An object that arrives as something else (`"shipping_address": []` on fresh checkouts) or
//!   with fields of the wrong type is absent rather than a reason to drop the whole webhook.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::json;
use crate::money::decimal_text;

// The lenient fields below read the field's JSON text as it came and decide from that: no
// `serde_json::Value` is built, and every nested type is parsed by the one `from_str` reader
// (through a `Value`, each nested type was compiled a second time for `Value`'s deserializer).

/// The field's JSON text, `None` for `null` or a missing field.
fn raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Option::<Box<RawValue>>::deserialize(d)
}

/// A Shopify id given as a JSON number or a numeric string.
pub(crate) fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(raw(d)?.and_then(|r| match json::string(r.get()) {
        Some(text) => text.trim().parse().ok(),
        None => r.get().parse().ok(),
    }))
}

/// A decimal amount given as a JSON string or number, kept as its text. Other JSON is no amount.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(raw(d)?.and_then(|r| decimal_text(r.get())))
}

/// A list that may also come as `null` (an empty list then).
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A nested object, or `None` when the field holds anything but a usable object.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(raw(d)?
        .filter(|r| r.get().starts_with('{'))
        .and_then(|r| serde_json::from_str(r.get()).ok()))
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Money {
    #[serde(default, deserialize_with = "decimal")]
    pub amount: Option<String>,
    pub currency_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MoneySet {
    #[serde(default, deserialize_with = "object")]
    pub shop_money: Option<Money>,
    #[serde(default, deserialize_with = "object")]
    pub presentment_money: Option<Money>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LineItem {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "id")]
    pub variant_id: Option<u64>,
    #[serde(default, deserialize_with = "id")]
    pub product_id: Option<u64>,
    pub title: Option<String>,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub quantity: Option<u64>,
    #[serde(default, deserialize_with = "decimal")]
    pub price: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub price_set: Option<MoneySet>,
    /// Carts: the unit price after the line's own discounts (the storefront's `final_price`).
    #[serde(default, deserialize_with = "decimal")]
    pub discounted_price: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub discounted_price_set: Option<MoneySet>,
    pub requires_shipping: Option<bool>,
}

/// `note_attributes` entries: `{name, value}` (orders, checkouts) or `{key, value}` (pixels).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NoteAttribute {
    #[serde(alias = "key")]
    pub name: Option<String>,
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Address {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Customer {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<u64>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub default_address: Option<Address>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientDetails {
    pub browser_ip: Option<String>,
    pub user_agent: Option<String>,
    pub accept_language: Option<String>,
}

/// `carts/create`, `carts/update`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Cart {
    pub token: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
    #[serde(default, deserialize_with = "list")]
    pub note_attributes: Vec<NoteAttribute>,
    pub updated_at: Option<String>,
}

/// `checkouts/create`, `checkouts/update`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Checkout {
    pub token: Option<String>,
    pub cart_token: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub currency: Option<String>,
    pub presentment_currency: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub total_price: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub subtotal_price: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub total_tax: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub total_duties: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
    #[serde(default, deserialize_with = "list")]
    pub shipping_lines: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "list")]
    pub note_attributes: Vec<NoteAttribute>,
    #[serde(default, deserialize_with = "object")]
    pub customer: Option<Customer>,
    #[serde(default, deserialize_with = "object")]
    pub billing_address: Option<Address>,
    #[serde(default, deserialize_with = "object")]
    pub shipping_address: Option<Address>,
    pub landing_site: Option<String>,
    pub source_name: Option<String>,
    pub customer_locale: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// `orders/create`, `orders/paid`, `orders/updated`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Order {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<u64>,
    pub email: Option<String>,
    pub contact_email: Option<String>,
    pub phone: Option<String>,
    pub cart_token: Option<String>,
    pub checkout_token: Option<String>,
    /// The shop's currency: the currency of the plain amount strings.
    pub currency: Option<String>,
    pub presentment_currency: Option<String>,
    #[serde(default, deserialize_with = "decimal")]
    pub total_price: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub total_price_set: Option<MoneySet>,
    #[serde(default, deserialize_with = "list")]
    pub line_items: Vec<LineItem>,
    #[serde(default, deserialize_with = "list")]
    pub note_attributes: Vec<NoteAttribute>,
    #[serde(default, deserialize_with = "object")]
    pub customer: Option<Customer>,
    #[serde(default, deserialize_with = "object")]
    pub billing_address: Option<Address>,
    #[serde(default, deserialize_with = "object")]
    pub shipping_address: Option<Address>,
    pub browser_ip: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub client_details: Option<ClientDetails>,
    pub landing_site: Option<String>,
    pub source_name: Option<String>,
    pub test: Option<bool>,
    pub cancelled_at: Option<String>,
    pub processed_at: Option<String>,
    pub created_at: Option<String>,
    pub customer_locale: Option<String>,
}

/// One added or removed line of an order edit: the line item id and the quantity change.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EditLine {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<u64>,
    pub delta: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EditLines {
    #[serde(default)]
    pub additions: Vec<EditLine>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderEdit {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<u64>,
    #[serde(default, deserialize_with = "id")]
    pub order_id: Option<u64>,
    #[serde(default)]
    pub line_items: EditLines,
    pub committed_at: Option<String>,
    pub created_at: Option<String>,
}

/// `orders/edited`: `{"order_edit": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrderEdited {
    pub order_edit: OrderEdit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_2_pow_53_are_exact_as_numbers_or_strings() {
        let o: Order = serde_json::from_str(
            r#"{"id": 9007199254740993, "line_items": [{"id": "18446744073709551615", "variant_id": 42001234567890123, "product_id": null}]}"#,
        )
        .unwrap();
        assert_eq!(o.id, Some(9_007_199_254_740_993));
        assert_eq!(o.line_items[0].id, Some(u64::MAX));
        assert_eq!(o.line_items[0].variant_id, Some(42_001_234_567_890_123));
        assert_eq!(o.line_items[0].product_id, None);
    }

    #[test]
    fn nulls_and_missing_fields_are_fine() {
        let o: Order = serde_json::from_str(r#"{"id": 1, "customer": null, "client_details": null, "line_items": [{}], "unknown": {"x": [1]}}"#).unwrap();
        assert!(o.customer.is_none() && o.client_details.is_none());
        let edit: OrderEdited = serde_json::from_str(r#"{"order_edit": {"id": 5, "order_id": 7, "line_items": {"additions": [{"id": 9, "delta": 2}], "removals": []}}}"#).unwrap();
        assert_eq!(edit.order_edit.line_items.additions[0].delta, Some(2));
    }

    #[test]
    fn lenient_where_shopify_is_inconsistent_strict_for_ids_and_money() {
        let c: Checkout = serde_json::from_str(
            r#"{"token": "t", "shipping_address": [], "billing_address": "", "customer": {"id": "5", "default_address": []}}"#,
        )
        .unwrap();
        assert!(c.shipping_address.is_none() && c.billing_address.is_none());
        assert_eq!(c.customer.unwrap().id, Some(5));
        let o: Order = serde_json::from_str(
            r#"{"id": 1, "total_price": 600, "total_price_set": [], "client_details": [],
                "line_items": [{"id": 2, "price": 600, "product_id": "7234590408817", "variant_id": 1.5e18,
                                "price_set": {"presentment_money": {"amount": 19.99, "currency_code": "EUR"}, "shop_money": []}}]}"#,
        )
        .unwrap();
        assert_eq!(o.total_price.as_deref(), Some("600"));
        assert!(o.total_price_set.is_none() && o.client_details.is_none());
        let nulls: Checkout = serde_json::from_str(
            r#"{"line_items": null, "shipping_lines": null, "note_attributes": null}"#,
        )
        .unwrap();
        assert!(nulls.line_items.is_empty() && nulls.shipping_lines.is_empty());
        let line = &o.line_items[0];
        assert_eq!(line.price.as_deref(), Some("600"));
        assert_eq!(line.product_id, Some(7_234_590_408_817));
        assert_eq!(line.variant_id, None, "a float id cannot be exact: no id");
        let set = line.price_set.as_ref().unwrap();
        assert_eq!(
            set.presentment_money.as_ref().unwrap().amount.as_deref(),
            Some("19.99")
        );
        assert!(set.shop_money.is_none());
        // Amount text that is not a decimal stays text here and is refused by `Amount::parse`.
        let bad: LineItem =
            serde_json::from_str(r#"{"price": "12,50", "discounted_price": true}"#).unwrap();
        assert_eq!(bad.price.as_deref(), Some("12,50"));
        assert!(crate::money::Amount::parse("12,50").is_none() && bad.discounted_price.is_none());
    }

    #[test]
    fn numbers_keep_their_digits_and_strings_their_escapes() {
        let line: LineItem = serde_json::from_str(
            r#"{"id": "12", "variant_id": " 7 ", "product_id": "7.0",
                "price": 1234567890123456.78, "discounted_price": "17.50"}"#,
        )
        .unwrap();
        assert_eq!(
            line.id,
            Some(12),
            "escapes resolved before the digits are read"
        );
        assert_eq!(line.variant_id, Some(7));
        assert_eq!(line.product_id, None, "a decimal point is no id");
        // Through f64 these digits would have become 1234567890123456.8.
        assert_eq!(line.price.as_deref(), Some("1234567890123456.78"));
        assert_eq!(line.discounted_price.as_deref(), Some("17.50"));
    }
}
