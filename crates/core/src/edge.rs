//! The first-party edge's decisions for one HTML navigation: which cookies to set (server-set
//! from the shop's own hostname, so Safari's ITP does not cap them), and which session facts
//! to remember in KV. Pure: the shell supplies the request facts, the clock and randomness.

use crate::config::{Config, Secret};
use crate::consent::{tracking_allowed, Choice};
use crate::keys;
use crate::session::{Browser, Session};
use crate::shopify::checkout_url::{self, JoinToken};
use crate::shopify::mapping::{cart_key, ttclid_from_url};

/// `_ttp` lives 13 months like TikTok's own (and under Chrome's 400-day ceiling).
pub const TTP_MAX_AGE_SECS: i64 = 395 * 24 * 3600;
/// `ttclid` lives 30 days from the click: at least TikTok's 28-day click window.
pub const TTCLID_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// When the `ttclid` cookie's click happened (Unix seconds), so each refresh keeps the click's
/// expiry. A companion cookie, because the `ttclid` value must stay exactly what TikTok issued:
/// its SDK reads the cookie and the Events API matches the value.
pub const CLICK_COOKIE: &str = "_tt_click";
/// Browser-session markers: the session was stored / the cart was linked / the checkout page's
/// token was linked in this visit.
pub const SESSION_MARKER: &str = "_tt_s";
pub const CART_MARKER: &str = "_tt_c";
pub const CHECKOUT_MARKER: &str = "_tt_k";
/// Proof that the Worker issued (or adopted) the `_ttp` beside it ([`ttp_proof`]): a `_ttp`
/// without it keeps no session on its own. A companion cookie, because `_ttp`'s value must stay
/// what TikTok's SDK reads and sets.
pub const PROOF_COOKIE: &str = "_tt_p";
/// The visitor's marketing consent as the snippet reported it: `granted` or `denied`.
pub const CONSENT_COOKIE: &str = "_tt_consent";

/// What the Worker sees of the visitor in one request (a navigation, a collect or a consent
/// report): the one model of the visitor on the way in. The shell reads it off the request;
/// everything decided about it is decided here and in `collect`.
#[derive(Debug, Clone, Default)]
pub struct Visit {
    pub url: String,
    pub ttp_cookie: Option<String>,
    pub ttclid_cookie: Option<String>,
    pub consent_cookie: Option<String>,
    pub session_marker: bool,
    pub cart_cookie: Option<String>,
    pub cart_marker: Option<String>,
    pub checkout_marker: Option<String>,
    /// The `_tt_p` cookie.
    pub proof_cookie: Option<String>,
    /// The `_tt_click` cookie.
    pub click_cookie: Option<String>,
    /// The ad click a consent report names (`consent::Report::ttclid`); never on a navigation.
    pub reported_ttclid: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
    pub now_secs: i64,
    /// Sent from Shopify's custom-pixel sandbox (`Origin: null`), which has none of the shop's
    /// cookies: only then does collect take `ttp`/`ttclid` from the body.
    pub sandboxed: bool,
}

impl Visit {
    /// The visitor's choice as the `_tt_consent` cookie records it (decoded here only).
    pub fn consent(&self) -> Option<Choice> {
        Choice::from_cookie(self.consent_cookie.as_deref())
    }

    /// The Shopify cart token as a join key: without its `?key=` secret, and only when plausible.
    pub fn cart_token(&self) -> Option<&str> {
        self.cart_cookie
            .as_deref()
            .map(cart_key)
            .filter(|t| !t.is_empty() && plausible(t))
    }

    /// The ad click this request lands with: the URL's `?ttclid=`, else the click a consent
    /// report names; only a plausible cookie value (which also bounds its size).
    pub fn landed_ttclid(&self) -> Option<String> {
        ttclid_from_url(&self.url)
            .or_else(|| self.reported_ttclid.clone())
            .filter(|v| plausible(v))
    }

    /// The join token of the checkout page this navigation opens, unless it is the cart the
    /// `cart` cookie already links ("Buy it now", express buttons and cart permalinks check out
    /// a new cart and leave the cookie alone: this is how their checkouts find the visitor).
    pub fn checkout_token(&self) -> Option<JoinToken> {
        checkout_url::join_token(&self.url)
            .filter(|t| !matches!(t, JoinToken::Cart(cart) if self.cart_token() == Some(cart)))
    }

