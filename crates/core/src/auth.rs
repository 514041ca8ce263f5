//! Secret comparison for the admin token: constant time, whatever the lengths.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in time that reveals neither the value nor its length
/// (both are hashed to 32 bytes first, then compared with `subtle`).
pub fn token_matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    header?.strip_prefix("Bearer ").map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_token() {
        assert!(token_matches("admin-token-123456", "admin-token-123456"));
        assert!(!token_matches("admin-token-123457", "admin-token-123456"));
        assert!(!token_matches("", "admin-token-123456"));
        assert!(!token_matches("admin-token-1234567", "admin-token-123456"));
        assert_eq!(bearer(Some("Bearer abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(None), None);
    }
}
