//! The browsing session: what the edge remembers about a visitor (KV, 30 days), keyed by
//! session id ([`crate::keys::session`]), and read back when the visitor's cart, checkout or
//! order arrives by webhook. Its [`Browser`] is also what every TikTok event carries in `user`.

use serde::{Deserialize, Serialize};

/// The browser behind a visit, as TikTok matches it: the `_ttp` cookie, the ad click
/// (`ttclid`), the IP address and the user agent, all sent raw. Remembered in the [`Session`]
/// and sent in [`crate::tiktok::User`]; flat in both JSON forms (`"ttp"`, never
/// `"browser":{…}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Browser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Browser {
    /// Each identifier from `self`, or from `fallback` where `self` lacks it.
    pub fn or(self, fallback: Browser) -> Browser {
        Browser {
            ttp: self.ttp.or(fallback.ttp),
            ttclid: self.ttclid.or(fallback.ttclid),
            ip: self.ip.or(fallback.ip),
            user_agent: self.user_agent.or(fallback.user_agent),
        }
    }
}

/// What the edge remembered about a browsing session (stored in KV with a TTL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(flatten)]
    pub browser: Browser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market_id: Option<u64>,
    /// The visitor's marketing consent as last reported (`None`: unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing_allowed: Option<bool>,
    #[serde(default)]
    pub limited_data_use: bool,
}

/// Fills what `primary` lacks from `fallback`.
pub fn merge_sessions(primary: Option<Session>, fallback: Session) -> Session {
    let Some(p) = primary else { return fallback };
    Session {
        browser: p.browser.or(fallback.browser),
        landing_url: p.landing_url.or(fallback.landing_url),
        market_handle: p.market_handle.or(fallback.market_handle),
        market_id: p.market_id.or(fallback.market_id),
        marketing_allowed: p.marketing_allowed.or(fallback.marketing_allowed),
        limited_data_use: p.limited_data_use || fallback.limited_data_use,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as Workers deployed before [`Browser`] wrote it to KV: it must still read, and
    /// be written back in the same flat form.
    #[test]
    fn stored_records_read_and_write_flat() {
        let stored = r#"{"ttp":"01JY68AFXQXP2232M0V748XS0P_.tt.1","ttclid":"E.C.P.click","ip":"203.0.113.9","user_agent":"Mozilla/5.0","landing_url":"https://shop.example/?ttclid=E.C.P.click","market_handle":"us","market_id":9007199254740993,"marketing_allowed":true,"limited_data_use":false}"#;
        let session: Session = serde_json::from_str(stored).unwrap();
        let b = &session.browser;
        let browser = [&b.ttp, &b.ttclid, &b.ip, &b.user_agent].map(|v| v.as_deref());
        assert_eq!(
            browser,
            [
                Some("01JY68AFXQXP2232M0V748XS0P_.tt.1"),
                Some("E.C.P.click"),
                Some("203.0.113.9"),
                Some("Mozilla/5.0"),
            ]
        );
        assert_eq!(
            (session.market_handle.as_deref(), session.market_id),
            (Some("us"), Some(9_007_199_254_740_993))
        );
        assert_eq!(
            (session.marketing_allowed, session.limited_data_use),
            (Some(true), false)
        );
        assert!(session
            .landing_url
            .as_deref()
            .is_some_and(|u| u.ends_with("ttclid=E.C.P.click")));
        assert_eq!(serde_json::to_string(&session).unwrap(), stored);
        let declined: Session =
            serde_json::from_str(r#"{"marketing_allowed":false,"limited_data_use":false}"#)
                .unwrap();
        assert_eq!(declined.browser, Browser::default());
    }

    #[test]
    fn merging_fills_gaps_only() {
        let primary = Session {
            browser: Browser {
                ip: Some("1.1.1.1".into()),
                ..Browser::default()
            },
            ..Session::default()
        };
        let fallback = Session {
            browser: Browser {
                ip: Some("2.2.2.2".into()),
                ttclid: Some("E.C.P.x".into()),
                ..Browser::default()
            },
            market_id: Some(7),
            ..Session::default()
        };
        let merged = merge_sessions(Some(primary), fallback);
        assert_eq!(merged.browser.ip.as_deref(), Some("1.1.1.1"));
        assert_eq!(merged.browser.ttclid.as_deref(), Some("E.C.P.x"));
        assert_eq!(merged.market_id, Some(7));
    }
}
