//! The first-party edge's decisions for one HTML navigation: which cookies to set (server-set
//! from the shop's own hostname, so Safari's ITP does not cap them), and which session facts
//! to remember in KV. Pure: the shell supplies the request facts, the clock and randomness.

use crate::config::Config;
use crate::consent::{tracking_allowed, Choice};
use crate::session::Session;
use crate::shopify::mapping::{cart_key, ttclid_from_url};

/// `_ttp` lives 13 months like TikTok's own (and under Chrome's 400-day ceiling).
pub const TTP_MAX_AGE_SECS: i64 = 395 * 24 * 3600;
/// `ttclid` lives 30 days: at least TikTok's 28-day click window.
pub const TTCLID_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// Browser-session markers: the session was stored / the cart was linked in this visit.
pub const SESSION_MARKER: &str = "_tt_s";
pub const CART_MARKER: &str = "_tt_c";
/// The visitor's marketing consent as the snippet reported it: `granted` or `denied`.
pub const CONSENT_COOKIE: &str = "_tt_consent";

/// What the Worker sees of one navigation.
#[derive(Debug, Clone, Default)]
pub struct Visit {
    pub url: String,
    pub ttp_cookie: Option<String>,
    pub ttclid_cookie: Option<String>,
    pub consent_cookie: Option<String>,
    pub session_marker: bool,
    pub cart_cookie: Option<String>,
    pub cart_marker: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub gpc: bool,
}

impl Visit {
    /// The Shopify cart token as a join key: without its `?key=` secret, and only when plausible.
    pub fn cart_token(&self) -> Option<&str> {
        self.cart_cookie
            .as_deref()
            .map(cart_key)
            .filter(|t| !t.is_empty() && plausible(t))
    }
}

/// What to do about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Complete `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// `(session id, session)` to store in KV.
    pub session: Option<(String, Session)>,
    /// `(cart token, session id)` to link in KV.
    pub cart_link: Option<(String, String)>,
}

/// A `_ttp` value in TikTok's current shape: a ULID (48-bit milliseconds, 80 random bits, in
/// Crockford base32) followed by `_.tt.1`.
pub fn new_ttp(now_ms: u64, random: [u8; 10]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut value: u128 = u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let ulid: String = (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (5 * i)) & 31) as usize] as char)
        .collect();
    format!("{ulid}_.tt.1")
}

fn cookie(name: &str, value: &str, max_age: Option<i64>, domain: Option<&str>) -> String {
    let mut c = format!(
        "{name}={}; SameSite=Lax; Secure; Path=/",
        crate::cookies::encode(value)
    );
    if let Some(d) = domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    if let Some(secs) = max_age {
        c.push_str(&format!("; Max-Age={secs}"));
    }
    c
}

/// Session ids of visitors who declined marketing (their session only remembers the refusal);
/// every other session id is the visitor's `_ttp`.
pub const DECLINED_SESSION_PREFIX: &str = "declined-";

/// The `_ttp` a session id stands for (a declined visitor's session has none).
pub fn ttp_of_session(sid: &str) -> Option<&str> {
    (!sid.starts_with(DECLINED_SESSION_PREFIX) && plausible(sid)).then_some(sid)
}

/// Cookie values TikTok hands out are short tokens; anything else is not echoed back.
pub fn plausible(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
}

/// Decides cookies and session writes for an HTML navigation. `fresh_ttp` is called only when
/// the visitor has no `_ttp` yet.
pub fn plan(visit: &Visit, config: &Config, fresh_ttp: impl FnOnce() -> String) -> Plan {
    plan_from(visit, config, fresh_ttp, false)
}

