//! Marketing consent: the Customer Privacy API in the browser is the source of truth; the
//! Worker keeps the last reported choice per session and falls back to `CONSENT_DEFAULT`.

use crate::config::ConsentDefault;

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
}
