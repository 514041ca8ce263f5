//! The visitor and the person behind an event: what orders carry in their note attributes
//! (for sessions that expired), and whose match keys an event gets.

use super::MappingConfig;
use crate::hash;
use crate::session::{Browser, Session};
use crate::shopify::models::{Address, Checkout, Customer, NoteAttribute, Order};
use crate::tiktok::User;

/// Cart attributes written by the pixel snippet; they reach orders as `note_attributes`.
pub mod attributes {
    pub const SESSION: &str = "_tt_sid";
    pub const TTP: &str = "_ttp";
    pub const TTCLID: &str = "_ttclid";
    pub const MARKET_HANDLE: &str = "_tt_market";
    pub const MARKET_ID: &str = "_tt_market_id";
}

/// The value of `name` among note attributes / cart attributes.
pub fn attribute<'a>(attrs: &'a [NoteAttribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.value.as_ref()?.as_str())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The `ttclid` query parameter of a landing URL or path.
pub fn ttclid_from_url(url: &str) -> Option<String> {
    crate::urls::query_param(url, "ttclid").filter(|v| !v.is_empty())
}

/// The ad click a checkout or an order names: its landing page's `ttclid` (where the buyer's
/// visit began, as Shopify recorded it), else the `_ttclid` cart attribute.
pub fn landing_click(landing_site: Option<&str>, attrs: &[NoteAttribute]) -> Option<String> {
    landing_site
        .and_then(ttclid_from_url)
        .or_else(|| attribute(attrs, attributes::TTCLID).map(String::from))
}

/// The checkout's session facts of its own, read as an order's are: what the cart attributes
/// carried and the click of its landing page (a checkout has no IP or user agent).
pub fn session_from_checkout(checkout: &Checkout) -> Session {
    let mut session = session_from_attributes(&checkout.note_attributes);
    session.browser.ttclid =
        landing_click(checkout.landing_site.as_deref(), &checkout.note_attributes);
    session
}

/// The session facts carried by note attributes, for orders whose KV session expired.
pub fn session_from_attributes(attrs: &[NoteAttribute]) -> Session {
    Session {
        browser: Browser {
            ttp: attribute(attrs, attributes::TTP).map(String::from),
            ttclid: attribute(attrs, attributes::TTCLID).map(String::from),
            ..Browser::default()
        },
        market_handle: attribute(attrs, attributes::MARKET_HANDLE).map(String::from),
        market_id: attribute(attrs, attributes::MARKET_ID).and_then(|v| v.parse().ok()),
        ..Session::default()
    }
}

/// One person's identity fields: an address, or the customer with their default address.
#[derive(Default)]
struct Person<'a> {
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    phone: Option<&'a str>,
    address: Option<&'a Address>,
}

impl<'a> Person<'a> {
    fn of_address(a: &'a Address) -> Option<Person<'a>> {
        let filled = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        [
            &a.first_name,
            &a.last_name,
            &a.zip,
            &a.city,
            &a.country_code,
        ]
        .into_iter()
        .any(filled)
        .then_some(Person {
            first_name: a.first_name.as_deref(),
            last_name: a.last_name.as_deref(),
            phone: a.phone.as_deref(),
            address: Some(a),
        })
    }

    fn of_customer(c: &'a Customer) -> Person<'a> {
        let home = c.default_address.as_ref();
        Person {
            first_name: c
                .first_name
                .as_deref()
                .or(home.and_then(|a| a.first_name.as_deref())),
            last_name: c
                .last_name
                .as_deref()
                .or(home.and_then(|a| a.last_name.as_deref())),
            phone: c.phone.as_deref().or(home.and_then(|a| a.phone.as_deref())),
            address: home,
        }
    }

    fn field(&self, f: impl Fn(&'a Address) -> Option<&'a str>) -> Option<&'a str> {
        self.address.and_then(f)
    }
}

/// The buyer's identity from a payload, hashed. Empty or unusable values are left out.
pub(super) struct Identity<'a> {
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub customer: Option<&'a Customer>,
    pub billing: Option<&'a Address>,
    pub shipping: Option<&'a Address>,
}

impl Identity<'_> {
    pub fn user(&self, session: &Session, default_country: Option<&str>) -> User {
        let customer = self.customer;
        // Names and location all describe one person; mixing the customer's name with the
        // billing address's zip would give a key set that belongs to nobody.
        let person = self
            .billing
            .and_then(Person::of_address)
            .or_else(|| self.shipping.and_then(Person::of_address))
            .or_else(|| customer.map(Person::of_customer))
            .unwrap_or_default();
        let country_code = person.field(|a| a.country_code.as_deref());
        let phone_country = country_code.or(default_country);
        // The first of the candidates that normalises to a usable key.
        let first_usable = |candidates: &[Option<&str>], hash: &dyn Fn(&str) -> Option<String>| {
            candidates.iter().flatten().find_map(|v| hash(v))
        };
        let customer_email = customer.and_then(|c| c.email.as_deref());
        let customer_phone = customer.and_then(|c| c.phone.as_deref());
        User {
            email: first_usable(&[self.email, customer_email], &hash::hash_email),
            phone: first_usable(&[self.phone, customer_phone, person.phone], &|p| {
                hash::hash_phone(p, phone_country)
            }),
            external_id: customer
                .and_then(|c| c.id)
                .and_then(|id| hash::hash_external_id(&id.to_string())),
            first_name: person.first_name.and_then(hash::hash_name),
            last_name: person.last_name.and_then(hash::hash_name),
            zip_code: person.field(|a| a.zip.as_deref()).and_then(hash::hash_zip),
            city: person.field(|a| a.city.as_deref()).and_then(hash::city),
            state: hash::state(
                person.field(|a| a.province_code.as_deref()),
                person.field(|a| a.province.as_deref()),
            ),
            country: country_code.and_then(hash::country),
            locale: self.locale.and_then(hash::locale),
            ..session_user(session)
        }
    }
}

/// Match keys of a session alone (no PII known yet).
pub fn session_user(session: &Session) -> User {
    User {
        browser: session.browser.clone(),
        ..User::default()
    }
}

/// The order's session facts of its own: IP and UA from `client_details`/`browser_ip`, the
/// ttclid of its landing page, and what the cart attributes carried.
pub fn session_from_order(order: &Order) -> Session {
    let details = order.client_details.as_ref();
    let ip = details
        .and_then(|d| d.browser_ip.clone())
        .or_else(|| order.browser_ip.clone())
        .filter(|ip| !ip.is_empty() && ip != "0.0.0.0");
    let mut session = session_from_attributes(&order.note_attributes);
    session.browser = Browser {
        ip,
        user_agent: details
            .and_then(|d| d.user_agent.clone())
            .filter(|ua| !ua.is_empty()),
        ttclid: landing_click(order.landing_site.as_deref(), &order.note_attributes),
        ..session.browser
    };
    session
}

/// The buyer of an order as TikTok match keys (hashed PII, session ttp/ttclid/IP/UA).
pub fn order_user(order: &Order, session: &Session, config: &MappingConfig) -> User {
    Identity {
        email: order.email.as_deref().or(order.contact_email.as_deref()),
        phone: order.phone.as_deref(),
        locale: order.customer_locale.as_deref().or(order
            .client_details
            .as_ref()
            .and_then(|d| d.accept_language.as_deref())),
        customer: order.customer.as_ref(),
        billing: order.billing_address.as_ref(),
        shipping: order.shipping_address.as_ref(),
    }
    .user(session, config.default_country.as_deref())
}
