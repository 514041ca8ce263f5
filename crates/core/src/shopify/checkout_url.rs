//! Shopify's checkout page URLs and the join key each one carries: the one table of them. The
//! edge reads it on navigations through the Worker, collect on the checkout pixel's page URL.
//! Sources: shared/research/shopify.md §2.0 and §4.6 (the `cn` token is the cart's, observed in
//! RudderStack's fixtures); shopify.dev changelog of 2017 (`/<shop id>/checkouts/<checkout
//! token>`); Shopify's checkout-sheet-kit tests (`/checkouts/c/<token>/thank-you`).

/// A token that links a checkout or an order to the visitor's session in KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinToken {
    /// A cart token (orders' and checkouts' `cart_token`).
    Cart(String),
    /// A checkout token (checkouts' `token`, orders' `checkout_token`).
    Checkout(String),
    /// An ad click id (`ttclid`): the one the order's or checkout's `landing_site` (or its
    /// `_ttclid` note attribute) names. Claimed by one session only ([`claim_click`]).
    Click(String),
}

impl JoinToken {
    pub fn token(&self) -> &str {
        match self {
            JoinToken::Cart(t) | JoinToken::Checkout(t) | JoinToken::Click(t) => t,
        }
    }

    /// Its KV key.
    pub fn key(&self) -> String {
        match self {
            JoinToken::Cart(t) => crate::keys::cart(t),
            JoinToken::Checkout(t) => crate::keys::checkout(t),
            JoinToken::Click(t) => crate::keys::click(t),
        }
    }
}

/// What a click's link becomes when session `sid` lands with the click, given the value it
/// `held` (`None`: no link yet); `None` when it stays as it is. (A cart's or checkout's link
/// is simply overwritten: a refusal must win over what was linked before.) A click leads to the
/// one session that landed with it: a second, different session makes it [`AMBIGUOUS_CLICK`]
/// until it expires (an ad URL shared between people joins nobody's order), except that
/// refusals agree with one another (each page a declined visitor opens names a fresh refusal).
///
/// [`AMBIGUOUS_CLICK`]: crate::keys::AMBIGUOUS_CLICK
pub fn claim_click(held: Option<&str>, sid: &str) -> Option<String> {
    use crate::keys::{is_declined, AMBIGUOUS_CLICK};
    match held {
        None => Some(sid.to_string()),
        Some(held)
            if held == sid || held == AMBIGUOUS_CLICK || is_declined(held) && is_declined(sid) =>
        {
            None
        }
        Some(_) => Some(AMBIGUOUS_CLICK.to_string()),
    }
}

/// The session id a link's stored value leads to: none for an ambiguous click.
pub fn linked_session(value: String) -> Option<String> {
    (value != crate::keys::AMBIGUOUS_CLICK && !value.is_empty()).then_some(value)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Cart,
    Checkout,
}

/// Path segments before the token (`#` stands for the shop's numeric id), and what the token is.
/// Later segments (`/information`, `/thank-you`, …) and the query (`?key=`, `?locale=`) follow.
const FORMS: &[(&[&str], Kind)] = &[
    // One-page checkout (2024 on): the checkout of a cart, named by the cart's token.
    (&["checkouts", "cn"], Kind::Cart),
    // Checkout extensibility before one-page checkout: a cart's token too.
    (&["checkouts", "c"], Kind::Cart),
    // The abandoned-checkout recovery link (`abandoned_checkout_url`).
    (&["checkouts", "ac"], Kind::Cart),
    // checkout.liquid (2017 on): the checkout's own token under the shop's id.
    (&["#", "checkouts"], Kind::Checkout),
];

/// The join token in a checkout page's URL (absolute, or a path), if it is one.
pub fn join_token(url: &str) -> Option<JoinToken> {
    let path = if url.starts_with('/') {
        url
    } else {
        crate::urls::path_and_query(url)
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    FORMS.iter().find_map(|(prefix, kind)| {
        let token = *segments.get(prefix.len())?;
        let matches = prefix.iter().zip(&segments).all(|(want, seg)| match *want {
            "#" => !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()),
            want => want == *seg,
        });
        (matches && is_token(token)).then(|| match kind {
            Kind::Cart => JoinToken::Cart(token.to_string()),
            Kind::Checkout => JoinToken::Checkout(token.to_string()),
        })
    })
}