/// [`plan`]; `started` when the visitor's own page reported its consent (a browser running
/// the pixel, not a crawler): the session is kept at once, cookie or not.
fn plan_from(
    visit: &Visit,
    config: &Config,
    fresh_ttp: impl FnOnce() -> String,
    started: bool,
) -> Plan {
    let choice = Choice::from_cookie(visit.consent_cookie.as_deref());
    let consent = choice.map(Choice::marketing);
    let cart = visit.cart_token();
    if !tracking_allowed(consent, config.consent_default) {
        return declined_plan(cart, visit.cart_marker.as_deref(), fresh_ttp);
    }
    let domain = config.cookie_domain.as_deref();
    let existing = visit.ttp_cookie.clone().filter(|v| plausible(v));
    let is_new = existing.is_none();
    let ttp = existing.unwrap_or_else(fresh_ttp);
    let landed_ttclid = ttclid_from_url(&visit.url).filter(|v| plausible(v));
    let ttclid = landed_ttclid
        .clone()
        .or_else(|| visit.ttclid_cookie.clone().filter(|v| plausible(v)));

    // Refreshing on every navigation keeps the 13 months counting from the last visit.
    let mut set_cookies = vec![cookie("_ttp", &ttp, Some(TTP_MAX_AGE_SECS), domain)];
    if let Some(click) = &ttclid {
        set_cookies.push(cookie("ttclid", click, Some(TTCLID_MAX_AGE_SECS), domain));
    }

    // A request without our `_ttp` (crawlers, link previews, monitors, one-page bounces) gets
    // the cookie but no session record: the record is a KV write, the largest cost per page
    // view, and it is written on the first navigation that brings `_ttp` back (no marker yet),
    // which every visitor who reaches a checkout makes. An ad click (`ttclid` in the URL) is
    // kept from its landing page at once.
    let worth_keeping = started || !is_new || landed_ttclid.is_some();
    let session =
        (worth_keeping && (landed_ttclid.is_some() || !visit.session_marker)).then(|| {
            set_cookies.push(cookie(SESSION_MARKER, "1", None, None));
            let session = Session {
                ttp: Some(ttp.clone()),
                ttclid: ttclid.clone(),
                ip: visit.ip.clone(),
                user_agent: visit.user_agent.clone(),
                landing_url: Some(crate::text::cap(&visit.url, crate::text::MAX_URL).to_string()),
                marketing_allowed: consent,
                limited_data_use: visit.gpc || choice.is_some_and(Choice::limited_data_use),
                ..Session::default()
            };
            (ttp.clone(), session)
        });

    let cart_link = cart
        .filter(|t| session.is_some() || visit.cart_marker.as_deref() != Some(*t))
        .map(|t| {
            set_cookies.push(cookie(CART_MARKER, t, None, None));
            (t.to_string(), ttp.clone())
        });

    Plan {
        set_cookies,
        session,
        cart_link,
    }
}

/// A visitor who declined (or has not accepted where consent is required): no tracking cookie,
/// no identifiers kept. Only the refusal itself is remembered against the cart, so an order
/// from that cart is not sent either.
fn declined_plan(
    cart: Option<&str>,
    cart_marker: Option<&str>,
    fresh_id: impl FnOnce() -> String,
) -> Plan {
    let Some(cart) = cart.filter(|t| cart_marker != Some(*t)) else {
        return Plan::default();
    };
    let sid = format!("{DECLINED_SESSION_PREFIX}{}", fresh_id());
    Plan {
        set_cookies: vec![cookie(CART_MARKER, cart, None, None)],
        session: Some((sid.clone(), declined_session())),
        cart_link: Some((cart.to_string(), sid)),
    }
}

/// The session record of a visitor who declined marketing: the refusal and nothing else.
pub fn declined_session() -> Session {
    Session {
        marketing_allowed: Some(false),
        ..Session::default()
    }
}

/// What to do about a consent report: the consent cookie (and, on a refusal, the tracking
/// cookies expired), the session's stored consent updated, and on a refusal the session's
/// identifiers dropped and its cart linked to the refusal so that its order is not sent.
/// `stored` is the session record of the visitor's `_ttp`, if any.
pub fn consent_plan(
    visit: &Visit,
    choice: Choice,
    stored: Option<Session>,
    config: &Config,
    fresh_id: impl FnOnce() -> String,
) -> Plan {
    let mut set_cookies = consent_cookies(choice, config.cookie_domain.as_deref());
    let ttp = visit.ttp_cookie.clone().filter(|v| plausible(v));
    if choice != Choice::Denied && ttp.is_none() {
        // Tracking starts now (it waited for this choice): cookies and session as on a first
        // navigation, so the events that follow at once carry `_ttp`. `visit.url` is the page
        // the choice was made on.
        let consented = Visit {
            consent_cookie: Some(choice.as_str().to_string()),
            session_marker: false,
            ..visit.clone()
        };
        let mut started = plan_from(&consented, config, fresh_id, true);
        set_cookies.append(&mut started.set_cookies);
        started.set_cookies = set_cookies;
        return started;
    }
    if choice != Choice::Denied {
        let session = ttp.zip(stored).map(|(sid, mut session)| {
            session.marketing_allowed = Some(true);
            session.limited_data_use |= choice.limited_data_use();
            (sid, session)
        });
        return Plan {
            set_cookies,
            session,
            cart_link: None,
        };
    }
    let sid = ttp.unwrap_or_else(|| format!("{DECLINED_SESSION_PREFIX}{}", fresh_id()));
    let cart_link = visit.cart_token().map(|t| {
        set_cookies.push(cookie(CART_MARKER, t, None, None));
        (t.to_string(), sid.clone())
    });
    Plan {
        set_cookies,
        session: Some((sid, declined_session())),
        cart_link,
    }
}

