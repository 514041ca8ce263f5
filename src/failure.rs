//! The shell's one error type. A handler ends in its answer or a [`Failure`]; the router turns
//! a failure into its HTTP answer in one place (`respond::answer`). The core's errors become failures
//! in one place too (`From<Error>`), each with its status and the core's own text.

use tiktok_edge_core::queue::FilterError;
use tiktok_edge_core::Error;
use worker::Response;

pub enum Failure {
    /// The caller gets `{"error": code, "message": …}` with `status`.
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
    /// A payload that is well-formed but cannot be used (a signed webhook's is parked).
    Unusable(String),
    /// The runtime failed (KV, a Durable Object, serialisation): workers-rs answers 500.
    Runtime(worker::Error),
}

/// A handler's result.
pub type Outcome<T = Response> = std::result::Result<T, Failure>;

impl Failure {
    pub fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Failure {
        Failure::Refused {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::Config(e) => Failure::refused(503, "config_invalid", e.to_string()),
            Error::FeatureOff(problem) => {
                Failure::refused(503, "config_invalid", problem.to_string())
            }
            Error::Collect(e) => Failure::refused(400, e.code, e.message),
            Error::Unusable(reason) => Failure::Unusable(reason.into()),
            Error::Filter(FilterError(message)) => Failure::refused(400, "invalid_filter", message),
        }
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Failure {
        Failure::Runtime(e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Failure {
        Failure::Runtime(e.into())
    }
}
