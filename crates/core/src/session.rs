//! The browsing session: what the edge remembers about a visitor (KV, 30 days), keyed by
//! session id ([`crate::keys::session`]), and read back when the visitor's cart, checkout or
//! order arrives by webhook.

use serde::{Deserialize, Serialize};

/// What the edge remembered about a browsing session (stored in KV with a TTL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttclid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
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
        ttp: p.ttp.or(fallback.ttp),
        ttclid: p.ttclid.or(fallback.ttclid),
        ip: p.ip.or(fallback.ip),
        user_agent: p.user_agent.or(fallback.user_agent),
        landing_url: p.landing_url.or(fallback.landing_url),
        market_handle: p.market_handle.or(fallback.market_handle),
        market_id: p.market_id.or(fallback.market_id),
        marketing_allowed: p.marketing_allowed.or(fallback.marketing_allowed),
        limited_data_use: p.limited_data_use || fallback.limited_data_use,
    }
}
