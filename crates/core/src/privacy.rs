//! Privacy webhooks: what the Worker holds for each Shopify resource, so `customers/redact` and
//! `shop/redact` delete exactly that, and the payloads those topics carry.

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

#[cfg(test)]
mod tests {
    use super::*;

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
