//! URLs as the Worker meets them: WHATWG-serialised request URLs from the runtime (already
//! normalised, so splitting is enough) and the few absolute http(s) URLs in settings. Written
//! here instead of using the `url` crate, whose IDNA and Unicode tables were a fifth of the
//! wasm (BENCHMARKS.md); an international host in a setting must use its `xn--` form.

/// `scheme://host[:port]` of an absolute URL.
pub fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    &url[..end]
}

/// The path and query of an absolute URL (`/` when it has no path), without the fragment.
pub fn path_and_query(url: &str) -> &str {
    let rest = &url[origin_of(url).len()..];
    let rest = rest.split('#').next().unwrap_or("");
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split('#').next()?.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v, true))
    })
}

/// Decodes `%XX` escapes (exactly two hex digits; anything else stays as it is) and, in query
/// strings, `+` as a space. Invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(d)) => {
                out.push(d);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters attribution needs: TikTok's click id and the UTM set (Google
/// Analytics' nine). The one list of what a URL keeps when it is stored (KV sessions, queued
/// events) or sent to TikTok (`page.url`, `page.referrer`); every other parameter (`key`,
/// `token`, `email`, `phone`, a mail tool's subscriber id, …) is dropped.
pub const ATTRIBUTION_PARAMS: &[&str] = &[
    "ttclid",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "utm_id",
    "utm_source_platform",
    "utm_creative_format",
    "utm_marketing_tactic",
];

/// `url` as it may be kept or sent on: scheme, host, port and path, then only the
/// [`ATTRIBUTION_PARAMS`] (names exactly as listed) whose value looks like neither an email
/// (an `@`) nor a phone number ([`looks_like_phone`]); no credentials, no fragment. A path
/// with an `@` in it becomes `/`. At most [`crate::text::MAX_URL`] bytes: parameters that do
/// not fit are left out whole. `None` unless it is an absolute http(s) URL with a valid host
/// (of a length that fits).
pub fn attribution_url(url: &str) -> Option<String> {
    let (scheme, after) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host = authority.rsplit('@').next().unwrap_or("");
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !valid_host {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() || percent_decode(path, false).contains('@') {
        "/"
    } else {
        path
    };
    let max = crate::text::MAX_URL;
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if out.len() > max {
        return None;
    }
    let mut cut = path.len().min(max.saturating_sub(out.len()));
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&path[..cut]);
    let mut sep = '?';
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value, true);
        if !ATTRIBUTION_PARAMS.contains(&name)
            || value.contains('@')
            || looks_like_phone(&value)
            || out.len() + 1 + pair.len() > max
        {
            continue;
        }
        out.push(sep);
        out.push_str(pair);
        sep = '&';
    }
    Some(out)
}

/// A value written like a phone number: 7 to 15 digits (E.164's most) among only `+ - . ( ) /`
/// and spaces, with a leading `+` or some punctuation. A bare run of digits is an id (TikTok's
/// and Google's campaign ids are plain digits) and stays.
pub fn looks_like_phone(value: &str) -> bool {
    let v = value.trim();
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b" +-.()/".contains(&b))
        && (v.starts_with('+') || v.bytes().any(|b| !b.is_ascii_digit()))
}

/// An absolute http(s) URL: scheme, lowercased ASCII host, port unless the default, and the rest.
#[derive(Debug)]
pub struct HttpUrl<'a> {
    pub scheme: &'static str,
    pub host: String,
    pub port: Option<u16>,
    pub rest: &'a str,
}

