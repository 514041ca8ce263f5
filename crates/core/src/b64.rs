//! Base64 (RFC 4648) for the MACs the Worker writes: written here because the `base64`
//! crate's engines cost the wasm kilobytes for a few dozen bytes. Nothing is decoded: a tag
//! that arrives is compared with the one computed, encoded the same way (canonical base64 has
//! one text per byte string, so comparing texts is comparing bytes).

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The standard alphabet, padded (Shopify's `X-Shopify-Hmac-Sha256`).
pub fn standard(bytes: &[u8]) -> String {
    encode(bytes, STANDARD, true)
}

/// The URL-safe alphabet, unpadded (cookie values).
pub fn url_safe(bytes: &[u8]) -> String {
    encode(bytes, URL_SAFE, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    /// RFC 4648 §10.
    #[test]
    fn rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(standard(raw.as_bytes()), encoded, "{raw}");
            assert_eq!(
                url_safe(raw.as_bytes()),
                encoded.trim_end_matches('='),
                "{raw}"
            );
        }
        assert_eq!(standard(&[0xfb, 0xff]), "+/8=");
        assert_eq!(url_safe(&[0xfb, 0xff]), "-_8");
    }

    proptest! {
        /// The `base64` crate as the oracle, for any bytes.
        #[test]
        fn agrees_with_the_base64_crate(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let engine = base64::engine::general_purpose::STANDARD;
            prop_assert_eq!(standard(&bytes), engine.encode(&bytes));
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            prop_assert_eq!(url_safe(&bytes), engine.encode(&bytes));
        }
    }
}
