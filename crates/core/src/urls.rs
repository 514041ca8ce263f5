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
