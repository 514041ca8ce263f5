//! Shopify: webhook authenticity, payload models, topics, and the mapping to TikTok events.
//! Facts and sources: shared/research/shopify.md.

pub mod hmac;
pub mod mapping;
pub mod models;

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
