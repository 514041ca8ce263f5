//! The admin token: compared in constant time, whatever the lengths; sent by scripts as
//! `Authorization: Bearer`, by a browser once through the sign-in form, which answers with a
//! short-lived session cookie (never the token itself, never in a URL).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The admin session cookie.
pub const SESSION_COOKIE: &str = "tt_admin";
/// How long a sign-in lasts.
pub const SESSION_SECS: i64 = 3600;

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

/// MAC of an admin session expiring at `expires`, keyed by the admin token: changing the token
/// ends every session.
fn session_mac(token: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("tiktok-edge admin session until {expires}").as_bytes());
    mac
}

/// A session value `<expiry>.<mac>` for a browser that signed in at `now_secs`.
pub fn session_value(token: &str, now_secs: i64) -> String {
    let expires = now_secs + SESSION_SECS;
    let mac = session_mac(token, expires).finalize().into_bytes();
    let mac = crate::b64::url_safe(&mac);
    format!("{expires}.{mac}")
}

/// Whether `value` is a session of `token` that has not expired at `now_secs`.
pub fn session_valid(value: &str, token: &str, now_secs: i64) -> bool {
    let Some((expires, mac)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    let expected = crate::b64::url_safe(&session_mac(token, expires).finalize().into_bytes());
    expires > now_secs
        && expires <= now_secs + SESSION_SECS
        && bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))
}

/// The `Set-Cookie` of a session: script-proof, never sent cross-site or over HTTP, for the
/// Worker's own paths only (`path` is the route prefix), gone after [`SESSION_SECS`].
pub fn session_cookie(value: &str, path: &str) -> String {
    format!(
        "{SESSION_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path={path}; Max-Age={SESSION_SECS}"
    )
}

/// The `token` field of the sign-in form's `application/x-www-form-urlencoded` body.
pub fn form_token(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    crate::urls::query_param(&format!("?{body}"), "token")
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

    #[test]
    fn sessions_are_bound_to_the_token_and_expire() {
        let token = "admin-token-123456";
        let v = session_value(token, 1_000);
        assert!(!v.contains(token));
        assert!(session_valid(&v, token, 1_000));
        assert!(session_valid(&v, token, 1_000 + SESSION_SECS - 1));
        assert!(!session_valid(&v, token, 1_000 + SESSION_SECS), "expired");
        assert!(
            !session_valid(&v, "admin-token-654321", 1_000),
            "token changed"
        );
        let (expires, mac) = v.split_once('.').unwrap();
        let longer = format!("{}.{mac}", expires.parse::<i64>().unwrap() + 1);
        assert!(!session_valid(&longer, token, 1_000), "expiry is signed");
        let far = session_value(token, 1_000_000);
        assert!(
            !session_valid(&far, token, 1_000),
            "no sessions from the future"
        );
        for junk in ["", ".", "1.", "x.y", "99999999999999999999.AA"] {
            assert!(!session_valid(junk, token, 1_000), "{junk:?}");
        }
        let cookie = session_cookie(&v, "/tt");
        for part in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/tt",
            "Max-Age=3600",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert_eq!(form_token(b"token=a%2Bb+c&x=1").as_deref(), Some("a+b c"));
        assert_eq!(form_token(b"other=1"), None);
    }
}
