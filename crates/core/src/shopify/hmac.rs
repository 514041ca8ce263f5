//! Webhook authenticity: `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(secret, raw body)).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::b64;

/// Whether `header` signs `body` under any of `secrets` (current first, then the previous one
/// during a rotation). Constant time per secret: the computed tag, base64 as Shopify writes it,
/// is compared with `subtle`.
pub fn verify<S: AsRef<str>>(secrets: &[S], body: &[u8], header: Option<&str>) -> bool {
    let Some(given) = header.map(str::trim) else {
        return false;
    };
    if body.is_empty() {
        return false;
    }
    secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_ref().as_bytes()) else {
            return false;
        };
        mac.update(body);
        let expected = b64::standard(&mac.finalize().into_bytes());
        bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Public vectors from Shopify's own libraries (shared/research/shopify.md §1.3).
    #[test]
    fn shopify_library_vectors() {
        let cases: [(&str, &[u8], &str); 4] = [
            (
                "test_secret_key",
                br#"{"foo": "bar"}"#,
                "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
            ),
            (
                "7008c5f4da4718b9b45d26d3fcbbb157",
                br#"{"foo":"bar"}"#,
                "+R9TwYM4mbLTk3hEAOBkpA7zW2lc9vNFmVKs2u2jtyY=",
            ),
            (
                "secret",
                b"foo=anything",
                "yCGX/RrK4fcuNtr3ztk5tQGsOBjcAzHpGLdMUrbV8yI=",
            ),
            (
                "old_secret",
                b"foo=anything",
                "XqRcjrSv57VACn6apEO9znyu/wkN1VC7QxdSPwK3Hzs=",
            ),
        ];
        for (secret, body, header) in cases {
            assert!(verify(&[secret], body, Some(header)), "{secret}");
        }
    }

    #[test]
    fn rotation_accepts_previous_secret() {
        let header = Some("XqRcjrSv57VACn6apEO9znyu/wkN1VC7QxdSPwK3Hzs=");
        assert!(verify(
            &["new_secret", "old_secret"],
            b"foo=anything",
            header
        ));
        assert!(!verify(&["new_secret"], b"foo=anything", header));
    }

    #[test]
    fn refuses_forgeries() {
        let good = "yCGX/RrK4fcuNtr3ztk5tQGsOBjcAzHpGLdMUrbV8yI=";
        assert!(
            !verify(&["secret"], b"foo=anything!", Some(good)),
            "body changed"
        );
        assert!(
            !verify(&["secret"], b"foo=anything", None),
            "missing header"
        );
        assert!(!verify(&["secret"], b"foo=anything", Some("invalid_hmac")));
        assert!(!verify(
            &["secret"],
            b"foo=anything",
            Some("whoops_this_is_wrong")
        ));
        assert!(!verify(&["secret"], b"", Some(good)), "empty body");
        assert!(
            !verify::<&str>(&[], b"foo=anything", Some(good)),
            "no secret configured"
        );
        assert!(
            !verify(
                &["secret"],
                b"foo=anything",
                Some("yCGX/RrK4fcuNtr3ztk5tQ==")
            ),
            "short tag"
        );
    }
}