    /// The checkout page's token unless this browser session linked it already.
    fn checkout_to_link(&self) -> Option<JoinToken> {
        self.checkout_token()
            .filter(|t| self.checkout_marker.as_deref() != Some(t.token()))
    }

    /// Whether the `_tt_p` cookie proves `ttp` under one of the webhook secrets (the previous
    /// one too, during a rotation).
    fn proves(&self, ttp: &str, secrets: &[Secret]) -> bool {
        self.proof_cookie.as_deref().is_some_and(|given| {
            secrets
                .iter()
                .any(|s| crate::auth::token_matches(given, &ttp_proof(s.expose(), ttp)))
        })
    }

    /// When the click behind the `ttclid` cookie happened, while its 30 days last; `None` when
    /// the cookie's origin is unknown (set before `_tt_click` existed, or by someone else).
    fn clicked_at(&self) -> Option<i64> {
        let at: i64 = self.click_cookie.as_deref()?.parse().ok()?;
        (at <= self.now_secs && self.now_secs < at.saturating_add(TTCLID_MAX_AGE_SECS))
            .then_some(at)
    }
}

/// What to do about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Complete `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// `(session id, session)` to store in KV.
    pub session: Option<(String, Session)>,
    /// `(cart or checkout token, session id)` to link in KV.
    pub links: Vec<(JoinToken, String)>,
}

impl Plan {
    /// How many KV writes the plan makes.
    pub fn writes(&self) -> usize {
        usize::from(self.session.is_some()) + self.links.len()
    }

    /// The plan with only its first `n` writes (the session first, then the links), for a
    /// client whose budget covers no more.
    pub fn within(mut self, n: usize) -> Plan {
        if n == 0 {
            self.session = None;
        }
        let links = n.saturating_sub(usize::from(self.session.is_some()));
        self.links.truncate(links);
        self
    }
}

