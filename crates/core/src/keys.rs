//! Every storage key and id format, in one place: KV keys (sessions, join links, registered
//! resources, parked webhooks, the SDK's last good copy, the queue's pause), `ShopState` names,
//! Durable Object storage keys, and the event_ids the pixel derives the same way.

/// Session ids of visitors who declined marketing (their session only remembers the refusal);
/// every other session id is the visitor's `_ttp`.
pub const DECLINED_PREFIX: &str = "declined-";
/// KV prefix of the `ShopState` names registered for `shop/redact`.
pub const RESOURCE_PREFIX: &str = "resource:";
/// KV prefix of parked webhooks.
pub const PARKED_PREFIX: &str = "parked:";
/// KV key of the queue's pause, as a shard last reported it (for the single pixel's settings;
/// each pixel of `TIKTOK_PIXELS` has its own: [`pause`]).
pub const PAUSE: &str = "queue:paused";

/// KV key of one pixel's pause (`pixels::Pixel::key`; `""`: [`PAUSE`]).
pub fn pause(pixel: &str) -> String {
    if pixel.is_empty() {
        PAUSE.to_string()
    } else {
        format!("{PAUSE}:{pixel}")
    }
}
/// KV key of the webhooks refused since the last accepted one (`refusals::Refused`).
pub const WEBHOOKS_REFUSED: &str = "webhooks:refused";
/// When a signed webhook was last accepted (ms since the epoch, to the hour).
pub const WEBHOOKS_ACCEPTED: &str = "webhooks:accepted";

/// Whether session id `sid` is a declined visitor's (it stands for no `_ttp`).
pub fn is_declined(sid: &str) -> bool {
    sid.starts_with(DECLINED_PREFIX)
}

/// A declined visitor's session id, from a fresh random part.
pub fn declined(fresh: &str) -> String {
    format!("{DECLINED_PREFIX}{fresh}")
}

/// KV key of a browsing session.
pub fn session(sid: &str) -> String {
    format!("session:{sid}")
}

/// `ShopState` name of a cart, and the KV key of its join link (the same string).
pub fn cart(token: &str) -> String {
    format!("cart:{token}")
}

/// `ShopState` name of a checkout, and the KV key of its join link (the same string).
pub fn checkout(token: &str) -> String {
    format!("checkout:{token}")
}

/// KV key of an ad click's join link: the `ttclid` an order's or checkout's `landing_site`
/// names, pointing at the session that landed with it (or at [`AMBIGUOUS_CLICK`]).
pub fn click(ttclid: &str) -> String {
    format!("click:{ttclid}")
}

/// The value of a click link that two sessions claimed (an ad URL shared between people): it
/// leads to neither. It has a space, which no session id has (`edge::plausible`).
pub const AMBIGUOUS_CLICK: &str = "ambiguous click";

/// `ShopState` name of an order.
pub fn order(id: u64) -> String {
    format!("order:{id}")
}

/// KV key registering `ShopState` `resource`.
pub fn resource(resource: &str) -> String {
    format!("{RESOURCE_PREFIX}{resource}")
}

/// The `ShopState` name a registration key stands for.
pub fn resource_of(key: &str) -> Option<&str> {
    key.strip_prefix(RESOURCE_PREFIX)
}

/// KV key of a parked webhook: by arrival time, so a listing is oldest first, then its digest
/// (`shopify::parked_digest`; the webhook id in keys written before parked webhooks were
/// deduplicated).
pub fn parked(received_at_ms: i64, digest: &str) -> String {
    format!("{PARKED_PREFIX}{received_at_ms}:{digest}")
}

/// The arrival time and digest a parked webhook's key names.
pub fn parked_of(key: &str) -> Option<(i64, &str)> {
    let (at, digest) = key.strip_prefix(PARKED_PREFIX)?.split_once(':')?;
    Some((at.parse().ok()?, digest))
}

/// KV key of the last good copy of TikTok's SDK fetched from `upstream`.
pub fn sdk(upstream: &str) -> String {
    format!("sdk:{upstream}")
}

/// `ShopState` storage key marking a delivery (`X-Shopify-Webhook-Id`) as seen.
pub fn webhook_seen(webhook_id: &str) -> String {
    format!("webhook:{webhook_id}")
}

/// event_id of the AddToCart that took a cart's line of `variant` to `quantity`.
pub fn add_to_cart_event(token: &str, variant: u64, quantity: u64) -> String {
    format!("atc:{token}:{variant}:{quantity}")
}

/// event_id of a checkout's InitiateCheckout.
pub fn initiate_checkout_event(token: &str) -> String {
    format!("ic:{token}")
}

/// event_id of a checkout's AddPaymentInfo.
pub fn add_payment_info_event(token: &str) -> String {
    format!("api:{token}")
}

/// event_id of an order's purchase: the order id, as the pixel's `checkout_completed` has it.
pub fn purchase_event(order_id: u64) -> String {
    order_id.to_string()
}

/// event_id of the purchase an order edit (a post-purchase upsell) added.
pub fn upsell_event(edit_id: u64) -> String {
    format!("upsell:{edit_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_stable() {
        // Stored keys outlive deployments, and the pixel derives the same event_ids.
        assert_eq!(session("abc"), "session:abc");
        assert_eq!(cart("c1"), "cart:c1");
        assert_eq!(checkout("k1"), "checkout:k1");
        assert_eq!(click("E.C.P.x"), "click:E.C.P.x");
        assert_eq!(order(9_007_199_254_740_993), "order:9007199254740993");
        assert_eq!(resource("order:1"), "resource:order:1");
        assert_eq!(resource_of("resource:cart:c1"), Some("cart:c1"));
        assert_eq!(resource_of("session:x"), None);
        assert_eq!(parked(5, "w1"), "parked:5:w1");
        assert_eq!(parked_of("parked:5:ab:c"), Some((5, "ab:c")));
        assert_eq!(parked_of("parked:x:ab"), None);
        assert_eq!(parked_of("session:5:ab"), None);
        assert_eq!(sdk("https://x/sdk.js"), "sdk:https://x/sdk.js");
        assert_eq!(webhook_seen("w1"), "webhook:w1");
        assert_eq!(add_to_cart_event("c1", 42, 3), "atc:c1:42:3");
        assert_eq!(initiate_checkout_event("k1"), "ic:k1");
        assert_eq!(add_payment_info_event("k1"), "api:k1");
        assert_eq!(purchase_event(7), "7");
        assert_eq!(upsell_event(8), "upsell:8");
        assert!(is_declined(&declined("R")) && !is_declined("ttp1"));
    }
}
