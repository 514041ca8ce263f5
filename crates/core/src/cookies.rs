//! Cookies on the wire: reading the visitor's `Cookie` header.

/// The value of cookie `name` in a `Cookie` request header, percent-decoded, if non-empty.
pub fn get(header: &str, name: &str) -> Option<String> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| crate::urls::percent_decode(v.trim(), false))
        .filter(|v| !v.is_empty())
}

/// Percent-encodes what a cookie value must not carry raw.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&'()*+-./:<=>?@[]^_`{|}~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
