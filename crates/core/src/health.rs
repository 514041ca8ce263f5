//! The `/tt/health` report: liveness, mode and which settings are present, never their values.

use crate::config::{self, Config, ConfigError};
use crate::vec_map::VecMap;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`; `degraded` when a setting that serves one feature is invalid (that feature is off,
    /// tracking works); `misconfigured` when any other setting is invalid (tracking is off).
    pub status: &'static str,
    pub version: &'static str,
    /// `live` (sends to TikTok), `dry_run` (no access token) or `off` (misconfigured).
    pub mode: &'static str,
    pub tiktok_configured: bool,
    pub webhook_secret_configured: bool,
    pub shop_domain_configured: bool,
    pub config: VecMap<&'static str, bool>,
    pub problems: Vec<ProblemReport>,
    /// Events waiting to be sent (queued, waiting or retrying), with `?queue=1`; `None`
    /// without it or when the queue could not be read.
    pub queue_depth: Option<u64>,
    /// Why sending is paused (TikTok refused the token or a permission) and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_paused: Option<crate::queue::Pause>,
}

#[derive(Debug, Serialize)]
pub struct ProblemReport {
    pub name: &'static str,
    pub message: String,
    /// The one feature that is off because of it; absent when all tracking is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disables: Option<&'static str>,
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
        let (status, mode, problems) = match loaded {
            Ok(c) => (
                if c.degraded.is_empty() {
                    "ok"
                } else {
                    "degraded"
                },
                if c.dry_run() { "dry_run" } else { "live" },
                reports(&c.degraded),
            ),
            Err(e) => ("misconfigured", "off", reports(&e.problems)),
        };
        let config: VecMap<_, _> = config::presence(lookup).into_iter().collect();
        let set = |name: &str| config.get(name) == Some(&true);
        Health {
            status,
            version: env!("CARGO_PKG_VERSION"),
            mode,
            tiktok_configured: set("TIKTOK_PIXEL_ID") && set("TIKTOK_ACCESS_TOKEN"),
            webhook_secret_configured: set("SHOPIFY_WEBHOOK_SECRET"),
            shop_domain_configured: loaded.as_ref().is_ok_and(|c| c.shop_domain.is_some()),
            config,
            problems,
            queue_depth: None,
            queue_paused: None,
        }
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

    /// 503 when tracking is off or TikTok refuses the configuration: a degraded Worker still
    /// does its job.
    pub fn http_status(&self) -> u16 {
        if matches!(self.status, "misconfigured" | "paused") {
            503
        } else {
            200
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
        assert!(json.contains(r#""TIKTOK_ACCESS_TOKEN":true"#), "{json}");
        assert!(json.contains(r#""name":"ROUTE_PREFIX""#), "{json}");
        assert_eq!(h.mode, "off");
    }

    #[test]
    fn a_bad_admin_token_degrades_without_stopping_tracking() {
        let lookup = |k: &str| (k == "ADMIN_TOKEN").then(|| "short".to_string());
        let h = Health::new(&lookup, &Config::from_lookup(&lookup));
        assert_eq!(
            (h.status, h.mode, h.http_status()),
            ("degraded", "dry_run", 200)
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
}
