//! What ties a copy of an event to a signed Shopify resource. A signed webhook copy can be bound
//! by its checkout token (the checkout's own, or the one the order names) and by the sessions
//! its join found (the cart attribute's session id, the sessions KV links the cart and checkout
//! tokens to); a browser copy proves the checkout token it carries (a secret of the buyer's
//! browser: the checkout pixel sends it) and the session whose `_ttp` cookie the request
//! carries (never a `_ttp` the sandbox claims in the body). A browser copy adds to a signed one
//! only when the two share one of these ([`Proof::binds`]); so does a refusal.
//!
//! Kept as SHA-256 digests, never the tokens themselves: queue rows outlive the checkout.

use serde::{Deserialize, Serialize};

/// Digests of checkout tokens and session ids, sorted and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Proof(Vec<String>);

impl Proof {
    /// The proof of `checkout_tokens` and `sessions` (blank ones are no proof).
    pub fn of<'a>(
        checkout_tokens: impl IntoIterator<Item = &'a str>,
        sessions: impl IntoIterator<Item = &'a str>,
    ) -> Proof {
        let checkouts = checkout_tokens
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(|t| digest("checkout", t));
        let sessions = sessions
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| digest("session", s));
        let mut digests: Vec<String> = checkouts.chain(sessions).collect();
        digests.sort();
        digests.dedup();
        Proof(digests)
    }

    /// Whether the two share a checkout token or a session.
    pub fn binds(&self, other: &Proof) -> bool {
        self.0.iter().any(|d| other.0.contains(d))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each digest on its own (a browser copy is filed under each).
    pub fn digests(&self) -> &[String] {
        &self.0
    }

    /// Whether `digest` is one of these.
    pub fn holds(&self, digest: &str) -> bool {
        self.0.iter().any(|d| d == digest)
    }

    /// As a queue column: the digests, comma-separated.
    pub fn to_column(&self) -> String {
        self.0.join(",")
    }

    pub fn from_column(text: &str) -> Proof {
        let mut digests: Vec<String> = text
            .split(',')
            .filter(|d| !d.is_empty())
            .map(String::from)
            .collect();
        digests.sort();
        digests.dedup();
        Proof(digests)
    }
}

/// 128 bits of SHA-256 over the kind and the value: enough to tell tokens apart, nothing to read.
fn digest(kind: &str, value: &str) -> String {
    let mut hex = crate::hash::sha256_hex(&format!("{kind}:{value}"));
    hex.truncate(32);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_through_a_shared_checkout_token_or_session() {
        let order = Proof::of(["chk-1"], ["01JYSESSION_.tt.1"]);
        let cases = [
            (Proof::of(["chk-1"], []), true),
            (Proof::of([], ["01JYSESSION_.tt.1"]), true),
            (Proof::of(["chk-2"], ["01JYOTHER_.tt.1"]), false),
            // A session id is not a checkout token, however it is spelt.
            (Proof::of(["01JYSESSION_.tt.1"], []), false),
            (Proof::of([""], [""]), false),
            (Proof::default(), false),
        ];
        for (browser, binds) in cases {
            assert_eq!(order.binds(&browser), binds, "{browser:?}");
            assert_eq!(browser.binds(&order), binds, "symmetric: {browser:?}");
        }
        assert!(!Proof::default().binds(&Proof::default()));
    }

    #[test]
    fn a_proof_survives_its_column_and_hides_its_tokens() {
        let proof = Proof::of(["chk-1", "chk-1"], ["s-1"]);
        assert_eq!(proof.digests().len(), 2);
        assert_eq!(Proof::from_column(&proof.to_column()), proof);
        assert_eq!(Proof::from_column(""), Proof::default());
        assert!(!proof.to_column().contains("chk-1"));
        assert!(proof.digests().iter().all(|d| d.len() == 32));
    }
}
