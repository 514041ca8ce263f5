//! Shopify's checkout page URLs and the join key each one carries: the one table of them. The
//! edge reads it on navigations through the Worker, collect on the checkout pixel's page URL.
//! Sources: shared/research/shopify.md §2.0 and §4.6 (the `cn` token is the cart's, observed in
//! RudderStack's fixtures); shopify.dev changelog of 2017 (`/<shop id>/checkouts/<checkout
//! token>`); Shopify's checkout-sheet-kit tests (`/checkouts/c/<token>/thank-you`).

/// A token that links a checkout to the visitor's session in KV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinToken {
    /// A cart token (orders' and checkouts' `cart_token`).
    Cart(String),
    /// A checkout token (checkouts' `token`, orders' `checkout_token`).
    Checkout(String),
}

impl JoinToken {
    pub fn token(&self) -> &str {
        match self {
            JoinToken::Cart(t) | JoinToken::Checkout(t) => t,
        }
    }
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
