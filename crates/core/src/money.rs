//! Money as exact decimals. Shopify sends amounts as decimal strings; TikTok wants JSON numbers.
//! Sums and line totals are computed here in integer arithmetic and travel (to the Durable
//! Objects, in their storage) as decimal strings; only the payload for TikTok turns them into
//! numbers (`tiktok::Event::tiktok_json`), so `0.10 + 0.20` is `0.3`, never
//! `0.30000000000000004`, and no amount is rounded on its way through the Worker.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An exact decimal amount: `units / 10^scale`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Amount {
    units: i128,
    scale: u32,
}

const MAX_SCALE: u32 = 9;

impl Amount {
    pub const ZERO: Amount = Amount { units: 0, scale: 0 };

    /// Parses `"18.50"`, `"-3"`, `"0.333"`. Rejects exponents, blanks and more than 9 decimals.
    pub fn parse(s: &str) -> Option<Amount> {
        let s = s.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() && frac.is_empty()
            || !all_digits(whole)
            || !all_digits(frac)
            || frac.len() > MAX_SCALE as usize
            || whole.len() > 20
        {
            return None;
        }
        let units: i128 = format!("{whole}{frac}").parse().ok()?;
        Some(Amount {
            units: if negative { -units } else { units },
            scale: frac.len() as u32,
        })
    }

    // Arithmetic saturates: only absurd signed payloads (quantities near 2^64 at prices near
    // 10^20) get there, and a capped value beats a wrapped, negative one.
    fn rescaled(self, scale: u32) -> i128 {
        self.units.saturating_mul(10i128.pow(scale - self.scale))
    }

    pub fn times(self, quantity: u64) -> Amount {
        Amount {
            units: self.units.saturating_mul(i128::from(quantity)),
            scale: self.scale,
        }
    }

    pub fn is_negative(self) -> bool {
        self.units < 0
    }

    /// Whether the amount lies in `0..=max` (whole currency units).
    pub fn within(self, max: u64) -> bool {
        self.units >= 0 && self.units <= i128::from(max).saturating_mul(10i128.pow(self.scale))
    }

    /// The nearest `f64`, for the JSON number TikTok expects (the last step only).
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(0.0)
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;

    fn add(self, other: Amount) -> Amount {
        let scale = self.scale.max(other.scale);
        Amount {
            units: self.rescaled(scale).saturating_add(other.rescaled(scale)),
            scale,
        }
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        iter.fold(Amount::ZERO, |a, b| a + b)
    }
}

impl PartialEq for Amount {
    fn eq(&self, other: &Amount) -> bool {
        let scale = self.scale.max(other.scale);
        self.rescaled(scale) == other.rescaled(scale)
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Amount) -> Option<std::cmp::Ordering> {
        let scale = self.scale.max(other.scale);
        self.rescaled(scale).partial_cmp(&other.rescaled(scale))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = self.scale as usize
        )
    }
}

/// As a decimal string: exact through JSON, JavaScript and storage alike.
impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The decimal text of `raw`, a JSON value's text: a string's content, or a number's digits as
/// written (never through `f64`, which would change them); `None` for other JSON.
pub fn decimal_text(raw: &str) -> Option<String> {
    match raw.as_bytes().first() {
        Some(b'"') => crate::json::string(raw),
        Some(b'-' | b'0'..=b'9') => Some(raw.to_string()),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Accepts a JSON number or a decimal string (browser events send either).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        // The message never quotes the value: it may end up in a parked webhook's reason.
        decimal_text(raw.get())
            .and_then(|text| Amount::parse(&text))
            .ok_or_else(|| {
                serde::de::Error::custom("expected a decimal amount (digits, at most 9 decimals)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn sums_without_float_drift() {
        let total: Amount = ["0.10", "0.20"].iter().map(|s| a(s)).sum();
        assert_eq!(total.to_string(), "0.30");
        assert_eq!(total.to_f64(), 0.3);
        let many: Amount = std::iter::repeat_n(a("0.1"), 10).sum();
        assert_eq!(many.to_f64(), 1.0);
    }

    #[test]
    fn line_totals_and_mixed_scales() {
        assert_eq!(a("18.50").times(3).to_string(), "55.50");
        assert_eq!((a("1.5") + a("0.333")).to_string(), "1.833");
        assert_eq!((a("-2.50") + a("1")).to_string(), "-1.50");
        assert_eq!(a("18.50"), a("18.5"));
        assert_eq!(a("0.00"), a("0"));
        assert!(a("736.85") > a("729.95") && a("421.88") <= a("398") + a("23.88"));
        assert!(a("-1") < a("0.001") && a("10") > a("9.999"));
    }

    #[test]
    fn parse_table() {
        for good in [
            "0",
            "12",
            "12.",
            ".5",
            "-0.01",
            " 7.25 ",
            "99999999999999999999.999999999",
        ] {
            assert!(Amount::parse(good).is_some(), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "-",
            "1e3",
            "1,5",
            "abc",
            "1.2.3",
            "0.1234567891",
            "NaN",
        ] {
            assert!(Amount::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn deserialises_numbers_and_strings() {
        let v: Vec<Amount> = serde_json::from_str(r#"[18.5, "18.50", 3]"#).unwrap();
        assert_eq!(v[0], v[1]);
        assert_eq!(v[2].to_string(), "3");
        assert!(serde_json::from_str::<Amount>(r#""1e9""#).is_err());
    }

    #[test]
    fn serialises_exactly_as_a_string() {
        let big = a("99999999999999999999.999999999");
        let json = serde_json::to_string(&big).unwrap();
        assert_eq!(json, r#""99999999999999999999.999999999""#);
        assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), big);
        let err = serde_json::from_str::<Amount>(r#""a@b.example""#).unwrap_err();
        assert!(!err.to_string().contains("a@b"), "{err}");
    }

    #[test]
    fn bounds() {
        assert!(a("1000").within(1000) && a("999.999").within(1000) && a("0").within(0));
        assert!(!a("1000.01").within(1000) && !a("-0.01").within(1000));
        assert!(!a("99999999999999999999.999999999").within(u64::MAX / 10));
    }
}
