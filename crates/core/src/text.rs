//! Caps on untrusted strings that are stored or sent on: a visitor controls their user agent,
//! URLs and product names, and none of them may make a record or a TikTok call unbounded.

/// User agents: real ones stay under 400 characters, in-app browsers included.
pub const MAX_USER_AGENT: usize = 512;
/// Page, referrer and landing URLs.
pub const MAX_URL: usize = 2048;
/// Names and other free text (product names, echoed event names).
pub const MAX_TEXT: usize = 512;

/// `s` cut to at most `max` characters (never inside a character).
pub fn cap(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// [`cap`] for an owned optional string, reusing it when it already fits.
pub fn capped(s: Option<String>, max: usize) -> Option<String> {
    s.map(|s| match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_characters_not_bytes() {
        assert_eq!(cap("abc", 2), "ab");
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("éé€", 2), "éé");
        assert_eq!(capped(Some("x".repeat(600)), MAX_TEXT).unwrap().len(), 512);
        assert_eq!(capped(None, 1), None);
    }
}
