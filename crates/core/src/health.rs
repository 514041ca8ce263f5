//! The `/tt/health` report: liveness, mode and which settings are present, never their values.

use crate::config::{self, Config, ConfigError};
use crate::refusals::{self, Refused};
use crate::vec_map::VecMap;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`; `degraded` when a setting that serves one feature is invalid or missing, or
    /// webhooks are being refused (that feature is off, tracking works); `misconfigured` when
    /// any other setting is invalid (tracking is off); `paused` when TikTok refuses the token
    /// or a permission (sending waits).
    pub status: &'static str,
    pub version: &'static str,
    /// `live` (sends to TikTok), `dry_run` (no access token) or `off` (misconfigured).
    pub mode: &'static str,
    /// `TIKTOK_PIXEL_ID` and `TIKTOK_ACCESS_TOKEN` are both set, and the pixel id is valid.
    pub tiktok_configured: bool,
    /// `SHOPIFY_WEBHOOK_SECRET` is set (only Shopify's accepted webhooks show it is right).
    pub webhook_secret_configured: bool,
    /// `SHOPIFY_SHOP_DOMAIN` is set and valid, whatever the other settings.
    pub shop_domain_configured: bool,
    /// Each setting's own state, never its value: `set`, `not_set` (its default applies) or
    /// `invalid` (in `problems`).
    pub settings: VecMap<&'static str, Setting>,
    pub problems: Vec<ProblemReport>,
    /// Webhooks refused since the last accepted one, by reason; `null` when none.
    pub webhooks_refused: Option<RefusedReport>,
    /// When a signed webhook from the shop was last accepted (ms since the epoch, to the
    /// hour: `refusals::ACCEPTED_NOTE_MS`); `null` before the first.
    pub webhook_accepted_ms: Option<i64>,
    /// Events waiting to be sent (queued, waiting or retrying), with `?queue=1`; `None`
    /// without it or when the queue could not be read.
    pub queue_depth: Option<u64>,
    /// Why sending is paused (TikTok refused the token or a permission) and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_paused: Option<crate::queue::Pause>,
    /// The webhook settings' fingerprint ([`refusals::setup_of`]): refusals counted under
    /// other settings do not apply. `None` while tracking is off.
    #[serde(skip)]
    setup: Option<String>,
}

/// A setting's state in the health report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Set,
    NotSet,
    Invalid,
}

#[derive(Debug, Serialize)]
pub struct ProblemReport {
    pub name: &'static str,
    pub message: String,
    /// The one feature that is off because of it; absent when all tracking is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disables: Option<&'static str>,
}

/// [`Refused`] as health shows it.
#[derive(Debug, Serialize)]
pub struct RefusedReport {
    /// Bad or missing HMAC signature: `SHOPIFY_WEBHOOK_SECRET` is not what Shopify signs with
    /// (or someone without it posted).
    pub bad_hmac: u64,
    /// Signed, but from another shop than `SHOPIFY_SHOP_DOMAIN`.
    pub wrong_shop: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

fn reports(problems: &[config::Problem]) -> Vec<ProblemReport> {
    problems
        .iter()
        .map(|p| ProblemReport {
            name: p.name,
            message: p.message.clone(),
            disables: p.disables,
        })
        .collect()
}

impl Health {
    pub fn new(
        lookup: &dyn Fn(&str) -> Option<String>,
        loaded: &Result<Config, ConfigError>,
    ) -> Health {
        // Every invalid setting is among these, whether or not it stops tracking.
        let (status, mode, problems) = match loaded {
            Ok(c) => (
                if c.degraded.is_empty() {
                    "ok"
                } else {
                    "degraded"
                },
                if c.dry_run() { "dry_run" } else { "live" },
                &c.degraded,
            ),
            Err(e) => ("misconfigured", "off", &e.problems),
        };
        let settings: VecMap<_, _> = config::presence(lookup)
            .into_iter()
            .map(|(name, present)| {
                let state = if !present {
                    Setting::NotSet
                } else if problems.iter().any(|p| p.name == name) {
                    Setting::Invalid
                } else {
                    Setting::Set
                };
                (name, state)
            })
            .collect();
        let set = |name: &str| settings.get(name) == Some(&Setting::Set);
        Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            mode,
            tiktok_configured: set("TIKTOK_PIXEL_ID") && set("TIKTOK_ACCESS_TOKEN"),
            webhook_secret_configured: set("SHOPIFY_WEBHOOK_SECRET"),
            shop_domain_configured: set("SHOPIFY_SHOP_DOMAIN"),
            settings,
            problems: reports(problems),
            webhooks_refused: None,
            webhook_accepted_ms: None,
            queue_depth: None,
            queue_paused: None,
            setup: loaded.as_ref().ok().map(refusals::setup_of),
        }
    }

    /// Adds the webhooks refused since the last accepted one (the KV record as read): they
    /// make the report `degraded`, with what to check, unless they were counted under other
    /// webhook settings.
    pub fn with_refused(mut self, record: Option<Refused>) -> Health {
        let Some(setup) = &self.setup else {
            return self;
        };
        let Some(refused) = Refused::current(record, setup) else {
            return self;
        };
        self.problems.extend(reports(&refused.problems()));
        if self.status == "ok" {
            self.status = "degraded";
        }
        self.webhooks_refused = Some(RefusedReport {
            bad_hmac: refused.bad_hmac,
            wrong_shop: refused.wrong_shop,
            first_ms: refused.first_ms,
            last_ms: refused.last_ms,
        });
        self
    }

    /// Adds when a signed webhook was last accepted (the KV note as read).
    pub fn with_accepted(mut self, at_ms: Option<i64>) -> Health {
        self.webhook_accepted_ms = at_ms;
        self
    }

    /// Adds the queue's depth (asked for with `?queue=1`: it costs a request to every shard)
    /// and pause.
    pub fn with_queue(mut self, queue: crate::queue::ShardHealth) -> Health {
        self.queue_depth = Some(queue.depth);
        self.with_pause(queue.paused)
    }

    /// Adds the queue's pause: a paused queue makes the report `paused` (503), so an uptime
    /// monitor tells the operator that TikTok refuses the configuration.
    pub fn with_pause(mut self, paused: Option<crate::queue::Pause>) -> Health {
        if paused.is_some() && self.status != "misconfigured" {
            self.status = "paused";
        }
        self.queue_paused = paused;
        self
    }

    /// What an uptime monitor reads: 200 `ok`; 424 `degraded` (one feature is off, such as
    /// webhooks, or webhooks are refused: tracking works); 503 `misconfigured` or `paused`
    /// (tracking or sending is off).
    pub fn http_status(&self) -> u16 {
        match self.status {
            "ok" => 200,
            "degraded" => 424,
            _ => 503,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_presence_and_problems_without_values() {
        let lookup = |k: &str| match k {
            "TIKTOK_ACCESS_TOKEN" => Some("tok-VALUE".to_string()),
            "ROUTE_PREFIX" => Some("nope".to_string()),
            _ => None,
        };
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!(h.http_status(), 503);
        let json = serde_json::to_string(&h).unwrap();
        assert!(
            !json.contains("tok-VALUE") && !json.contains("nope"),
            "{json}"
        );
        assert!(json.contains(r#""TIKTOK_ACCESS_TOKEN":"set""#), "{json}");
        assert!(json.contains(r#""ROUTE_PREFIX":"invalid""#), "{json}");
        assert!(json.contains(r#""INJECT_PIXEL":"not_set""#), "{json}");
        assert!(json.contains(r#""name":"ROUTE_PREFIX""#), "{json}");
        assert_eq!(h.mode, "off");
    }

    #[test]
    fn a_bad_admin_token_degrades_without_stopping_tracking() {
        let lookup = |k: &str| (k == "ADMIN_TOKEN").then(|| "short".to_string());
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!(
            (h.status, h.mode, h.http_status()),
            ("degraded", "dry_run", 424)
        );
        assert_eq!(h.problems[0].name, "ADMIN_TOKEN");
        assert_eq!(h.problems[0].disables, Some(config::ADMIN_FEATURE));
        assert!(!serde_json::to_string(&h).unwrap().contains("\"short\""));
    }

    #[test]
    fn a_pause_makes_it_503_unless_already_misconfigured() {
        let pause = crate::queue::Pause::after(None, "TikTok code 40105".into(), 1000, 0);
        let lookup = |k: &str| (k == "TIKTOK_PIXEL_ID").then(|| "PIXEL1".to_string());
        let h = Health::new(&lookup, &Config::from_lookup(&lookup)).with_pause(Some(pause.clone()));
        assert_eq!(
            (h.status, h.http_status(), h.queue_depth),
            ("paused", 503, None)
        );
        let bad = |k: &str| (k == "ROUTE_PREFIX").then(|| "nope".to_string());
        let h = Health::new(&bad, &Config::from_lookup(&bad)).with_pause(Some(pause));
        assert_eq!((h.status, h.http_status()), ("misconfigured", 503));
        let queue = crate::queue::ShardHealth {
            depth: 3,
            paused: None,
        };
        let h = Health::new(&lookup, &Config::from_lookup(&lookup)).with_queue(queue);
        assert_eq!((h.status, h.queue_depth), ("ok", Some(3)));
    }

    #[test]
    fn dry_run_without_token() {
        let lookup = |k: &str| (k == "TIKTOK_PIXEL_ID").then(|| "PIXEL1".to_string());
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!((h.status, h.mode, h.http_status()), ("ok", "dry_run", 200));
        assert!(!h.tiktok_configured);
    }

    #[test]
    fn the_shop_domain_reads_configured_whatever_the_other_settings() {
        let lookup = |k: &str| match k {
            "SHOPIFY_SHOP_DOMAIN" => Some("demo.myshopify.com".to_string()),
            "ROUTE_PREFIX" => Some("nope".to_string()),
            _ => None,
        };
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!(h.status, "misconfigured");
        assert!(h.shop_domain_configured);
        let bad = |k: &str| (k == "SHOPIFY_SHOP_DOMAIN").then(|| "shop.example.com".to_string());
        let h = Health::new(&bad, &Config::from_lookup(&bad));
        assert!(!h.shop_domain_configured);
        assert_eq!(
            h.settings.get("SHOPIFY_SHOP_DOMAIN"),
            Some(&Setting::Invalid)
        );
    }

    #[test]
    fn refused_webhooks_degrade_until_cleared_and_only_under_their_own_setup() {
        let lookup = |k: &str| match k {
            "SHOPIFY_WEBHOOK_SECRET" => Some("whsec".to_string()),
            "SHOPIFY_SHOP_DOMAIN" => Some("demo.myshopify.com".to_string()),
            _ => None,
        };
        let loaded = Config::from_lookup(&lookup);
        let setup = refusals::setup_of(loaded.as_ref().unwrap());
        let counts = refusals::Counts {
            bad_hmac: 2,
            wrong_shop: 0,
        };
        let record = Refused::add(None, &setup, counts, 7);
        let h = Health::new(&lookup, &loaded).with_refused(Some(record.clone()));
        assert_eq!((h.status, h.http_status()), ("degraded", 424));
        assert_eq!(h.problems[0].name, "SHOPIFY_WEBHOOK_SECRET");
        assert!(h.problems[0]
            .message
            .starts_with("2 webhooks refused since the last accepted one"));
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["webhooks_refused"]["bad_hmac"], 2);
        assert!(json["webhooks_refused"].get("setup").is_none());

        let other = Refused::add(None, "another setup", counts, 7);
        let h = Health::new(&lookup, &loaded).with_refused(Some(other));
        assert_eq!((h.status, h.http_status()), ("ok", 200));
        assert!(serde_json::to_value(&h).unwrap()["webhooks_refused"].is_null());

        let pause = crate::queue::Pause::after(None, "TikTok code 40105".into(), 1000, 0);
        let h = Health::new(&lookup, &loaded)
            .with_refused(Some(record))
            .with_pause(Some(pause));
        assert_eq!((h.status, h.http_status()), ("paused", 503));
    }
}
