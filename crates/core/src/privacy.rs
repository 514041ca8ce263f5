//! Privacy webhooks: what the Worker holds for each Shopify resource, so `customers/redact` and
//! `shop/redact` delete exactly that, and the payloads those topics carry.

use crate::error::Unusable;
use crate::vec_map::VecSet;
use serde::{Deserialize, Serialize};

/// What a resource (cart, checkout, order) led the Worker to keep elsewhere: KV session records
/// and join links, and queued events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    #[serde(default)]
    pub sessions: VecSet<String>,
    #[serde(default)]
    pub carts: VecSet<String>,
    #[serde(default)]
    pub checkouts: VecSet<String>,
    /// Ad click ids (`ttclid`) whose KV link the resource's join read.
    #[serde(default)]
    pub clicks: VecSet<String>,
    /// (event name, event_id): the send queue's key.
    #[serde(default)]
    pub events: VecSet<(String, String)>,
}

impl Held {
    pub fn absorb(&mut self, other: Held) {
        self.sessions.extend(other.sessions);
        self.carts.extend(other.carts);
        self.checkouts.extend(other.checkouts);
        self.clicks.extend(other.clicks);
        self.events.extend(other.events);
    }

    /// Records a resource's session and join tokens (cart tokens without their `?key=`).
    pub fn note(
        &mut self,
        sid: Option<String>,
        cart: Option<&str>,
        checkout: Option<&str>,
        click: Option<&str>,
    ) {
        self.clicks.extend(click.map(String::from));
        self.sessions.extend(sid);
        self.carts.extend(
            cart.map(crate::shopify::mapping::cart_key)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
        self.checkouts
            .extend(checkout.filter(|t| !t.is_empty()).map(String::from));
    }

    pub fn is_empty(&self) -> bool {
        self == &Held::default()
    }
}

/// `customers/redact`: which orders to forget. The customer's own fields are never read.
#[derive(Debug, Deserialize)]
pub struct CustomersRedact {
    #[serde(default)]
    orders_to_redact: Vec<serde_json::Value>,
}

impl CustomersRedact {
    pub fn parse(body: &[u8]) -> Result<CustomersRedact, Unusable> {
        crate::shopify::parse_json(body).map_err(|unusable| {
            unusable.explained(|reason| format!("customers/redact payload is not usable: {reason}"))
        })
    }

    /// Order ids, exact (numbers above 2^53 included) whether sent as numbers or strings.
    pub fn order_ids(&self) -> Vec<u64> {
        self.orders_to_redact
            .iter()
            .filter_map(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_are_exact() {
        let r = CustomersRedact::parse(
            br#"{"shop_id":954889,"shop_domain":"x.myshopify.com","customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"orders_to_redact":[5512345678901234567,"299938",null]}"#,
        )
        .unwrap();
        assert_eq!(r.order_ids(), [5_512_345_678_901_234_567, 299_938]);
        assert!(CustomersRedact::parse(b"42").is_err());
        assert!(CustomersRedact::parse(b"{}")
            .unwrap()
            .order_ids()
            .is_empty());
    }

    #[test]
    fn absorb_unions() {
        let mut a = Held::default();
        assert!(a.is_empty());
        a.absorb(Held {
            carts: ["c1".to_string()].into_iter().collect(),
            events: [("AddToCart".to_string(), "atc:c1:1:1".to_string())]
                .into_iter()
                .collect(),
            ..Held::default()
        });
        a.absorb(Held {
            carts: ["c1".to_string(), "c2".to_string()].into_iter().collect(),
            ..Held::default()
        });
        assert_eq!(a.carts.len(), 2);
        assert_eq!(a.events.len(), 1);
        assert!(!a.is_empty());
        a.note(
            Some("sid".into()),
            Some("c3?key=SECRET"),
            Some(""),
            Some("E.C.P.x"),
        );
        assert!(a.carts.contains("c3") && a.sessions.contains("sid"));
        assert!(a.clicks.contains("E.C.P.x"));
        assert!(a.checkouts.is_empty());
    }
}
