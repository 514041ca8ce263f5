//! The `/tt/health` report: liveness, mode and which settings are present, never their values.

use crate::config::{self, Config, ConfigError};
use crate::refusals::{self, Refused};
use crate::vec_map::VecMap;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`; `degraded` when a setting that serves one feature is invalid or missing, webhooks
    /// are being refused, or some pixels are paused while others send (that feature is off,
    /// tracking works); `misconfigured` when any other setting is invalid (tracking is off);
    /// `paused` when TikTok refuses the token or a permission of every pixel that could send
    /// (sending waits).
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
    /// Why sending is paused (TikTok refused the token or a permission) and what to do, when no
    /// pixel can send: the earliest pause. A pixel paused while others send is in `pixels` and
    /// `problems`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_paused: Option<crate::queue::Pause>,
    /// Each pixel's state (the one pixel of `TIKTOK_PIXEL_ID`, or each of `TIKTOK_PIXELS`).
    pub pixels: Vec<PixelReport>,
    /// The webhook settings' fingerprint ([`refusals::setup_of`]): refusals counted under
    /// other settings do not apply. `None` while tracking is off.
    #[serde(skip)]
    setup: Option<String>,
}

/// One pixel as health shows it: never its token, only the secret's name.
#[derive(Debug, Serialize)]
pub struct PixelReport {
    pub id: Option<String>,
    /// The secret holding its Events API token.
    pub token: String,
    /// `live`, or `dry_run` (its token's secret is not set).
    pub mode: &'static str,
    /// Its market handles; empty: all markets no scoped pixel serves.
    pub markets: Vec<String>,
    /// The events it receives; `null`: every event.
    pub events: Option<Vec<String>>,
    /// Why sending to this pixel is paused, and what to do; the others keep sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::queue::Pause>,
    /// Its send-queue key.
    #[serde(skip)]
    key: String,
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
        let pixels = loaded.as_ref().map_or(&[][..], |c| &c.pixels[..]);
        let pixels = pixels
            .iter()
            .map(|p| PixelReport {
                id: p.id.clone(),
                token: p.token_name.clone(),
                mode: if p.dry_run() { "dry_run" } else { "live" },
                markets: p.markets.clone(),
                events: p.events.clone(),
                paused: None,
                key: p.key.clone(),
            })
            .collect();
        let listed = set("TIKTOK_PIXELS");
        Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            mode,
            tiktok_configured: (set("TIKTOK_PIXEL_ID") || listed)
                && loaded.as_ref().is_ok_and(|c| !c.dry_run()),
            webhook_secret_configured: set("SHOPIFY_WEBHOOK_SECRET"),
            shop_domain_configured: set("SHOPIFY_SHOP_DOMAIN"),
            settings,
            problems: reports(problems),
            webhooks_refused: None,
            webhook_accepted_ms: None,
            queue_depth: None,
            queue_paused: None,
            pixels,
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
    /// and pauses.
    pub fn with_queue(mut self, queue: crate::queue::ShardHealth) -> Health {
        self.queue_depth = Some(queue.depth);
        self.with_pauses(queue.pauses)
    }

    /// The pixels' send-queue keys, whose pauses health reads.
    pub fn pixel_keys(&self) -> impl Iterator<Item = &str> {
        self.pixels.iter().map(|p| p.key.as_str())
    }

    /// Adds the pixels' pauses (by key). When no pixel can send (every live one paused), the
    /// report is `paused` (503) with the earliest pause in `queue_paused`, so an uptime monitor
    /// tells the operator that TikTok refuses the configuration; when others still send, it is
    /// `degraded` (424) with one problem per paused pixel, naming it and the fix.
    pub fn with_pauses(
        mut self,
        pauses: crate::vec_map::VecMap<String, crate::queue::Pause>,
    ) -> Health {
        for pixel in &mut self.pixels {
            pixel.paused = pauses.get(&pixel.key).cloned();
        }
        let sending = self
            .pixels
            .iter()
            .any(|p| p.mode == "live" && p.paused.is_none());
        for pixel in &self.pixels {
            let Some(pause) = &pixel.paused else {
                continue;
            };
            if sending {
                self.problems.push(ProblemReport {
                    name: "TIKTOK_PIXELS",
                    message: format!(
                        "pixel {} is paused, the other pixels keep sending: {}",
                        pixel.id.as_deref().unwrap_or_default(),
                        pause.reason
                    ),
                    disables: Some("sending to that pixel"),
                });
            } else {
                self.queue_paused =
                    crate::queue::earliest_pause(self.queue_paused.take(), Some(pause.clone()));
            }
        }
        let paused = self.pixels.iter().any(|p| p.paused.is_some());
        self.status = match self.status {
            "misconfigured" => "misconfigured",
            _ if paused && !sending => "paused",
            "ok" if paused => "degraded",
            status => status,
        };
        self
    }

    /// What an uptime monitor reads: 200 `ok`; 424 `degraded` (one feature is off, such as
    /// webhooks or one pixel's sending, or webhooks are refused: tracking works); 503
    /// `misconfigured` or `paused` (tracking or sending is off).
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

    /// The single-pixel settings' pixel paused.
    fn one(pause: &crate::queue::Pause) -> VecMap<String, crate::queue::Pause> {
        [(String::new(), pause.clone())].into_iter().collect()
    }

    #[test]
    fn each_pixel_shows_its_mode_and_its_own_pause() {
        let lookup = |k: &str| match k {
            "TIKTOK_PIXELS" => Some(
                r#"[{"id":"ALL1"},{"id":"FR1","token":"TOKEN_FR","markets":["fr"]}]"#.to_string(),
            ),
            "TIKTOK_ACCESS_TOKEN" => Some("secret-all".to_string()),
            _ => None,
        };
        let pause = crate::queue::Pause::after(None, "TikTok code 40105".into(), 1000, 0);
        let pauses = [("ALL1".to_string(), pause)].into_iter().collect();
        let h = Health::new(&lookup, &Config::from_lookup(&lookup)).with_pauses(pauses);
        assert_eq!((h.status, h.mode, h.http_status()), ("paused", "live", 503));
        assert!(h.tiktok_configured);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["pixels"][0]["mode"], "live");
        assert!(json["pixels"][0]["paused"]["reason"].is_string());
        assert_eq!(json["pixels"][1]["mode"], "dry_run", "TOKEN_FR is not set");
        assert_eq!(json["pixels"][1]["token"], "TOKEN_FR");
        assert!(json["pixels"][1].get("paused").is_none());
        assert!(!json.to_string().contains("secret-all"));
    }

    #[test]
    fn some_pixels_paused_is_degraded_naming_them_and_all_paused_is_paused() {
        let lookup = |k: &str| {
            match k {
            "TIKTOK_PIXELS" => Some(
                r#"[{"id":"ALL1"},{"id":"ALL2","token":"TOKEN_2"},{"id":"FR1","token":"TOKEN_FR","markets":["fr"]}]"#
                    .to_string(),
            ),
            "TIKTOK_ACCESS_TOKEN" | "TOKEN_2" | "TOKEN_FR" => Some("t".to_string()),
            _ => None,
        }
        };
        let loaded = Config::from_lookup(&lookup);
        let pause = |key: &str| {
            let reason = format!("TikTok code 40105: invalid; `wrangler secret put {key}`");
            crate::queue::Pause::after(None, reason, 1000, key.len() as i64)
        };
        let table: &[(&[&str], &str, u16)] = &[
            (&[], "ok", 200),
            (&["ALL2"], "degraded", 424),
            (&["ALL1", "FR1"], "degraded", 424),
            (&["ALL1", "ALL2", "FR1"], "paused", 503),
        ];
        for (paused, status, code) in table {
            let pauses = paused.iter().map(|k| (k.to_string(), pause(k))).collect();
            let h = Health::new(&lookup, &loaded).with_pauses(pauses);
            assert_eq!((h.status, h.http_status()), (*status, *code), "{paused:?}");
            let shown: Vec<bool> = h.pixels.iter().map(|p| p.paused.is_some()).collect();
            let want: Vec<bool> = ["ALL1", "ALL2", "FR1"]
                .iter()
                .map(|k| paused.contains(k))
                .collect();
            assert_eq!(shown, want);
            if *status == "degraded" {
                assert_eq!(h.queue_paused, None, "sending goes on");
                assert_eq!(h.problems.len(), paused.len());
                for (problem, key) in h.problems.iter().zip(paused.iter()) {
                    assert_eq!(problem.name, "TIKTOK_PIXELS");
                    assert!(
                        problem
                            .message
                            .starts_with(&format!("pixel {key} is paused"))
                            && problem.message.contains(&format!("secret put {key}")),
                        "{}",
                        problem.message
                    );
                }
            } else {
                assert!(h.problems.is_empty(), "{:?}", h.problems);
            }
        }
        // All paused: the earliest pause is the queue's.
        let all = ["ALL1", "ALL2", "FR1"].map(|k| (k.to_string(), pause(k)));
        let h = Health::new(&lookup, &loaded).with_pauses(all.into_iter().collect());
        assert_eq!(h.queue_paused, Some(pause("FR1")));
    }

    #[test]
    fn pixels_and_the_single_pixel_settings_together_are_a_named_problem() {
        let lookup = |k: &str| match k {
            "TIKTOK_PIXELS" => Some(r#"[{"id":"ALL1"}]"#.to_string()),
            "TIKTOK_PIXEL_ID" => Some("OTHER".to_string()),
            _ => None,
        };
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!((h.status, h.http_status()), ("misconfigured", 503));
        assert_eq!(h.settings.get("TIKTOK_PIXELS"), Some(&Setting::Invalid));
        assert!(
            h.problems[0].message.contains("remove TIKTOK_PIXEL_ID"),
            "{:?}",
            h.problems
        );
    }

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
        let h = Health::new(&lookup, &Config::from_lookup(&lookup)).with_pauses(one(&pause));
        assert_eq!(
            (h.status, h.http_status(), h.queue_depth),
            ("paused", 503, None)
        );
        let bad = |k: &str| (k == "ROUTE_PREFIX").then(|| "nope".to_string());
        let h = Health::new(&bad, &Config::from_lookup(&bad)).with_pauses(one(&pause));
        assert_eq!((h.status, h.http_status()), ("misconfigured", 503));
        let queue = crate::queue::ShardHealth {
            depth: 3,
            pauses: VecMap::new(),
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
            .with_pauses(one(&pause));
        assert_eq!((h.status, h.http_status()), ("paused", 503));
    }
}