/// Tokens are opaque (hex, `c1-…`, base64); only their alphabet and length are checked, as
/// they become KV keys.
fn is_token(s: &str) -> bool {
    (8..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_leads_to_the_one_session_that_landed_with_it() {
        use crate::keys::AMBIGUOUS_CLICK as AMBIGUOUS;
        let cases: [(Option<&str>, &str, Option<&str>); 9] = [
            (None, "A_.tt.1", Some("A_.tt.1")),
            // The same visitor again (a reload, a second landing): nothing to write.
            (Some("A_.tt.1"), "A_.tt.1", None),
            // Someone else: the click is shared, it joins neither.
            (Some("A_.tt.1"), "B_.tt.1", Some(AMBIGUOUS)),
            (Some(AMBIGUOUS), "A_.tt.1", None),
            (Some(AMBIGUOUS), "declined-R", None),
            // A refusal and a consenting visitor are two people as well.
            (Some("declined-R"), "A_.tt.1", Some(AMBIGUOUS)),
            (Some("A_.tt.1"), "declined-R", Some(AMBIGUOUS)),
            (None, "declined-R", Some("declined-R")),
            // Refusals agree: each page a declined visitor opens names a fresh one.
            (Some("declined-R"), "declined-S", None),
        ];
        for (held, sid, becomes) in cases {
            assert_eq!(claim_click(held, sid).as_deref(), becomes, "{held:?} {sid}");
        }
        assert_eq!(linked_session(AMBIGUOUS.into()), None);
        assert_eq!(linked_session(String::new()), None);
        assert_eq!(linked_session("A_.tt.1".into()).as_deref(), Some("A_.tt.1"));
        assert!(
            !crate::edge::plausible(AMBIGUOUS),
            "no session id can be the marker"
        );
    }

    #[test]
    fn checkout_url_forms() {
        let cart = |t: &str| Some(JoinToken::Cart(t.to_string()));
        let checkout = |t: &str| Some(JoinToken::Checkout(t.to_string()));
        let b64 = "Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgzNUJUN1BTNjEzRFdRUFFQ";
        let hex = "9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e";
        let table: &[(&str, Option<JoinToken>)] = &[
            (
                &format!("https://shop.example/checkouts/cn/{b64}"),
                cart(b64),
            ),
            (
                &format!("https://shop.example/checkouts/cn/{b64}?key=abc&locale=en-US"),
                cart(b64),
            ),
            (&format!("/checkouts/cn/{b64}/information"), cart(b64)),
            (&format!("/checkouts/cn/{b64}/thank-you"), cart(b64)),
            (
                "/checkouts/c/c1-7a2abe82733a34e84aa472d57fb5c3c1/thank_you?order_id=1",
                cart("c1-7a2abe82733a34e84aa472d57fb5c3c1"),
            ),
            (
                &format!("/checkouts/ac/{hex}/recover?key=s3cret"),
                cart(hex),
            ),
            (
                &format!("https://shop.example/25442468/checkouts/{hex}"),
                checkout(hex),
            ),
            (
                &format!("/25442468/checkouts/{hex}?step=contact_information"),
                checkout(hex),
            ),
            (
                &format!("/25442468/checkouts/{hex}/thank_you"),
                checkout(hex),
            ),
            // Not checkout pages, or no usable token.
            ("https://shop.example/", None),
            ("/checkout", None),
            ("/checkouts", None),
            ("/checkouts/cn/", None),
            ("/checkouts/cn/short", None),
            (&format!("/checkouts/xx/{hex}"), None),
            (&format!("/shop/checkouts/{hex}"), None),
            (&format!("/products/checkouts/cn/{hex}"), None),
            (&format!("/cart?next=/checkouts/cn/{hex}"), None),
            (
                &format!("/cart?next=https://x.example/checkouts/cn/{hex}"),
                None,
            ),
            ("/checkouts/cn/abc%3Bdef%0D%0Aevil", None),
            (&format!("/checkouts/cn/{}", "a".repeat(257)), None),
            (&format!("/25442468/orders/{hex}"), None),
        ];
        for (url, want) in table {
            assert_eq!(&join_token(url), want, "{url}");
        }
    }
}