pub fn split_http_url(v: &str) -> Result<HttpUrl<'_>, String> {
    let not_http = || "must be an http:// or https:// URL with a host".to_string();
    let (scheme, after) = v.trim().split_once("://").ok_or_else(not_http)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return Err(not_http()),
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return Err("must not contain credentials".to_string());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("has an invalid port `{p}`"))?;
            (h, Some(port))
        }
        _ => (authority, None),
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    if !valid_host {
        return Err(if host.is_ascii() {
            not_http()
        } else {
            "must use the ASCII (xn--) form of an international host name".to_string()
        });
    }
    let default_port = if scheme == "http" { 80 } else { 443 };
    Ok(HttpUrl {
        scheme,
        host: host.to_ascii_lowercase(),
        port: port.filter(|p| *p != default_port),
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_urls_split() {
        let u = "https://shop.example:8443/products/mug?variant=1&ttclid=E.C.P.a%2Bb+c";
        assert_eq!(origin_of(u), "https://shop.example:8443");
        assert_eq!(
            path_and_query(u),
            "/products/mug?variant=1&ttclid=E.C.P.a%2Bb+c"
        );
        assert_eq!(query_param(u, "ttclid").as_deref(), Some("E.C.P.a+b c"));
        assert_eq!(query_param(u, "missing"), None);
        assert_eq!(path_and_query("https://shop.example"), "/");
        assert_eq!(query_param("/p?flag", "flag").as_deref(), Some(""));
    }

    #[test]
    fn escapes_need_two_hex_digits() {
        assert_eq!(percent_decode("a%2Fb%+A%zz%4", false), "a/b%+A%zz%4");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%FF", false), "\u{FFFD}");
    }

    #[test]
    fn attribution_urls_keep_only_the_allowlist() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://shop.example/products/mug?variant=1&ttclid=E.C.P.a%2Bb&utm_source=tiktok#top",
                Some("https://shop.example/products/mug?ttclid=E.C.P.a%2Bb&utm_source=tiktok"),
            ),
            (
                "https://shop.example/?email=jane.doe%40example.com&phone=%2B15551234567&utm_campaign=spring",
                Some("https://shop.example/?utm_campaign=spring"),
            ),
            // The abandoned-checkout link: its token is the cart's join key, its key a secret.
            (
                "https://shop.example/checkouts/ac/c1-abc/recover?key=SECRET&locale=en",
                Some("https://shop.example/checkouts/ac/c1-abc/recover"),
            ),
            ("https://shop.example/account?token=t&key=k", Some("https://shop.example/account")),
            // Allowlisted names with personal values: dropped; plain ids stay.
            (
                "https://shop.example/?utm_term=jane%40example.com&utm_content=%2B44%2020%207946%200958&utm_id=1760364548960322",
                Some("https://shop.example/?utm_id=1760364548960322"),
            ),
            ("https://shop.example/?utm_term=555-123-4567", Some("https://shop.example/")),
            ("HTTPS://user:pw@Shop.Example:8443", Some("https://shop.example:8443/")),
            ("https://shop.example/pages/jane%40example.com?utm_source=x", Some("https://shop.example/?utm_source=x")),
            ("https://shop.example/p?UTM_SOURCE=x&utm_source", Some("https://shop.example/p?utm_source")),
            ("javascript:alert(1)", None),
            ("/relative?ttclid=x", None),
            ("https://bad host/", None),
            ("https:///path", None),
        ];
        for (url, want) in cases {
            assert_eq!(attribution_url(url).as_deref(), *want, "{url}");
        }
        let long = format!(
            "https://shop.example/?utm_source=x&utm_term={}",
            "a".repeat(3000)
        );
        assert_eq!(
            attribution_url(&long).as_deref(),
            Some("https://shop.example/?utm_source=x")
        );
        let long_path = format!("https://shop.example/{}", "p".repeat(3000));
        assert_eq!(
            attribution_url(&long_path).unwrap().len(),
            crate::text::MAX_URL
        );
        let wide_path = format!("https://shop.example/{}", "é".repeat(3000));
        assert!(attribution_url(&wide_path).unwrap().len() <= crate::text::MAX_URL);
    }

    #[test]
    fn phones_and_ids() {
        for phone in [
            "+15551234567",
            "555-123-4567",
            "(555) 123 4567",
            "+44 20 7946 0958",
        ] {
            assert!(looks_like_phone(phone), "{phone}");
        }
        for not in [
            "1760364548960322",
            "5551234567",
            "123",
            "spring-2026",
            "E.C.P.123456789",
        ] {
            assert!(!looks_like_phone(not), "{not}");
        }
    }

    #[test]
    fn settings_urls() {
        let u = split_http_url("HTTPS://Shop.Example:443/a?b").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.rest),
            ("https", "shop.example", None, "/a?b")
        );
        assert_eq!(
            split_http_url("http://127.0.0.1:8788").unwrap().port,
            Some(8788)
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@x",
            "https://x:99999",
            "nope",
            "https://bücher.example",
        ] {
            assert!(split_http_url(bad).is_err(), "{bad}");
        }
        assert!(split_http_url("https://bücher.example")
            .unwrap_err()
            .contains("xn--"));
    }
}