/// `Set-Cookie` values answering a consent report: the choice itself (so the edge knows it on
/// the next navigation) and, on a refusal, the tracking cookies expired.
pub fn consent_cookies(choice: Choice, domain: Option<&str>) -> Vec<String> {
    let mut out = vec![cookie(
        CONSENT_COOKIE,
        choice.as_str(),
        Some(TTP_MAX_AGE_SECS),
        domain,
    )];
    if choice == Choice::Denied {
        for name in ["_ttp", "ttclid"] {
            out.push(cookie(name, "", Some(0), domain));
        }
        out.push(cookie(SESSION_MARKER, "", Some(0), None));
    }
    out
}

/// Whether a response is an HTML page worth cookies and injection.
pub fn is_html_navigation(method: &str, status: u16, content_type: Option<&str>) -> bool {
    method == "GET"
        && status == 200
        && content_type.is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::from_pairs as config;

    fn visit() -> Visit {
        Visit {
            url: "https://shop.example/products/mug".into(),
            ip: Some("203.0.113.9".into()),
            user_agent: Some("UA".into()),
            ..Visit::default()
        }
    }

    #[test]
    fn new_visitor_gets_ttp_and_the_session_when_the_cookie_comes_back() {
        let p = plan(&visit(), &config(&[]), || "NEWTTP_.tt.1".into());
        assert_eq!(
            p.set_cookies,
            ["_ttp=NEWTTP_.tt.1; SameSite=Lax; Secure; Path=/; Max-Age=34128000"],
            "no session marker: the next navigation writes the session"
        );
        assert!(p.session.is_none() && p.cart_link.is_none());
        let back = Visit {
            ttp_cookie: Some("NEWTTP_.tt.1".into()),
            ..visit()
        };
        let p = plan(&back, &config(&[]), || unreachable!());
        assert_eq!(
            p.set_cookies[1], "_tt_s=1; SameSite=Lax; Secure; Path=/",
            "the marker: one session write per browser session"
        );
        let (sid, s) = p.session.unwrap();
        assert_eq!(sid, "NEWTTP_.tt.1");
        assert_eq!(
            (s.ip.as_deref(), s.user_agent.as_deref()),
            (Some("203.0.113.9"), Some("UA"))
        );
        assert_eq!(
            s.landing_url.as_deref(),
            Some("https://shop.example/products/mug")
        );
    }

    #[test]
    fn existing_ttp_is_kept_and_refreshed_without_a_new_session() {
        let v = Visit {
            ttp_cookie: Some("01JY68AFXQXP2232M0V748XS0P_.tt.1".into()),
            session_marker: true,
            ..visit()
        };
        let p = plan(
            &v,
            &config(&[("COOKIE_DOMAIN", "shop.example")]),
            || unreachable!(),
        );
        assert_eq!(p.set_cookies, ["_ttp=01JY68AFXQXP2232M0V748XS0P_.tt.1; SameSite=Lax; Secure; Path=/; Domain=shop.example; Max-Age=34128000"]);
        assert!(p.session.is_none() && p.cart_link.is_none());
    }

    #[test]
    fn an_ad_click_without_cookies_is_kept_from_its_landing_page() {
        let v = Visit {
            url: "https://shop.example/products/mug?ttclid=E.C.P.first".into(),
            ..visit()
        };
        let p = plan(&v, &config(&[]), || "NEWTTP_.tt.1".into());
        let (sid, s) = p.session.unwrap();
        assert_eq!(sid, "NEWTTP_.tt.1");
        assert_eq!(s.ttclid.as_deref(), Some("E.C.P.first"));
        assert_eq!(s.landing_url.as_deref(), Some(v.url.as_str()));
    }

    #[test]
    fn ttclid_landing_sets_the_cookie_and_stores_the_session() {
        let v = Visit {
            url: "https://shop.example/?ttclid=E.C.P.abc%2B1&utm_source=tiktok".into(),
            ttp_cookie: Some("T_.tt.1".into()),
            session_marker: true,
            ..visit()
        };
        let p = plan(&v, &config(&[]), || unreachable!());
        assert_eq!(
            p.set_cookies[1],
            "ttclid=E.C.P.abc+1; SameSite=Lax; Secure; Path=/; Max-Age=2592000"
        );
        assert_eq!(p.session.unwrap().1.ttclid.as_deref(), Some("E.C.P.abc+1"));
    }

    #[test]
    fn cart_cookie_is_linked_once_per_token_without_its_key() {
        let v = Visit {
            ttp_cookie: Some("T_.tt.1".into()),
            session_marker: true,
            cart_cookie: Some("c1-abc?key=SECRET".into()),
            ..visit()
        };
        let p = plan(&v, &config(&[]), || unreachable!());
        assert_eq!(
            p.cart_link,
            Some(("c1-abc".to_string(), "T_.tt.1".to_string()))
        );
        assert!(p.set_cookies.iter().all(|c| !c.contains("SECRET")));
        let again = Visit {
            cart_marker: Some("c1-abc".into()),
            ..v
        };
        assert!(plan(&again, &config(&[]), || unreachable!())
            .cart_link
            .is_none());
    }

    #[test]
    fn consent_gates_everything() {
        let declined = Visit {
            consent_cookie: Some("denied".into()),
            ..visit()
        };
        assert_eq!(
            plan(&declined, &config(&[]), || unreachable!()),
            Plan::default()
        );
        let declined_with_cart = Visit {
            cart_cookie: Some("c1-abc?key=SECRET".into()),
            ttp_cookie: Some("T_.tt.1".into()),
            ..declined.clone()
        };
        let p = plan(&declined_with_cart, &config(&[]), || "R".into());
        assert_eq!(
            p.set_cookies,
            ["_tt_c=c1-abc; SameSite=Lax; Secure; Path=/"]
        );
        let (sid, session) = p.session.unwrap();
        assert_eq!(session, declined_session(), "the refusal and nothing else");
        assert_eq!(p.cart_link, Some(("c1-abc".to_string(), sid)));
        let opt_in_region = config(&[("CONSENT_DEFAULT", "denied")]);
        assert_eq!(
            plan(&visit(), &opt_in_region, || unreachable!()),
            Plan::default()
        );
        let granted = Visit {
            consent_cookie: Some("granted".into()),
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        };
        assert!(
            plan(&granted, &opt_in_region, || unreachable!())
                .session
                .unwrap()
                .1
                .marketing_allowed
                == Some(true)
        );
    }

    #[test]
    fn limited_consent_or_gpc_marks_the_session() {
        let limited = Visit {
            consent_cookie: Some("limited".into()),
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        };
        let s = plan(&limited, &config(&[]), || unreachable!())
            .session
            .unwrap()
            .1;
        assert!(s.limited_data_use && s.marketing_allowed == Some(true));
        let gpc = Visit {
            gpc: true,
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        };
        assert!(
            plan(&gpc, &config(&[]), || unreachable!())
                .session
                .unwrap()
                .1
                .limited_data_use
        );
    }

    #[test]
    fn consent_reports_update_or_forget_the_session() {
        let v = Visit {
            ttp_cookie: Some("T_.tt.1".into()),
            cart_cookie: Some("c1-abc?key=SECRET".into()),
            ..visit()
        };
        let stored = Session {
            ttp: Some("T_.tt.1".into()),
            ip: Some("203.0.113.9".into()),
            ..Session::default()
        };
        let granted = consent_plan(
            &v,
            Choice::Limited,
            Some(stored.clone()),
            &config(&[]),
            || unreachable!(),
        );
        let (sid, s) = granted.session.unwrap();
        assert_eq!(sid, "T_.tt.1");
        assert!(s.marketing_allowed == Some(true) && s.limited_data_use && s.ip.is_some());
        assert_eq!(granted.set_cookies.len(), 1);
        assert!(granted.cart_link.is_none());
        // Without `_ttp` yet, the report starts tracking, session and all: a page running
        // the pixel made it, so the session is not left for the cookie to come back.
        let fresh = consent_plan(&visit(), Choice::Granted, None, &config(&[]), || {
            "NEW_.tt.1".into()
        });
        assert_eq!(fresh.session.unwrap().0, "NEW_.tt.1");

        let denied = consent_plan(
            &v,
            Choice::Denied,
            Some(stored),
            &config(&[]),
            || unreachable!(),
        );
        assert_eq!(
            denied.session,
            Some(("T_.tt.1".to_string(), declined_session()))
        );
        assert_eq!(
            denied.cart_link,
            Some(("c1-abc".to_string(), "T_.tt.1".to_string()))
        );
        assert!(denied.set_cookies.iter().all(|c| !c.contains("SECRET")));

        let anonymous = Visit {
            ttp_cookie: None,
            ..v
        };
        let p = consent_plan(&anonymous, Choice::Denied, None, &config(&[]), || {
            "R".into()
        });
        assert_eq!(
            p.cart_link,
            Some(("c1-abc".to_string(), "declined-R".to_string()))
        );

        // Consent given where tracking waited for it: _ttp and the session start at once.
        let waiting = Visit {
            url: "https://shop.example/?ttclid=E.C.P.late".into(),
            ..anonymous
        };
        let opt_in = config(&[("CONSENT_DEFAULT", "denied")]);
        let p = consent_plan(&waiting, Choice::Granted, None, &opt_in, || {
            "NEW_.tt.1".into()
        });
        assert!(p.set_cookies[0].starts_with("_tt_consent=granted;"));
        assert!(p.set_cookies[1].starts_with("_ttp=NEW_.tt.1;"));
        assert!(p
            .set_cookies
            .iter()
            .any(|c| c.starts_with("ttclid=E.C.P.late;")));
        let (sid, s) = p.session.unwrap();
        assert_eq!(
            (sid.as_str(), s.marketing_allowed),
            ("NEW_.tt.1", Some(true))
        );
        assert_eq!(
            p.cart_link,
            Some(("c1-abc".to_string(), "NEW_.tt.1".to_string()))
        );
    }

    #[test]
    fn refusal_expires_tracking_cookies() {
        let c = consent_cookies(Choice::Denied, Some("shop.example"));
        assert_eq!(c[0], "_tt_consent=denied; SameSite=Lax; Secure; Path=/; Domain=shop.example; Max-Age=34128000");
        assert!(c[1].starts_with("_ttp=; ") && c[1].contains("Max-Age=0"));
        assert!(c[2].starts_with("ttclid=; ") && c[2].contains("Max-Age=0"));
        assert_eq!(consent_cookies(Choice::Granted, None).len(), 1);
    }

    #[test]
    fn hostile_cookie_values_are_not_echoed() {
        let v = Visit {
            ttp_cookie: Some("x\r\nSet-Cookie: evil=1".into()),
            ttclid_cookie: Some("a;b".into()),
            ..visit()
        };
        let p = plan(&v, &config(&[]), || "FRESH".into());
        assert!(p.set_cookies[0].starts_with("_ttp=FRESH;"));
        assert_eq!(p.set_cookies.len(), 1, "a fresh _ttp only");
        assert!(p
            .set_cookies
            .iter()
            .all(|c| !c.contains('\n') && !c.contains("evil")));
    }

    #[test]
    fn ttp_shape() {
        let t = new_ttp(1_700_000_000_000, [0xAB; 10]);
        assert_eq!(t.len(), 32);
        assert!(t.ends_with("_.tt.1"));
        assert!(t[..26]
            .bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)));
        assert_ne!(
            new_ttp(1_700_000_000_000, [0; 10]),
            new_ttp(1_700_000_000_000, [1; 10])
        );
        assert!(
            new_ttp(1, [0; 10]) < new_ttp(2, [0; 10]),
            "sortable by time"
        );
    }

    #[test]
    fn html_navigation_rule() {
        assert!(is_html_navigation(
            "GET",
            200,
            Some("text/html; charset=utf-8")
        ));
        assert!(!is_html_navigation("GET", 200, Some("application/json")));
        assert!(!is_html_navigation("POST", 200, Some("text/html")));
        assert!(!is_html_navigation("GET", 304, Some("text/html")));
        assert!(!is_html_navigation("GET", 200, None));
    }
}
