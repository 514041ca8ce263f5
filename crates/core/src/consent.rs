//! Marketing consent: the Customer Privacy API in the browser is the source of truth; the
//! snippet reports it to `/tt/consent`, the Worker keeps the last choice per visitor (cookie +
//! KV session) and falls back to `CONSENT_DEFAULT` while nothing was reported.

use crate::config::ConsentDefault;
use serde::Deserialize;

/// A visitor's reported choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Granted,
    Denied,
    /// Marketing allowed, but sale/sharing of data opted out (US state laws, GPC): events are
    /// sent with `limited_data_use`.
    Limited,
}

/// What the snippet (or custom pixel) reports: the Customer Privacy API's answers, each
/// `null` while the visitor has not chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub marketing: Option<bool>,
    #[serde(default)]
    pub sale_of_data: Option<bool>,
    /// The ad click the visitor arrived with, as the page read it at the moment of the choice
    /// (its own URL's `ttclid`, else its same-host referrer's): a landing that waited for
    /// consent. Taken as a landing's `?ttclid=` (`edge::Visit::landed_ttclid`).
    #[serde(default)]
    pub ttclid: Option<String>,
}

impl Report {
    /// The choice this report amounts to; `None` when the visitor has not chosen anything.
    pub fn choice(&self) -> Option<Choice> {
        match (self.marketing, self.sale_of_data) {
            (Some(false), _) => Some(Choice::Denied),
            (_, Some(false)) => Some(Choice::Limited),
            (Some(true), _) => Some(Choice::Granted),
            (None, _) => None,
        }
    }
}

impl Choice {
    /// The `_tt_consent` cookie value.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Granted => "granted",
            Choice::Denied => "denied",
            Choice::Limited => "limited",
        }
    }

    pub fn from_cookie(value: Option<&str>) -> Option<Choice> {
        match value? {
            "granted" => Some(Choice::Granted),
            "denied" => Some(Choice::Denied),
            "limited" => Some(Choice::Limited),
            _ => None,
        }
    }

    /// Marketing consent as sessions store it.
    pub fn marketing(self) -> bool {
        self != Choice::Denied
    }

    pub fn limited_data_use(self) -> bool {
        self == Choice::Limited
    }
}

/// Whether a session may be tracked: its reported choice, else the configured default.
pub fn tracking_allowed(reported: Option<bool>, default: ConsentDefault) -> bool {
    reported.unwrap_or(default == ConsentDefault::Allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_choice_wins_over_default() {
        assert!(tracking_allowed(None, ConsentDefault::Allowed));
        assert!(!tracking_allowed(None, ConsentDefault::Denied));
        assert!(!tracking_allowed(Some(false), ConsentDefault::Allowed));
        assert!(tracking_allowed(Some(true), ConsentDefault::Denied));
    }

    #[test]
    fn reports_become_choices() {
        let r = |marketing, sale_of_data| {
            Report {
                marketing,
                sale_of_data,
                ttclid: None,
            }
            .choice()
        };
        assert_eq!(r(Some(false), Some(true)), Some(Choice::Denied));
        assert_eq!(r(Some(false), Some(false)), Some(Choice::Denied));
        assert_eq!(r(Some(true), Some(false)), Some(Choice::Limited));
        assert_eq!(r(None, Some(false)), Some(Choice::Limited));
        assert_eq!(r(Some(true), None), Some(Choice::Granted));
        assert_eq!(r(Some(true), Some(true)), Some(Choice::Granted));
        assert_eq!(r(None, None), None);
    }

    #[test]
    fn cookie_round_trip() {
        for c in [Choice::Granted, Choice::Denied, Choice::Limited] {
            assert_eq!(Choice::from_cookie(Some(c.as_str())), Some(c));
        }
        assert_eq!(Choice::from_cookie(Some("yes")), None);
        assert_eq!(Choice::from_cookie(None), None);
        assert!(!Choice::Denied.marketing() && Choice::Limited.marketing());
        assert!(Choice::Limited.limited_data_use() && !Choice::Granted.limited_data_use());
    }
}
