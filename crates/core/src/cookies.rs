//! Cookies on the wire: reading the visitor's `Cookie` header.

use cookie::Cookie;

/// The value of cookie `name` in a `Cookie` request header, percent-decoded, if non-empty.
pub fn get(header: &str, name: &str) -> Option<String> {
    Cookie::split_parse_encoded(header.to_string())
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_cookie() {
        let h = "cart=c1-abc%3Fkey%3Dsecret; _ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1; ttclid=E.C.P.x%2By; empty=";
        assert_eq!(
            get(h, "_ttp").as_deref(),
            Some("01JY68AFXQXP2232M0V748XS0P_.tt.1")
        );
        assert_eq!(get(h, "ttclid").as_deref(), Some("E.C.P.x+y"));
        assert_eq!(get(h, "cart").as_deref(), Some("c1-abc?key=secret"));
        assert_eq!(get(h, "empty"), None);
        assert_eq!(get(h, "missing"), None);
        assert_eq!(get("", "_ttp"), None);
        assert_eq!(get(";;=;garbage", "_ttp"), None);
    }
}
