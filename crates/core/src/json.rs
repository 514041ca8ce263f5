//! JSON bodies as bytes. Everything is parsed from `&str`: serde_json compiles its parser and
//! every type's deserializer once per reader type, and `from_slice` beside `from_str` cost the
//! wasm 4.2 KB gzip (BENCHMARKS.md).

use serde::de::{DeserializeOwned, Error};

/// `body` parsed as `T`; a body that is not UTF-8 is not JSON.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => Err(serde_json::Error::custom("the body is not UTF-8")),
    }
}

/// The content of `raw`, a JSON value's text, when it is a string (escapes resolved).
pub fn string(raw: &str) -> Option<String> {
    raw.starts_with('"')
        .then(|| serde_json::from_str(raw).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_refuses_what_is_not_utf8() {
        assert_eq!(parse::<Vec<u8>>(b"[1, 2]").unwrap(), vec![1, 2]);
        let err = parse::<Vec<u8>>(b"[\"\xff\"]").unwrap_err();
        assert_eq!(err.to_string(), "the body is not UTF-8");
        assert!(parse::<Vec<u8>>(b"[1,").unwrap_err().is_eof());
    }

    #[test]
    fn a_raw_string_is_read_with_its_escapes() {
        assert_eq!(string(r#""a\u0062""#).as_deref(), Some("ab"));
        assert_eq!(string("12"), None);
        assert_eq!(string("\"unterminated"), None);
    }
}
