//! The protocol of the `ShopState` Durable Object (`src/shop_do.rs`), the one place its
//! caller (`src/shop.rs`) and the object name its operations. A request carries one
//! [`Call`] as a JSON line, then (for a webhook) the verified body as Shopify signed it, so
//! the object parses the body once and never a re-encoded copy; the object answers one
//! [`Answer`].

use serde::{Deserialize, Serialize};

use crate::error::Unusable;
use crate::privacy::Held;

/// An operation of a resource's `ShopState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// A verified webhook for this resource (its body follows the call's line): answered
    /// [`Answer::Done`] or [`Answer::Unusable`].
    Webhook(Delivery),
    /// Forget this resource: answered [`Answer::Redacted`].
    Redact,
}

/// What the object needs besides the body to take a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The object's name (`order:<id>`, …), registered so `shop/redact` can find it.
    pub resource: String,
    /// `X-Shopify-Topic` as received.
    pub topic: String,
    /// `X-Shopify-Webhook-Id` (empty when absent): deliveries seen before are dropped.
    pub webhook_id: String,
}

/// The object's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// What became of a webhook.
    Done(WebhookResult),
    /// Why a webhook's payload cannot be used (the Worker parks it).
    Unusable(Unusable),
    /// What the forgotten resource held elsewhere, for the caller to delete.
    Redacted(Held),
}

/// What became of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResult {
    pub duplicate: bool,
    pub queued: u32,
    pub skipped: Option<String>,
}

impl Call {
    /// The request body: this call on one line (JSON escapes every newline), then `body`.
    pub fn encode(&self, body: &str) -> String {
        let mut request = serde_json::to_string(self).unwrap_or_default();
        request.push('\n');
        request.push_str(body);
        request
    }

    /// A request body back into its call and the body that followed it.
    pub fn decode(request: &str) -> Result<(Call, &str), serde_json::Error> {
        let (line, body) = request.split_once('\n').unwrap_or((request, ""));
        Ok((serde_json::from_str(line)?, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_and_its_body_come_back_as_sent() {
        let call = Call::Webhook(Delivery {
            resource: "order:1".into(),
            topic: "orders/create\n{\"x\":1}".into(),
            webhook_id: "w\"1\u{2028}".into(),
        });
        for body in ["", "{\"id\":1}", "{\n  \"id\": 1\n}\n", "\n\n"] {
            let request = call.encode(body);
            assert_eq!(Call::decode(&request).unwrap(), (call.clone(), body));
        }
        assert_eq!(
            Call::decode(&Call::Redact.encode("")).unwrap(),
            (Call::Redact, "")
        );
        assert!(Call::decode("{\"Webhook\":{}}\n{}").is_err());
        assert!(Call::decode("").is_err());
    }

    #[test]
    fn answers_round_trip() {
        for answer in [
            Answer::Done(WebhookResult {
                duplicate: false,
                queued: 2,
                skipped: Some("test order".into()),
            }),
            Answer::Unusable(Unusable("line_items: expected an array".into())),
            Answer::Redacted(Held::default()),
        ] {
            let text = serde_json::to_string(&answer).unwrap();
            assert_eq!(serde_json::from_str::<Answer>(&text).unwrap(), answer);
        }
    }
}
