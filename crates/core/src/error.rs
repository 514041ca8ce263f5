//! The core's one error type. Each variant wraps the specific error it comes from; its
//! `Display` tells the operator or caller what to do. The Worker shell turns an [`Error`]
//! into its HTTP answer in one place (`From<Error> for Failure`, `src/failure.rs`), from the
//! wrapped error's own text, so answers do not depend on this wording.

use std::fmt;

use crate::collect::CollectError;
use crate::config::{ConfigError, Problem};
use crate::queue::FilterError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Settings that all tracking needs are invalid: tracking is off (the storefront works).
    Config(ConfigError),
    /// A setting that one feature needs is missing or invalid: that feature is off
    /// ([`Problem::disables`]), the rest works.
    FeatureOff(Problem),
    /// A browser event `/tt/collect` does not take.
    Collect(CollectError),
    /// A signed webhook whose body cannot be used (it is parked for the operator).
    Unusable(Unusable),
    /// The operator's re-send filter cannot be applied, and why.
    Filter(FilterError),
}

impl From<FilterError> for Error {
    fn from(e: FilterError) -> Error {
        Error::Filter(e)
    }
}

/// Why a signed webhook's body cannot be used: the field's JSON path and what was expected
/// there, never the value found (the reason is logged, parked and shown to the operator).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Unusable(pub String);

impl Unusable {
    /// The same reason, with where it was found (`f` rewrites the text).
    pub fn explained(self, f: impl FnOnce(String) -> String) -> Unusable {
        Unusable(f(self.0))
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Unusable {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Unusable {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<Unusable> for String {
    fn from(u: Unusable) -> String {
        u.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SET: &str =
            "fix it under [vars] in wrangler.toml (secrets: `wrangler secret put NAME`) and deploy";
        match self {
            Error::Config(e) => write!(
                f,
                "{e}; tracking is off until each is fixed: {SET} (/tt/health lists them)"
            ),
            Error::FeatureOff(p) => write!(f, "{p}; {SET}"),
            Error::Collect(e) => write!(
                f,
                "{e}; send an event the storefront pixel sends (see assets/pixel.js)"
            ),
            Error::Unusable(reason) => write!(
                f,
                "webhook body not usable: {reason}; it is parked (see /tt/admin): check the \
                 subscription's topic and API version"
            ),
            Error::Filter(FilterError(reason)) => write!(f, "re-send filter not usable: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<Unusable> for Error {
    fn from(u: Unusable) -> Error {
        Error::Unusable(u)
    }
}

impl From<CollectError> for Error {
    fn from(e: CollectError) -> Error {
        Error::Collect(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, WEBHOOKS_FEATURE};

    /// Each message says what is wrong and what to do, and keeps the wrapped error's own text
    /// (the shell answers with that text).
    #[test]
    fn messages_say_what_to_do() {
        let config = Config::from_lookup(&|name| (name == "TIKTOK_PIXEL_ID").then(|| "x y".into()))
            .unwrap_err();
        let problem = Problem {
            name: "SHOPIFY_SHOP_DOMAIN",
            message: "must be set".into(),
            disables: Some(WEBHOOKS_FEATURE),
        };
        let cases = [
            (
                Error::from(config.clone()),
                config.to_string(),
                "/tt/health",
            ),
            (
                Error::FeatureOff(problem.clone()),
                problem.to_string(),
                "wrangler",
            ),
            (
                Error::from(CollectError {
                    code: "invalid_event",
                    message: "m".into(),
                }),
                "invalid_event: m".into(),
                "pixel",
            ),
            (
                Error::from(Unusable("id: missing".into())),
                "id: missing".into(),
                "/tt/admin",
            ),
            (
                Error::Filter(FilterError("state".into())),
                "state".into(),
                "re-send",
            ),
        ];
        for (error, own, advice) in cases {
            let text = error.to_string();
            assert!(text.contains(&own) && text.contains(advice), "{text}");
        }
    }

    #[test]
    fn unusable_reasons_are_explained_in_place() {
        let reason = Unusable("id: missing".into()).explained(|r| format!("{r} (in an order)"));
        assert_eq!(reason, "id: missing (in an order)");
        assert_eq!(String::from(reason), "id: missing (in an order)");
    }
}
