//! Rate-limit keys of the public browser endpoints. One IPv4 address is one client; an IPv6
//! client gets a whole /64 (often more) from its provider and can rotate through it at will, so
//! the /64 is the client.

use std::net::IpAddr;

/// The key the shop-wide budget counts under (every call, whoever makes it).
pub const SHOP_KEY: &str = "shop";

/// The key a client's page views count their KV writes under (in the same per-client limiter
/// as the browser endpoints, a budget of its own).
pub fn page_key(ip: Option<&str>) -> String {
    format!("page:{}", client_key(ip))
}

/// The rate-limit key of the address in `CF-Connecting-IP`.
pub fn client_key(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => format!("ip4:{v4}"),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip4:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        // Without a usable address (never on Cloudflare) all such calls share one budget.
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_per_ipv4_address_and_per_ipv6_64() {
        assert_eq!(client_key(Some("203.0.113.9")), "ip4:203.0.113.9");
        assert_eq!(client_key(Some("::ffff:203.0.113.9")), "ip4:203.0.113.9");
        let a = client_key(Some("2001:db8:1:2::1"));
        assert_eq!(a, "ip6:2001:db8:1:2::/64");
        assert_eq!(client_key(Some("2001:0DB8:1:2:ffff:ffff:ffff:ffff")), a);
        assert_ne!(client_key(Some("2001:db8:1:3::1")), a);
        assert_eq!(client_key(Some("not an ip")), "unknown");
        assert_eq!(client_key(None), "unknown");
        assert_eq!(
            page_key(Some("2001:db8:1:2::9")),
            "page:ip6:2001:db8:1:2::/64"
        );
    }
}