/// The `_tt_p` value proving `ttp`: HMAC-SHA256 under the webhook secret of a message no
/// webhook body can be (it starts with a label and a NUL), cut to 128 bits, which is never a
/// 256-bit Shopify signature either.
pub fn ttp_proof(secret: &str, ttp: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(b"tiktok-edge _ttp proof\0");
    mac.update(ttp.as_bytes());
    let tag = mac.finalize().into_bytes();
    crate::b64::url_safe(&tag[..16])
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

/// The `_ttp` a session id stands for (a declined visitor's session has none).
pub fn ttp_of_session(sid: &str) -> Option<&str> {
    (!keys::is_declined(sid) && plausible(sid)).then_some(sid)
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
    let choice = visit.consent();
    let consent = choice.map(Choice::marketing);
    let cart = visit.cart_token();
    if !tracking_allowed(consent, config.consent_default) {
        return declined_plan(visit, fresh_ttp);
    }
    let domain = config.cookie_domain.as_deref();
    let existing = visit.ttp_cookie.clone().filter(|v| plausible(v));
    let proven = existing
        .as_deref()
        .is_some_and(|t| visit.proves(t, &config.webhook_secrets));
    let ttp = existing.unwrap_or_else(fresh_ttp);
    let landed_ttclid = visit.landed_ttclid();
    let (ttclid, clicked_at) = match &landed_ttclid {
        Some(click) => (Some(click.clone()), Some(visit.now_secs)),
        None => (
            visit.ttclid_cookie.clone().filter(|v| plausible(v)),
            visit.clicked_at(),
        ),
    };

    // Refreshing on every navigation keeps the 13 months counting from the last visit. The
    // proof goes with it, for a `_ttp` the Worker made and for one it met (set by TikTok's
    // SDK, or before the proof existed), so both keep a session from the next navigation on.
    let mut set_cookies = vec![cookie("_ttp", &ttp, Some(TTP_MAX_AGE_SECS), domain)];
    if let Some(secret) = config.webhook_secrets.first() {
        let proof = ttp_proof(secret.expose(), &ttp);
        set_cookies.push(cookie(PROOF_COOKIE, &proof, Some(TTP_MAX_AGE_SECS), domain));
    }
    // The click's 30 days are not extended: each refresh (which undoes a script's 7-day cap
    // under ITP) ends where the click's cookie ends. A cookie of unknown age is left alone.
    if let (Some(click), Some(at)) = (&ttclid, clicked_at) {
        let left = at.saturating_add(TTCLID_MAX_AGE_SECS) - visit.now_secs;
        set_cookies.push(cookie("ttclid", click, Some(left), domain));
        set_cookies.push(cookie(CLICK_COOKIE, &at.to_string(), Some(left), domain));
    }

    // A request without a `_ttp` the Worker proved (crawlers, link previews, monitors, one-page
    // bounces, a `_ttp` made up by a script or a curl loop) gets the cookies but no session
    // record: the record is a KV write, the largest cost per page view, and it is written on
    // the first navigation that brings `_ttp` back with its proof (no marker yet), which every
    // visitor who reaches a checkout makes. An ad click (`ttclid` in the URL) is kept from its
    // landing page at once. Every write is also within the client's budget (the shell's).
    let worth_keeping = started || proven || landed_ttclid.is_some();
    let session =
        (worth_keeping && (landed_ttclid.is_some() || !visit.session_marker)).then(|| {
            set_cookies.push(cookie(SESSION_MARKER, "1", None, None));
            let session = Session {
                browser: Browser {
                    ttp: Some(ttp.clone()),
                    ttclid: ttclid.clone(),
                    ip: visit.ip.clone(),
                    user_agent: visit.user_agent.clone(),
                },
                landing_url: crate::urls::attribution_url(&visit.url),
                marketing_allowed: consent,
                limited_data_use: visit.gpc || choice.is_some_and(Choice::limited_data_use),
                ..Session::default()
            };
            (ttp.clone(), session)
        });

    let cart = cart.filter(|t| session.is_some() || visit.cart_marker.as_deref() != Some(*t));
    // The click leads to the session that landed with it, for the orders whose `landing_site`
    // names it and that nothing else joins (express wallets).
    let click = landed_ttclid.filter(|_| session.is_some());
    let mut links = click_link(click, &ttp);
    links.extend(join_links(
        cart,
        visit.checkout_to_link(),
        &ttp,
        &mut set_cookies,
    ));
    Plan {
        set_cookies,
        session,
        links,
    }
}

/// The cart and the checkout page's token (when given) linked to session `sid`; each is marked
/// so later navigations of this browser session do not link it again.
fn join_links(
    cart: Option<&str>,
    checkout: Option<JoinToken>,
    sid: &str,
    set_cookies: &mut Vec<String>,
) -> Vec<(JoinToken, String)> {
    let mut links = Vec::new();
    if let Some(cart) = cart {
        set_cookies.push(cookie(CART_MARKER, cart, None, None));
        links.push((JoinToken::Cart(cart.to_string()), sid.to_string()));
    }
    if let Some(checkout) = checkout {
        set_cookies.push(cookie(CHECKOUT_MARKER, checkout.token(), None, None));
        links.push((checkout, sid.to_string()));
    }
    links
}

/// The link of the ad click `ttclid` (when given) to session `sid`: written as
/// `checkout_url::claim_click` decides against what the link holds.
fn click_link(ttclid: Option<String>, sid: &str) -> Vec<(JoinToken, String)> {
    ttclid
        .map(|t| (JoinToken::Click(t), sid.to_string()))
        .into_iter()
        .collect()
}

/// A visitor who declined (or has not accepted where consent is required): no tracking cookie,
/// no identifiers kept. Only the refusal itself is remembered against the cart and the
/// checkout being opened, and, once the visitor said no (not while they have not chosen), the
/// ad click they land with, so no event of theirs is sent either.
fn declined_plan(visit: &Visit, fresh_id: impl FnOnce() -> String) -> Plan {
    let cart = visit
        .cart_token()
        .filter(|t| visit.cart_marker.as_deref() != Some(*t));
    let checkout = visit.checkout_to_link();
    let click = visit
        .landed_ttclid()
        .filter(|_| visit.consent() == Some(Choice::Denied));
    if cart.is_none() && checkout.is_none() && click.is_none() {
        return Plan::default();
    }
    let sid = keys::declined(&fresh_id());
    let mut set_cookies = Vec::new();
    let mut links = click_link(click, &sid);
    links.extend(join_links(cart, checkout, &sid, &mut set_cookies));
    Plan {
        set_cookies,
        session: Some((sid, declined_session())),
        links,
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
    let new_click = visit
        .landed_ttclid()
        .filter(|c| visit.ttclid_cookie.as_ref() != Some(c));
    if choice != Choice::Denied && (ttp.is_none() || new_click.is_some()) {
        // Tracking starts now (it waited for this choice): cookies and session as on a first
        // navigation, so the events that follow at once carry `_ttp`; the click the visitor
        // arrived with (the report's, or the URL of `visit.url`, the page the choice was made
        // on) as on its landing page.
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
            links: Vec::new(),
        };
    }
    let sid = ttp.unwrap_or_else(|| keys::declined(&fresh_id()));
    // A refusal is linked whatever was linked before: the links must now lead to it (a click
    // another session claimed becomes ambiguous, so it leads to neither).
    let mut links = click_link(visit.landed_ttclid(), &sid);
    links.extend(join_links(
        visit.cart_token(),
        visit.checkout_token(),
        &sid,
        &mut set_cookies,
    ));
    Plan {
        set_cookies,
        session: Some((sid, declined_session())),
        links,
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
        for name in ["_ttp", "ttclid", CLICK_COOKIE, PROOF_COOKIE] {
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

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 24 * 3600;

    fn visit() -> Visit {
        Visit {
            url: "https://shop.example/products/mug".into(),
            ip: Some("203.0.113.9".into()),
            user_agent: Some("UA".into()),
            now_secs: NOW,
            ..Visit::default()
        }
    }

    const SECRET: &str = "webhook-secret";

    /// Settings with a webhook secret, which keys the `_tt_p` proof.
    fn tracked() -> Config {
        config(&[
            ("SHOPIFY_WEBHOOK_SECRET", SECRET),
            ("SHOPIFY_SHOP_DOMAIN", "shop.myshopify.com"),
        ])
    }

    /// `v` bringing back its `_ttp` with the proof the Worker gave it.
    fn proven(v: Visit) -> Visit {
        let proof = ttp_proof(SECRET, v.ttp_cookie.as_deref().unwrap());
        Visit {
            proof_cookie: Some(proof),
            ..v
        }
    }

    fn cart_link(token: &str, sid: &str) -> Vec<(JoinToken, String)> {
        vec![(JoinToken::Cart(token.into()), sid.into())]
    }

    fn cookie_named<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }

    #[test]
    fn ttclid_keeps_the_expiry_of_its_click() {
        let landing = Visit {
            url: "https://shop.example/?ttclid=E.C.P.click".into(),
            ttclid_cookie: Some("E.C.P.older".into()),
            click_cookie: Some((NOW - 20 * DAY).to_string()),
            ..visit()
        };
        let p = plan(&landing, &config(&[]), || "T".into());
        let full = format!("Max-Age={}", 30 * DAY);
        assert!(cookie_named(&p, "ttclid")
            .is_some_and(|c| c.starts_with("ttclid=E.C.P.click;") && c.ends_with(&full)));
        assert_eq!(
            cookie_named(&p, CLICK_COOKIE),
            Some(format!("_tt_click={NOW}; SameSite=Lax; Secure; Path=/; {full}").as_str())
        );
        // Ten days later: refreshed with what is left of the click's 30 days, never more.
        let later = proven(Visit {
            url: "https://shop.example/products/mug".into(),
            ttp_cookie: Some("T_.tt.1".into()),
            ttclid_cookie: Some("E.C.P.click".into()),
            click_cookie: Some(NOW.to_string()),
            now_secs: NOW + 10 * DAY,
            ..visit()
        });
        let p = plan(&later, &tracked(), || "T".into());
        let left = format!("Max-Age={}", 20 * DAY);
        assert!(cookie_named(&p, "ttclid")
            .is_some_and(|c| c.starts_with("ttclid=E.C.P.click;") && c.ends_with(&left)));
        assert!(cookie_named(&p, CLICK_COOKIE)
            .is_some_and(|c| c.starts_with(&format!("_tt_click={NOW};")) && c.ends_with(&left)));
        assert_eq!(
            p.session.unwrap().1.browser.ttclid.as_deref(),
            Some("E.C.P.click")
        );
        // A click time that is over, in the future, unreadable or missing: not refreshed.
        for click in [
            Some((NOW - 30 * DAY).to_string()),
            Some((NOW + 60).to_string()),
            Some("soon".to_string()),
            None,
        ] {
            let v = Visit {
                ttclid_cookie: Some("E.C.P.click".into()),
                click_cookie: click.clone(),
                ..visit()
            };
            let p = plan(&v, &config(&[]), || "T".into());
            assert_eq!(cookie_named(&p, "ttclid"), None, "{click:?}");
            assert_eq!(cookie_named(&p, CLICK_COOKIE), None, "{click:?}");
        }
    }

    #[test]
    fn a_checkout_page_links_its_token_to_the_visitor_or_the_refusal() {
        let buy_now = "https://shop.example/checkouts/cn/Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz?key=k";
        let cn = JoinToken::Cart("Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz".into());
        let v = Visit {
            url: buy_now.into(),
            ttp_cookie: Some("T_.tt.1".into()),
            session_marker: true,
            cart_cookie: Some("c1-abc?key=SECRET".into()),
            cart_marker: Some("c1-abc".into()),
            ..visit()
        };
        let p = plan(&v, &config(&[]), || unreachable!());
        assert_eq!(p.links, vec![(cn.clone(), "T_.tt.1".to_string())]);
        // Linked once per browser session: its next page (a reload, the next step) links nothing.
        assert_eq!(
            cookie_named(&p, CHECKOUT_MARKER),
            Some("_tt_k=Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz; SameSite=Lax; Secure; Path=/")
        );
        let next_step = Visit {
            url: "https://shop.example/checkouts/cn/Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz/shipping"
                .into(),
            checkout_marker: Some("Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz".into()),
            ..v.clone()
        };
        let p = plan(&next_step, &config(&[]), || unreachable!());
        assert!(p.session.is_none() && p.links.is_empty());
        // Checking out the cookie's own cart: linked already.
        let own = Visit {
            url: "https://shop.example/checkouts/cn/c1-abc".into(),
            ..v.clone()
        };
        assert!(plan(&own, &config(&[]), || unreachable!()).links.is_empty());
        // The legacy form names the checkout itself.
        let legacy = Visit {
            url: "https://shop.example/25442468/checkouts/9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e".into(),
            ..v.clone()
        };
        assert_eq!(
            plan(&legacy, &config(&[]), || unreachable!()).links,
            vec![(
                JoinToken::Checkout("9f2b6c1d4e5a6b7c8d9e0f1a2b3c4d5e".into()),
                "T_.tt.1".to_string()
            )]
        );
        // A visitor who declined: the checkout is linked to a refusal, nothing else is kept.
        let declined = Visit {
            consent_cookie: Some("denied".into()),
            ttp_cookie: None,
            ..v
        };
        let p = plan(&declined, &config(&[]), || "R".into());
        assert_eq!(
            p.set_cookies,
            ["_tt_k=Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz; SameSite=Lax; Secure; Path=/"],
            "no tracking cookie, only the marker of the link"
        );
        assert_eq!(
            p.session,
            Some(("declined-R".to_string(), declined_session()))
        );
        assert_eq!(p.links, vec![(cn, "declined-R".to_string())]);
    }

    #[test]
    fn new_visitor_gets_ttp_and_the_session_when_the_cookie_comes_back() {
        let p = plan(&visit(), &tracked(), || "NEWTTP_.tt.1".into());
        let proof = ttp_proof(SECRET, "NEWTTP_.tt.1");
        assert_eq!(
            p.set_cookies,
            [
                "_ttp=NEWTTP_.tt.1; SameSite=Lax; Secure; Path=/; Max-Age=34128000".to_string(),
                format!("_tt_p={proof}; SameSite=Lax; Secure; Path=/; Max-Age=34128000"),
            ],
            "no session marker: the next navigation writes the session"
        );
        assert!(p.session.is_none() && p.links.is_empty());
        let back = proven(Visit {
            ttp_cookie: Some("NEWTTP_.tt.1".into()),
            ..visit()
        });
        let p = plan(&back, &tracked(), || unreachable!());
        assert_eq!(
            p.set_cookies[2], "_tt_s=1; SameSite=Lax; Secure; Path=/",
            "the marker: one session write per browser session"
        );
        let (sid, s) = p.session.unwrap();
        assert_eq!(sid, "NEWTTP_.tt.1");
        assert_eq!(
            (s.browser.ip.as_deref(), s.browser.user_agent.as_deref()),
            (Some("203.0.113.9"), Some("UA"))
        );
        assert_eq!(
            s.landing_url.as_deref(),
            Some("https://shop.example/products/mug")
        );
    }

    #[test]
    fn a_ttp_the_worker_did_not_prove_keeps_no_session_until_it_comes_back_proven() {
        // Made up by a curl loop, or set by TikTok's SDK or before the proof existed: the same.
        let met = Visit {
            ttp_cookie: Some("01JY68AFXQXP2232M0V748XS0P_.tt.1".into()),
            ..visit()
        };
        let forged = [
            None,
            Some("forged".to_string()),
            Some(ttp_proof(SECRET, "other_.tt.1")),
        ];
        for proof in forged {
            let v = Visit {
                proof_cookie: proof.clone(),
                ..met.clone()
            };
            let p = plan(&v, &tracked(), || unreachable!());
            assert_eq!(p.session, None, "{proof:?}");
            let adopted = format!(
                "_tt_p={}; SameSite=Lax; Secure; Path=/; Max-Age=34128000",
                ttp_proof(SECRET, "01JY68AFXQXP2232M0V748XS0P_.tt.1")
            );
            assert_eq!(
                cookie_named(&p, PROOF_COOKIE),
                Some(adopted.as_str()),
                "adopted: proven from the next navigation on"
            );
        }
        let p = plan(&proven(met.clone()), &tracked(), || unreachable!());
        assert_eq!(p.session.unwrap().0, "01JY68AFXQXP2232M0V748XS0P_.tt.1");
        // During a rotation the previous secret's proof still counts.
        let rotated = config(&[
            ("SHOPIFY_WEBHOOK_SECRET", "new-secret"),
            ("SHOPIFY_WEBHOOK_SECRET_PREVIOUS", SECRET),
            ("SHOPIFY_SHOP_DOMAIN", "shop.myshopify.com"),
        ]);
        let p = plan(&proven(met.clone()), &rotated, || unreachable!());
        assert!(p.session.is_some());
        // Without a webhook secret nothing can join a session, and nothing is proven.
        let p = plan(&proven(met), &config(&[]), || unreachable!());
        assert_eq!(p.session, None);
    }

    #[test]
    fn a_plan_within_a_budget_keeps_its_first_writes() {
        let v = proven(Visit {
            url: "https://shop.example/checkouts/cn/Z2NwLXVzLWVhc3QxOjAxSkJaTUVRSjgz".into(),
            ttp_cookie: Some("T_.tt.1".into()),
            cart_cookie: Some("c1-abc?key=SECRET".into()),
            ..visit()
        });
        let p = plan(&v, &tracked(), || unreachable!());
        assert_eq!(p.writes(), 3, "the session, the cart and the checkout page");
        assert_eq!(p.clone().within(3), p);
        let two = p.clone().within(2);
        assert!(two.session.is_some() && two.links == cart_link("c1-abc", "T_.tt.1"));
        assert_eq!(two.set_cookies, p.set_cookies);
        assert_eq!(p.clone().within(1).writes(), 1);
        assert_eq!(p.within(0).writes(), 0);
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
        assert!(p.session.is_none() && p.links.is_empty());
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
        assert_eq!(s.browser.ttclid.as_deref(), Some("E.C.P.first"));
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
        assert_eq!(
            p.session.unwrap().1.browser.ttclid.as_deref(),
            Some("E.C.P.abc+1")
        );
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
        assert_eq!(p.links, cart_link("c1-abc", "T_.tt.1"));
        assert!(p.set_cookies.iter().all(|c| !c.contains("SECRET")));
        let again = Visit {
            cart_marker: Some("c1-abc".into()),
            ..v
        };
        assert!(plan(&again, &config(&[]), || unreachable!())
            .links
            .is_empty());
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
        assert_eq!(p.links, cart_link("c1-abc", &sid));
        let opt_in_region = config(&[
            ("CONSENT_DEFAULT", "denied"),
            ("SHOPIFY_WEBHOOK_SECRET", SECRET),
            ("SHOPIFY_SHOP_DOMAIN", "shop.myshopify.com"),
        ]);
        assert_eq!(
            plan(&visit(), &opt_in_region, || unreachable!()),
            Plan::default()
        );
        let granted = proven(Visit {
            consent_cookie: Some("granted".into()),
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        });
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
        let limited = proven(Visit {
            consent_cookie: Some("limited".into()),
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        });
        let s = plan(&limited, &tracked(), || unreachable!())
            .session
            .unwrap()
            .1;
        assert!(s.limited_data_use && s.marketing_allowed == Some(true));
        let gpc = proven(Visit {
            gpc: true,
            ttp_cookie: Some("T_.tt.1".into()),
            ..visit()
        });
        assert!(
            plan(&gpc, &tracked(), || unreachable!())
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
            browser: Browser {
                ttp: Some("T_.tt.1".into()),
                ip: Some("203.0.113.9".into()),
                ..Browser::default()
            },
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
        assert!(s.marketing_allowed == Some(true) && s.limited_data_use && s.browser.ip.is_some());
        assert_eq!(granted.set_cookies.len(), 1);
        assert!(granted.links.is_empty());
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
        assert_eq!(denied.links, cart_link("c1-abc", "T_.tt.1"));
        assert!(denied.set_cookies.iter().all(|c| !c.contains("SECRET")));

        let anonymous = Visit {
            ttp_cookie: None,
            ..v
        };
        let p = consent_plan(&anonymous, Choice::Denied, None, &config(&[]), || {
            "R".into()
        });
        assert_eq!(p.links, cart_link("c1-abc", "declined-R"));

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
        let mut links = click_link(Some("E.C.P.late".into()), "NEW_.tt.1");
        links.extend(cart_link("c1-abc", "NEW_.tt.1"));
        assert_eq!(p.links, links);
    }

    #[test]
    fn a_click_reported_with_late_consent_is_kept_as_on_its_landing_page() {
        let opt_in = config(&[
            ("CONSENT_DEFAULT", "denied"),
            ("SHOPIFY_WEBHOOK_SECRET", SECRET),
            ("SHOPIFY_SHOP_DOMAIN", "shop.myshopify.com"),
        ]);
        // The landing and the second page, before the choice: nothing set, nothing written.
        let landing = Visit {
            url: "https://shop.example/products/mug?ttclid=E.C.P.late".into(),
            ..visit()
        };
        assert_eq!(plan(&landing, &opt_in, || unreachable!()), Plan::default());
        // Accepting on the second page: the Referer names no click, the report does.
        let second = Visit {
            url: "https://shop.example/products/cap".into(),
            reported_ttclid: Some("E.C.P.late".into()),
            ..visit()
        };
        let p = consent_plan(&second, Choice::Granted, None, &opt_in, || {
            "NEW_.tt.1".into()
        });
        let full = format!("Max-Age={}", 30 * DAY);
        assert!(cookie_named(&p, "ttclid")
            .is_some_and(|c| c.starts_with("ttclid=E.C.P.late;") && c.ends_with(&full)));
        assert!(cookie_named(&p, CLICK_COOKIE)
            .is_some_and(|c| c.starts_with(&format!("_tt_click={NOW};"))));
        let (sid, s) = p.session.clone().unwrap();
        assert_eq!(
            (sid.as_str(), s.browser.ttclid.as_deref()),
            ("NEW_.tt.1", Some("E.C.P.late"))
        );
        assert_eq!(p.links, click_link(Some("E.C.P.late".into()), "NEW_.tt.1"));
        assert_eq!(p.within(1).links, Vec::new(), "the session first");

        // A visitor tracked already (a `_ttp` from an earlier choice) who reports a new click:
        // kept as a landing too; the click the cookie holds already changes nothing.
        let tracked_before = Visit {
            ttp_cookie: Some("T_.tt.1".into()),
            ..second.clone()
        };
        let p = consent_plan(
            &tracked_before,
            Choice::Granted,
            None,
            &opt_in,
            || unreachable!(),
        );
        assert_eq!(
            p.session.unwrap().1.browser.ttclid.as_deref(),
            Some("E.C.P.late")
        );
        assert_eq!(p.links, click_link(Some("E.C.P.late".into()), "T_.tt.1"));
        let known = Visit {
            ttclid_cookie: Some("E.C.P.late".into()),
            ..tracked_before
        };
        let p = consent_plan(&known, Choice::Granted, None, &opt_in, || unreachable!());
        assert_eq!((p.session, p.links), (None, Vec::new()));

        // A reported value no cookie could hold is no click: a fresh `_ttp`, nothing else.
        for forged in ["a;b".to_string(), "x".repeat(513), String::new()] {
            let v = Visit {
                reported_ttclid: Some(forged.clone()),
                ..second.clone()
            };
            let p = consent_plan(&v, Choice::Granted, None, &opt_in, || "NEW_.tt.1".into());
            assert_eq!(cookie_named(&p, "ttclid"), None, "{forged:?}");
            assert!(p.links.is_empty(), "{forged:?}");
            assert_eq!(p.session.unwrap().1.browser.ttclid, None);
        }
    }

    #[test]
    fn a_landing_links_its_click_to_the_session_or_to_a_refusal() {
        let landing = Visit {
            url: "https://shop.example/products/mug?ttclid=E.C.P.ad".into(),
            ..visit()
        };
        let p = plan(&landing, &tracked(), || "NEW_.tt.1".into());
        assert_eq!(p.links, click_link(Some("E.C.P.ad".into()), "NEW_.tt.1"));
        assert_eq!(p.writes(), 2);
        // Over the page-write budget the session goes first, then the click's link.
        assert_eq!(p.clone().within(1).links, Vec::new());
        // Later pages of the visit link nothing more.
        let later = proven(Visit {
            url: "https://shop.example/products/cap".into(),
            ttp_cookie: Some("NEW_.tt.1".into()),
            ttclid_cookie: Some("E.C.P.ad".into()),
            click_cookie: Some(NOW.to_string()),
            session_marker: true,
            ..visit()
        });
        assert!(plan(&later, &tracked(), || unreachable!()).links.is_empty());
        // A visitor who said no: the click leads to the refusal (so their wallet order is not
        // sent, and a consenting sharer of the click is not joined either).
        let declined = Visit {
            consent_cookie: Some("denied".into()),
            ..landing.clone()
        };
        let p = plan(&declined, &tracked(), || "R".into());
        assert!(p.set_cookies.is_empty(), "no cookie at all");
        assert_eq!(
            p.session,
            Some(("declined-R".to_string(), declined_session()))
        );
        assert_eq!(p.links, click_link(Some("E.C.P.ad".into()), "declined-R"));
        // One who has not chosen where consent is required: nothing at all.
        let opt_in = config(&[("CONSENT_DEFAULT", "denied")]);
        assert_eq!(plan(&landing, &opt_in, || unreachable!()), Plan::default());
        // A refusal reported on the landing page links its click too.
        let p = consent_plan(&landing, Choice::Denied, None, &opt_in, || "R".into());
        assert_eq!(p.links, click_link(Some("E.C.P.ad".into()), "declined-R"));
    }

    #[test]
    fn refusal_expires_tracking_cookies() {
        let c = consent_cookies(Choice::Denied, Some("shop.example"));
        assert_eq!(c[0], "_tt_consent=denied; SameSite=Lax; Secure; Path=/; Domain=shop.example; Max-Age=34128000");
        assert!(c[1].starts_with("_ttp=; ") && c[1].contains("Max-Age=0"));
        assert!(c[2].starts_with("ttclid=; ") && c[2].contains("Max-Age=0"));
        assert!(c[3].starts_with("_tt_click=; ") && c[3].contains("Max-Age=0"));
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
